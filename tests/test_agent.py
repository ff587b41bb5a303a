"""The inspection agent (provisiond/agent): collect() against recorded trees, build_tree()
round trips, one real run on this machine, and delivery to a stdlib HTTP server on 127.0.0.1."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from provisiond.agent import PostError, collect, post
from provisiond.agent.__main__ import main
from provisiond.agent.collect import (
    boot_mac_from,
    guid_hex,
    parse_cmdline,
    parse_lldpctl,
    parse_lspci,
)
from provisiond.agent.fixture import build_tree, runner_from_dir

FIXTURES = Path(__file__).parent / "fixtures" / "agent"
REPO = Path(__file__).resolve().parents[1]

SCHEMA = {
    "system": {"manufacturer", "product", "serial", "uuid", "bios_vendor", "bios_version",
               "bios_date", "board_vendor", "board_product"},
    "cpu": {"model", "arch", "sockets", "cores", "threads"},
    "memory": {"total_bytes"},
    "disks": {"name", "size_bytes", "model", "serial", "rotational", "wwn"},
    "nics": {"name", "mac", "driver", "driver_version", "firmware", "bus_info", "speed_mbps",
             "carrier"},
    "infiniband": {"device", "port", "port_guid", "node_guid", "fw_ver", "board_id", "hca_type",
                   "state", "rate", "link_layer"},
    "pci": {"slot", "class", "vendor", "device", "vendor_id", "device_id"},
    "lldp": {"interface", "chassis_id", "chassis_name", "port_id", "port_descr", "vlan"},
    "firmware": {"component", "version", "source"},
}  # fmt: skip
TOP = {"agent_version", "hostname", "boot_mac", *SCHEMA, "errors"}


def assert_schema(report: dict[str, Any]) -> None:
    assert set(report) == TOP
    assert report["agent_version"] == "1"
    assert report["hostname"] is None or isinstance(report["hostname"], str)
    for key in ("system", "cpu", "memory"):
        assert set(report[key]) == SCHEMA[key], key
    for key in ("disks", "nics", "infiniband", "pci", "lldp", "firmware"):
        assert isinstance(report[key], list), key
        for item in report[key]:
            assert set(item) == SCHEMA[key], key
    for k in ("sockets", "cores", "threads"):
        assert isinstance(report["cpu"][k], int)
    assert isinstance(report["memory"]["total_bytes"], int)
    for d in report["disks"]:
        assert isinstance(d["rotational"], bool)
    for n in report["nics"]:
        assert n["carrier"] in (True, False, None)
    for p in report["infiniband"]:
        assert isinstance(p["port"], int)
    for link in report["lldp"]:
        assert link["vlan"] is None or isinstance(link["vlan"], int)
    assert isinstance(report["errors"], list)
    assert all(isinstance(e, str) for e in report["errors"])
    json.dumps(report)  # JSON-clean


def recorded(name: str) -> dict[str, Any]:
    base = FIXTURES / name
    return collect(base / "root", runner_from_dir(base / "commands"))


# ------------------------------------------------------------------ recorded trees


def test_supermicro_node_field_by_field() -> None:
    r = recorded("supermicro")
    assert_schema(r)
    assert r["hostname"] == "r01n01"
    assert r["boot_mac"] == "3c:ec:ef:12:34:56"  # provisiond.mac=3C:EC:.. normalized
    assert r["system"] == {
        "manufacturer": "Supermicro", "product": "SYS-1029U-TN10RT", "serial": "S384729X1A12345",
        "uuid": "00000000-0000-0000-0000-3cecef123456", "bios_vendor": "American Megatrends Inc.",
        "bios_version": "3.4", "bios_date": "10/19/2020", "board_vendor": "Supermicro",
        "board_product": "X11DPU",
    }  # fmt: skip
    assert r["cpu"] == {"model": "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz", "arch": "x86_64",
                        "sockets": 2, "cores": 4, "threads": 8}  # fmt: skip
    assert r["memory"] == {"total_bytes": 394737148 * 1024}
    # loop0, dm-0, sr0, zram0 are left out; serials and models are stripped of padding
    assert r["disks"] == [
        {"name": "nvme0n1", "size_bytes": 3750748848 * 512, "model": "SAMSUNG MZQLB1T9HAJR-00007",
         "serial": "S439NA0N123456", "rotational": False, "wwn": "eui.0025388b91b12345"},
        {"name": "sda", "size_bytes": 7814037168 * 512, "model": "ST4000NM0035-1V4",
         "serial": "ZC1ABCDE", "rotational": True, "wwn": "naa.5000c500a1b2c3d4"},
    ]  # fmt: skip
    # lo and bond0 have no device link; ib0 is IPoIB (type 32), reported under infiniband
    assert [n["name"] for n in r["nics"]] == ["eno1", "eno2", "ens1f0np0"]
    eno1, eno2, cx4 = r["nics"]
    assert eno1 == {"name": "eno1", "mac": "3c:ec:ef:12:34:56", "driver": "i40e",
                    "driver_version": "5.15.0-91-generic", "firmware": "3.31 0x80000d31 1.1767.0",
                    "bus_info": "0000:b5:00.0", "speed_mbps": 10000, "carrier": True}  # fmt: skip
    assert eno2["speed_mbps"] is None and eno2["carrier"] is False  # speed -1 on a down link
    assert eno2["bus_info"] == "0000:b5:00.1"
    assert cx4["driver"] == "mlx5_core"
    assert cx4["firmware"] == "14.32.1010 (MT_0000000080)"  # verbatim, PSID included
    assert r["infiniband"] == [
        {"device": "mlx5_0", "port": 1, "port_guid": "0xb8599f0300a1b2c1",
         "node_guid": "0xb8599f0300a1b2c0", "fw_ver": "20.39.1002", "board_id": "MT_0000000223",
         "hca_type": "MT4123", "state": "ACTIVE", "rate": "200 Gb/sec (4X HDR)",
         "link_layer": "InfiniBand"},
        {"device": "mlx5_1", "port": 1, "port_guid": "0x0e42a1fffedead01",
         "node_guid": "0x0c42a10300dead01", "fw_ver": "14.32.1010", "board_id": "MT_0000000080",
         "hca_type": "MT4117", "state": "ACTIVE", "rate": "25 Gb/sec (1X EDR)",
         "link_layer": "Ethernet"},
    ]  # fmt: skip
    assert len(r["pci"]) == 8
    assert r["pci"][3] == {"slot": "0000:3b:00.0", "class": "Ethernet controller",
                           "vendor": "Mellanox Technologies",
                           "device": "MT27710 Family [ConnectX-4 Lx]", "vendor_id": "15b3",
                           "device_id": "1015"}  # fmt: skip
    assert r["pci"][0]["device_id"] == "2020" and r["pci"][0]["class"] == "Host bridge"
    # lldpctl's list shape (two neighbors); the PVID wins among several VLANs
    assert r["lldp"] == [
        {"interface": "eno1", "chassis_id": "1c:34:da:4a:5b:00", "chassis_name": "leaf-r01",
         "port_id": "swp1", "port_descr": "r01n01 eno1", "vlan": 100},
        {"interface": "ens1f0np0", "chassis_id": "44:4c:a8:01:02:03",
         "chassis_name": "spine-data-01.example.net", "port_id": "Ethernet17",
         "port_descr": "Ethernet17", "vlan": 210},
    ]  # fmt: skip
    assert r["firmware"] == [
        {"component": "bios", "version": "3.4", "source": "dmi"},
        {"component": "bmc", "version": "1.71", "source": "ipmitool"},
        {"component": "nic:eno1", "version": "3.31 0x80000d31 1.1767.0", "source": "ethtool"},
        {"component": "nic:eno2", "version": "3.31 0x80000d31 1.1767.0", "source": "ethtool"},
        {"component": "nic:ens1f0np0", "version": "14.32.1010 (MT_0000000080)",
         "source": "ethtool"},
        {"component": "hca:mlx5_0", "version": "20.39.1002", "source": "sysfs"},
        {"component": "hca:mlx5_1", "version": "14.32.1010", "source": "sysfs"},
    ]  # fmt: skip
    assert r["errors"] == []


def test_dell_node_dmidecode_fallback_and_single_lldp_shape() -> None:
    r = recorded("dell")
    assert_schema(r)
    assert r["hostname"] == "gpu07"
    assert r["boot_mac"] == "b0:26:28:aa:bb:01"  # from BOOTIF=01-..
    # no /sys/class/dmi/id: everything from `dmidecode -t 0,1,2`, UUID lowercased
    assert r["system"] == {
        "manufacturer": "Dell Inc.", "product": "PowerEdge R7525", "serial": "7XYZ123",
        "uuid": "4c4c4544-0058-5910-8031-b7c04f313233", "bios_vendor": "Dell Inc.",
        "bios_version": "1.10.2", "bios_date": "03/22/2023", "board_vendor": "Dell Inc.",
        "board_product": "0PYVT1",
    }  # fmt: skip
    assert r["cpu"] == {"model": "AMD EPYC 7763 64-Core Processor", "arch": "x86_64",
                        "sockets": 1, "cores": 2, "threads": 2}  # fmt: skip
    assert r["memory"]["total_bytes"] == 1056457728 * 1024
    # SATA SSD: the serial from SCSI VPD page 0x80, no wwid anywhere
    assert r["disks"] == [{"name": "sda", "size_bytes": 937703088 * 512,
                           "model": "MZ7L3480HCHQAD3", "serial": "S6LPNA0T123456",
                           "rotational": False, "wwn": None}]  # fmt: skip
    assert r["nics"] == [{"name": "eno8303", "mac": "b0:26:28:aa:bb:01", "driver": "bnxt_en",
                          "driver_version": "6.1.0-18-amd64",
                          "firmware": "223.0.161.0/pkg 22.31.06.10", "bus_info": "0000:04:00.0",
                          "speed_mbps": 25000, "carrier": True}]  # fmt: skip
    assert r["infiniband"] == []
    # "interface" is a dict (one neighbor); the chassis has no SysName, so it holds "id" itself
    assert r["lldp"] == [{"interface": "eno8303", "chassis_id": "68:4f:64:aa:00:01",
                          "chassis_name": None, "port_id": "Gi1/0/7", "port_descr": None,
                          "vlan": None}]  # fmt: skip
    # vendor names with a bracket ("[AMD]") and device names with one ("[A100 PCIe 80GB]")
    assert r["pci"][0]["vendor"] == "Advanced Micro Devices, Inc. [AMD]"
    assert r["pci"][0]["vendor_id"] == "1022"
    assert r["pci"][2]["device"] == "GA100 [A100 PCIe 80GB]"
    assert r["pci"][2]["device_id"] == "20b5"
    # no /dev/ipmi0: no bmc entry and no error; bios from dmidecode says so
    assert r["firmware"] == [
        {"component": "bios", "version": "1.10.2", "source": "dmidecode"},
        {"component": "nic:eno8303", "version": "223.0.161.0/pkg 22.31.06.10",
         "source": "ethtool"},
    ]  # fmt: skip
    assert r["errors"] == []


def test_minimal_node_reports_what_it_lacks() -> None:
    r = recorded("minimal")
    assert_schema(r)
    assert r["hostname"] == "localhost.localdomain"  # the kernel says "(none)"
    assert r["boot_mac"] == "52:54:00:ab:cd:ef"
    assert all(v is None for v in r["system"].values())
    # arm64: no model name, topology from sysfs, arch from cpuinfo (no proc/sys/kernel/arch)
    assert r["cpu"] == {"model": None, "arch": "aarch64", "sockets": 1, "cores": 4, "threads": 4}
    assert r["memory"]["total_bytes"] == 8135440 * 1024
    assert r["disks"] == [{"name": "vda", "size_bytes": 41943040 * 512, "model": None,
                           "serial": None, "rotational": True, "wwn": None}]  # fmt: skip
    # ethtool missing: the driver from the device/driver link, the rest unknown
    assert r["nics"] == [{"name": "enp0s1", "mac": "52:54:00:ab:cd:ef", "driver": "virtio_net",
                          "driver_version": None, "firmware": None, "bus_info": None,
                          "speed_mbps": None, "carrier": True}]  # fmt: skip
    assert r["infiniband"] == [] and r["lldp"] == [] and r["firmware"] == []
    assert len(r["pci"]) == 3
    errs = "\n".join(r["errors"])
    assert "dmidecode" in errs and "ethtool" in errs and "lldpctl" in errs
    assert len(r["errors"]) == 3


def test_empty_root_never_raises(tmp_path: Path) -> None:
    r = collect(tmp_path, lambda argv: None)
    assert_schema(r)
    assert r["memory"]["total_bytes"] == 0
    assert r["nics"] == [] and r["disks"] == []
    errs = "\n".join(r["errors"])
    for word in ("system", "cpu", "memory", "disks", "nics", "pci", "lldp"):
        assert word in errs


def test_a_runner_that_raises_becomes_errors() -> None:
    def boom(argv: list[str]) -> str | None:
        raise RuntimeError(f"cannot run {argv[0]}")

    r = collect(FIXTURES / "supermicro" / "root", boom)
    assert_schema(r)
    assert r["memory"]["total_bytes"] > 0  # file sources still there
    assert any("RuntimeError" in e for e in r["errors"])


def test_garbage_command_output_is_not_fatal() -> None:
    r = collect(FIXTURES / "minimal" / "root", lambda argv: "}{ not json\n\x00\n")
    assert_schema(r)
    assert r["lldp"] == [] and r["pci"] == []
    assert any(e.startswith("lldp:") for e in r["errors"])


# ------------------------------------------------------------------ parsers


def test_boot_mac_sources() -> None:
    assert boot_mac_from(parse_cmdline("BOOTIF=01-AA-BB-CC-DD-EE-FF")) == "aa:bb:cc:dd:ee:ff"
    assert boot_mac_from(parse_cmdline("BOOTIF=aa-bb-cc-dd-ee-ff")) == "aa:bb:cc:dd:ee:ff"
    both = parse_cmdline("BOOTIF=01-aa-bb-cc-dd-ee-ff provisiond.mac=52:54:00:00:01:01")
    assert boot_mac_from(both) == "52:54:00:00:01:01"
    assert boot_mac_from(parse_cmdline("provisiond.mac=bogus")) is None
    assert boot_mac_from(parse_cmdline("quiet")) is None
    # init's arguments after "--" are not the kernel's
    assert "provisiond.url" not in parse_cmdline("quiet -- provisiond.url=http://x")


def test_guid_forms() -> None:
    assert guid_hex("0002:C903:000E:0B72") == "0x0002c903000e0b72"
    assert guid_hex("0x0002c903000e0b72") == "0x0002c903000e0b72"
    assert guid_hex("0002:c903") is None and guid_hex(None) is None


def test_lldpctl_shapes() -> None:
    assert parse_lldpctl({"lldp": {}}) == []
    assert parse_lldpctl({"lldp": []}) == []
    assert parse_lldpctl([]) == []
    one = {"lldp": {"interface": {"eth0": {
        "chassis": {"sw1": {"id": {"type": "mac", "value": "00:11:22:33:44:55"}}},
        "port": {"id": {"type": "ifname", "value": "Ethernet1/1"}, "descr": "to r01n01"},
        "vlan": {"vlan-id": 100, "pvid": True}}}}}  # fmt: skip
    assert parse_lldpctl(one) == [{"interface": "eth0", "chassis_id": "00:11:22:33:44:55",
                                   "chassis_name": "sw1", "port_id": "Ethernet1/1",
                                   "port_descr": "to r01n01", "vlan": 100}]  # fmt: skip
    # two neighbors on one port (a list with repeated names) are both kept
    two = {"lldp": {"interface": [{"eth0": {"port": {"id": {"value": "a"}}}},
                                  {"eth0": {"port": {"id": {"value": "b"}}}}]}}  # fmt: skip
    assert [x["port_id"] for x in parse_lldpctl(two)] == ["a", "b"]
    odd = {"lldp": {"interface": {"eth0": {"vlan": [{"vlan-id": "x"}], "chassis": "?"}}}}
    assert parse_lldpctl(odd)[0]["vlan"] is None


def test_lspci_lines() -> None:
    rows = parse_lspci(
        '00:1f.6 "Ethernet controller [0200]" "Intel Corporation [8086]" '
        '"Ethernet Connection (7) I219-LM [15bb]" -r10 "Dell [1028]" "Device [0922]"\n'
        "garbage line\n"
        '0000:01:00.0 "Class [0c03]" "Vendor [1b73]" "Device [1100]" -r10 -p30 "" ""\n'
    )
    assert rows == [
        {"slot": "00:1f.6", "class": "Ethernet controller", "vendor": "Intel Corporation",
         "device": "Ethernet Connection (7) I219-LM", "vendor_id": "8086", "device_id": "15bb"},
        {"slot": "0000:01:00.0", "class": "Class", "vendor": "Vendor", "device": "Device",
         "vendor_id": "1b73", "device_id": "1100"},
    ]  # fmt: skip


# ------------------------------------------------------------------ build_tree


SPEC: dict[str, Any] = {
    "hostname": "r01n01",
    "boot_mac": "52:54:00:00:01:01",
    "system": {"manufacturer": "Supermicro", "product": "SYS-1029", "serial": "S123",
               "uuid": "8d3f0c2a-1b4e-4c6d-9e8f-0a1b2c3d4e5f", "bios_vendor": "AMI",
               "bios_version": "3.4", "bios_date": "01/02/2023", "board_vendor": "Supermicro",
               "board_product": "X11DPU"},
    "cpu": {"model": "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", "sockets": 2, "cores": 32,
            "threads": 64},
    "memory_bytes": 274877906944,
    "nics": [
        {"name": "eno1", "mac": "52:54:00:00:01:01", "driver": "ice",
         "firmware": "4.40 0x8001c967 1.3534.0",
         "lldp": {"chassis_name": "leaf-r01", "chassis_id": "00:11:22:33:44:55",
                  "port_id": "Ethernet1/1", "vlan": 100}},
    ],
    "infiniband": [{"device": "mlx5_0", "port": 1, "port_guid": "0x0002c903000e0b72",
                    "node_guid": "0x0002c903000e0b70", "fw_ver": "28.39.1002",
                    "board_id": "MT_0000000838"}],
    "disks": [{"name": "nvme0n1", "size_bytes": 1920383410176, "model": "SAMSUNG MZQL21T9HCJR",
               "serial": "S64GNE0R123456", "rotational": False}],
}  # fmt: skip


def assert_matches_spec(r: dict[str, Any], spec: dict[str, Any]) -> None:
    assert r["hostname"] == spec["hostname"]
    assert r["boot_mac"] == spec.get("boot_mac")
    for k, v in spec.get("system", {}).items():
        assert r["system"][k] == v, k
    for k, v in spec.get("cpu", {}).items():
        assert r["cpu"][k] == v, k
    assert r["memory"]["total_bytes"] == spec["memory_bytes"]
    assert len(r["disks"]) == len(spec.get("disks", []))
    for got, want in zip(r["disks"], spec.get("disks", []), strict=True):
        for k, v in want.items():
            assert got[k] == v, k
    assert len(r["nics"]) == len(spec.get("nics", []))
    for got, want in zip(r["nics"], spec.get("nics", []), strict=True):
        for k, v in want.items():
            if k != "lldp":
                assert got[k] == v, k
        assert {"component": f"nic:{want['name']}", "version": want["firmware"],
                "source": "ethtool"} in r["firmware"]  # fmt: skip
    want_lldp = [{"interface": n["name"], **n["lldp"]} for n in spec.get("nics", [])
                 if n.get("lldp")]  # fmt: skip
    assert len(r["lldp"]) == len(want_lldp)
    for got, want in zip(r["lldp"], want_lldp, strict=True):
        for k, v in want.items():
            assert got[k] == v, k
    assert len(r["infiniband"]) == len(spec.get("infiniband", []))
    for got, want in zip(r["infiniband"], spec.get("infiniband", []), strict=True):
        for k, v in want.items():
            assert got[k] == v, k


def test_build_tree_round_trip(tmp_path: Path) -> None:
    run = build_tree(tmp_path, SPEC)
    r = collect(tmp_path, run)
    assert_schema(r)
    assert_matches_spec(r, SPEC)
    assert r["errors"] == []
    assert {"component": "bios", "version": "3.4", "source": "dmi"} in r["firmware"]
    assert {"component": "hca:mlx5_0", "version": "28.39.1002", "source": "sysfs"} in r["firmware"]
    assert any(p["vendor_id"] == "15b3" for p in r["pci"])


def test_build_tree_round_trip_bigger_node(tmp_path: Path) -> None:
    spec = copy.deepcopy(SPEC)
    spec["nics"].append({"name": "ens2f0np0", "mac": "0c:42:a1:00:00:02", "driver": "mlx5_core",
                         "driver_version": "6.8.0-45-generic", "bus_info": "0000:3b:00.0",
                         "firmware": "14.32.1010 (MT_0000000080)", "speed_mbps": 25000,
                         "carrier": True,
                         "lldp": {"chassis_id": "44:4c:a8:00:00:01", "port_id": "Ethernet7",
                                  "port_descr": "r01n01 data"}})  # fmt: skip
    spec["nics"].append({"name": "eno2", "mac": "52:54:00:00:01:02", "driver": "ice",
                         "firmware": "4.40 0x8001c967 1.3534.0", "carrier": False})  # fmt: skip
    spec["infiniband"].append({**spec["infiniband"][0], "port": 2,
                               "port_guid": "0x0002c903000e0b73", "state": "DOWN",
                               "rate": "10 Gb/sec (4X SDR)"})  # fmt: skip
    spec["disks"].append({"name": "sda", "size_bytes": 4000787030016, "model": "ST4000NM0035",
                          "serial": None, "rotational": True,
                          "wwn": "naa.5000c500a1b2c3d4"})  # fmt: skip
    spec["cpu"] = {"model": "AMD EPYC 9654", "arch": "x86_64", "sockets": 2, "cores": 192,
                   "threads": 384}  # fmt: skip
    spec["bmc_firmware"] = "01.02.03"
    run = build_tree(tmp_path, spec)
    r = collect(tmp_path, run)
    assert_schema(r)
    assert r["errors"] == []
    # collect sorts by name; compare against the spec in that order
    spec["nics"].sort(key=lambda n: n["name"])
    spec["disks"].sort(key=lambda d: d["name"])
    assert_matches_spec(r, spec)
    assert {"component": "bmc", "version": "01.02.03", "source": "ipmitool"} in r["firmware"]
    assert [f["component"] for f in r["firmware"]].count("hca:mlx5_0") == 1


def test_build_tree_without_lldpctl(tmp_path: Path) -> None:
    run = build_tree(tmp_path, {**SPEC, "lldpctl": False})
    r = collect(tmp_path, run)
    assert r["lldp"] == []
    assert [e for e in r["errors"] if e.startswith("lldp:")]


# ------------------------------------------------------------------ the real machine


def test_print_on_this_machine() -> None:
    done = subprocess.run([sys.executable, "-m", "provisiond.agent", "--print"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    assert_schema(r)
    assert r["memory"]["total_bytes"] > 0
    assert r["cpu"]["threads"] > 0 and r["cpu"]["arch"]
    assert r["nics"] or any(e.startswith("nics:") for e in r["errors"])
    # no DMI in a container is fine, but then it must say so
    assert any(r["system"].values()) or any(e.startswith("system:") for e in r["errors"])


# ------------------------------------------------------------------ delivery


class Inbox:
    """What a stdlib server on 127.0.0.1 received, and the statuses it answers with in turn
    (the last one repeats)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.url = ""


