"""`provisiond catalog validate|import|list` and `provisiond firmware check` as an operator runs
them: the validator without a daemon; the rest against a real daemon subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provisiond.client import Client
from tests.support.daemon import Daemon
from tests.test_cli import cli
from tests.test_firmware_api import BAD_CATALOG, EXAMPLE


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provisiond.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_catalog_validate_lists_every_problem_with_file_and_line(tmp_path: Path) -> None:
    ok = run("catalog", "validate", str(EXAMPLE))
    assert ok.returncode == 0 and ok.stdout.strip().endswith("valid"), ok.stderr
    bad = tmp_path / "site.yaml"
    bad.write_text(BAD_CATALOG)
    out = run("catalog", "validate", str(bad))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines[-1] == f"{bad}: 4 problem(s); nothing imported", out.stderr
    assert (
        f"{bad}:9: components[a-bios].releases[0].requires[0]: hard requirements form a cycle"
        in (out.stderr)
    )
    assert f"{bad}:24: components[d-gpu].format: unknown version format 'sextuple'" in out.stderr


@pytest.fixture
def daemon(daemon_factory: Any, tmp_path: Path) -> Daemon:
    d: Daemon = daemon_factory(f"sqlite:///{tmp_path / 'data' / 'provisiond.db'}")
    d.start()
    d.make_token()
    return d


def test_catalog_import_and_firmware_check(daemon: Daemon, tmp_path: Path) -> None:
    rack = tmp_path / "r01.yaml"
    rack.write_text(
        "rack: r01\nnodes:\n"
        "  - {name: r01n01, unit: 1, bmc: {driver: ipmi, address: 127.0.0.1, port: 6999,"
        " username: admin, password: x}}\n"
    )
    assert cli(daemon, "rack", "enroll", str(rack)).returncode == 0
    bad = tmp_path / "site.yaml"
    bad.write_text(BAD_CATALOG)
    refused = cli(daemon, "catalog", "import", str(bad))
    assert refused.returncode == 1 and "line 9" in refused.stderr, refused.stderr
    imported = cli(daemon, "catalog", "import", str(EXAMPLE))
    assert imported.returncode == 0 and "catalog example-2026.12 imported" in imported.stdout
    listing = json.loads(cli(daemon, "catalog", "list", "--json").stdout)
    assert [c["name"] for c in listing] == ["example-2026.12"]
    body = {
        "system_model": "0x0B0E",
        "components": [
            {"slot": "bios", "kind": "bios", "version": "2.0.3", "channel": "inband"},
            {"slot": "bmc", "kind": "bmc", "version": "6.10.80.00", "channel": "redfish"},
        ],
    }
    client = Client(daemon.url, daemon.token)
    status, _ = client.request("POST", "/v1/nodes/r01n01/firmware", json_body=body)
    assert status == 201
    check = cli(daemon, "firmware", "check", "r01n01")
    assert check.returncode == 1, check.stdout + check.stderr
    assert "r01n01: blocked" in check.stdout
    assert "bios: dell-r760-bios 2.0.3 is known bad" in check.stdout
    assert "upgrade plan:" in check.stdout and "6.10.80.00 -> 7.00.00.171" in check.stdout
    fleet = cli(daemon, "firmware", "check", "--all")
    assert fleet.returncode == 1 and "1 blocked" in fleet.stdout, fleet.stdout
    gated = cli(daemon, "node", "provide", "r01n01")
    assert gated.returncode == 1 and "firmware blocked" in gated.stderr, gated.stderr
    # past the gate with an override, the lifecycle still decides (r01n01 is only enrolled)
    past = cli(daemon, "node", "provide", "r01n01", "--firmware-override", "lab test, ticket 1")
    assert past.returncode == 1 and "firmware" not in past.stderr, past.stderr
    r = client.request("GET", "/v1/nodes/r01n01/events", query={"kind": "firmware.override"})
    assert r[1]["items"] == []  # the action was refused: nothing was overridden
