"""The one way to call a blocking library: off the event loop, with a deadline and a limit.

A thread cannot be killed: a call that overruns its deadline is abandoned (the caller gets
DeadlineExceeded and the loop goes on) while its thread finishes or hangs on its own. The pool is
bounded, so a storm of hung calls exhausts this pool, never the loop. Drivers whose library can
hang forever (pyghmi) isolate it in killable worker processes on top of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from provisiond.errors import DeadlineExceeded

T = TypeVar("T")


class BlockingRunner:
    def __init__(self, *, max_workers: int = 32, name: str = "blocking") -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)

    async def call(
        self,
        fn: Callable[..., T],
        *args: object,
        seconds: float,
        what: str,
        limiter: asyncio.Semaphore | None = None,
    ) -> T:
        loop = asyncio.get_running_loop()
        guard = limiter if limiter is not None else contextlib.nullcontext()
        async with guard:
            fut = loop.run_in_executor(self._pool, functools.partial(fn, *args))
            try:
                async with asyncio.timeout(seconds):
                    return await fut
            except TimeoutError:
                raise DeadlineExceeded(f"{what}: no answer within {seconds:g}s") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
