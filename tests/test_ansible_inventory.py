"""GET /v1/inventory/ansible: the dynamic-inventory JSON Ansible reads (--list)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from sqlalchemy import select, update

from provisiond.models import Nic, Node, Tenant
from tests.conftest import Api, rack_yaml
from tests.support.peers import missing


async def test_groups_and_hostvars(api: Api) -> None:
    r = await api.enroll(rack_yaml(n=3))
    assert r.status == 201
    async with api.services.db.write() as s:
        acme = await s.scalar(select(Tenant.id).where(Tenant.name == "acme"))
        if acme is None:
            t = Tenant(name="acme")
            s.add(t)
            await s.flush()
            acme = t.id
        await s.execute(
            update(Node).where(Node.name == "r01n02").values(tenant_id=acme, state="active")
        )
        node_id = await s.scalar(select(Node.id).where(Node.name == "r01n02"))
        await s.execute(
            update(Nic).where(Nic.node_id == node_id, Nic.pxe.is_(True)).values(ip="10.1.0.12")
        )
    r = await api.req("GET", "/v1/inventory/ansible")
    inv = await r.json()
    assert inv["rack_r01"]["hosts"] == ["r01n01", "r01n02", "r01n03"]
    assert inv["tenant_acme"]["hosts"] == ["r01n02"]
    assert inv["state_active"]["hosts"] == ["r01n02"]
    assert inv["state_enrolled"]["hosts"] == ["r01n01", "r01n03"]
    assert set(inv["all"]["children"]) == {
        "rack_r01",
        "tenant_acme",
        "state_active",
        "state_enrolled",
    }
    hv = inv["_meta"]["hostvars"]["r01n02"]
    assert hv["ansible_host"] == "10.1.0.12" and hv["provisiond_tenant"] == "acme"
    assert "ansible_host" not in inv["_meta"]["hostvars"]["r01n01"]
    # a tenant sees its own nodes only
    r = await api.req("GET", "/v1/inventory/ansible", role="tenant")
    mine = await r.json()
    assert list(mine["_meta"]["hostvars"]) == ["r01n02"]
    r = await api.req("GET", "/v1/inventory/ansible", role="tenant2")
    assert (await r.json())["_meta"]["hostvars"] == {}


async def test_ansible_reads_it(api: Api, tmp_path: Path) -> None:
    """Ansible's own ansible-inventory, through an inventory script, as a site would use it."""
    r = await api.enroll(rack_yaml(n=2))
    assert r.status == 201
    script = tmp_path / "provisiond-inventory"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = --host ] && { echo "{}"; exit 0; }\n'
        'exec curl -sf -H "Authorization: Bearer $PROVISIOND_TOKEN" '
        '"${PROVISIOND_URL%/}/v1/inventory/ansible"\n'
    )
    script.chmod(0o755)
    tool = Path(sys.executable).with_name("ansible-inventory")
    if not tool.exists():
        missing("ansible-inventory (pip install ansible-core, the test extra)")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "PROVISIOND_URL": str(api.client.make_url("/")),
        "PROVISIOND_TOKEN": api.tokens["operator"],
    }
    proc = await asyncio.create_subprocess_exec(
        str(tool), "-i", str(script), "--list", env=env, cwd=str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    seen = json.loads(out)
    assert seen["rack_r01"]["hosts"] == ["r01n01", "r01n02"]
    assert seen["_meta"]["hostvars"]["r01n01"]["provisiond_state"] == "enrolled"
