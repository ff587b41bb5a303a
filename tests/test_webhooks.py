"""Webhooks: a receiver on 127.0.0.1 gets each wanted event as signed JSON (the signature checked
here with Python's hmac, independently of the sender), failures are retried with backoff, and
every delivery is visible through the API."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import Api

SECRET = "a-long-shared-secret-for-tests"


async def receiver(fail_first: int = 0) -> tuple[TestServer, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []
    calls = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] <= fail_first:
            return web.Response(status=503, text="busy")
        body = await request.read()
        stamp = request.headers["X-Provisiond-Timestamp"]
        want = "sha256=" + hmac.new(SECRET.encode(), stamp.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()  # fmt: skip
        assert hmac.compare_digest(want, request.headers["X-Provisiond-Signature"])
        assert abs(time.time() - int(stamp)) < 60
        got.append({"headers": dict(request.headers), "body": json.loads(body)})
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, got


async def until(check: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


async def test_signed_deliveries_of_wanted_events(api: Api) -> None:
    server, got = await receiver()
    try:
        r = await api.req("POST", "/v1/webhooks", json={
            "url": str(server.make_url("/hook")), "secret": SECRET, "events": ["tenant.*"],
        })  # fmt: skip
        sub = await r.json()
        assert r.status == 201 and "secret" not in sub and sub["secret_set"] is True, sub
        assert (await api.req("POST", "/v1/tenants", json={"name": "initech"})).status == 201
        await api.req(
            "POST", "/v1/images", json={"name": "x", "kernel": "http://x/k"}
        )  # not wanted
        await until(lambda: len(got) >= 1)
        await asyncio.sleep(1.5)  # nothing else comes
        assert [g["body"]["kind"] for g in got] == ["tenant.created"]
        assert got[0]["headers"]["X-Provisiond-Event"] == "tenant.created"
        assert got[0]["body"]["data"]["tenant"] == "initech"
        r = await api.req("GET", f"/v1/webhooks/{sub['id']}/deliveries")
        (delivery,) = (await r.json())["items"]
        assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    finally:
        await server.close()


async def test_a_failing_receiver_is_retried_with_backoff(api: Api) -> None:
    assert api.services.webhooks is not None
    api.services.webhooks.backoff = 0.2  # 0.2 s, 0.4 s...
    server, got = await receiver(fail_first=2)
    try:
        r = await api.req("POST", "/v1/webhooks", json={
            "url": str(server.make_url("/hook")), "secret": SECRET, "events": ["*"],
        })  # fmt: skip
        sub = await r.json()
        assert (await api.req("POST", "/v1/tenants", json={"name": "umbrella"})).status == 201
        await until(lambda: len(got) >= 1)
        r = await api.req("GET", f"/v1/webhooks/{sub['id']}/deliveries")
        items = (await r.json())["items"]
        tenant = next(d for d in items if d["kind"] == "tenant.created")
        assert tenant["status"] == "delivered" and tenant["attempts"] == 3
        assert tenant["last_status"] == 204
        # a subscription that goes away takes its deliveries with it
        assert (await api.req("DELETE", f"/v1/webhooks/{sub['id']}")).status == 204
        assert (await api.req("GET", f"/v1/webhooks/{sub['id']}/deliveries")).status == 404
    finally:
        await server.close()


async def test_bad_subscriptions_are_refused(api: Api) -> None:
    r = await api.req("POST", "/v1/webhooks", json={"url": "ftp://x", "secret": "short"})
    out = await r.json()
    assert r.status == 422 and {e["field"] for e in out["errors"]} == {"url", "secret"}
    r = await api.req("POST", "/v1/webhooks", role="operator",
                      json={"url": "http://127.0.0.1:1/h", "secret": SECRET})  # fmt: skip
    assert r.status == 403
