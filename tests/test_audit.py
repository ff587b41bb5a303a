"""The isolation audit against devices: a lab Arista EOS switch over SSH and an OpenSM-style
partitions file (a reload command standing in for OpenSM). Two tenants, one node each; the audit
proves isolation, then catches a port moved by hand on the switch and a GUID added by hand to the
other tenant's partition, naming the exact port and GUID."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from provisiond.api.app import create_app
from provisiond.api.keys import SERVICES
from provisiond.auth import create_token
from provisiond.config import load_settings
from provisiond.models import Nic, Node, Tenant
from tests.support.labswitch import LabSwitch, lab_switch
from tests.test_partitions import FakeSm, G, Ib

N1_GUID, N2_GUID = G[0], G[1]


@pytest.fixture
def eos(tmp_path: Path) -> Iterator[LabSwitch]:
    with lab_switch("arista_eos", tmp_path) as sw:
        yield sw


@pytest.fixture
async def site(tmp_path: Path, eos: LabSwitch) -> AsyncIterator[Ib]:
    sm = FakeSm(tmp_path)
    settings = load_settings(
        None,
        env={},
        overrides={
            "data_dir": str(tmp_path / "data"),
            "database_url": f"sqlite:///{tmp_path / 'data' / 'p.db'}",
            "switches": {"enabled": False},
            "fabrics": {
                "interval": 0.1,
                "drift_interval": 3600,
                "opensm_dirs": [str(sm.dir)],
                "reload_commands": [[str(sm.script)]],
            },
            "drivers": {"netmiko": {"read_timeout": 10, "connect_tries": 1}},
        },
    )
    app = create_app(settings)
    async with TestClient(TestServer(app)) as client:
        token, _ = await create_token(app[SERVICES].db, role="admin", name="t-admin")
        yield Ib(client, token, sm)


async def call(site: Ib, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
    status, out = await site.call(method, path, body)
    assert status == expect, out
    return out


async def test_the_audit_proves_isolation_and_catches_hand_changes(
    site: Ib, eos: LabSwitch
) -> None:
    await call(site, "POST", "/v1/switches", {
        "name": "leaf1", "driver": "arista_eos", "address": "127.0.0.1", "port": eos.port,
        "username": eos.username, "password": eos.password, "allowed_vlans": "100-199",
        "provisioning_vlan": 100, "quarantine_vlan": 199,
    }, expect=201)  # fmt: skip
    await site.add_fabric(pkey_range="0x0100-0x01ff")
    acme = await call(site, "POST", "/v1/tenants", {"name": "acme"}, expect=201)
    globex = await call(site, "POST", "/v1/tenants", {"name": "globex"}, expect=201)
    p1, p2 = eos.port_name(1), eos.port_name(2)
    db = site.client.app[SERVICES].db
    async with db.write() as s:
        ids = {t.name: t.id for t in await s.scalars(select(Tenant))}
        for name, tenant, port, guid in (
            ("n1", "acme", p1, N1_GUID),
            ("n2", "globex", p2, N2_GUID),
        ):
            node = Node(
                name=name, tenant_id=ids[tenant], bmc_driver="ipmi", bmc_address="127.0.0.1"
            )
            s.add(node)
            await s.flush()
            s.add(Nic(node_id=node.id, kind="ethernet", mac=f"52:54:00:00:00:{port[-1]}0",
                      switch_name="leaf1", switch_port=port))  # fmt: skip
            s.add(Nic(node_id=node.id, kind="infiniband", guid=guid))
    # each node's port and GUID in its tenant's networks
    await call(
        site,
        "PUT",
        f"/v1/switches/leaf1/ports/{p1}",
        {"mode": "access", "vlan": acme["vlan"]},
        expect=202,
    )
    await call(
        site,
        "PUT",
        f"/v1/switches/leaf1/ports/{p2}",
        {"mode": "access", "vlan": globex["vlan"]},
        expect=202,
    )
    applied = await call(site, "POST", "/v1/switches/leaf1/apply")
    assert sorted(applied["applied"]) == sorted([p1, p2]), applied
    for tenant, guid in ((acme, N1_GUID), (globex, N2_GUID)):
        pkey = tenant["pkeys"][0]["pkey"]
        await call(site, "PUT", f"/v1/fabrics/ib0/partitions/{pkey}",
                   {"name": f"tenant_{tenant['name']}", "tenant": tenant["name"],
                    "members": {guid: "full"}})  # fmt: skip
    await site.settled()

    clean = await call(site, "GET", "/v1/fabric/audit")
    assert clean["ok"] is True, clean["violations"]
    assert clean["checked"] == {
        "switches": 1,
        "ports": 2,
        "fabrics": 1,
        "partitions": 2,
        "guids": 2,
    }
    assert clean["statement"].startswith("Isolation holds: 2 ports on 1 switches")

    # someone moves n2's port into acme's VLAN on the switch's CLI
    conn = await asyncio.to_thread(eos.connect)
    try:
        await asyncio.to_thread(conn.enable)
        await asyncio.to_thread(
            conn.send_config_set, [f"interface {p2}", f"switchport access vlan {acme['vlan']}"]
        )
    finally:
        await asyncio.to_thread(conn.disconnect)
    # and someone adds n2's GUID to acme's partition by hand
    text = site.sm.file.read_text()
    site.sm.file.write_text(
        text.replace(f"  {N1_GUID}=full ;", f"  {N1_GUID}=full,\n  {N2_GUID}=full ;")
    )

    caught = await call(site, "GET", "/v1/fabric/audit")
    assert caught["ok"] is False
    found = {(v["kind"], v["where"]) for v in caught["violations"]}
    assert ("outsider", f"switch leaf1 port {p2}") in found, caught["violations"]
    assert ("not-as-desired", f"switch leaf1 port {p2}") in found
    assert ("outsider", f"fabric ib0 GUID {N2_GUID}") in found
    assert ("two-tenants", f"fabric ib0 GUID {N2_GUID}") in found
    outsider = next(v for v in caught["violations"] if v["where"] == f"switch leaf1 port {p2}"
                    and v["kind"] == "outsider")  # fmt: skip
    assert "tenant acme's network" in outsider["detail"] and "node n2" in outsider["detail"]
    assert "in tenant globex" in outsider["detail"]
    _, events = await site.call("GET", "/v1/events?kind=audit.violation")
    assert events["items"][0]["data"]["digest"] == caught["digest"]

    # put things back: the drifted port through provisiond, the partition file by the reconciler
    await call(site, "POST", "/v1/switches/leaf1/drift")
    await call(site, "POST", "/v1/switches/leaf1/apply?retry=true")
    await call(site, "POST", "/v1/fabrics/ib0/apply")
    again = await call(site, "GET", "/v1/fabric/audit")
    assert again["ok"] is True, again["violations"]
