"""Ansible's dynamic inventory (the JSON an inventory script prints for ``--list``): every node,
grouped by rack, tenant and lifecycle state, with the facts a playbook needs as host variables
(its provisioning address when known, rack, unit, tenant, state, image). Reads only."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from provisiond.db import Database
from provisiond.models import Node, Rack, Tenant

_GROUP = re.compile(r"[^A-Za-z0-9_]")


def group(kind: str, name: str) -> str:
    """An Ansible group name: letters, digits and _ only (``rack_r01``, ``tenant_acme_lab``)."""
    return f"{kind}_{_GROUP.sub('_', name)}"


async def inventory(db: Database, *, tenant_id: int | None = None) -> dict[str, Any]:
    async with db.read() as s:
        stmt = select(Node).options(selectinload(Node.nics)).order_by(Node.name)
        if tenant_id is not None:
            stmt = stmt.where(Node.tenant_id == tenant_id)
        nodes = list(await s.scalars(stmt))
        racks: dict[int, str] = {i: n for i, n in await s.execute(select(Rack.id, Rack.name))}
        tenants: dict[int, str] = {i: n for i, n in await s.execute(select(Tenant.id, Tenant.name))}
    groups: dict[str, list[str]] = {}
    hostvars: dict[str, dict[str, Any]] = {}
    for node in nodes:
        rack = racks.get(node.rack_id) if node.rack_id is not None else None
        tenant = tenants.get(node.tenant_id) if node.tenant_id is not None else None
        names = [group("state", node.state)]
        if rack:
            names.append(group("rack", rack))
        if tenant:
            names.append(group("tenant", tenant))
        for g in names:
            groups.setdefault(g, []).append(node.name)
        address = next((n.ip for n in node.nics if n.ip and n.pxe), None) or next(
            (n.ip for n in node.nics if n.ip), None
        )
        hv: dict[str, Any] = {
            "provisiond_id": node.id,
            "provisiond_state": node.state,
            "provisiond_rack": rack,
            "provisiond_unit": node.unit,
            "provisiond_tenant": tenant,
            "provisiond_power": node.power_state,
        }
        if address:
            hv["ansible_host"] = address
        hostvars[node.name] = hv
    out: dict[str, Any] = {g: {"hosts": hosts} for g, hosts in sorted(groups.items())}
    out["all"] = {"children": sorted(groups)}
    out["_meta"] = {"hostvars": hostvars}
    return out
