"""LLDP neighbour reading for Arista EOS, Cisco NX-OS and Dell OS10: the commands, parse_lldp on
recorded-format outputs (tests/fixtures/switch/<dialect>/), the lab's renderers read back by the
same parsers for every id subtype, and the EOS read through eAPI (napalm_eos transport, napalm's
own ``get_lldp_neighbors_detail``) against the lab. The SSH read through netmiko on every lab is
tests/test_switch_lab_dialects.py's ``test_lldp_neighbours_read_back``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.switch.base import LldpNeighbor, SwitchError, SwitchTarget
from drivers.switch.dialects.arista_eos import AristaEosDialect
from drivers.switch.dialects.cisco_nxos import CiscoNxosDialect
from drivers.switch.dialects.dell_os10 import DellOs10Dialect
from drivers.switch.napalm_driver import NapalmDriver
from provisiond.lab.eapi import _NoTerminal
from provisiond.lab.switch import FaultSource, LabNeighbor
from provisiond.lab.switch import LabSwitch as LabSwitchState
from provisiond.lab.switches import eos as lab_eos
from provisiond.lab.switches import nxos as lab_nxos
from provisiond.lab.switches import os10 as lab_os10
from tests.support.daemon import free_port
from tests.support.labswitch import LabSwitch, lab_switch

FIXTURES = Path(__file__).parent / "fixtures" / "switch"
EOS, NXOS, OS10 = AristaEosDialect(), CiscoNxosDialect(), DellOs10Dialect()


def fixture(dialect: str, name: str) -> str:
    return (FIXTURES / dialect / name).read_text()


def test_commands() -> None:
    assert EOS.show_lldp_command() == ["show lldp neighbors detail | json"]
    assert NXOS.show_lldp_command() == ["show lldp neighbors detail | json"]
    assert OS10.show_lldp_command() == ["show lldp neighbors detail"]


# --------------------------------------------------------------------------- EOS


def test_eos_parses_its_json_model() -> None:
    got = EOS.parse_lldp(fixture("arista_eos", "show_lldp_neighbors_detail_json.txt"))
    assert got == [
        # lldpd's default: MAC chassis id, MAC port id (dotted on EOS, colon form here)
        LldpNeighbor("Ethernet5", "52:54:00:00:05:01", "52:54:00:00:05:01", "r05n01", "eno1"),
        # an interface-name port id: interfaceId_v2, without EOS's quotes
        LldpNeighbor("Ethernet6", "52:54:00:00:06:01", "eno2", "r05n02", "eno2"),
        # two neighbours on one port; an empty systemName and no description are None
        LldpNeighbor("Ethernet7", "52:54:00:00:07:01", "52:54:00:00:07:02", "r05n03", "eno1np0"),
        LldpNeighbor("Ethernet7", "3c:ec:ef:00:07:03", "3c:ec:ef:00:07:03", None, None),
        # an older EOS: no interfaceId_v2, the quotes are stripped from interfaceId
        LldpNeighbor("Ethernet49/1", "00:1c:73:00:1a:2b", "Ethernet1/1", "spine1", "leaf1-uplink"),
        # a port outside the front panel keeps EOS's name
        LldpNeighbor("Management1", "00:05:86:71:4e:c0", "ge-0/0/12", "oob-sw1", "ge-0/0/12"),
    ]
    assert all(EOS.port_pattern.fullmatch(n.local_port) for n in got[:-1])


def test_eos_output_around_the_document() -> None:
    assert EOS.parse_lldp("") == []
    assert EOS.parse_lldp('{"lldpNeighbors": {}}') == []
    # a line the session left before the document is not the document
    info = {"lldpNeighborInfo": [{"chassisId": "5254.0000.0201"}]}
    doc = json.dumps({"lldpNeighbors": {"Ethernet2": info}})
    assert EOS.parse_lldp(f"Pagination disabled.\n{doc}\n") == [
        LldpNeighbor("Ethernet2", "52:54:00:00:02:01", None)
    ]
    with pytest.raises(SwitchError, match="JSON output could not be read"):
        EOS.parse_lldp("% Invalid input\n")


# --------------------------------------------------------------------------- NX-OS


def test_nxos_parses_its_json_model() -> None:
    got = NXOS.parse_lldp(fixture("cisco_nxos", "show_lldp_neighbors_detail_json.txt"))
    assert got == [
        LldpNeighbor("mgmt0", "00:05:86:71:4e:c0", "ge-0/0/12", "oob-sw1", "ge-0/0/12"),
        LldpNeighbor("Ethernet1/5", "52:54:00:00:05:01", "52:54:00:00:05:01", "r05n01", "eno1"),
        # "null": the TLV was not sent
        LldpNeighbor("Ethernet1/6", "52:54:00:00:06:01", "eno2", "r05n02", None),
        # a locally assigned chassis id is kept as sent
        LldpNeighbor("Ethernet1/21", "localhost.localdomain", "e0b", None, "d0:39:ea:b2:ab:dc"),
        LldpNeighbor("Ethernet1/49", "d4:c9:3c:c0:79:0a", "Ethernet1/35", "spine1", "leaf1-uplink"),
        # a FEX port, "Eth101/1/10"
        LldpNeighbor(
            "Ethernet101/1/10", "24:a9:37:00:00:01", "1a:51:48:00:00:01", "pure-storage", "eth0"
        ),
    ]
    assert all(NXOS.port_pattern.fullmatch(n.local_port) for n in got[1:])


def test_nxos_table_shapes() -> None:
    row = {"chassis_id": "5254.0000.0901", "port_id": "eth0", "l_port_id": "Eth1/9",
           "sys_name": "h9", "port_desc": "not advertised", "ttl": "120"}  # fmt: skip
    want = [LldpNeighbor("Ethernet1/9", "52:54:00:00:09:01", "eth0", "h9", None)]
    # one neighbour: the row is an object, not a list (older releases: numbers as strings)
    single = {"neigh_hdr": "neigh_hdr", "TABLE_nbor_detail": {"ROW_nbor_detail": row}}
    assert NXOS.parse_lldp(json.dumps(single)) == want
    # the table itself as a list of objects
    listed = {"TABLE_nbor_detail": [{"ROW_nbor_detail": [row]}]}
    assert NXOS.parse_lldp(json.dumps(listed)) == want
    # nothing heard: no output, or no table
    assert NXOS.parse_lldp("") == []
    assert NXOS.parse_lldp('{"neigh_hdr": "neigh_hdr", "neigh_count": 0}') == []
    # a row without its local port cannot be placed
    assert NXOS.parse_lldp(json.dumps({"TABLE_nbor_detail": {"ROW_nbor_detail": {}}})) == []


# --------------------------------------------------------------------------- OS10


def test_os10_parses_its_detail_text() -> None:
    got = OS10.parse_lldp(fixture("dell_os10", "show_lldp_neighbors_detail.txt"))
    assert got == [
        LldpNeighbor("ethernet1/1/5", "52:54:00:00:05:01", "52:54:00:00:05:01", "r05n01", "eno1"),
        # "Not Advertised": None
        LldpNeighbor("ethernet1/1/6", "52:54:00:00:06:01", "eno2", "r05n02", None),
        # a breakout port; the system description runs over several lines
        LldpNeighbor(
            "ethernet1/1/49:1", "90:b1:1c:f4:a6:00", "ethernet1/1/1", "spine1", "leaf1-uplink"
        ),
        LldpNeighbor("mgmt1/1/1", "00:05:86:71:4e:c0", "527", "oob-sw1", "ge-0/0/12"),
    ]
    assert all(OS10.port_pattern.fullmatch(n.local_port) for n in got[:-1])


def test_os10_blocks() -> None:
    assert OS10.parse_lldp("") == []
    # two neighbours without the dash line between them; a line inside a wrapped system
    # description that looks like a field does not override the block's own
    text = (
        "Remote Chassis ID Subtype: Mac address (4)\n"
        "Remote Chassis ID: 52:54:00:00:01:01\n"
        "Remote Port ID: 52:54:00:00:01:01\n"
        "Local Port ID: ethernet1/1/1\n"
        "Remote System Name: h1\n"
        "Remote System Desc: a long\n"
        "Remote System Name: wrapped description\n"
        "Remote Chassis ID Subtype: Mac address (4)\n"
        "Remote Chassis ID: 52:54:00:00:02:01\n"
        "Remote Port ID: eno1\n"
        "Local Port ID: ethernet1/1/2\n"
    )
    assert OS10.parse_lldp(text) == [
        LldpNeighbor("ethernet1/1/1", "52:54:00:00:01:01", "52:54:00:00:01:01", "h1"),
        LldpNeighbor("ethernet1/1/2", "52:54:00:00:02:01", "eno1"),
    ]
    # a block without its local port is skipped
    assert OS10.parse_lldp("Remote Chassis ID: 52:54:00:00:01:01\n" + "-" * 75 + "\n") == []


# --------------------------------------------------------------------------- the lab's renderers

NEIGHBORS = [
    LabNeighbor("52:54:00:00:05:01", "52:54:00:00:05:02", "r05n01"),
    LabNeighbor("02:1c:73:aa:bb:cc", "Ethernet49/1", "spine1", "to leaf", port_id_subtype="ifname"),
    LabNeighbor("bmc-7", "7", chassis_id_subtype="local", port_id_subtype="local", ttl=60),
]
WANT = [
    ("52:54:00:00:05:01", "52:54:00:00:05:02", "r05n01", None),
    ("02:1c:73:aa:bb:cc", "Ethernet49/1", "spine1", "to leaf"),
    ("bmc-7", "7", None, None),
]


@pytest.mark.parametrize("count", [0, 1, 3])
def test_lab_renders_what_the_dialects_read(count: int) -> None:
    """Each lab's output, every subtype, read back by its dialect: one neighbour per port, the
    NX-OS model's single-row and no-table shapes included."""
    heard = {f"P{i}": [n] for i, n in enumerate(NEIGHBORS[:count])}

    def want(names: list[str]) -> list[LldpNeighbor]:
        return [LldpNeighbor(names[i], *w) for i, w in enumerate(WANT[:count])]

    eos_ports = ["Ethernet1", "Ethernet2", "Ethernet3", "Ethernet4"]
    eos = {eos_ports[int(k[1:])]: v for k, v in heard.items()}
    model = lab_eos.lldp_model(eos_ports, eos, 0.0)
    assert EOS.parse_lldp(json.dumps(model, indent=4)) == want(eos_ports)
    assert lab_eos.lldp_text(eos_ports, eos).count("detected 0 LLDP neighbors") == 4 - count

    nx_ports = ["Ethernet1/1", "Ethernet1/2", "Ethernet1/3"]
    nx = {nx_ports[int(k[1:])]: v for k, v in heard.items()}
    assert NXOS.parse_lldp(json.dumps(lab_nxos.lldp_model(nx_ports, nx))) == want(nx_ports)
    assert f"Total entries displayed: {count}\n" in lab_nxos.lldp_text(nx_ports, nx)

    os10_ports = ["ethernet1/1/1", "ethernet1/1/2", "ethernet1/1/3"]
    os10 = {os10_ports[int(k[1:])]: v for k, v in heard.items()}
    assert OS10.parse_lldp(lab_os10.lldp_text(os10_ports, os10)) == want(os10_ports)


