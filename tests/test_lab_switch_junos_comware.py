"""The Junos (ELS) and Comware 7 lab switches driven by netmiko's own ``juniper_junos`` and
``hp_comware`` drivers, fed with what our dialects render and read back with what our dialects
parse: batches committed/saved and read back equal to what was asked, the vendors' semantics our
dialects are written against (Junos ``vlan members`` appends and a commit refuses undefined
VLANs; Comware ``port trunk permit`` adds; private Junos edits vanish with their session), the
vendors' error texts, and the faults.

One lab process per dialect for the module; every test uses its own ports and VLANs, and faults
are reset before each test through the control file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from drivers.switch.base import (
    ChangeSet,
    PortChange,
    PortMode,
    PortState,
    SwitchError,
    VlanChange,
)
from drivers.switch.dialects.comware import ComwareDialect
from drivers.switch.dialects.junos import JunosDialect
from drivers.switch.netmiko_driver import NetmikoDriver
from tests.support.labswitch import DROPPED, LabSwitch, lab_switch

JUNOS, COMWARE = "junos", "comware"
JD, CD = JunosDialect(), ComwareDialect()
PRIVATE = "configure private"
JPROMPT = "admin@lab-junos# "
CW_PROMPT = r"(?m)^[\[<]lab-comware\S*[\]>]$"  # any view's prompt: the view changes with lines


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LabSwitch]]:
    tmp = tmp_path_factory.mktemp("labswitch-jc")
    with lab_switch(JUNOS, tmp) as junos, lab_switch(COMWARE, tmp) as comware:
        yield {JUNOS: junos, COMWARE: comware}


@pytest.fixture
def junos(labs: dict[str, LabSwitch]) -> LabSwitch:
    labs[JUNOS].set_faults()
    return labs[JUNOS]


@pytest.fixture
def comware(labs: dict[str, LabSwitch]) -> LabSwitch:
    labs[COMWARE].set_faults()
    return labs[COMWARE]


@pytest.fixture(params=[JUNOS, COMWARE])
def switch(request: pytest.FixtureRequest, labs: dict[str, LabSwitch]) -> LabSwitch:
    sw = labs[request.param]
    sw.set_faults()
    return sw


@contextlib.contextmanager
def session(sw: LabSwitch, **kwargs: Any) -> Iterator[Any]:
    conn = sw.connect(**kwargs)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.disconnect()


def cut(conn: Any) -> None:
    """The session dies: the TCP connection goes without a word to the switch."""
    conn.remote_conn.get_transport().close()


# --------------------------------------------------------------------------- helpers


def junos_batch(conn: Any, commands: list[str]) -> str:
    """What our transport does on Junos: the rendered lines in ``configure private``."""
    out = str(conn.send_config_set(commands, config_mode_command=PRIVATE, exit_config_mode=False))
    assert JD.errors(out) == [], out
    return out


def junos_read(conn: Any, ports: list[str]) -> dict[str, PortState]:
    out = "\n".join(str(conn.send_command(c)) for c in JD.show_ports_command(ports))
    return {p: s for p, s in JD.parse_ports(out).items() if p in ports}


def comware_lines(conn: Any, commands: list[str]) -> str:
    """``commands`` typed in system view, each read up to its prompt (netmiko's own
    ``send_config_set`` for hp_comware waits for silence after every batch; the batch test
    uses it), then back to user view."""
    conn.config_mode()
    try:
        return "\n".join(str(conn.send_command(c, expect_string=CW_PROMPT)) for c in commands)
    finally:
        conn.exit_config_mode()


def comware_batch(conn: Any, commands: list[str]) -> str:
    out = comware_lines(conn, commands)
    assert CD.errors(out) == [], out
    return out


def comware_read(conn: Any, ports: list[str], command: str | None = None) -> dict[str, PortState]:
    if command is not None:  # a whole configuration (its sysname line holds the prompt's text)
        out = str(conn.send_command(command, expect_string=r"(?m)^return\s*$"))
    else:
        out = "\n".join(str(conn.send_command(c)) for c in CD.show_ports_command(ports))
    return {p: s for p, s in CD.parse_ports(out).items() if p in ports}


def access(port: str, vlan: int) -> PortState:
    return PortState(port, PortMode.ACCESS, vlan=vlan, shutdown=False)


def trunk(port: str, native: int, allowed: tuple[int, ...], **kw: Any) -> PortState:
    return PortState(port, PortMode.TRUNK, native_vlan=native, allowed_vlans=allowed,
                     shutdown=False, **kw)  # fmt: skip


def caret(line: str) -> int:
    """The column of the caret in a caret line."""
    assert line.strip() == "^", line
    return line.index("^")


def error_lines(out: str) -> list[str]:
    return [x for x in out.splitlines() if x.strip()]


BATCH = ChangeSet(
    vlans=(VlanChange(110, "tenant-a"), VlanChange(120)),
    ports=(
        PortChange("P1", PortMode.ACCESS, vlan=110),
        PortChange(
            "P2",
            PortMode.TRUNK,
            native_vlan=110,
            allowed_vlans=(120,),
            mtu=9000,
            description="node-2 nic1 (r01)",
        ),
    ),
)


def batch_for(sw: LabSwitch, changes: ChangeSet, *numbers: int) -> ChangeSet:
    """``changes`` with its P1, P2 ... on this switch's ports ``numbers``."""
    names = {f"P{i + 1}": sw.port_name(n) for i, n in enumerate(numbers)}
    ports = tuple(
        PortChange(
            names[p.port],
            p.mode,
            p.vlan,
            p.native_vlan,
            p.allowed_vlans,
            p.shutdown,
            p.mtu,
            p.description,
        )
        for p in changes.ports
    )
    return ChangeSet(changes.vlans, ports)


