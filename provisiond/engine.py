"""Durable operations: every mutating action is an Operation row before anything happens.

The engine owns: admission (one active operation per node, enforced by a partial unique index),
claiming work with a lease (compare-and-set, so several daemons can share one database), lease
renewal, per-state deadlines, bounded retries with backoff for transient errors, parking in wait
states, and recovery after a crash (an expired lease is simply claimable again; a lease held by a
dead process on this host is released at start). It must never run a step without holding the
operation's lease, and never write after losing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from drivers.bmc.base import BmcTarget
from provisiond import events
from provisiond.bmc import BmcGateway
from provisiond.config import EngineSettings
from provisiond.crypto import SecretBox
from provisiond.db import Database
from provisiond.errors import (
    Conflict,
    DriverError,
    FieldProblem,
    NodeBusy,
    ProvisionError,
    ValidationError,
)
from provisiond.inventory import operation_dict, resolve_node
from provisiond.lifecycle import (
    FLAG_ACTIONS,
    TRANSITIONAL,
    Action,
    Internal,
    NodeFlags,
    State,
    check_action,
    next_state,
)
from provisiond.models import ACTIVE_OPERATION_STATES, Image, Node, Operation, new_id, utcnow
from provisiond.workflows.steps import WORKFLOWS, NodeUpdate, Step, StepContext

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another daemon owns this operation now; stop without writing."""


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return "?"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return "?"


@dataclass(frozen=True)
class Owner:
    """Who holds a lease: host, boot, PID namespace and PID, plus a nonce. A lease may be taken
    over before it expires only when this proves the holder dead: same host, boot and PID
    namespace, with the PID gone."""

    host: str
    boot: str
    pidns: str
    pid: int
    nonce: str

    def __str__(self) -> str:
        return f"{self.host}|{self.boot}|{self.pidns}|{self.pid}|{self.nonce}"

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        parts = text.split("|")
        if len(parts) != 5 or not parts[3].isdigit():
            return None
        return cls(parts[0], parts[1], parts[2], int(parts[3]), parts[4])

    @classmethod
    def me(cls) -> Owner:
        return cls(
            socket.gethostname(),
            _read("/proc/sys/kernel/random/boot_id")[:8],
            _pid_namespace(),
            os.getpid(),
            secrets.token_hex(4),
        )

    def proves_dead(self, other: Owner) -> bool:
        """Is ``other`` (a lease holder) certainly gone, seen from this process? Only when it
        ran in this very boot and PID namespace and its PID is gone. Another boot id is no
        proof: two machines may share a host name (containers with a fixed hostname), so after
        a reboot the lease is left to expire."""
        if "?" in (self.boot, other.boot, self.pidns, other.pidns):
            return False
        if (other.host, other.boot, other.pidns) != (self.host, self.boot, self.pidns):
            return False
        return other.pid != self.pid and not _pid_alive(other.pid)


def make_owner() -> str:
    return str(Owner.me())


