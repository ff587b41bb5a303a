"""The lab SONiC switch (provisiond/lab/switches/sonic.py) driven by an independent client:
netmiko's own ``linux`` driver (what networking-generic-switch uses for SONiC), fed with what
drivers/switch/dialects/sonic.py renders and read back with what it parses.

One lab process for the module; every test uses its own ports and VLANs, and faults are reset
before each test through the control file. The lab's sed is also checked against GNU sed on the
scripts the dialect renders, and its shell against what it must refuse.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from drivers.switch.base import ChangeSet, PortChange, PortMode, PortState, VlanChange
from drivers.switch.dialects.sonic import SonicDialect
from provisiond.lab.switch import FaultSource
from provisiond.lab.switch import LabSwitch as LabSwitchState
from provisiond.lab.switches.sonic import SedSubstitute, ShellError, SonicCli, parse
from tests.support.labswitch import DROPPED, LabSwitch, lab_switch

SONIC = SonicDialect()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabSwitch]:
    with lab_switch("sonic", tmp_path_factory.mktemp("sonic")) as sw:
        yield sw


@pytest.fixture
def sonic(lab: LabSwitch) -> LabSwitch:
    lab.set_faults()
    return lab


@pytest.fixture
def conn(sonic: LabSwitch) -> Iterator[Any]:
    c = sonic.connect()
    try:
        yield c
    finally:
        with contextlib.suppress(Exception):
            c.disconnect()


# --------------------------------------------------------------------------- helpers


def run(conn: Any, command: str) -> str:
    """``send_command`` expecting the current prompt (without ``expect_string`` netmiko looks for
    the prompt first, a round trip per command)."""
    return str(conn.send_command(command, expect_string=re.escape(conn.base_prompt)))


def send(conn: Any, commands: list[str]) -> str:
    """What our transport does for SONiC: one shell line at a time, each checked for errors."""
    outputs = []
    for command in commands:
        out = run(conn, command)
        assert SONIC.errors(out) == [], (command, out)
        outputs.append(out)
    return "\n".join(outputs)


def read_ports(conn: Any, ports: list[str]) -> dict[str, PortState]:
    out = "\n".join(run(conn, c) for c in SONIC.show_ports_command(ports))
    return {p: s for p, s in SONIC.parse_ports(out).items() if p in ports}


def saved_db(conn: Any) -> dict[str, Any]:
    saved: dict[str, Any] = json.loads(run(conn, "cat /etc/sonic/config_db.json"))
    return saved


def untouched(port: str) -> PortState:
    """A factory port: in no VLAN, admin up, MTU 9100, no description."""
    return PortState(port, None, shutdown=False, mtu=9100)


# --------------------------------------------------------------------------- the batch


def test_batch_applied_saved_and_read_back(sonic: LabSwitch, conn: Any) -> None:
    p1, p2, p3, p4 = (sonic.port_name(n) for n in (1, 2, 3, 4))
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
            PortChange(p3, PortMode.TRUNK, native_vlan=120),  # its native VLAN only
            PortChange(p4, shutdown=True),
        ),
    )
    assert conn.find_prompt() == "admin@lab-sonic:~$"
    send(conn, SONIC.render(changes))
    desired = {
        p1: PortState(p1, PortMode.ACCESS, vlan=120, shutdown=False, mtu=9100),
        p2: PortState(
            p2,
            PortMode.TRUNK,
            native_vlan=10,
            allowed_vlans=(10, 120),
            shutdown=False,
            mtu=9000,
            description="node-2 nic1 (r01)",
        ),
        p3: PortState(
            p3, PortMode.TRUNK, native_vlan=120, allowed_vlans=(120,), shutdown=False, mtu=9100
        ),
        p4: PortState(p4, None, shutdown=True, mtu=9100),
    }
    assert read_ports(conn, [p1, p2, p3, p4]) == desired
    assert {10, 120} <= set(SONIC.parse_vlans(str(conn.send_command("show vlan brief"))))

    # live at once, saved only by the save
    assert f"Vlan120|{p1}" not in saved_db(conn).get("VLAN_MEMBER", {})
    out = send(conn, SONIC.save_commands())
    assert out.strip() == (
        "Running command: /usr/local/bin/sonic-cfggen -d --print-data > /etc/sonic/config_db.json"
    )
    saved = saved_db(conn)
    assert saved["VLAN_MEMBER"][f"Vlan120|{p1}"] == {"tagging_mode": "untagged"}
    assert saved["PORT"][p2]["description"] == "node-2 nic1 (r01)"
    assert saved["PORT"][p3]["mode"] == "trunk"
    assert json.loads(str(conn.send_command("show runningconfiguration all"))) == saved

    # the same batch again changes nothing and refuses nothing (VLANs exist, modes are set)
    send(conn, SONIC.render(changes))
    assert read_ports(conn, [p1, p2, p3, p4]) == desired


def test_sweep_moves_a_port_and_leaves_the_others(sonic: LabSwitch, conn: Any) -> None:
    p5, p6 = sonic.port_name(5), sonic.port_name(6)
    send(
        conn,
        SONIC.render(
            ChangeSet(
                vlans=(VlanChange(130), VlanChange(131), VlanChange(132)),
                ports=(
                    PortChange(p5, PortMode.TRUNK, native_vlan=130, allowed_vlans=(131, 132)),
                    PortChange(p6, PortMode.TRUNK, native_vlan=130, allowed_vlans=(131,)),
                ),
            )
        ),
    )
    commands = SONIC.render(ChangeSet(ports=(PortChange(p5, PortMode.ACCESS, vlan=132),)))
    assert "sonic-db-cli CONFIG_DB KEYS" in commands[0]  # the sweep
    send(conn, commands)
    got = read_ports(conn, [p5, p6])
    assert (got[p5].mode, got[p5].vlan) == (PortMode.ACCESS, 132), got[p5]
    assert (got[p6].native_vlan, got[p6].allowed_vlans) == (130, (130, 131)), got[p6]
    keys = str(conn.send_command(f"sonic-db-cli CONFIG_DB KEYS 'VLAN_MEMBER|Vlan*|{p5}'"))
    assert keys.split() == [f"VLAN_MEMBER|Vlan132|{p5}"]
    # and the VLANs go once they are empty
    send(
        conn,
        SONIC.render(
            ChangeSet(
                vlans=(VlanChange(131, delete=True),),
                ports=(PortChange(p6, PortMode.ACCESS, vlan=130),),
            )
        ),
    )
    assert 131 not in SONIC.parse_vlans(str(conn.send_command("show vlan brief")))


def test_batch_through_sudo_s(sonic: LabSwitch, conn: Any) -> None:
    """netmiko's linux driver enters "config mode" with ``sudo -s`` (the password as
    ``secret``); the dialect's lines work from that root shell too."""
    p7 = sonic.port_name(7)
    changes = ChangeSet(
        vlans=(VlanChange(140),), ports=(PortChange(p7, PortMode.ACCESS, vlan=140),)
    )
    out = str(conn.send_config_set(SONIC.render(changes)))
    assert "[sudo] password for admin:" in out and "root@lab-sonic:/home/admin#" in out, out
    assert SONIC.errors(out) == [], out
    assert not conn.check_config_mode()  # back to the user's shell
    assert conn.send_command("whoami").strip() == "admin"
    conn.config_mode()
    assert conn.send_command("whoami").strip() == "root"
    assert SONIC.errors(str(conn.send_command("config save -y"))) == []  # root: no sudo
    conn.exit_config_mode()
    assert read_ports(conn, [p7]) == {
        p7: PortState(p7, PortMode.ACCESS, vlan=140, shutdown=False, mtu=9100)
    }
    assert saved_db(conn)["VLAN_MEMBER"][f"Vlan140|{p7}"] == {"tagging_mode": "untagged"}