def test_lab_prints_macs_in_each_platforms_notation() -> None:
    heard = {"Ethernet1": NEIGHBORS[:1]}
    assert "    Chassis ID     : 5254.0000.0501\n" in lab_eos.lldp_text(["Ethernet1"], heard)
    assert "    Port ID     : 5254.0000.0502\n" in lab_eos.lldp_text(["Ethernet1"], heard)
    nx = lab_nxos.lldp_text(["Ethernet1/1"], {"Ethernet1/1": NEIGHBORS[:1]})
    assert "Chassis id: 5254.0000.0501\nPort id: 5254.0000.0502\nLocal Port id: Eth1/1\n" in nx
    os10 = lab_os10.lldp_text(["ethernet1/1/1"], {"ethernet1/1/1": NEIGHBORS[:1]})
    assert "Remote Chassis ID: 52:54:00:00:05:01\n" in os10
    # EOS quotes an interface-name port id, in the text and inside the JSON string
    model = lab_eos.lldp_model(["Ethernet1"], {"Ethernet1": NEIGHBORS[1:2]}, 0.0)
    info = model["lldpNeighbors"]["Ethernet1"]["lldpNeighborInfo"][0]["neighborInterfaceInfo"]
    assert (info["interfaceId"], info["interfaceId_v2"]) == ('"Ethernet49/1"', "Ethernet49/1")