@pytest.fixture
def server() -> Iterator[Inbox]:
    inbox = Inbox([200])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            inbox.requests.append((self.path, dict(self.headers), json.loads(raw)))
            n = len(inbox.requests) - 1
            status = inbox.statuses[min(n, len(inbox.statuses) - 1)]
            if status < 300:
                body, ctype = {"node": "r01n01", "nics_added": 1}, "application/json"
            else:
                body = {"type": "about:blank", "title": "refused", "status": status,
                        "detail": f"token already used (status {status})"}  # fmt: skip
                ctype = "application/problem+json"
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            if status == 503:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    inbox.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield inbox
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


REPORT = {"agent_version": "1", "hostname": "x", "errors": []}
TOKEN = "t" * 32


def test_post_delivers(server: Inbox) -> None:
    answer = post(server.url, TOKEN, REPORT, tries=3, backoff=0.01)
    assert answer == {"node": "r01n01", "nics_added": 1}
    [(path, headers, body)] = server.requests
    assert path == "/v1/agent/inspect"  # the base URL's trailing slash is not doubled
    assert headers["Content-Type"] == "application/json"
    assert body == {"token": TOKEN, "report": REPORT}


def test_post_retries_503(server: Inbox) -> None:
    server.statuses = [503, 502, 200]
    logged: list[str] = []
    assert post(server.url, TOKEN, REPORT, tries=6, backoff=0.01, log=logged.append)
    assert len(server.requests) == 3
    assert len(logged) == 2 and "503" in logged[0]


