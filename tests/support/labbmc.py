"""The lab's virtual IPMI BMCs (`provisiond lab bmc`) as a test fixture, and Debian's ipmitool as
an independent client for them.

``lab_bmc(count)`` picks a free block of UDP ports on 127.0.0.1, starts the lab in its own session
(process group), waits (bounded) for its "ready" line and kills the group on exit. Faults come from
``--fault`` flags at start and from a control file the test rewrites with ``Lab.set_faults``, which
returns once the lab has logged that it re-read the file.

``ipmitool(port, *args)`` runs ``ipmitool -I lanplus`` against one lab BMC; options such as
``-N 1 -R 1`` go first in ``args``, then the command.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisiond.procs import stop_group
from tests.support.peers import missing

IPMITOOL = "/usr/bin/ipmitool"
ROOT = Path(__file__).resolve().parents[2]
LAB_CMD = [sys.executable, "-m", "provisiond.cli", "lab", "bmc"]
READY_TIMEOUT = 15.0
RELOAD_TIMEOUT = 3.0
_APPLIED = "applied"  # the lab logs "lab bmc: faults from FILE applied" after each reload
_REJECTED = "faults unchanged"


def _cannot(reason: str) -> None:
    missing(reason)


def _block_is_free(base: int, count: int) -> bool:
    """True when every UDP port base..base+count-1 on 127.0.0.1 can be bound right now."""
    held: list[socket.socket] = []
    try:
        for port in range(base, base + count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held.append(s)
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in held:
            s.close()


def free_udp_block(count: int, *, tries: int = 20) -> int:
    """A base port whose block of ``count`` UDP ports is free (probed by binding)."""
    rng = random.Random()
    for _ in range(tries):
        # below the usual ephemeral range (32768-60999) so clients' own ports rarely collide
        base = rng.randrange(20000, 32000 - count)
        if _block_is_free(base, count):
            return base
    raise RuntimeError(f"no free block of {count} UDP ports on 127.0.0.1 after {tries} tries")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM then SIGKILL the lab's process group (its pid: start_new_session)."""
    stop_group(proc, grace=5)
    # the group may hold nothing else, but make sure: a leftover member is killed too
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class Lab:
    base_port: int
    count: int
    proc: subprocess.Popen[bytes]
    control: Path
    log: Path
    username: str
    password: str
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)
    _mtime_ns: int = 0

    @property
    def ports(self) -> list[int]:
        return list(range(self.base_port, self.base_port + self.count))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def _write_control(self, data: Mapping[str, Any]) -> None:
        tmp = self.control.with_name(self.control.name + ".tmp")
        tmp.write_text(json.dumps(data))
        # a strictly newer mtime each time: two writes within one timestamp tick would look
        # unchanged to the lab, which compares st_mtime
        with contextlib.suppress(OSError):
            self._mtime_ns = max(self._mtime_ns, self.control.stat().st_mtime_ns)
        self._mtime_ns = max(time.time_ns(), self._mtime_ns + 10_000_000)
        os.utime(tmp, ns=(self._mtime_ns, self._mtime_ns))
        os.replace(tmp, self.control)

    def set_faults(self, faults: Mapping[int | str, Mapping[str, Any]]) -> None:
        """Replace the control file's faults ({PORT or "*": {"hung": true, ...}}) and return once
        the lab has re-read it (bounded: it polls the file every 0.5 s)."""
        data = {str(k): dict(v) for k, v in faults.items()}
        before = self.log_text()
        applied, rejected = before.count(_APPLIED), before.count(_REJECTED)
        self._write_control(data)
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log_text()
            if text.count(_REJECTED) > rejected:
                raise ValueError(f"lab rejected control file {data}: {text[-500:]}")
            if text.count(_APPLIED) > applied:
                self.faults = data
                return
            if not self.alive():
                break
            time.sleep(0.05)
        raise RuntimeError(
            f"lab bmc did not re-read {self.control} within {RELOAD_TIMEOUT:g}s "
            f"(alive={self.alive()}); log tail:\n{self.log_text()[-2000:]}"
        )

    def clear_faults(self) -> None:
        if self.faults:
            self.set_faults({})


