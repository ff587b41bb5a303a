"""The gateway every BMC call goes through: driver lookup, a global limit, one call at a time per
BMC, the driver's minimum interval between two commands to one BMC, and a hard deadline. A dead
BMC costs its own node a timeout and nobody else anything."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from drivers.bmc.base import BmcDriver, BmcTarget
from drivers.registry import BmcRegistry
from provisiond.errors import BmcError, DeadlineExceeded

T = TypeVar("T")


class BmcGateway:
    def __init__(self, registry: BmcRegistry, *, timeout: float, concurrency: int) -> None:
        self.registry = registry
        self.timeout = timeout
        self._limit = asyncio.Semaphore(concurrency)
        self._locks: dict[str, asyncio.Lock] = {}
        # per BMC: monotonic time the last command to it ended
        self._last: dict[str, float] = {}

    def _driver(self, target: BmcTarget) -> BmcDriver:
        drv = self.registry.get(target.driver)
        if drv is None:
            installed = ", ".join(sorted(self.registry.installed())) or "none"
            raise BmcError(
                f"no BMC driver {target.driver!r} is installed in this daemon "
                f"(installed: {installed})",
                transient=False,
            )
        return drv

    async def call(
        self,
        target: BmcTarget,
        what: str,
        fn: Callable[[BmcDriver], Awaitable[T]],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - overrides the deadline applied below
    ) -> T:
        drv = self._driver(target)
        seconds = self.timeout if timeout is None else timeout
        key = target.key
        lock = self._locks.setdefault(key, asyncio.Lock())
        # queue on the BMC first: a caller waiting for its BMC must not hold a global slot
        async with lock:
            gap = drv.min_interval - (time.monotonic() - self._last.get(key, -1e9))
            if gap > 0:
                await asyncio.sleep(gap)
            async with self._limit:
                try:
                    async with asyncio.timeout(seconds):
                        return await fn(drv)
                except TimeoutError:
                    raise DeadlineExceeded(
                        f"BMC {key} ({target.driver}) {what}: no answer within {seconds:g}s"
                    ) from None
                finally:
                    self._last[key] = time.monotonic()

    async def close(self) -> None:
        await self.registry.close()