def test_sudo_s_with_a_wrong_password(sonic: LabSwitch) -> None:
    from netmiko import ConnectHandler

    conn = ConnectHandler(
        device_type="linux",
        host="127.0.0.1",
        port=sonic.port,
        username=sonic.username,
        password=sonic.password,
        secret="not-the-password",
        fast_cli=False,
        read_timeout_override=3,
    )
    try:
        with pytest.raises(ValueError, match="failed to elevate privileges"):
            conn.config_mode()
    finally:
        with contextlib.suppress(Exception):
            conn.disconnect()


# --------------------------------------------------------------------------- errors


def refused(conn: Any, command: str) -> list[str]:
    out = run(conn, command)
    errors = SONIC.errors(out)
    assert errors, (command, out)
    return errors


def test_sonic_refusals_are_caught(sonic: LabSwitch, conn: Any) -> None:
    p8 = sonic.port_name(8)
    assert refused(conn, "config vlan add 150") == [
        "Root privileges are required for this operation"
    ]
    send(conn, ["sudo config vlan add 150", f"sudo config vlan member add -u 150 {p8}"])
    assert refused(conn, "sudo config vlan add 150") == [
        "Usage: config vlan add [OPTIONS] <vid>",
        "Error: Vlan150 already exists.",
    ]
    assert refused(conn, "sudo config vlan del 150")[1] == (
        "Error: VLAN ID 150 can not be removed. First remove all members assigned to this VLAN."
    )
    assert refused(conn, f"sudo config vlan member add 999 {p8}")[1] == (
        "Error: Vlan999 does not exist"
    )
    assert refused(conn, f"sudo config vlan member add -u 150 {p8}")[1] == (
        f"Error: {p8} is already a member of Vlan150"
    )
    assert refused(conn, "sudo config vlan member add 150 Ethernet300")[1] == (
        "Error: Ethernet300 does not exist"
    )
    assert refused(conn, f"sudo config vlan member del 150 {sonic.port_name(9)}")[1] == (
        f"Error: {sonic.port_name(9)} is not a member of Vlan150"
    )
    assert refused(conn, "sudo config vlan add 1")[1] == "Error: Vlan1 is default VLAN"
    assert refused(conn, f"sudo config interface mtu {p8} 9300")[1] == (
        'Error: Invalid value for "<interface_mtu>": 9300 is not in the valid range of 68 to 9216.'
    )
    assert refused(conn, "sudo config interface mtu Ethernet300 9000") == [
        "Invalid port Ethernet300"
    ]
    assert refused(conn, "sudo config interface shutdown Ethernet300")[1] == (
        "Error: Interface name is invalid. Please enter a valid interface name!!"
    )
    # community SONiC has no `config interface description` (the dialect writes CONFIG_DB)
    assert refused(conn, f"sudo config interface description {p8} x")[1] == (
        'Error: No such command "description".'
    )
    assert refused(conn, f"sudo config switchport mode bogus {p8}")[1].startswith(
        'Error: Invalid value for "<mode_type>": invalid choice: bogus.'
    )
    send(conn, [f"sudo config switchport mode access {p8}"])
    assert refused(conn, f"sudo config switchport mode access {p8}")[1] == (
        f"Error: {p8} is already in access mode"
    )
    send(conn, ["sudo config vlan add 151"])
    assert refused(conn, f"sudo config vlan member add 151 {p8}")[1] == (
        f"Error: {p8} is in access mode! Tagged Members cannot be added"
    )
    assert refused(conn, "frobnicate") == ["-bash: frobnicate: command not found"]
    assert refused(conn, "sudo frobnicate") == ["sudo: frobnicate: command not found"]
    assert refused(conn, "show vlan brief && reboot") == [
        "-bash: &&: not supported by the provisiond lab shell"
    ]
    assert refused(conn, "sonic-db-cli CONFIG_DB FROB x") == [
        "ERR unknown command 'FROB', with args beginning with:"
    ]
    # nothing above changed the port beyond the two commands that were accepted
    got = read_ports(conn, [p8])[p8]
    assert (got.mode, got.vlan, got.mtu) == (PortMode.ACCESS, 150, 9100), got


