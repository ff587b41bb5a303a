"""The lab NVIDIA UFM (`provisiond lab ufm`) as a subprocess for tests, and a reader of what it
holds through its own REST API (token auth under /ufmRestV3), independent of the daemon.

``lab_ufm(tmp, token)`` picks a free TCP port on 127.0.0.1, starts the lab in its own session
(process group), waits (bounded) for its "ready" line on stdout and kills the group on exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from provisiond.procs import stop_group
from tests.support.daemon import free_port

ROOT = Path(__file__).resolve().parents[2]
LAB_CMD = [sys.executable, "-m", "provisiond.cli", "lab", "ufm"]
READY_TIMEOUT = 20.0
START_TRIES = 3  # another process may take the port between the probe and the bind


@dataclass
class LabUfmProc:
    port: int
    token: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def members(self, timeout: float = 10) -> dict[int, set[int]]:
        """Every P_Key the UFM holds -> its member port GUIDs (as integers), read over the
        UFM's REST API (GET /ufmRestV3/resources/pkeys?guids_data=true)."""
        req = urllib.request.Request(
            f"{self.url}/ufmRestV3/resources/pkeys?guids_data=true",
            headers={"Authorization": f"Basic {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            held = json.loads(r.read())
        assert isinstance(held, dict), held
        return {
            int(pkey, 16): {int(g["guid"], 16) for g in entry.get("guids", [])}
            for pkey, entry in held.items()
        }


def _wait_ready(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Read the lab's stdout (bounded) until a line says "ready"; False if it exits first."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(min(0.2, max(0.0, deadline - time.monotonic()))):
                if proc.poll() is not None:
                    return False
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                return False  # stdout closed: the lab exited
            buf += chunk
            if any(b"ready" in line for line in buf.split(b"\n")[:-1]):
                return True
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdout is not None:
        proc.stdout.close()
    stop_group(proc, grace=5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything left in its group


@contextlib.contextmanager
def lab_ufm(tmp: Path, token: str = "lab-ufm-token") -> Iterator[LabUfmProc]:
    """A running `provisiond lab ufm --port P --token TOKEN`, stopped (by process group) on
    exit, also when the test fails."""
    tmp.mkdir(parents=True, exist_ok=True)
    failure = ""
    for _ in range(START_TRIES):
        port = free_port()
        log = tmp / f"ufm-{port}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [*LAB_CMD, "--port", str(port), "--token", token],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        try:
            ready = _wait_ready(proc, READY_TIMEOUT)
        except BaseException:
            _stop(proc)
            raise
        if ready:
            try:
                yield LabUfmProc(port, token, proc, log)
            finally:
                _stop(proc)
            return
        _stop(proc)
        text = log.read_text(errors="replace")
        failure = f"lab ufm on port {port} not ready: {text[-2000:]}"
        if "cannot listen" not in text:
            break
    raise RuntimeError(failure)


__all__ = ["LabUfmProc", "lab_ufm"]
