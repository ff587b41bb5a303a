"""The lab's Cisco NX-OS and Dell OS10 switches driven by an independent client: netmiko's own
``cisco_nxos`` and ``dell_os10`` drivers (session setup, prompts, configuration mode), fed with
what our dialects render and read back with what our dialects parse; vendor errors; running
versus saved configuration; the faults.

One lab switch process per dialect for the module; every test uses its own ports and VLANs, and
faults are reset before each test through the control file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from drivers.switch.base import (
    ChangeSet,
    Dialect,
    PortChange,
    PortMode,
    PortState,
    VlanChange,
)
from drivers.switch.dialects.cisco_nxos import CiscoNxosDialect
from drivers.switch.dialects.dell_os10 import DellOs10Dialect
from tests.support.labswitch import DROPPED, LabSwitch, lab_switch

NXOS, OS10 = "cisco_nxos", "dell_os10"
DIALECTS: dict[str, Dialect] = {NXOS: CiscoNxosDialect(), OS10: DellOs10Dialect()}
HOST = {NXOS: "lab-nxos", OS10: "lab-os10"}
STARTUP = {NXOS: "show startup-config", OS10: "show startup-configuration"}


@pytest.fixture(scope="module")
def switches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LabSwitch]]:
    tmp = tmp_path_factory.mktemp("labswitch")
    with lab_switch(NXOS, tmp) as nxos, lab_switch(OS10, tmp) as os10:
        yield {NXOS: nxos, OS10: os10}


@pytest.fixture(params=[NXOS, OS10])
def switch(request: pytest.FixtureRequest, switches: dict[str, LabSwitch]) -> LabSwitch:
    sw = switches[request.param]
    sw.set_faults()
    return sw


@pytest.fixture
def nxos(switches: dict[str, LabSwitch]) -> LabSwitch:
    switches[NXOS].set_faults()
    return switches[NXOS]


@pytest.fixture
def os10(switches: dict[str, LabSwitch]) -> LabSwitch:
    switches[OS10].set_faults()
    return switches[OS10]


@contextlib.contextmanager
def session(sw: LabSwitch, **kwargs: Any) -> Iterator[Any]:
    conn = sw.connect(**kwargs)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.disconnect()


# --------------------------------------------------------------------------- helpers


def send_batch(sw: LabSwitch, conn: Any, commands: list[str]) -> str:
    """What the transport does with ``render()``: privileged mode, then configuration mode."""
    conn.enable()
    out = str(conn.send_config_set(commands))
    assert DIALECTS[sw.dialect].errors(out) == [], out
    return out


def save(sw: LabSwitch, conn: Any) -> str:
    dialect = DIALECTS[sw.dialect]
    out = "\n".join(str(conn.send_command(c)) for c in dialect.save_commands())
    assert dialect.errors(out) == [], out
    return out


def read_ports(sw: LabSwitch, conn: Any, ports: list[str]) -> dict[str, PortState]:
    dialect = DIALECTS[sw.dialect]
    # netmiko strips each output's last newline: join them with one
    out = "\n".join(str(conn.send_command(c)) for c in dialect.show_ports_command(ports))
    return {p: s for p, s in dialect.parse_ports(out).items() if p in ports}


def saved_ports(sw: LabSwitch, conn: Any, ports: list[str]) -> dict[str, PortState]:
    out = str(conn.send_command(STARTUP[sw.dialect]))
    return {p: s for p, s in DIALECTS[sw.dialect].parse_ports(out).items() if p in ports}


def apply(sw: LabSwitch, conn: Any, changes: ChangeSet) -> list[str]:
    """Render as the transport does (the ports read first for dialects that need them), send."""
    dialect = DIALECTS[sw.dialect]
    current = (
        read_ports(sw, conn, [p.port for p in changes.ports]) if dialect.needs_current else None
    )
    commands = dialect.render(changes, current)
    send_batch(sw, conn, commands)
    return commands


def access(port: str, vlan: int) -> PortState:
    return PortState(port, PortMode.ACCESS, vlan=vlan, shutdown=False)


# --------------------------------------------------------------------------- the session


def test_netmiko_drivers_find_prompts_and_modes(switch: LabSwitch) -> None:
    host = HOST[switch.dialect]
    with session(switch) as conn:
        assert conn.base_prompt == host  # set by the driver's own session preparation
        assert conn.check_enable_mode()  # both land in privileged EXEC: no enable needed
        assert conn.find_prompt() == f"{host}#"
        conn.config_mode()
        assert conn.check_config_mode()
        assert conn.find_prompt() == f"{host}(config)#"
        conn.exit_config_mode()
        assert not conn.check_config_mode()
        version = str(conn.send_command("show version"))
        assert (
            "NXOS: version 9.3(10)" if switch.dialect == NXOS else "OS Version: 10.5"
        ) in version


def test_batch_applied_saved_and_read_back(switch: LabSwitch) -> None:
    dialect = DIALECTS[switch.dialect]
    p1, p2 = switch.port_name(1), switch.port_name(2)
    changes = ChangeSet(
        vlans=(VlanChange(10, "native"), VlanChange(120, "prov-120")),
        ports=(
            PortChange(p1, PortMode.ACCESS, vlan=120),
            PortChange(
                p2,
                PortMode.TRUNK,
                native_vlan=10,
                allowed_vlans=(120,),
                mtu=9216,
                description="node-2 nic1 (r01)",
            ),
        ),
    )
    with session(switch) as conn:
        apply(switch, conn, changes)
        saved = save(switch, conn)
        if switch.dialect == NXOS:
            assert saved.splitlines()[-2:] == [
                "Copy complete, now saving to disk (please wait)...",
                "Copy complete.",
            ]
        else:
            assert saved.strip() == ""  # OS10 saves silently
        assert read_ports(switch, conn, [p1, p2]) == {
            p1: access(p1, 120),
            p2: PortState(
                p2,
                PortMode.TRUNK,
                native_vlan=10,
                allowed_vlans=(10, 120),
                shutdown=False,
                mtu=9216,
                description="node-2 nic1 (r01)",
            ),
        }
        vlans = dialect.parse_vlans(str(conn.send_command(dialect.show_vlans_command())))
        assert vlans[120].name == "prov-120" and vlans[10].name == "native"
        assert 1 in vlans


def test_running_changes_are_not_saved_until_the_save(switch: LabSwitch) -> None:
    p3 = switch.port_name(3)
    changes = ChangeSet(
        vlans=(VlanChange(130),), ports=(PortChange(p3, PortMode.ACCESS, vlan=130),)
    )
    with session(switch) as conn:
        apply(switch, conn, changes)
        assert read_ports(switch, conn, [p3]) == {p3: access(p3, 130)}
        assert saved_ports(switch, conn, [p3]) == {p3: access(p3, 1)}
        save(switch, conn)
        assert saved_ports(switch, conn, [p3]) == {p3: access(p3, 130)}


# --------------------------------------------------------------------------- OS10 trunk lists


def test_os10_trunk_list_replaced_only_with_the_current_state(os10: LabSwitch) -> None:
    """OS10 only adds tagged VLANs: the render removes the extras when it knows the port's
    current list, and without it they stay (the gap needs_current closes)."""
    dialect = DIALECTS[OS10]
    p4, p5 = os10.port_name(4), os10.port_name(5)
    first = ChangeSet(
        ports=tuple(
            PortChange(p, PortMode.TRUNK, native_vlan=140, allowed_vlans=(141, 142, 143))
            for p in (p4, p5)
        )
    )
    shrunk = [
        PortChange(p, PortMode.TRUNK, native_vlan=141, allowed_vlans=(140, 144)) for p in (p4, p5)
    ]
    with session(os10) as conn:
        apply(os10, conn, first)
        assert read_ports(os10, conn, [p4])[p4].allowed_vlans == (140, 141, 142, 143)
        # with the current state (what the transport passes): replaced, 141 moved to untagged
        apply(os10, conn, ChangeSet(ports=(shrunk[0],)))
        # without it: only added, 142 and 143 stay tagged
        send_batch(os10, conn, dialect.render(ChangeSet(ports=(shrunk[1],)), None))
        got = read_ports(os10, conn, [p4, p5])
        assert got[p4] == PortState(
            p4, PortMode.TRUNK, native_vlan=141, allowed_vlans=(140, 141, 144), shutdown=False
        )
        assert got[p5].allowed_vlans == (140, 141, 142, 143, 144), got[p5]

        # back to access: without the current state the lab refuses the mode change (the
        # tagged VLANs would stay behind); with it the tagged VLANs go first
        out = str(conn.send_config_set(dialect.render(ChangeSet(ports=(
            PortChange(p5, PortMode.ACCESS, vlan=199),)), None)))  # fmt: skip
        assert dialect.errors(out) == [
            "% Error: Remove the tagged VLANs of the port before setting access mode."
        ], out
        apply(os10, conn, ChangeSet(ports=(PortChange(p5, PortMode.ACCESS, vlan=199),)))
        assert read_ports(os10, conn, [p5]) == {p5: access(p5, 199)}
        table = dialect.parse_vlans(str(conn.send_command("show vlan")))
        assert {140, 141, 142, 143, 144, 199} <= set(table)  # OS10 creates VLANs ports use


# --------------------------------------------------------------------------- NX-OS specifics


def test_nxos_long_allowed_list_wraps_into_add_lines(nxos: LabSwitch) -> None:
    dialect = DIALECTS[NXOS]
    p6 = nxos.port_name(6)
    allowed = (10, 20, 21, 22, *range(100, 200, 2))
    with session(nxos) as conn:
        apply(nxos, conn, ChangeSet(ports=(PortChange(p6, PortMode.TRUNK, native_vlan=10,
                                                      allowed_vlans=allowed),)))  # fmt: skip
        raw = str(conn.send_command(f"show running-config interface {p6}"))
        lines = raw.splitlines()
        assert lines[1] == f"!Command: show running-config interface {p6}"
        assert lines[2].startswith("!Running configuration last done at: ")
        assert lines[3].startswith("!Time: ")
        assert lines[5].startswith("version 9.3(10) Bios:version")
        adds = [ln for ln in lines if ln.startswith("  switchport trunk allowed vlan add ")]
        assert len(adds) >= 2 and all(len(ln) <= 80 for ln in lines), raw
        state = dialect.parse_ports(raw)[p6]
        assert (state.mode, state.native_vlan, state.allowed_vlans) == (
            PortMode.TRUNK,
            10,
            tuple(sorted(allowed)),
        )


def test_nxos_vendor_errors(nxos: LabSwitch) -> None:
    dialect = DIALECTS[NXOS]
    p7 = nxos.port_name(7)
    with session(nxos) as conn:
        out = str(conn.send_command("show bogus"))
        caret, message = out.splitlines()
        assert message == "% Invalid command at '^' marker."
        assert caret.index("^") == len("lab-nxos# show ")  # under the word it refuses
        assert dialect.errors(out) == [message]

        def refused(*commands: str) -> list[str]:
            return dialect.errors(str(conn.send_config_set([f"interface {p7}", *commands])))

        # layer-2 MTU on a Nexus: the default or the system jumbo MTU, nothing else
        assert refused("mtu 9000") == [
            f"ERROR: {p7}: MTU on L2 interfaces can only be set to default or system-jumboMTU"
        ]
        assert refused("mtu 100") == ["% Invalid number, range is (576:9216) at '^' marker."]
        assert refused("switchport access vlan 4095") == [
            "% Invalid number, range is (1:4094) at '^' marker."
        ]
        assert refused("switchport access") == ["% Incomplete command at '^' marker."]
        assert dialect.errors(str(conn.send_config_set(["interface Ethernet1/99"]))) == [
            "Invalid range at '^' marker."
        ]
        # a routed port refuses switchport settings until it is a switchport again
        assert refused("no switchport", "switchport mode trunk") == [
            f"ERROR: {p7}: requested config change not allowed"
        ]
        assert read_ports(nxos, conn, [p7])[p7].mode is None
        # an access VLAN that does not exist is taken (the port is inactive until it exists)
        assert refused("switchport", "switchport access vlan 777") == []
        assert read_ports(nxos, conn, [p7]) == {p7: access(p7, 777)}
        assert 777 not in dialect.parse_vlans(str(conn.send_command("show vlan brief")))


def test_nxos_layer_change_and_shutdown_defaults(nxos: LabSwitch) -> None:
    """``no switchport`` drops the layer-2 settings; the shutdown line is printed only when it
    differs from the default of the port's layer (layer 2: shut, routed: enabled)."""
    dialect = DIALECTS[NXOS]
    p9 = nxos.port_name(9)
    with session(nxos) as conn:
        send_batch(nxos, conn, [f"interface {p9}", "switchport mode trunk",
                                "switchport trunk allowed vlan 10", "no switchport",
                                "mtu 9000"])  # fmt: skip
        assert read_ports(nxos, conn, [p9]) == {p9: PortState(p9, None, mtu=9000)}
        send_batch(nxos, conn, [f"interface {p9}", "shutdown", "no mtu", "switchport"])
        # layer 2 again: access VLAN 1, all VLANs allowed; shut, which prints nothing
        assert read_ports(nxos, conn, [p9]) == {p9: PortState(p9, PortMode.ACCESS, vlan=1)}
        raw = str(conn.send_command(f"show running-config interface {p9}"))
        assert raw.rstrip().endswith(f"interface {p9}"), raw
        send_batch(nxos, conn, [f"interface {p9}", "no shutdown"])
        assert read_ports(nxos, conn, [p9]) == {p9: access(p9, 1)}
        assert dialect.errors(raw) == []


