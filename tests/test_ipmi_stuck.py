"""A call left inside pyghmi long past its caller's deadline gets its worker replaced, so the
BMC is not refused forever ("an earlier call is still waiting") when pyghmi never returns."""

from __future__ import annotations

import asyncio

import pytest

from drivers.bmc.base import BmcTarget, PowerState
from drivers.bmc.ipmi import IpmiDriver
from provisiond.errors import DriverError
from tests.support.labbmc import lab_bmc


async def test_call_stuck_past_its_deadline_recycles_the_worker() -> None:
    with lab_bmc(2, control={"{base}": {"hung": True}}) as lab:
        hung = BmcTarget("ipmi", "127.0.0.1", lab.ports[0], "admin", "password")
        # budget 2 x 1 s; pyghmi keeps trying a dead BMC for several seconds more than that, which
        # stuck_after = 0.5 treats as stuck (in production it is 90 s, beyond pyghmi's own limits)
        driver = IpmiDriver(
            {"workers": 1, "command_timeout": 1, "stall_grace": 5, "stuck_after": 0.5,
             "min_interval": 0}
        )  # fmt: skip
        try:
            with pytest.raises(DriverError) as first:
                await driver.get_power(hung)
            assert first.value.transient
            for _ in range(100):  # bounded: the supervisor probes every 0.25 s
                if driver.pool.restarts:
                    break
                await asyncio.sleep(0.1)
            assert driver.pool.restarts == 1
            # the hung BMC is tried afresh (not refused as "still waiting"), the healthy one works
            with pytest.raises(DriverError) as second:
                await driver.get_power(hung)
            assert "still waiting" not in str(second.value)
            # that call is stuck too, so its worker goes the same way; wait for it, else the
            # healthy call below lands on the worker being replaced and fails (transient, by design)
            for _ in range(100):
                if driver.pool.restarts == 2:
                    break
                await asyncio.sleep(0.1)
            assert driver.pool.restarts == 2
            healthy = BmcTarget("ipmi", "127.0.0.1", lab.ports[1], "admin", "password")
            assert await driver.get_power(healthy) in (PowerState.ON, PowerState.OFF)
        finally:
            await driver.close()
