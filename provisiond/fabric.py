"""Ethernet fabric reconciliation: desired port state from the database, applied to the switches
in batches, read back, recorded; drift reported (and, when configured, repaired).

Each managed switch port is a PortBinding row: ``desired`` (set through the API: a port's own
state, or a node's network binding), ``applied`` (what provisiond last made it, confirmed by a
read-back) and ``observed`` (what the switch last said). A binding is pending while
``applied_rev`` is behind ``desired_rev``.

One pass over one switch (``Reconciler.reconcile``), under a lease on the switch row so that
several daemons sharing a database never work on one switch at once:

1. the pending bindings become ONE ChangeSet: their port changes, plus the VLANs they need that
   the switch does not have (known VLANs are cached on the switch row; a VLAN not in the cache is
   looked up with one read before it is created);
2. the driver applies it in one session and saves once; a batch the switch refuses is split in
   halves until the refused ports are found, so one bad port never holds up the others;
3. the batch's ports are read back: a port that reads as desired is applied; a refused port, or
   one whose read-back differs, is moved to the switch's quarantine VLAN (never left in a
   tenant network it was supposed to leave) and waits for an operator (``switch apply --retry``
   or a new desired state);
4. a switch that cannot be reached (or drops the session) is retried with backoff; the ports
   stay pending, and the next session sends the same batch again (every batch is idempotent).

The drift check (``Reconciler.check_drift``, periodic and on demand) reads every applied port
and reports those that differ from what provisiond applied (changed by hand); with
``repair_drift`` it makes them pending again, so the next pass puts them back.

This module never talks to a switch except through a SwitchDriver, and never leaves a port's
database record claiming a state the switch did not confirm.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from drivers.switch.base import (
    ChangeSet,
    Dialect,
    Policy,
    PortChange,
    PortMode,
    PortState,
    SwitchDriver,
    SwitchError,
    SwitchTarget,
    VlanChange,
    VlanState,
    check,
    format_vlan_ranges,
)
from drivers.switch.registry import SwitchDrivers, dialect_for
from provisiond import events, leases
from provisiond.config import SwitchSettings
from provisiond.crypto import SecretBox
from provisiond.db import Database
from provisiond.errors import NotFound, ValidationError
from provisiond.loop import ReconcileLoop
from provisiond.models import Nic, Node, PortBinding, Switch, utcnow

log = logging.getLogger(__name__)

# binding statuses
PENDING, APPLIED, QUARANTINED, FAILED, DRIFTED = (
    "pending",
    "applied",
    "quarantined",
    "failed",
    "drifted",
)


# --------------------------------------------------------------------------- desired state


def access(vlan: int) -> dict[str, Any]:
    return {"mode": "access", "vlan": vlan}


def trunk(native_vlan: int | None, allowed_vlans: Iterable[int]) -> dict[str, Any]:
    allowed = set(allowed_vlans)
    if native_vlan is not None:
        allowed.add(native_vlan)
    return {"mode": "trunk", "native_vlan": native_vlan, "allowed_vlans": sorted(allowed)}


def port_change(port: str, desired: Mapping[str, Any]) -> PortChange:
    if desired.get("mode") == "trunk":
        return PortChange(
            port,
            PortMode.TRUNK,
            native_vlan=desired.get("native_vlan"),
            allowed_vlans=tuple(desired.get("allowed_vlans") or ()),
        )
    return PortChange(port, PortMode.ACCESS, vlan=int(desired["vlan"]))


def vlans_of(desired: Mapping[str, Any]) -> set[int]:
    if desired.get("mode") == "trunk":
        out = set(desired.get("allowed_vlans") or ())
        if desired.get("native_vlan") is not None:
            out.add(int(desired["native_vlan"]))
        return out
    return {int(desired["vlan"])}


def observed_dict(state: PortState | None) -> dict[str, Any]:
    """The switch's view of a port in the desired-state shape (``{"mode": None}``: routed or
    not a switchport; ``{"missing": True}``: the switch did not report the port)."""
    if state is None:
        return {"mode": None, "missing": True}
    if state.mode is PortMode.ACCESS:
        return {"mode": "access", "vlan": state.vlan}
    if state.mode is PortMode.TRUNK:
        return trunk(state.native_vlan, state.allowed_vlans)
    return {"mode": None}


def matches(desired: Mapping[str, Any], observed: Mapping[str, Any] | None) -> bool:
    """Whether the switch has the port as desired (the VLAN-carrying fields only)."""
    if observed is None or observed.get("mode") != desired.get("mode"):
        return False
    if desired.get("mode") == "access":
        return bool(observed.get("vlan") == desired.get("vlan"))
    if desired.get("native_vlan") != observed.get("native_vlan"):
        return False
    return vlans_of(desired) == vlans_of(observed)


def describe(state: Mapping[str, Any] | None) -> str:
    """``access 120``, ``trunk native 10 allowed 10,20-30``, ``routed``, ``missing``."""
    if state is None:
        return "unknown"
    if state.get("missing"):
        return "missing"
    if state.get("mode") == "access":
        return f"access {state.get('vlan')}"
    if state.get("mode") == "trunk":
        native = state.get("native_vlan")
        allowed = format_vlan_ranges(state.get("allowed_vlans") or ()) or "none"
        return f"trunk native {native if native is not None else 'none'} allowed {allowed}"
    return "routed"


# --------------------------------------------------------------------------- switch records


@dataclass(frozen=True)
class SwitchRecord:
    """A switch row, with its secret decrypted and its allow-lists parsed (never logged)."""

    id: int
    name: str
    driver: str
    target: SwitchTarget
    policy: Policy
    quarantine_vlan: int | None
    provisioning_vlan: int | None
    repair_drift: bool
    known_vlans: frozenset[int]
    # (driver, address, port) as enrolled: a pass records nothing onto a re-enrolled switch
    identity: tuple[str, str, int | None]

    @classmethod
    def of(cls, sw: Switch, box: SecretBox) -> SwitchRecord:
        return cls(
            id=sw.id,
            name=sw.name,
            driver=sw.driver,
            target=SwitchTarget(
                sw.name,
                sw.driver,
                sw.address,
                sw.port or default_port(sw.driver),
                sw.username,
                box.decrypt(sw.password_enc) if sw.password_enc else None,
            ),
            policy=Policy.parse(sw.allowed_vlans, sw.allowed_ports),
            quarantine_vlan=sw.quarantine_vlan,
            provisioning_vlan=sw.provisioning_vlan,
            repair_drift=sw.repair_drift,
            known_vlans=frozenset(int(v) for v in (sw.known_vlans or {}).get("ids", [])),
            identity=(sw.driver, sw.address, sw.port),
        )


def default_port(driver: str) -> int:
    """The port a switch driver talks to when the switch record gives none: SSH for the CLI
    dialects and napalm's nxos_ssh, HTTPS (eAPI) for napalm_eos, NETCONF for napalm_junos."""
    return {"napalm_eos": 443, "napalm_junos": 830}.get(driver, 22)


