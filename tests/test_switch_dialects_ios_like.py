"""The IOS-like switch dialects (Arista EOS, Cisco NX-OS, Dell OS10, HPE Comware): rendered
commands (golden lists), parsing of recorded-style outputs, error detection, port grammar, and
check() refusing injection through each dialect."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.switch.base import (
    ChangeSet,
    Dialect,
    Policy,
    PortChange,
    PortMode,
    PortState,
    VlanChange,
    VlanState,
    check,
)
from drivers.switch.dialects.arista_eos import AristaEosDialect
from drivers.switch.dialects.cisco_nxos import CiscoNxosDialect
from drivers.switch.dialects.comware import ComwareDialect
from drivers.switch.dialects.dell_os10 import DellOs10Dialect
from provisiond.errors import ValidationError

FIXTURES = Path(__file__).parent / "fixtures" / "switch"
ALL = tuple(range(1, 4095))

EOS = AristaEosDialect()
NXOS = CiscoNxosDialect()
OS10 = DellOs10Dialect()
COMWARE = ComwareDialect()
DIALECTS: list[Dialect] = [EOS, NXOS, OS10, COMWARE]
PORT = {"arista_eos": "Ethernet7", "cisco_nxos": "Ethernet1/7", "dell_os10": "ethernet1/1/7"}
PORT["comware"] = "GigabitEthernet1/0/7"


def fixture(dialect: str, name: str) -> str:
    return (FIXTURES / dialect / name).read_text()


def access(port: str, vlan: int) -> ChangeSet:
    return ChangeSet(ports=(PortChange(port, mode=PortMode.ACCESS, vlan=vlan),))


def trunk(port: str) -> ChangeSet:
    return ChangeSet(
        ports=(
            PortChange(port, mode=PortMode.TRUNK, native_vlan=10, allowed_vlans=(20, 21, 22, 30)),
        )
    )


VLANS = ChangeSet(
    vlans=(VlanChange(200, name="tenant-a"), VlanChange(300), VlanChange(150, delete=True))
)


def misc(port: str) -> ChangeSet:
    return ChangeSet(
        ports=(PortChange(port, shutdown=True, mtu=9000, description="node-017 eth0"),)
    )


# --------------------------------------------------------------------------- identity


@pytest.mark.parametrize(
    ("dialect", "name", "netmiko"),
    [
        (EOS, "arista_eos", "arista_eos"),
        (NXOS, "cisco_nxos", "cisco_nxos"),
        (OS10, "dell_os10", "dell_os10"),
        (COMWARE, "comware", "hp_comware"),
    ],
)
def test_identity(dialect: Dialect, name: str, netmiko: str) -> None:
    assert dialect.name == name
    assert dialect.netmiko_device_type == netmiko


def test_save_commands() -> None:
    assert EOS.save_commands() == ["copy running-config startup-config"]
    assert NXOS.save_commands() == ["copy running-config startup-config"]
    assert OS10.save_commands() == ["write memory"]
    assert COMWARE.save_commands() == ["save force"]


def test_empty_batch_renders_nothing() -> None:
    for d in DIALECTS:
        assert d.render(ChangeSet()) == []
        assert d.render(ChangeSet(ports=(PortChange(PORT[d.name]),))) == []


# --------------------------------------------------------------------------- Arista EOS


def test_eos_access_move() -> None:
    assert EOS.render(access("Ethernet7", 200)) == [
        "interface Ethernet7",
        "switchport mode access",
        "switchport access vlan 200",
        "no switchport trunk allowed vlan",
        "no switchport trunk native vlan",
        "exit",
    ]


def test_eos_restore_to_quarantine() -> None:
    assert EOS.render(access("Ethernet49/1", 100)) == [
        "interface Ethernet49/1",
        "switchport mode access",
        "switchport access vlan 100",
        "no switchport trunk allowed vlan",
        "no switchport trunk native vlan",
        "exit",
    ]


def test_eos_trunk_replaces_allowed_and_includes_native() -> None:
    assert EOS.render(trunk("Ethernet7")) == [
        "interface Ethernet7",
        "switchport mode trunk",
        "switchport trunk native vlan 10",
        "switchport trunk allowed vlan 10,20-22,30",
        "exit",
    ]
    native_only = ChangeSet(ports=(PortChange("Ethernet7", mode=PortMode.TRUNK, native_vlan=5),))
    assert "switchport trunk allowed vlan 5" in EOS.render(native_only)


def test_native_alone_without_mode_keeps_allowed_list() -> None:
    eos = ChangeSet(ports=(PortChange("Ethernet7", native_vlan=5),))
    assert EOS.render(eos) == ["interface Ethernet7", "switchport trunk native vlan 5", "exit"]
    cw = ChangeSet(ports=(PortChange("GigabitEthernet1/0/7", native_vlan=5),))
    assert COMWARE.render(cw) == [
        "interface GigabitEthernet1/0/7",
        "port trunk pvid vlan 5",
        "quit",
    ]


def test_eos_vlans() -> None:
    assert EOS.render(VLANS) == [
        "vlan 200",
        "name tenant-a",
        "exit",
        "vlan 300",
        "exit",
        "no vlan 150",
    ]


def test_eos_shutdown_mtu_description() -> None:
    assert EOS.render(misc("Ethernet7")) == [
        "interface Ethernet7",
        "shutdown",
        "mtu 9000",
        "description node-017 eth0",
        "exit",
    ]
    up = ChangeSet(ports=(PortChange("Ethernet7", shutdown=False, description=""),))
    assert EOS.render(up) == ["interface Ethernet7", "no shutdown", "no description", "exit"]


def test_eos_vlans_before_ports() -> None:
    batch = ChangeSet(vlans=(VlanChange(200),), ports=access("Ethernet7", 200).ports)
    assert EOS.render(batch)[:2] == ["vlan 200", "exit"]


def test_eos_show_commands() -> None:
    assert EOS.show_ports_command(["Ethernet1", "Ethernet49/1"]) == [
        "show running-config interfaces Ethernet1",
        "show running-config interfaces Ethernet49/1",
    ]
    assert EOS.show_vlans_command() == "show vlan"


def test_eos_parse_ports() -> None:
    ports = EOS.parse_ports(fixture("arista_eos", "show_running_config_interfaces.txt"))
    assert ports["Ethernet1"] == PortState(
        "Ethernet1", PortMode.ACCESS, vlan=100, shutdown=False, description="node-017 eth0"
    )
    assert ports["Ethernet2"] == PortState(
        "Ethernet2",
        PortMode.TRUNK,
        native_vlan=10,
        allowed_vlans=(10, 20, 21, 22),
        shutdown=False,
        mtu=9214,
        description="node-018 bond0",
    )
    # nothing configured but shutdown: defaults are access, VLAN 1
    assert ports["Ethernet3"] == PortState("Ethernet3", PortMode.ACCESS, vlan=1, shutdown=True)
    # trunk with no allowed line: EOS default, all VLANs
    assert ports["Ethernet49/1"].mode is PortMode.TRUNK
    assert ports["Ethernet49/1"].native_vlan == 1
    assert ports["Ethernet49/1"].allowed_vlans == ALL
    assert ports["Ethernet50/1"] == PortState(
        "Ethernet50/1", None, shutdown=False, mtu=9214, description="uplink-spine1"
    )


def test_eos_parse_vlans() -> None:
    vlans = EOS.parse_vlans(fixture("arista_eos", "show_vlan.txt"))
    assert vlans == {
        1: VlanState(1, "default"),
        10: VlanState(10, "prov-native"),
        100: VlanState(100, "quarantine"),
        200: VlanState(200, "VLAN0200"),
        4094: VlanState(4094, "mlag-peer"),
    }


def test_eos_errors() -> None:
    output = (
        "sw1(config)#interface Ethernet7\n"
        "sw1(config-if-Et7)#switchport acess vlan 200\n"
        "% Invalid input (at token 1: 'acess')\n"
        "sw1(config-if-Et7)#switchport access\n"
        "% Incomplete command\n"
        "sw1(config-if-Et7)#sh\n"
        "% Ambiguous command\n"
        "! Access VLAN does not exist. Creating vlan 200\n"
        "sw1(config-if-Et7)#description 100% done\n"
    )
    assert EOS.errors(output) == [
        "% Invalid input (at token 1: 'acess')",
        "% Incomplete command",
        "% Ambiguous command",
    ]
    assert EOS.errors("sw1(config-if-Et7)#switchport access vlan 200\n") == []


# --------------------------------------------------------------------------- Cisco NX-OS


def test_nxos_access_move() -> None:
    assert NXOS.render(access("Ethernet1/7", 200)) == [
        "interface Ethernet1/7",
        "switchport",
        "switchport mode access",
        "switchport access vlan 200",
        "no switchport trunk allowed vlan",
        "no switchport trunk native vlan",
        "exit",
    ]


def test_nxos_restore_to_quarantine() -> None:
    assert NXOS.render(access("Ethernet1/3/1", 100))[3] == "switchport access vlan 100"


def test_nxos_trunk() -> None:
    assert NXOS.render(trunk("Ethernet1/7")) == [
        "interface Ethernet1/7",
        "switchport",
        "switchport mode trunk",
        "switchport trunk native vlan 10",
        "switchport trunk allowed vlan 10,20-22,30",
        "exit",
    ]


def test_nxos_vlans_and_misc() -> None:
    assert NXOS.render(VLANS) == EOS.render(VLANS)
    assert NXOS.render(misc("Ethernet1/7")) == [
        "interface Ethernet1/7",
        "shutdown",
        "mtu 9000",
        "description node-017 eth0",
        "exit",
    ]


def test_nxos_show_commands() -> None:
    assert NXOS.show_ports_command(["Ethernet1/1"]) == ["show running-config interface Ethernet1/1"]
    assert NXOS.show_vlans_command() == "show vlan brief"


def test_nxos_parse_ports() -> None:
    ports = NXOS.parse_ports(fixture("cisco_nxos", "show_running_config_interface.txt"))
    assert set(ports) == {"Ethernet1/1", "Ethernet1/2", "Ethernet1/3/1", "Ethernet1/49"}
    assert ports["Ethernet1/1"] == PortState(
        "Ethernet1/1", PortMode.ACCESS, vlan=100, shutdown=False, description="node-017 eth0"
    )
    p2 = ports["Ethernet1/2"]
    assert p2.mode is PortMode.TRUNK
    assert p2.native_vlan == 10
    # the "allowed vlan add" continuation line is accumulated
    assert p2.allowed_vlans == (10, 20, 21, 22, *range(100, 126, 2))
    assert (p2.mtu, p2.shutdown, p2.description) == (9216, False, "node-018 bond0")
    assert ports["Ethernet1/3/1"] == PortState(
        "Ethernet1/3/1", PortMode.TRUNK, native_vlan=1, allowed_vlans=(), shutdown=True
    )
    assert ports["Ethernet1/49"] == PortState(
        "Ethernet1/49", None, shutdown=False, mtu=9216, description="uplink-spine1"
    )


def test_nxos_absent_shutdown_is_unknown() -> None:
    ports = NXOS.parse_ports("interface Ethernet1/9\n  switchport\n")
    assert ports["Ethernet1/9"] == PortState("Ethernet1/9", PortMode.ACCESS, vlan=1)


def test_nxos_parse_vlans() -> None:
    vlans = NXOS.parse_vlans(fixture("cisco_nxos", "show_vlan_brief.txt"))
    assert vlans == {
        1: VlanState(1, "default"),
        10: VlanState(10, "prov-native"),
        100: VlanState(100, "quarantine"),
        200: VlanState(200, "VLAN0200"),
    }


def test_nxos_errors() -> None:
    output = (
        "switch(config-if)# switchport acces vlan 5\n"
        "                              ^\n"
        "% Invalid command at '^' marker.\n"
        "switch(config-if)# switchport access\n"
        "% Incomplete command at '^' marker.\n"
        "switch(config-if)# mtu 9000\n"
        "ERROR: Ethernet1/7: MTU on L2 interfaces can only be set to default or system jumbo MTU\n"
        "switch(config)# vlan 5000\n"
        "% Invalid number, range is (1-3967)\n"
        "Warning: Enable double-wide arp-ether tcam carving if igmp snooping is enabled.\n"
    )
    assert NXOS.errors(output) == [
        "% Invalid command at '^' marker.",
        "% Incomplete command at '^' marker.",
        "ERROR: Ethernet1/7: MTU on L2 interfaces can only be set to default or system jumbo MTU",
        "% Invalid number, range is (1-3967)",
    ]


# --------------------------------------------------------------------------- Dell OS10


def test_os10_access_move() -> None:
    assert OS10.render(access("ethernet1/1/7", 200)) == [
        "interface ethernet1/1/7",
        "switchport mode access",
        "switchport access vlan 200",
        "exit",
    ]


def test_os10_restore_to_quarantine() -> None:
    assert OS10.render(access("ethernet1/1/49:1", 100)) == [
        "interface ethernet1/1/49:1",
        "switchport mode access",
        "switchport access vlan 100",
        "exit",
    ]


def test_os10_trunk_native_is_access_vlan() -> None:
    assert OS10.render(trunk("ethernet1/1/7")) == [
        "interface ethernet1/1/7",
        "switchport mode trunk",
        "switchport access vlan 10",
        "switchport trunk allowed vlan 20-22,30",
        "exit",
    ]


def test_os10_vlans_and_misc() -> None:
    assert OS10.render(VLANS) == [
        "interface vlan 200",
        "description tenant-a",
        "exit",
        "interface vlan 300",
        "exit",
        "no interface vlan 150",
    ]
    assert OS10.render(misc("ethernet1/1/7")) == [
        "interface ethernet1/1/7",
        "shutdown",
        "mtu 9000",
        'description "node-017 eth0"',  # OS10 keeps blanks only inside quotes
        "exit",
    ]


def test_os10_show_commands() -> None:
    assert OS10.show_ports_command(["ethernet1/1/1", "ethernet1/1/49:1"]) == [
        "show running-configuration interface ethernet 1/1/1",
        "show running-configuration interface ethernet 1/1/49:1",
    ]
    assert OS10.show_vlans_command() == "show vlan"


def test_os10_parse_ports() -> None:
    ports = OS10.parse_ports(fixture("dell_os10", "show_running_configuration_interface.txt"))
    assert ports["ethernet1/1/1"] == PortState(
        "ethernet1/1/1", PortMode.ACCESS, vlan=100, shutdown=False, description="node-017-eth0"
    )
    assert ports["ethernet1/1/2"] == PortState(
        "ethernet1/1/2",
        PortMode.TRUNK,
        native_vlan=10,
        allowed_vlans=(10, 20, 21, 22),
        shutdown=False,
        mtu=9216,
        description="node-018 bond0",
    )
    assert ports["ethernet1/1/3"] == PortState(
        "ethernet1/1/3", PortMode.ACCESS, vlan=1, shutdown=True
    )
    assert ports["ethernet1/1/49:1"] == PortState("ethernet1/1/49:1", None, shutdown=False)


def test_os10_parse_vlans() -> None:
    vlans = OS10.parse_vlans(fixture("dell_os10", "show_vlan.txt"))
    assert vlans == {
        1: VlanState(1, None),
        10: VlanState(10, "prov-native"),
        20: VlanState(20, "tenant-20"),
        100: VlanState(100, "quarantine"),
        200: VlanState(200, None),
    }


def test_os10_errors() -> None:
    output = (
        "OS10(config)# interface ethernet1/1/7\n"
        "OS10(conf-if-eth1/1/7)# switchport access vlan 4095\n"
        "% Error: Illegal parameter.\n"
        "OS10(conf-if-eth1/1/7)# mtu 100\n"
        "% Error: Value out of range.\n"
        "% Warning: this port is part of a port-group\n"
    )
    assert OS10.errors(output) == ["% Error: Illegal parameter.", "% Error: Value out of range."]


# --------------------------------------------------------------------------- HPE Comware


def test_comware_access_move() -> None:
    assert COMWARE.render(access("GigabitEthernet1/0/7", 200)) == [
        "interface GigabitEthernet1/0/7",
        "port link-type access",
        "port access vlan 200",
        "quit",
    ]


def test_comware_restore_to_quarantine() -> None:
    assert COMWARE.render(access("Ten-GigabitEthernet1/0/49", 100)) == [
        "interface Ten-GigabitEthernet1/0/49",
        "port link-type access",
        "port access vlan 100",
        "quit",
    ]


def test_comware_trunk_replaces_permit_list() -> None:
    assert COMWARE.render(trunk("GigabitEthernet1/0/7")) == [
        "interface GigabitEthernet1/0/7",
        "port link-type trunk",
        "undo port trunk permit vlan all",
        "port trunk permit vlan 10 20 to 22 30",
        "port trunk pvid vlan 10",
        "quit",
    ]


def test_comware_permit_list_split_at_ten_items() -> None:
    vlans = tuple(range(100, 124, 2))  # 12 separate items
    batch = ChangeSet(
        ports=(PortChange("GigabitEthernet1/0/7", mode=PortMode.TRUNK, allowed_vlans=vlans),)
    )
    permits = [c for c in COMWARE.render(batch) if c.startswith("port trunk permit")]
    assert permits == [
        "port trunk permit vlan 100 102 104 106 108 110 112 114 116 118",
        "port trunk permit vlan 120 122",
    ]


def test_comware_vlans_and_misc() -> None:
    assert COMWARE.render(VLANS) == [
        "vlan 200",
        "name tenant-a",
        "quit",
        "vlan 300",
        "quit",
        "undo vlan 150",
    ]
    assert COMWARE.render(misc("FortyGigE1/0/53")) == [
        "interface FortyGigE1/0/53",
        "shutdown",
        "jumboframe enable 9000",
        "description node-017 eth0",
        "quit",
    ]
    up = ChangeSet(ports=(PortChange("FortyGigE1/0/53", shutdown=False, description=""),))
    assert COMWARE.render(up) == [
        "interface FortyGigE1/0/53",
        "undo shutdown",
        "undo description",
        "quit",
    ]


def test_comware_show_commands() -> None:
    assert COMWARE.show_ports_command(["Ten-GigabitEthernet1/0/49", "GigabitEthernet1/0/1"]) == [
        "display current-configuration interface Ten-GigabitEthernet 1/0/49",
        "display current-configuration interface GigabitEthernet 1/0/1",
    ]
    assert COMWARE.show_vlans_command() == "display vlan all"


def test_comware_parse_ports() -> None:
    ports = COMWARE.parse_ports(fixture("comware", "display_current_configuration_interface.txt"))
    assert ports["GigabitEthernet1/0/1"] == PortState(
        "GigabitEthernet1/0/1",
        PortMode.ACCESS,
        vlan=100,
        shutdown=False,
        description="node-017 eth0",
    )
    assert ports["Ten-GigabitEthernet1/0/49"] == PortState(
        "Ten-GigabitEthernet1/0/49",
        PortMode.TRUNK,
        native_vlan=10,
        allowed_vlans=(10, 20, 21, 22),  # VLAN 1 was undone
        shutdown=False,
        mtu=9216,
        description="node-018 bond0",
    )
    assert ports["GigabitEthernet1/0/3"] == PortState(
        "GigabitEthernet1/0/3", PortMode.ACCESS, vlan=1, shutdown=True
    )
    assert ports["FortyGigE1/0/53"] == PortState(
        "FortyGigE1/0/53", None, shutdown=False, description="uplink-spine1"
    )


def test_comware_trunk_default_permits_vlan1() -> None:
    out = "interface GigabitEthernet1/0/9\n port link-type trunk\n#\n"
    assert COMWARE.parse_ports(out)["GigabitEthernet1/0/9"].allowed_vlans == (1,)
    out = "interface GigabitEthernet1/0/9\n port link-type trunk\n port trunk permit vlan all\n"
    assert COMWARE.parse_ports(out)["GigabitEthernet1/0/9"].allowed_vlans == ALL


def test_comware_parse_vlans() -> None:
    vlans = COMWARE.parse_vlans(fixture("comware", "display_vlan_all.txt"))
    assert vlans == {
        1: VlanState(1, "VLAN 0001"),
        10: VlanState(10, "prov-native"),
        100: VlanState(100, "quarantine"),
    }


def test_comware_errors() -> None:
    output = (
        "[sw1-GigabitEthernet1/0/7]port acces vlan 200\n"
        "                               ^\n"
        " % Unrecognized command found at '^' position.\n"
        "[sw1-GigabitEthernet1/0/7]port access vlan 9999\n"
        " % Wrong parameter found at '^' position.\n"
        "[sw1-GigabitEthernet1/0/7]port access\n"
        " % Incomplete command found at '^' position.\n"
        "[sw1-GigabitEthernet1/0/7]description 50% done\n"
    )
    assert COMWARE.errors(output) == [
        "% Unrecognized command found at '^' position.",
        "% Wrong parameter found at '^' position.",
        "% Incomplete command found at '^' position.",
    ]


# --------------------------------------------------------------------------- port grammar

GOOD = {
    "arista_eos": ["Ethernet1", "Ethernet48", "Ethernet1/1", "Ethernet49/1", "Ethernet3/1/1"],
    "cisco_nxos": ["Ethernet1/1", "Ethernet1/48", "Ethernet1/1/1", "Ethernet101/1/1"],
    "dell_os10": ["ethernet1/1/1", "ethernet1/1/32", "ethernet1/1/49:1", "ethernet2/1/54:4"],
    "comware": [
        "GigabitEthernet1/0/1",
        "Ten-GigabitEthernet1/0/49",
        "FortyGigE1/0/53",
        "HundredGigE1/0/25:1",
        "Twenty-FiveGigE1/0/1",
        "GigabitEthernet1/2/0/1",
    ],
}
BAD_COMMON = [
    "",
    "Ethernet1; reload",
    "Ethernet1\nreload",
    "Ethernet1 ",
    " Ethernet1",
    "Ethernet1\r",
    "Ethernet1\n",
    "Ethernet1 | reload",
    "ethernet1/1/1; write erase",
    "ethernet1/1/1\nreload",
    "GigabitEthernet1/0/1\nreboot",
    "GigabitEthernet1/0/1 ",
    "Vlan100",
    "Port-Channel1",
    "Management1",
    "Ethernet\u0661",  # an Arabic-Indic digit
]
BAD = {
    "arista_eos": ["ethernet1", "Et1", "Ethernet0", "Ethernet1/1/1/1", "Ethernet1/"],
    "cisco_nxos": ["Ethernet1", "Eth1/1", "ethernet1/1", "Ethernet1/1/1/1"],
    "dell_os10": ["ethernet1/1", "Ethernet1/1/1", "ethernet1/1/1:", "ethernet 1/1/1"],
    "comware": ["GigabitEthernet1", "GigabitEthernet 1/0/1", "GE1/0/1", "M-GigabitEthernet0/0/0"],
}


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_port_pattern(dialect: Dialect) -> None:
    for port in GOOD[dialect.name]:
        assert dialect.port_pattern.fullmatch(port), port
    for port in BAD_COMMON + BAD[dialect.name]:
        assert not dialect.port_pattern.fullmatch(port), repr(port)


# --------------------------------------------------------------------------- check()

POLICY = Policy.parse("1-4094")


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_check_accepts_real_batch(dialect: Dialect) -> None:
    port = PORT[dialect.name]
    batch = ChangeSet(
        vlans=(VlanChange(200, name="tenant-a"),),
        ports=(PortChange(port, mode=PortMode.ACCESS, vlan=200, description="node-017 eth0"),),
    )
    check(batch, POLICY, dialect)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@pytest.mark.parametrize(
    "change",
    [
        "port; reload",
        "port\nreload",
        "port ",
        "description",
        "vlan-name",
    ],
)
def test_check_refuses_injection(dialect: Dialect, change: str) -> None:
    port = PORT[dialect.name]
    if change == "port; reload":
        batch = access(f"{port}; reload", 100)
    elif change == "port\nreload":
        batch = access(f"{port}\nreload", 100)
    elif change == "port ":
        batch = access(f"{port} ", 100)
    elif change == "description":
        batch = ChangeSet(ports=(PortChange(port, description="x\nreload"),))
    else:
        batch = ChangeSet(vlans=(VlanChange(200, name="a\nreload"),))
    with pytest.raises(ValidationError):
        check(batch, POLICY, dialect)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_check_refuses_vlan_outside_allow_list(dialect: Dialect) -> None:
    with pytest.raises(ValidationError):
        check(access(PORT[dialect.name], 1), Policy.parse("100-199"), dialect)
