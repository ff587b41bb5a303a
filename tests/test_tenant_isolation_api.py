"""A tenant token against every endpoint, aimed at another tenant's objects: 403 or 404 (never
a hint that the object exists), lists without the other tenant's objects, and nothing changed."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select, update

from provisiond.api.app import create_app  # noqa: F401  (the app's routes are read below)
from provisiond.api.fabric_routes import fabric_routes
from provisiond.api.firmware_routes import firmware_routes
from provisiond.api.routes import v1_routes
from provisiond.api.switch_routes import switch_routes
from provisiond.models import (
    Allocation,
    ApiToken,
    FabricPartition,
    Node,
    Operation,
    PortBinding,
    Tenant,
)
from tests.conftest import Api, rack_yaml

WATCHED = {
    # what a tenant must never change (the engine and the power loop move the rest meanwhile)
    Node: ("name", "tenant_id", "allocation_id", "maintenance", "protected", "retired",
           "boot_mode", "image_id"),
    Allocation: ("id", "tenant_id", "state", "count"),
    Tenant: ("name", "vlan", "state"),
    FabricPartition: ("fabric_id", "pkey", "name", "tenant_id", "members", "state"),
    PortBinding: ("switch_id", "port", "desired"),
    Operation: ("id", "kind", "node_id", "params"),
    ApiToken: ("name", "role", "tenant_id"),
}  # fmt: skip


async def snapshot(api: Api) -> str:
    async with api.services.db.read() as s:
        rows: dict[str, Any] = {}
        for model, cols in WATCHED.items():
            rows[model.__tablename__] = sorted(
                json.dumps([getattr(r, c) for c in cols], default=str)
                for r in await s.scalars(select(model))
            )
    return json.dumps(rows, sort_keys=True)


async def test_a_tenant_token_cannot_reach_another_tenants_objects(api: Api) -> None:
    r = await api.enroll(rack_yaml(n=2))
    assert r.status == 201
    async with api.services.db.write() as s:
        await s.execute(update(Node).values(state="available"))
    r = await api.req("POST", "/v1/images", json={"name": "rocky9", "kernel": "http://x/k"})
    assert r.status == 201
    for t in ("acme", "globex"):
        assert (await api.req("POST", "/v1/tenants", json={"name": t})).status in (200, 201)
    r = await api.req("POST", "/v1/tenants/acme/allocations", json={"count": 1, "image": "rocky9"})
    alloc = await r.json()
    assert r.status == 201, alloc
    acme_node = alloc["nodes"][0]["name"]
    async with api.services.db.read() as s:
        op_id = await s.scalar(select(Operation.id).limit(1))
    values = {
        "node": acme_node, "id": alloc["id"], "tenant": "acme", "op": op_id, "rack": "r01",
        "fabric": "ib0", "switch": "leaf1", "port": "Ethernet1", "pkey": "0x0100",
        "action": "reboot",
    }  # fmt: skip
    before = await snapshot(api)
    leaks = []
    seen: dict[int, int] = {}
    for route in [*v1_routes(), *switch_routes(), *fabric_routes(), *firmware_routes()]:
        if route.roles is None:
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), "x")), route.path)
        body = {} if route.method in ("POST", "PUT", "PATCH") else None
        r = await api.req(route.method, path, role="tenant2", json=body)
        text = await r.text()
        seen[r.status] = seen.get(r.status, 0) + 1
        if r.status in (403, 404):
            continue
        if r.status in (400, 422) and "{" in route.path:
            # refused on its input before anything else: must not name acme's object either
            if acme_node in text or alloc["id"] in text:
                leaks.append((route.method, route.path, r.status, text[:200]))
            continue
        named = acme_node in text or alloc["id"] in text or "acme" in text
        if route.method != "GET" or named:
            leaks.append((route.method, route.path, r.status, text[:200]))
    assert leaks == [], leaks
    # the tenant-scoped endpoints answered 404 (existence not leaked), the rest 403
    assert seen.get(404, 0) >= 6 and seen.get(403, 0) >= 30, seen
    assert await snapshot(api) == before
