"""Persistence: migrations match the models, SQLite runs in WAL and waits for a busy writer,
the schema enforces one active operation per node."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from provisiond.config import normalise_db_url
from provisiond.db import Database
from provisiond.models import Base, Node, Operation
from tests.conftest import head_revision


@pytest.fixture
async def db(db_url: str) -> Database:
    d = Database(normalise_db_url(db_url))
    await d.upgrade()
    yield d
    await d.close()


def _diff(conn: Connection) -> list[object]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


async def test_migrations_match_the_models(db: Database) -> None:
    async with db.write_engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []
    assert await db.current_revision() == head_revision()
    await db.upgrade()  # idempotent
    assert await db.current_revision() == head_revision()


async def test_one_active_operation_per_node_is_enforced_by_the_schema(db: Database) -> None:
    async with db.write() as s:
        node = Node(name="n1", bmc_driver="fake", bmc_address="127.0.0.1")
        s.add(node)
        await s.flush()
        s.add(Operation(kind="manage", node_id=node.id, state="running"))
        s.add(Operation(kind="power-on", node_id=node.id, state="succeeded"))
        node_id = node.id
    with pytest.raises(IntegrityError):
        async with db.write() as s:
            s.add(Operation(kind="inspect", node_id=node_id, state="pending"))


async def test_sqlite_is_wal_and_waits_for_a_busy_writer(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.upgrade()
        async with db.read() as s:
            assert (await s.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await s.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        # another process holds the write lock for a while (a CLI command, a backup)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute(
            "INSERT INTO racks (name, height, created_at, updated_at) "
            "VALUES ('x', 42, '2026-01-01', '2026-01-01')"
        )

        released = asyncio.Event()

        async def release() -> None:
            await asyncio.sleep(0.8)
            other.execute("COMMIT")
            released.set()

        releaser = asyncio.create_task(release())
        async with db.write() as s:
            s.add(Node(name="n1", bmc_driver="fake", bmc_address="127.0.0.1"))
        # it got the lock only once the other writer let go, instead of failing with
        # "database is locked"
        assert released.is_set()
        await releaser
        other.close()
        async with db.read() as s:
            assert (await s.execute(text("SELECT count(*) FROM racks"))).scalar() == 1
            assert (await s.execute(text("SELECT count(*) FROM nodes"))).scalar() == 1
    finally:
        await db.close()


async def test_sqlite_database_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "p.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.upgrade()
    finally:
        await db.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0


def test_a_zombie_daemon_counts_as_dead() -> None:
    """A killed daemon that its parent has not reaped yet must not hold its leases."""
    from provisiond.engine import _pid_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    for _ in range(200):  # wait (bounded) until it has exited but is not reaped
        with open(f"/proc/{child.pid}/stat", "rb") as fh:
            if fh.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                break
        time.sleep(0.01)
    try:
        assert _pid_alive(child.pid) is False
        assert _pid_alive(os.getpid()) is True
    finally:
        child.wait()
    assert _pid_alive(child.pid) is False
