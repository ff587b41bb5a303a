"""The durable operations engine, in-process, on both backends, with the fake BMC driver."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from provisiond.models import Event, Node, Operation
from tests.conftest import Api, rack_yaml
from tests.support import fakebmc


async def wait_op(api: Api, op_id: str, timeout: float = 20.0) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = await api.req("GET", f"/v1/operations/{op_id}")
        op = await r.json()
        if op["state"] in ("succeeded", "failed"):
            return op
        await asyncio.sleep(0.05)
    raise AssertionError(f"operation {op_id} did not end in {timeout}s: {op}")


async def act(api: Api, node: str, action: str, expect: int = 202, **body: Any) -> dict[str, Any]:
    r = await api.req("POST", f"/v1/nodes/{node}/actions/{action}", json=body)
    data = await r.json()
    assert r.status == expect, data
    return data


async def node(api: Api, name: str) -> dict[str, Any]:
    r = await api.req("GET", f"/v1/nodes/{name}")
    return await r.json()


async def state_events(api: Api, name: str) -> list[str]:
    r = await api.req("GET", f"/v1/nodes/{name}/events", params={"kind": "state"})
    return [e["message"] for e in (await r.json())["items"]]


@pytest.fixture
async def rack(api: Api) -> Api:
    r = await api.enroll(rack_yaml(n=4))
    assert r.status == 201, await r.text()
    return api


async def test_manage_verifies_bmc_and_records_power(rack: Api) -> None:
    op = await act(rack, "r01n01", "manage")
    assert op["state"] == "pending" and op["kind"] == "manage"
    done = await wait_op(rack, op["id"])
    assert done["state"] == "succeeded", done
    n = await node(rack, "r01n01")
    assert n["state"] == "manageable"
    assert n["power_state"] == "off"
    assert n["facts"]["bmc"]["product"] == "FakeBMC"
    assert await state_events(rack, "r01n01") == [
        "enrolled -> verifying (manage)",
        "verifying -> manageable (done)",
    ]


async def test_second_operation_on_busy_node_is_409(rack: Api) -> None:
    fakebmc.set_behaviour("127.0.0.1:7001", delay=0.5)
    first = await act(rack, "r01n01", "manage")
    busy = await act(rack, "r01n01", "power-on", expect=409)
    assert busy["status"] == 409 and busy["operation"] == first["id"]
    assert "busy" in busy["detail"]
    await wait_op(rack, first["id"])
    # once it is over, the node takes new work
    await wait_op(rack, (await act(rack, "r01n01", "power-on"))["id"])


async def test_concurrent_requests_admit_exactly_one(rack: Api) -> None:
    fakebmc.set_behaviour("127.0.0.1:7002", delay=0.3)
    results = await asyncio.gather(
        *(rack.req("POST", "/v1/nodes/r01n02/actions/manage", json={}) for _ in range(12))
    )
    statuses = sorted(r.status for r in results)
    assert statuses.count(202) == 1, statuses
    assert statuses.count(409) == 11, statuses
    async with rack.services.db.read() as s:
        n = await s.scalar(
            select(func.count()).select_from(Operation).join(Node).where(Node.name == "r01n02")
        )
    assert n == 1


async def test_submit_many_admits_each_node_or_says_why_not(rack: Api) -> None:
    fakebmc.set_behaviour("127.0.0.1:7001", delay=0.5)
    first = await act(rack, "r01n01", "manage")
    engine = rack.services.engine
    ops, refused = await engine.submit_many(
        ["r01n01", "r01n02", "nope", "r01n03"], "manage", actor="t"
    )
    assert set(ops) == {"r01n02", "r01n03"}, (ops, refused)
    assert set(refused) == {"r01n01", "nope"}
    assert "busy" in refused["r01n01"] and "nope" in refused["nope"]
    for op in (first, *ops.values()):
        assert (await wait_op(rack, op["id"]))["state"] == "succeeded"
    # a refusal wrote nothing: r01n01 has its first operation only
    async with rack.services.db.read() as s:
        n = await s.scalar(
            select(func.count()).select_from(Operation).join(Node).where(Node.name == "r01n01")
        )
    assert n == 1


async def test_illegal_action_names_state_and_allowed_actions(rack: Api) -> None:
    p = await act(rack, "r01n01", "deploy", expect=409)
    assert p["state"] == "enrolled"
    assert "manage" in p["allowed_actions"] and "deploy" not in p["allowed_actions"]
    assert "enrolled" in p["detail"] and "manage" in p["detail"]
    async with rack.services.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Operation)) == 0


async def test_transient_errors_are_retried_with_backoff(rack: Api) -> None:
    fakebmc.set_behaviour("127.0.0.1:7003", transient_failures=2)
    done = await wait_op(rack, (await act(rack, "r01n03", "manage"))["id"])
    assert done["state"] == "succeeded", done
    r = await rack.req("GET", "/v1/nodes/r01n03/events", params={"kind": "retry"})
    retries = (await r.json())["items"]
    assert len(retries) == 2
    assert "retry 1 of" in retries[0]["message"]


async def test_transient_errors_give_up_after_max_attempts(rack: Api) -> None:
    fakebmc.set_behaviour("127.0.0.1:7003", transient_failures=100)
    done = await wait_op(rack, (await act(rack, "r01n03", "manage"))["id"])
    assert done["state"] == "failed"
    assert "after 4 attempt(s)" in done["error"]
    assert (await node(rack, "r01n03"))["state"] == "verify-failed"
    validates = [c for c in fakebmc.calls() if c.startswith("127.0.0.1:7003 validate")]
    assert len(validates) == 4


async def test_auth_failure_is_not_retried(rack: Api) -> None:
    fakebmc.set_behaviour("127.0.0.1:7004", auth_fail=True)
    done = await wait_op(rack, (await act(rack, "r01n04", "manage"))["id"])
    assert done["state"] == "failed"
    assert "authentication failed" in done["error"]
    n = await node(rack, "r01n04")
    assert n["state"] == "verify-failed"
    assert "authentication failed" in n["last_error"]
    assert [c for c in fakebmc.calls() if c.startswith("127.0.0.1:7004")] == [
        "127.0.0.1:7004 validate "
    ]
    # the failed twin offers the way back
    assert "manage" in n["allowed_actions"]


async def test_full_lifecycle_with_callback(rack: Api) -> None:
    api = rack
    for action, state in (("manage", "manageable"), ("provide", "available")):
        assert (await wait_op(api, (await act(api, "r01n01", action))["id"]))[
            "state"
        ] == "succeeded"
        assert (await node(api, "r01n01"))["state"] == state
    missing = await act(api, "r01n01", "deploy", expect=422)
    assert missing["errors"][0]["field"] == "image"
    r = await api.req("POST", "/v1/images", json={"name": "rocky9", "kernel": "http://x/vmlinuz"})
    assert r.status == 201, await r.text()
    dep = await act(api, "r01n01", "deploy", image="rocky9")
    for _ in range(200):
        if (await node(api, "r01n01"))["state"] == "deploy-wait":
            break
        await asyncio.sleep(0.05)
    assert (await node(api, "r01n01"))["state"] == "deploy-wait"
    # boot device is set right before the power action (the IPMI boot flag expires in 60 s)
    key_calls = [
        c.split(" ", 1)[1].strip() for c in fakebmc.calls() if c.startswith("127.0.0.1:7001")
    ]
    i = key_calls.index("set_boot_device pxe")
    # the node was off: a cycle (drivers turn it into "on"; a node that came on meanwhile reboots)
    assert key_calls[i + 1].startswith("set_power cycle")
    # parked: no lease held while waiting
    async with api.services.db.read() as s:
        op = await s.get(Operation, dep["id"])
        assert op is not None and op.lease_owner is None and op.state == "running"
    await api.services.engine.resume("r01n01", data={"booted": True})
    assert (await wait_op(api, dep["id"]))["state"] == "succeeded"
    assert (await node(api, "r01n01"))["state"] == "active"
    und = await wait_op(api, (await act(api, "r01n01", "undeploy"))["id"])
    assert und["state"] == "succeeded"
    n = await node(api, "r01n01")
    assert n["state"] == "available" and n["power_state"] == "off"
    assert (await state_events(api, "r01n01"))[-3:] == [
        "active -> releasing (undeploy)",
        "releasing -> cleaning (done)",
        "cleaning -> available (done)",
    ]


async def test_wait_state_deadline_fails_into_twin(tmp_path, db_url, fakebmc_dir) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from provisiond.api.app import create_app
    from provisiond.api.keys import SERVICES
    from provisiond.auth import create_token
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, db_url, deadlines={"inspect-wait": 0.5})
    app = create_app(settings)
    async with TestClient(TestServer(app)) as client:
        tok, _ = await create_token(app[SERVICES].db, role="admin", name="a")
        api = Api(client, app[SERVICES], {"admin": tok})
        assert (await api.enroll(rack_yaml(n=1))).status == 201
        await wait_op(api, (await act(api, "r01n01", "manage"))["id"])
        done = await wait_op(api, (await act(api, "r01n01", "inspect"))["id"])
        assert done["state"] == "failed"
        assert "deadline passed in state inspect-wait" in done["error"]
        assert (await node(api, "r01n01"))["state"] == "inspect-failed"


async def test_unknown_power_state_is_never_reset(rack: Api) -> None:
    fakebmc.set_behaviour("127.0.0.1:7002", power="unknown")
    done = await wait_op(rack, (await act(rack, "r01n02", "reboot"))["id"])
    assert done["state"] == "failed"
    assert "unknown" in done["error"]
    assert not [c for c in fakebmc.calls() if c.startswith("127.0.0.1:7002 set_power")]


async def test_maintenance_is_set_while_busy_and_blocks_into_service(rack: Api) -> None:
    fakebmc.set_behaviour("127.0.0.1:7001", delay=0.5)
    first = await act(rack, "r01n01", "manage")
    m = await act(rack, "r01n01", "maintenance-on", reason="fan failure, ticket 4711")
    assert m["state"] == "succeeded"
    await wait_op(rack, first["id"])
    n = await node(rack, "r01n01")
    assert n["maintenance"] is True and n["maintenance_reason"] == "fan failure, ticket 4711"
    p = await act(rack, "r01n01", "provide", expect=409)
    assert "maintenance" in p["detail"]
    await act(rack, "r01n01", "maintenance-off")
    assert (await wait_op(rack, (await act(rack, "r01n01", "provide"))["id"]))[
        "state"
    ] == "succeeded"


async def test_protected_node_refuses_undeploy(rack: Api) -> None:
    r = await rack.req("PATCH", "/v1/nodes/r01n01", json={"protected": True})
    assert r.status == 200
    async with rack.services.db.write() as s:
        n = (await s.scalars(select(Node).where(Node.name == "r01n01"))).one()
        n.state = "active"
    p = await act(rack, "r01n01", "undeploy", expect=409)
    assert "protected" in p["detail"]


async def test_expired_lease_of_another_daemon_is_taken_over(rack: Api) -> None:
    """A daemon on another host died holding a lease: the op waits for expiry, then resumes."""
    api = rack
    now = dt.datetime.now(dt.UTC)
    async with api.services.db.write() as s:
        n = (await s.scalars(select(Node).where(Node.name == "r01n02"))).one()
        n.state = "verifying"
        op = Operation(
            kind="manage",
            node_id=n.id,
            state="running",
            step="0",
            lease_owner="otherhost:4242:dead",
            lease_expires_at=now + dt.timedelta(seconds=1.5),
            deadline=now + dt.timedelta(seconds=60),
        )
        s.add(op)
        await s.flush()
        op_id = op.id
    await asyncio.sleep(0.6)
    async with api.services.db.read() as s:
        held = await s.get(Operation, op_id)
        assert held is not None and held.lease_owner == "otherhost:4242:dead"
        assert held.state == "running"
    done = await wait_op(api, op_id)
    assert done["state"] == "succeeded"
    assert (await node(api, "r01n02"))["state"] == "manageable"
    async with api.services.db.read() as s:
        moves = (
            await s.scalars(
                select(Event.message).where(Event.node_id == n.id, Event.kind == "state")
            )
        ).all()
    assert moves == ["verifying -> manageable (done)"]


async def test_clean_failure_sets_maintenance_with_a_fault(rack: Api) -> None:
    assert (await wait_op(rack, (await act(rack, "r01n02", "manage"))["id"]))[
        "state"
    ] == "succeeded"
    fakebmc.set_behaviour("127.0.0.1:7002", auth_fail=True)
    done = await wait_op(rack, (await act(rack, "r01n02", "provide"))["id"])
    assert done["state"] == "failed"
    n = await node(rack, "r01n02")
    assert n["state"] == "clean-failed"
    assert n["maintenance"] is True and n["fault"] == "clean failure"
    assert n["maintenance_reason"].startswith("cleaning failed: ")