def test_save_needs_its_yes(sonic: LabSwitch, conn: Any) -> None:
    # expect_string for the answer too: without one, send_command first sends a bare newline to
    # find the prompt, and that newline is click's default answer (N)
    prompt = r"admin@lab-sonic:~\$"
    out = str(conn.send_command("sudo config save", expect_string=r"\[y/N\]: "))
    assert "Existing files will be overwritten, continue?" in out
    out = str(conn.send_command("n", expect_string=prompt))
    assert SONIC.errors(out) == ["Aborted!"]
    conn.send_command("sudo config save", expect_string=r"\[y/N\]: ")
    out = str(conn.send_command("y", expect_string=prompt))
    assert "Running command: " in out and SONIC.errors(out) == []


# --------------------------------------------------------------------------- faults


def test_drop_after_two_cuts_the_batch(sonic: LabSwitch) -> None:
    p10 = sonic.port_name(10)
    commands = SONIC.render(
        ChangeSet(vlans=(VlanChange(160),), ports=(PortChange(p10, PortMode.ACCESS, vlan=160),))
    )
    assert len(commands) == 4  # the VLAN, the sweep, the mode, the membership
    sonic.set_faults(drop_after=2)
    conn = sonic.connect(read_timeout=3)
    try:
        assert conn.send_command("show vlan brief")  # not a configuration command: not counted
        with pytest.raises(DROPPED):
            send(conn, commands)
    finally:
        with contextlib.suppress(Exception):
            conn.disconnect()
    sonic.set_faults()
    conn = sonic.connect()
    try:
        # the first two lines took effect (the VLAN, the sweep), the rest never ran
        assert 160 in SONIC.parse_vlans(str(conn.send_command("show vlan brief")))
        assert read_ports(conn, [p10]) == {p10: untouched(p10)}
        send(conn, commands)  # the whole batch again: the VLAN exists, nothing refused
        assert read_ports(conn, [p10])[p10].vlan == 160
    finally:
        conn.disconnect()


