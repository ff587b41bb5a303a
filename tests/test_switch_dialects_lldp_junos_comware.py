"""LLDP neighbours read by the Junos and Comware dialects from output in the real formats
(tests/fixtures/switch/<dialect>/), and from what their lab switches print. Pure: no switch."""

from __future__ import annotations

import time
from pathlib import Path

from drivers.switch.base import LldpNeighbor
from drivers.switch.dialects.comware import ComwareDialect
from drivers.switch.dialects.junos import JunosDialect
from provisiond.lab.switch import LabNeighbor
from provisiond.lab.switches.comware import lldp_verbose
from provisiond.lab.switches.junos import lldp_json

FIXTURES = Path(__file__).parent / "fixtures" / "switch"
JUNOS = JunosDialect()
COMWARE = ComwareDialect()


def test_junos_reads_every_neighbour_of_the_detail_json() -> None:
    assert JUNOS.show_lldp_command() == ["show lldp neighbors detail | display json"]
    text = (FIXTURES / "junos" / "lldp_neighbors_detail_display_json.txt").read_text()
    assert JUNOS.parse_lldp(text) == [
        LldpNeighbor("ge-0/0/5", "52:54:00:00:05:01", "52:54:00:00:05:01", "r05n01", "enp1s0f0"),
        LldpNeighbor("ge-0/0/6", "52:54:00:00:06:01", "eno1", "r05n02", "eno1"),
        LldpNeighbor("xe-0/2/0", "00:1c:73:5c:30:67", "Ethernet49/1", "spine1",
                     "to leaf r05 xe-0/2/0"),
        # the management port's neighbour is heard too; its port id is a locally assigned number
        LldpNeighbor("me0", "2c:21:31:a5:17:c0", "549", "oob-sw1", "ge-0/0/47"),
    ]  # fmt: skip


# the brief style (``show lldp neighbors | display json``) on ELS: the interface is in
# lldp-local-port-id; an older, non-ELS detail entry names the logical unit and puts the SNMP
# index in lldp-local-port-id
JUNOS_BRIEF_AND_OLD = """\
{
    "lldp-neighbors-information" : [
    {
        "attributes" : {"junos:style" : "brief"},
        "lldp-neighbor-information" : [
        {
            "lldp-local-port-id" : [
            {
                "data" : "xe-0/0/48:1"
            }
            ],
            "lldp-local-parent-interface-name" : [
            {
                "data" : "ae1"
            }
            ],
            "lldp-remote-chassis-id-subtype" : [
            {
                "data" : "Mac address"
            }
            ],
            "lldp-remote-chassis-id" : [
            {
                "data" : "00:1C:73:8F:0A:ED"
            }
            ],
            "lldp-remote-port-id" : [
            {
                "data" : "Ethernet1"
            }
            ]
        },
        {
            "lldp-local-interface" : [
            {
                "data" : "xe-0/1/0.0"
            }
            ],
            "lldp-local-port-id" : [
            {
                "data" : "600"
            }
            ],
            "lldp-remote-chassis-id" : [
            {
                "data" : "00:1c:73:ee:c0:46"
            }
            ],
            "lldp-remote-port-id" : [
            {
                "data" : "Ethernet3/2/1"
            }
            ],
            "lldp-remote-system-name" : [
            {
                "data" : "core05.tpe01"
            }
            ],
            "lldp-remote-management-addr-oid" : [
            {
            }
            ]
        }
        ]
    }
    ]
}

{master:0}
"""


def test_junos_local_port_is_the_physical_interface_in_either_style() -> None:
    assert JUNOS.parse_lldp(JUNOS_BRIEF_AND_OLD) == [
        LldpNeighbor("xe-0/0/48:1", "00:1c:73:8f:0a:ed", "Ethernet1"),
        LldpNeighbor("xe-0/1/0", "00:1c:73:ee:c0:46", "Ethernet3/2/1", "core05.tpe01"),
    ]


def test_junos_without_neighbours_or_without_json() -> None:
    empty = '{\n    "lldp-neighbors-information" : [\n    {\n        "attributes" : ' \
        '{"junos:style" : "detail"}\n    }\n    ]\n}\n\n{master:0}\n'  # fmt: skip
    assert JUNOS.parse_lldp(empty) == []
    assert JUNOS.parse_lldp("\n{master:0}\n") == []
    assert JUNOS.parse_lldp("") == []


