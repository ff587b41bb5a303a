"""Lab Redfish: OpenStack's sushy-tools emulator (a real Redfish service) with fake systems.

`provisiond lab redfish --port 8000 --systems r02n01,r02n02 [--username root --password calvin]`
writes the emulator's config (fake driver, one fake ComputerSystem per name, basic auth with a
bcrypt htpasswd entry) into a fresh state directory and runs `sushy-emulator` in the foreground
until killed. Its fake driver applies power changes 0-11 s after accepting them, as slow BMCs do.
sushy-tools is installed with the test extras (`pip install sushy-tools==2.2.0`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import bcrypt


def _command() -> list[str] | None:
    beside = Path(sys.executable).parent / "sushy-emulator"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("sushy-emulator")
    return [found] if found else None


def write_config(
    directory: Path, *, port: int, systems: list[str], username: str, password: str
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    auth = directory / "htpasswd"
    # cost 4: the emulator checks the hash on every request; this is a lab, not a vault
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    auth.write_text(f"{username}:{hashed}\n")
    fake = [
        {
            "uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.lab.provisiond")),
            "name": name,
            "power_state": "Off",
            "nics": [{"mac": f"52:54:00:00:0f:{i:02x}", "ip": "192.0.2.10"}],
        }
        for i, name in enumerate(systems, start=1)
    ]
    config = directory / "emulator.conf"
    config.write_text(
        "\n".join(
            [
                "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'",
                f"SUSHY_EMULATOR_LISTEN_PORT = {port}",
                "SUSHY_EMULATOR_FAKE_DRIVER = True",
                f"SUSHY_EMULATOR_STATE_DIR = {str(directory / 'state')!r}",
                f"SUSHY_EMULATOR_FAKE_SYSTEMS = {fake!r}",
                f"SUSHY_EMULATOR_AUTH_FILE = {str(auth)!r}",
            ]
        )
        + "\n"
    )
    return config


def run(*, port: int, systems: list[str], username: str, password: str, state: str | None) -> int:
    cmd = _command()
    if cmd is None:
        print(
            "provisiond lab redfish: sushy-emulator is not installed "
            "(pip install sushy-tools==2.2.0)",
            file=sys.stderr,
        )
        return 2
    if not systems or any(not s or "/" in s for s in systems):
        print("provisiond lab redfish: --systems needs names like r02n01,r02n02", file=sys.stderr)
        return 2
    directory = Path(state) if state else Path(tempfile.mkdtemp(prefix="provisiond-redfish-"))
    config = write_config(
        directory, port=port, systems=systems, username=username, password=password
    )
    print(
        f"lab redfish: {len(systems)} system(s) at http://127.0.0.1:{port}/redfish/v1 "
        f"(user {username!r}, state {directory})",
        flush=True,
    )
    os.execv(cmd[0], [*cmd, "--config", str(config)])