def test_eos_lab_pipes() -> None:
    """``| json`` is modelled for the LLDP detail only; the lab says so for any other show."""
    switch = LabSwitchState(lab_eos.EosCli, port=1, ports=2, username="admin", password="admin",
                            faults=FaultSource(1, {}, None))  # fmt: skip
    cli = lab_eos.EosCli(switch, _NoTerminal(), "admin")
    model = json.loads(cli.run("sh lldp nei det | json"))
    assert model == {"lldpNeighbors": {"Ethernet1": {"lldpNeighborInfo": []},
                                       "Ethernet2": {"lldpNeighborInfo": []}}}  # fmt: skip
    assert cli.run("show lldp neighbors detail").startswith(
        "Interface Ethernet1 detected 0 LLDP neighbors:\n\nInterface Ethernet2 detected 0"
    )
    assert cli.run("show vlan | json").startswith("% Not supported by the provisiond lab")
    assert cli.run("show lldp neighbors detail | include x") == "% Invalid input\n"
    assert cli.run("show lldp neighbors detail |") == "% Incomplete command\n"


# --------------------------------------------------------------------------- EOS through eAPI

LLDP_FILE = {
    "*": {
        "Ethernet5": {"chassis_id": "52:54:00:00:05:01", "port_id": "52:54:00:00:05:01",
                      "system_name": "r05n01"},
        "Ethernet7": {"chassis_id": "02:1c:73:aa:bb:cc", "port_id": "Ethernet49/1",
                      "port_id_subtype": "ifname", "system_name": "spine1",
                      "port_description": "to leaf"},
    }
}  # fmt: skip