def _about_ports(exc: SwitchError, dialect: Dialect, sent: ChangeSet, saves: set[str]) -> bool:
    """Whether the switch refused ``sent`` because of one of its ports (then the batch is split
    to find which), rather than as a whole: no answer, a refused login, a lock, a save or
    commit that failed for its own reasons (storage, napalm's rollback copy). A command of the
    batch was refused: the port's. Junos checks the ports' configuration at ``commit``
    (``save_validates``): a commit refused for another reason than a lock is the ports' too."""
    if exc.transient or exc.command is None:
        return False
    if exc.command in saves:
        return dialect.save_validates
    return exc.command in set(dialect.render(sent))


def system_vlan(record: SwitchRecord | Switch, network: str) -> int:
    """The VLAN of a system network on a switch; ValueError when the switch has none."""
    vlan = record.provisioning_vlan if network == "provisioning" else record.quarantine_vlan
    if vlan is None:
        raise ValueError(f"switch {record.name} has no {network} VLAN")
    return vlan


# --------------------------------------------------------------------------- results


@dataclass
class PassResult:
    """What one pass did to one switch."""

    switch: str
    applied: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)  # port -> why
    failed: dict[str, str] = field(default_factory=dict)  # port -> why (state unknown)
    # port -> why: the move to quarantine is not confirmed yet; retried with the backoff
    owed: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)  # still to do (switch unreachable)
    vlans_created: list[int] = field(default_factory=list)
    sessions: int = 0
    error: str | None = None
    diff: str | None = None
    skipped: str | None = None  # why nothing was attempted (lease held elsewhere, nothing to do)

    def as_dict(self) -> dict[str, Any]:
        return {
            "switch": self.switch,
            "applied": self.applied,
            "quarantined": self.quarantined,
            "failed": self.failed,
            "owed": self.owed,
            "pending": self.pending,
            "vlans_created": self.vlans_created,
            "sessions": self.sessions,
            "error": self.error,
            "diff": self.diff,
            "skipped": self.skipped,
        }


@dataclass
class DriftResult:
    switch: str
    checked: int = 0
    drifted: dict[str, dict[str, str]] = field(default_factory=dict)  # port -> expected/observed
    repairing: bool = False
    cleared: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "switch": self.switch,
            "checked": self.checked,
            "drifted": self.drifted,
            "repairing": self.repairing,
            "cleared": self.cleared,
            "error": self.error,
        }


# --------------------------------------------------------------------------- the reconciler


@dataclass
class _Outcome:
    ok: list[PortChange] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    transient: str | None = None
    unreached: list[PortChange] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    sessions: int = 0
    vlans_sent: bool = False
    # ports read back in the apply's own session
    read: dict[str, dict[str, Any]] = field(default_factory=dict)