# --------------------------------------------------------------------------- OS10 specifics


def test_os10_vendor_errors_and_descriptions(os10: LabSwitch) -> None:
    dialect = DIALECTS[OS10]
    p7 = os10.port_name(7)
    with session(os10) as conn:
        out = str(conn.send_command("show bogus"))
        assert out.strip() == "% Error: Unrecognized command."
        assert dialect.errors(out) == ["% Error: Unrecognized command."]

        def refused(*commands: str) -> list[str]:
            return dialect.errors(str(conn.send_config_set([f"interface {p7}", *commands])))

        assert refused("switchport access vlan 4094") == ["% Error: Illegal parameter."]
        assert refused("mtu 100") == ["% Error: Illegal parameter."]
        assert refused("switchport access") == ["% Error: Incomplete command."]
        assert refused("switchport trunk allowed vlan 20") == [
            "% Error: Tagged VLANs need switchport mode trunk."
        ]
        assert dialect.errors(str(conn.send_config_set(["interface ethernet1/1/99"]))) == [
            "% Error: Illegal parameter."
        ]
        assert read_ports(os10, conn, [p7]) == {p7: access(p7, 1)}
        # OS10 keeps a description's blanks only inside double quotes
        assert refused("description two words") == []
        assert read_ports(os10, conn, [p7])[p7].description == "twowords"
        assert refused('description "two words"') == []
        raw = str(conn.send_command(dialect.show_ports_command([p7])[0]))
        assert ' description "two words"' in raw.splitlines()
        assert read_ports(os10, conn, [p7])[p7].description == "two words"
        # a VLAN's description is what `show vlan` prints in its Description column
        out = str(conn.send_config_set(["interface vlan 170", "description tenant-170"]))
        assert dialect.errors(out) == []
        table = str(conn.send_command("show vlan"))
        assert table.splitlines()[0].startswith("Codes: * - Default VLAN")
        row = next(ln for ln in table.splitlines() if ln.split()[:1] == ["170"])
        assert row.split() == ["170", "Inactive", "tenant-170"]
        assert dialect.parse_vlans(table)[170].name == "tenant-170"


