"""Power reconciliation (provisiond.powersync) on both backends, with the fake BMC driver.

Each test drives passes with run_once() on a PowerSync of its own, sharing the daemon's database,
secret box and BMC gateway; the daemon's own loop (started by the app) waits its 120 s interval
and never runs during a test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest
from sqlalchemy import select

from provisiond.api.app import POWER_SYNC
from provisiond.config import PowerSyncSettings, load_settings
from provisiond.errors import ConfigError
from provisiond.models import Event, Node, Operation
from provisiond.powersync import POWER_FAULT, PowerSync
from tests.conftest import Api, rack_yaml
from tests.support import fakebmc
from tests.support.fakebmc import FakeBmc

KEY = {f"r01n{i:02d}": f"127.0.0.1:{7000 + i}" for i in range(1, 5)}


def make_sync(api: Api, **cfg: Any) -> PowerSync:
    base: dict[str, Any] = {
        "interval": 60,
        "concurrency": 8,
        "failures_before_maintenance": 3,
        "recovery_interval": 3600,
        "call_timeout": 2,
    }
    return PowerSync(
        api.services.db,
        PowerSyncSettings(**{**base, **cfg}),
        api.services.box,
        api.services.engine.bmc,
    )


@pytest.fixture
async def rack(api: Api) -> Api:
    r = await api.enroll(rack_yaml(n=4))
    assert r.status == 201, await r.text()
    return api


async def get(api: Api, name: str) -> Node:
    async with api.services.db.read() as s:
        return (await s.scalars(select(Node).where(Node.name == name))).one()


async def change(api: Api, name: str, **values: Any) -> None:
    async with api.services.db.write() as s:
        n = (await s.scalars(select(Node).where(Node.name == name))).one()
        for k, v in values.items():
            setattr(n, k, v)


async def power_events(api: Api, name: str) -> list[str]:
    async with api.services.db.read() as s:
        rows = await s.scalars(
            select(Event.message)
            .join(Node, Event.node_id == Node.id)
            .where(Node.name == name, Event.kind == "power")
            .order_by(Event.id)
        )
        return list(rows)


def reads(name: str) -> int:
    return sum(1 for c in fakebmc.calls() if c.startswith(f"{KEY[name]} get_power"))


async def hold(api: Api, name: str, *, state: str = "running") -> str:
    """An operation of a daemon on another host holds the node (its lease far from expiry, so
    this test's engine leaves it alone)."""
    now = dt.datetime.now(dt.UTC)
    n = await get(api, name)
    async with api.services.db.write() as s:
        op = Operation(
            kind="power-on",
            node_id=n.id,
            state=state,
            step="0",
            lease_owner="otherhost:4242:alive" if state == "running" else None,
            lease_expires_at=now + dt.timedelta(hours=1) if state == "running" else None,
            deadline=now + dt.timedelta(hours=1),
            finished_at=None if state == "running" else now,
        )
        s.add(op)
        await s.flush()
        return op.id


async def test_power_is_recorded_from_hardware(rack: Api) -> None:
    fakebmc.set_behaviour(KEY["r01n02"], power="on")
    res = await make_sync(rack).run_once()
    assert (res.polled, res.ok, res.failed, res.skipped_busy) == (4, 4, 0, 0)
    assert res.changed == 4  # unknown -> a reading
    for name in KEY:
        n = await get(rack, name)
        assert n.power_state == ("on" if name == "r01n02" else "off")
        assert n.power_checked_at is not None and n.power_failures == 0
        # a first reading is not drift
        assert await power_events(rack, name) == []
    # the loop only reads
    assert not [c for c in fakebmc.calls() if " get_power" not in c]


async def test_drift_is_recorded_with_an_event_hardware_wins(rack: Api) -> None:
    sync = make_sync(rack)
    await sync.run_once()
    await change(rack, "r01n01", power_state="on")  # the database believes on; hardware is off
    fakebmc.set_behaviour(KEY["r01n03"], power="on")  # switched on behind our back
    res = await sync.run_once()
    assert res.changed == 2 and res.ok == 4
    assert (await get(rack, "r01n01")).power_state == "off"
    assert (await get(rack, "r01n03")).power_state == "on"
    assert await power_events(rack, "r01n01") == [
        "power state changed outside provisiond: on -> off"
    ]
    assert await power_events(rack, "r01n03") == [
        "power state changed outside provisiond: off -> on"
    ]
    assert (await sync.run_once()).changed == 0
    assert len(await power_events(rack, "r01n03")) == 1
    assert not [c for c in fakebmc.calls() if "set_power" in c]


async def test_retired_and_uninstalled_driver_nodes_are_not_polled(rack: Api) -> None:
    await change(rack, "r01n03", retired=True)
    await change(rack, "r01n04", bmc_driver="nosuch")
    res = await make_sync(rack).run_once()
    assert res.polled == 2
    assert reads("r01n03") == reads("r01n04") == 0


async def test_node_with_an_active_operation_is_skipped(rack: Api) -> None:
    await hold(rack, "r01n02")
    res = await make_sync(rack).run_once()
    assert res.skipped_busy == 1 and res.polled == 3 and res.ok == 3
    assert reads("r01n02") == 0
    assert (await get(rack, "r01n02")).power_checked_at is None


@pytest.mark.parametrize("op_state", ["running", "succeeded"])
async def test_result_racing_an_operation_is_discarded(rack: Api, op_state: str) -> None:
    """An operation starts (or even runs and ends) while the BMC is being read: the reading may
    predate its power action, so it is dropped; the operation owns the node."""
    await change(rack, "r01n01", power_state="on")
    fakebmc.set_behaviour(KEY["r01n01"], delay=0.4)
    task = asyncio.create_task(make_sync(rack).run_once())
    for _ in range(200):
        if reads("r01n01"):
            break
        await asyncio.sleep(0.01)
    assert reads("r01n01") == 1
    await hold(rack, "r01n01", state=op_state)
    res = await task
    assert res.skipped_busy == 1 and res.ok == 3
    n = await get(rack, "r01n01")
    assert n.power_state == "on" and n.power_checked_at is None and n.power_failures == 0
    assert await power_events(rack, "r01n01") == []


async def test_failing_nodes_are_polled_first(rack: Api) -> None:
    now = dt.datetime.now(dt.UTC)
    await change(rack, "r01n01", power_checked_at=now - dt.timedelta(hours=1))
    await change(rack, "r01n02", power_failures=1, power_checked_at=now)
    await change(rack, "r01n03", power_failures=2, power_checked_at=now)
    await change(rack, "r01n04", power_checked_at=None)
    await make_sync(rack, concurrency=1).run_once()
    order = [c.split(" ", 1)[0] for c in fakebmc.calls() if " get_power" in c]
    assert order == [KEY["r01n03"], KEY["r01n02"], KEY["r01n04"], KEY["r01n01"]]


async def test_consecutive_failures_set_maintenance_then_recovery(rack: Api) -> None:
    sync = make_sync(rack, failures_before_maintenance=3, recovery_interval=3600)
    await sync.run_once()
    fakebmc.set_behaviour(KEY["r01n02"], auth_fail=True)
    for i in (1, 2):
        res = await sync.run_once()
        assert res.failed == 1 and res.maintenance_set == 0
        n = await get(rack, "r01n02")
        assert n.power_failures == i and not n.maintenance
    res = await sync.run_once()
    assert res.maintenance_set == 1
    n = await get(rack, "r01n02")
    assert n.maintenance and n.fault == POWER_FAULT and n.power_failures == 3
    assert n.maintenance_reason is not None
    assert n.maintenance_reason.startswith("power sync: 3 consecutive BMC failures: ")
    assert "authentication failed" in n.maintenance_reason
    assert n.power_state == "off"  # the last known value stays; the count says it is stale
    evs = await power_events(rack, "r01n02")
    assert len(evs) == 3 and "authentication failed" in evs[0]
    assert evs[-1].startswith("power sync: 3 consecutive BMC failures; maintenance set")

    # within recovery_interval it is left alone
    before = reads("r01n02")
    res = await sync.run_once()
    assert res.polled == 3 and reads("r01n02") == before

    # past it: probed again; still failing, still in maintenance, count goes on
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    await change(rack, "r01n02", power_checked_at=old)
    res = await sync.run_once()
    assert res.polled == 4 and res.failed == 1 and res.maintenance_set == 0
    n = await get(rack, "r01n02")
    assert n.maintenance and n.power_failures == 4 and n.fault == POWER_FAULT
    assert n.power_checked_at is not None and n.power_checked_at > old
    assert (await sync.run_once()).polled == 3  # the failed probe restarted the interval

    # the BMC answers again: maintenance, reason and fault cleared
    fakebmc.set_behaviour(KEY["r01n02"])
    await change(rack, "r01n02", power_checked_at=old)
    res = await sync.run_once()
    assert res.maintenance_cleared == 1 and res.ok == 4
    n = await get(rack, "r01n02")
    assert not n.maintenance and n.fault is None and n.maintenance_reason is None
    assert n.power_failures == 0
    assert (await power_events(rack, "r01n02"))[-1] == (
        "power sync: BMC answers again, maintenance cleared"
    )
    assert not [c for c in fakebmc.calls() if "set_power" in c]


async def test_operator_maintenance_keeps_its_reason_and_fault(rack: Api) -> None:
    r = await rack.req(
        "POST", "/v1/nodes/r01n03/actions/maintenance-on", json={"reason": "PSU swap, ticket 4711"}
    )
    assert r.status == 202, await r.text()
    await change(rack, "r01n03", fault="psu")
    fakebmc.set_behaviour(KEY["r01n03"], transient_failures=100)
    sync = make_sync(rack, failures_before_maintenance=2)
    for i in range(1, 5):
        res = await sync.run_once()
        # polled at the normal interval: only this loop's own maintenance waits for recovery
        assert res.polled == 4 and res.failed == 1 and res.maintenance_set == 0
        n = await get(rack, "r01n03")
        assert n.power_failures == i
        assert n.maintenance and n.maintenance_reason == "PSU swap, ticket 4711"
        assert n.fault == "psu"
    fakebmc.set_behaviour(KEY["r01n03"])
    res = await sync.run_once()
    assert res.maintenance_cleared == 0
    n = await get(rack, "r01n03")
    assert n.power_failures == 0 and n.maintenance and n.fault == "psu"
    assert n.maintenance_reason == "PSU swap, ticket 4711"


async def test_reason_rewritten_by_operator_keeps_maintenance_on_recovery(rack: Api) -> None:
    sync = make_sync(rack, failures_before_maintenance=1)
    fakebmc.set_behaviour(KEY["r01n04"], auth_fail=True)
    assert (await sync.run_once()).maintenance_set == 1
    # an operator takes over the maintenance: maintenance-on rewrites the reason only
    r = await rack.req(
        "POST", "/v1/nodes/r01n04/actions/maintenance-on", json={"reason": "BMC replaced"}
    )
    assert r.status == 202
    fakebmc.set_behaviour(KEY["r01n04"])
    await change(rack, "r01n04", power_checked_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    res = await sync.run_once()
    assert res.ok == 4 and res.maintenance_cleared == 0
    n = await get(rack, "r01n04")
    assert n.maintenance and n.maintenance_reason == "BMC replaced" and n.fault is None


async def test_hung_bmc_costs_one_timeout_and_others_are_recorded(rack: Api) -> None:
    fakebmc.set_behaviour(KEY["r01n01"], delay=30)
    res = await make_sync(rack, call_timeout=0.3, concurrency=2).run_once()
    assert (res.ok, res.failed) == (3, 1)
    n = await get(rack, "r01n01")
    assert n.power_failures == 1 and n.power_state == "unknown"
    assert "no answer within 0.3s" in (await power_events(rack, "r01n01"))[0]
    for name in ("r01n02", "r01n03", "r01n04"):
        assert (await get(rack, name)).power_state == "off"


async def test_concurrency_is_bounded(rack: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    r = await rack.enroll(rack_yaml("r02", n=5, port0=7100, mac_block=2), rack="r02")
    assert r.status == 201, await r.text()
    in_flight = peak = 0
    real = FakeBmc.get_power

    async def counting(self: FakeBmc, target: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.05)
            return await real(self, target)
        finally:
            in_flight -= 1

    monkeypatch.setattr(FakeBmc, "get_power", counting)
    res = await make_sync(rack, concurrency=3).run_once()
    assert res.ok == 9
    assert peak == 3


async def test_loop_starts_and_stops(rack: Api) -> None:
    sync = make_sync(rack, interval=0.05)
    sync.start()
    assert sync.running
    try:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if all([(await get(rack, name)).power_state == "off" for name in KEY]):
                break
            await asyncio.sleep(0.02)
        assert all([(await get(rack, name)).power_state == "off" for name in KEY])
    finally:
        await sync.stop()
    assert not sync.running
    disabled = make_sync(rack, enabled=False)
    disabled.start()
    assert not disabled.running


async def test_daemon_runs_power_sync(api: Api) -> None:
    app = api.client.app
    assert app is not None
    sync = app[POWER_SYNC]
    assert sync.running and sync.cfg.interval == 120


def test_power_sync_settings() -> None:
    s = load_settings(None, env={"PROVISIOND_POWER_SYNC__INTERVAL": "30"})
    assert s.power_sync.interval == 30 and s.power_sync.concurrency == 8
    assert s.power_sync.failures_before_maintenance == 3
    assert (s.power_sync.recovery_interval, s.power_sync.call_timeout) == (600, 20)
    with pytest.raises(ConfigError, match=r"power_sync\.concurrency"):
        load_settings(None, env={}, overrides={"power_sync": {"concurrency": 0}})
