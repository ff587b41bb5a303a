"""Tenants and their networks: a tenant gets one Ethernet VLAN (the same id on every managed
switch: the lowest id every switch allows, that is no switch's system VLAN and that no other
tenant or port holds) and one InfiniBand P_Key per fabric (provisiond/partitions.py), in one
transaction with the tenant.

Deleting a tenant that holds nodes is refused. Deleting an empty one removes its partitions
(their keys stay reserved until the subnet managers confirm they are gone) and leaves the tenant
``deleting`` until no switch port holds its VLAN and no partition its key; the partition
reconciler's tick (``finish_deletions``) then drops it. Until then nothing else gets its VLAN.

This module decides and records; switches and subnet managers are only ever changed by the
reconcilers.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from drivers.switch.base import VLAN_MAX, VLAN_MIN, parse_vlan_ranges
from provisiond import events, partitions
from provisiond.db import Database
from provisiond.errors import Conflict, FieldProblem, NotFound, ValidationError
from provisiond.models import (
    Allocation,
    Fabric,
    FabricPartition,
    Node,
    PortBinding,
    Switch,
    Tenant,
)

ACTIVE, DELETING = "active", "deleting"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def tenant_dict(t: Tenant, keys: list[dict[str, Any]], nodes: int) -> dict[str, Any]:
    return {
        "name": t.name,
        "state": t.state,
        "vlan": t.vlan,
        "pkeys": keys,
        "nodes": nodes,
        "created_at": t.created_at,
    }


async def _view(s: AsyncSession, t: Tenant) -> dict[str, Any]:
    rows = await s.execute(
        select(Fabric.name, FabricPartition.pkey, FabricPartition.state)
        .join(Fabric, Fabric.id == FabricPartition.fabric_id)
        .where(FabricPartition.tenant_id == t.id)
        .order_by(Fabric.name)
    )
    keys = [
        {"fabric": fabric, "pkey": f"0x{pkey:04x}", "state": state} for fabric, pkey, state in rows
    ]
    nodes = await s.scalar(select(func.count()).select_from(Node).where(Node.tenant_id == t.id))
    return tenant_dict(t, keys, int(nodes or 0))


async def _free_vlan(s: AsyncSession, wanted: int | None) -> int | None:
    """The tenant VLAN: ``wanted`` if every switch allows it and it is free, else the lowest
    such id; None when no switch is managed (nothing to isolate on Ethernet yet)."""
    switches = list(await s.scalars(select(Switch)))
    if not switches:
        if wanted is not None:
            raise ValidationError(
                "tenant refused", [FieldProblem("vlan", "no switch is managed", value=wanted)]
            )
        return None
    allowed = set(range(VLAN_MIN, VLAN_MAX + 1))
    for sw in switches:
        allowed &= parse_vlan_ranges(sw.allowed_vlans)
        allowed -= {v for v in (sw.provisioning_vlan, sw.quarantine_vlan) if v is not None}
    held = {v for v in await s.scalars(select(Tenant.vlan).where(Tenant.vlan.is_not(None)))}
    # a VLAN some port still carries (desired, applied or seen) is not free either
    held |= await _vlans_on_ports(s)
    free = sorted(allowed - held)
    if wanted is not None:
        if wanted not in free:
            why = (
                "held by a tenant or a port"
                if wanted in allowed
                else ("not allowed on every switch (or a system VLAN)")
            )
            raise ValidationError("tenant refused", [FieldProblem("vlan", why, value=wanted)])
        return wanted
    if not free:
        raise Conflict("no VLAN is free on every switch: widen the switches' allowed_vlans")
    return free[0]


async def create_tenant(
    db: Database, name: str, *, vlan: int | None, actor: str | None
) -> tuple[dict[str, Any], bool]:
    """Create (or complete: a tenant a token created has no networks yet) a tenant with its
    VLAN and a P_Key on every fabric, all in one transaction. Returns (tenant, changed)."""
    if not _NAME.match(name):
        raise ValidationError(
            "tenant refused",
            [FieldProblem("name", "1-64 of a-z 0-9 _ - (lowercase, starting alphanumeric)",
                          value=name)],
        )  # fmt: skip
    async with db.write() as s:
        t = await s.scalar(select(Tenant).where(Tenant.name == name).with_for_update())
        if t is not None and t.state == DELETING:
            raise Conflict(f"tenant {name!r} is being deleted; wait until it is gone")
        changed = False
        if t is None:
            t = Tenant(name=name)
            s.add(t)
            await s.flush()
            changed = True
        if t.vlan is None:
            t.vlan = await _free_vlan(s, vlan)
            changed = changed or t.vlan is not None
        elif vlan is not None and vlan != t.vlan:
            raise Conflict(f"tenant {name!r} already has VLAN {t.vlan}")
        have = set(
            await s.scalars(
                select(FabricPartition.fabric_id).where(FabricPartition.tenant_id == t.id)
            )
        )
        for f in await s.scalars(select(Fabric).order_by(Fabric.name).with_for_update()):
            if f.id in have:
                continue
            spec = partitions.PartitionSpec(name=f"tenant_{name}", tenant=name)
            await partitions.allocate_in(s, f, spec, actor)
            changed = True
        if changed:
            events.record(s, "tenant.created", f"tenant {name}: networks allocated",
                          actor=actor, data={"tenant": name, "vlan": t.vlan})  # fmt: skip
        return await _view(s, t), changed


async def list_tenants(db: Database) -> list[dict[str, Any]]:
    async with db.read() as s:
        return [await _view(s, t) for t in await s.scalars(select(Tenant).order_by(Tenant.name))]


async def show_tenant(db: Database, name: str) -> dict[str, Any]:
    async with db.read() as s:
        t = await s.scalar(select(Tenant).where(Tenant.name == name))
        if t is None:
            raise NotFound(f"no tenant {name!r}")
        return await _view(s, t)


async def delete_tenant(db: Database, name: str, actor: str | None) -> dict[str, Any]:
    async with db.write() as s:
        t = await s.scalar(select(Tenant).where(Tenant.name == name).with_for_update())
        if t is None:
            raise NotFound(f"no tenant {name!r}")
        held = list(await s.scalars(select(Node.name).where(Node.tenant_id == t.id).limit(20)))
        if held:
            raise Conflict(
                f"tenant {name!r} still holds nodes ({', '.join(held)}); release them first"
            )
        for row in await s.scalars(
            select(FabricPartition).where(FabricPartition.tenant_id == t.id)
        ):
            if row.state != partitions.REMOVING:
                f = await s.get(Fabric, row.fabric_id, with_for_update=True)
                assert f is not None
                f.desired_rev += 1
                f.status = partitions.PENDING
                row.state, row.rev = partitions.REMOVING, f.desired_rev
        t.state = DELETING
        events.record(s, "tenant.deleting", f"tenant {name}: networks being released",
                      actor=actor, data={"tenant": name, "vlan": t.vlan})  # fmt: skip
        return await _view(s, t)


async def finish_deletions(db: Database) -> list[str]:
    """Drop ``deleting`` tenants whose VLAN no port carries and whose keys no partition holds
    (the reconcilers confirmed both). Returns the names dropped."""
    done: list[str] = []
    async with db.read() as s:  # the common case, without taking the write lock
        if await s.scalar(select(Tenant.id).where(Tenant.state == DELETING).limit(1)) is None:
            return done
    async with db.write() as s:
        for t in list(await s.scalars(select(Tenant).where(Tenant.state == DELETING))):
            keys = await s.scalar(
                select(func.count())
                .select_from(FabricPartition)
                .where(FabricPartition.tenant_id == t.id)
            )
            if keys:
                continue
            if t.vlan is not None and t.vlan in await _vlans_on_ports(s):
                continue
            # its allocations are all released (a tenant holding nodes is not deleted); their
            # history stays in the events
            await s.execute(delete(Allocation).where(Allocation.tenant_id == t.id))
            await s.execute(delete(Tenant).where(Tenant.id == t.id))
            events.record(s, "tenant.deleted", f"tenant {t.name} deleted; VLAN {t.vlan} free",
                          data={"tenant": t.name, "vlan": t.vlan})  # fmt: skip
            done.append(t.name)
    return done


async def _vlans_on_ports(s: AsyncSession) -> set[int]:
    """Every VLAN a managed port carries, is to carry or was last seen carrying."""
    out: set[int] = set()
    for b in await s.scalars(select(PortBinding)):
        for state in (b.desired, b.applied, b.observed):
            if state:
                out |= {v for v in (state.get("vlan"), state.get("native_vlan")) if v}
                out |= set(state.get("allowed_vlans") or ())
    return out