# --------------------------------------------------------------------------- Junos


def test_junos_session_setup_and_prompts(junos: LabSwitch) -> None:
    with session(junos) as conn:
        assert conn.base_prompt == "admin@lab-junos"
        assert not conn.check_config_mode()
        out = str(conn.config_mode(config_command=PRIVATE))
        assert "warning: uncommitted changes will be discarded on exit" in out
        assert conn.check_config_mode()
        assert "{master:0}[edit]" in str(conn.send_command("", strip_prompt=False))
        conn.exit_config_mode()
        assert not conn.check_config_mode()
        version = str(conn.send_command("show version"))
        assert "Hostname: lab-junos" in version and "Model: ex4300-48t" in version


def test_junos_batch_committed_and_read_back(junos: LabSwitch) -> None:
    changes = batch_for(junos, BATCH, 1, 2)
    p1, p2 = junos.port_name(1), junos.port_name(2)
    with session(junos) as conn:
        junos_batch(conn, JD.render(changes))
        assert "+   vlan110 {" in str(conn.send_command("show | compare"))
        assert "commit complete" in str(conn.commit())
        conn.exit_config_mode()
        assert junos_read(conn, [p1, p2]) == {
            p1: access(p1, 110),
            p2: trunk(p2, 110, (110, 120), mtu=9000, description="node-2 nic1 (r01)"),
        }
        vlans = JD.parse_vlans(str(conn.send_command(JD.show_vlans_command())))
        assert vlans[110].name == "tenant-a" and vlans[120].name == "vlan120"
        show = str(conn.send_command("show vlans vlan110"))
        assert f"{p1}.0" in show and f"{p2}.0" in show
        # the untouched ports are in VLAN default (1), as on a factory-default EX
        p3 = junos.port_name(3)
        assert junos_read(conn, [p3]) == {p3: access(p3, 1)}


def test_junos_uncommitted_is_not_read_back(junos: LabSwitch) -> None:
    p4 = junos.port_name(4)
    changes = ChangeSet(
        vlans=(VlanChange(130),), ports=(PortChange(p4, PortMode.ACCESS, vlan=130),)
    )
    with session(junos) as conn:
        junos_batch(conn, JD.render(changes))
        out = "\n".join(str(conn.send_command("run " + c)) for c in JD.show_ports_command([p4]))
        assert JD.parse_ports(out)[p4] == access(p4, 1)  # `run show configuration`: committed
        cand = str(conn.send_command(f"show interfaces {p4} | display set"))
        assert f"set interfaces {p4} unit 0 family ethernet-switching vlan members 130" in cand
        assert "commit complete" in str(conn.commit())
        out = "\n".join(str(conn.send_command("run " + c)) for c in JD.show_ports_command([p4]))
        assert JD.parse_ports(out)[p4] == access(p4, 130)


