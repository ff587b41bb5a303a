"""Cumulus NVUE, SONiC and Junos dialects: rendered commands (golden lists), parsing of recorded
outputs field by field, error lines, the port grammar, and check() refusing injection."""

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
from drivers.switch.dialects.cumulus_nvue import CumulusNvueDialect
from drivers.switch.dialects.junos import JunosDialect
from drivers.switch.dialects.sonic import SonicDialect
from provisiond.errors import ValidationError

FIXTURES = Path(__file__).parent / "fixtures" / "switch"

NVUE = CumulusNvueDialect()
SONIC = SonicDialect()
JUNOS = JunosDialect()
ALL: list[Dialect] = [NVUE, SONIC, JUNOS]


def fixture(dialect: str, name: str) -> str:
    return (FIXTURES / dialect / name).read_text()


def access(port: str, vlan: int) -> ChangeSet:
    return ChangeSet(ports=(PortChange(port, mode=PortMode.ACCESS, vlan=vlan),))


def trunk(port: str) -> ChangeSet:
    return ChangeSet(
        ports=(PortChange(port, mode=PortMode.TRUNK, native_vlan=10, allowed_vlans=(200, 201)),)
    )


VLANS = ChangeSet(vlans=(VlanChange(300, name="tenant-a"), VlanChange(301, delete=True)))


def props(port: str) -> ChangeSet:
    return ChangeSet(
        ports=(PortChange(port, shutdown=True, mtu=9100, description="node12 nic0 (rack 4)"),)
    )


def test_names_and_device_types() -> None:
    assert (NVUE.name, NVUE.netmiko_device_type) == ("cumulus_nvue", "linux")
    assert (SONIC.name, SONIC.netmiko_device_type) == ("sonic", "linux")
    assert (JUNOS.name, JUNOS.netmiko_device_type) == ("junos", "juniper_junos")


# --------------------------------------------------------------------------- NVUE render

NV_BD = "bridge domain br_default"


def test_nvue_access_move() -> None:
    assert NVUE.render(access("swp1", 100)) == [
        f"nv unset interface swp1 {NV_BD} untagged",
        f"nv unset interface swp1 {NV_BD} vlan",
        f"nv set interface swp1 {NV_BD} access 100",
    ]


def test_nvue_restore_to_quarantine_and_bring_up() -> None:
    changes = ChangeSet(ports=(PortChange("swp2", mode=PortMode.ACCESS, vlan=999, shutdown=False),))
    assert NVUE.render(changes) == [
        f"nv unset interface swp2 {NV_BD} untagged",
        f"nv unset interface swp2 {NV_BD} vlan",
        f"nv set interface swp2 {NV_BD} access 999",
        "nv set interface swp2 link state up",
    ]


def test_nvue_trunk_replaces_the_list() -> None:
    assert NVUE.render(trunk("swp1s0")) == [
        f"nv unset interface swp1s0 {NV_BD} access",
        f"nv unset interface swp1s0 {NV_BD} vlan",
        f"nv set interface swp1s0 {NV_BD} vlan 10,200-201",
        f"nv set interface swp1s0 {NV_BD} untagged 10",
    ]


def test_nvue_vlan_create_delete() -> None:
    assert NVUE.render(VLANS) == [
        f"nv set {NV_BD} vlan 300",
        f"nv unset {NV_BD} vlan 301",
    ]


def test_nvue_shutdown_mtu_description() -> None:
    assert NVUE.render(props("swp3")) == [
        "nv set interface swp3 link mtu 9100",
        "nv set interface swp3 description 'node12 nic0 (rack 4)'",
        "nv set interface swp3 link state down",
    ]
    cleared = ChangeSet(ports=(PortChange("swp3", description=""),))
    assert NVUE.render(cleared) == ["nv unset interface swp3 description"]


def test_nvue_order_creates_ports_deletes() -> None:
    changes = ChangeSet(
        vlans=(VlanChange(301, delete=True), VlanChange(300)),
        ports=(PortChange("swp1", mode=PortMode.ACCESS, vlan=300),),
    )
    cmds = NVUE.render(changes)
    assert cmds[0] == f"nv set {NV_BD} vlan 300"
    assert cmds[-1] == f"nv unset {NV_BD} vlan 301"


