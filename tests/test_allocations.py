"""Allocations: nodes picked by constraints and spread across racks, reserved atomically (50
concurrent HTTP requests for overlapping nodes never share one), deployed, released through
cleaning back to available; a tenant token reaches only its own allocations."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
from sqlalchemy import select, update

from provisiond.models import Node, Operation
from tests.conftest import Api, rack_yaml


async def setup(api: Api, racks: int = 2, per_rack: int = 6) -> None:
    for r in range(1, racks + 1):
        resp = await api.enroll(
            rack_yaml(rack=f"r0{r}", n=per_rack, port0=7000 + 100 * r, mac_block=r), rack=f"r0{r}"
        )
        assert resp.status == 201, await resp.text()
    async with api.services.db.write() as s:
        await s.execute(update(Node).values(state="available"))
    for tenant in ("acme", "globex"):
        r = await api.req("POST", "/v1/tenants", json={"name": tenant})
        assert r.status in (200, 201), await r.text()
    r = await api.req("POST", "/v1/images", json={"name": "rocky9", "kernel": "http://x/vmlinuz"})
    assert r.status == 201, await r.text()


async def allocate(api: Api, tenant: str, count: int, role: str = "admin", **c: Any) -> Any:
    r = await api.req("POST", f"/v1/tenants/{tenant}/allocations", role=role,
                      json={"count": count, "image": "rocky9", "constraints": c})  # fmt: skip
    return r.status, await r.json()


async def test_spread_across_racks_and_deployed(api: Api) -> None:
    await setup(api)
    status, out = await allocate(api, "acme", 4)
    assert status == 201, out
    racks = Counter(n["name"][:3] for n in out["nodes"])
    assert racks == {"r01": 2, "r02": 2}
    assert set(out["operations"]) == {n["name"] for n in out["nodes"]}
    status, out = await allocate(api, "globex", 3, racks=["r02"], spread=False)
    assert status == 201 and {n["name"][:3] for n in out["nodes"]} == {"r02"}
    status, out = await allocate(api, "globex", 50)
    assert status == 409 and out["available"] == 5, out


async def test_fifty_concurrent_requests_never_share_a_node(api: Api) -> None:
    await setup(api, racks=2, per_rack=10)
    url = str(api.client.make_url("/"))
    async with aiohttp.ClientSession() as http:

        async def one(i: int) -> tuple[int, Any]:
            tenant = ("acme", "globex")[i % 2]
            resp = await http.post(
                f"{url}v1/tenants/{tenant}/allocations",
                headers=api.h("admin"),
                json={"count": 1 + i % 3, "image": "rocky9"},
            )
            return resp.status, await resp.json()

        results = await asyncio.gather(*(one(i) for i in range(50)))
    granted = [out for status, out in results if status == 201]
    refused = [out for status, out in results if status != 201]
    assert all(s in (201, 409) for s, _ in results), [s for s, _ in results]
    names = [n["name"] for out in granted for n in out["nodes"]]
    assert len(names) == len(set(names)), "a node was given twice"
    assert sum(out["count"] for out in granted) == len(names) <= 20
    assert refused and all("available node" in out["detail"] or "taken" in out["detail"]
                           for out in refused)  # fmt: skip
    async with api.services.db.read() as s:
        held = list(
            await s.scalars(select(Node.allocation_id).where(Node.allocation_id.is_not(None)))
        )
    assert Counter(held) == Counter({out["id"]: out["count"] for out in granted})


async def test_release_and_tenant_scope(api: Api) -> None:
    await setup(api)
    status, mine = await allocate(api, "acme", 2, role="tenant")  # the tenant token is acme's
    assert status == 201, mine
    status, other = await allocate(api, "globex", 1)
    assert status == 201
    # acme's token cannot see or release globex's allocation, nor allocate for globex
    r = await api.req("GET", f"/v1/allocations/{other['id']}", role="tenant")
    assert r.status == 404
    r = await api.req("DELETE", f"/v1/allocations/{other['id']}", role="tenant")
    assert r.status == 404
    status, out = await allocate(api, "globex", 1, role="tenant")
    assert status == 404, out
    r = await api.req("POST", "/v1/hooks/slurm/resume", role="tenant", json={"nodes": "r01n01"})
    assert r.status in (202, 403)
    # the nodes wait for their image to boot (deploy-wait): end those deploys as the boot
    # call-back would, then release
    names = [n["name"] for n in mine["nodes"]]
    for _ in range(200):
        async with api.services.db.read() as s:
            states = set(await s.scalars(select(Node.state).where(Node.name.in_(names))))
        if states == {"deploy-wait"}:
            break
        await asyncio.sleep(0.05)
    assert states == {"deploy-wait"}, states
    async with api.services.db.write() as s:
        await s.execute(update(Node).where(Node.allocation_id == mine["id"]).values(state="active"))
        await s.execute(
            update(Operation)
            .where(Operation.id.in_(list(mine["operations"].values())))
            .values(state="succeeded")
        )
    r = await api.req("DELETE", f"/v1/allocations/{mine['id']}", role="tenant")
    out = await r.json()
    assert r.status == 202 and out["state"] == "releasing", out
    assert set(out["operations"]) == {n["name"] for n in mine["nodes"]}
    # cleaning ends in available (the lab's agent would call back): the sweep frees them
    for _ in range(200):
        r = await api.req("GET", f"/v1/allocations/{mine['id']}", role="tenant")
        done = await r.json()
        if done["state"] == "released":
            break
        await asyncio.sleep(0.1)
    assert done["state"] == "released" and done["nodes"] == [], done
    async with api.services.db.read() as s:
        freed = list(await s.execute(
            select(Node.tenant_id).where(Node.name.in_([n["name"] for n in mine["nodes"]]))
        ))  # fmt: skip
    assert [t for (t,) in freed] == [None, None]


async def test_firmware_verdict_constraint(api: Api) -> None:
    from tests.test_firmware_api import EXAMPLE, import_catalog, r760, report

    await setup(api, racks=1, per_rack=6)
    await import_catalog(api, EXAMPLE.read_text())
    # r01n01: a BIOS the vendor withdrew (blocked); r01n02: an older BIOS; the rest at baseline
    bios = {"r01n01": "2.0.3", "r01n02": "2.1.5"}
    for i in range(1, 7):
        name = f"r01n0{i}"
        await report(api, name, r760(bios.get(name, "2.2.7"), "7.10.30.00"))
    verdict = {}
    for i in range(1, 7):
        r = await api.req("GET", f"/v1/nodes/r01n0{i}/firmware")
        verdict[f"r01n0{i}"] = (await r.json())["verdict"]
    assert verdict["r01n01"] == "blocked", verdict
    compliant = {n for n, v in verdict.items() if v == "compliant"}
    assert compliant and len(compliant) < 5, verdict

    status, out = await allocate(api, "acme", 6)
    assert status == 409 and out["available"] == 5 and out["firmware_excluded"] == 1, out
    assert "firmware verdict" in out["detail"], out
    status, out = await allocate(api, "acme", 1, firmware="any")
    assert status == 422 and out["errors"][0]["field"] == "constraints.firmware", out
    status, out = await allocate(api, "acme", len(compliant), firmware="compliant")
    assert status == 201, out
    assert {n["name"] for n in out["nodes"]} == compliant
    status, out = await allocate(api, "globex", 6 - 1 - len(compliant))
    assert status == 201, out
    assert "r01n01" not in {n["name"] for n in out["nodes"]}


async def test_release_while_deploying_then_delete_the_tenant(api: Api) -> None:
    """A release that finds a node still deploying cannot undeploy it then: the sweep does it
    once the deploy ends. The tenant, once empty, is deleted for good (its released
    allocations with it)."""
    await setup(api, racks=1, per_rack=2)
    status, mine = await allocate(api, "acme", 1)
    assert status == 201, mine
    name = mine["nodes"][0]["name"]
    for _ in range(200):
        async with api.services.db.read() as s:
            state = await s.scalar(select(Node.state).where(Node.name == name))
        if state == "deploy-wait":
            break
        await asyncio.sleep(0.05)
    assert state == "deploy-wait"
    r = await api.req("DELETE", f"/v1/allocations/{mine['id']}")
    out = await r.json()
    assert r.status == 202 and out["state"] == "releasing" and "busy" in out["errors"][name], out
    await api.services.engine.resume(name)  # the image booted: the deploy ends (active)
    done: dict[str, Any] = {}
    for _ in range(300):
        r = await api.req("GET", f"/v1/allocations/{mine['id']}")
        done = await r.json()
        if done["state"] == "released":
            break
        await asyncio.sleep(0.1)
    assert done["state"] == "released" and done["nodes"] == [], done
    async with api.services.db.read() as s:
        kinds = list(await s.scalars(
            select(Operation.kind).join(Node).where(Node.name == name)
            .order_by(Operation.created_at)
        ))  # fmt: skip
    assert kinds == ["deploy", "undeploy"], kinds

    r = await api.req("DELETE", "/v1/tenants/acme")
    assert r.status in (200, 202), await r.text()
    for _ in range(100):
        r = await api.req("GET", "/v1/tenants/acme")
        if r.status == 404:
            break
        await asyncio.sleep(0.1)
    assert r.status == 404, await r.text()
    r = await api.req("GET", f"/v1/allocations/{mine['id']}")
    assert r.status == 404
