"""The LLDP shows of the Junos and Comware lab switches, driven by netmiko's own
``juniper_junos`` and ``hp_comware`` drivers: the neighbours come from the ``--lldp`` file (re-read
when it changes), the per-interface and brief forms, and what the labs say about forms they do not
emulate. tests/test_switch_lab_dialects.py reads them through our transport and dialects."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from drivers.switch.base import Dialect
from drivers.switch.dialects.comware import ComwareDialect
from drivers.switch.dialects.junos import JunosDialect
from tests.support.labswitch import LabSwitch, lab_switch

HOST = {"chassis_id": "52:54:00:00:05:01", "port_id": "52:54:00:00:05:01", "system_name": "r05n01"}
UPLINK = {"chassis_id": "02:1c:73:aa:bb:cc", "port_id": "Ethernet49/1", "port_id_subtype": "ifname",
          "system_name": "spine1", "port_description": "to leaf"}  # fmt: skip


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LabSwitch]]:
    out: dict[str, LabSwitch] = {}
    with contextlib.ExitStack() as stack:
        for dialect in ("junos", "comware"):
            tmp = tmp_path_factory.mktemp(f"lldp-{dialect}")
            out[dialect] = stack.enter_context(
                lab_switch(dialect, tmp, "--lldp", str(tmp / "lldp.json"))
            )
        yield out


def write_lldp(lab: LabSwitch, ports: dict[str, Any], *, stamp: int) -> None:
    """Replace the lab's LLDP file (a new inode and mtime: the lab sees the change for sure)."""
    path = lab.log.parent / "lldp.json"
    tmp = path.with_name("lldp.json.tmp")
    tmp.write_text(json.dumps({"*": ports}))
    os.utime(tmp, ns=(stamp, stamp))
    os.replace(tmp, path)


@contextlib.contextmanager
def session(lab: LabSwitch) -> Iterator[Any]:
    conn = lab.connect()
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.disconnect()


def test_junos_lldp_shows(labs: dict[str, LabSwitch]) -> None:
    lab = labs["junos"]
    p5, p7 = lab.port_name(5), lab.port_name(7)
    write_lldp(lab, {p5: HOST, p7: UPLINK}, stamp=1_000_000_000_000_000_000)
    with session(lab) as conn:
        table = str(conn.send_command("show lldp neighbors")).splitlines()
        assert table[0].split() == ["Local", "Interface", "Parent", "Interface", "Chassis", "Id",
                                    "Port", "info", "System", "Name"]  # fmt: skip
        assert table[1].split() == [p5, "-", "52:54:00:00:05:01", "52:54:00:00:05:01", "r05n01"]
        # "Port info": the description when the neighbour sent one
        assert table[2].split() == [p7, "-", "02:1c:73:aa:bb:cc", "to", "leaf", "spine1"]
        one = str(conn.send_command(f"show lldp neighbors interface {p7} detail | display json"))
        assert json.loads(one)["lldp-neighbors-information"][0]["attributes"] == {
            "junos:style": "detail"
        }
        assert [n.local_port for n in JunosDialect().parse_lldp(one)] == [p7]
        assert "error: the lab emulates '| display json'" in str(
            conn.send_command("show configuration vlans | display json")
        )
        assert "only with '| display json'" in str(conn.send_command("show lldp neighbors detail"))
        # the file changes: the next show has the new neighbours
        write_lldp(lab, {p5: [HOST, UPLINK]}, stamp=2_000_000_000_000_000_000)
        got = JunosDialect().parse_lldp(
            str(conn.send_command("show lldp neighbors | display json"))
        )
        assert [(n.local_port, n.system_name) for n in got] == [(p5, "r05n01"), (p5, "spine1")]


def test_comware_lldp_shows(labs: dict[str, LabSwitch]) -> None:
    lab = labs["comware"]
    p5, p7 = lab.port_name(5), lab.port_name(7)
    write_lldp(lab, {p5: HOST, p7: UPLINK}, stamp=1_000_000_000_000_000_000)
    with session(lab) as conn:
        one = str(conn.send_command("display lldp neighbor-information interface GE1/0/7 verbose"))
        assert one.startswith(
            f"LLDP neighbor-information of port 7[{p7}]:\nLLDP agent nearest-bridge:"
        )
        assert " Chassis ID          : 021c-73aa-bbcc" in one
        assert " Port ID type        : Interface name" in one
        assert [n.port_id for n in ComwareDialect().parse_lldp(one)] == ["Ethernet49/1"]
        every = str(conn.send_command("display lldp neighbor-information verbose"))
        assert " Port ID             : 5254-0000-0501" in every
        assert "only with verbose" in str(conn.send_command("display lldp neighbor-information"))
        other_agent = "display lldp neighbor-information agent nearest-customer verbose"
        assert str(conn.send_command(other_agent)).strip() == ""
        write_lldp(lab, {}, stamp=2_000_000_000_000_000_000)
        assert str(conn.send_command("display lldp neighbor-information verbose")).strip() == ""


@pytest.mark.parametrize("dialect", ["junos", "comware"])
def test_bad_lldp_file_keeps_the_neighbours(labs: dict[str, LabSwitch], dialect: str) -> None:
    lab = labs[dialect]
    p5 = lab.port_name(5)
    write_lldp(lab, {p5: HOST}, stamp=3_000_000_000_000_000_000)
    reader: Dialect = JunosDialect() if dialect == "junos" else ComwareDialect()
    (command,) = reader.show_lldp_command()
    with session(lab) as conn:
        before = reader.parse_lldp(str(conn.send_command(command)))
        write_lldp(lab, {"no-such-port": HOST}, stamp=4_000_000_000_000_000_000)
        assert reader.parse_lldp(str(conn.send_command(command))) == before
    assert [n.local_port for n in before] == [p5]
    assert "LLDP neighbours unchanged" in lab.log.read_text()