def test_nvue_save_applies_then_saves() -> None:
    assert NVUE.save_commands() == ["nv config apply --assume-yes", "nv config save"]


# --------------------------------------------------------------------------- NVUE parse


def test_nvue_parse_ports() -> None:
    assert NVUE.show_ports_command(["swp1", "swp2"]) == ["nv config show -o json"]
    states = NVUE.parse_ports(fixture("cumulus_nvue", "config_show.txt"))
    assert set(states) == {"swp1", "swp2", "swp3", "swp49s1"}  # no eth0, lo, bond1
    assert states["swp1"] == PortState(
        "swp1",
        PortMode.ACCESS,
        vlan=100,
        shutdown=False,
        mtu=9216,
        description="node12 nic0 (rack 4)",
    )
    assert states["swp2"] == PortState(
        "swp2",
        PortMode.TRUNK,
        native_vlan=10,
        allowed_vlans=(10, 200, 201, 202),
        shutdown=True,
    )
    # in the bridge without its own list: carries the bridge's VLANs, bridge's untagged
    assert states["swp3"] == PortState(
        "swp3", PortMode.TRUNK, native_vlan=1, allowed_vlans=(1, 10, 100, 200, 201, 202, 999)
    )
    assert states["swp49s1"] == PortState("swp49s1", None, mtu=1500)


def test_nvue_parse_vlans() -> None:
    assert NVUE.show_vlans_command() == "nv show bridge domain br_default vlan -o json"
    vlans = NVUE.parse_vlans(fixture("cumulus_nvue", "bridge_vlan.txt"))
    assert vlans == {v: VlanState(v) for v in (10, 100, 200, 999)}
    # the applied config (ranges kept) gives the same ids
    from_config = NVUE.parse_vlans(fixture("cumulus_nvue", "config_show.txt"))
    assert sorted(from_config) == [10, 100, 200, 201, 202, 999]


def test_nvue_errors() -> None:
    assert NVUE.errors(fixture("cumulus_nvue", "apply_error.txt")) == [
        "Error: Invalid value for 'access': 4095 is not in the range 1-4094",
        "Invalid config [rev_id: 12]",
        "Config invalid at interface.swp2.bridge.domain.br_default: "
        "access and untagged cannot both be set",
    ]
    assert NVUE.errors(fixture("cumulus_nvue", "apply_ok.txt")) == []


# --------------------------------------------------------------------------- SONiC render

SWEEP0 = (
    "for v in $(sonic-db-cli CONFIG_DB KEYS 'VLAN_MEMBER|Vlan*|Ethernet0'"
    " | sed -n 's/^VLAN_MEMBER|Vlan\\([0-9]*\\)|.*$/\\1/p');"
    ' do sudo config vlan member del "$v" Ethernet0; done'
)


def mode0(mode: str, when: str) -> str:
    """The switchport mode line for Ethernet0 (``when``: the sed alternatives, BRE)."""
    return (
        f"for m in $(sonic-db-cli CONFIG_DB HGET 'PORT|Ethernet0' mode | sed -n 's/^\\({when}\\)$/"
        f'{mode}/p\'); do sudo config switchport mode "$m" Ethernet0; done'
    )


TO_ACCESS = mode0("access", "trunk\\|routed")  # an unset mode stays unset
TO_TRUNK = mode0("trunk", "access\\|routed")
TO_TRUNK_EVEN_UNSET = mode0("trunk", "access\\|routed\\|")


def test_sonic_access_move_sweeps_old_membership() -> None:
    assert SONIC.render(access("Ethernet0", 100)) == [
        SWEEP0,
        TO_ACCESS,
        "sudo config vlan member add -u 100 Ethernet0",
    ]


