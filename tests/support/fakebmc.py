"""An in-process fake of our own BMC driver contract, for engine tests (conventions §8).

State lives in JSON files under $PROVISIOND_TEST_FAKEBMC_DIR so that it survives a daemon killed
with SIGKILL and is visible to the test process. Behaviour per BMC ("address:port") comes from
behaviour.json in the same directory:
  {"127.0.0.1:7001": {"delay": 5, "transient_failures": 2, "auth_fail": true, "power": "unknown"}}
Every call is appended to calls.log as "key method arg".
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from drivers.bmc.base import (
    BmcDriver,
    BmcIdentity,
    BmcTarget,
    BootDevice,
    BootSetting,
    PowerAction,
    PowerState,
)
from provisiond.errors import BmcError


def state_dir() -> Path:
    d = Path(os.environ["PROVISIOND_TEST_FAKEBMC_DIR"])
    d.mkdir(parents=True, exist_ok=True)
    return d


def set_behaviour(key: str, **behaviour: Any) -> None:
    path = state_dir() / "behaviour.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = behaviour
    path.write_text(json.dumps(data))


def calls() -> list[str]:
    path = state_dir() / "calls.log"
    return path.read_text().splitlines() if path.exists() else []


class FakeBmc(BmcDriver):
    name = "fake"

    def _behaviour(self, target: BmcTarget) -> dict[str, Any]:
        path = state_dir() / "behaviour.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        return dict(data.get(target.key, {}))

    def _state_path(self, target: BmcTarget) -> Path:
        return state_dir() / f"bmc-{target.key.replace(':', '_')}.json"

    def _load(self, target: BmcTarget) -> dict[str, Any]:
        p = self._state_path(target)
        return (
            json.loads(p.read_text())
            if p.exists()
            else {"power": "off", "boot": None, "failures": 0}
        )

    def _save(self, target: BmcTarget, state: dict[str, Any]) -> None:
        p = self._state_path(target)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(p)

    def _log(self, target: BmcTarget, method: str, arg: str = "") -> None:
        with open(state_dir() / "calls.log", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.write(f"{target.key} {method} {arg}\n")

    async def _enter(self, target: BmcTarget, method: str, arg: str = "") -> dict[str, Any]:
        self._log(target, method, arg)
        b = self._behaviour(target)
        if b.get("delay"):
            await asyncio.sleep(float(b["delay"]))
        if b.get("auth_fail") or target.password == "wrong":
            raise BmcError(f"BMC {target.key}: authentication failed (check username/password)")
        state = self._load(target)
        if state["failures"] < int(b.get("transient_failures", 0)):
            state["failures"] += 1
            self._save(target, state)
            raise BmcError(f"BMC {target.key}: timeout (simulated)", transient=True)
        return state

    async def validate(self, target: BmcTarget) -> BmcIdentity:
        await self._enter(target, "validate")
        return BmcIdentity(manufacturer="Fake", product="FakeBMC", firmware="1.0")

    async def get_power(self, target: BmcTarget) -> PowerState:
        state = await self._enter(target, "get_power")
        forced = self._behaviour(target).get("power")
        return PowerState(forced or state["power"])

    async def set_power(self, target: BmcTarget, *, action: PowerAction, wait: float = 0) -> None:
        state = await self._enter(target, "set_power", action.value)
        state["power"] = "off" if action in (PowerAction.OFF, PowerAction.SOFT_OFF) else "on"
        self._save(target, state)

    async def set_boot_device(
        self, target: BmcTarget, *, device: BootDevice, persistent: bool = False, uefi: bool = True
    ) -> None:
        state = await self._enter(target, "set_boot_device", device.value)
        state["boot"] = device.value
        self._save(target, state)

    async def get_boot_device(self, target: BmcTarget) -> BootSetting:
        state = await self._enter(target, "get_boot_device")
        return BootSetting(device=BootDevice(state["boot"] or "none"), persistent=False, uefi=True)