def _pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie (a killed daemon not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            # state is the field after the parenthesised command name
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


@dataclass(frozen=True)
class _Snapshot:
    op_kind: str
    step_index: int
    attempts: int
    max_attempts: int
    deadline: dt.datetime | None
    params: Mapping[str, Any]
    node_id: str
    node_name: str
    node_state: str
    ctx_target: BmcTarget
    boot_mode: str
    # a call-back that arrived before the operation reached its wait step (see resume)
    early_callback: bool = False


class Engine:
    def __init__(
        self,
        db: Database,
        settings: EngineSettings,
        box: SecretBox,
        bmc: BmcGateway,
        *,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.cfg = settings
        self.box = box
        self.bmc = bmc
        self.owner = owner or make_owner()
        self._wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._loop_exited = asyncio.Event()
        # lease expiry last written for each operation this daemon runs
        self._held_until: dict[str, dt.datetime] = {}
        self.running = False

    def _lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.cfg.lease_seconds)

    def _deadline_for(self, state: str, now: dt.datetime) -> dt.datetime | None:
        seconds = self.cfg.deadlines.get(state)
        return now + dt.timedelta(seconds=seconds) if seconds else None

    # ---------------------------------------------------------------- admission

    async def submit(
        self,
        node_ref: str,
        action: str,
        *,
        params: Mapping[str, Any] | None = None,
        actor: str | None = None,
        tenant_id: int | None = None,
    ) -> dict[str, Any]:
        """Validate and record an action; returns the operation. Raises NotFound, Conflict."""
        act = Action(action)
        try:
            async with self.db.write() as s:
                result = await self._admit(s, node_ref, act, dict(params or {}), actor, tenant_id)
        except IntegrityError as exc:
            raise NodeBusy(
                f"node {node_ref} is busy with another operation; retry when it ends",
                node=node_ref,
            ) from exc
        self._wake.set()
        return result

    async def submit_many(
        self,
        node_refs: Sequence[str],
        action: str,
        *,
        params: Mapping[str, Any] | None = None,
        actor: str | None = None,
        tenant_id: int | None = None,
    ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """The same action for many nodes in one transaction (an allocation of 50 nodes is one
        commit, not 50): (operations by node, refusals by node). A node refused (busy, not
        allowed in its state, unknown) does not stop the others."""
        act = Action(action)
        ops: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        try:
            async with self.db.write() as s:
                for ref in node_refs:
                    try:
                        ops[ref] = await self._admit(
                            s, ref, act, dict(params or {}), actor, tenant_id
                        )
                    except ProvisionError as exc:  # raised before anything of it was written
                        errors[ref] = exc.message
        except IntegrityError:
            # another admission raced one of these nodes: admit them one by one
            ops, errors = {}, {}
            for ref in node_refs:
                try:
                    ops[ref] = await self.submit(
                        ref, action, params=params, actor=actor, tenant_id=tenant_id
                    )
                except ProvisionError as exc:
                    errors[ref] = exc.message
        self._wake.set()
        return ops, errors

    async def _admit(
        self,
        s: AsyncSession,
        node_ref: str,
        act: Action,
        params: dict[str, Any],
        actor: str | None,
        tenant_id: int | None,
    ) -> dict[str, Any]:
        """One node's admission inside the caller's transaction: every check comes before the
        first write, so a refusal leaves the transaction as it was."""
        node = await resolve_node(s, node_ref, tenant_id=tenant_id, for_update=True)
        busy = (
            await s.scalars(
                select(Operation).where(
                    Operation.node_id == node.id,
                    Operation.state.in_(ACTIVE_OPERATION_STATES),
                )
            )
        ).first()
        if busy is not None and act not in FLAG_ACTIONS:
            raise NodeBusy(
                f"node {node.name} is busy with operation {busy.id} ({busy.kind}, "
                f"{busy.state}); retry when it ends",
                node=node.name,
                operation=busy.id,
            )
        flags = NodeFlags(node.maintenance, node.protected, node.retired)
        new_state = check_action(node.state, act, flags)
        if act in (Action.DEPLOY, Action.REBUILD):
            await self._check_image(s, params.get("image"), act)
        now = utcnow()
        op = Operation(
            id=new_id(),
            kind=act.value,
            node_id=node.id,
            params=params,
            requested_by=actor,
            max_attempts=self.cfg.max_attempts,
            step="0",
            created_at=now,
        )
        if act in FLAG_ACTIONS:
            # Flags are bookkeeping, not work: done at once, and allowed while another
            # operation runs (maintenance is what an operator sets when one hangs).
            self._apply_flag(node, act, params)
            op.state = "succeeded"
            op.result = {"node": node.name, "maintenance": node.maintenance}
            op.started_at = op.finished_at = now
        else:
            if new_state is not None:
                node.target_state = self._target_of(act)
                self._move(s, node, act.value, op_id=op.id, actor=actor, now=now)
                op.deadline = self._deadline_for(node.state, now)
            else:
                op.deadline = self._deadline_for("power", now)
        s.add(op)
        await s.flush()
        events.record(
            s,
            "operation",
            f"{act.value} requested ({op.state})",
            node_id=node.id,
            operation_id=op.id,
            actor=actor,
            data={"params": params} if params else None,
        )
        return operation_dict(op, node.name)

    @staticmethod
    async def _check_image(s: AsyncSession, name: Any, act: Action) -> None:
        """Deploy and rebuild boot an image: it must be named and registered."""
        if not name:
            raise ValidationError(
                f"{act.value} needs an image",
                [FieldProblem("image", "required: the image to boot (GET /v1/images lists them)")],
            )
        if await s.scalar(select(Image.id).where(Image.name == name)) is None:
            raise ValidationError(
                f"no image {name!r}",
                [FieldProblem("image", "no such image (GET /v1/images lists them)", value=name)],
            )

    @staticmethod
    def _target_of(act: Action) -> str | None:
        return {
            Action.MANAGE: "manageable",
            Action.INSPECT: "manageable",
            Action.PROVIDE: "available",
            Action.DEPLOY: "active",
            Action.REBUILD: "active",
            Action.UNDEPLOY: "available",
        }.get(act)

    @staticmethod
    def _apply_flag(node: Node, act: Action, params: Mapping[str, Any]) -> None:
        if act is Action.MAINTENANCE_ON:
            node.maintenance = True
            node.maintenance_reason = str(params.get("reason") or "set by operator")
        else:
            node.maintenance = False
            node.maintenance_reason = None
            node.fault = None

    def _move(
        self,
        s: AsyncSession,
        node: Node,
        event: str,
        *,
        op_id: str | None,
        actor: str | None,
        now: dt.datetime,
    ) -> None:
        old = node.state
        node.state = next_state(old, event).value
        node.state_entered_at = now
        if node.state not in TRANSITIONAL:
            node.target_state = None
        events.record(
            s,
            "state",
            f"{old} -> {node.state} ({event})",
            node_id=node.id,
            operation_id=op_id,
            actor=actor,
            data={"from": old, "to": node.state, "event": event},
        )

    async def resume(self, node_ref: str, *, data: Mapping[str, Any] | None = None) -> str:
        """A node called back: move its parked operation past the wait. Returns the op id."""
        async with self.db.write() as s:
            node = await resolve_node(s, node_ref, for_update=True)
            op_id = await self.resume_in(s, node, data=data)
        self.wake()
        return op_id

    def wake(self) -> None:
        """Look for due work now (after a caller committed a resume_in)."""
        self._wake.set()

    async def resume_in(
        self,
        s: AsyncSession,
        node: Node,
        *,
        operation_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> str:
        """resume() inside the caller's transaction (the node row already locked), so what the
        call-back brought and the resume commit together. ``operation_id``: resume only that
        operation (a stale call-back must not complete a newer one). Call wake() after commit."""
        op = (
            await s.scalars(
                select(Operation)
                .where(
                    Operation.node_id == node.id,
                    Operation.state.in_(ACTIVE_OPERATION_STATES),
                )
                .with_for_update()
            )
        ).first()
        if op is not None and operation_id is not None and op.id != operation_id:
            raise Conflict(
                f"node {node.name}: the call-back is for operation {operation_id}, which is over "
                f"(now running {op.id}, {op.kind})",
                state=node.state,
            )
        steps = WORKFLOWS.get(op.kind, ()) if op else ()
        idx = int(op.step or 0) if op else -1
        if op is not None and 0 <= idx < len(steps) and steps[idx].kind != "wait":
            # A fast node (or the lab) can call back while the boot step is still waiting for
            # the power state to show: remember it for the wait step that comes next.
            ahead = next((i for i in range(idx, len(steps)) if steps[i].kind == "wait"), None)
            if ahead is not None and op.result.get("early_callback") != ahead:
                op.result = {
                    **op.result,
                    "early_callback": ahead,
                    **({"callback": dict(data)} if data else {}),
                }
                events.record(
                    s,
                    "callback",
                    "node called back before the wait began; it will not wait",
                    node_id=node.id,
                    operation_id=op.id,
                )
                return op.id
        if op is None or idx >= len(steps) or steps[idx].kind != "wait":
            raise Conflict(
                f"node {node.name} is not waiting for a call-back (state {node.state})",
                state=node.state,
            )
        now = utcnow()
        op.step = str(idx + 1)
        op.not_before = now
        op.lease_owner = None
        op.lease_expires_at = None
        # what follows the call-back (e.g. powering off after inspection) gets its own time, not
        # what is left of the wait state's deadline
        follow_up = self._deadline_for("power", now)
        if follow_up is not None and (op.deadline is None or op.deadline < follow_up):
            op.deadline = follow_up
        if data:
            op.result = {**op.result, "callback": dict(data)}
        events.record(s, "callback", "node called back", node_id=node.id, operation_id=op.id)
        return op.id

    # ---------------------------------------------------------------- the loop

    async def run(self) -> None:
        """Claim and run due operations until stop(); meant to be one background task."""
        self.running = True
        recovered = False
        try:
            while not self._stopping:
                free = self.cfg.concurrency - len(self._tasks)
                try:
                    if not recovered:
                        await self.release_dead_local_leases()
                        recovered = True
                    claimed = await self._claim(free) if free > 0 else []
                except Exception:  # the database may be briefly unavailable; keep going
                    log.exception("engine: database unavailable; retrying")
                    claimed = []
                if self._stopping:
                    await self._release(claimed)
                    break
                for op_id in claimed:
                    task = asyncio.create_task(self._execute(op_id), name=f"op-{op_id}")
                    self._tasks[op_id] = task
                    task.add_done_callback(self._forget)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.cfg.poll_seconds):
                        await self._wake.wait()
        finally:
            self.running = False
            self._loop_exited.set()

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task.get_name().removeprefix("op-"), None)

    async def stop(self) -> None:
        """Stop claiming, cancel running steps and hand their leases back at once."""
        self._stopping = True
        self._wake.set()
        if self.running:
            # let a claim in flight finish (and be handed back) before cancelling steps
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self._loop_exited.wait()
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            async with self.db.write() as s:
                await s.execute(
                    update(Operation)
                    .where(
                        Operation.lease_owner == self.owner,
                        Operation.state.in_(ACTIVE_OPERATION_STATES),
                    )
                    .values(lease_owner=None, lease_expires_at=None)
                )

    async def _release(self, op_ids: list[str]) -> None:
        if not op_ids:
            return
        with contextlib.suppress(Exception):
            async with self.db.write() as s:
                await s.execute(
                    update(Operation)
                    .where(Operation.id.in_(op_ids), Operation.lease_owner == self.owner)
                    .values(lease_owner=None, lease_expires_at=None)
                )

    async def release_dead_local_leases(self) -> int:
        """Leases held by a daemon proven dead (same host; rebooted since, or same boot and
        PID namespace with its PID gone) are released now rather than after expiry."""
        me = Owner.parse(self.owner) or Owner.me()
        released = 0
        async with self.db.write() as s:
            rows = (
                await s.scalars(
                    select(Operation).where(
                        Operation.state.in_(ACTIVE_OPERATION_STATES),
                        Operation.lease_owner.is_not(None),
                        Operation.lease_owner != self.owner,
                    )
                )
            ).all()
            for op in rows:
                assert op.lease_owner is not None
                holder = Owner.parse(op.lease_owner)
                if holder is None or not me.proves_dead(holder):
                    continue
                events.record(
                    s,
                    "recovery",
                    f"daemon pid {holder.pid} that ran this operation is gone; resuming at step "
                    f"{op.step}",
                    node_id=op.node_id,
                    operation_id=op.id,
                )
                op.lease_owner = None
                op.lease_expires_at = None
                released += 1
        if released:
            log.warning("released %d operation lease(s) of dead local daemons", released)
        return released

    async def _claim(self, limit: int) -> list[str]:
        now = utcnow()
        due = (
            Operation.state.in_(ACTIVE_OPERATION_STATES),
            or_(Operation.lease_expires_at.is_(None), Operation.lease_expires_at < now),
            or_(Operation.not_before.is_(None), Operation.not_before <= now),
        )
        claimed: list[str] = []
        expires = now + self._lease()
        async with self.db.write() as s:
            candidates = (
                await s.scalars(
                    select(Operation.id)
                    .where(*due, Operation.id.not_in(list(self._tasks)))
                    .order_by(Operation.created_at)
                    .limit(limit)
                )
            ).all()
            for op_id in candidates:
                res = await s.execute(
                    update(Operation)
                    .where(Operation.id == op_id, *due)
                    .values(
                        lease_owner=self.owner,
                        lease_expires_at=expires,
                        state="running",
                        started_at=func.coalesce(Operation.started_at, now),
                    )
                    .execution_options(synchronize_session=False)
                )
                if res.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(op_id)
                    self._held_until[op_id] = expires
        return claimed

    async def _heartbeat(self, op_id: str, runner: asyncio.Task[None]) -> None:
        """Renew the lease every third of its length. Whatever the database does (fails, hangs),
        the step is cancelled a margin before the last expiry written: after that another daemon
        may own the operation, and two daemons must never drive one BMC."""
        interval = self.cfg.lease_seconds / 3
        margin = dt.timedelta(seconds=min(2.0, interval / 2))
        while True:
            held_until = self._held_until.get(op_id) or utcnow()
            stop_at = held_until - margin
            until_stop = (stop_at - utcnow()).total_seconds()
            if until_stop <= 0:
                log.error("operation %s: lease about to expire unrenewed; abandoning", op_id)
                runner.cancel()
                return
            await asyncio.sleep(min(interval, until_stop))
            if utcnow() >= stop_at:
                continue  # re-checked at the top: cancel
            new_expiry = utcnow() + self._lease()
            try:
                async with asyncio.timeout(max(0.1, (stop_at - utcnow()).total_seconds())):
                    async with self.db.write() as s:
                        res = await s.execute(
                            update(Operation)
                            .where(Operation.id == op_id, Operation.lease_owner == self.owner)
                            .values(lease_expires_at=new_expiry)
                            .execution_options(synchronize_session=False)
                        )
                        renewed = res.rowcount == 1  # type: ignore[attr-defined]
            except (Exception, TimeoutError) as exc:
                log.warning("operation %s: lease renewal failed: %s", op_id, exc)
                continue
            if not renewed:
                log.error("operation %s: lease lost to another daemon; abandoning", op_id)
                runner.cancel()
                return
            self._held_until[op_id] = new_expiry

    async def _execute(self, op_id: str) -> None:
        me = asyncio.current_task()
        assert me is not None
        hb = asyncio.create_task(self._heartbeat(op_id, me))
        try:
            await self._drive(op_id)
        except LeaseLost:
            log.warning("operation %s: lease lost; another daemon continues it", op_id)
        except asyncio.CancelledError:
            raise
        except DBAPIError as exc:
            # our own bookkeeping could not reach the database: not the node's fault. Leave the
            # lease to expire; the step is re-run from the last recorded one (steps are
            # idempotent) by whichever daemon claims it next.
            log.error("operation %s: database error, will be retried: %s", op_id, exc.orig)
        except ProvisionError as exc:  # e.g. a stored secret that cannot be decrypted
            with contextlib.suppress(LeaseLost, DBAPIError):
                await self._fail(op_id, exc.message)
        except Exception as exc:  # a bug must fail the operation, not leave it hanging
            log.exception("operation %s: internal error", op_id)
            with contextlib.suppress(LeaseLost, DBAPIError):
                await self._fail(op_id, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self._held_until.pop(op_id, None)
            hb.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hb

    async def _snapshot(self, op_id: str) -> _Snapshot | None:
        async with self.db.read() as s:
            op = await s.get(Operation, op_id)
            if op is None or op.lease_owner != self.owner:
                raise LeaseLost(op_id)
            if op.state not in ACTIVE_OPERATION_STATES:
                return None
            assert op.node_id is not None
            node = await s.get(Node, op.node_id)
            assert node is not None
            password = self.box.decrypt(node.bmc_password_enc) if node.bmc_password_enc else None
            return _Snapshot(
                op_kind=op.kind,
                step_index=int(op.step or 0),
                attempts=op.attempts,
                max_attempts=op.max_attempts,
                deadline=op.deadline,
                params=dict(op.params),
                node_id=node.id,
                node_name=node.name,
                node_state=node.state,
                ctx_target=BmcTarget(
                    driver=node.bmc_driver,
                    address=node.bmc_address,
                    port=node.bmc_port,
                    username=node.bmc_username,
                    password=password,
                    system_id=node.bmc_system_id,
                ),
                boot_mode=node.boot_mode,
                early_callback=op.result.get("early_callback") == int(op.step or 0),
            )

    async def _drive(self, op_id: str) -> None:
        for _ in range(1000):  # a workflow has a handful of steps; this only bounds a bug
            snap = await self._snapshot(op_id)
            if snap is None:
                return
            steps = WORKFLOWS[snap.op_kind]
            if snap.step_index >= len(steps):
                await self._finish(op_id)
                return
            now = utcnow()
            if snap.deadline is not None and now >= snap.deadline:
                await self._fail(
                    op_id,
                    f"deadline passed in state {snap.node_state} "
                    f"(at {snap.deadline.isoformat(timespec='seconds')})",
                )
                return
            step = steps[snap.step_index]
            if step.kind == "wait":
                if snap.early_callback:  # the node called back before we got here: go on
                    await self._advance(op_id, snap.step_index)
                    continue
                await self._park(op_id, snap)
                return
            if step.kind == "transition":
                assert step.event is not None
                await self._advance(op_id, snap.step_index, event=step.event)
                continue
            update_ = await self._run_call(op_id, snap, step)
            if update_ is None:
                return
            await self._advance(op_id, snap.step_index, node_update=update_)
        raise RuntimeError(f"operation {op_id}: workflow did not finish in 1000 steps")

    async def _run_call(self, op_id: str, snap: _Snapshot, step: Step) -> NodeUpdate | None:
        assert step.fn is not None
        ctx = StepContext(
            node_id=snap.node_id,
            node_name=snap.node_name,
            boot_mode=snap.boot_mode,
            target=snap.ctx_target,
            bmc=self.bmc,
            params=snap.params,
        )
        remaining = (snap.deadline - utcnow()).total_seconds() if snap.deadline else None
        try:
            async with asyncio.timeout(remaining):
                return await step.fn(ctx)
        except TimeoutError:
            await self._fail(op_id, f"step {step.name}: deadline passed in state {snap.node_state}")
        except DriverError as exc:
            if exc.transient and snap.attempts + 1 < snap.max_attempts:
                await self._retry(op_id, snap, step, exc)
            else:
                tries = f" after {snap.attempts + 1} attempt(s)" if exc.transient else ""
                await self._fail(op_id, f"step {step.name}{tries}: {exc.message}")
        except ProvisionError as exc:
            await self._fail(op_id, f"step {step.name}: {exc.message}")
        return None

    async def _owned(self, s: AsyncSession, op_id: str) -> tuple[Operation, Node]:
        # Lock order everywhere: node, then operation (submit and resume do the same).
        node_id = await s.scalar(select(Operation.node_id).where(Operation.id == op_id))
        if node_id is None:
            raise LeaseLost(op_id)
        node = (await s.scalars(select(Node).where(Node.id == node_id).with_for_update())).one()
        op = (
            await s.scalars(select(Operation).where(Operation.id == op_id).with_for_update())
        ).one()
        if op.lease_owner != self.owner:
            raise LeaseLost(op_id)
        return op, node

    async def _advance(
        self,
        op_id: str,
        index: int,
        *,
        event: Internal | None = None,
        node_update: NodeUpdate | None = None,
    ) -> None:
        async with self.db.write() as s:
            op, node = await self._owned(s, op_id)
            if int(op.step or 0) != index:
                raise LeaseLost(op_id)  # somebody else moved it on; do not apply twice
            now = utcnow()
            if node_update is not None:
                if node_update.power_state is not None:
                    node.power_state = node_update.power_state
                    node.power_checked_at = node_update.checked_at or now
                if node_update.facts:
                    node.facts = {**node.facts, **node_update.facts}
            if event is not None:
                self._move(s, node, event.value, op_id=op.id, actor=None, now=now)
                if node.state in TRANSITIONAL:
                    op.deadline = self._deadline_for(node.state, now)
            op.step = str(index + 1)
            op.attempts = 0

    async def _park(self, op_id: str, snap: _Snapshot) -> None:
        async with self.db.write() as s:
            op, node = await self._owned(s, op_id)
            op.lease_owner = None
            op.lease_expires_at = None
            # Woken by a call-back (resume) or, failing that, at the deadline, which fails it.
            op.not_before = op.deadline
            events.record(
                s,
                "wait",
                f"waiting in {node.state} for the node to call back",
                node_id=node.id,
                operation_id=op.id,
            )

    async def _retry(self, op_id: str, snap: _Snapshot, step: Step, exc: DriverError) -> None:
        attempt = snap.attempts + 1
        delay = min(
            self.cfg.retry_backoff_seconds * (2 ** (attempt - 1)),
            self.cfg.retry_backoff_max_seconds,
        )
        async with self.db.write() as s:
            op, node = await self._owned(s, op_id)
            op.attempts = attempt
            if "early_callback" in op.result:
                # the step is retried (the node is booted again): that boot must call back anew
                op.result = {k: v for k, v in op.result.items() if k != "early_callback"}
            op.not_before = utcnow() + dt.timedelta(seconds=delay)
            op.lease_owner = None
            op.lease_expires_at = None
            events.record(
                s,
                "retry",
                f"step {step.name} failed ({exc.message}); retry {attempt} of "
                f"{snap.max_attempts - 1} in {delay:g}s",
                node_id=node.id,
                operation_id=op.id,
            )

    async def _fail(self, op_id: str, message: str) -> None:
        async with self.db.write() as s:
            op, node = await self._owned(s, op_id)
            now = utcnow()
            if node.state in TRANSITIONAL:
                self._move(s, node, Internal.FAIL.value, op_id=op.id, actor=None, now=now)
                if node.state == State.CLEAN_FAILED:
                    # a node that could not be cleaned may still hold a tenant's data or
                    # network: keep automation away until a person has looked (Ironic does too)
                    node.maintenance = True
                    node.maintenance_reason = f"cleaning failed: {message}"
                    node.fault = "clean failure"
            node.last_error = message
            op.state = "failed"
            op.error = message
            op.finished_at = now
            op.lease_owner = None
            op.lease_expires_at = None
            events.record(
                s, "operation", f"{op.kind} failed: {message}", node_id=node.id, operation_id=op.id
            )
        log.warning("operation %s failed: %s", op_id, message)

    async def _finish(self, op_id: str) -> None:
        async with self.db.write() as s:
            op, node = await self._owned(s, op_id)
            now = utcnow()
            op.state = "succeeded"
            op.finished_at = now
            op.lease_owner = None
            op.lease_expires_at = None
            node.last_error = None
            events.record(
                s, "operation", f"{op.kind} succeeded", node_id=node.id, operation_id=op.id
            )
