"""Tenancy end to end on the lab: a lab Arista EOS switch over SSH and a partitions file signalled
as OpenSM would be. Two tenants get networks; nodes allocated to each move, as their lifecycle
goes, to the provisioning VLAN while deploying, to their tenant's VLAN and partition when
active; the audit proves isolation, catches a port moved by hand, and the release brings every
port and GUID back out of the tenants' networks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from drivers.fabric import partitions_conf as pc
from provisiond.api.app import create_app
from provisiond.api.keys import SERVICES
from provisiond.auth import create_token
from provisiond.config import load_settings
from provisiond.models import Nic, Node, Operation
from tests.conftest import FAKE_DRIVER
from tests.support.labswitch import LabSwitch, lab_switch
from tests.test_partitions import FakeSm, G, Ib


@pytest.fixture
def eos(tmp_path: Path) -> Iterator[LabSwitch]:
    with lab_switch("arista_eos", tmp_path) as sw:
        yield sw


@pytest.fixture
async def site(tmp_path: Path, eos: LabSwitch, fakebmc_dir: Path) -> AsyncIterator[Ib]:
    sm = FakeSm(tmp_path)
    settings = load_settings(
        None,
        env={},
        overrides={
            "data_dir": str(tmp_path / "data"),
            "database_url": f"sqlite:///{tmp_path / 'data' / 'p.db'}",
            "switches": {"interval": 0.2, "drift_interval": 3600},
            "fabrics": {
                "interval": 0.2,
                "drift_interval": 3600,
                "opensm_dirs": [str(sm.dir)],
                "reload_commands": [[str(sm.script)]],
            },
            "drivers": {"bmc": {"fake": FAKE_DRIVER}, "netmiko": {"read_timeout": 10}},
            "engine": {"poll_seconds": 0.1},
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


async def until(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < deadline, f"not reached: {what}"
        await asyncio.sleep(0.2)


async def test_tenants_allocate_audit_release(site: Ib, eos: LabSwitch) -> None:
    await call(site, "POST", "/v1/switches", {
        "name": "leaf1", "driver": "arista_eos", "address": "127.0.0.1", "port": eos.port,
        "username": eos.username, "password": eos.password, "allowed_vlans": "100-199",
        "provisioning_vlan": 100, "quarantine_vlan": 199,
    }, expect=201)  # fmt: skip
    await site.add_fabric(pkey_range="0x0100-0x01ff")
    acme = await call(site, "POST", "/v1/tenants", {"name": "acme"}, expect=201)
    globex = await call(site, "POST", "/v1/tenants", {"name": "globex"}, expect=201)
    await call(site, "POST", "/v1/images", {"name": "rocky9", "kernel": "http://x/k"}, expect=201)
    db = site.client.app[SERVICES].db
    ports = {f"n{i}": eos.port_name(i) for i in range(1, 5)}
    guid = {f"n{i}": G[i] for i in range(1, 5)}
    async with db.write() as s:
        for i, name in enumerate(ports, 1):
            node = Node(name=name, state="available", bmc_driver="fake",
                        bmc_address="127.0.0.1", bmc_port=7100 + i)  # fmt: skip
            s.add(node)
            await s.flush()
            s.add(Nic(node_id=node.id, kind="ethernet", mac=f"52:54:00:00:01:{i:02x}",
                      switch_name="leaf1", switch_port=ports[name]))  # fmt: skip
            s.add(Nic(node_id=node.id, kind="infiniband", guid=guid[name]))

    a = await call(site, "POST", "/v1/tenants/acme/allocations",
                   {"count": 2, "image": "rocky9"}, expect=201)  # fmt: skip
    g = await call(site, "POST", "/v1/tenants/globex/allocations",
                   {"count": 2, "image": "rocky9"}, expect=201)  # fmt: skip
    owner = {n["name"]: t for t, alloc in (("acme", a), ("globex", g)) for n in alloc["nodes"]}
    vlan = {"acme": acme["vlan"], "globex": globex["vlan"]}

    def on_switch() -> dict[str, Any]:
        conn = eos.connect()
        try:
            conn.enable()
            out = "\n".join(
                str(conn.send_command(f"show running-config interfaces {p}"))
                for p in ports.values()
            )
        finally:
            conn.disconnect()
        from drivers.switch.dialects.arista_eos import AristaEosDialect

        parsed = AristaEosDialect().parse_ports(out)
        return {n: parsed[p].vlan for n, p in ports.items()}

    # while they deploy: the provisioning VLAN
    async def provisioning() -> bool:
        return set((await asyncio.to_thread(on_switch)).values()) == {100}

    await until(provisioning, "every port on the provisioning VLAN")

    async def waiting() -> bool:
        async with db.read() as s:
            states = set(await s.scalars(select(Node.state)))
        return states == {"deploy-wait"}

    await until(waiting, "every deploy waiting for its image to boot")
    # the deploys finish (the image booted and called back): active
    async with db.write() as s:
        await s.execute(update(Node).values(state="active"))
        await s.execute(update(Operation).values(state="succeeded"))

    async def in_tenants() -> bool:
        seen = await asyncio.to_thread(on_switch)
        if seen != {n: vlan[owner[n]] for n in ports}:
            return False
        parsed = pc.parse(site.sm.file.read_text()) if site.sm.file.exists() else None
        members = {p.name: set(p.members) for p in parsed.partitions} if parsed else {}
        return members == {
            f"tenant_{t}": {guid[n] for n in ports if owner[n] == t} for t in ("acme", "globex")
        }

    await until(in_tenants, "ports in their tenant's VLAN, GUIDs in their tenant's partition")
    report = await call(site, "GET", "/v1/fabric/audit")
    assert report["ok"], report["violations"]
    assert report["checked"]["ports"] == 4 and report["checked"]["guids"] == 4

    # a port of globex moved by hand into acme's VLAN: the audit names it
    victim = next(n for n in ports if owner[n] == "globex")
    conn = await asyncio.to_thread(eos.connect)
    try:
        await asyncio.to_thread(conn.enable)
        await asyncio.to_thread(
            conn.send_config_set,
            [f"interface {ports[victim]}", f"switchport access vlan {vlan['acme']}"],
        )
    finally:
        await asyncio.to_thread(conn.disconnect)
    caught = await call(site, "GET", "/v1/fabric/audit")
    assert not caught["ok"]
    assert {v["where"] for v in caught["violations"]} == {f"switch leaf1 port {ports[victim]}"}
    assert any(v["kind"] == "outsider" and f"node {victim}" in v["detail"]
               for v in caught["violations"])  # fmt: skip
    await call(site, "POST", "/v1/switches/leaf1/drift")
    await call(site, "POST", "/v1/switches/leaf1/apply?retry=true")

    # release both: undeploy (power off, cleaning, available: the engine with the fake BMC);
    # the nodes leave their tenants only once their ports and GUIDs are out of its networks
    for alloc in (a, g):
        await call(site, "DELETE", f"/v1/allocations/{alloc['id']}", expect=202)

    async def freed() -> bool:
        async with db.read() as s:
            held = await s.scalar(select(Node.id).where(Node.tenant_id.is_not(None)).limit(1))
        return held is None

    await until(freed, "nodes out of the tenants")

    async def released() -> bool:
        if not await provisioning():
            return False
        parsed = pc.parse(site.sm.file.read_text())
        return all(not p.members for p in parsed.partitions)

    await until(released, "ports back on provisioning, partitions empty")
    for alloc in (a, g):
        done = await call(site, "GET", f"/v1/allocations/{alloc['id']}")
        assert done["state"] == "released", done
    final = await call(site, "GET", "/v1/fabric/audit")
    assert final["ok"], final["violations"]
