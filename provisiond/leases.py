"""Row leases: one daemon works on one switch (or fabric) at a time, when several share a
database. A lease is two columns on the row (``lease_owner``, ``lease_expires_at``); it is taken
with one conditional UPDATE, renewed in the background while its block runs (and by the switch
reconciler before each session, which also notices a loss there), released at the end. A holder
on this host whose process is gone (a crashed daemon, engine.Owner) is taken over at once rather
than after its lease runs out. Nothing here knows what the row is for."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import false, or_, select, update

from provisiond.db import Database
from provisiond.engine import Owner
from provisiond.models import utcnow

log = logging.getLogger(__name__)


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
        # a pass may outlive one lease (a slow subnet manager, a large batch): renewed in the
        # background every third of it while the block runs
        keeper = asyncio.create_task(_keep(db, model, row_id, owner, seconds)) if got else None
        try:
            yield got
        finally:
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError, LeaseLost):
                    await keeper
            if got:
                async with db.write() as s:
                    await s.execute(
                        update(model)
                        .where(model.id == row_id, model.lease_owner == owner)
                        .values(lease_owner=None, lease_expires_at=None)
                        .execution_options(synchronize_session=False)
                    )


async def _keep(db: Database, model: Any, row_id: int, owner: str, seconds: float) -> None:
    for _ in range(10**9):  # bounded by the block it serves, which cancels it
        await asyncio.sleep(seconds / 3)
        try:
            await renew(db, model, row_id, owner, seconds)
        except LeaseLost:
            log.warning("lease on %s %s lost to another daemon", model.__tablename__, row_id)
            return
        except Exception:  # a database hiccup: try again at the next third
            log.exception("renewing the lease on %s %s", model.__tablename__, row_id)


async def owns(db: Database, model: Any, row_id: int, owner: str) -> bool:
    """Whether this daemon still holds the row's lease (checked before recording a result)."""
    async with db.read() as s:
        holder = await s.scalar(select(model.lease_owner).where(model.id == row_id))
    return bool(holder == owner)


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
