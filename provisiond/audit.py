"""The isolation audit: read what every switch port and every partition IS (through the drivers'
read-back, never the database's idea of it) and prove, or refute with the exact ports and GUIDs:

1. no port and no GUID is in two tenants' networks;
2. every managed port and every partition is where the desired state says;
3. no port or GUID of a node outside a tenant is in that tenant's network.

A source that cannot be read is a finding too ("unverified"): the audit never reports clean what
it could not see. The report says what was checked, when, and each violation with where and why,
in words an auditor can follow. Every run is an event (``audit.clean`` or ``audit.violation``).
Reads only; never changes a port or a partition.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
from typing import Any

from sqlalchemy import select

from drivers.fabric.base import format_pkey
from provisiond import events
from provisiond.db import Database
from provisiond.fabric import Reconciler, describe, matches, vlans_of
from provisiond.models import Fabric, FabricPartition, Nic, Node, Switch, Tenant, utcnow
from provisiond.partitions import ACTIVE, PartitionReconciler

log = logging.getLogger(__name__)


def _vlans(state: dict[str, Any] | None) -> set[int]:
    if not state or state.get("mode") not in ("access", "trunk") or state.get("missing"):
        return set()
    try:
        return vlans_of(state)
    except (KeyError, TypeError, ValueError):
        return set()


async def run(
    db: Database, switches: Reconciler, fabrics: PartitionReconciler, *, actor: str | None
) -> dict[str, Any]:
    started = utcnow()
    async with db.read() as s:
        tenants = {t.id: t for t in await s.scalars(select(Tenant))}
        by_vlan = {t.vlan: t.name for t in tenants.values() if t.vlan is not None}
        nodes = {n.id: n for n in await s.scalars(select(Node))}
        nics = list(await s.scalars(select(Nic)))
        switch_rows = list(await s.scalars(select(Switch).order_by(Switch.name)))
        fabric_rows = list(await s.scalars(select(Fabric).order_by(Fabric.name)))
        parts = list(await s.scalars(select(FabricPartition)))
    node_tenant = {
        nid: (tenants[n.tenant_id].name if n.tenant_id in tenants else None)
        for nid, n in nodes.items()
    }
    by_cable = {(n.switch_name, n.switch_port): n.node_id for n in nics if n.switch_port}
    by_guid = {n.guid: n.node_id for n in nics if n.guid}
    violations: list[dict[str, Any]] = []
    checked = {"switches": 0, "ports": 0, "fabrics": 0, "partitions": 0, "guids": 0}

    def violate(kind: str, where: str, detail: str) -> None:
        violations.append({"kind": kind, "where": where, "detail": detail})

    # ------------------------------------------------------------------ Ethernet
    for sw in switch_rows:
        bindings, observed, error = await switches.read_all(sw.id)
        if error is not None:
            violate("unverified", f"switch {sw.name}", f"could not be read: {error}")
            continue
        checked["switches"] += 1
        for b in bindings:
            where = f"switch {sw.name} port {b.port}"
            seen = observed.get(b.port)
            checked["ports"] += 1
            owners = sorted({by_vlan[v] for v in _vlans(seen) if v in by_vlan})
            node_id = b.node_id or by_cable.get((sw.name, b.port))
            node = nodes.get(node_id) if node_id else None
            if len(owners) > 1:
                violate("two-tenants", where, f"carries the networks of {', '.join(owners)} "
                        f"({describe(seen)})")  # fmt: skip
            for owner in owners:
                holder = node_tenant.get(node.id) if node else None
                if holder != owner:
                    who = f"node {node.name}" if node else "no known node"
                    violate(
                        "outsider",
                        where,
                        f"is in tenant {owner}'s network ({describe(seen)}) but is cabled to "
                        f"{who}, which is {'in tenant ' + holder if holder else 'in no tenant'}",
                    )
            if b.applied_rev >= b.desired_rev and not matches(b.desired, seen):
                violate("not-as-desired", where,
                        f"is {describe(seen)}; desired {describe(b.desired)}")  # fmt: skip
    # ------------------------------------------------------------------ InfiniBand
    for f in fabric_rows:
        read, error = await fabrics.read_now(f.id)
        if read is None:
            violate("unverified", f"fabric {f.name}", f"could not be read: {error}")
            continue
        checked["fabrics"] += 1
        for problem in read.problems:
            violate("subnet-manager", f"fabric {f.name}", problem)
        rows = {p.pkey: p for p in parts if p.fabric_id == f.id}
        guid_tenants: dict[str, set[str]] = {}
        for p in read.partitions:
            checked["partitions"] += 1
            where = f"fabric {f.name} P_Key {format_pkey(p.pkey)}"
            row = rows.get(p.pkey)
            if row is None or row.state != ACTIVE:
                why = "being removed" if row is not None else "not provisiond's"
                violate("not-as-desired", where, f"held by the subnet manager but {why} "
                        f"({len(p.members)} members)")  # fmt: skip
            part_owner = tenants[row.tenant_id].name if row and row.tenant_id in tenants else None
            if row is not None and dict(row.members) != dict(p.members):
                violate("not-as-desired", where, "members differ from the desired set")
            for guid, membership in p.members.items():
                checked["guids"] += 1
                if part_owner is None or membership != "full":
                    continue
                guid_tenants.setdefault(guid, set()).add(part_owner)
                node_id = by_guid.get(guid)
                holder = node_tenant.get(node_id) if node_id else None
                if holder != part_owner:
                    who = f"node {nodes[node_id].name}" if node_id in nodes else "no known node"
                    violate(
                        "outsider",
                        f"fabric {f.name} GUID {guid}",
                        f"is a full member of tenant {part_owner}'s partition "
                        f"{format_pkey(p.pkey)} but belongs to {who}, "
                        f"{'in tenant ' + holder if holder else 'in no tenant'}",
                    )
        for guid, held_by in sorted(guid_tenants.items()):
            if len(held_by) > 1:
                names = ", ".join(sorted(held_by))
                violate("two-tenants", f"fabric {f.name} GUID {guid}",
                        f"is a full member of the partitions of {names}")  # fmt: skip
        for pkey, row in rows.items():
            if row.state == ACTIVE and pkey not in {p.pkey for p in read.partitions}:
                violate("not-as-desired", f"fabric {f.name} P_Key {format_pkey(pkey)}",
                        "desired but not held by the subnet manager")  # fmt: skip
    finished = utcnow()
    statement = _statement(checked, violations, finished)
    report: dict[str, Any] = {
        "ok": not violations,
        "started_at": started,
        "finished_at": finished,
        "checked": checked,
        "tenants": sorted(t.name for t in tenants.values()),
        "violations": violations,
        "statement": statement,
    }
    report["digest"] = hashlib.sha256(
        json.dumps({k: v for k, v in report.items() if k != "digest"}, default=str,
                   sort_keys=True).encode()
    ).hexdigest()  # fmt: skip
    async with db.write() as s:
        events.record(
            s,
            "audit.clean" if not violations else "audit.violation",
            statement,
            actor=actor,
            data={"checked": checked, "violations": violations[:200], "digest": report["digest"]},
        )
    return report


def _statement(checked: dict[str, int], violations: list[dict[str, Any]], at: dt.datetime) -> str:
    what = (
        f"{checked['ports']} ports on {checked['switches']} switches and {checked['guids']} "
        f"GUID memberships in {checked['partitions']} partitions on {checked['fabrics']} fabrics, "
        f"read from the devices at {at:%Y-%m-%d %H:%M:%S} UTC"
    )
    if not violations:
        return (
            f"Isolation holds: {what}; no port or GUID is in two tenants' networks, every one is "
            "where the desired state says, and none belongs to a node outside its tenant."
        )
    return f"Isolation VIOLATED ({len(violations)} findings): {what}."


async def periodic(
    db: Database, switches: Reconciler, fabrics: PartitionReconciler, interval: float
) -> None:
    """Audit every ``interval`` seconds (the first after one interval) until cancelled; each
    run is an event (``audit.violation`` when isolation does not hold)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await run(db, switches, fabrics, actor="audit")
        except asyncio.CancelledError:
            raise
        except Exception:  # a database hiccup must not end the loop
            log.exception("isolation audit failed")
