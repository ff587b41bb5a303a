"""`provisiond fabric ...` as an operator runs it: a real daemon subprocess, the CLI as a
subprocess, a reload command standing in for OpenSM (tests/test_partitions.py FakeSm)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drivers.fabric import partitions_conf as pc
from tests.support.daemon import Daemon
from tests.test_cli import cli
from tests.test_partitions import FakeSm, G


@pytest.fixture
def daemon(daemon_factory: Any, tmp_path: Path) -> Daemon:
    d: Daemon = daemon_factory(f"sqlite:///{tmp_path / 'data' / 'provisiond.db'}")
    # passes are driven by the commands below, not by the background loop
    sm = FakeSm(tmp_path)
    d.config.write_text(
        d.config.read_text()
        + f'[fabrics]\nenabled = false\nopensm_dirs = ["{sm.dir}"]\n'
        + f'reload_commands = [["{sm.script}"]]\n'
    )
    d.start()
    d.make_token()
    return d


def test_fabric_commands(daemon: Daemon, tmp_path: Path) -> None:
    sm = FakeSm(tmp_path)
    add = cli(
        daemon, "fabric", "add", "ib0", "--driver", "opensm",
        "--set", f"partitions_file={sm.file}", "--set", f'reload_command=["{sm.script}"]',
        "--set", f"log_file={sm.log}", "--pkey-range", "0x0100-0x01ff",
    )  # fmt: skip
    assert add.returncode == 0 and "fabric ib0 added" in add.stdout, add.stderr
    bad = cli(daemon, "fabric", "partition", "ib0", "tenant_a", "--pkey", "0x0300")
    assert bad.returncode == 1 and "outside this fabric's range" in bad.stderr, bad.stderr
    ok = cli(daemon, "fabric", "partition", "ib0", "tenant_a", "--full", G[0], G[1], "--ipoib")
    assert ok.returncode == 0 and "partition 0x0100 tenant_a set (2 members)" in ok.stdout
    plan = cli(daemon, "fabric", "plan", "ib0", "--rendered")
    assert plan.returncode == 0, plan.stderr
    assert f"+ 0x0100 tenant_a: {G[0]}=full, {G[1]}=full" in plan.stdout
    assert "tenant_a=0x0100,ipoib,indx0 :" in plan.stdout
    assert not sm.file.exists()  # a plan writes nothing
    apply = cli(daemon, "fabric", "apply", "ib0")
    assert apply.returncode == 0 and "+ 0x0100 tenant_a" in apply.stdout, apply.stdout
    assert pc.parse(sm.file.read_text()).partitions[0].name == "tenant_a"
    audit = cli(daemon, "fabric", "audit")
    assert audit.returncode == 0 and audit.stdout.startswith("Isolation holds"), audit.stdout
    show = cli(daemon, "fabric", "show", "ib0")
    assert "0x0100  tenant_a  -       2/2           in sync" in show.stdout, show.stdout
    listing = json.loads(cli(daemon, "fabric", "list", "--json").stdout)
    assert listing[0]["status"] == "applied" and listing[0]["partitions"]["active"] == 1
    sm.file.write_text(sm.file.read_text().replace("=full ;", "=Full ;"))
    audit = cli(daemon, "fabric", "audit")
    assert audit.returncode == 1 and "[subnet-manager] fabric ib0" in audit.stdout, audit.stdout
    drift = cli(daemon, "fabric", "drift", "ib0")
    assert "exactly 'full' or 'limited'" in drift.stdout, drift.stdout
    sm.mode.write_text("fail")
    failed = cli(daemon, "fabric", "apply", "ib0")
    assert failed.returncode == 1 and "Connection refused" in failed.stdout, failed.stdout
    sm.mode.write_text("ok")
    assert cli(daemon, "fabric", "apply", "ib0").returncode == 0
    assert "=Full" not in sm.file.read_text()
    rm = cli(daemon, "fabric", "remove", "ib0", "0x0100")
    assert rm.returncode == 0 and "removing" in rm.stdout
    assert cli(daemon, "fabric", "apply", "ib0").returncode == 0
    assert pc.parse(sm.file.read_text()).partitions == ()
