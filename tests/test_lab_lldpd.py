"""The lab's lldpd client (provisiond/lab/switches/lldpd.py) against lldpd's own expectations
(tests/integration/test_lldpcli.py upstream: the ``show neighbors details`` of a neighbour in
plain, json and json0), and the lab NVUE and SONiC switches answering the LLDP commands the
dialects send, and what their non-root logins get, through netmiko's ``linux`` driver."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from drivers.switch.base import LldpNeighbor
from drivers.switch.dialects.cumulus_nvue import CumulusNvueDialect
from drivers.switch.dialects.sonic import SonicDialect
from provisiond.lab.switch import LabNeighbor
from provisiond.lab.switches import lldpd
from tests.support.labswitch import LabSwitch, lab_switch

UNAME = "Linux 6.1.0 #1 SMP x86_64"


def _upstream_neighbour(w: lldpd.Writer, *, age: bool) -> str:
    """The tags display.c writes for lldpd's integration-test neighbour (ns-2), minus what the
    upstream test deletes before comparing (two capabilities; json: the age)."""
    w.start("lldp", "LLDP neighbors")
    w.start("interface", "Interface")
    w.attr("name", "", "eth0")
    w.attr("via", "via", "LLDP")
    w.attr("rid", "RID", "1")
    if age:
        w.attr("age", "Time", "0 day, 00:00:05")
    w.start("chassis", "Chassis")
    w.start("id", "ChassisID")
    w.attr("type", "", "mac")
    w.data("00:00:00:00:00:02")
    w.end()
    for tag, descr, value in (
        ("name", "SysName", "ns-2.example.com"),
        ("descr", "SysDescr", f"Spectacular GNU/Linux 2016 {UNAME}"),
        ("mgmt-ip", "MgmtIP", "fe80::200:ff:fe00:2"),
        ("mgmt-iface", "MgmtIface", "2"),
    ):
        w.start(tag, descr)
        w.data(value)
        w.end()
    for cap in ("Bridge", "Wlan"):
        w.start("capability", "Capability")
        w.attr("type", "", cap)
        w.attr("enabled", "", "off")
        w.end()
    w.end()
    w.start("port", "Port")
    w.start("id", "PortID")
    w.attr("type", "", "mac")
    w.data("00:00:00:00:00:02")
    w.end()
    for tag, descr, value in (("descr", "PortDescr", "eth1"), ("ttl", "TTL", "120")):
        w.start(tag, descr)
        w.data(value)
        w.end()
    w.end()
    w.end()
    w.end()
    return w.finish()


def test_json_as_lldpd() -> None:
    got = json.loads(_upstream_neighbour(lldpd.JsonWriter(1), age=False))
    assert got == {
        "lldp": {
            "interface": {
                "eth0": {
                    "via": "LLDP",
                    "rid": "1",
                    "chassis": {
                        "ns-2.example.com": {
                            "id": {"type": "mac", "value": "00:00:00:00:00:02"},
                            "descr": f"Spectacular GNU/Linux 2016 {UNAME}",
                            "mgmt-ip": "fe80::200:ff:fe00:2",
                            "mgmt-iface": "2",
                            "capability": [
                                {"type": "Bridge", "enabled": False},
                                {"type": "Wlan", "enabled": False},
                            ],
                        }
                    },
                    "port": {
                        "id": {"type": "mac", "value": "00:00:00:00:00:02"},
                        "descr": "eth1",
                        "ttl": "120",
                    },
                }
            }
        }
    }


def test_json0_as_lldpd() -> None:
    got = json.loads(_upstream_neighbour(lldpd.JsonWriter(0), age=False))
    assert got == {
        "lldp": [
            {
                "interface": [
                    {
                        "name": "eth0",
                        "via": "LLDP",
                        "rid": "1",
                        "chassis": [
                            {
                                "id": [{"type": "mac", "value": "00:00:00:00:00:02"}],
                                "name": [{"value": "ns-2.example.com"}],
                                "descr": [{"value": f"Spectacular GNU/Linux 2016 {UNAME}"}],
                                "mgmt-ip": [{"value": "fe80::200:ff:fe00:2"}],
                                "mgmt-iface": [{"value": "2"}],
                                "capability": [
                                    {"type": "Bridge", "enabled": False},
                                    {"type": "Wlan", "enabled": False},
                                ],
                            }
                        ],
                        "port": [
                            {
                                "id": [{"type": "mac", "value": "00:00:00:00:00:02"}],
                                "descr": [{"value": "eth1"}],
                                "ttl": [{"value": "120"}],
                            }
                        ],
                    }
                ]
            }
        ]
    }


def test_plain_as_lldpd() -> None:
    out = _upstream_neighbour(lldpd.TextWriter(), age=True)
    sep = "-" * 79
    assert re.sub(r" *$", "", out, flags=re.MULTILINE) == (
        f"{sep}\nLLDP neighbors:\n{sep}\n"
        "Interface:    eth0, via: LLDP, RID: 1, Time: 0 day, 00:00:05\n"
        "  Chassis:\n"
        "    ChassisID:    mac 00:00:00:00:00:02\n"
        "    SysName:      ns-2.example.com\n"
        f"    SysDescr:     Spectacular GNU/Linux 2016 {UNAME}\n"
        "    MgmtIP:       fe80::200:ff:fe00:2\n"
        "    MgmtIface:    2\n"
        "    Capability:   Bridge, off\n"
        "    Capability:   Wlan, off\n"
        "  Port:\n"
        "    PortID:       mac 00:00:00:00:00:02\n"
        "    PortDescr:    eth1\n"
        "    TTL:          120\n"
        f"{sep}\n"
    )


def test_json_layout() -> None:
    """json_writer.c's layout: two-space indents, an empty object with a blank line inside, a
    blank line after the document."""
    r = lldpd.run("lldpctl", ["-f", "json"], {}, ["swp1"], privileged=True, seconds=0)
    assert r.stdout == '{\n  "lldp": {\n    \n  }\n}\n\n'
    r = lldpd.run("lldpctl", ["-f", "json0"], {}, ["swp1"], privileged=True, seconds=0)
    assert r.stdout == '{\n  "lldp": [\n    {\n      \n    }\n  ]\n}\n\n'


def test_ages_and_ids() -> None:
    assert lldpd.age(65) == "0 day, 00:01:05"
    assert lldpd.age(86400 + 3661) == "1 day, 01:01:01"
    assert lldpd.age(3 * 86400) == "3 days, 00:00:00"
    n = LabNeighbor("5254.0000.0501", "52-54-00-00-05-02", "r05n01")
    out = lldpd.run("lldpctl", ["-f", "json"], {"swp5": [n]}, ["swp5"], privileged=True, seconds=9)
    port = json.loads(out.stdout)["lldp"]["interface"]["swp5"]
    assert port["chassis"]["r05n01"]["id"] == {"type": "mac", "value": "52:54:00:00:05:01"}
    assert port["port"]["id"] == {"type": "mac", "value": "52:54:00:00:05:02"}
    assert port["age"] == "0 day, 00:00:09"


def test_options_and_refusals() -> None:
    nb = {"swp5": [LabNeighbor("52:54:00:00:05:01", "52:54:00:00:05:01")]}
    ports = ["swp5", "swp6"]
    denied = lldpd.run("lldpctl", [], nb, ports, privileged=False, seconds=0)
    assert denied.status == 1 and denied.stdout == ""
    assert "[WARN/control] unable to connect to socket /run/lldpd.socket: Permission denied" in (
        denied.stderr
    )
    assert "\x1b[1;33m" in lldpd.run("lldpctl", [], nb, ports, privileged=False, seconds=0,
                                     tty=True).stderr  # fmt: skip
    # options after the interfaces (GNU getopt), a comma list of interfaces
    r = lldpd.run("lldpctl", ["swp6,swp5", "-f", "json0"], nb, ports, privileged=True, seconds=0)
    assert r.status == 0 and json.loads(r.stdout)["lldp"][0]["interface"][0]["name"] == "swp5"
    r = lldpd.run("lldpctl", ["swp6", "-fjson0"], nb, ports, privileged=True, seconds=0)
    assert "interface" not in json.loads(r.stdout)["lldp"][0]
    r = lldpd.run("lldpctl", ["-x"], nb, ports, privileged=True, seconds=0)
    assert r.status == 1 and r.stderr.startswith("lldpctl: invalid option -- 'x'\nUsage:")
    r = lldpd.run("lldpcli", ["-f", "json", "show", "neigh", "summary"], nb, ports,
                  privileged=True, seconds=0)  # fmt: skip
    iface = json.loads(r.stdout)["lldp"]["interface"]["swp5"]
    assert "rid" not in iface and "ttl" not in iface["port"]  # summary: no RID, age, TTL
    r = lldpd.run("lldpcli", ["show", "bogus"], nb, ports, privileged=True, seconds=0)
    assert r.status == 1 and "unknown command from argument 2: `bogus`" in r.stderr


def test_lldpshow_table() -> None:
    nb = {
        "Ethernet8": [LabNeighbor("52:54:00:00:08:01", "Ethernet1/5", "leaf9", "uplink",
                                  port_id_subtype="ifname")],
        "Ethernet0": [LabNeighbor("52:54:00:00:00:01", "52:54:00:00:00:02")],
    }  # fmt: skip
    out = lldpd.lldpshow_table(lldpd.heard(nb, ["Ethernet0", "Ethernet4", "Ethernet8"]))
    assert out.splitlines() == [
        "Capability codes: (R) Router, (B) Bridge, (O) Other",
        "LocalPort    RemoteDevice    RemotePortID       Capability    RemotePortDescr",
        "-----------  --------------  -----------------  ------------  -----------------",
        "Ethernet0                    52:54:00:00:00:02",
        "Ethernet8    leaf9           Ethernet1/5                      uplink",
        "--------------------------------------------------",
        "Total entries displayed:  2",
    ]


# --------------------------------------------------------------------------- the lab switches

NEIGHBOURS = {
    1: {"chassis_id": "52:54:00:00:05:01", "port_id": "52:54:00:00:05:01", "system_name": "r05n01"},
    3: [
        {"chassis_id": "5254.0000.0601", "port_id": "eno1", "port_id_subtype": "ifname",
         "system_name": "r06n01", "port_description": "eno1"},
        {"chassis_id": "bmc-r06n01", "chassis_id_subtype": "local", "port_id": "1",
         "port_id_subtype": "local"},
    ],
}  # fmt: skip


def _lldp_file(lab_dir: Path, ports: list[str]) -> Path:
    path = lab_dir / "lldp.json"
    path.write_text(json.dumps({"*": {ports[n - 1]: v for n, v in NEIGHBOURS.items()}}))
    return path


def _expected(ports: list[str]) -> list[LldpNeighbor]:
    return [
        LldpNeighbor(ports[0], "52:54:00:00:05:01", "52:54:00:00:05:01", "r05n01"),
        LldpNeighbor(ports[2], "52:54:00:00:06:01", "eno1", "r06n01", "eno1"),
        LldpNeighbor(ports[2], "bmc-r06n01", "1"),
    ]


@contextlib.contextmanager
def _session(dialect: str, tmp: Path) -> Iterator[tuple[Any, list[str]]]:
    from provisiond.lab.switch import cli_class

    ports = cli_class(dialect).port_names(4)
    with lab_switch(dialect, tmp, "--lldp", str(_lldp_file(tmp, ports))) as sw:
        conn = LabSwitch.connect(sw)
        try:
            yield conn, ports
        finally:
            with contextlib.suppress(Exception):
                conn.disconnect()


def _run(conn: Any, command: str) -> str:
    return str(conn.send_command(command, expect_string=re.escape(conn.base_prompt)))


def test_lab_nvue(tmp_path: Path) -> None:
    nvue = CumulusNvueDialect()
    with _session("cumulus_nvue", tmp_path) as (conn, ports):
        (read,) = nvue.show_lldp_command()
        out = _run(conn, read)
        assert nvue.errors(out) == [], out
        assert nvue.parse_lldp(out) == _expected(ports)
        assert nvue.parse_lldp(_run(conn, "sudo lldpctl -f json")) == _expected(ports)
        # the login itself cannot reach lldpd; other commands need the password
        denied = _run(conn, "lldpctl -f json0")
        assert "unable to connect to socket /run/lldpd.socket: Permission denied" in denied
        assert nvue.errors(denied), denied
        assert _run(conn, "sudo -n whoami").strip() == "sudo: a password is required"
        text = _run(conn, "sudo lldpcli show neighbors ports swp3")
        assert "Interface:    swp3, via: LLDP, RID: 2" in text and "swp1" not in text


def test_lab_sonic(tmp_path: Path) -> None:
    sonic = SonicDialect()
    with _session("sonic", tmp_path) as (conn, ports):
        (read,) = sonic.show_lldp_command()
        out = _run(conn, read)
        assert sonic.errors(out) == [], out
        assert sonic.parse_lldp(out) == _expected(ports)
        cleaned = _run(conn, "sudo lldpctl -f json")
        assert isinstance(json.loads(cleaned)["lldp"]["interface"], list)
        assert sonic.parse_lldp(cleaned) == _expected(ports)
        # without sudo: docker's socket, which the provisioning login may not use
        for denied in ("lldpctl -f json0", "docker exec -i lldp lldpcli show neighbors"):
            out = _run(conn, denied)
            assert sonic.errors(out) and "permission denied" in out, out
        assert _run(conn, "sudo -n docker exec lldp lldpctl").strip() == (
            "sudo: a password is required"
        )
        table = _run(conn, "show lldp table")
        assert f"{ports[0]}    r05n01" in table and "Total entries displayed:  3" in table
        text = _run(conn, f"show lldp neighbors {ports[2]}")
        assert f"Interface:    {ports[2]}, via: LLDP" in text and "SysName:      r06n01" in text
        assert ports[0] not in text
