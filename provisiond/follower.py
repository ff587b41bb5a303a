"""The networks follow the lifecycle, for nodes held by an allocation: their switch ports and
InfiniBand GUIDs are moved as the node's state demands, and the reconcilers carry it out.

==========================================  =================================  ==============
state                                       Ethernet (every cabled port)       InfiniBand
==========================================  =================================  ==============
deploying, deploy-wait, releasing,          provisioning network (cleaning     in no tenant
cleaning, clean-wait, available             uses it too)                       partition
active                                      the tenant's VLAN                  full member of
                                                                               the tenant's
*-failed, anything else                     quarantine network                 in no tenant
                                                                               partition
==========================================  =================================  ==============

Only nodes with an allocation are managed (others keep what operators set). It records the
desired state and nothing else; a node whose ports cannot be bound (no cabling known, switch not
enrolled) is reported once per change as ``network.follow_failed``.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from provisiond import events, partitions, switches
from provisiond.db import Database
from provisiond.errors import ProvisionError
from provisiond.models import Fabric, FabricPartition, Nic, Node, PortBinding, Tenant

log = logging.getLogger(__name__)

PROVISIONING_STATES = frozenset(
    {"deploying", "deploy-wait", "releasing", "cleaning", "clean-wait", "available"}
)


def wanted(state: str, vlan: int | None) -> tuple[str | None, int | None]:
    """(system network, VLAN) a node's ports should be on in ``state``."""
    if state == "active" and vlan is not None:
        return None, vlan
    if state in PROVISIONING_STATES:
        return "provisioning", None
    return "quarantine", None


async def follow(db: Database) -> int:
    """One pass; returns how many nodes or partitions it changed."""
    async with db.read() as s:
        rows = list(
            await s.execute(
                select(Node.id, Node.name, Node.state, Node.tenant_id).where(
                    Node.allocation_id.is_not(None)
                )
            )
        )
        if not rows:
            return 0
        ids = [r[0] for r in rows]
        vlans = {t.id: t.vlan for t in await s.scalars(select(Tenant))}
        bindings: dict[str, list[PortBinding]] = {}
        for b in await s.scalars(select(PortBinding).where(PortBinding.node_id.in_(ids))):
            if b.node_id is not None:
                bindings.setdefault(b.node_id, []).append(b)
        cabled = set(
            await s.scalars(
                select(Nic.node_id).where(
                    Nic.node_id.in_(ids), Nic.kind == "ethernet", Nic.switch_port.is_not(None)
                )
            )
        )
        guids: dict[str, list[str]] = {}
        for node_id, guid in await s.execute(
            select(Nic.node_id, Nic.guid).where(Nic.node_id.in_(ids), Nic.guid.is_not(None))
        ):
            if guid:
                guids.setdefault(node_id, []).append(guid)
        parts = list(
            await s.execute(
                select(FabricPartition, Fabric.name)
                .join(Fabric, Fabric.id == FabricPartition.fabric_id)
                .where(
                    FabricPartition.tenant_id.is_not(None),
                    FabricPartition.state == partitions.ACTIVE,
                )
            )
        )
    changed = 0
    moves: list[tuple[str, str | None, int | None]] = []
    why: dict[str, tuple[str, str]] = {}  # node id -> (name, state), for the refusals
    for node_id, name, state, tenant_id in rows:
        network, vlan = wanted(state, vlans.get(tenant_id) if tenant_id else None)
        have = bindings.get(node_id, [])
        if node_id not in cabled:
            continue
        access = {"mode": "access", "vlan": vlan}
        ok = bool(have) and all(
            (b.network == network) if network else (b.network is None and b.desired == access)
            for b in have
        )
        if ok:
            continue
        moves.append((node_id, network, vlan))
        why[node_id] = (name, state)
    if moves:
        # one transaction for every node that changed (hundreds when an allocation goes active)
        refused = await switches.bind_nodes(db, moves, "follower")
        changed += len(moves) - len(refused)
        if refused:
            async with db.write() as s:
                for node_id, message in refused.items():
                    name, state = why[node_id]
                    events.record(s, "network.follow_failed", f"{name}: {message}",
                                  node_id=node_id, data={"state": state})  # fmt: skip
    # InfiniBand: each tenant partition holds exactly its active nodes' GUIDs (among the nodes
    # this module manages; members an operator added for other nodes stay)
    managed = {g for gs in guids.values() for g in gs}
    for row, fabric in parts:
        mine = {
            g: "full"
            for node_id, _, state, tenant_id in rows
            if tenant_id == row.tenant_id and state == "active"
            for g in guids.get(node_id, [])
        }
        members = {g: m for g, m in dict(row.members).items() if g not in managed} | mine
        if members == dict(row.members):
            continue
        spec = partitions.PartitionSpec(
            name=row.name, members=members, ipoib=row.ipoib, mtu=row.mtu, rate=row.rate,
            sl=row.sl, index0=row.index0, tenant=await _tenant_name(db, row.tenant_id),
        )  # fmt: skip
        try:
            await partitions.set_partition(db, fabric, f"0x{row.pkey:04x}", spec, "follower")
            changed += 1
        except ProvisionError as exc:
            log.warning("follower: fabric %s partition %s: %s", fabric, row.pkey, exc.message)
    return changed


async def _tenant_name(db: Database, tenant_id: int | None) -> str | None:
    if tenant_id is None:
        return None
    async with db.read() as s:
        name: Any = await s.scalar(select(Tenant.name).where(Tenant.id == tenant_id))
        return str(name) if name else None
