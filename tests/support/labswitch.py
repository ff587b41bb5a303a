"""Lab switches for tests: `provisiond lab switch` as a subprocess, its fault control file, and
netmiko sessions to it. What differs per dialect (port names, default logins) comes from the lab's
own CLI classes (provisiond.lab.switch.cli_class), so every dialect is driven the same way."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from netmiko.exceptions import ReadException

from drivers.switch.base import SwitchTarget
from drivers.switch.dialects import dialect as dialect_of
from provisiond.lab.switch import cli_class
from provisiond.procs import stop_group
from tests.support.daemon import free_port

ROOT = Path(__file__).resolve().parents[2]
LAB_CMD = [sys.executable, "-m", "provisiond.cli", "lab", "switch"]
READY_POLLS = 600  # x 0.05 s
ALL_DIALECTS = (
    "arista_eos",
    "cumulus_nvue",
    "sonic",
    "cisco_nxos",
    "dell_os10",
    "junos",
    "comware",
)
PASSWORD = "lab-secret"
# what a session cut by the switch surfaces as in netmiko: paramiko's channel never reports the
# close to netmiko's reader, so it is a ReadTimeout (a ReadException) after read_timeout; a write
# on the dead socket is an OSError
DROPPED = (ReadException, OSError, EOFError)


@dataclass
class LabSwitch:
    dialect: str
    port: int
    proc: subprocess.Popen[bytes]
    control: Path
    log: Path
    username: str
    password: str
    count: int = 1
    _mtime_ns: int = 0

    def set_faults(self, _key: str = "*", **faults: Any) -> None:
        """Replace the control file with ``{_key: faults}`` (``*``: every switch of the
        process; a port number: that switch only)."""
        tmp = self.control.with_name(self.control.name + ".tmp")
        tmp.write_text(json.dumps({_key: faults}))
        self._mtime_ns = max(time.time_ns(), self._mtime_ns + 10_000_000)
        os.utime(tmp, ns=(self._mtime_ns, self._mtime_ns))
        os.replace(tmp, self.control)  # a new inode too: the lab sees the change for sure

    def port_name(self, n: int) -> str:
        """The name of front-panel port ``n`` (1-based) on this dialect."""
        return cli_class(self.dialect).port_names(n)[n - 1]

    def target(self, index: int = 0, *, password: str | None = None) -> SwitchTarget:
        return SwitchTarget(
            f"lab-{self.dialect}-{index}",
            self.dialect,
            "127.0.0.1",
            self.port + index,
            self.username,
            self.password if password is None else password,
        )

    def connect(
        self, *, password: str | None = None, read_timeout: float = 20, index: int = 0
    ) -> Any:
        from netmiko import ConnectHandler

        return ConnectHandler(
            device_type=dialect_of(self.dialect).netmiko_device_type,
            host="127.0.0.1",
            port=self.port + index,
            username=self.username,
            password=self.password if password is None else password,
            secret=self.password,
            fast_cli=False,
            conn_timeout=10,
            auth_timeout=10,
            banner_timeout=10,
            read_timeout_override=read_timeout,
        )


@contextlib.contextmanager
def lab_switch(dialect: str, tmp: Path, *extra: str, count: int = 1) -> Iterator[LabSwitch]:
    """``count`` lab switches of ``dialect`` in one subprocess, stopped (by process group) on
    exit. Their login: the dialect's default username, password ``lab-secret``."""
    port = free_port() if count == 1 else free_port_range(count)
    username = cli_class(dialect).default_username
    control = tmp / f"{dialect}-{port}-control.json"
    log = tmp / f"{dialect}-{port}.log"
    cmd = [
        *LAB_CMD,
        *("--dialect", dialect, "--port", str(port), "--control", str(control)),
        *("--username", username, "--password", PASSWORD, "--count", str(count), *extra),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        for _ in range(READY_POLLS):
            if " ready" in log.read_text(errors="replace"):
                break
            if proc.poll() is not None:
                pytest.fail(f"lab switch exited ({proc.returncode}): {log.read_text()}")
            time.sleep(0.05)
        else:
            pytest.fail(f"lab switch not ready: {log.read_text()}")
        yield LabSwitch(dialect, port, proc, control, log, username, PASSWORD, count)
    finally:
        stop_group(proc)


def free_port_range(count: int, tries: int = 50) -> int:
    """A first port P such that P..P+count-1 are all free on 127.0.0.1 right now."""
    import socket

    for _ in range(tries):
        base = free_port()
        if base + count > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {count} consecutive free TCP ports on 127.0.0.1")

