"""Row leases: one daemon works on one switch (or fabric) at a time, when several share a
database. A lease is two columns on the row (``lease_owner``, ``lease_expires_at``); it is taken
with one conditional UPDATE, renewed before each long step, released at the end. A holder on this
host whose process is gone (a crashed daemon, engine.Owner) is taken over at once rather than
after its lease runs out. Nothing here knows what the row is for."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import false, or_, select, update

from provisiond.db import Database
from provisiond.engine import Owner
from provisiond.models import utcnow


class LeaseLost(Exception):
    """Another daemon took the row over while this one worked on it."""


def proves_dead(me: str, holder: str) -> bool:
    mine, theirs = Owner.parse(me), Owner.parse(holder)
    return mine is not None and theirs is not None and mine.proves_dead(theirs)


@contextlib.asynccontextmanager
async def held(
    db: Database, model: Any, row_id: int, owner: str, seconds: float, lock: asyncio.Lock
) -> AsyncIterator[bool]:
    """Hold ``lock`` (one pass per row in this process) and this daemon's lease on row
    ``row_id`` of ``model`` for the block; yields False when another daemon holds the lease."""
    async with lock:
        now = utcnow()
        async with db.write() as s:
            holder = await s.scalar(select(model.lease_owner).where(model.id == row_id))
            dead = holder is not None and proves_dead(owner, holder)
            claimed = await s.execute(
                update(model)
                .where(
                    model.id == row_id,
                    or_(
                        model.lease_owner.is_(None),
                        model.lease_owner == owner,
                        model.lease_expires_at < now,
                        model.lease_owner == holder if dead else false(),
                    ),
                )
                .values(lease_owner=owner, lease_expires_at=now + dt.timedelta(seconds=seconds))
                .execution_options(synchronize_session=False)
            )
            got = claimed.rowcount == 1  # type: ignore[attr-defined]
        try:
            yield got
        finally:
            if got:
                async with db.write() as s:
                    await s.execute(
                        update(model)
                        .where(model.id == row_id, model.lease_owner == owner)
                        .values(lease_owner=None, lease_expires_at=None)
                        .execution_options(synchronize_session=False)
                    )


async def renew(db: Database, model: Any, row_id: int, owner: str, seconds: float) -> None:
    """Extend this daemon's lease (a long pass outlives one); LeaseLost when another daemon has
    taken the row meanwhile."""
    async with db.write() as s:
        res = await s.execute(
            update(model)
            .where(model.id == row_id, model.lease_owner == owner)
            .values(lease_expires_at=utcnow() + dt.timedelta(seconds=seconds))
            .execution_options(synchronize_session=False)
        )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(str(row_id))
