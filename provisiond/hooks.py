"""Scheduler hooks: SLURM's ResumeProgram and SuspendProgram call these with a hostlist
expression; each named node that is deployed (``active``) gets a power-on (booting its deployed
image over the network) or a power-off, idempotently: a node already in the wanted power state,
or already busy with an operation, is skipped and said so. The answer comes at once (the power
operations run in the engine) with one batch id, recorded as an event with every decision.

Never acts on a node that is not deployed: SLURM's view of a node is only trusted for nodes in
service; the rest is reported back."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from provisiond import events
from provisiond.db import Database
from provisiond.engine import Engine
from provisiond.errors import FieldProblem, ValidationError
from provisiond.hostlist import HostlistError, compress, expand
from provisiond.lifecycle import Action
from provisiond.models import ACTIVE_OPERATION_STATES, Node, Operation

WANT = {Action.POWER_ON: "on", Action.POWER_OFF: "off"}


async def slurm(
    db: Database,
    engine: Engine,
    expression: str,
    action: Action,
    *,
    actor: str | None,
    tenant_id: int | None = None,
) -> dict[str, Any]:
    try:
        names = expand(expression, limit=10_000)
    except HostlistError as exc:
        raise ValidationError(
            "bad hostlist", [FieldProblem("nodes", str(exc), value=expression)]
        ) from exc
    async with db.read() as s:
        stmt = select(Node.name, Node.state, Node.power_state).where(Node.name.in_(names))
        if tenant_id is not None:
            stmt = stmt.where(Node.tenant_id == tenant_id)
        found = {name: (state, power) for name, state, power in await s.execute(stmt)}
        running = {
            name: (kind, op_id)
            for name, kind, op_id in await s.execute(
                select(Node.name, Operation.kind, Operation.id)
                .join(Operation, Operation.node_id == Node.id)
                .where(Node.name.in_(list(found)), Operation.state.in_(ACTIVE_OPERATION_STATES))
            )
        }
    wanted: list[str] = []
    skipped: dict[str, str] = {}
    unknown = [n for n in names if n not in found]
    for name in names:
        if name not in found:
            continue
        state, power = found[name]
        if state != "active":
            skipped[name] = f"not deployed (state {state}): provisiond leaves it alone"
            continue
        if power == WANT[action]:
            skipped[name] = f"already {power}"
            continue
        if name in running:
            kind, op_id = running[name]
            skipped[name] = (
                f"already {kind} (operation {op_id})"
                if kind == action.value
                else f"busy with operation {op_id} ({kind}); SLURM will retry"
            )
            continue
        wanted.append(name)
    # one transaction for the lot; a node busy or not allowed now is skipped with the reason
    ops, refused = await engine.submit_many(wanted, action.value, actor=actor, tenant_id=tenant_id)
    operations = {name: op["id"] for name, op in ops.items()}
    skipped |= refused
    batch = str(uuid.uuid4())
    result = {
        "id": batch,
        "action": action.value,
        "nodes": len(names),
        "operations": operations,
        "skipped": skipped,
        "unknown": compress(unknown) if unknown else "",
    }
    async with db.write() as s:
        events.record(
            s,
            "hook.slurm",
            f"SLURM {'resume' if action is Action.POWER_ON else 'suspend'} of "
            f"{compress(names)}: {len(operations)} started, {len(skipped)} skipped, "
            f"{len(unknown)} unknown",
            actor=actor,
            data=result,
        )
    return result


def hostlist_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    raise ValidationError(
        "bad hostlist", [FieldProblem("nodes", "a SLURM hostlist expression", value=value)]
    )
