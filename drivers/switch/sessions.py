"""Blocking switch sessions (netmiko, napalm) off the event loop: one session per switch at a
time, a bounded thread pool shared by all switches, a deadline per session.

A session that overruns its deadline is abandoned (its thread finishes or hangs on its own, the
caller gets a transient SwitchError and the switch's lock is released); the pool is bounded, so
hung switches exhaust this pool, never the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from drivers.switch.base import SwitchError, SwitchTarget
from provisiond.blocking import BlockingRunner
from provisiond.errors import DeadlineExceeded


class SwitchSessions:
    def __init__(self, *, workers: int, timeout: float, name: str) -> None:
        self.timeout = timeout
        self._runner = BlockingRunner(max_workers=workers, name=name)
        self._locks: dict[str, asyncio.Lock] = {}

    async def run(
        self, target: SwitchTarget, what: str, fn: Callable[..., Any], *args: Any
    ) -> Any:
        """``fn(target, *args)`` in a pool thread, after any other session to this switch."""
        async with self._locks.setdefault(target.key, asyncio.Lock()):
            try:
                return await self._runner.call(
                    fn, target, *args, seconds=self.timeout, what=f"{target.name} {what}"
                )
            except DeadlineExceeded as exc:
                raise SwitchError(
                    f"switch {target.name} ({target.key}): {what}: no answer within "
                    f"{self.timeout:g}s",
                    transient=True,
                ) from exc

    def close(self) -> None:
        self._runner.close()