# --------------------------------------------------------------------------- faults


def test_drop_after_two_cuts_the_batch(switch: LabSwitch) -> None:
    dialect = DIALECTS[switch.dialect]
    p8 = switch.port_name(8)
    changes = ChangeSet(
        vlans=(VlanChange(160, "dropped"),), ports=(PortChange(p8, PortMode.ACCESS, vlan=160),)
    )
    commands = dialect.render(changes, {})
    assert len(commands) > 3
    switch.set_faults(drop_after=2)
    with session(switch, read_timeout=3) as conn, pytest.raises(DROPPED):
        send_batch(switch, conn, commands)
    switch.set_faults()
    with session(switch) as conn:
        # the first two commands took effect (the VLAN and its name), the rest never ran
        vlans = dialect.parse_vlans(str(conn.send_command(dialect.show_vlans_command())))
        assert vlans[160].name == "dropped"
        assert read_ports(switch, conn, [p8]) == {p8: access(p8, 1)}


def test_config_locked_refuses_the_save(switch: LabSwitch) -> None:
    dialect = DIALECTS[switch.dialect]
    switch.set_faults(config_locked=True)
    with session(switch) as conn:
        for command in dialect.save_commands():
            out = str(conn.send_command(command))
            assert len(dialect.errors(out)) == 1, out
            assert any(p.search(out) for p in dialect.retry_patterns), out  # retried
        switch.set_faults()
        save(switch, conn)


def test_slow_switch_still_answers(switch: LabSwitch) -> None:
    switch.set_faults(slow=0.2)
    p10 = switch.port_name(10)
    with session(switch) as conn:
        assert read_ports(switch, conn, [p10]) == {p10: access(p10, 1)}