def test_junos_members_append_so_the_dialect_deletes_first(junos: LabSwitch) -> None:
    p5 = junos.port_name(5)
    esw = f"interfaces {p5} unit 0 family ethernet-switching"
    with session(junos) as conn:
        junos_batch(conn, ["set vlans vlan140 vlan-id 140", "set vlans vlan141 vlan-id 141",
                           f"set {esw} vlan members 140"])  # fmt: skip
        assert "commit complete" in str(conn.commit())
        # a naive move: the second `members` is appended, and ELS refuses two on an access port
        junos_batch(conn, [f"set {esw} vlan members 141"])
        shown = str(conn.send_command(f"show {esw} vlan"))
        assert "members [ 140 141 ];" in shown, shown
        out = str(conn.send_command("commit"))
        assert JD.errors(out) == ["error: configuration check-out failed"], out
        assert (
            f"Access interface <{p5}.0> has more than one vlan member: <vlan140> and <vlan141>"
            in out
        )
        assert "commit complete" not in out
        assert "load complete" in str(conn.send_command("rollback 0"))
        # the dialect's move deletes the list first: one member, committed
        move = JD.render(ChangeSet(ports=(PortChange(p5, PortMode.ACCESS, vlan=141),)))
        junos_batch(conn, move)
        assert "commit complete" in str(conn.commit())
        conn.exit_config_mode()
        assert junos_read(conn, [p5]) == {p5: access(p5, 141)}


def test_junos_commit_refuses_undefined_vlan(junos: LabSwitch) -> None:
    p6 = junos.port_name(6)
    with session(junos) as conn:
        # the port alone, without its VLAN: ELS refuses the commit
        port_only = JD.render(ChangeSet(ports=(PortChange(p6, PortMode.ACCESS, vlan=333),)))
        junos_batch(conn, port_only)
        out = str(conn.send_command("commit"))
        assert JD.errors(out)[-1] == "error: configuration check-out failed", out
        assert f"No vlan matches vlan tag 333 for interface {p6}.0" in out
        assert f"[edit interfaces {p6} unit 0 family ethernet-switching vlan]" in out
        assert not any(p.search(out) for p in JD.retry_patterns)  # not a lock: no retry
        conn.send_command("rollback")
        # the dialect creates the VLAN in the same batch, before the port uses it
        batch = ChangeSet(
            vlans=(VlanChange(333),), ports=(PortChange(p6, PortMode.ACCESS, vlan=333),)
        )
        commands = JD.render(batch)
        assert commands.index("set vlans vlan333 vlan-id 333") < commands.index(port_only[-1])
        junos_batch(conn, commands)
        assert "commit complete" in str(conn.commit())
        conn.exit_config_mode()
        assert junos_read(conn, [p6]) == {p6: access(p6, 333)}


def test_junos_delete_of_absent_statement_only_warns(junos: LabSwitch) -> None:
    p7 = junos.port_name(7)
    with session(junos) as conn:
        conn.config_mode(config_command=PRIVATE)
        out = str(conn.send_command(f"delete interfaces {p7} native-vlan-id"))
        assert out.strip() == "warning: statement not found"
        assert JD.errors(out) == []
        assert str(conn.send_command("show | compare")).strip() == ""


def test_junos_vendor_errors(junos: LabSwitch) -> None:
    with session(junos) as conn:
        out = str(conn.send_command("show bogus"))
        assert error_lines(out)[1:] == ["syntax error, expecting <command>."]
        assert caret(error_lines(out)[0]) == len("admin@lab-junos> show ")
        out = str(conn.send_command("frobnicate"))
        assert JD.errors(out) == ["unknown command."]
        conn.config_mode(config_command=PRIVATE)
        line = "set interfaces ge-0/0/1 unit 0 family ethernet-switching vlan memberz 100"
        out = str(conn.send_command(line))
        assert JD.errors(out) == ["syntax error."]
        assert caret(error_lines(out)[0]) == len(JPROMPT) + line.index("memberz")
        out = str(conn.send_command("set vlans v5000 vlan-id 5000"))
        assert JD.errors(out) == ["Value 5000 is not within range (1..4094) at '5000'"]
        out = str(conn.send_command("set interfaces ge-0/0/1 mtu"))
        assert JD.errors(out) == ["missing argument."]
        out = str(conn.send_command("set interfaces foo0 mtu 1500"))
        assert "invalid interface type in 'foo0'" in out
        out = str(conn.send_command("commit confirmed"))
        assert JD.errors(out) == ["error: commit confirmed not supported for private configuration"]
        assert str(conn.send_command("show | compare")).strip() == ""  # nothing was taken