@pytest.fixture(scope="module")
def eapi_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabSwitch, int]]:
    tmp = tmp_path_factory.mktemp("lldp-eapi")
    (tmp / "lldp.json").write_text(json.dumps(LLDP_FILE))
    port = free_port()
    with lab_switch("arista_eos", tmp, "--eapi-port", str(port), "--lldp", str(tmp / "lldp.json"),
                    "--ports", "8") as sw:  # fmt: skip
        yield sw, port


def _napalm_target(sw: LabSwitch, port: int) -> SwitchTarget:
    return SwitchTarget("lab-eos", "napalm_eos", "127.0.0.1", port, sw.username, sw.password)


async def test_eos_lldp_through_eapi(eapi_lab: tuple[LabSwitch, int]) -> None:
    """The napalm transport sends the same ``| json`` line through eAPI's text format."""
    sw, port = eapi_lab
    drv = NapalmDriver({"eos_transport": "http", "timeout": 20})
    try:
        got = await drv.lldp_neighbors(_napalm_target(sw, port))
    finally:
        await drv.close()
    assert got == [
        LldpNeighbor("Ethernet5", "52:54:00:00:05:01", "52:54:00:00:05:01", "r05n01"),
        LldpNeighbor("Ethernet7", "02:1c:73:aa:bb:cc", "Ethernet49/1", "spine1", "to leaf"),
    ]


def test_eos_lldp_model_for_napalm(eapi_lab: tuple[LabSwitch, int]) -> None:
    """napalm's own eos driver reads the lab's JSON model (``format: json``) as it reads EOS."""
    from napalm import get_network_driver

    sw, port = eapi_lab
    device = get_network_driver("eos")(
        "127.0.0.1", sw.username, sw.password, timeout=20,
        optional_args={"transport": "http", "port": port},
    )  # fmt: skip
    device.open()
    try:
        detail = device.get_lldp_neighbors_detail()
    finally:
        device.close()
    assert sorted(detail) == ["Ethernet5", "Ethernet7"]
    assert detail["Ethernet5"][0]["remote_chassis_id"] == "52:54:00:00:05:01"
    assert detail["Ethernet5"][0]["remote_system_name"] == "r05n01"
    assert detail["Ethernet7"][0]["remote_port"] == "Ethernet49/1"
    assert detail["Ethernet7"][0]["remote_port_description"] == "to leaf"