def test_sonic_restore_to_quarantine() -> None:
    changes = ChangeSet(
        ports=(PortChange("Ethernet0", mode=PortMode.ACCESS, vlan=999, shutdown=False),)
    )
    assert SONIC.render(changes) == [
        SWEEP0,
        TO_ACCESS,
        "sudo config vlan member add -u 999 Ethernet0",
        "sudo config interface startup Ethernet0",
    ]


def test_sonic_trunk_native_untagged_rest_tagged() -> None:
    assert SONIC.render(trunk("Ethernet0")) == [
        SWEEP0,
        TO_TRUNK,
        "sudo config vlan member add -u 10 Ethernet0",
        "sudo config vlan member add 200 Ethernet0",
        "sudo config vlan member add 201 Ethernet0",
    ]


def test_sonic_native_only_trunk_sets_the_mode() -> None:
    # by membership alone it would read back as an access port: the mode is written even when
    # unset (SONiC 202405 and later; refused before, where it cannot be expressed)
    native_only = ChangeSet(ports=(PortChange("Ethernet0", PortMode.TRUNK, native_vlan=10),))
    assert SONIC.render(native_only) == [
        SWEEP0,
        TO_TRUNK_EVEN_UNSET,
        "sudo config vlan member add -u 10 Ethernet0",
    ]
    same = ChangeSet(
        ports=(PortChange("Ethernet0", PortMode.TRUNK, native_vlan=10, allowed_vlans=(10,)),)
    )
    assert SONIC.render(same)[1] == TO_TRUNK_EVEN_UNSET


def test_sonic_vlan_create_delete_only_when_needed() -> None:
    # `config vlan add` refuses an existing VLAN, `del` a missing one: both are guarded, so a
    # batch sent again (after a drop) does not fail on what it already did
    assert SONIC.render(VLANS) == [
        "for v in $(sonic-db-cli CONFIG_DB EXISTS 'VLAN|Vlan300' | sed -n 's/^0$/300/p');"
        ' do sudo config vlan add "$v"; done',
        "for v in $(sonic-db-cli CONFIG_DB EXISTS 'VLAN|Vlan301' | sed -n 's/^1$/301/p');"
        ' do sudo config vlan del "$v"; done',
    ]


def test_sonic_shutdown_mtu_description() -> None:
    # community SONiC has no `config interface description`: CONFIG_DB's PORT entry has it
    assert SONIC.render(props("Ethernet508")) == [
        "sudo config interface mtu Ethernet508 9100",
        "for p in $(sonic-db-cli CONFIG_DB EXISTS 'PORT|Ethernet508'"
        " | sed -n 's/^1$/Ethernet508/p');"
        " do sudo sonic-db-cli CONFIG_DB HSET \"PORT|$p\" description 'node12 nic0 (rack 4)'; done",
        "sudo config interface shutdown Ethernet508",
    ]
    cleared = ChangeSet(ports=(PortChange("Ethernet4", description=""),))
    assert SONIC.render(cleared)[0].endswith("HSET \"PORT|$p\" description ''; done")


def test_sonic_save() -> None:
    assert SONIC.save_commands() == ["sudo config save -y"]


# --------------------------------------------------------------------------- SONiC parse


SONIC_SHOWS = (
    "vlan_brief.txt",
    "interfaces_status.txt",
    "interfaces_description.txt",
    "runningconfiguration_ports.txt",
)


def sonic_outputs() -> str:
    return "\n".join(fixture("sonic", name) for name in SONIC_SHOWS)


