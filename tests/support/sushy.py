"""A real Redfish service for tests: OpenStack's sushy-tools emulator with its fake driver.

``sushy_emulator(tmp)`` writes a config file, starts ``sushy-emulator --config FILE`` in its own
session, waits (bounded) for /redfish/v1/ to answer and kills the process group on exit. State
lives in a fresh directory per emulator, so tests never see each other's power or boot changes.
When the emulator cannot be started the caller fails under CI and skips elsewhere.

Facts about sushy-tools 2.2.0 the tests rely on (read from its source, checked by experiment):
- fake driver: systems come from SUSHY_EMULATOR_FAKE_SYSTEMS (uuid, name, power_state, nics);
  /Systems lists them by uuid; /Systems/<name> answers 307 to /Systems/<uuid>.
- a reset is applied at ``int(time.time()) + randint(1, 11)``, i.e. 0-11 s after it was accepted,
  and is only noticed on the next read. ForceRestart/GracefulRestart read Off at once, then On.
  PowerCycle answers 501 and is not in ResetType@Redfish.AllowableValues.
- Boot: BootSourceOverrideEnabled always reads Continuous (the PATCH value is ignored); any
  BootSourceOverrideTarget is stored; BootSourceOverrideMode UEFI (default) or Legacy. No ETag.
- SUSHY_EMULATOR_AUTH_FILE is an htpasswd file with bcrypt entries only ($2a$/$2b$/$2y$);
  /redfish/v1/ stays open without credentials, everything below answers 401.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisiond.procs import stop_group
from tests.support.daemon import free_port
from tests.support.peers import missing

INSTALL_HINT = "install sushy-tools: pip install sushy-tools==2.2.0"

USERNAME = "admin"
PASSWORD = "redfish-secret"
# bcrypt.hashpw(PASSWORD, bcrypt.gensalt(rounds=4)): the emulator checks the hash on every
# request, and the default 12 rounds would cost ~0.2 s per request
PASSWORD_BCRYPT = "$2b$04$x3TXp14LgrVP0HGdX0boe.gi3qnrskNx9vSBFlUwjkTn6MJNEU8SS"


@dataclass(frozen=True)
class FakeSystem:
    uuid: str
    name: str
    power_state: str = "Off"
    mac: str = "52:54:00:00:00:01"

    def as_config(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "name": self.name,
            "power_state": self.power_state,
            "nics": [{"mac": self.mac, "ip": "192.0.2.10"}],
        }


DEFAULT_SYSTEMS = (
    FakeSystem("6b1c4c3e-0a51-4c0e-9f43-1a2b3c4d5e01", "node-a", "Off", "52:54:00:aa:00:01"),
    FakeSystem("6b1c4c3e-0a51-4c0e-9f43-1a2b3c4d5e02", "node-b", "On", "52:54:00:aa:00:02"),
    FakeSystem("6b1c4c3e-0a51-4c0e-9f43-1a2b3c4d5e03", "node-c", "On", "52:54:00:aa:00:03"),
)


@dataclass(frozen=True)
class Emulator:
    url: str  # http://127.0.0.1:PORT
    port: int
    pid: int
    systems: tuple[FakeSystem, ...]
    auth: bool
    log: Path


def emulator_command() -> list[str] | None:
    """The installed sushy-emulator: next to this interpreter (an unactivated venv) or on PATH."""
    beside = Path(sys.executable).parent / "sushy-emulator"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("sushy-emulator")
    return [found] if found else None


def _cannot_start(reason: str) -> None:
    missing(f"sushy-tools emulator cannot be started: {reason}; {INSTALL_HINT}")


def _write_config(
    path: Path, port: int, state: Path, systems: tuple[FakeSystem, ...], auth_file: Path | None
) -> None:
    lines = [
        "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'",
        f"SUSHY_EMULATOR_LISTEN_PORT = {port}",
        "SUSHY_EMULATOR_FAKE_DRIVER = True",
        f"SUSHY_EMULATOR_STATE_DIR = {str(state)!r}",
        f"SUSHY_EMULATOR_FAKE_SYSTEMS = {[s.as_config() for s in systems]!r}",
    ]
    if auth_file is not None:
        lines.append(f"SUSHY_EMULATOR_AUTH_FILE = {str(auth_file)!r}")
    path.write_text("\n".join(lines) + "\n")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/redfish/v1/", timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # start_new_session: the group id is the emulator's pid; never signal anything else
    stop_group(proc, grace=5)


@contextmanager
def sushy_emulator(
    tmp: Path,
    *,
    systems: tuple[FakeSystem, ...] = DEFAULT_SYSTEMS,
    auth: bool = False,
    startup_timeout: float = 10.0,
) -> Iterator[Emulator]:
    cmd = emulator_command()
    if cmd is None:
        _cannot_start("sushy-emulator is not installed")
        raise AssertionError("unreachable")
    tmp.mkdir(parents=True, exist_ok=True)
    state = tmp / "state"  # fresh per emulator: power and boot changes stay in this test
    auth_file = None
    if auth:
        auth_file = tmp / "htpasswd"
        auth_file.write_text(f"{USERNAME}:{PASSWORD_BCRYPT}\n")
    log_path = tmp / "emulator.log"
    proc: subprocess.Popen[bytes] | None = None
    failure = ""
    try:
        for _ in range(3):  # the port may be taken between free_port() and the emulator's bind
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            config = tmp / "emulator.conf"
            _write_config(config, port, state, systems, auth_file)
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(
                    [*cmd, "--config", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            deadline = time.monotonic() + startup_timeout
            while time.monotonic() < deadline and proc.poll() is None and not _answers(url):
                time.sleep(0.1)
            if proc.poll() is None and _answers(url):
                break
            code = proc.poll()
            _stop(proc)
            what = (
                f"exited with code {code}"
                if code is not None
                else f"no answer on {url} within {startup_timeout:g} s"
            )
            tail = log_path.read_text(errors="replace")[-2000:]
            failure = f"{' '.join(cmd)} {what}; log:\n{tail}"
            proc = None
        if proc is None:
            _cannot_start(failure)
            raise AssertionError("unreachable")
        yield Emulator(url=url, port=port, pid=proc.pid, systems=systems, auth=auth, log=log_path)
    finally:
        if proc is not None:
            _stop(proc)
