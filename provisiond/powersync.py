"""Power reconciliation: a background loop that reads every node's power state from its BMC and
records it (docs/operator-guide.md#power-sync).

Who wins when the database and the hardware disagree: the hardware, for the record. A pass writes
what the BMC says into ``power_state`` and, when that differs from what was recorded, an event
("power state changed outside provisiond: on -> off"). It never issues a power action, never moves
a node's lifecycle state, and never touches a node while an operation holds it: the operation owns
the node and its BMC, and records power itself.

A BMC that cannot be read leaves ``power_state`` alone (the last known value); ``power_failures``
counts consecutive failed reads, and at ``failures_before_maintenance`` the node goes into
maintenance with fault "power failure". Such nodes are probed again only every
``recovery_interval``; the first good read clears that maintenance. Maintenance set by anybody else
keeps its reason and fault; such nodes are read at the normal interval, their failures counted.

Race safety: each node's result is written in its own short write transaction that locks the node
row (the engine's lock order: node, then operation; this loop never locks an operation row) and
re-checks that no operation became active, or ran and ended, since the read began. If one did,
the result is discarded. Every operation is admitted under the same node lock (Engine.submit), so
on PostgreSQL the check cannot miss one; on SQLite write transactions are serialised anyway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from drivers.bmc.base import BmcTarget, PowerState
from provisiond import events
from provisiond.bmc import BmcGateway
from provisiond.config import PowerSyncSettings
from provisiond.crypto import SecretBox
from provisiond.db import Database
from provisiond.errors import DriverError, ProvisionError
from provisiond.lifecycle import FLAG_ACTIONS
from provisiond.models import ACTIVE_OPERATION_STATES, Node, Operation, utcnow

log = logging.getLogger(__name__)

#: the fault this loop sets, and the only one it ever clears
POWER_FAULT = "power failure"
#: every maintenance reason this loop writes starts with this
REASON_PREFIX = "power sync:"
EVENT_KIND = "power"
#: past failures_before_maintenance, only every this many-th failure is an event (the count in
#: power_failures stays exact); a dead BMC would otherwise bury the node's history
FAILURE_EVENT_EVERY = 10
_MAX_ERROR = 500
_FLAG_KINDS = tuple(sorted(a.value for a in FLAG_ACTIONS))
_UNKNOWN = PowerState.UNKNOWN.value


@dataclass
class PassResult:
    """What one pass did. ``polled``: nodes whose BMC was asked; ``skipped_busy``: nodes held by
    an operation (at selection, or when the answer came back), or whose BMC stayed busy with
    other calls for the whole budget of the read; ``changed``: nodes whose recorded power state
    changed; ``failed``: failed reads, plus nodes whose stored BMC password cannot be decrypted
    (not asked, not counted against the node: the daemon's key is at fault)."""

    polled: int = 0
    ok: int = 0
    failed: int = 0
    changed: int = 0
    skipped_busy: int = 0
    maintenance_set: int = 0
    maintenance_cleared: int = 0
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        d = dataclasses.asdict(self)
        d.pop("seconds")
        return d


@dataclass(frozen=True)
class _Probe:
    node_id: str
    name: str
    driver: str
    address: str
    port: int | None
    system_id: str | None
    username: str | None
    password_enc: str | None


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."


class PowerSync:
    def __init__(
        self,
        db: Database,
        settings: PowerSyncSettings,
        box: SecretBox,
        bmc: BmcGateway,
    ) -> None:
        self.db = db
        self.cfg = settings
        self.box = box
        self.bmc = bmc
        self._task: asyncio.Task[None] | None = None
        self._pass_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the background loop (no-op when disabled or already running). The first pass
        runs one interval after start, leaving the BMCs to the engine's recovery first."""
        if not self.cfg.enabled:
            log.info("power sync: disabled (power_sync.enabled = false)")
            return
        if self.running:
            return
        self._task = asyncio.create_task(self._loop(), name="power-sync")

    async def stop(self, grace: float = 5.0) -> None:
        """Cancel the loop (and a pass in progress) and wait for it, at most ``grace`` s."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            log.warning("power sync: loop did not stop within %gs", grace)
        elif not task.cancelled() and task.exception() is not None:
            log.error("power sync: loop had died: %r", task.exception())

    async def _loop(self) -> None:
        delay = self.cfg.interval
        while True:
            await asyncio.sleep(delay)
            began = time.monotonic()
            try:
                # another daemon on the same database may have read a node moments ago
                await self.run_once(fresh_within=self.cfg.interval / 2)
            except Exception:  # the database may be briefly unavailable; keep going
                log.exception("power sync: pass failed; next one in %gs", self.cfg.interval)
            spent = time.monotonic() - began
            if spent > self.cfg.interval:
                log.warning(
                    "power sync: a pass took %.1fs, longer than power_sync.interval (%gs); "
                    "raise power_sync.concurrency or the interval",
                    spent,
                    self.cfg.interval,
                )
            delay = max(min(1.0, self.cfg.interval), self.cfg.interval - spent)

    # ------------------------------------------------------------------ one pass

    async def run_once(self, *, fresh_within: float | None = None) -> PassResult:
        """One pass over every due node; passes never overlap (a second caller waits).
        ``fresh_within``: skip nodes read less than this many seconds ago (the loop's guard
        against several daemons on one database reading the same BMCs back to back)."""
        async with self._pass_lock:
            began = time.monotonic()
            result = PassResult()
            probes, busy = await self._select(fresh_within)
            result.skipped_busy += busy
            if probes:
                todo = iter(probes)
                async with asyncio.TaskGroup() as tg:
                    for i in range(min(self.cfg.concurrency, len(probes))):
                        tg.create_task(self._worker(todo, result), name=f"power-sync-{i}")
            result.seconds = time.monotonic() - began
        log.info(
            "power sync: pass done in %.2fs: %s",
            result.seconds,
            " ".join(f"{k}={v}" for k, v in result.counts().items()),
        )
        return result

    async def _select(self, fresh_within: float | None) -> tuple[list[_Probe], int]:
        """Due nodes in probe order, and how many were skipped for an active operation."""
        installed = sorted(self.bmc.registry.installed())
        if not installed:
            return [], 0
        now = utcnow()
        recovery_cutoff = now - dt.timedelta(seconds=self.cfg.recovery_interval)
        held = (
            exists()
            .where(
                Operation.node_id == Node.id,
                Operation.state.in_(ACTIVE_OPERATION_STATES),
            )
            .label("held")
        )
        stmt = (
            select(
                Node.id,
                Node.name,
                Node.bmc_driver,
                Node.bmc_address,
                Node.bmc_port,
                Node.bmc_system_id,
                Node.bmc_username,
                Node.bmc_password_enc,
                held,
            )
            .where(
                Node.retired.is_(False),
                Node.bmc_driver.in_(installed),
                # nodes this loop put into maintenance: only every recovery_interval
                or_(
                    Node.maintenance.is_(False),
                    Node.fault.is_(None),
                    Node.fault != POWER_FAULT,
                    Node.power_checked_at.is_(None),
                    Node.power_checked_at < recovery_cutoff,
                ),
            )
            # failing nodes first (most failures first), then the longest unchecked
            .order_by(
                Node.power_failures.desc(),
                Node.power_checked_at.asc().nulls_first(),
                Node.name,
            )
        )
        if fresh_within:
            fresh_cutoff = now - dt.timedelta(seconds=fresh_within)
            stmt = stmt.where(
                or_(Node.power_checked_at.is_(None), Node.power_checked_at < fresh_cutoff)
            )
        async with self.db.read() as s:
            rows = (await s.execute(stmt)).all()
        probes = [
            _Probe(
                node_id=r.id,
                name=r.name,
                driver=r.bmc_driver,
                address=r.bmc_address,
                port=r.bmc_port,
                system_id=r.bmc_system_id,
                username=r.bmc_username,
                password_enc=r.bmc_password_enc,
            )
            for r in rows
            if not r.held
        ]
        return probes, len(rows) - len(probes)

    async def _worker(self, todo: Iterator[_Probe], result: PassResult) -> None:
        for probe in todo:
            try:
                await self._one(probe, result)
            except Exception as exc:  # e.g. the database went away: next pass retries
                log.warning("power sync: node %s: result not recorded: %s", probe.name, exc)

    async def _one(self, probe: _Probe, result: PassResult) -> None:
        began = utcnow()
        try:
            password = self.box.decrypt(probe.password_enc) if probe.password_enc else None
        except ProvisionError as exc:
            # the daemon's key, not the BMC: nothing to count against the node
            result.failed += 1
            log.warning("power sync: node %s: %s", probe.name, exc.message)
            return
        target = BmcTarget(
            driver=probe.driver,
            address=probe.address,
            port=probe.port,
            username=probe.username,
            password=password,
            system_id=probe.system_id,
        )
        result.polled += 1
        state: PowerState | None = None
        error: str | None = None
        # The gateway's deadline covers the call itself; queueing for the BMC (one call at a
        # time per BMC, shared with the engine) does not count against the node, but is bounded
        # too: a read that cannot finish within twice the call timeout is skipped, not failed.
        budget = asyncio.timeout(2 * self.cfg.call_timeout)
        try:
            async with budget:
                state = await self.bmc.call(
                    target,
                    "get power (power sync)",
                    lambda drv: drv.get_power(target),
                    timeout=self.cfg.call_timeout,
                )
        except DriverError as exc:
            error = exc.message
        except TimeoutError:
            if not budget.expired():
                raise
            result.skipped_busy += 1
            log.info("power sync: node %s: BMC %s stayed busy; skipped", probe.name, target.key)
            return
        except Exception as exc:  # a driver bug: the power state still cannot be read
            log.exception("power sync: node %s: driver error", probe.name)
            error = f"internal driver error: {type(exc).__name__}: {exc}"
        await self._record(probe, began, state, error, result)

    async def _record(
        self,
        probe: _Probe,
        began: dt.datetime,
        state: PowerState | None,
        error: str | None,
        result: PassResult,
    ) -> None:
        async with self.db.write() as s:
            # lock order: the node row first (the engine's order); operations are only read
            node = (
                await s.scalars(select(Node).where(Node.id == probe.node_id).with_for_update())
            ).one_or_none()
            if node is None or (
                node.bmc_driver,
                node.bmc_address,
                node.bmc_port,
                node.bmc_system_id,
            ) != (probe.driver, probe.address, probe.port, probe.system_id):
                result.skipped_busy += 1  # deleted, or its BMC was changed meanwhile
                return
            took_over = await s.scalar(
                select(Operation.id)
                .where(
                    Operation.node_id == node.id,
                    or_(
                        Operation.state.in_(ACTIVE_OPERATION_STATES),
                        # ran and ended while we read: our answer may predate its power action
                        and_(
                            Operation.finished_at >= began,
                            Operation.kind.not_in(_FLAG_KINDS),
                        ),
                    ),
                )
                .limit(1)
            )
            if took_over is not None:
                result.skipped_busy += 1
                log.debug(
                    "power sync: node %s: operation %s took it; result discarded",
                    probe.name,
                    took_over,
                )
                return
            now = utcnow()
            if state is not None:
                self._succeeded(s, node, state.value, now, result)
            else:
                assert error is not None
                self._failed(s, node, _clip(error), now, result)

    def _succeeded(
        self, s: AsyncSession, node: Node, new: str, now: dt.datetime, result: PassResult
    ) -> None:
        result.ok += 1
        old = node.power_state
        failures = node.power_failures
        node.power_state = new
        node.power_checked_at = now
        node.power_failures = 0
        if old != new:
            result.changed += 1
            if old != _UNKNOWN and new != _UNKNOWN:
                events.record(
                    s,
                    EVENT_KIND,
                    f"power state changed outside provisiond: {old} -> {new}",
                    node_id=node.id,
                    data={"from": old, "to": new},
                )
            elif new == _UNKNOWN:
                events.record(
                    s,
                    EVENT_KIND,
                    f"power sync: BMC reports power state unknown (was {old})",
                    node_id=node.id,
                    data={"from": old, "to": new},
                )
            # unknown -> on/off: the first reading, nothing drifted
        if node.maintenance and node.fault == POWER_FAULT:
            if (node.maintenance_reason or "").startswith(REASON_PREFIX):
                node.maintenance = False
                node.maintenance_reason = None
                node.fault = None
                result.maintenance_cleared += 1
                events.record(
                    s,
                    EVENT_KIND,
                    "power sync: BMC answers again, maintenance cleared",
                    node_id=node.id,
                    data={"failures": failures},
                )
            else:
                # an operator rewrote the reason: the fault is gone, their maintenance stays
                node.fault = None
                events.record(
                    s,
                    EVENT_KIND,
                    "power sync: BMC answers again, fault cleared; maintenance kept "
                    f"({node.maintenance_reason})",
                    node_id=node.id,
                    data={"failures": failures},
                )
        elif failures:
            events.record(
                s,
                EVENT_KIND,
                f"power sync: BMC answers again after {failures} failed read(s)",
                node_id=node.id,
                data={"failures": failures},
            )

    def _failed(
        self, s: AsyncSession, node: Node, error: str, now: dt.datetime, result: PassResult
    ) -> None:
        result.failed += 1
        node.power_failures += 1
        node.power_checked_at = now
        n = node.power_failures
        limit = self.cfg.failures_before_maintenance
        data = {"failures": n, "error": error}
        if n >= limit and not node.maintenance:
            node.maintenance = True
            node.fault = POWER_FAULT
            node.maintenance_reason = f"{REASON_PREFIX} {n} consecutive BMC failures: {error}"
            result.maintenance_set += 1
            events.record(
                s,
                EVENT_KIND,
                f"power sync: {n} consecutive BMC failures; maintenance set "
                f"(fault '{POWER_FAULT}'): {error}",
                node_id=node.id,
                data=data,
            )
            log.warning(
                "power sync: node %s: %d consecutive BMC failures; maintenance set",
                node.name,
                n,
            )
        elif n <= limit or n % FAILURE_EVENT_EVERY == 0:
            events.record(
                s,
                EVENT_KIND,
                f"power sync: BMC read failed ({n} in a row): {error}",
                node_id=node.id,
                data=data,
            )
