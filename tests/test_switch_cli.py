"""`provisiond switch ...` and `provisiond node network` as an operator runs them: a real daemon
subprocess, a lab EOS switch, the CLI as a subprocess."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import Daemon
from tests.support.labswitch import LabSwitch, lab_switch
from tests.test_cli import cli


@pytest.fixture
def eos(tmp_path: Path) -> Iterator[LabSwitch]:
    with lab_switch("arista_eos", tmp_path) as sw:
        yield sw


@pytest.fixture
def daemon(daemon_factory: Any, tmp_path: Path) -> Daemon:
    d: Daemon = daemon_factory(f"sqlite:///{tmp_path / 'data' / 'provisiond.db'}")
    # passes are driven by the commands below, not by the background loop
    d.config.write_text(d.config.read_text() + "[switches]\nenabled = false\n")
    d.start()
    d.make_token()
    return d


def test_switch_commands(daemon: Daemon, eos: LabSwitch, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(eos.password + "\n")
    add = cli(
        daemon, "switch", "add", "leaf1", "--driver", "arista_eos", "--address", "127.0.0.1",
        "--port", str(eos.port), "--username", eos.username, "--password-file", str(pw),
        "--allowed-vlans", "100-199", "--quarantine-vlan", "199",
    )  # fmt: skip
    assert add.returncode == 0 and "switch leaf1 enrolled" in add.stdout, add.stderr
    bad = cli(daemon, "switch", "port", "leaf1", "Ethernet1", "--access", "300")
    assert bad.returncode == 1 and "outside this switch's allow-list" in bad.stderr
    usage = cli(daemon, "switch", "port", "leaf1", "Ethernet1")
    assert usage.returncode == 2
    ok = cli(daemon, "switch", "port", "leaf1", "Ethernet1", "--access", "120")
    assert ok.returncode == 0 and "desired access 120 (pending)" in ok.stdout, ok.stderr
    plan = cli(daemon, "switch", "plan", "leaf1")
    assert plan.returncode == 0 and "switchport access vlan 120" in plan.stdout
    apply = cli(daemon, "switch", "apply", "leaf1")
    assert apply.returncode == 0 and "1 applied" in apply.stdout, apply.stdout + apply.stderr
    show = cli(daemon, "switch", "show", "leaf1")
    assert "Ethernet1  api  access 120  access 120  applied" in show.stdout, show.stdout
    assert eos.password not in show.stdout
    listing = json.loads(cli(daemon, "switch", "list", "--json").stdout)
    assert listing[0]["ports"] == {"applied": 1} and listing[0]["password_set"] is True
    drift = cli(daemon, "switch", "drift", "leaf1")
    assert drift.returncode == 0 and "0 drifted" in drift.stdout
    conn = eos.connect()
    try:
        conn.enable()
        conn.send_config_set(["interface Ethernet1", "switchport access vlan 101"])
    finally:
        conn.disconnect()
    drift = cli(daemon, "switch", "drift", "leaf1")
    assert drift.returncode == 1 and "Ethernet1: access 101 (expected access 120)" in drift.stdout
    fixed = cli(daemon, "switch", "apply", "leaf1", "--retry")
    assert fixed.returncode == 0 and "1 applied" in fixed.stdout
    # a port name with "/" is one path segment (quoted by the CLI)
    slash = cli(daemon, "switch", "port", "leaf1", "Ethernet2/1", "--access", "120")
    assert slash.returncode == 0 and "leaf1 Ethernet2/1: desired access 120" in slash.stdout, (
        slash.stdout + slash.stderr
    )
    gone = cli(daemon, "switch", "release", "leaf1", "Ethernet2/1", "--leave")
    assert gone.returncode == 0 and "no longer managed" in gone.stdout, gone.stderr
    missing = cli(daemon, "switch", "show", "nope")
    assert missing.returncode == 1 and "no switch 'nope'" in missing.stderr