class Reconciler(ReconcileLoop):
    """Reconciles every switch in the database: a loop woken by changes and by a timer, one
    pass per switch at a time, ``settings.concurrency`` switches at once."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        settings: SwitchSettings,
        drivers: SwitchDrivers,
        owner: str,
    ) -> None:
        super().__init__(settings)
        self.db = db
        self.box = box
        self.settings = settings
        self.drivers = drivers
        self.owner = owner
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._switch_locks: dict[int, asyncio.Lock] = {}

    async def stop(self) -> None:
        await super().stop()
        await self.drivers.close()

    async def tick(self) -> None:
        """Start a pass for every switch with pending ports (not in backoff), and a drift check
        for every switch whose last one is older than ``drift_interval``."""
        now = utcnow()
        drift_before = now - dt.timedelta(seconds=self.settings.drift_interval)
        async with self.db.read() as s:
            pending = set(
                await s.scalars(
                    select(Switch.id)
                    .join(PortBinding, PortBinding.switch_id == Switch.id)
                    .where(
                        (
                            (PortBinding.applied_rev < PortBinding.desired_rev)
                            & PortBinding.status.in_((PENDING, DRIFTED))
                        )
                        | PortBinding.quarantine_owed.is_(True),
                        or_(Switch.next_attempt_at.is_(None), Switch.next_attempt_at <= now),
                    )
                    .distinct()
                )
            )
            due = set(
                await s.scalars(
                    select(Switch.id)
                    .join(PortBinding, PortBinding.switch_id == Switch.id)
                    .where(
                        PortBinding.status.in_((APPLIED, DRIFTED, QUARANTINED)),
                        or_(
                            Switch.last_drift_check_at.is_(None),
                            Switch.last_drift_check_at <= drift_before,
                        ),
                        or_(Switch.next_attempt_at.is_(None), Switch.next_attempt_at <= now),
                    )
                    .distinct()
                )
            )
        for switch_id in sorted(pending | due):
            if switch_id not in self._running:
                self.spawn(
                    switch_id,
                    self._background(switch_id, apply=switch_id in pending, drift=switch_id in due),
                    f"switch-{switch_id}",
                )

    async def _background(self, switch_id: int, *, apply: bool, drift: bool) -> None:
        async with self._slots:
            try:
                if apply:
                    await self.reconcile(switch_id)
                if drift:
                    await self.check_drift(switch_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("switch reconciler: switch %s: pass failed", switch_id)

    # ------------------------------------------------------------------ leases

    @contextlib.asynccontextmanager
    async def _held(self, switch_id: int) -> Any:
        """This daemon's lease on the switch for the duration of the block (None when another
        daemon holds it), and this process's lock (one pass per switch at a time here)."""
        lock = self._switch_locks.setdefault(switch_id, asyncio.Lock())
        async with leases.held(
            self.db, Switch, switch_id, self.owner, self.settings.lease_seconds, lock
        ) as got:
            record = None
            if got:
                async with self.db.read() as s:
                    sw = await s.get(Switch, switch_id)
                    record = SwitchRecord.of(sw, self.box) if sw is not None else None
            yield record

    # ------------------------------------------------------------------ one pass

    async def reconcile(self, switch: int | str, *, retry_failed: bool = False) -> PassResult:
        """One pass over ``switch`` (id or name): apply what is pending, read it back, record.
        ``retry_failed``: an operator asks to retry the ports left quarantined or failed, and
        to put drifted ones back, with their desired state."""
        switch_id, name = await self._resolve(switch)
        result = PassResult(name)
        async with self._held(switch_id) as record:
            if record is None:
                result.skipped = "another daemon is working on this switch"
                return result
            wanted = (
                (PortBinding.applied_rev < PortBinding.desired_rev)
                & PortBinding.status.in_((PENDING, DRIFTED))
            ) | PortBinding.quarantine_owed.is_(True)
            if retry_failed:
                wanted = wanted | PortBinding.status.in_((QUARANTINED, FAILED, DRIFTED))
            async with self.db.read() as s:
                bindings = list(
                    await s.scalars(
                        select(PortBinding)
                        .where(PortBinding.switch_id == switch_id, wanted)
                        .order_by(PortBinding.port)
                    )
                )
            if not bindings:
                result.skipped = "nothing pending"
                return result
            try:
                await self._pass(record, bindings, result, retry_failed=retry_failed)
            except leases.LeaseLost:
                result.skipped = "another daemon took the switch over during the pass"
        return result

    async def _pass(
        self,
        record: SwitchRecord,
        bindings: list[PortBinding],
        result: PassResult,
        *,
        retry_failed: bool,
    ) -> None:
        driver = self.drivers.get(record.driver)
        dialect = dialect_for(record.driver)
        revs = {b.id: b.desired_rev for b in bindings}
        ids = {b.port: b.id for b in bindings}
        desired = {b.port: dict(b.desired) for b in bindings}
        # refused: port -> why its desired state cannot be applied (it goes to quarantine)
        refused: dict[str, str] = {}
        changes: list[PortChange] = []
        for b in bindings:
            if b.quarantine_owed and not retry_failed:
                # an earlier pass could not confirm the move to quarantine: that comes first
                refused[b.port] = b.last_error or "quarantine owed"
                continue
            change = port_change(b.port, desired[b.port])
            try:  # the allow-lists may have changed since the desired state was accepted
                check(ChangeSet(ports=(change,)), record.policy, dialect)
            except ValidationError as exc:
                refused[b.port] = "; ".join(str(p) for p in exc.problems) or exc.message
                continue
            changes.append(change)
        needed: set[int] = set()
        for c in changes:
            needed |= vlans_of(desired[c.port])
        if record.quarantine_vlan is not None:
            needed.add(record.quarantine_vlan)  # a port may have to go there during the pass
        known = set(record.known_vlans)
        try:
            vlans, known = await self._missing_vlans(driver, record, needed, known, result)
        except SwitchError as exc:
            result.sessions += 1
            result.error = exc.message
            result.pending = sorted(desired)
            await self._record(record, revs, ids, desired, {}, known, result)
            return
        outcome = await self._apply(driver, record, changes, vlans)
        result.sessions += outcome.sessions
        if outcome.vlans_sent:
            # reported: the ones the cache did not know (the others were only made sure of)
            result.vlans_created = sorted({v.vlan for v in vlans} - known)
            known |= {v.vlan for v in vlans}
        refused.update(outcome.refused)
        if outcome.diffs:
            result.diff = "\n".join(outcome.diffs)
        # read back everything this pass touched (refused ports too: what are they now?), but
        # what the apply's own session read already
        observed = dict(outcome.read)
        touched = [p for p in [c.port for c in outcome.ok] + list(refused) if p not in observed]
        more, read_error = await self._read(driver, record, touched, result)
        observed.update(more)
        for c in outcome.ok:
            got = observed.get(c.port)
            if got is None:
                continue  # not read back: stays pending
            if matches(desired[c.port], got):
                result.applied.append(c.port)
            else:
                refused[c.port] = f"read back as {describe(got)}, not {describe(desired[c.port])}"
        # quarantine: a refused port must not stay where it was (it may be in a tenant network)
        gave_up: dict[str, str] = {}
        owed: dict[str, str] = {}
        if refused and record.quarantine_vlan is None:
            gave_up = dict.fromkeys(refused, "this switch has no quarantine VLAN")
        elif refused and outcome.transient is None and read_error is None:
            gave_up, owed = await self._quarantine(driver, record, list(refused), observed, result)
        elif refused:
            owed = dict.fromkeys(refused, outcome.transient or read_error or "no answer")
        for port, why in refused.items():
            if port in gave_up:
                result.failed[port] = f"{why}; not quarantined: {gave_up[port]}"
            elif port in owed:
                result.owed[port] = f"{why}; quarantine not confirmed yet: {owed[port]}"
            else:
                result.quarantined[port] = why
        result.pending = [c.port for c in outcome.unreached] + [
            c.port for c in outcome.ok if c.port not in observed
        ]
        if outcome.transient is not None or read_error is not None or owed:
            result.error = outcome.transient or read_error or next(iter(owed.values()))
        await self._record(record, revs, ids, desired, observed, known, result)

    async def _missing_vlans(
        self,
        driver: SwitchDriver,
        record: SwitchRecord,
        needed: set[int],
        known: set[int],
        result: PassResult,
    ) -> tuple[tuple[VlanChange, ...], set[int]]:
        """The VLAN creations to send with the batch. Where creating an existing VLAN is
        harmless (every dialect today), every VLAN the batch uses is sent: a VLAN deleted by
        hand since the cache was filled comes back instead of failing the ports (Junos refuses
        a member VLAN that is not defined). Elsewhere the switch is asked first (one read)."""
        if dialect_for(record.driver).vlan_create_idempotent:
            return tuple(VlanChange(v) for v in sorted(needed)), known
        if not needed - known:
            return (), known
        await self._renew(record)
        have: Mapping[int, VlanState] = await driver.read_vlans(record.target)
        result.sessions += 1
        known = set(have)
        return tuple(VlanChange(v) for v in sorted(needed - known)), known

    async def _apply(
        self,
        driver: SwitchDriver,
        record: SwitchRecord,
        changes: list[PortChange],
        vlans: tuple[VlanChange, ...],
    ) -> _Outcome:
        """Apply ``changes`` (with ``vlans`` created first) in one session; a batch the switch
        refuses because of one of its ports is split in halves until the refused ports are
        isolated. Anything else (no answer, a refused login or save, a lock) is about the
        switch: the batch stays pending."""
        out = _Outcome()
        dialect = dialect_for(record.driver)
        saves = set(dialect.save_commands())
        queue: list[list[PortChange]] = [changes] if changes or vlans else []
        while queue:
            batch = queue.pop(0)
            if out.transient is not None:
                out.unreached.extend(batch)
                continue
            send_vlans = vlans if not out.vlans_sent else ()
            sent = ChangeSet(vlans=send_vlans, ports=tuple(batch))
            await self._renew(record)
            try:
                res = await driver.apply(
                    record.target, sent, record.policy, read_back=[c.port for c in batch]
                )
                out.sessions += 1
                out.ok.extend(batch)
                if res.ports is not None:
                    out.read.update({p: observed_dict(res.ports.get(p)) for p in res.ports})
                out.vlans_sent = out.vlans_sent or bool(send_vlans)
                if res.diff:
                    out.diffs.append(res.diff)
            except SwitchError as exc:
                out.sessions += 1
                if not _about_ports(exc, dialect, sent, saves):
                    out.transient = exc.message
                    out.unreached.extend(batch)
                elif len(batch) <= 1:
                    if batch:
                        out.refused[batch[0].port] = exc.message
                    else:  # the VLAN creation alone was refused
                        out.transient = exc.message
                else:
                    half = len(batch) // 2
                    queue[:0] = [batch[:half], batch[half:]]
            except ValidationError as exc:  # cannot happen after the per-port checks
                for c in batch:
                    out.refused[c.port] = exc.message
        return out

    async def _read(
        self, driver: SwitchDriver, record: SwitchRecord, ports: list[str], result: PassResult
    ) -> tuple[dict[str, dict[str, Any]], str | None]:
        """The ports as the switch reports them. A read the switch refuses (a port it does not
        have) is split in halves, so one unknown port does not hide the others; such a port
        reads as missing. Returns (observed, error of a read that could not be done)."""
        observed: dict[str, dict[str, Any]] = {}
        queue = [ports] if ports else []
        while queue:
            batch = queue.pop(0)
            await self._renew(record)
            try:
                states = await driver.read_ports(record.target, batch)
                result.sessions += 1
            except SwitchError as exc:
                result.sessions += 1
                if exc.transient or exc.command is None:
                    return observed, exc.message
                if len(batch) == 1:
                    observed[batch[0]] = observed_dict(None)
                    continue
                half = len(batch) // 2
                queue[:0] = [batch[:half], batch[half:]]
                continue
            observed.update({p: observed_dict(states.get(p)) for p in batch})
        return observed, None

    async def _quarantine(
        self,
        driver: SwitchDriver,
        record: SwitchRecord,
        ports: list[str],
        observed: dict[str, dict[str, Any]],
        result: PassResult,
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Move ``ports`` to the quarantine VLAN (created if the switch lacks it) and read them
        back. Returns (ports the switch refused to quarantine, ports whose move could not be
        confirmed for now), each with why."""
        assert record.quarantine_vlan is not None
        q = record.quarantine_vlan
        moves = [PortChange(p, PortMode.ACCESS, vlan=q) for p in ports]
        ensure = (VlanChange(q),) if dialect_for(record.driver).vlan_create_idempotent else ()
        outcome = await self._apply(driver, record, moves, ensure)
        result.sessions += outcome.sessions
        gave_up = dict(outcome.refused)
        owed = {c.port: outcome.transient or "no answer" for c in outcome.unreached}
        moved = [c.port for c in outcome.ok]
        got = dict(outcome.read)
        more, error = await self._read(driver, record, [p for p in moved if p not in got], result)
        got.update(more)
        for port in moved:
            if port not in got:
                owed[port] = f"not read back: {error}"
                continue
            observed[port] = got[port]
            if not matches(access(q), got[port]):
                gave_up[port] = f"reads as {describe(got[port])} after the move"
        return gave_up, owed

    # ------------------------------------------------------------------ recording

    async def _record(
        self,
        record: SwitchRecord,
        revs: Mapping[int, int],
        ids: Mapping[str, int],
        desired: Mapping[str, dict[str, Any]],
        observed: Mapping[str, dict[str, Any]],
        known: set[int],
        result: PassResult,
    ) -> None:
        """Write one pass's outcome, in one transaction, only if this daemon still holds the
        switch and the switch is still the one the pass talked to (a re-enrolled switch with a
        new address or driver is worked on afresh)."""
        now = utcnow()
        async with self.db.write() as s:
            sw = await s.get(Switch, record.id, with_for_update=True)
            if sw is None or sw.lease_owner != self.owner:
                return  # deleted, or another daemon took it over
            if (sw.driver, sw.address, sw.port) != record.identity:
                result.error = result.error or "the switch was re-enrolled during the pass"
                return
            # the rows as they are now, by id: a port released and set again meanwhile is a
            # new row, and a desired state changed meanwhile has another revision
            rows = {
                b.id: b
                for b in await s.scalars(
                    select(PortBinding)
                    .where(PortBinding.id.in_(list(revs)))
                    .with_for_update()
                )
            } if revs else {}  # fmt: skip

            def current(port: str) -> PortBinding | None:
                b = rows.get(ids.get(port, -1))
                return b if b is not None and b.desired_rev == revs[b.id] else None

            for port, got in observed.items():
                b = rows.get(ids.get(port, -1))
                if b is not None:
                    b.observed, b.observed_at = got, now
            released: list[str] = []
            for port in result.applied:
                b = current(port)
                if b is None:
                    continue  # changed during the pass: pending for the next one
                b.applied, b.applied_rev, b.applied_at = desired[port], b.desired_rev, now
                b.status, b.last_error, b.quarantine_owed = APPLIED, None, False
                if b.releasing:
                    released.append(port)
                    await s.delete(b)
            for port, why in result.quarantined.items():
                b = current(port)
                if b is not None:
                    b.status, b.last_error, b.quarantine_owed = QUARANTINED, why, False
            for port, why in result.failed.items():
                b = current(port)
                if b is not None:
                    b.status, b.last_error, b.quarantine_owed = FAILED, why, False
            for port, why in result.owed.items():
                b = current(port)
                if b is not None:
                    b.status, b.last_error, b.quarantine_owed = FAILED, why, True
            if result.error is not None:
                self._failed(s, sw, record, result.error, result.pending, now)
            else:
                self._recovered(s, sw, record)
            sw.known_vlans = {"ids": sorted(known)}
            if result.applied:
                sw.last_applied_at = now
            self._events(s, record, desired, result, released)

    def _failed(
        self,
        s: AsyncSession,
        sw: Switch,
        record: SwitchRecord,
        error: str,
        pending: list[str],
        now: dt.datetime,
    ) -> None:
        sw.failures += 1
        # capped exponent: a switch dead for days must not overflow the float
        delay = min(
            self.settings.backoff_seconds * 2 ** min(sw.failures - 1, 30),
            self.settings.backoff_max_seconds,
        )
        sw.next_attempt_at = now + dt.timedelta(seconds=delay)
        first = sw.last_error is None
        sw.last_error = error
        if first:
            events.record(
                s,
                "switch.unreachable",
                f"switch {record.name}: {error}; {len(pending)} port(s) stay pending, retried "
                "with backoff",
                switch_id=record.id,
                data={"switch": record.name, "pending": pending},
            )

    def _recovered(self, s: AsyncSession, sw: Switch, record: SwitchRecord) -> None:
        if sw.last_error is not None:
            events.record(
                s,
                "switch.recovered",
                f"switch {record.name} answers again",
                switch_id=record.id,
                data={"switch": record.name},
            )
        sw.failures, sw.next_attempt_at, sw.last_error = 0, None, None

    def _events(
        self,
        s: AsyncSession,
        record: SwitchRecord,
        desired: Mapping[str, dict[str, Any]],
        result: PassResult,
        released: list[str],
    ) -> None:
        if result.applied or result.vlans_created:
            created = format_vlan_ranges(result.vlans_created)
            events.record(
                s,
                "switch.apply",
                f"switch {record.name}: {len(result.applied)} port(s) applied"
                + (f", VLAN(s) {created} created" if created else "")
                + f" in {result.sessions} session(s)",
                switch_id=record.id,
                data={
                    "switch": record.name,
                    "ports": {p: desired[p] for p in result.applied},
                    "vlans_created": result.vlans_created,
                    "diff": result.diff,
                },
            )
        if released:
            events.record(
                s,
                "switch.port",
                f"switch {record.name}: {', '.join(released)} released (in quarantine VLAN "
                f"{record.quarantine_vlan}, no longer managed)",
                switch_id=record.id,
                data={"switch": record.name, "released": released},
            )
        if result.quarantined:
            events.record(
                s,
                "switch.quarantine",
                f"switch {record.name}: {len(result.quarantined)} port(s) moved to "
                f"quarantine VLAN {record.quarantine_vlan}: "
                + "; ".join(f"{p}: {w}" for p, w in sorted(result.quarantined.items())),
                switch_id=record.id,
                data={"switch": record.name, "ports": result.quarantined},
            )
        if result.failed or result.owed:
            bad = {**result.owed, **result.failed}
            events.record(
                s,
                "switch.port_failed",
                f"switch {record.name}: {len(bad)} port(s) in an unknown state: "
                + "; ".join(f"{p}: {w}" for p, w in sorted(bad.items())),
                switch_id=record.id,
                data={"switch": record.name, "ports": bad, "retrying": sorted(result.owed)},
            )

    # ------------------------------------------------------------------ leases (renewal)

    async def _renew(self, record: SwitchRecord) -> None:
        """Extend this daemon's lease before each session of a pass (a long pass outlives one
        lease); raise LeaseLost when another daemon has taken the switch meanwhile."""
        await leases.renew(self.db, Switch, record.id, self.owner, self.settings.lease_seconds)

    # ------------------------------------------------------------------ drift

    async def check_drift(self, switch: int | str) -> DriftResult:
        """Read every applied, drifted or quarantined port of ``switch`` and compare it with
        what it should be (what was applied; the quarantine VLAN for a quarantined port);
        report the differences, and with repair_drift make them pending again (a quarantined
        port: owed to quarantine again)."""
        switch_id, name = await self._resolve(switch)
        result = DriftResult(name)
        async with self._held(switch_id) as record:
            if record is None:
                result.error = "another daemon is working on this switch"
                return result
            async with self.db.read() as s:
                bindings = list(
                    await s.scalars(
                        select(PortBinding)
                        .where(
                            PortBinding.switch_id == switch_id,
                            PortBinding.status.in_((APPLIED, DRIFTED, QUARANTINED)),
                            PortBinding.quarantine_owed.is_(False),
                        )
                        .order_by(PortBinding.port)
                    )
                )
            if not bindings:
                await self._drift_checked(record, None)
                return result
            driver = self.drivers.get(record.driver)
            probe = PassResult(name)
            try:
                observed, error = await self._read(
                    driver, record, [b.port for b in bindings], probe
                )
            except leases.LeaseLost:
                result.error = "another daemon took the switch over during the check"
                return result
            if error is not None:
                result.error = error
                await self._drift_checked(record, error)
                return result
            result.checked = len(bindings)
            result.repairing = record.repair_drift
            await self._record_drift(record, bindings, observed, result)
        if result.drifted and record.repair_drift:
            self.wake()
        return result

    async def read_all(
        self, switch: int | str
    ) -> tuple[list[PortBinding], dict[str, dict[str, Any]], str | None]:
        """Every managed port of ``switch`` as the switch reports it now, for the isolation
        audit: (bindings, observed by port, error). Changes nothing."""
        switch_id, _ = await self._resolve(switch)
        async with self._held(switch_id) as record:
            if record is None:
                return [], {}, "another daemon is working on this switch"
            async with self.db.read() as s:
                bindings = list(
                    await s.scalars(
                        select(PortBinding)
                        .where(PortBinding.switch_id == switch_id)
                        .order_by(PortBinding.port)
                    )
                )
            if not bindings:
                return [], {}, None
            driver = self.drivers.get(record.driver)
            try:
                observed, error = await self._read(
                    driver, record, [b.port for b in bindings], PassResult(record.name)
                )
            except leases.LeaseLost:
                return bindings, {}, "another daemon took the switch over during the read"
            return bindings, observed, error

    async def _record_drift(
        self,
        record: SwitchRecord,
        bindings: list[PortBinding],
        observed: Mapping[str, dict[str, Any]],
        result: DriftResult,
    ) -> None:
        now = utcnow()
        async with self.db.write() as s:
            sw = await s.get(Switch, record.id, with_for_update=True)
            if sw is None or sw.lease_owner != self.owner:
                return
            for b in bindings:
                row = await s.get(PortBinding, b.id, with_for_update=True)
                if row is None or row.desired_rev != b.desired_rev or row.status != b.status:
                    continue  # changed since it was read: not this check's business
                got = observed.get(b.port, observed_dict(None))
                row.observed, row.observed_at = got, now
                quarantined = row.status == QUARANTINED
                if quarantined and record.quarantine_vlan is not None:
                    expected = access(record.quarantine_vlan)
                else:
                    expected = row.applied or row.desired
                if matches(expected, got):
                    if row.status == DRIFTED:
                        row.status, row.last_error = APPLIED, None
                        result.cleared.append(b.port)
                    continue
                result.drifted[b.port] = {"expected": describe(expected), "observed": describe(got)}
                if quarantined:
                    # a quarantined port must stay there: moved back unless told otherwise
                    row.last_error = f"left quarantine: {describe(got)}"
                    row.quarantine_owed = record.repair_drift
                    continue
                row.last_error = f"drift: {describe(got)} instead of {describe(expected)}"
                if record.repair_drift:
                    row.status = PENDING
                    row.desired_rev = row.desired_rev + 1  # pending again: the next pass repairs
                else:
                    row.status = DRIFTED
            sw.last_drift_check_at = now
            self._recovered(s, sw, record)
            if result.drifted:
                events.record(
                    s,
                    "switch.drift",
                    f"switch {record.name}: {len(result.drifted)} port(s) changed outside "
                    "provisiond: "
                    + "; ".join(
                        f"{p} is {d['observed']}, expected {d['expected']}"
                        for p, d in sorted(result.drifted.items())
                    )
                    + ("; repairing" if record.repair_drift else "; reported only"),
                    switch_id=record.id,
                    data={"switch": record.name, "ports": result.drifted,
                          "repairing": record.repair_drift},
                )  # fmt: skip
            if result.cleared:
                events.record(
                    s,
                    "switch.drift_cleared",
                    f"switch {record.name}: {', '.join(result.cleared)} read as applied again",
                    switch_id=record.id,
                    data={"switch": record.name, "ports": result.cleared},
                )

    async def cabling(self, switch: str) -> dict[str, Any]:
        """The switch's LLDP neighbours checked against the inventory's cabling (NIC switch and
        port, from rack files or the inspection agent). Per neighbour: ``match`` (the NIC is
        recorded on this port), ``moved`` (recorded on another port: recabled, or the record
        is wrong), ``unrecorded`` (the NIC has no switch port yet), ``unknown`` (no NIC with
        that MAC: another switch, an unenrolled host); per NIC recorded on this switch whose
        port hears nobody: ``silent`` (host off, no lldpd, or not cabled there). Reads only."""
        switch_id, name = await self._resolve(switch)
        async with self.db.read() as s:
            sw = await s.get(Switch, switch_id)
            if sw is None:
                raise NotFound(f"no switch {switch!r}", switch=switch)
            record = SwitchRecord.of(sw, self.box)
        neighbors = await self.drivers.get(record.driver).lldp_neighbors(record.target)
        macs = {m for n in neighbors for m in (n.port_id, n.chassis_id) if m and _is_mac(m)}
        async with self.db.read() as s:
            by_mac: dict[str, tuple[Nic, str]] = {}
            for chunk in _chunked(sorted(macs)):
                rows = await s.execute(
                    select(Nic, Node.name)
                    .join(Node, Node.id == Nic.node_id)
                    .where(Nic.mac.in_(chunk))
                )
                by_mac.update({nic.mac: (nic, node) for nic, node in rows if nic.mac})
            here = list(
                await s.execute(
                    select(Nic, Node.name)
                    .join(Node, Node.id == Nic.node_id)
                    .where(Nic.switch_name == name)
                    .order_by(Nic.switch_port)
                )
            )
        rows_out: list[dict[str, Any]] = []
        heard: set[str] = set()
        for n in sorted(neighbors, key=lambda x: (x.local_port, x.chassis_id or "")):
            heard.add(n.local_port)
            found = by_mac.get(n.port_id or "") or by_mac.get(n.chassis_id or "")
            row: dict[str, Any] = {
                "port": n.local_port,
                "neighbor": {
                    "chassis_id": n.chassis_id,
                    "port_id": n.port_id,
                    "system_name": n.system_name,
                    "port_description": n.port_description,
                },
                "node": None,
                "mac": None,
                "recorded": None,
            }
            if found is None:
                row["status"] = "unknown"
            else:
                nic, node = found
                row["node"], row["mac"] = node, nic.mac
                if nic.switch_name is None or nic.switch_port is None:
                    row["status"] = "unrecorded"
                else:
                    row["recorded"] = f"{nic.switch_name} {nic.switch_port}"
                    same = nic.switch_name == name and nic.switch_port == n.local_port
                    row["status"] = "match" if same else "moved"
            rows_out.append(row)
        for nic, node in here:
            if nic.switch_port not in heard:
                rows_out.append({
                    "port": nic.switch_port, "neighbor": None, "node": node, "mac": nic.mac,
                    "recorded": f"{name} {nic.switch_port}", "status": "silent",
                })  # fmt: skip
        rows_out.sort(key=lambda r: _natural(str(r["port"])))
        counts: dict[str, int] = {}
        for r in rows_out:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return {"switch": name, "cabling": rows_out, "counts": counts}

    async def _drift_checked(self, record: SwitchRecord, error: str | None) -> None:
        """A drift check ran (or could not: then the switch backs off as after a pass)."""
        now = utcnow()
        async with self.db.write() as s:
            sw = await s.get(Switch, record.id, with_for_update=True)
            if sw is None or sw.lease_owner != self.owner:
                return
            sw.last_drift_check_at = now
            if error is not None:
                self._failed(s, sw, record, f"drift check: {error}", [], now)

    async def _resolve(self, switch: int | str) -> tuple[int, str]:
        async with self.db.read() as s:
            stmt = select(Switch.id, Switch.name)
            stmt = stmt.where(
                Switch.id == switch if isinstance(switch, int) else Switch.name == switch
            )
            row = (await s.execute(stmt)).first()
        if row is None:
            raise NotFound(f"no switch {switch!r}", switch=str(switch))
        return int(row[0]), str(row[1])


def _natural(name: str) -> tuple[Any, ...]:
    """swp2 before swp12, Ethernet1/2 before Ethernet1/10."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _is_mac(text: str) -> bool:
    return len(text) == 17 and text.count(":") == 5


