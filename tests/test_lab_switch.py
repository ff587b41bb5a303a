"""`provisiond lab switch` driven by an independent client: netmiko's own drivers (``arista_eos``
for EOS, ``linux`` for Cumulus NVUE, as networking-generic-switch uses them), fed with what our
dialects render and read back with what our dialects parse.

One lab switch process per dialect for the module; every test uses its own ports and VLANs, and
faults are reset before each test through the control file (the lab re-reads it at every login
and command line, so a rewrite is in effect for the next one).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netmiko.exceptions import NetmikoAuthenticationException

from drivers.switch.base import (
    ChangeSet,
    Dialect,
    PortChange,
    PortMode,
    PortState,
    VlanChange,
)
from drivers.switch.dialects.arista_eos import AristaEosDialect
from drivers.switch.dialects.cumulus_nvue import CumulusNvueDialect
from tests.support.labswitch import DROPPED, LAB_CMD, ROOT, LabSwitch, lab_switch

EOS, NVUE = "arista_eos", "cumulus_nvue"
DIALECTS: dict[str, Dialect] = {EOS: AristaEosDialect(), NVUE: CumulusNvueDialect()}


@pytest.fixture(scope="module")
def switches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LabSwitch]]:
    tmp = tmp_path_factory.mktemp("labswitch")
    with lab_switch(EOS, tmp) as eos, lab_switch(NVUE, tmp) as nvue:
        yield {EOS: eos, NVUE: nvue}


@pytest.fixture(params=[EOS, NVUE])
def switch(request: pytest.FixtureRequest, switches: dict[str, LabSwitch]) -> LabSwitch:
    sw = switches[request.param]
    sw.set_faults()
    return sw


@pytest.fixture
def eos(switches: dict[str, LabSwitch]) -> LabSwitch:
    switches[EOS].set_faults()
    return switches[EOS]


@pytest.fixture
def nvue(switches: dict[str, LabSwitch]) -> LabSwitch:
    switches[NVUE].set_faults()
    return switches[NVUE]


# --------------------------------------------------------------------------- helpers


def send_batch(sw: LabSwitch, conn: Any, commands: list[str]) -> str:
    """What a transport does with ``render()``: EOS through configuration mode; NVUE one shell
    command at a time (each ``nv set`` is a command of its own)."""
    dialect = DIALECTS[sw.dialect]
    if sw.dialect == EOS:
        conn.enable()
        out = str(conn.send_config_set(commands))
    else:
        out = "\n".join(str(conn.send_command(c)) for c in commands)
    assert dialect.errors(out) == [], out
    return out


def save(sw: LabSwitch, conn: Any) -> str:
    out = "\n".join(str(conn.send_command(c)) for c in DIALECTS[sw.dialect].save_commands())
    assert DIALECTS[sw.dialect].errors(out) == [], out
    return out


def read_ports(sw: LabSwitch, conn: Any, ports: list[str]) -> dict[str, PortState]:
    dialect = DIALECTS[sw.dialect]
    if sw.dialect == EOS:
        conn.enable()  # show running-config is a privileged command
    # netmiko strips each output's last newline: join them with one
    out = "\n".join(str(conn.send_command(c)) for c in dialect.show_ports_command(ports))
    return {p: s for p, s in dialect.parse_ports(out).items() if p in ports}


def saved_ports(sw: LabSwitch, conn: Any, ports: list[str]) -> dict[str, PortState]:
    """The ports as the saved (startup) configuration has them."""
    dialect = DIALECTS[sw.dialect]
    cmd = "show startup-config" if sw.dialect == EOS else "nv config show -r startup -o json"
    return {p: s for p, s in dialect.parse_ports(str(conn.send_command(cmd))).items() if p in ports}


def access(port: str, vlan: int) -> PortState:
    return PortState(port, PortMode.ACCESS, vlan=vlan, shutdown=False)


# --------------------------------------------------------------------------- the batch


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
                mtu=9000,
                description="node-2 nic1 (r01)",
            ),
        ),
    )
    conn = switch.connect()
    try:
        send_batch(switch, conn, dialect.render(changes))
        saved = save(switch, conn)
        if switch.dialect == EOS:
            assert "Copy completed successfully." in saved
        else:
            assert "applied [rev_id:" in saved and "saved [rev_id:" in saved
        assert read_ports(switch, conn, [p1, p2]) == {
            p1: access(p1, 120),
            p2: PortState(
                p2,
                PortMode.TRUNK,
                native_vlan=10,
                allowed_vlans=(10, 120),
                shutdown=False,
                mtu=9000,
                description="node-2 nic1 (r01)",
            ),
        }
        vlans = dialect.parse_vlans(str(conn.send_command(dialect.show_vlans_command())))
        assert {10, 120} <= set(vlans)
        if switch.dialect == EOS:
            assert vlans[120].name == "prov-120"
    finally:
        conn.disconnect()


def test_nvue_batch_through_send_config_set(nvue: LabSwitch) -> None:
    """netmiko's linux driver enters "config mode" with ``sudo -s`` (the login password as
    ``secret``); the NVUE commands work from that root shell too."""
    dialect = DIALECTS[NVUE]
    changes = ChangeSet(
        vlans=(VlanChange(140),), ports=(PortChange("swp4", PortMode.ACCESS, vlan=140),)
    )
    conn = nvue.connect()
    try:
        out = str(conn.send_config_set(dialect.render(changes)))
        assert "root@lab-nvue" in out and dialect.errors(out) == [], out
        assert not conn.check_config_mode()  # back to the user's shell
        save(nvue, conn)
        assert read_ports(nvue, conn, ["swp4"]) == {"swp4": access("swp4", 140)}
    finally:
        conn.disconnect()


def test_running_changes_are_not_saved_until_the_save(switch: LabSwitch) -> None:
    dialect = DIALECTS[switch.dialect]
    p3 = switch.port_name(3)
    changes = ChangeSet(
        vlans=(VlanChange(130),), ports=(PortChange(p3, PortMode.ACCESS, vlan=130),)
    )
    conn = switch.connect()
    try:
        send_batch(switch, conn, dialect.render(changes))
        if switch.dialect == NVUE:
            # staged only: the applied configuration is untouched until `nv config apply`
            assert read_ports(switch, conn, [p3]) == {p3: access(p3, 1)}
            out = str(conn.send_command("nv config apply --assume-yes"))
            assert "applied [rev_id:" in out
        assert read_ports(switch, conn, [p3]) == {p3: access(p3, 130)}
        assert saved_ports(switch, conn, [p3]) == {p3: access(p3, 1)}
        save(switch, conn)
        assert saved_ports(switch, conn, [p3]) == {p3: access(p3, 130)}
    finally:
        conn.disconnect()


# --------------------------------------------------------------------------- errors


def test_eos_invalid_input(eos: LabSwitch) -> None:
    dialect = DIALECTS[EOS]
    conn = eos.connect()
    try:
        out = str(conn.send_command("show bogus"))
        assert out.strip() == "% Invalid input"
        assert dialect.errors(out) == ["% Invalid input"]
        conn.enable()
        # EOS's MTU range ends at 9214
        out = str(conn.send_config_set(["interface Ethernet5", "mtu 9216"]))
        assert dialect.errors(out) == ["% Invalid input"], out
        out = str(conn.send_config_set(["interface Ethernet5", "switchport access vlan 4095"]))
        assert dialect.errors(out) == ["% Invalid input"], out
        assert read_ports(eos, conn, ["Ethernet5"]) == {"Ethernet5": access("Ethernet5", 1)}
    finally:
        conn.disconnect()


def test_nvue_errors(nvue: LabSwitch) -> None:
    dialect = DIALECTS[NVUE]
    conn = nvue.connect()
    try:
        out = str(conn.send_command("nv set interface swp5 bridge domain br_default access 4095"))
        assert dialect.errors(out) == [
            "Error: Invalid value for 'access': 4095 is not in the range 1-4094"
        ]
        out = str(conn.send_command("nv frobnicate"))
        assert out.startswith("Error: ") and dialect.errors(out) == [out.strip()]
        out = str(conn.send_command("frobnicate"))
        assert dialect.errors(out) == ["-bash: frobnicate: command not found"]
        # a port with both access and untagged: refused at apply, nothing applied
        out = str(conn.send_command("nv set interface swp5 bridge domain br_default untagged 10"))
        assert out.strip() == ""
        out = str(conn.send_command("nv config apply --assume-yes"))
        assert "Config invalid at interface.swp5.bridge.domain.br_default" in out
        assert len(dialect.errors(out)) == 2, out  # "Invalid config" and "Config invalid at"
        conn.send_command("nv config detach")
        assert read_ports(nvue, conn, ["swp5"]) == {"swp5": access("swp5", 1)}
    finally:
        conn.disconnect()


# --------------------------------------------------------------------------- faults


def test_drop_after_two_cuts_the_batch(switch: LabSwitch) -> None:
    dialect = DIALECTS[switch.dialect]
    p6 = switch.port_name(6)
    changes = ChangeSet(
        vlans=(VlanChange(160, "dropped"),), ports=(PortChange(p6, PortMode.ACCESS, vlan=160),)
    )
    commands = dialect.render(changes)
    assert len(commands) > 3
    switch.set_faults(drop_after=2)
    conn = switch.connect(read_timeout=3)
    try:
        with pytest.raises(DROPPED):
            send_batch(switch, conn, commands)
    finally:
        with contextlib.suppress(Exception):
            conn.disconnect()
    switch.set_faults()
    conn = switch.connect()
    try:
        # the first two commands took effect, the rest never ran
        if switch.dialect == EOS:
            vlans = dialect.parse_vlans(str(conn.send_command("show vlan")))
            assert vlans[160].name == "dropped"  # "vlan 160", "name dropped"
        else:
            out = str(conn.send_command("nv config show -r pending -o json"))
            assert 160 in dialect.parse_vlans(out)  # "nv set bridge domain br_default vlan 160"
            conn.send_command("nv config detach")
        assert read_ports(switch, conn, [p6]) == {p6: access(p6, 1)}
    finally:
        conn.disconnect()


def test_config_locked_refuses_the_save(switch: LabSwitch) -> None:
    dialect = DIALECTS[switch.dialect]
    switch.set_faults(config_locked=True)
    conn = switch.connect()
    try:
        if switch.dialect == EOS:
            conn.enable()
        for command in dialect.save_commands():
            out = str(conn.send_command(command))
            errors = dialect.errors(out)
            assert len(errors) == 1 and "locked" in errors[0], out
        switch.set_faults()
        out = "\n".join(str(conn.send_command(c)) for c in dialect.save_commands())
        assert dialect.errors(out) == [], out
    finally:
        conn.disconnect()


def test_slow_switch_still_answers(switch: LabSwitch) -> None:
    switch.set_faults(slow=0.2)
    conn = switch.connect()
    try:
        p7 = switch.port_name(7)
        assert read_ports(switch, conn, [p7]) == {p7: access(p7, 1)}
    finally:
        conn.disconnect()


def test_fault_flags(tmp_path: Path) -> None:
    with lab_switch(EOS, tmp_path, "--fault", "auth-fail") as sw:
        with pytest.raises(NetmikoAuthenticationException):
            sw.connect()
        sw.set_faults(auth_fail=False)  # the control file overrides the flag
        sw.connect().disconnect()
    bad = subprocess.run(
        [*LAB_CMD, "--dialect", EOS, "--port", "1", "--fault", "sometimes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--fault 'sometimes'" in bad.stderr
