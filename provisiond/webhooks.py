"""Events out: webhook subscriptions and their deliveries.

A subscription is a URL, a secret and the event kinds wanted (``allocation.*`` is a prefix,
``*`` everything). A sender loop, apart from the engine (it never blocks an operation), turns new
events into deliveries and POSTs each as JSON with

    X-Provisiond-Event: <kind>
    X-Provisiond-Delivery: <delivery id>
    X-Provisiond-Timestamp: <unix seconds>
    X-Provisiond-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>

A receiver checks the signature and refuses old timestamps (replays). A delivery is retried
while the receiver fails (no answer, or not 2xx): after 2, 4, 8... seconds up to an hour, at most
``MAX_ATTEMPTS`` times, then ``failed``. Every delivery, with its attempts and last answer, is
visible through the API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import select, update

from provisiond.config import WebhookSettings
from provisiond.crypto import SecretBox
from provisiond.db import Database
from provisiond.errors import FieldProblem, NotFound, ValidationError
from provisiond.loop import ReconcileLoop
from provisiond.models import Event, WebhookDelivery, WebhookSubscription, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
BACKOFF_MAX = 3600.0
TIMEOUT = 10.0
BATCH = 200


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def wanted(kinds: list[str], kind: str) -> bool:
    return any(
        k == "*" or k == kind or (k.endswith("*") and kind.startswith(k[:-1])) for k in kinds
    )


def subscription_dict(sub: WebhookSubscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "url": sub.url,
        "events": list((sub.kinds or {}).get("kinds", [])),
        "active": sub.active,
        "secret_set": True,
        "created_by": sub.created_by,
        "created_at": sub.created_at,
    }


def delivery_dict(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "kind": d.kind,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at if d.status == "pending" else None,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "delivered_at": d.delivered_at,
    }


async def subscribe(
    db: Database, box: SecretBox, body: Mapping[str, Any], actor: str | None
) -> dict[str, Any]:
    problems: list[FieldProblem] = []
    url, secret, kinds = body.get("url"), body.get("secret"), body.get("events", ["*"])
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(FieldProblem("url", "an http(s) URL", value=url))
    if not isinstance(secret, str) or len(secret) < 16:
        problems.append(FieldProblem("secret", "at least 16 characters (it signs deliveries)"))
    if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) and k for k in kinds):
        problems.append(FieldProblem("events", "a non-empty list of event kinds (prefix*)"))
    if problems:
        raise ValidationError("webhook refused", problems)
    assert isinstance(url, str) and isinstance(secret, str)
    async with db.write() as s:
        newest = await s.scalar(select(Event.id).order_by(Event.id.desc()).limit(1))
        sub = WebhookSubscription(
            url=url,
            secret_enc=box.encrypt(secret),
            kinds={"kinds": list(kinds)},
            last_event_id=newest or 0,  # from now on, not the history
            created_by=actor,
        )
        s.add(sub)
        await s.flush()
        return subscription_dict(sub)


async def subscriptions(db: Database) -> list[dict[str, Any]]:
    async with db.read() as s:
        return [
            subscription_dict(x)
            for x in await s.scalars(
                select(WebhookSubscription).order_by(WebhookSubscription.created_at)
            )
        ]


async def unsubscribe(db: Database, sub_id: str) -> None:
    async with db.write() as s:
        sub = await s.get(WebhookSubscription, sub_id)
        if sub is None:
            raise NotFound(f"no webhook {sub_id!r}")
        await s.delete(sub)


async def deliveries(db: Database, sub_id: str, limit: int = 200) -> list[dict[str, Any]]:
    async with db.read() as s:
        if await s.get(WebhookSubscription, sub_id) is None:
            raise NotFound(f"no webhook {sub_id!r}")
        rows = await s.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == sub_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
        return [delivery_dict(d) for d in rows]


class Sender(ReconcileLoop):
    """The loop: new events -> deliveries, due deliveries -> POSTs (a few at once)."""

    loop_name = "webhooks"

    def __init__(self, db: Database, box: SecretBox, settings: WebhookSettings) -> None:
        super().__init__(settings)
        self.db = db
        self.box = box
        self.backoff = settings.backoff_seconds
        self._slots = asyncio.Semaphore(8)
        self._http: aiohttp.ClientSession | None = None

    async def stop(self) -> None:
        await super().stop()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def tick(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
        await self.enqueue()
        await self.send_due(self._http)

    async def enqueue(self) -> int:
        made = 0
        async with self.db.read() as s:
            subs = list(
                await s.scalars(
                    select(WebhookSubscription).where(WebhookSubscription.active.is_(True))
                )
            )
            newest = await s.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) or 0
        for sub in subs:
            if sub.last_event_id >= newest:
                continue
            async with self.db.write() as s:
                rows = list(
                    await s.execute(
                        select(Event.id, Event.kind)
                        .where(Event.id > sub.last_event_id)
                        .order_by(Event.id)
                        .limit(BATCH * 5)
                    )
                )
                kinds = list((sub.kinds or {}).get("kinds", []))
                for event_id, kind in rows:
                    if wanted(kinds, kind):
                        s.add(WebhookDelivery(subscription_id=sub.id, event_id=event_id, kind=kind))
                        made += 1
                if rows:
                    await s.execute(
                        update(WebhookSubscription)
                        .where(WebhookSubscription.id == sub.id)
                        .values(last_event_id=rows[-1][0])
                    )
        return made

    async def send_due(self, http: aiohttp.ClientSession) -> None:
        now = utcnow()
        async with self.db.read() as s:
            due = list(
                await s.execute(
                    select(WebhookDelivery, WebhookSubscription, Event)
                    .join(
                        WebhookSubscription,
                        WebhookSubscription.id == WebhookDelivery.subscription_id,
                    )
                    .join(Event, Event.id == WebhookDelivery.event_id)
                    .where(
                        WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now
                    )
                    .order_by(WebhookDelivery.id)
                    .limit(BATCH)
                )
            )
        await asyncio.gather(*(self._send(http, d, sub, ev) for d, sub, ev in due))

    async def _send(
        self, http: aiohttp.ClientSession, d: WebhookDelivery, sub: WebhookSubscription, ev: Event
    ) -> None:
        async with self._slots:
            body = json.dumps(
                {
                    "id": ev.id,
                    "kind": ev.kind,
                    "message": ev.message,
                    "ts": ev.ts,
                    "node_id": ev.node_id,
                    "operation_id": ev.operation_id,
                    "actor": ev.actor,
                    "data": ev.data,
                },
                default=str,
                sort_keys=True,
            ).encode()
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Provisiond-Event": ev.kind,
                "X-Provisiond-Delivery": str(d.id),
                "X-Provisiond-Timestamp": stamp,
                "X-Provisiond-Signature": sign(self.box.decrypt(sub.secret_enc), stamp, body),
            }
            status: int | None = None
            error: str | None = None
            try:
                async with http.post(sub.url, data=body, headers=headers) as resp:
                    status = resp.status
                    if not 200 <= status < 300:
                        error = f"HTTP {status}: {(await resp.text())[:200]}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
            attempts = d.attempts + 1
            values: dict[str, Any] = {"attempts": attempts, "last_status": status}
            if error is None:
                values |= {"status": "delivered", "delivered_at": utcnow(), "last_error": None}
            elif attempts >= MAX_ATTEMPTS:
                values |= {"status": "failed", "last_error": error}
            else:
                delay = min(self.backoff * 2.0 ** (attempts - 1), BACKOFF_MAX)
                values |= {"last_error": error,
                           "next_attempt_at": utcnow() + dt.timedelta(seconds=delay)}  # fmt: skip
            async with self.db.write() as s:
                await s.execute(
                    update(WebhookDelivery).where(WebhookDelivery.id == d.id).values(**values)
                )