def test_junos_private_edits_vanish_with_the_session(junos: LabSwitch) -> None:
    p8, p9 = junos.port_name(8), junos.port_name(9)
    change = ChangeSet(vlans=(VlanChange(150),), ports=(PortChange(p8, PortMode.ACCESS, vlan=150),))
    with session(junos) as a:
        junos_batch(a, JD.render(change))
        cut(a)  # dies before `commit`
    # a session that leaves through netmiko's exit_config_mode answers "yes" and loses them too
    with session(junos) as b:
        junos_batch(b, JD.render(ChangeSet(ports=(PortChange(p9, PortMode.ACCESS, vlan=150),))))
        out = str(b.exit_config_mode())
        assert "Exit with uncommitted changes? [yes,no] (yes)" in out
        assert not b.check_config_mode()
    with session(junos) as c:
        assert junos_read(c, [p8, p9]) == {p8: access(p8, 1), p9: access(p9, 1)}
        assert "vlan150" not in str(c.send_command("show configuration vlans | display set"))
        c.config_mode(config_command=PRIVATE)  # the shared database is clean
        assert str(c.send_command("show | compare")).strip() == ""


def test_junos_exclusive_session_locks_commits_until_it_goes(junos: LabSwitch) -> None:
    with session(junos) as holder, session(junos) as other:
        out = str(holder.send_command("configure exclusive", expect_string=r"#\s*$"))
        assert "Entering configuration mode" in out
        other.config_mode(config_command=PRIVATE)  # entering is allowed; committing is not
        other.send_command("set vlans vlan160 vlan-id 160")
        out = str(other.send_command("commit"))
        assert JD.errors(out) == ["error: configuration database locked by:"], out
        assert any(p.search(out) for p in JD.retry_patterns)
        assert "exclusive [edit]" in out and "commit complete" not in out
        # the holder's session dies: its lock goes with it (and its uncommitted edits)
        holder.send_command("set system host-name not-committed")
        cut(holder)
        out = ""
        for _ in range(20):  # the lab notices the closed channel as soon as it is closed
            out = str(other.send_command("commit"))
            if "commit complete" in out:
                break
        assert "commit complete" in out, out
        assert "host-name lab-junos;" in str(other.send_command("run show configuration system"))


def test_junos_dirty_shared_candidate_blocks_private_mode(junos: LabSwitch) -> None:
    with session(junos) as shared, session(junos) as private:
        out = str(shared.config_mode())  # plain `configure`: the shared candidate
        shared.send_command("set vlans vlan170 vlan-id 170")
        out = str(private.send_command(PRIVATE, expect_string=r">\s*$"))
        assert JD.errors(out) == ["error: shared configuration database modified"], out
        assert "load complete" in str(shared.send_command("rollback 0"))
        private.config_mode(config_command=PRIVATE)
        assert private.check_config_mode()


# --------------------------------------------------------------------------- Comware


def test_comware_session_setup_and_views(comware: LabSwitch) -> None:
    with session(comware) as conn:
        assert conn.base_prompt == "lab-comware"
        out = str(conn.send_command("system-view", expect_string=r"\]$"))
        assert out.splitlines()[-1] == "System View: return to User View with Ctrl+Z."
        conn.send_command("return", expect_string=r">$")
        out = str(conn.send_config_set([f"interface {comware.port_name(1)}", "vlan 20"]))
        assert "[lab-comware-GigabitEthernet1/0/1]" in out and "[lab-comware-vlan20]" in out
        assert conn.find_prompt() == "<lab-comware>"  # `return` brought it back
        assert "HPE Comware Software, Version 7.1" in str(conn.send_command("display version"))
        conn.send_config_set(["undo vlan 20"])


def test_comware_batch_saved_and_read_back(comware: LabSwitch) -> None:
    changes = batch_for(comware, BATCH, 1, 2)
    p1, p2 = comware.port_name(1), comware.port_name(2)
    want = {
        p1: access(p1, 110),
        p2: trunk(p2, 110, (110, 120), mtu=9000, description="node-2 nic1 (r01)"),
    }
    with session(comware) as conn:
        out = str(conn.send_config_set(CD.render(changes)))  # system-view ... return
        assert CD.errors(out) == [], out
        assert comware_read(conn, [p1, p2]) == want
        assert comware_read(conn, [p1], "display saved-configuration") == {p1: access(p1, 1)}
        out = str(conn.save_config())
        assert "Saved the current configuration to mainboard device successfully." in out
        assert CD.errors(out) == []
        assert comware_read(conn, [p1, p2], "display saved-configuration") == want
        vlans = CD.parse_vlans(str(conn.send_command(CD.show_vlans_command())))
        assert vlans[110].name == "tenant-a" and vlans[120].name == "VLAN 0120"
        block = str(conn.send_command("display vlan 120"))
        assert "Tagged ports:" in block and p2 in block


