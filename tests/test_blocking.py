"""Blocking calls run off the event loop with a deadline; a hung call never stalls the loop,
and a hung BMC costs only its own node a timeout."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from drivers.bmc.base import BmcTarget
from drivers.registry import BmcRegistry
from provisiond.blocking import BlockingRunner
from provisiond.bmc import BmcGateway
from provisiond.errors import BmcError, DeadlineExceeded
from tests.support import fakebmc


async def test_blocking_call_past_its_deadline_does_not_stall_the_loop() -> None:
    runner = BlockingRunner(max_workers=2)
    release = threading.Event()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(100):
            await asyncio.sleep(0.01)
            ticks += 1

    t = asyncio.create_task(ticker())
    with pytest.raises(DeadlineExceeded, match=r"hung-call: no answer within 0\.3s"):
        await runner.call(release.wait, 30, seconds=0.3, what="hung-call")
    assert ticks > 0  # the loop kept running while the thread was stuck
    release.set()
    assert await runner.call(lambda: 42, seconds=1, what="quick") == 42
    await t
    runner.close()


async def test_limiter_bounds_concurrent_blocking_calls() -> None:
    runner = BlockingRunner(max_workers=8)
    limit = asyncio.Semaphore(2)
    active = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1

    await asyncio.gather(*(runner.call(work, seconds=5, what="w", limiter=limit) for _ in range(8)))
    assert peak == 2
    runner.close()


def _target(port: int) -> BmcTarget:
    return BmcTarget("fake", "127.0.0.1", port, "admin", "secret")


async def test_hung_bmc_costs_only_its_own_node(fakebmc_dir: object) -> None:
    gw = BmcGateway(
        BmcRegistry({"fake": "tests.support.fakebmc:FakeBmc"}), timeout=0.3, concurrency=8
    )
    fakebmc.set_behaviour("127.0.0.1:9001", delay=30)
    results = await asyncio.gather(
        gw.call(_target(9001), "get power", lambda d: d.get_power(_target(9001))),
        gw.call(_target(9002), "get power", lambda d: d.get_power(_target(9002))),
        return_exceptions=True,
    )
    assert isinstance(results[0], DeadlineExceeded) and results[0].transient
    assert "127.0.0.1:9001" in results[0].message
    assert results[1] == "off"  # the healthy BMC answered although its neighbour hung
    await gw.close()


async def test_missing_driver_is_a_clear_permanent_error() -> None:
    gw = BmcGateway(BmcRegistry(), timeout=1, concurrency=1)
    target = BmcTarget("ilo", "127.0.0.1", 623, "admin", "x")
    with pytest.raises(BmcError, match="no BMC driver 'ilo' is installed") as err:
        await gw.call(target, "get power", lambda d: d.get_power(target))
    assert not err.value.transient