def test_post_never_retries_4xx(server: Inbox) -> None:
    server.statuses = [400, 200]
    with pytest.raises(PostError) as exc:
        post(server.url, TOKEN, REPORT, tries=6, backoff=0.01)
    assert exc.value.refused and exc.value.status == 400
    assert exc.value.detail == "token already used (status 400)"
    assert len(server.requests) == 1


def test_post_gives_up(server: Inbox) -> None:
    server.statuses = [503]
    with pytest.raises(PostError) as exc:
        post(server.url, TOKEN, REPORT, tries=3, backoff=0.01)
    assert not exc.value.refused and exc.value.status == 503
    assert len(server.requests) == 3


def test_post_unreachable() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PostError) as exc:
        post(f"http://127.0.0.1:{port}", TOKEN, REPORT, tries=2, backoff=0.01, timeout=2)
    assert exc.value.status is None and not exc.value.refused


def _tree(tmp_path: Path, server: Inbox, **extra: Any) -> Any:
    return build_tree(tmp_path, {**SPEC, **extra})


def test_main_posts_with_url_and_token_from_cmdline(tmp_path: Path, server: Inbox) -> None:
    run = _tree(tmp_path, server, url=server.url, token=TOKEN, mode="inspect")
    assert main(["--root", str(tmp_path)], run=run) == 0
    [(_, _, body)] = server.requests
    assert body["token"] == TOKEN
    assert_matches_spec(body["report"], SPEC)