def _chunked(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --------------------------------------------------------------------------- plans


async def plan(db: Database, box: SecretBox, name: str) -> dict[str, Any]:
    """What the next pass would send to ``name``: the pending ports, the VLANs they need that
    the switch is not known to have, and the commands the dialect renders (without reading the
    switch: dialects that render from the ports' current state may send more)."""
    async with db.read() as s:
        sw = (await s.scalars(select(Switch).where(Switch.name == name))).first()
        if sw is None:
            raise NotFound(f"no switch {name!r}", switch=name)
        record = SwitchRecord.of(sw, box)
        rows = list(
            await s.scalars(
                select(PortBinding)
                .where(
                    PortBinding.switch_id == sw.id,
                    PortBinding.applied_rev < PortBinding.desired_rev,
                    PortBinding.status.in_((PENDING, DRIFTED)),
                )
                .order_by(PortBinding.port)
            )
        )
    dialect = dialect_for(record.driver)
    changes = [port_change(b.port, b.desired) for b in rows]
    needed: set[int] = set()
    for b in rows:
        needed |= vlans_of(b.desired)
    missing = sorted(needed - record.known_vlans)
    # as the pass sends it: every VLAN the ports use where creating is harmless
    sent = sorted(needed) if dialect.vlan_create_idempotent else missing
    batch = ChangeSet(vlans=tuple(VlanChange(v) for v in sent), ports=tuple(changes))
    problems: list[str] = []
    try:
        check(batch, record.policy, dialect)
    except ValidationError as exc:
        problems = [str(p) for p in exc.problems]
    return {
        "switch": name,
        "ports": [
            {
                "port": b.port,
                "from": describe(b.applied or b.observed),
                "to": describe(b.desired),
                "status": b.status,
            }
            for b in rows
        ],
        "vlans_to_create": missing,
        "commands": dialect.render(batch) + (dialect.save_commands() if batch else []),
        "problems": problems,
    }


def binding_dict(b: PortBinding, switch_name: str, node_name: str | None = None) -> dict[str, Any]:
    return {
        "switch": switch_name,
        "port": b.port,
        "source": b.source,
        "node": node_name,
        "network": b.network,
        "desired": b.desired,
        "applied": b.applied,
        "observed": b.observed,
        "observed_at": b.observed_at,
        "applied_at": b.applied_at,
        "status": b.status,
        "in_sync": b.applied_rev >= b.desired_rev and b.status == APPLIED,
        "last_error": b.last_error,
    }


async def binding_counts(db: Database) -> dict[int, dict[str, int]]:
    """switch id -> {status: count} (pending counted from the revisions)."""
    async with db.read() as s:
        rows = await s.execute(
            select(PortBinding.switch_id, PortBinding.status, func.count()).group_by(
                PortBinding.switch_id, PortBinding.status
            )
        )
        out: dict[int, dict[str, int]] = {}
        for sid, status, n in rows:
            out.setdefault(sid, {})[status] = int(n)
    return out


__all__ = [
    "APPLIED",
    "DRIFTED",
    "FAILED",
    "PENDING",
    "QUARANTINED",
    "DriftResult",
    "PassResult",
    "Reconciler",
    "SwitchRecord",
    "access",
    "binding_counts",
    "binding_dict",
    "describe",
    "matches",
    "observed_dict",
    "plan",
    "port_change",
    "system_vlan",
    "trunk",
    "vlans_of",
]
