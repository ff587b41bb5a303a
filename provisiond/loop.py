"""The shape both reconcilers share (switch ports, InfiniBand partitions): a background loop
woken by changes and by a timer, at most one task per row (switch, fabric) at a time, all
cancelled together when the app stops. What a tick looks at and what a task does is theirs."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

log = logging.getLogger(__name__)


class LoopSettings(Protocol):
    @property
    def enabled(self) -> bool: ...

    @property
    def interval(self) -> float: ...


class ReconcileLoop(abc.ABC):
    """``start`` runs ``tick`` every ``settings.interval`` seconds, or at once after ``wake``;
    ``spawn`` runs one task per row id, skipping a row whose task is still running (what
    changed meanwhile goes into its next pass)."""

    loop_name = "reconciler"

    def __init__(self, settings: LoopSettings) -> None:
        self._loop_settings = settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: dict[int, asyncio.Task[Any]] = {}

    @abc.abstractmethod
    async def tick(self) -> None:
        """Look at the rows and ``spawn`` what is due."""

    def start(self) -> None:
        if self._loop_settings.enabled and self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self.loop_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._running.values()):
            task.cancel()
        for task in list(self._running.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def wake(self) -> None:
        """Something changed: look now rather than at the next tick."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()  # before the tick: a wake during it is not lost
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not end the loop
                log.exception("%s: tick failed", self.loop_name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._loop_settings.interval)

    def spawn(self, row_id: int, work: Coroutine[Any, Any, None], name: str) -> None:
        if row_id in self._running:
            work.close()
            return
        task = asyncio.create_task(work, name=name)
        self._running[row_id] = task
        task.add_done_callback(functools.partial(self._done, row_id))

    def _done(self, row_id: int, _task: asyncio.Task[Any]) -> None:
        self._running.pop(row_id, None)
