"""API tokens and roles. Tokens are 256-bit random strings shown once; only their SHA-256 is
stored (a slow hash buys nothing for random secrets and would cost every request)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update

from provisiond.db import Database
from provisiond.errors import Conflict, FieldProblem, NotFound, Unauthorized, ValidationError
from provisiond.models import ApiToken, Tenant, utcnow

TOKEN_PREFIX = "pvd_"
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)
log = logging.getLogger(__name__)


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    TENANT = "tenant"
    SCHEDULER = "scheduler"


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    tenant_id: int | None = None
    tenant: str | None = None

    @property
    def scope(self) -> int | None:
        """Tenant id to filter by, or None for roles that see every node."""
        return self.tenant_id if self.role is Role.TENANT else None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    db: Database, *, role: str, name: str, tenant: str | None = None
) -> tuple[str, bool]:
    """Create a token; returns (token, tenant_created). The token is never stored in clear."""
    try:
        r = Role(role)
    except ValueError:
        raise ValidationError(
            "bad role",
            [FieldProblem("role", f"one of {', '.join(x.value for x in Role)}", value=role)],
        ) from None
    if r is Role.TENANT and not tenant:
        raise ValidationError(
            "a tenant token needs --tenant", [FieldProblem("tenant", "required for role tenant")]
        )
    if r is not Role.TENANT and tenant:
        raise ValidationError(
            "only tenant tokens are scoped",
            [FieldProblem("tenant", f"not allowed for role {r.value}", value=tenant)],
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    tenant_created = False
    async with db.write() as s:
        if (await s.scalars(select(ApiToken.id).where(ApiToken.name == name))).first():
            raise Conflict(f"a token named {name!r} already exists", name=name)
        tenant_id = None
        if tenant:
            t = (await s.scalars(select(Tenant).where(Tenant.name == tenant))).first()
            if t is None:
                t = Tenant(name=tenant)
                s.add(t)
                await s.flush()
                tenant_created = True
            tenant_id = t.id
        s.add(
            ApiToken(
                name=name,
                role=r.value,
                tenant_id=tenant_id,
                token_hash=hash_token(token),
                prefix=token[: len(TOKEN_PREFIX) + 6],
            )
        )
    return token, tenant_created


async def authenticate(
    db: Database, header: str | None, touches: set[asyncio.Task[None]] | None = None
) -> Principal:
    """The principal behind an Authorization header, or Unauthorized. Token use is recorded in
    the background, tracked in ``touches`` when given."""
    if not header:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("expected 'Authorization: Bearer <token>'")
    async with db.read() as s:
        row = (
            await s.execute(
                select(ApiToken, Tenant.name)
                .outerjoin(Tenant, ApiToken.tenant_id == Tenant.id)
                .where(ApiToken.token_hash == hash_token(token.strip()))
            )
        ).first()
    if row is None or row[0].revoked:
        raise Unauthorized("unknown or revoked token")
    tok, tenant_name = row
    now = utcnow()
    if tok.last_used_at is None or now - tok.last_used_at > LAST_USED_RESOLUTION:
        # coarse on purpose (one write a minute per token), and off the request path: a read
        # must not wait for a busy writer just to record that a token was used
        task = asyncio.create_task(_touch(db, tok.id, now))
        if touches is not None:
            touches.add(task)
            task.add_done_callback(touches.discard)
    return Principal(
        name=tok.name, role=Role(tok.role), tenant_id=tok.tenant_id, tenant=tenant_name
    )


async def _touch(db: Database, token_id: int, now: dt.datetime) -> None:
    try:
        async with db.write() as s:
            await s.execute(
                update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
            )
    except Exception as exc:  # bookkeeping only: never fail or slow a request for it
        log.debug("recording token use failed: %s", exc)


class Authenticator:
    """Token checks with a short positive cache: a token seen in the last ``ttl`` seconds is not
    looked up again. Revocation therefore takes effect within ``ttl`` (default 5 s)."""

    MAX_ENTRIES = 4096

    def __init__(self, db: Database, *, ttl: float) -> None:
        self.db = db
        self.ttl = ttl
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._touches: set[asyncio.Task[None]] = set()

    async def authenticate(self, header: str | None) -> Principal:
        if self.ttl <= 0 or not header:
            return await authenticate(self.db, header, self._touches)
        hit = self._cache.get(header)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        principal = await authenticate(self.db, header, self._touches)
        if len(self._cache) >= self.MAX_ENTRIES:
            self._cache.clear()
        self._cache[header] = (principal, now + self.ttl)
        return principal


async def list_tokens(db: Database) -> list[dict[str, Any]]:
    async with db.read() as s:
        rows = await s.execute(
            select(ApiToken, Tenant.name)
            .outerjoin(Tenant, ApiToken.tenant_id == Tenant.id)
            .order_by(ApiToken.name)
        )
        return [
            {
                "name": t.name,
                "role": t.role,
                "tenant": tenant,
                "prefix": t.prefix,
                "created_at": t.created_at.isoformat(timespec="seconds"),
                "last_used_at": t.last_used_at.isoformat(timespec="seconds")
                if t.last_used_at
                else None,
                "revoked": t.revoked,
            }
            for t, tenant in rows
        ]


async def revoke_token(db: Database, name: str) -> None:
    async with db.write() as s:
        res = await s.execute(update(ApiToken).where(ApiToken.name == name).values(revoked=True))
        if res.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound(f"no token named {name!r}", name=name)
