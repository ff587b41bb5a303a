"""Inventory queries and their public shapes: nodes, racks, NICs, operations, events.

Read paths only, plus node lookup for writers. The API and the engine share these so a node looks
the same everywhere; secrets never appear in any shape built here.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import selectinload

from provisiond.errors import FieldProblem, NotFound, ValidationError
from provisiond.lifecycle import NodeFlags, allowed_actions
from provisiond.models import Event, Nic, Node, Operation, Rack, Tenant


def _iso(ts: dt.datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts else None


def _looks_like_uuid(ref: str) -> bool:
    return len(ref) == 36 and ref.count("-") == 4


async def resolve_node(
    session: AsyncSession,
    ref: str,
    *,
    tenant_id: int | None = None,
    for_update: bool = False,
    with_nics: bool = False,
) -> Node:
    """A node by name or id. With ``tenant_id``, nodes of other tenants do not exist (404)."""
    # an id first; a name that merely looks like one second
    keys = (Node.id, Node.name) if _looks_like_uuid(ref) else (Node.name,)
    node = None
    for key in keys:
        stmt = select(Node).where(key == ref)
        if tenant_id is not None:
            stmt = stmt.where(Node.tenant_id == tenant_id)
        if with_nics:
            stmt = stmt.options(selectinload(Node.nics))
        if for_update:
            stmt = stmt.with_for_update()
        node = (await session.scalars(stmt)).first()
        if node is not None:
            break
    if node is None:
        raise NotFound(f"no node {ref!r}", node=ref)
    return node


def nic_dict(nic: Nic) -> dict[str, Any]:
    d: dict[str, Any] = {"id": nic.id, "kind": nic.kind, "pxe": nic.pxe}
    if nic.mac:
        d["mac"] = nic.mac
    if nic.guid:
        d["guid"] = nic.guid
    if nic.switch_name:
        d["switch"] = nic.switch_name
    if nic.switch_port:
        d["port"] = nic.switch_port
    if nic.ip:
        d["ip"] = nic.ip
    return d


def node_dict(
    node: Any,
    *,
    rack_name: str | None,
    tenant_name: str | None,
    nics: Sequence[Any] | None = None,
    detail: bool = False,
) -> dict[str, Any]:
    """The public shape of a node, from an ORM Node or a Core row with the same column names
    (listing uses rows: hydrating ORM objects cost more than the whole SQL)."""
    d: dict[str, Any] = {
        "id": node.id,
        "name": node.name,
        "rack": rack_name,
        "unit": node.unit,
        "state": node.state,
        "target_state": node.target_state,
        "maintenance": node.maintenance,
        "maintenance_reason": node.maintenance_reason,
        "fault": node.fault,
        "protected": node.protected,
        "retired": node.retired,
        "last_error": node.last_error,
        "power_state": node.power_state,
        "tenant": tenant_name,
        "bmc": {
            "driver": node.bmc_driver,
            "address": node.bmc_address,
            "port": node.bmc_port,
            "username": node.bmc_username,
            "system_id": node.bmc_system_id,
            "password_set": node.bmc_password_enc is not None,
        },
        "updated_at": _iso(node.updated_at),
        "nics": [nic_dict(n) for n in nics or ()],
    }
    if detail:
        d.update(
            {
                "unit_height": node.unit_height,
                "boot_mode": node.boot_mode,
                "boot_loader": node.boot_loader,
                "arch": node.arch,
                "power_checked_at": _iso(node.power_checked_at),
                "power_failures": node.power_failures,
                "state_entered_at": _iso(node.state_entered_at),
                "created_at": _iso(node.created_at),
                "facts": node.facts,
                "allowed_actions": list(
                    allowed_actions(
                        node.state, NodeFlags(node.maintenance, node.protected, node.retired)
                    )
                ),
            }
        )
    return d


def operation_dict(op: Operation, node_name: str | None = None) -> dict[str, Any]:
    return {
        "id": op.id,
        "kind": op.kind,
        "node": node_name,
        "node_id": op.node_id,
        "state": op.state,
        "step": op.step,
        "attempts": op.attempts,
        "error": op.error,
        "result": op.result,
        "requested_by": op.requested_by,
        "deadline": _iso(op.deadline),
        "created_at": _iso(op.created_at),
        "started_at": _iso(op.started_at),
        "finished_at": _iso(op.finished_at),
    }


def event_dict(ev: Event, node_name: str | None = None) -> dict[str, Any]:
    return {
        "id": ev.id,
        "ts": _iso(ev.ts),
        "kind": ev.kind,
        "node": node_name,
        "node_id": ev.node_id,
        "operation_id": ev.operation_id,
        "actor": ev.actor,
        "message": ev.message,
        "data": ev.data,
    }


def encode_cursor(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        name = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
        if not name:
            raise ValueError("empty cursor")
        return name
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationError(
            "bad cursor",
            [FieldProblem("cursor", "not a cursor from a previous page", value=cursor)],
        ) from None


# what the list shape shows (node_dict without detail): facts and the rest stay unread
_LIST_COLUMNS = (
    "id",
    "name",
    "unit",
    "state",
    "target_state",
    "maintenance",
    "maintenance_reason",
    "fault",
    "protected",
    "retired",
    "last_error",
    "power_state",
    "bmc_driver",
    "bmc_address",
    "bmc_port",
    "bmc_username",
    "bmc_system_id",
    "bmc_password_enc",
    "updated_at",
)


_NIC_COLUMNS = ("id", "kind", "mac", "guid", "pxe", "switch_name", "switch_port", "ip")


async def node_page(
    conn: AsyncConnection,
    *,
    state: str | None,
    rack_id: int | None,
    tenant_id: int | None,
    maintenance: bool | None,
    after: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """One page of nodes in name order, NICs included, in ONE statement (the page as a
    subquery, left-joined with its NICs): a round trip is what a loaded database server makes
    expensive, and a single statement needs no transaction around it."""
    stmt = (
        select(
            *(Node.__table__.c[name] for name in _LIST_COLUMNS),
            Rack.name.label("rack_name"),
            Tenant.name.label("tenant_name"),
        )
        .select_from(Node)
        .outerjoin(Rack, Node.rack_id == Rack.id)
        .outerjoin(Tenant, Node.tenant_id == Tenant.id)
    )
    if state is not None:
        stmt = stmt.where(Node.state == state)
    if rack_id is not None:
        stmt = stmt.where(Node.rack_id == rack_id)
    if tenant_id is not None:
        stmt = stmt.where(Node.tenant_id == tenant_id)
    if maintenance is not None:
        stmt = stmt.where(Node.maintenance == maintenance)
    if after is not None:
        stmt = stmt.where(Node.name > after)
    page = stmt.order_by(Node.name).limit(limit).subquery("page")
    nic = Nic.__table__.c
    joined = (
        select(page, *(nic[c].label(f"nic_{c}") for c in _NIC_COLUMNS))
        .select_from(page.outerjoin(Nic, nic.node_id == page.c.id))
        .order_by(page.c.name, nic.id)
    )
    out: list[dict[str, Any]] = []
    current: Any = None
    nics: list[Any] = []
    for row in await conn.execute(joined):
        if current is None or row.id != current.id:
            if current is not None:
                out.append(_row_dict(current, nics))
            current, nics = row, []
        if row.nic_id is not None:
            nics.append(SimpleNamespace(**{c: getattr(row, f"nic_{c}") for c in _NIC_COLUMNS}))
    if current is not None:
        out.append(_row_dict(current, nics))
    return out


def _row_dict(row: Any, nics: list[Any]) -> dict[str, Any]:
    return node_dict(row, rack_name=row.rack_name, tenant_name=row.tenant_name, nics=nics)