def test_sonic_parse_ports() -> None:
    assert SONIC.show_ports_command(["Ethernet0"]) == [
        "show vlan brief",
        "show interfaces status",
        "show interfaces description",
        "show runningconfiguration ports",
    ]
    states = SONIC.parse_ports(sonic_outputs())
    assert set(states) == {f"Ethernet{n}" for n in (0, 4, 8, 12, 16, 20)}
    assert states["Ethernet0"] == PortState(
        "Ethernet0",
        PortMode.ACCESS,
        vlan=100,
        shutdown=False,
        mtu=9100,
        description="node12 nic0 (rack 4)",
    )
    assert states["Ethernet4"] == PortState(
        "Ethernet4", PortMode.ACCESS, vlan=100, shutdown=True, mtu=9100
    )
    assert states["Ethernet8"] == PortState(
        "Ethernet8",
        PortMode.TRUNK,
        native_vlan=10,
        allowed_vlans=(10, 200, 201),
        shutdown=False,
        mtu=9216,
        description="hv03 uplink",
    )
    assert states["Ethernet12"] == PortState(
        "Ethernet12",
        PortMode.TRUNK,
        allowed_vlans=(10, 200),
        shutdown=False,
        mtu=9100,
        description="hv04 uplink",
    )
    assert states["Ethernet16"] == PortState("Ethernet16", None, shutdown=True, mtu=1500)


def test_sonic_parse_ports_any_order() -> None:
    parts = [fixture("sonic", n) for n in reversed(SONIC_SHOWS)]
    assert SONIC.parse_ports("\n\n".join(parts)) == SONIC.parse_ports(sonic_outputs())


def test_sonic_switchport_mode_decides() -> None:
    """CONFIG_DB's ``mode`` (202405+) tells a trunk carrying only its native VLAN from an access
    port, which membership alone cannot; without it, membership decides."""
    ports = fixture("sonic", "runningconfiguration_ports.txt")
    as_trunk = ports.replace('"node12 nic0 (rack 4)",', '"node12 nic0 (rack 4)",\n"mode": "trunk",')
    outputs = sonic_outputs().replace(ports, as_trunk)
    got = SONIC.parse_ports(outputs)["Ethernet0"]
    assert (got.mode, got.native_vlan, got.allowed_vlans) == (PortMode.TRUNK, 100, (100,))
    # no PORT table at all (an older release's answer): membership
    older = sonic_outputs().replace(ports, "")
    assert SONIC.parse_ports(older)["Ethernet0"].mode is PortMode.ACCESS
    assert SONIC.parse_ports(older)["Ethernet16"].description is None  # "N/A"


def test_sonic_parse_vlans() -> None:
    assert SONIC.show_vlans_command() == "show vlan brief"
    vlans = SONIC.parse_vlans(fixture("sonic", "vlan_brief.txt"))
    assert vlans == {v: VlanState(v) for v in (10, 100, 200, 201, 999)}


def test_sonic_errors() -> None:
    assert SONIC.errors(fixture("sonic", "errors.txt")) == [
        "Usage: config vlan member add [OPTIONS] <vid> port",
        "Error: Vlan300 doesn't exist",
        "Error: VLAN ID 100 can not be removed. First remove all members assigned to this VLAN.",
    ]
    # what else SONiC answers when it refuses (each one line of its own)
    for line in (
        "Root privileges are required for this operation",
        "Failed to acquire lock on /etc/sonic/reload.lock",
        "Invalid port Ethernet99",
        "Aborted!",
        "-bash: frob: command not found",
        "sudo: frob: command not found",
        "ERR unknown command 'FROB', with args beginning with: ",
    ):
        assert SONIC.errors(f"{line}\n") == [line.strip()], line
    assert SONIC.retry_patterns[0].search("Failed to acquire lock on /etc/sonic/reload.lock")
    # a description that quotes an error is not one: the patterns start at the line's start
    table = fixture("sonic", "interfaces_description.txt").replace("hv03 uplink", "Error: x")
    assert SONIC.errors(table) == []


# --------------------------------------------------------------------------- Junos render

ESW = "unit 0 family ethernet-switching"


def test_junos_access_move_deletes_members_first() -> None:
    assert JUNOS.render(access("ge-0/0/1", 100)) == [
        f"delete interfaces ge-0/0/1 {ESW} vlan members",
        "delete interfaces ge-0/0/1 native-vlan-id",
        f"set interfaces ge-0/0/1 {ESW} interface-mode access",
        f"set interfaces ge-0/0/1 {ESW} vlan members 100",
    ]