def test_comware_trunk_permit_adds_and_link_type_change_drops_trunk_settings(
    comware: LabSwitch,
) -> None:
    p3 = comware.port_name(3)
    with session(comware) as conn:
        comware_batch(conn, ["vlan 130 to 133", f"interface {p3}", "port link-type trunk",
                             "port trunk permit vlan 130", "port trunk permit vlan 131 to 132",
                             "port trunk pvid vlan 130"])  # fmt: skip
        # permits add up (VLAN 1 is permitted from the start)
        assert comware_read(conn, [p3]) == {p3: trunk(p3, 130, (1, 130, 131, 132))}
        # the dialect's trunk replaces the list: emptied first, then permitted
        change = ChangeSet(ports=(PortChange(p3, PortMode.TRUNK, native_vlan=133,
                                             allowed_vlans=(130,)),))  # fmt: skip
        comware_batch(conn, CD.render(change))
        assert comware_read(conn, [p3]) == {p3: trunk(p3, 133, (130, 133))}
        # back to quarantine: access, and nothing of the trunk stays
        comware_batch(
            conn, CD.render(ChangeSet(ports=(PortChange(p3, PortMode.ACCESS, vlan=131),)))
        )
        assert comware_read(conn, [p3]) == {p3: access(p3, 131)}
        comware_batch(conn, [f"interface {p3}", "port link-type trunk"])
        assert comware_read(conn, [p3]) == {p3: trunk(p3, 1, (1,))}
        # trunk to hybrid only through access, as Comware requires
        out = comware_lines(conn, [f"interface {p3}", "port link-type hybrid"])
        assert CD.errors(out) == ["Please set the link type of the port to access first."]


def test_comware_vendor_errors(comware: LabSwitch) -> None:
    p5 = comware.port_name(5)
    with session(comware) as conn:
        out = str(conn.send_command("display bogus"))
        assert CD.errors(out) == ["% Unrecognized command found at '^' position."]
        assert caret(error_lines(out)[0]) == len("<lab-comware>display ")
        prompt = f"[lab-comware-{p5}]"
        conn.config_mode()
        conn.send_command(f"interface {p5}", expect_string=CW_PROMPT)
        out = str(conn.send_command("port access vlan 5000", expect_string=CW_PROMPT))
        assert CD.errors(out) == ["% Wrong parameter found at '^' position."], out
        assert caret(error_lines(out)[0]) == len(prompt + "port access vlan ")
        out = str(conn.send_command("port link-type", expect_string=CW_PROMPT))
        assert CD.errors(out) == ["% Incomplete command found at '^' position."]
        assert caret(error_lines(out)[0]) == len(prompt + "port link-type ")
        out = str(conn.send_command("shutdown now", expect_string=CW_PROMPT))
        assert CD.errors(out) == ["% Too many parameters found at '^' position."]
        out = str(conn.send_command("port access vlan 3999", expect_string=CW_PROMPT))
        assert CD.errors(out) == ["VLAN 3999 does not exist."]  # an access VLAN must exist
        out = str(conn.send_command("interface GigabitEthernet1/0/99", expect_string=CW_PROMPT))
        assert CD.errors(out) == ["% Wrong parameter found at '^' position."]
        out = str(conn.send_command("d", expect_string=CW_PROMPT))  # display? description?
        assert CD.errors(out) == ["% Ambiguous command found at '^' position."]
        conn.exit_config_mode()
        assert comware_read(conn, [p5]) == {p5: access(p5, 1)}


def test_comware_abbreviations_and_deleted_vlan(comware: LabSwitch) -> None:
    p6 = comware.port_name(6)
    with session(comware) as conn:
        comware_batch(conn, ["vlan 160", "quit", "int ge1/0/6", "port acc vlan 160"])
        out = str(conn.send_command("disp cur int GigabitEthernet 1/0/6"))
        assert CD.parse_ports(out) == {p6: access(p6, 160)}
        comware_batch(conn, ["undo vlan 160"])  # its access ports go back to VLAN 1
        assert comware_read(conn, [p6]) == {p6: access(p6, 1)}