def test_main_flags_override_and_retry(tmp_path: Path, server: Inbox) -> None:
    server.statuses = [503, 200]
    run = _tree(tmp_path, server, url="http://127.0.0.1:9/", token="wrong" * 8)
    argv = ["--root", str(tmp_path), "--url", server.url, "--token", TOKEN, "--backoff", "0.01"]
    assert main(argv, run=run) == 0
    assert len(server.requests) == 2
    assert all(body["token"] == TOKEN for _, _, body in server.requests)


def test_main_exit_codes(tmp_path: Path, server: Inbox, capsys: pytest.CaptureFixture[str]) -> None:
    run = _tree(tmp_path, server)
    base = ["--root", str(tmp_path), "--backoff", "0.01"]
    # no URL or token anywhere
    assert main(base, run=run) == 3
    assert main([*base, "--url", server.url], run=run) == 3
    assert main([*base, "--url", server.url, "--token", TOKEN, "--mode", "deploy"], run=run) == 3
    assert server.requests == []
    # 4xx: exit 2 with the server's detail
    server.statuses = [409]
    capsys.readouterr()
    assert main([*base, "--url", server.url, "--token", TOKEN], run=run) == 2
    assert "token already used (status 409)" in capsys.readouterr().err
    assert len(server.requests) == 1
    # 5xx forever: exit 1 after --tries
    server.requests.clear()
    server.statuses = [500]
    assert main([*base, "--url", server.url, "--token", TOKEN, "--tries", "2"], run=run) == 1
    assert len(server.requests) == 2


def test_main_print_posts_nothing(tmp_path: Path, server: Inbox,
                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    run = _tree(tmp_path, server, url=server.url, token=TOKEN)
    assert main(["--root", str(tmp_path), "--print"], run=run) == 0
    r = json.loads(capsys.readouterr().out)
    assert_schema(r)
    assert_matches_spec(r, SPEC)
    assert server.requests == []