def test_junos_restore_to_quarantine() -> None:
    changes = ChangeSet(
        ports=(PortChange("mge-0/0/7", mode=PortMode.ACCESS, vlan=999, shutdown=False),)
    )
    assert JUNOS.render(changes) == [
        f"delete interfaces mge-0/0/7 {ESW} vlan members",
        "delete interfaces mge-0/0/7 native-vlan-id",
        f"set interfaces mge-0/0/7 {ESW} interface-mode access",
        f"set interfaces mge-0/0/7 {ESW} vlan members 999",
        "delete interfaces mge-0/0/7 disable",
    ]


def test_junos_trunk_replaces_members() -> None:
    assert JUNOS.render(trunk("xe-0/0/2")) == [
        f"delete interfaces xe-0/0/2 {ESW} vlan members",
        f"set interfaces xe-0/0/2 {ESW} interface-mode trunk",
        f"set interfaces xe-0/0/2 {ESW} vlan members 10",
        f"set interfaces xe-0/0/2 {ESW} vlan members 200-201",
        "set interfaces xe-0/0/2 native-vlan-id 10",
    ]


def test_junos_vlan_create_delete() -> None:
    assert JUNOS.render(VLANS) == [
        "set vlans vlan300 vlan-id 300",
        "set vlans vlan300 description tenant-a",
        "delete vlans vlan301",
    ]


def test_junos_shutdown_mtu_description() -> None:
    assert JUNOS.render(props("et-0/0/48")) == [
        "set interfaces et-0/0/48 mtu 9100",
        'set interfaces et-0/0/48 description "node12 nic0 (rack 4)"',
        "set interfaces et-0/0/48 disable",
    ]


def test_junos_commit_private_and_retry() -> None:
    assert JUNOS.save_commands() == ["commit"]
    assert JUNOS.config_command == "configure private"
    locked = "error: configuration database locked by:"
    assert any(p.search(locked) for p in JUNOS.retry_patterns)
    assert not any(p.search("error: configuration check-out failed") for p in JUNOS.retry_patterns)


# --------------------------------------------------------------------------- Junos parse


def test_junos_parse_ports() -> None:
    assert JUNOS.show_ports_command(["ge-0/0/1", "xe-0/0/2"]) == [
        "show configuration interfaces ge-0/0/1 | display set",
        "show configuration interfaces xe-0/0/2 | display set",
        "show configuration vlans | display set",
    ]
    states = JUNOS.parse_ports(fixture("junos", "interfaces_display_set.txt"))
    assert set(states) == {"ge-0/0/1", "xe-0/0/2", "ge-0/0/3", "et-0/0/48"}
    assert states["ge-0/0/1"] == PortState(
        "ge-0/0/1",
        PortMode.ACCESS,
        vlan=100,  # member "vlan100" resolved through the vlans section
        shutdown=False,
        mtu=9216,
        description="node12 nic0 (rack 4)",
    )
    assert states["xe-0/0/2"] == PortState(
        "xe-0/0/2",
        PortMode.TRUNK,
        native_vlan=10,
        allowed_vlans=(10, 200, 201, 202),  # id, name "servers", range
        shutdown=False,
    )
    # no interface-mode: ELS default is access
    assert states["ge-0/0/3"] == PortState("ge-0/0/3", PortMode.ACCESS, vlan=999, shutdown=True)
    assert states["et-0/0/48"] == PortState("et-0/0/48", None, shutdown=False, description="uplink")


def test_junos_parse_vlans() -> None:
    assert JUNOS.show_vlans_command() == "show configuration vlans | display set"
    assert JUNOS.parse_vlans(fixture("junos", "vlans_display_set.txt")) == {
        1: VlanState(1, "default"),
        10: VlanState(10, "vlan10"),
        100: VlanState(100, "prov"),
        200: VlanState(200, "servers"),
        999: VlanState(999, "released ports"),
    }


def test_junos_errors() -> None:
    assert JUNOS.errors(fixture("junos", "errors.txt")) == [
        "syntax error.",
        "error: configuration database locked by:",
        "error: configuration check-out failed",
    ]


# --------------------------------------------------------------------------- port grammar

