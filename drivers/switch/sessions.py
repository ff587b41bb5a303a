"""Blocking switch sessions (netmiko, napalm) off the event loop: one session per switch at a
time, a bounded thread pool shared by all switches, a deadline per session.

A session that overruns its deadline is abandoned by its caller (a transient SwitchError), but
a thread cannot be killed: the switch stays locked until that thread has really finished, so a
late session can never run into (or save over) the next one. The pool is bounded, so hung
switches exhaust this pool, never the event loop. Whatever a library raises that is not ours
(netmiko's ReadTimeout in session preparation, a ValueError when no prompt is found) becomes a
transient SwitchError here, at the one boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from drivers.switch.base import SwitchError, SwitchTarget
from provisiond.errors import ProvisionError


class SwitchSessions:
    def __init__(self, *, workers: int, timeout: float, name: str) -> None:
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._locks: dict[str, asyncio.Lock] = {}
        self._late: set[asyncio.Task[None]] = set()

    async def run(
        self, target: SwitchTarget, what: str, fn: Callable[..., Any], *args: Any
    ) -> Any:
        """``fn(target, *args)`` in a pool thread, after any other session to this switch."""
        lock = self._locks.setdefault(target.key, asyncio.Lock())
        await lock.acquire()
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool, functools.partial(fn, target, *args))
        held: asyncio.Lock | None = lock
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.shield(fut)
        except (TimeoutError, asyncio.CancelledError) as exc:
            # the thread goes on: the lock passes to a task that releases it when it is done
            task = asyncio.create_task(_release_when_done(fut, lock))
            self._late.add(task)
            task.add_done_callback(self._late.discard)
            held = None
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise SwitchError(
                f"switch {target.name} ({target.key}): {what}: no answer within "
                f"{self.timeout:g}s",
                transient=True,
            ) from None
        except ProvisionError:
            raise
        except Exception as exc:  # a library's own exception: at this boundary, ours
            raise SwitchError(
                f"switch {target.name} ({target.key}): {what} failed: "
                f"{type(exc).__name__}: {exc}",
                transient=True,
            ) from exc
        finally:
            if held is not None:
                held.release()

    def close(self) -> None:
        for task in self._late:
            task.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)


async def _release_when_done(fut: asyncio.Future[Any], lock: asyncio.Lock) -> None:
    try:
        with contextlib.suppress(BaseException):
            await fut
    finally:
        lock.release()