def test_comware_reads_every_neighbour_of_the_verbose_text() -> None:
    assert COMWARE.show_lldp_command() == ["display lldp neighbor-information verbose"]
    text = (FIXTURES / "comware" / "display_lldp_neighbor_information_verbose.txt").read_text()
    assert COMWARE.parse_lldp(text) == [
        LldpNeighbor("GigabitEthernet1/0/5", "52:54:00:00:05:01", "52:54:00:00:05:01", "r05n01",
                     "enp1s0f0"),
        LldpNeighbor("GigabitEthernet1/0/6", "52:54:00:00:06:01", "eno1", "r05n02", "eno1"),
        LldpNeighbor("Ten-GigabitEthernet1/0/49", "70:f9:6d:17:ad:59",
                     "Ten-GigabitEthernet1/0/25", "spine1", "to leaf r05 XGE1/0/49"),
    ]  # fmt: skip
    assert all(COMWARE.port_pattern.fullmatch(n.local_port) for n in COMWARE.parse_lldp(text))


def test_comware_two_neighbours_on_a_port_and_absent_tlvs() -> None:
    # a second neighbour under the same header, then a header repeated for a third; no
    # System name / Port description line: the neighbour did not send them
    text = """\
LLDP neighbor-information of port 3[GigabitEthernet1/0/3]:
LLDP agent nearest-bridge:
 LLDP neighbor index : 1
 Chassis type        : MAC address
 Chassis ID          : 5254-0000-0301
 Port ID type        : MAC address
 Port ID             : 5254-0000-0301
 Time to live        : 120

 LLDP neighbor index : 2
 Chassis type        : Locally assigned
 Chassis ID          : bmc-r03
 Port ID type        : Locally assigned
 Port ID             : 1
 Time to live        : 120
 System name         : r03-bmc

LLDP neighbor-information of port 3[GigabitEthernet1/0/3]:
LLDP agent nearest-customer:
 LLDP neighbor index : 1
 Chassis type        : MAC address
 Chassis ID          : 5254-0000-0302
 Port ID type        : Interface name
 Port ID             : eth1
 Time to live        : 120
 Port description    : a : b
"""
    assert COMWARE.parse_lldp(text) == [
        LldpNeighbor("GigabitEthernet1/0/3", "52:54:00:00:03:01", "52:54:00:00:03:01"),
        LldpNeighbor("GigabitEthernet1/0/3", "bmc-r03", "1", "r03-bmc"),
        LldpNeighbor("GigabitEthernet1/0/3", "52:54:00:00:03:02", "eth1", None, "a : b"),
    ]
    assert COMWARE.parse_lldp("") == []


NEIGHBOURS = [
    LabNeighbor("52:54:00:00:05:01", "52:54:00:00:05:01", "r05n01"),
    LabNeighbor("5254.0000.0701", "eth0", None, "eth0", port_id_subtype="ifname"),
    LabNeighbor("spine1-local", "Ethernet49/1", "spine1", "to leaf",
                chassis_id_subtype="local", port_id_subtype="local"),
]  # fmt: skip


def _expected(ports: list[str]) -> list[LldpNeighbor]:
    return [
        LldpNeighbor(ports[0], "52:54:00:00:05:01", "52:54:00:00:05:01", "r05n01"),
        LldpNeighbor(ports[1], "52:54:00:00:07:01", "eth0", None, "eth0"),
        LldpNeighbor(ports[2], "spine1-local", "Ethernet49/1", "spine1", "to leaf"),
    ]


def test_junos_reads_what_its_lab_prints() -> None:
    ports = ["ge-0/0/4", "ge-0/0/6", "xe-0/2/0"]
    found = [(n, port, nb) for n, (port, nb) in enumerate(zip(ports, NEIGHBOURS, strict=True))]
    for detail in (True, False):
        text = lldp_json(found, detail=detail, started=time.time() - 90) + "\n{master:0}\n"
        assert JUNOS.parse_lldp(text) == _expected(ports), detail


def test_comware_reads_what_its_lab_prints() -> None:
    ports = ["GigabitEthernet1/0/5", "GigabitEthernet1/0/7", "GigabitEthernet1/0/48"]
    heard = [(n, port, [nb]) for n, (port, nb) in enumerate(zip(ports, NEIGHBOURS, strict=True))]
    text = lldp_verbose(heard, started=time.time() - 90)
    assert "Chassis ID          : 5254-0000-0701" in text  # Comware's notation
    assert COMWARE.parse_lldp(text) == _expected(ports)
