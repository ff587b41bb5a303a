"""A real daemon killed with SIGKILL in the middle of an operation, then restarted: the node ends
in a defined state and nothing is duplicated. Runs `provisiond serve` as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, rack_yaml
from tests.support import fakebmc

ROOT = Path(__file__).resolve().parents[1]
PROVISIOND = [sys.executable, "-m", "provisiond.cli"]


class Daemon:
    def __init__(self, tmp: Path, db_url: str, deadlines: dict[str, float] | None = None) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp / "provisiond.toml"
        lines = [
            f'data_dir = "{tmp / "data"}"',
            f'listen = "127.0.0.1:{self.port}"',
            f'database_url = "{db_url}"',
            "[engine]",
            "lease_seconds = 30",  # long: recovery must not depend on waiting for expiry
            "poll_seconds = 0.2",
            "[drivers.bmc]",
            'fake = "tests.support.fakebmc:FakeBmc"',
        ]
        if deadlines:
            lines.append("[engine.deadlines]")
            lines += [f'"{k}" = {v}' for k, v in deadlines.items()]
        self.config.write_text("\n".join(lines) + "\n")
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""

    def start(self) -> None:
        log = open(self.tmp / "daemon.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [*PROVISIOND, "serve", "--config", str(self.config)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.tmp,
        )
        end = time.monotonic() + 30
        while time.monotonic() < end:
            assert self.proc.poll() is None, (self.tmp / "daemon.log").read_text()
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("daemon did not answer /healthz in 30 s")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def make_token(self) -> None:
        out = subprocess.run(
            [
                *PROVISIOND,
                "token",
                "create",
                "--role",
                "admin",
                "--name",
                "crash",
                "--config",
                str(self.config),
            ],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=60,
        )
        self.token = out.stdout.decode().strip()
        assert self.token.startswith("pvd_") and "\n" not in self.token

    def call(
        self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json"
    ) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.url + path,
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": ctype},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture
def daemon_factory(tmp_path: Path, fakebmc_dir: Path) -> Iterator[Any]:
    made: list[Daemon] = []

    def make(db_url: str, **kw: Any) -> Daemon:
        d = Daemon(tmp_path, db_url, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()


def wait_for(pred: Any, timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def history(d: Daemon, node: str) -> list[dict[str, Any]]:
    status, data = d.call("GET", f"/v1/nodes/{node}/events")
    assert status == 200
    return list(data["items"])


def test_kill9_mid_operation_then_restart_resumes(daemon_factory: Any, db_url: str) -> None:
    d = daemon_factory(db_url)
    d.start()
    d.make_token()
    status, _ = d.call("POST", "/v1/racks/r01/enroll", rack_yaml(n=2).encode(), "application/yaml")
    assert status == 201
    fakebmc.set_behaviour("127.0.0.1:7001", delay=2.0)
    status, op = d.call("POST", "/v1/nodes/r01n01/actions/manage", b"{}")
    assert status == 202
    # the step has started talking to the BMC: kill the daemon in the middle of it
    wait_for(lambda: any(" validate" in c for c in fakebmc.calls()), 15, "the BMC call")
    d.kill9()
    fakebmc.set_behaviour("127.0.0.1:7001")  # the BMC answers promptly after the crash
    d.start()
    final = wait_for(
        lambda: (
            (o := d.call("GET", f"/v1/operations/{op['id']}")[1])["state"]
            in ("succeeded", "failed")
            and o
        ),
        20,
        "the operation to end after restart",
    )
    assert final["state"] == "succeeded", final
    _, node = d.call("GET", "/v1/nodes/r01n01")
    assert node["state"] == "manageable"
    _, ops = d.call("GET", "/v1/operations", None)
    assert [o["id"] for o in ops["items"]] == [op["id"]]  # nothing duplicated
    events = history(d, "r01n01")
    moves = [e["message"] for e in events if e["kind"] == "state"]
    assert moves == ["enrolled -> verifying (manage)", "verifying -> manageable (done)"]
    assert [e["kind"] for e in events].count("recovery") == 1
    assert sum(1 for e in events if e["message"] == "manage succeeded") == 1


def test_kill9_then_restart_after_deadline_fails_cleanly(daemon_factory: Any, db_url: str) -> None:
    d = daemon_factory(db_url, deadlines={"verifying": 3})
    d.start()
    d.make_token()
    d.call("POST", "/v1/racks/r01/enroll", rack_yaml(n=1).encode(), "application/yaml")
    fakebmc.set_behaviour("127.0.0.1:7001", delay=30)
    _, op = d.call("POST", "/v1/nodes/r01n01/actions/manage", b"{}")
    wait_for(lambda: any(" validate" in c for c in fakebmc.calls()), 15, "the BMC call")
    d.kill9()
    time.sleep(3.2)  # the verifying deadline passes while no daemon runs
    d.start()
    final = wait_for(
        lambda: (
            (o := d.call("GET", f"/v1/operations/{op['id']}")[1])["state"]
            in ("succeeded", "failed")
            and o
        ),
        20,
        "the operation to be failed after restart",
    )
    assert final["state"] == "failed"
    assert "deadline passed in state verifying" in final["error"]
    _, node = d.call("GET", "/v1/nodes/r01n01")
    assert node["state"] == "verify-failed"
    assert "deadline" in node["last_error"]
    # the node takes new work at once: nothing is left locked
    fakebmc.set_behaviour("127.0.0.1:7001")
    status, op2 = d.call("POST", "/v1/nodes/r01n01/actions/manage", b"{}")
    assert status == 202, op2


def test_kill9_while_parked_in_wait_state_keeps_waiting(daemon_factory: Any, db_url: str) -> None:
    d = daemon_factory(db_url)
    d.start()
    d.make_token()
    d.call("POST", "/v1/racks/r01/enroll", rack_yaml(n=1).encode(), "application/yaml")
    _, op = d.call("POST", "/v1/nodes/r01n01/actions/manage", b"{}")
    wait_for(
        lambda: d.call("GET", f"/v1/operations/{op['id']}")[1]["state"] == "succeeded", 20, "manage"
    )
    status, op = d.call("POST", "/v1/nodes/r01n01/actions/inspect", b"{}")
    assert status == 202, op
    wait_for(
        lambda: d.call("GET", "/v1/nodes/r01n01")[1]["state"] == "inspect-wait", 20, "inspect-wait"
    )
    d.kill9()
    d.start()
    time.sleep(1.0)
    _, node = d.call("GET", "/v1/nodes/r01n01")
    assert node["state"] == "inspect-wait"
    _, again = d.call("GET", f"/v1/operations/{op['id']}")
    assert again["state"] == "running"
    # the BMC saw exactly one PXE boot: the restart did not power the node again
    boots = [c for c in fakebmc.calls() if "set_boot_device" in c]
    assert len(boots) == 1