def test_comware_save_asks_before_overwriting(comware: LabSwitch) -> None:
    p7 = comware.port_name(7)
    with session(comware) as conn:
        comware_batch(conn, ["vlan 170", "quit", f"interface {p7}", "shutdown"])
        conn.write_channel("save\n")
        assert "Are you sure? [Y/N]:" in conn.read_until_pattern(r"\[Y/N\]:")
        conn.write_channel("y\n")
        conn.read_until_pattern(r"press the enter key\):")
        conn.write_channel("\n")  # the default file name
        assert "overwrite?" in conn.read_until_pattern(r"\[Y/N\]:")
        conn.write_channel("y\n")
        out = conn.read_until_pattern(r"<lab-comware>")
        assert "Saved the current configuration to mainboard device successfully." in out
        saved = comware_read(conn, [p7], "display saved-configuration")
        assert saved[p7].shutdown is True


# --------------------------------------------------------------------------- faults


def test_drop_after_cuts_the_batch(switch: LabSwitch) -> None:
    p10 = switch.port_name(10)
    change = ChangeSet(vlans=(VlanChange(180, "dropped"),),
                       ports=(PortChange(p10, PortMode.ACCESS, vlan=180),))  # fmt: skip
    dialect = JD if switch.dialect == JUNOS else CD
    commands = dialect.render(change)
    assert len(commands) > 3
    switch.set_faults(drop_after=2)
    with session(switch, read_timeout=3) as conn, pytest.raises(DROPPED):
        (junos_batch if switch.dialect == JUNOS else comware_batch)(conn, commands)
        if switch.dialect == JUNOS:
            conn.commit()
    switch.set_faults()
    with session(switch) as conn:
        if switch.dialect == JUNOS:
            # the two lines ran in a private candidate that died with the session: nothing
            assert "vlan180" not in str(conn.send_command("show configuration vlans"))
            assert junos_read(conn, [p10]) == {p10: access(p10, 1)}
        else:
            # Comware applies each line at once: `vlan 180` and `name dropped` took effect
            vlans = CD.parse_vlans(str(conn.send_command("display vlan all")))
            assert vlans[180].name == "dropped"
            assert comware_read(conn, [p10]) == {p10: access(p10, 1)}


def test_config_locked_refuses_the_commit_or_save(switch: LabSwitch) -> None:
    switch.set_faults(config_locked=True)
    with session(switch) as conn:
        if switch.dialect == JUNOS:
            conn.config_mode(config_command=PRIVATE)
            conn.send_command("set vlans vlan185 vlan-id 185")
            out = str(conn.send_command("commit"))
            assert JD.errors(out) == ["error: configuration database locked by:"], out
            assert "root terminal p0" in out and "exclusive [edit]" in out
            assert any(p.search(out) for p in JD.retry_patterns)
            switch.set_faults()
            assert "commit complete" in str(conn.send_command("commit"))
        else:
            out = str(conn.send_command("save force"))
            assert CD.errors(out) == [
                "Error: The configuration is locked by another user. Try again later."
            ], out
            switch.set_faults()
            out = str(conn.send_command("save force"))
            assert CD.errors(out) == [] and "successfully" in out


async def test_config_locked_through_the_transport(switch: LabSwitch) -> None:
    """Our transport on the locked switch: Junos' commit is retried, then reported as a
    transient failure; the batch itself was sent."""
    driver = NetmikoDriver({"read_timeout": 10, "connect_tries": 1, "save_tries": 2,
                            "save_retry_delay": 0.1})  # fmt: skip
    change = ChangeSet(vlans=(VlanChange(187),))
    switch.set_faults(config_locked=True)
    try:
        with pytest.raises(SwitchError) as err:
            await driver.apply(switch.target(), change)
        save = "commit" if switch.dialect == JUNOS else "save force"
        assert err.value.command == save, err.value
        if switch.dialect == JUNOS:
            assert err.value.transient and "still locked after 2 tries" in str(err.value)
    finally:
        switch.set_faults()
        await driver.close()


def test_slow_switch_still_answers(switch: LabSwitch) -> None:
    switch.set_faults(slow=0.2)
    p11 = switch.port_name(11)
    with session(switch) as conn:
        read = junos_read if switch.dialect == JUNOS else comware_read
        assert read(conn, [p11]) == {p11: access(p11, 1)}
