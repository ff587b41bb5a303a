"""The REST API over HTTP: auth and roles, problem+json, enrollment and its bad inputs, listing,
pagination, write-only secrets, OpenAPI. Every bad input must leave the database unchanged."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi
from sqlalchemy import func, select, text

from provisiond.models import ApiToken, Event, Nic, Node, Rack, Tenant
from tests.conftest import Api, head_revision, rack_yaml

GOOD = rack_yaml(n=4)


async def snapshot(api: Api) -> dict[str, Any]:
    """Everything enrollment may write, to prove a refused request wrote nothing."""
    async with api.services.db.read() as s:
        out: dict[str, Any] = {}
        for model in (Rack, Node, Nic, Event):
            out[model.__tablename__] = await s.scalar(select(func.count()).select_from(model))
        rows = await s.execute(
            text(
                "SELECT name, unit, bmc_address, bmc_port, bmc_password_enc "
                "FROM nodes ORDER BY name"
            )
        )
        out["nodes_rows"] = [tuple(r) for r in rows]
        nics = await s.execute(text("SELECT node_id, mac, guid FROM nics ORDER BY mac, guid"))
        out["nics_rows"] = [tuple(r) for r in nics]
    return out


async def problem(resp: Any, status: int) -> dict[str, Any]:
    body = await resp.json(content_type=None)
    assert resp.status == status, body
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert body["status"] == status and body["type"].startswith("https://")
    assert body["detail"]
    return dict(body)


# ------------------------------------------------------------------ health, auth, openapi


async def test_health_endpoints_need_no_token(api: Api) -> None:
    r = await api.client.get("/healthz")
    assert r.status == 200 and (await r.json())["status"] == "ok"
    r = await api.client.get("/readyz")
    body = await r.json()
    assert r.status == 200, body
    assert body["checks"]["schema"] == f"ok ({head_revision()})"


async def test_openapi_is_valid_3_1_and_describes_the_surface(api: Api) -> None:
    r = await api.client.get("/v1/openapi.json")
    doc = await r.json()
    assert doc["openapi"] == "3.1.0"
    validate_openapi(doc)
    assert "post" in doc["paths"]["/v1/nodes/{node}/actions/{action}"]
    assert "/v1/racks/{rack}/enroll" in doc["paths"]
    params = {p["name"] for p in doc["paths"]["/v1/nodes"]["get"]["parameters"]}
    assert {"state", "rack", "tenant", "maintenance", "limit", "cursor"} <= params


async def test_responses_match_the_openapi_schemas(api: Api) -> None:
    doc = await (await api.client.get("/v1/openapi.json")).json()
    assert (await api.enroll(GOOD)).status == 201

    def check(path: str, method: str, status: str, body: Any) -> None:
        schema = doc["paths"][path][method]["responses"][status]["content"]
        schema = next(iter(schema.values()))["schema"]
        resolver_doc = {**schema, "components": doc["components"]}
        jsonschema.validate(body, resolver_doc)

    r = await api.req("GET", "/v1/nodes")
    check("/v1/nodes", "get", "200", await r.json())
    r = await api.req("GET", "/v1/nodes/r01n01")
    check("/v1/nodes/{node}", "get", "200", await r.json())
    r = await api.req("POST", "/v1/nodes/r01n01/actions/power-on", json={})
    check("/v1/nodes/{node}/actions/{action}", "post", "202", await r.json())
    r = await api.req("GET", "/v1/nodes/r01n01/actions/nope")
    r = await api.req("POST", "/v1/nodes/r01n01/actions/nope", json={})
    check("/v1/nodes/{node}/actions/{action}", "post", "default", await r.json())


async def test_missing_and_bad_tokens_are_401(api: Api) -> None:
    r = await api.client.get("/v1/nodes")
    p = await problem(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "missing bearer token" in p["detail"]
    r = await api.client.get("/v1/nodes", headers={"Authorization": "Bearer pvd_nope"})
    await problem(r, 401)
    r = await api.client.get("/v1/nodes", headers={"Authorization": "Basic abc"})
    await problem(r, 401)


async def test_tokens_are_stored_hashed(api: Api) -> None:
    async with api.services.db.read() as s:
        hashes = (await s.scalars(select(ApiToken.token_hash))).all()
    for tok in api.tokens.values():
        assert tok not in hashes
        assert all(tok[4:] not in h for h in hashes)


async def test_wrong_role_is_403(api: Api) -> None:
    await problem(await api.enroll(GOOD, role="tenant"), 403)
    await problem(await api.enroll(GOOD, role="scheduler"), 403)
    await problem(await api.req("GET", "/v1/racks", role="tenant"), 403)
    assert (await api.enroll(GOOD, role="operator")).status == 201
    p = await problem(
        await api.req("POST", "/v1/nodes/r01n01/actions/manage", role="scheduler", json={}), 403
    )
    assert "scheduler" in p["detail"]
    # a scheduler token calls the hooks only (docs/slurm.md): not the node actions, not reads
    for method, path in (("POST", "/v1/nodes/r01n01/actions/power-on"), ("GET", "/v1/nodes"),
                         ("GET", "/v1/racks"), ("GET", "/v1/events")):  # fmt: skip
        r = await api.req(method, path, role="scheduler", json={} if method == "POST" else None)
        assert r.status == 403, (path, await r.text())
    assert (await api.req("GET", "/v1/whoami", role="scheduler")).status == 200


async def test_tenant_token_sees_only_its_nodes(api: Api) -> None:
    assert (await api.enroll(GOOD)).status == 201
    async with api.services.db.write() as s:
        acme = (await s.scalars(select(Tenant).where(Tenant.name == "acme"))).one()
        n1 = (await s.scalars(select(Node).where(Node.name == "r01n01"))).one()
        n1.tenant_id = acme.id
    r = await api.req("GET", "/v1/nodes", role="tenant")
    assert [n["name"] for n in (await r.json())["items"]] == ["r01n01"]
    r = await api.req("GET", "/v1/nodes", role="tenant2")
    assert (await r.json())["items"] == []
    assert (await api.req("GET", "/v1/nodes/r01n01", role="tenant")).status == 200
    # another tenant's node, or nobody's node, does not exist for a tenant token: 404, not 403
    await problem(await api.req("GET", "/v1/nodes/r01n01", role="tenant2"), 404)
    await problem(await api.req("GET", "/v1/nodes/r01n02", role="tenant"), 404)
    await problem(
        await api.req("POST", "/v1/nodes/r01n02/actions/power-on", role="tenant", json={}), 404
    )
    r = await api.req("POST", "/v1/nodes/r01n01/actions/power-on", role="tenant", json={})
    op = await r.json()
    assert r.status == 202, op
    assert (await api.req("GET", f"/v1/operations/{op['id']}", role="tenant")).status == 200
    await problem(await api.req("GET", f"/v1/operations/{op['id']}", role="tenant2"), 404)
    await problem(
        await api.req("POST", "/v1/nodes/r01n01/actions/manage", role="tenant", json={}), 403
    )
    r = await api.req("GET", "/v1/events", role="tenant2")
    assert (await r.json())["items"] == []


# ------------------------------------------------------------------ enrollment


async def test_enroll_is_idempotent_and_reports_updates(api: Api) -> None:
    r = await api.enroll(GOOD)
    body = await r.json()
    assert r.status == 201 and body["created"] == [f"r01n{i:02d}" for i in range(1, 5)]
    before = await snapshot(api)
    r = await api.enroll(GOOD)
    body = await r.json()
    assert r.status == 200 and body["changed"] is False
    assert "nothing changed" in body["summary"]
    assert await snapshot(api) == before
    changed = GOOD.replace("password: secret}", "password: n3w}", 1).replace(
        '"52:54:00:01:00:02"', '"52:54:00:01:00:99"'
    )
    r = await api.enroll(changed)
    body = await r.json()
    assert r.status == 201
    assert body["updated"] == [
        {"name": "r01n01", "changes": ["bmc.password"]},
        {"name": "r01n02", "changes": ["nics"]},
    ]
    assert sorted(body["unchanged"]) == ["r01n03", "r01n04"]
    r = await api.req("GET", "/v1/nics", params={"mac": "52-54-00-01-00-99"})
    assert [n["node"] for n in (await r.json())["items"]] == ["r01n02"]


async def test_enroll_swaps_units_and_keeps_nodes_not_in_file(api: Api) -> None:
    assert (await api.enroll(GOOD)).status == 201
    swapped = (
        GOOD.replace("unit: 1\n", "unit: X\n")
        .replace("unit: 2\n", "unit: 1\n")
        .replace("unit: X\n", "unit: 2\n")
    )
    lines = swapped.splitlines()
    # drop r01n04 from the file: it is kept and listed
    cut = lines.index("  - name: r01n04")
    swapped = "\n".join(lines[:cut]) + "\n"
    r = await api.enroll(swapped)
    body = await r.json()
    assert r.status == 201, body
    assert {u["name"] for u in body["updated"]} == {"r01n01", "r01n02"}
    assert body["not_in_file"] == ["r01n04"]
    r = await api.req("GET", "/v1/racks/r01")
    units = {u["node"]: u["unit"] for u in (await r.json())["units"]}
    assert units == {"r01n01": 2, "r01n02": 1, "r01n03": 3, "r01n04": 4}


async def test_enroll_json_and_csv(api: Api) -> None:
    doc = {
        "rack": "r07",
        "nodes": [
            {
                "name": "j1",
                "unit": 10,
                "bmc": {
                    "driver": "redfish",
                    "address": "bmc-j1.example",
                    "username": "root",
                    "password": "calvin",
                },
                "nics": [{"mac": "AA:BB:CC:00:00:01", "kind": "ethernet", "pxe": True}],
            }
        ],
    }
    r = await api.enroll(json.dumps(doc, indent=2), rack="r07", ctype="application/json")
    assert r.status == 201, await r.text()
    csv_text = (Path(__file__).parents[1] / "examples" / "rack-r02.csv").read_text()
    r = await api.enroll(csv_text, rack="r02", ctype="text/csv")
    body = await r.json()
    assert r.status == 201, body
    assert len(body["created"]) == 4
    n = await (await api.req("GET", "/v1/nodes/r02n01")).json()
    assert {nic["kind"] for nic in n["nics"]} == {"ethernet", "infiniband"}


async def test_dry_run_writes_nothing(api: Api) -> None:
    before = await snapshot(api)
    r = await api.enroll(GOOD, dry_run="true")
    body = await r.json()
    assert r.status == 200 and body["dry_run"] is True and len(body["created"]) == 4
    assert await snapshot(api) == before


BAD_CASES = {
    "malformed MAC": (
        GOOD.replace('"52:54:00:01:00:03"', '"52:54:00:01:00:G3"'),
        422,
        "nodes[2].nics[0].mac",
        19,
        "not a MAC address",
    ),
    "duplicate MAC across nodes": (
        GOOD.replace('"52:54:00:01:00:03"', '"52:54:00:01:00:01"'),
        422,
        "nodes[2].nics[0].mac",
        19,
        "MAC also on node r01n01",
    ),
    "unknown rack unit": (
        GOOD.replace("unit: 4\n", "unit: 43\n"),
        422,
        "nodes[3].unit",
        22,
        "does not exist in rack r01",
    ),
    "missing credentials": (
        rack_yaml(n=4, driver="ipmi").replace(
            "port: 7002, username: admin, password: secret}", "port: 7002, username: admin}"
        ),
        422,
        "nodes[1].bmc.password",
        11,
        "need credentials",
    ),
    "wrong YAML type": (
        GOOD.replace("unit: 2\n", "unit: [2]\n"),
        422,
        "nodes[1].unit",
        10,
        "valid integer",
    ),
    "unknown field": (
        GOOD.replace("    unit: 3\n", "    unit: 3\n    colour: blue\n"),
        422,
        "nodes[2].colour",
        17,
        "Extra inputs are not permitted",
    ),
    "broken YAML": ("rack: r01\nnodes:\n  - name: [x\n", 422, "(file)", None, ""),
    "rack mismatch": (GOOD.replace("rack: r01", "rack: r09"), 422, "rack", 1, "r09"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
async def test_bad_rack_files_are_refused_with_the_place(api: Api, case: str) -> None:
    text, status, field, line, words = BAD_CASES[case]
    assert (
        await api.enroll(rack_yaml(rack="r05", n=2, port0=7100, mac_block=5), rack="r05")
    ).status == 201
    before = await snapshot(api)
    p = await problem(await api.enroll(text), status)
    hits = [e for e in p["errors"] if e["field"] == field]
    assert hits, p["errors"]
    if line is not None:
        assert hits[0]["line"] == line, hits
    assert words in hits[0]["message"] + str(hits[0].get("value")), hits
    assert await snapshot(api) == before


async def test_conflicts_with_inventory_are_refused(api: Api) -> None:
    assert (
        await api.enroll(rack_yaml(rack="r05", n=2, port0=7100, mac_block=1), rack="r05")
    ).status == 201
    before = await snapshot(api)
    # r01's nodes reuse r05's MACs (mac_block 1): duplicate MAC across nodes of two racks
    p = await problem(await api.enroll(GOOD), 422)
    fields = {e["field"] for e in p["errors"]}
    assert "nodes[0].nics[0].mac" in fields and "nodes[1].nics[0].mac" in fields
    assert any("already belongs to node r05n01" in e["message"] for e in p["errors"])
    # the same node name in another rack
    other = rack_yaml(rack="r01", n=1, port0=7200, mac_block=9).replace("r01n01", "r05n01")
    p = await problem(await api.enroll(other), 422)
    assert "already enrolled in rack r05" in p["errors"][0]["message"]
    assert await snapshot(api) == before


async def test_ten_megabyte_body_is_413(api: Api) -> None:
    before = await snapshot(api)
    big = "# " + "x" * (10 * 1024 * 1024) + "\n" + GOOD
    p = await problem(await api.enroll(big), 413)
    assert "max_body_bytes" in p["detail"]
    assert await snapshot(api) == before


async def test_unknown_json_fields_and_query_params_are_422(api: Api) -> None:
    assert (await api.enroll(GOOD)).status == 201
    p = await problem(
        await api.req("POST", "/v1/nodes/r01n01/actions/maintenance-on", json={"reson": "typo"}),
        422,
    )
    assert p["errors"][0]["field"] == "reson"
    p = await problem(await api.req("GET", "/v1/nodes", params={"stat": "enrolled"}), 422)
    assert p["errors"][0]["field"] == "query.stat"
    p = await problem(await api.req("GET", "/v1/nodes", params={"state": "broken"}), 422)
    assert p["errors"][0]["field"] == "query.state"
    p = await problem(await api.req("GET", "/v1/nodes", params={"cursor": "%%%"}), 422)
    r = await api.req(
        "POST",
        "/v1/nodes/r01n01/actions/manage",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    await problem(r, 400)
    p = await problem(await api.req("PATCH", "/v1/nodes/r01n01", json={"state": "active"}), 422)
    assert p["errors"][0]["field"] == "state"


# ------------------------------------------------------------------ listing


async def test_list_filters_and_cursor_pagination(api: Api) -> None:
    assert (
        await api.enroll(rack_yaml(rack="ra", n=30, port0=7000, mac_block=1), rack="ra")
    ).status == 201
    assert (
        await api.enroll(rack_yaml(rack="rb", n=25, port0=7100, mac_block=2), rack="rb")
    ).status == 201
    r = await api.req("POST", "/v1/nodes/rbn03/actions/maintenance-on", json={"reason": "psu"})
    assert r.status == 202
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params = {"limit": "7", "state": "enrolled"}
        if cursor:
            params["cursor"] = cursor
        page = await (await api.req("GET", "/v1/nodes", params=params)).json()
        seen += [n["name"] for n in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 55 and seen == sorted(seen) and len(set(seen)) == 55
    page = await (await api.req("GET", "/v1/nodes", params={"rack": "rb", "limit": "100"})).json()
    assert len(page["items"]) == 25 and page["next_cursor"] is None
    page = await (await api.req("GET", "/v1/nodes", params={"maintenance": "true"})).json()
    assert [n["name"] for n in page["items"]] == ["rbn03"]
    assert page["items"][0]["maintenance_reason"] == "psu"
    await problem(await api.req("GET", "/v1/nodes", params={"rack": "nope"}), 404)
    page = await (await api.req("GET", "/v1/nodes", params={"tenant": "acme"})).json()
    assert page["items"] == []


# ------------------------------------------------------------------ secrets


async def test_bmc_passwords_are_encrypted_and_write_only(api: Api, tmp_path: Any) -> None:
    assert (await api.enroll(GOOD)).status == 201
    n = await (await api.req("GET", "/v1/nodes/r01n01")).json()
    assert n["bmc"]["password_set"] is True
    assert "secret" not in json.dumps(n)
    async with api.services.db.read() as s:
        enc = (await s.scalars(select(Node.bmc_password_enc))).all()
        evs = (await s.scalars(select(Event.data))).all()
    assert all(e and "secret" not in e for e in enc)
    assert api.services.box.decrypt(enc[0]) == "secret"
    assert "secret" not in json.dumps(evs)
    key_file = api.services.settings.key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_replaced_secret_key_is_reported_and_healed_by_reenrolling(api: Api) -> None:
    from cryptography.fernet import Fernet

    from provisiond.crypto import SecretBox

    assert (await api.enroll(GOOD)).status == 201
    r = await api.client.get("/readyz")
    assert (await r.json())["checks"]["secrets"] == "ok"
    other = SecretBox(Fernet.generate_key())
    api.services.box = other
    api.services.engine.box = other
    r = await api.client.get("/readyz")
    body = await r.json()
    assert r.status == 503 and "cannot decrypt" in body["checks"]["secrets"]
    # an operation on such a node fails cleanly, naming the cause, not "internal error"
    r = await api.req("POST", "/v1/nodes/r01n01/actions/power-on", json={})
    op = await r.json()
    for _ in range(200):
        op = await (await api.req("GET", f"/v1/operations/{op['id']}")).json()
        if op["state"] == "failed":
            break
        await asyncio.sleep(0.05)
    assert op["state"] == "failed" and "cannot be decrypted" in op["error"]
    assert "internal error" not in op["error"]
    # re-enrolling the rack file stores the passwords under the current key
    r = await api.enroll(GOOD)
    body = await r.json()
    assert r.status == 201, body
    assert {u["name"] for u in body["updated"]} == {f"r01n{i:02d}" for i in range(1, 5)}
    assert all(u["changes"] == ["bmc.password"] for u in body["updated"])
    assert (await api.client.get("/readyz")).status == 200


async def test_page_size_limits_and_newest_events(api: Api) -> None:
    assert (await api.enroll(GOOD)).status == 201
    p = await problem(await api.req("GET", "/v1/nodes", params={"limit": "5000"}), 422)
    assert "api.page_size_max" in p["errors"][0]["message"]
    page = await (await api.req("GET", "/v1/nodes")).json()
    assert len(page["items"]) == 4
    for reason in ("a", "b", "c"):
        await api.req("POST", "/v1/nodes/r01n01/actions/maintenance-on", json={"reason": reason})
    r = await api.req(
        "GET",
        "/v1/nodes/r01n01/events",
        params={"newest": "true", "limit": "2", "kind": "operation"},
    )
    items = (await r.json())["items"]
    assert len(items) == 2 and items[0]["id"] < items[1]["id"]
    newest = await (
        await api.req("GET", "/v1/events", params={"newest": "true", "limit": "1"})
    ).json()
    everything = await (await api.req("GET", "/v1/events", params={"limit": "5000"})).json()
    assert newest["items"][0]["id"] == everything["items"][-1]["id"]


async def test_allowed_actions_honour_flags_and_started_at_is_set(api: Api) -> None:
    assert (await api.enroll(GOOD)).status == 201
    r = await api.req("PATCH", "/v1/nodes/r01n01", json={"retired": True})
    assert r.status == 200
    async with api.services.db.write() as s:
        n = (await s.scalars(select(Node).where(Node.name == "r01n01"))).one()
        n.state = "manageable"
    node = await (await api.req("GET", "/v1/nodes/r01n01")).json()
    assert "provide" not in node["allowed_actions"] and "inspect" in node["allowed_actions"]
    op = await (await api.req("POST", "/v1/nodes/r01n02/actions/power-on", json={})).json()
    for _ in range(200):
        op = await (await api.req("GET", f"/v1/operations/{op['id']}")).json()
        if op["state"] == "succeeded":
            break
        await asyncio.sleep(0.05)
    assert op["state"] == "succeeded" and op["started_at"] is not None


async def test_json_bodies_are_strict(api: Api) -> None:
    assert (await api.enroll(GOOD)).status == 201
    p = await problem(await api.req("PATCH", "/v1/nodes/r01n01", json={"retired": 0}), 422)
    assert p["errors"][0]["field"] == "retired"
    p = await problem(await api.req("PATCH", "/v1/nodes/r01n01", json={"boot_mode": "efi"}), 422)
    p = await problem(
        await api.req("POST", "/v1/nodes/r01n01/actions/maintenance-on", json={"reason": 5}), 422
    )
    assert p["errors"][0]["field"] == "reason"