def test_config_locked_refuses_the_save(sonic: LabSwitch, conn: Any) -> None:
    sonic.set_faults(config_locked=True)
    for command in SONIC.save_commands():
        out = str(conn.send_command(command))
        assert SONIC.errors(out) == ["Failed to acquire lock on /etc/sonic/reload.lock"], out
        assert any(p.search(out) for p in SONIC.retry_patterns)  # the transport retries it
    sonic.set_faults()
    assert SONIC.errors(str(conn.send_command(SONIC.save_commands()[0]))) == []


def test_slow_switch_still_answers(sonic: LabSwitch) -> None:
    sonic.set_faults(slow=0.2)
    conn = sonic.connect()
    try:
        p11 = sonic.port_name(11)
        assert read_ports(conn, [p11]) == {p11: untouched(p11)}
    finally:
        conn.disconnect()


# --------------------------------------------------------------------------- the lab's shell


def _scripts() -> list[str]:
    """Every sed script the dialect renders."""
    lines = SONIC.render(
        ChangeSet(
            vlans=(VlanChange(300), VlanChange(301, delete=True)),
            ports=(
                PortChange("Ethernet4", PortMode.ACCESS, vlan=300, description="x"),
                PortChange("Ethernet5", PortMode.TRUNK, native_vlan=300, allowed_vlans=(301,)),
                PortChange("Ethernet6", PortMode.TRUNK, native_vlan=300),
            ),
        )
    )
    scripts = [line.split("sed -n '")[1].split("'")[0] for line in lines if "sed -n '" in line]
    assert len(scripts) == 9
    return scripts


@pytest.mark.skipif(
    shutil.which("sed") is None
    or "GNU" not in subprocess.run(["sed", "--version"], capture_output=True, text=True).stdout,
    reason="needs GNU sed to compare with",
)
@pytest.mark.parametrize("script", _scripts())
def test_lab_sed_agrees_with_gnu_sed(script: str) -> None:
    text = (
        "VLAN_MEMBER|Vlan300|Ethernet4\nVLAN_MEMBER|Vlan31|Ethernet4\nVlan300|Ethernet4\n"
        "0\n1\n10\n\naccess\ntrunk\nrouted\nNone\nVLAN_MEMBER|Vlan|Ethernet4\n"
    )
    gnu = subprocess.run(["sed", "-n", script], input=text, capture_output=True, text=True)
    subst = SedSubstitute(script)
    ours = []
    for line in text.splitlines():
        new, done = subst(line)
        if done and subst.prints:
            ours.append(new + "\n")
    assert "".join(ours) == gnu.stdout


@pytest.mark.parametrize(
    "line", ["a && b", "a || b", "a > f", "a < f", "a &", "(a)", "echo `id`", "echo $((1+1))"]
)
def test_lab_shell_refuses_what_it_does_not_emulate(line: str) -> None:
    with pytest.raises(ShellError, match="not supported by the provisiond lab shell"):
        parse(line)


@pytest.mark.parametrize(
    "line", ["for v in a; done", "for v in a; do; done", "| a", "a |", "for 1 in a; do b; done"]
)
def test_lab_shell_syntax_errors(line: str) -> None:
    with pytest.raises(ShellError, match=r"^-bash: "):
        parse(line)


def test_what_drop_after_counts() -> None:
    switch = LabSwitchState(
        SonicCli,
        port=1,
        ports=8,
        username="admin",
        password="x",
        faults=FaultSource(1, {}, None),
    )
    cli = SonicCli(switch, None, "admin")  # type: ignore[arg-type]
    batch = ChangeSet(
        vlans=(VlanChange(300),),
        ports=(PortChange("Ethernet4", PortMode.ACCESS, vlan=300, mtu=9000, description="x"),),
    )
    for line in [*SONIC.render(batch), *SONIC.save_commands(), "config vlan add 5"]:
        assert cli.is_config_command(line), line
    for line in [*SONIC.show_ports_command(["Ethernet4"]), "sudo -s", "exit", "a && b", ""]:
        assert not cli.is_config_command(line), line