@contextlib.contextmanager
def lab_bmc(
    count: int,
    *,
    faults: Iterable[str] = (),
    control: Mapping[int | str, Mapping[str, Any]] | None = None,
    username: str = "admin",
    password: str = "password",
    tmp: Path | None = None,
    extra_args: Callable[[int], list[str]] | None = None,
) -> Iterator[Lab]:
    """A running `provisiond lab bmc` with ``count`` BMCs. ``faults`` are --fault specs that may
    use "{base}" / "{last}" for the first and last port (e.g. "{base}=hung"); ``control`` is the
    initial control file content; ``extra_args(base)`` gives more arguments once the base port
    is chosen (lab nodes: a rack file naming those ports)."""
    own_tmp = None
    if tmp is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="labbmc-")
        tmp = Path(own_tmp.name)
    tmp.mkdir(parents=True, exist_ok=True)
    control_path = tmp / "lab-control.json"
    log_path = tmp / "lab.log"
    proc: subprocess.Popen[bytes] | None = None
    lab: Lab | None = None
    failure = ""
    try:
        for _ in range(4):  # another process may take a port between the probe and the bind
            base = free_udp_block(count)
            last = base + count - 1
            initial = {str(k).format(base=base): dict(v) for k, v in (control or {}).items()}
            control_path.write_text(json.dumps(initial))
            cmd = [
                *LAB_CMD,
                "--count",
                str(count),
                "--base-port",
                str(base),
                "--username",
                username,
                "--password",
                password,
                "--control",
                str(control_path),
            ]
            for spec in faults:
                cmd += ["--fault", spec.format(base=base, last=last)]
            if extra_args is not None:  # e.g. --rack FILE naming these ports, --boot-url
                cmd += extra_args(base)
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    start_new_session=True,
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )
            ready = _wait_ready(proc, READY_TIMEOUT)
            # the first turn of its loop reads the control file; a set_faults() racing with that
            # read could otherwise be taken for applied while the old content was
            if ready and not _wait_log(log_path, _APPLIED, proc, RELOAD_TIMEOUT):
                ready = False
            if ready:
                lab = Lab(
                    base_port=base,
                    count=count,
                    proc=proc,
                    control=control_path,
                    log=log_path,
                    username=username,
                    password=password,
                    faults=initial,
                )
                break
            _kill_group(proc)
            text = log_path.read_text(errors="replace")
            failure = f"lab bmc (count {count}, base {base}) not ready: {text[-2000:]}"
            proc = None
            if "already in use" not in text:
                break
        if lab is None:
            raise RuntimeError(failure)
        yield lab
    finally:
        if proc is not None:
            if proc.stdout is not None:
                proc.stdout.close()
            _kill_group(proc)
        if own_tmp is not None:
            own_tmp.cleanup()


def _wait_ready(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Read the lab's stdout (bounded) until a line ends in "ready"."""
    import selectors

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
            for line in buf.split(b"\n")[:-1]:
                if line.rstrip().endswith(b"ready"):
                    return True
    return False


def _wait_log(path: Path, needle: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if needle in path.read_text(errors="replace"):
            return True
        time.sleep(0.05)
    return False


def ipmitool_path() -> str:
    found = IPMITOOL if os.access(IPMITOOL, os.X_OK) else shutil.which("ipmitool")
    if not found:
        _cannot("ipmitool is not installed: apt-get install ipmitool")
        raise AssertionError("unreachable")
    return found


def ipmitool(
    port: int,
    *args: str,
    user: str = "admin",
    password: str = "password",
    cipher: int | None = None,
    timeout: float = 20,
) -> subprocess.CompletedProcess[str]:
    """``ipmitool -I lanplus -H 127.0.0.1 -p PORT -U USER -P PASSWORD [-C N] ARGS...``."""
    cmd = [ipmitool_path(), "-I", "lanplus", "-H", "127.0.0.1", "-p", str(port)]
    cmd += ["-U", user, "-P", password]
    if cipher is not None:
        cmd += ["-C", str(cipher)]
    cmd += list(args)
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


__all__ = ["Lab", "free_udp_block", "ipmitool", "ipmitool_path", "lab_bmc"]
