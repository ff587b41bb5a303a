"""Fake /sys, /proc trees and recorded command output, for tests and the lab's simulated nodes.

``build_tree(dest, spec)`` writes what the kernel would show for the node the spec describes and
returns a Runner that answers the agent's commands (ethtool -i, lspci, lldpctl, dmidecode, ipmitool)
with matching output, so ``collect(dest, run)`` reads the spec's values back. Stdlib only.

Spec keys (all optional but hostname):
  hostname, boot_mac, url, token, mode        -> /proc/sys/kernel/hostname, /proc/cmdline
  system: {manufacturer, product, serial, uuid, bios_vendor, bios_version, bios_date,
           board_vendor, board_product}       -> /sys/class/dmi/id (uuid in lowercase)
  cpu: {model, arch, sockets, cores, threads} -> /proc/cpuinfo, /proc/sys/kernel/arch
  memory_bytes                                -> /proc/meminfo (rounded down to KiB)
  nics: [{name, mac, driver, driver_version, firmware, bus_info, speed_mbps, carrier,
          lldp: {chassis_id, chassis_name, port_id, port_descr, vlan}}]
  infiniband: [{device, port, port_guid, node_guid, fw_ver, board_id, hca_type, state, rate,
                link_layer}]
  disks: [{name, size_bytes (multiple of 512), model, serial, rotational, wwn}]
  pci: [{slot, class, vendor, device, vendor_id, device_id}]  (default: derived from nics/HCAs)
  bmc_firmware                                -> /dev/ipmi0 + `ipmitool mc info`
  lldpctl: false                              -> lldpctl is "missing"
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from provisiond.agent.collect import (
    DMI_FILES,
    DMIDECODE,
    DMIDECODE_FIELDS,
    IPMI_MC_INFO,
    LLDPCTL,
    LSPCI,
    Runner,
    ethtool_argv,
    guid_hex,
)


class _Writer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dirs: set[Path] = set()

    def __call__(self, rel: str, text: str) -> None:
        path = self.root / rel
        if path.parent not in self.dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.dirs.add(path.parent)
        path.write_text(text if text.endswith("\n") or not text else text + "\n")


def recorded_runner(outputs: Mapping[tuple[str, ...], str]) -> Runner:
    """A Runner answering exactly the recorded argv tuples; anything else is 'missing' (None)."""
    table = dict(outputs)

    def run(argv: list[str]) -> str | None:
        return table.get(tuple(argv))

    return run


def runner_from_dir(commands: Path) -> Runner:
    """A Runner answering from files named after argv with spaces as '_' (e.g.
    ``ethtool_-i_eno1``, ``lspci_-D_-mm_-nn``); a command without a file is 'missing'."""

    def run(argv: list[str]) -> str | None:
        try:
            return (commands / "_".join(argv)).read_text()
        except OSError:
            return None

    return run


def _cpuinfo(cpu: Mapping[str, Any]) -> str:
    sockets = max(1, int(cpu.get("sockets", 1)))
    cores = max(sockets, int(cpu.get("cores", sockets)))
    threads = max(cores, int(cpu.get("threads", cores)))
    model = cpu.get("model") or "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
    flags = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat lm"
    per_socket = cores // sockets
    stanzas = []
    for i in range(threads):
        c = i % cores  # hyperthread siblings share (socket, core)
        stanzas.append(
            f"processor\t: {i}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 106\n"
            f"model name\t: {model}\nphysical id\t: {c % sockets}\nsiblings\t: "
            f"{threads // sockets}\ncore id\t\t: {c // sockets}\ncpu cores\t: {per_socket}\n"
            f"flags\t\t: {flags}\n"
        )
    return "\n".join(stanzas) + "\n"


def _fake_mac(peer: Mapping[str, Any]) -> str:
    """A stable, locally administered chassis MAC for a switch the spec names but gives no id."""
    digest = hashlib.sha1(str(peer.get("chassis_name") or "switch").encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def _lldp_json(nics: list[Mapping[str, Any]]) -> str:
    """What `lldpctl -f json` prints: one neighbor -> "interface" is a dict, several -> a list."""
    items: list[dict[str, Any]] = []
    for nic in nics:
        peer = nic.get("lldp")
        if not peer:
            continue
        chassis_body: dict[str, Any] = {
            "id": {"type": "mac", "value": peer.get("chassis_id") or _fake_mac(peer)},
            "descr": "Cumulus Linux version 5.4.0 running on Mellanox SN2010",
            "mgmt-ip": "192.0.2.10",
            "capability": [{"type": "Bridge", "enabled": True},
                           {"type": "Router", "enabled": True}],
        }  # fmt: skip
        chassis = ({peer["chassis_name"]: chassis_body} if peer.get("chassis_name")
                   else chassis_body)  # fmt: skip
        port: dict[str, Any] = {"id": {"type": "ifname", "value": peer.get("port_id")}}
        if peer.get("port_descr"):
            port["descr"] = peer["port_descr"]
        port["ttl"] = "120"
        body: dict[str, Any] = {
            "via": "LLDP",
            "rid": str(len(items) + 1),
            "age": "0 day, 00:00:42",
            "chassis": chassis,
            "port": port,
        }
        if peer.get("vlan") is not None:
            body["vlan"] = {"vlan-id": str(peer["vlan"]), "pvid": True,
                            "value": f"vlan{peer['vlan']}"}  # fmt: skip
        items.append({nic["name"]: body})
    if not items:
        return json.dumps({"lldp": {}}, indent=2)
    interface: Any = items[0] if len(items) == 1 else items
    return json.dumps({"lldp": {"interface": interface}}, indent=2)


def _dmidecode(system: Mapping[str, Any]) -> str:
    sections: dict[str, list[str]] = {}
    for key, (title, field) in DMIDECODE_FIELDS.items():
        sections.setdefault(title, []).append(f"\t{field}: {system.get(key) or 'Not Specified'}")
    out = ["# dmidecode 3.4", "Getting SMBIOS data from sysfs.", "SMBIOS 3.2.0 present.", ""]
    for n, (title, lines) in enumerate(sections.items()):
        out += [f"Handle 0x{n:04X}, DMI type {n}, 27 bytes", title, *lines, ""]
    return "\n".join(out)


def _lspci(spec: Mapping[str, Any]) -> str:
    rows: list[Mapping[str, Any]] = list(spec.get("pci") or ())
    if not rows:
        rows = [{"slot": "0000:00:00.0", "class": "Host bridge", "vendor": "Intel Corporation",
                 "device": "Ice Lake Memory Map/VT-d", "vendor_id": "8086",
                 "device_id": "09a2"}]  # fmt: skip
        for n, nic in enumerate(spec.get("nics") or ()):
            rows.append({"slot": nic.get("bus_info") or _nic_bus(n), "class": "Ethernet controller",
                         "vendor": "Intel Corporation", "device": "Ethernet Controller E810-XXV",
                         "vendor_id": "8086", "device_id": "159b"})  # fmt: skip
        for n, _dev in enumerate(sorted({ib["device"] for ib in spec.get("infiniband") or ()})):
            rows.append({"slot": f"0000:{0x81 + n:02x}:00.0", "class": "Infiniband controller",
                         "vendor": "Mellanox Technologies", "device": "MT28908 Family [ConnectX-6]",
                         "vendor_id": "15b3", "device_id": "101b"})  # fmt: skip
    lines = []
    for r in rows:
        cls = _PCI_CLASSES.get(r["class"], "ff00")
        lines.append(
            f'{r["slot"]} "{r["class"]} [{cls}]" "{r["vendor"]} [{r["vendor_id"]}]" '
            f'"{r["device"]} [{r["device_id"]}]" -r00 "" ""'
        )
    return "\n".join(lines) + "\n"


_IB_STATES = {"DOWN": 1, "INIT": 2, "ARMED": 3, "ACTIVE": 4, "ACTIVE_DEFER": 5}
_PCI_CLASSES = {
    "Host bridge": "0600",
    "Ethernet controller": "0200",
    "Infiniband controller": "0207",
    "Non-Volatile memory controller": "0108",
}


def _nic_bus(n: int) -> str:
    return f"0000:{0x18 + n:02x}:00.0"


def _sysfs_guid(guid: str) -> str:
    digits = (guid_hex(guid) or "0x" + "0" * 16)[2:]
    return ":".join(digits[i : i + 4] for i in range(0, 16, 4))


def build_tree(dest: Path, spec: Mapping[str, Any]) -> Runner:
    """Write the fake tree for `spec` under dest; return the Runner for its commands."""
    dest = Path(dest)
    w = _Writer(dest)
    outputs: dict[tuple[str, ...], str] = {}

    hostname = str(spec.get("hostname") or "localhost")
    w("proc/sys/kernel/hostname", hostname)
    w("etc/hostname", hostname)
    words = ["BOOT_IMAGE=/agent/vmlinuz", "initrd=agent.img", "ip=dhcp", "console=ttyS0,115200"]
    if spec.get("boot_mac"):
        words.append("BOOTIF=01-" + str(spec["boot_mac"]).lower().replace(":", "-"))
    for key in ("url", "token", "mode"):
        if spec.get(key):
            words.append(f"provisiond.{key}={spec[key]}")
    w("proc/cmdline", " ".join(words))

    system: Mapping[str, Any] = spec.get("system") or {}
    for key, fname in DMI_FILES.items():
        value = system.get(key)
        w(f"sys/class/dmi/id/{fname}", str(value) if value is not None else "")
    outputs[tuple(DMIDECODE)] = _dmidecode(system)

    cpu: Mapping[str, Any] = spec.get("cpu") or {}
    w("proc/cpuinfo", _cpuinfo(cpu))
    w("proc/sys/kernel/arch", str(cpu.get("arch") or "x86_64"))
    kib = int(spec.get("memory_bytes") or 0) // 1024
    w("proc/meminfo", f"MemTotal:       {kib} kB\nMemFree:        {kib // 2} kB\n"
                      f"MemAvailable:   {kib // 2} kB\n")  # fmt: skip

    for disk in spec.get("disks") or ():
        b = f"sys/block/{disk['name']}"
        w(f"{b}/size", str(int(disk.get("size_bytes") or 0) // 512))
        w(f"{b}/queue/rotational", "1" if disk.get("rotational") else "0")
        w(f"{b}/device/model", str(disk.get("model") or ""))
        if disk.get("serial"):
            w(f"{b}/device/serial", str(disk["serial"]))
        if disk.get("wwn"):
            w(f"{b}/wwid", str(disk["wwn"]))
    w("sys/block/loop0/size", "0")

    w("sys/class/net/lo/address", "00:00:00:00:00:00")
    w("sys/class/net/lo/type", "772")
    nics: list[Mapping[str, Any]] = list(spec.get("nics") or ())
    for n, nic in enumerate(nics):
        d = f"sys/class/net/{nic['name']}"
        w(f"{d}/address", str(nic.get("mac") or "").lower())
        w(f"{d}/type", "1")
        w(f"{d}/device/vendor", "0x8086")
        if nic.get("speed_mbps") is not None:
            w(f"{d}/speed", str(nic["speed_mbps"]))
        carrier = nic.get("carrier", True)
        if carrier is not None:
            w(f"{d}/carrier", "1" if carrier else "0")
        w(f"{d}/operstate", "up" if carrier else "down")
        outputs[tuple(ethtool_argv(nic["name"]))] = (
            f"driver: {nic.get('driver') or ''}\n"
            f"version: {nic.get('driver_version') or ''}\n"
            f"firmware-version: {nic.get('firmware') or ''}\n"
            "expansion-rom-version: \n"
            f"bus-info: {nic.get('bus_info') or _nic_bus(n)}\n"
            "supports-statistics: yes\nsupports-test: yes\nsupports-eeprom-access: no\n"
            "supports-register-dump: yes\nsupports-priv-flags: yes\n"
        )

    for ib in spec.get("infiniband") or ():
        d = f"sys/class/infiniband/{ib['device']}"
        w(f"{d}/node_guid", _sysfs_guid(str(ib.get("node_guid") or "")))
        w(f"{d}/fw_ver", str(ib.get("fw_ver") or ""))
        w(f"{d}/board_id", str(ib.get("board_id") or ""))
        w(f"{d}/hca_type", str(ib.get("hca_type") or "MT4123"))
        p = f"{d}/ports/{int(ib.get('port') or 1)}"
        state = str(ib.get("state") or "ACTIVE")
        w(f"{p}/state", f"{_IB_STATES.get(state, 0)}: {state}")
        w(f"{p}/rate", str(ib.get("rate") or "200 Gb/sec (4X HDR)"))
        w(f"{p}/link_layer", str(ib.get("link_layer") or "InfiniBand"))
        w(f"{p}/gids/0", "fe80:0000:0000:0000:" + _sysfs_guid(str(ib.get("port_guid") or "")))

    if spec.get("bmc_firmware"):
        w("dev/ipmi0", "")
        outputs[tuple(IPMI_MC_INFO)] = (
            "Device ID                 : 32\nDevice Revision           : 1\n"
            f"Firmware Revision         : {spec['bmc_firmware']}\nIPMI Version              : 2.0\n"
            "Manufacturer ID           : 10876\n"
            "Manufacturer Name         : Super Micro Computer Inc.\n"
        )
    outputs[tuple(LSPCI)] = _lspci(spec)
    if spec.get("lldpctl", True):
        outputs[tuple(LLDPCTL)] = _lldp_json(nics)
    return recorded_runner(outputs)
