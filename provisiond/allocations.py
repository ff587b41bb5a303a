"""Allocations: a tenant asks for N nodes by constraints and an image; provisiond picks available
nodes (spread across racks unless told otherwise), reserves them atomically, and deploys each.
Releasing undeploys them; cleaning brings them back to ``available``, and the sweep
(``settle``) then frees them from the tenant.

Reservation is one conditional UPDATE per chosen node set inside the write transaction
(``tenant_id IS NULL AND state = 'available'``): two concurrent requests never get the same
node, whatever the database; a request that loses a race picks again (bounded) or is refused
with what was free. The lifecycle itself (deploy, undeploy, cleaning) runs in the engine as for
any node.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from firmware_db.rules import COMPLIANT, WARN
from provisiond import events
from provisiond.db import Database
from provisiond.engine import Engine
from provisiond.errors import Conflict, FieldProblem, NotFound, ValidationError
from provisiond.firmware import FirmwareService
from provisiond.models import (
    ACTIVE_OPERATION_STATES,
    Allocation,
    FabricPartition,
    Image,
    Nic,
    Node,
    Operation,
    PortBinding,
    Rack,
    Tenant,
)

log = logging.getLogger(__name__)

ACTIVE, RELEASING, RELEASED = "active", "releasing", "released"
MAX_COUNT = 5000
RACE_RETRIES = 5
# constraint "firmware" -> the verdicts it accepts
FIRMWARE_VERDICTS = {"not-blocked": {COMPLIANT, WARN}, "compliant": {COMPLIANT}}


@dataclass(frozen=True)
class Constraints:
    racks: tuple[str, ...] = ()
    cpu_model: str | None = None  # a substring of the agent's CPU model
    min_memory_gib: int | None = None
    min_gpus: int | None = None
    infiniband: bool | None = None
    spread: bool = True  # fairly across racks
    # the firmware verdict a node must have: "not-blocked" (compliant or warn) or "compliant";
    # a blocked node is never picked (its deploy would be refused by the gate anyway)
    firmware: str = "not-blocked"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, ())}


def parse_constraints(raw: Mapping[str, Any] | None) -> Constraints:
    raw = dict(raw or {})
    problems: list[FieldProblem] = []
    known = {"racks", "cpu_model", "min_memory_gib", "min_gpus", "infiniband", "spread",
             "firmware"}  # fmt: skip
    for key in sorted(set(raw) - known):
        problems.append(
            FieldProblem(f"constraints.{key}", f"unknown; known: {', '.join(sorted(known))}")
        )
    racks = raw.get("racks", [])
    if not isinstance(racks, list) or not all(isinstance(r, str) for r in racks):
        problems.append(FieldProblem("constraints.racks", "a list of rack names"))
        racks = []
    for key in ("min_memory_gib", "min_gpus"):
        v = raw.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            problems.append(FieldProblem(f"constraints.{key}", "a whole number >= 0", value=v))
    for key in ("infiniband", "spread"):
        v = raw.get(key)
        if v is not None and not isinstance(v, bool):
            problems.append(FieldProblem(f"constraints.{key}", "true or false", value=v))
    cpu = raw.get("cpu_model")
    if cpu is not None and not isinstance(cpu, str):
        problems.append(FieldProblem("constraints.cpu_model", "text", value=cpu))
    fw = raw.get("firmware", "not-blocked")
    if fw not in FIRMWARE_VERDICTS:
        problems.append(
            FieldProblem("constraints.firmware", " or ".join(sorted(FIRMWARE_VERDICTS)), value=fw)
        )
    if problems:
        raise ValidationError("allocation refused", problems)
    return Constraints(
        racks=tuple(racks),
        cpu_model=cpu,
        min_memory_gib=raw.get("min_memory_gib"),
        min_gpus=raw.get("min_gpus"),
        infiniband=raw.get("infiniband"),
        spread=raw.get("spread", True),
        firmware=fw,
    )


def _fits(node: Node, c: Constraints, has_ib: bool) -> bool:
    facts = node.facts or {}
    cpu_raw, mem_raw = facts.get("cpu"), facts.get("memory")
    cpu: Mapping[str, Any] = cpu_raw if isinstance(cpu_raw, Mapping) else {}
    mem: Mapping[str, Any] = mem_raw if isinstance(mem_raw, Mapping) else {}
    if c.cpu_model and c.cpu_model.lower() not in str(cpu.get("model", "")).lower():
        return False
    if c.min_memory_gib is not None:
        total = mem.get("total_mib") or 0
        if not isinstance(total, int | float) or total < c.min_memory_gib * 1024:
            return False
    if c.min_gpus is not None:
        gpus = facts.get("gpus")
        if (len(gpus) if isinstance(gpus, list) else 0) < c.min_gpus:
            return False
    return c.infiniband is None or c.infiniband == has_ib


def _spread(nodes: Sequence[tuple[Node, str]], count: int, spread: bool) -> list[Node]:
    """``count`` nodes, taking one per rack in turn (racks by name, nodes by name)."""
    if not spread:
        return [n for n, _ in nodes[:count]]
    by_rack: dict[str, list[Node]] = {}
    for node, rack in nodes:
        by_rack.setdefault(rack, []).append(node)
    queues = [by_rack[r] for r in sorted(by_rack)]
    out: list[Node] = []
    for _ in range(count):
        progressed = False
        for q in queues:
            if q and len(out) < count:
                out.append(q.pop(0))
                progressed = True
        if not progressed or len(out) >= count:
            break
    return out


async def _candidates(s: AsyncSession, c: Constraints) -> list[tuple[Node, str]]:
    stmt = (
        select(Node, Rack.name)
        .join(Rack, Rack.id == Node.rack_id, isouter=True)
        .where(
            Node.state == "available",
            Node.tenant_id.is_(None),
            Node.maintenance.is_(False),
            Node.protected.is_(False),
            Node.retired.is_(False),
        )
        .order_by(Node.name)
    )
    if c.racks:
        stmt = stmt.where(Rack.name.in_(c.racks))
    rows = [(n, r or "") for n, r in await s.execute(stmt)]
    with_ib = set(
        await s.scalars(
            select(Nic.node_id).where(
                Nic.kind == "infiniband", Nic.node_id.in_([n.id for n, _ in rows])
            )
        )
    ) if rows else set()  # fmt: skip
    return [(n, r) for n, r in rows if _fits(n, c, n.id in with_ib)]


async def allocate(
    db: Database,
    engine: Engine,
    tenant_name: str,
    *,
    count: int,
    image: str,
    constraints: Constraints,
    actor: str | None,
    tenant_scope: int | None = None,
    firmware: FirmwareService | None = None,
) -> dict[str, Any]:
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_COUNT:
        raise ValidationError(
            "allocation refused", [FieldProblem("count", f"1-{MAX_COUNT}", value=count)]
        )
    chosen: list[Node] = []
    alloc_id = ""
    verdicts: dict[str, str] = {}  # node id -> firmware verdict, judged outside the write
    accepted = FIRMWARE_VERDICTS[constraints.firmware]
    for _ in range(RACE_RETRIES):
        if firmware is not None:
            async with db.read() as s:
                ids = [n.id for n, _ in await _candidates(s, constraints)]
            verdicts |= await firmware.verdicts([i for i in ids if i not in verdicts])
        async with db.write() as s:
            tenant = await _tenant(s, tenant_name, tenant_scope)
            if await s.scalar(select(Image.id).where(Image.name == image)) is None:
                raise ValidationError(
                    "allocation refused", [FieldProblem("image", "no such image", value=image)]
                )
            candidates = await _candidates(s, constraints)
            unjudged = 0
            if firmware is not None:
                # a node that became available since the read above is not judged: left out
                unjudged = len(candidates)
                candidates = [(n, r) for n, r in candidates if verdicts.get(n.id) in accepted]
                unjudged -= len(candidates)
            if len(candidates) < count:
                why = f" ({unjudged} left out by their firmware verdict)" if unjudged else ""
                raise Conflict(
                    f"only {len(candidates)} available node(s) match, {count} asked for{why}",
                    available=len(candidates),
                    firmware_excluded=unjudged,
                )
            chosen = _spread(candidates, count, constraints.spread)
            alloc = Allocation(
                tenant_id=tenant.id,
                image=image,
                count=count,
                constraints=constraints.as_dict(),
                created_by=actor,
            )
            s.add(alloc)
            await s.flush()
            # the reservation: only nodes still free and available are taken
            res = await s.execute(
                update(Node)
                .where(
                    and_(
                        Node.id.in_([n.id for n in chosen]),
                        Node.tenant_id.is_(None),
                        Node.state == "available",
                    )
                )
                .values(tenant_id=tenant.id, allocation_id=alloc.id)
                .execution_options(synchronize_session=False)
            )
            if res.rowcount != len(chosen):  # type: ignore[attr-defined]
                await s.rollback()
                continue  # another request took some of them meanwhile: choose again
            alloc_id = alloc.id
            events.record(
                s,
                "allocation.created",
                f"tenant {tenant.name}: {count} node(s) reserved for {image}",
                actor=actor,
                data={"allocation": alloc.id, "nodes": [n.name for n in chosen]},
            )
            break
    else:
        raise Conflict("the nodes were taken by other requests meanwhile; try again")
    ops, errors = await engine.submit_many(
        [n.name for n in chosen], "deploy", params={"image": image}, actor=actor
    )
    operations = {name: op["id"] for name, op in ops.items()}
    return {**(await show(db, alloc_id)), "operations": operations, "errors": errors}


async def _tenant(s: AsyncSession, name: str, scope: int | None) -> Tenant:
    t = await s.scalar(select(Tenant).where(Tenant.name == name))
    if t is None or (scope is not None and t.id != scope):
        raise NotFound(f"no tenant {name!r}")
    if t.state != "active":
        raise Conflict(f"tenant {name!r} is being deleted")
    return t


async def show(db: Database, alloc_id: str, *, tenant_scope: int | None = None) -> dict[str, Any]:
    async with db.read() as s:
        a = await s.get(Allocation, alloc_id)
        if a is None or (tenant_scope is not None and a.tenant_id != tenant_scope):
            raise NotFound(f"no allocation {alloc_id!r}")
        tenant = await s.scalar(select(Tenant.name).where(Tenant.id == a.tenant_id))
        nodes = [
            {"name": n, "state": st}
            for n, st in await s.execute(
                select(Node.name, Node.state).where(Node.allocation_id == a.id).order_by(Node.name)
            )
        ]
    return _alloc_dict(a, tenant, nodes)


async def list_allocations(
    db: Database,
    *,
    tenant: str | None = None,
    include_released: bool = False,
    tenant_scope: int | None = None,
) -> list[dict[str, Any]]:
    """Allocations (of ``tenant``; a tenant token's own only), oldest first, with their
    nodes' states; released ones only when asked."""
    async with db.read() as s:
        stmt = (
            select(Allocation, Tenant.name)
            .join(Tenant, Tenant.id == Allocation.tenant_id)
            .order_by(Allocation.created_at, Allocation.id)
        )
        if tenant is not None:
            stmt = stmt.where(Tenant.name == tenant)
        if tenant_scope is not None:
            stmt = stmt.where(Allocation.tenant_id == tenant_scope)
        if not include_released:
            stmt = stmt.where(Allocation.state != RELEASED)
        rows = list(await s.execute(stmt))
        nodes: dict[str, list[dict[str, Any]]] = {}
        for alloc_id, name, state in await s.execute(
            select(Node.allocation_id, Node.name, Node.state)
            .where(Node.allocation_id.in_([a.id for a, _ in rows]))
            .order_by(Node.name)
        ):
            nodes.setdefault(str(alloc_id), []).append({"name": name, "state": state})
    return [_alloc_dict(a, t, nodes.get(a.id, [])) for a, t in rows]


def _alloc_dict(a: Allocation, tenant: str | None, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": a.id,
        "tenant": tenant,
        "image": a.image,
        "count": a.count,
        "constraints": a.constraints,
        "state": a.state,
        "nodes": nodes,
        "created_at": a.created_at,
    }


async def release(
    db: Database,
    engine: Engine,
    alloc_id: str,
    *,
    actor: str | None,
    tenant_scope: int | None = None,
    node: str | None = None,
) -> dict[str, Any]:
    """Undeploy the allocation's nodes (or one of them); cleaning brings them back, and
    ``settle`` frees them once available."""
    async with db.write() as s:
        a = await s.get(Allocation, alloc_id, with_for_update=True)
        if a is None or (tenant_scope is not None and a.tenant_id != tenant_scope):
            raise NotFound(f"no allocation {alloc_id!r}")
        stmt = select(Node.name, Node.state).where(Node.allocation_id == a.id)
        if node is not None:
            stmt = stmt.where(Node.name == node)
        targets = list(await s.execute(stmt))
        if node is not None and not targets:
            raise NotFound(f"node {node!r} is not in allocation {alloc_id}")
        if node is None:
            a.state = RELEASING
        else:
            names = set((a.releasing_nodes or {}).get("nodes", [])) | {node}
            a.releasing_nodes = {"nodes": sorted(names)}
        events.record(s, "allocation.release", f"allocation {a.id}: releasing "
                      f"{node or 'every node'}", actor=actor,
                      data={"allocation": a.id, "nodes": [n for n, _ in targets]})  # fmt: skip
    ops, errors = await engine.submit_many(
        [name for name, state in targets
         if state not in ("available", "cleaning", "clean-wait", "releasing")],
        "undeploy",
        actor=actor,
    )  # fmt: skip
    operations = {name: op["id"] for name, op in ops.items()}
    return {**(await show(db, alloc_id)), "operations": operations, "errors": errors}


# states a node being released passes through by itself (or waits in for an operator)
_RELEASE_UNDERWAY = ("available", "releasing", "cleaning", "clean-wait", "clean-failed")


async def settle(db: Database, engine: Engine | None = None) -> int:
    """Free released nodes that are back to ``available`` and out of their tenant's networks
    (every port on the provisioning network, no GUID in a tenant partition: the follower moves
    them first, so a node never leaves a tenant still wired into it); mark allocations
    released once empty. With ``engine``: undeploy released nodes that the release found
    busy (still deploying) once their operation ended. Returns how many nodes were freed."""
    if engine is not None:
        await _undeploy_stranded(db, engine)
    async with db.read() as s:
        rows = list(
            await s.execute(
                select(Node.id, Node.name, Allocation)
                .join(Allocation, Allocation.id == Node.allocation_id)
                .where(Node.state == "available")
            )
        )
        candidates = [
            (node_id, a)
            for node_id, name, a in rows
            if a.state == RELEASING or name in (a.releasing_nodes or {}).get("nodes", [])
        ]
        if not candidates:
            return 0
        ids = [node_id for node_id, _ in candidates]
        wired = set(
            await s.scalars(
                select(PortBinding.node_id).where(
                    PortBinding.node_id.in_(ids),
                    or_(PortBinding.network.is_(None), PortBinding.network != "provisioning"),
                )
            )
        )
        guids = {
            g: node_id
            for node_id, g in await s.execute(
                select(Nic.node_id, Nic.guid).where(Nic.node_id.in_(ids), Nic.guid.is_not(None))
            )
        }
        for members in await s.scalars(
            select(FabricPartition.members).where(FabricPartition.tenant_id.is_not(None))
        ):
            wired |= {guids[g] for g in (members or {}) if g in guids}
    ready = [(node_id, a) for node_id, a in candidates if node_id not in wired]
    if not ready:
        return 0
    async with db.write() as s:
        res = await s.execute(
            update(Node)
            .where(Node.id.in_([n for n, _ in ready]), Node.state == "available")
            .values(tenant_id=None, allocation_id=None)
            .execution_options(synchronize_session=False)
        )
        freed = int(res.rowcount)  # type: ignore[attr-defined]
        for alloc_id in {a.id for _, a in ready}:
            a = await s.get(Allocation, alloc_id)
            left = await s.scalar(
                select(func.count()).select_from(Node).where(Node.allocation_id == alloc_id)
            )
            if a is not None and not left:
                a.state = RELEASED
                events.record(s, "allocation.released", f"allocation {a.id} released",
                              data={"allocation": a.id})  # fmt: skip
        return freed


async def _undeploy_stranded(db: Database, engine: Engine) -> None:
    """Nodes of a releasing allocation (or released one by one) that are not on their way back
    (a release that found them deploying could not undeploy them then) and have no operation
    running: undeploy them now."""
    async with db.read() as s:
        rows = list(
            await s.execute(
                select(Node.name, Allocation)
                .join(Allocation, Allocation.id == Node.allocation_id)
                .where(
                    Node.state.not_in(_RELEASE_UNDERWAY),
                    ~select(Operation.id)
                    .where(
                        Operation.node_id == Node.id,
                        Operation.state.in_(ACTIVE_OPERATION_STATES),
                    )
                    .exists(),
                )
            )
        )
    names = [
        name
        for name, a in rows
        if a.state == RELEASING or name in (a.releasing_nodes or {}).get("nodes", [])
    ]
    if not names:
        return
    ops, refused = await engine.submit_many(names, "undeploy", actor="provisiond")
    if ops:
        log.info("allocation sweep: undeploying %s (released while busy)", ", ".join(sorted(ops)))
    for name, why in sorted(refused.items()):
        log.debug("allocation sweep: %s not undeployed: %s", name, why)
