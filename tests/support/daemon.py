"""A real `provisiond serve` subprocess for tests that need the whole daemon."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ROOT = Path(__file__).resolve().parents[2]
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
            "[api]",
            "token_cache_seconds = 1",
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


def wait_for(pred: Any, timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