GOOD = {
    "cumulus_nvue": ["swp1", "swp32", "swp1s0", "swp49s3", "swp128"],
    "sonic": ["Ethernet0", "Ethernet4", "Ethernet9", "Ethernet120", "Ethernet508"],
    "junos": ["ge-0/0/0", "xe-0/0/1", "et-0/0/48", "mge-0/0/12", "xe-1/2/3:1"],
}
BAD_COMMON = [
    "",
    " ",
    "{p}; reboot",
    "{p}\nreboot",
    "{p}\n",
    "{p} ",
    " {p}",
    "{p}'",
    '{p}"',
    "{p}|reboot",
    "{p}$(reboot)",
    "{p}`reboot`",
    "{p}&&reboot",
]
BAD_SPECIFIC = {
    "cumulus_nvue": ["swp0", "swp", "eth0", "bond1", "swp1-4", "swp1,swp2", "swp1s8", "SWP1"],
    "sonic": ["Ethernet", "Ethernet509", "Ethernet01", "PortChannel1", "ethernet0", "Eth0"],
    "junos": ["ge-0/0", "ae0", "irb.100", "ge-0/0/1.0", "ge-0/0/*", "fe-0/0/1", "vlan100"],
}


@pytest.mark.parametrize("dialect", ALL, ids=lambda d: d.name)
def test_port_pattern_accepts_real_names(dialect: Dialect) -> None:
    for port in GOOD[dialect.name]:
        assert dialect.port_pattern.fullmatch(port), port
        # anchored on its own: match() alone also refuses a trailing newline
        assert dialect.port_pattern.match(port + "\n") is None


@pytest.mark.parametrize("dialect", ALL, ids=lambda d: d.name)
def test_port_pattern_refuses_injection(dialect: Dialect) -> None:
    real = GOOD[dialect.name][1]
    bad = [b.format(p=real) for b in BAD_COMMON] + BAD_SPECIFIC[dialect.name]
    for port in bad:
        assert not dialect.port_pattern.fullmatch(port), repr(port)
        # anchored in the pattern itself: even search() finds nothing
        assert dialect.port_pattern.search(port) is None, repr(port)


@pytest.mark.parametrize("dialect", ALL, ids=lambda d: d.name)
def test_show_ports_command_refuses_bad_names(dialect: Dialect) -> None:
    with pytest.raises(ValueError):
        dialect.show_ports_command([GOOD[dialect.name][0] + "; reboot"])


# --------------------------------------------------------------------------- check()

POLICY = Policy.parse("10,100-300,999")


@pytest.mark.parametrize("dialect", ALL, ids=lambda d: d.name)
def test_check_refuses_injection(dialect: Dialect) -> None:
    real = GOOD[dialect.name][1]
    for bad in (f"{real}; reboot", f"{real}\nreboot", f"{real} ", f"{real}$(id)"):
        with pytest.raises(ValidationError) as err:
            check(access(bad, 100), POLICY, dialect)
        assert [p.where for p in err.value.problems] == ["ports[0].port"]
    bad_desc = ChangeSet(ports=(PortChange(real, description="x'; reboot; '"),))
    with pytest.raises(ValidationError):
        check(bad_desc, POLICY, dialect)
    bad_name = ChangeSet(vlans=(VlanChange(100, name="a b; reboot"),))
    with pytest.raises(ValidationError):
        check(bad_name, POLICY, dialect)


@pytest.mark.parametrize("dialect", ALL, ids=lambda d: d.name)
def test_check_accepts_then_renders(dialect: Dialect) -> None:
    port = GOOD[dialect.name][1]
    changes = ChangeSet(
        vlans=(VlanChange(300, name="tenant-a"),),
        ports=(
            PortChange(port, mode=PortMode.ACCESS, vlan=300, description="node12 nic0 (rack 4)"),
        ),
    )
    check(changes, POLICY, dialect)
    cmds = dialect.render(changes)
    assert cmds and all("\n" not in c and "\r" not in c for c in cmds)
    assert any(port in c for c in cmds)
