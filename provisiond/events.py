"""The event log: append-only rows, also the audit trail. Written inside the caller's transaction
so an event exists exactly when the change it describes was committed."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from provisiond.models import Event


def record(
    session: AsyncSession,
    kind: str,
    message: str,
    *,
    node_id: str | None = None,
    operation_id: str | None = None,
    switch_id: int | None = None,
    actor: str | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    ev = Event(
        kind=kind,
        message=message,
        node_id=node_id,
        operation_id=operation_id,
        switch_id=switch_id,
        actor=actor,
        data=data or {},
    )
    session.add(ev)
    return ev
