"""The `provisiond` command as an operator runs it, against a real daemon subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import head_revision, rack_yaml
from tests.support import fakebmc
from tests.support.daemon import ROOT, Daemon, wait_for

EXAMPLES = ROOT / "examples"


def cli(
    d: Daemon | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = dict(d.env) if d else {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    if d is not None:
        base |= {"PROVISIOND_URL": d.url, "PROVISIOND_TOKEN": d.token}
    return subprocess.run(
        [sys.executable, "-m", "provisiond.cli", *args],
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def daemon(daemon_factory: Any, tmp_path: Path) -> Daemon:
    d: Daemon = daemon_factory(f"sqlite:///{tmp_path / 'data' / 'provisiond.db'}")
    d.start()
    d.make_token()
    return d


def test_token_create_prints_only_the_token(daemon: Daemon) -> None:
    create = ("token", "create", "--role", "operator", "--name", "ops2")
    res = cli(daemon, *create, "--config", str(daemon.config))
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("\n") == 1 and res.stdout.startswith("pvd_")
    dup = cli(daemon, *create, "--config", str(daemon.config))  # the same name again
    assert dup.returncode == 1 and "already exists" in dup.stderr
    bad = cli(
        daemon, "token", "create", "--role", "tenant", "--name", "t", "--config", str(daemon.config)
    )
    assert bad.returncode == 1 and "--tenant" in bad.stderr


def test_enroll_list_show_and_idempotence(daemon: Daemon) -> None:
    res = cli(daemon, "rack", "enroll", str(EXAMPLES / "rack-r01.yaml"))
    assert res.returncode == 0, res.stderr
    assert "enrolled 8 new" in res.stdout
    again = cli(daemon, "rack", "enroll", str(EXAMPLES / "rack-r01.yaml"))
    assert again.returncode == 0 and "nothing changed" in again.stdout
    lst = cli(daemon, "node", "list", "--rack", "r01")
    assert lst.returncode == 0
    rows = lst.stdout.splitlines()
    assert rows[0].split()[:4] == ["NODE", "RACK", "U", "STATE"]
    assert len(rows) == 9 and rows[1].split()[0] == "r01n01"
    show = cli(daemon, "node", "show", "r01n02")
    assert "password set" in show.stdout and "secret" not in show.stdout


def test_bad_rack_file_exits_nonzero_with_server_message(daemon: Daemon, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(rack_yaml(n=2).replace('"52:54:00:01:00:02"', '"52:54:00:01:00:01"'))
    res = cli(daemon, "rack", "enroll", str(bad))
    assert res.returncode == 1
    assert "error (422)" in res.stderr
    assert "line 13: nodes[1].nics[0].mac (node r01n02): MAC also on node r01n01" in res.stderr


def test_action_wait_and_op_commands(daemon: Daemon) -> None:
    assert cli(daemon, "rack", "enroll", "-", env={}).returncode != 0  # no such file
    Path(daemon.tmp / "r.yaml").write_text(rack_yaml(n=3))
    assert cli(daemon, "rack", "enroll", str(daemon.tmp / "r.yaml")).returncode == 0
    fakebmc.set_behaviour("127.0.0.1:7003", auth_fail=True)
    res = cli(daemon, "node", "manage", "r01n01", "r01n02", "r01n03", "--wait", "--timeout", "60")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "r01n01: manage succeeded" in res.stdout
    assert "r01n03: manage failed" in res.stdout and "authentication failed" in res.stdout
    started = cli(daemon, "node", "power-on", "r01n01")
    op_id = started.stdout.split()[2]
    waited = cli(daemon, "op", "wait", op_id, "--timeout", "30")
    assert waited.returncode == 0 and "succeeded" in waited.stdout
    shown = cli(daemon, "op", "show", op_id, "--json")
    assert '"state": "succeeded"' in shown.stdout
    illegal = cli(daemon, "node", "provide", "r01n03")
    assert illegal.returncode == 1 and "allowed here: manage" in illegal.stderr


def test_unreachable_and_bad_config_exit_codes(tmp_path: Path) -> None:
    res = cli(None, "node", "list", "--url", "http://127.0.0.1:9", "--token", "x")
    assert res.returncode == 3 and "cannot reach provisiond" in res.stderr
    cfg = tmp_path / "bad.toml"
    cfg.write_text('listen = "127.0.0.1:99999"\n[engine]\nlease_seconds = -1\n')
    res = cli(None, "db", "upgrade", "--config", str(cfg))
    assert res.returncode == 2
    assert "listen" in res.stderr and "engine.lease_seconds" in res.stderr
    assert str(cfg) in res.stderr
    res = cli(
        None,
        "db",
        "upgrade",
        "--data-dir",
        str(tmp_path / "d"),
        env={"PROVISIOND_ENGINE__MAX_ATTEMPTS": "zero"},
    )
    assert res.returncode == 2 and "PROVISIOND_ENGINE__MAX_ATTEMPTS" in res.stderr


def test_db_upgrade_with_no_config_file(tmp_path: Path) -> None:
    res = cli(None, "db", "upgrade", "--data-dir", str(tmp_path / "d"))
    assert res.returncode == 0, res.stderr
    assert f"revision {head_revision()}" in res.stdout
    assert (tmp_path / "d" / "provisiond.db").exists()


def test_token_list_revoke_and_node_set(daemon: Daemon) -> None:
    cfg = ("--config", str(daemon.config))
    tok = cli(daemon, "token", "create", "--role", "operator", "--name", "night-shift", *cfg)
    token = tok.stdout.strip()
    assert cli(daemon, "rack", "list", env={"PROVISIOND_TOKEN": token}).returncode == 0

    def row() -> str:
        listed = cli(daemon, "token", "list", *cfg)
        assert listed.returncode == 0 and token not in listed.stdout
        return next(ln for ln in listed.stdout.splitlines() if ln.startswith("night-shift"))

    # use is recorded in the background, off the request path
    line = wait_for(lambda: "never" not in (r := row()) and r, 15, "last use to be recorded")
    assert "operator" in line
    assert cli(daemon, "token", "revoke", "night-shift", *cfg).returncode == 0
    # the daemon caches a token check for api.token_cache_seconds (1 s here)
    denied = wait_for(
        lambda: (
            (r := cli(daemon, "rack", "list", env={"PROVISIOND_TOKEN": token})).returncode == 1
            and r
        ),
        15,
        "the revoked token to be refused",
    )
    assert "revoked" in denied.stderr
    assert cli(daemon, "token", "revoke", "nobody", *cfg).returncode == 1
    Path(daemon.tmp / "r.yaml").write_text(rack_yaml(n=1))
    assert cli(daemon, "rack", "enroll", str(daemon.tmp / "r.yaml")).returncode == 0
    res = cli(daemon, "node", "set", "r01n01", "--protected", "true", "--boot-mode", "bios")
    assert res.returncode == 0 and "protected=True" in res.stdout and "boot_mode=bios" in res.stdout
    events = cli(daemon, "node", "events", "r01n01", "--limit", "1")
    assert events.returncode == 0 and "changed protected" in events.stdout
