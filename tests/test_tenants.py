"""Tenants and their networks: one VLAN on every managed switch and one P_Key per fabric, in one
transaction; deletion refused while nodes are held, keys and VLAN reserved until released."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select, update

from provisiond.api.keys import SERVICES
from provisiond.models import Node, Tenant
from tests.test_partitions import Ib, backend, ib  # noqa: F401  (the fixtures)


async def switch(ibx: Ib, name: str, allowed: str, prov: int, quar: int) -> None:
    status, out = await ibx.call("POST", "/v1/switches", {
        "name": name, "driver": "arista_eos", "address": "127.0.0.1", "port": 1,
        "username": "admin", "password": "x", "allowed_vlans": allowed,
        "provisioning_vlan": prov, "quarantine_vlan": quar,
    })  # fmt: skip
    assert status in (200, 201), out


async def test_tenants_get_a_vlan_everywhere_and_a_pkey_per_fabric(ib: Ib) -> None:  # noqa: F811
    await ib.add_fabric(pkey_range="0x0100-0x01ff")
    await switch(ib, "leaf1", "100-200", 100, 199)
    await switch(ib, "leaf2", "150-250", 150, 249)
    status, acme = await ib.call("POST", "/v1/tenants", {"name": "acme"})
    assert status == 201, acme
    assert acme["vlan"] == 151  # allowed on both, not 150 (leaf2's provisioning VLAN)
    assert acme["pkeys"] == [{"fabric": "ib0", "pkey": "0x0100", "state": "active"}]
    status, again = await ib.call("POST", "/v1/tenants", {"name": "acme"})
    assert status == 200 and again == acme
    status, globex = await ib.call("POST", "/v1/tenants", {"name": "globex", "vlan": 160})
    assert status == 201 and globex["vlan"] == 160 and globex["pkeys"][0]["pkey"] == "0x0101"
    status, out = await ib.call("POST", "/v1/tenants", {"name": "initech", "vlan": 151})
    assert status == 422 and "held by a tenant" in out["errors"][0]["message"]
    status, out = await ib.call("POST", "/v1/tenants", {"name": "initech", "vlan": 120})
    assert status == 422 and "not allowed on every switch" in out["errors"][0]["message"]
    view = await ib.settled()
    assert {p["name"]: p["tenant"] for p in view["desired"]} == {
        "tenant_acme": "acme",
        "tenant_globex": "globex",
    }


async def test_deleting_a_tenant(ib: Ib) -> None:  # noqa: F811
    await ib.add_fabric(pkey_range="0x0100-0x01ff")
    await switch(ib, "leaf1", "100-200", 100, 199)
    status, acme = await ib.call("POST", "/v1/tenants", {"name": "acme"})
    assert status == 201
    await ib.settled()
    db = ib.client.app[SERVICES].db
    async with db.write() as s:
        tid = await s.scalar(select(Tenant.id).where(Tenant.name == "acme"))
        s.add(Node(name="n1", tenant_id=tid, bmc_driver="ipmi", bmc_address="127.0.0.1"))
    status, out = await ib.call("DELETE", "/v1/tenants/acme")
    assert status == 409 and "n1" in out["detail"]
    async with db.write() as s:
        await s.execute(update(Node).where(Node.name == "n1").values(tenant_id=None))
    # the subnet manager is down: the key cannot be confirmed gone, so the tenant stays
    ib.sm.mode.write_text("fail")
    status, out = await ib.call("DELETE", "/v1/tenants/acme")
    assert status == 202 and out["state"] == "deleting", out
    status, out = await ib.call("POST", "/v1/tenants", {"name": "other", "vlan": acme["vlan"]})
    assert status == 422  # acme's VLAN is still reserved
    await asyncio.sleep(0.5)
    status, out = await ib.call("GET", "/v1/tenants/acme")
    assert status == 200 and out["pkeys"][0]["state"] == "removing"
    ib.sm.mode.write_text("ok")
    deadline = time.monotonic() + 15
    while True:
        status, out = await ib.call("GET", "/v1/tenants/acme")
        if status == 404:
            break
        assert time.monotonic() < deadline, out
        await asyncio.sleep(0.1)
    status, events = await ib.call("GET", "/v1/events?kind=tenant.deleted")
    assert events["items"][0]["data"] == {"tenant": "acme", "vlan": acme["vlan"]}
    status, out = await ib.call("POST", "/v1/tenants", {"name": "other", "vlan": acme["vlan"]})
    assert status == 201, out
