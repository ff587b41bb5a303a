"""The Junos and Comware dialects on output in the format their lab switches print (and the real
switches do): what tests/test_switch_dialects_linuxish.py and test_switch_dialects_ios_like.py
do not cover yet. Pure: no switch."""

from __future__ import annotations

from drivers.switch.base import PortMode, PortState
from drivers.switch.dialects.comware import ComwareDialect
from drivers.switch.dialects.junos import JunosDialect

JUNOS = JunosDialect()
COMWARE = ComwareDialect()

# `show configuration interfaces ge-0/0/3 | display set` of a factory-default EX port, then
# `show configuration vlans | display set`
JUNOS_DEFAULT_PORT = """\
set interfaces ge-0/0/3 unit 0 family ethernet-switching storm-control default

set vlans default vlan-id 1
set vlans vlan150 vlan-id 150
"""


def test_junos_port_without_members_is_in_vlan_default() -> None:
    assert JUNOS.parse_ports(JUNOS_DEFAULT_PORT) == {
        "ge-0/0/3": PortState("ge-0/0/3", PortMode.ACCESS, vlan=1, shutdown=False)
    }
    # no VLAN named default in the output: the access VLAN is unknown, not guessed
    no_default = JUNOS_DEFAULT_PORT.replace("set vlans default vlan-id 1\n", "")
    assert JUNOS.parse_ports(no_default)["ge-0/0/3"].vlan is None


def test_junos_value_out_of_range_is_an_error() -> None:
    out = (
        "                                      ^\n"
        "Value 5000 is not within range (1..4094) at '5000'\n"
    )
    assert JUNOS.errors(out) == ["Value 5000 is not within range (1..4094) at '5000'"]
    assert JUNOS.errors("warning: statement not found\n") == []


def test_comware_vlan_and_link_type_refusals_are_errors() -> None:
    out = (
        "[lab-comware-GigabitEthernet1/0/5]port access vlan 3999\n"
        "VLAN 3999 does not exist.\n"
        "[lab-comware-GigabitEthernet1/0/5]port link-type hybrid\n"
        "Please set the link type of the port to access first.\n"
        "[lab-comware-GigabitEthernet1/0/5]display vlan 1\n"
        " VLAN ID: 1\n"
    )
    assert COMWARE.errors(out) == [
        "VLAN 3999 does not exist.",
        "Please set the link type of the port to access first.",
    ]
