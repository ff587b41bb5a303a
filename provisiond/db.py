"""Database engines, sessions and migrations.

SQLite (WAL) by default, PostgreSQL by URL. Write transactions on SQLite start with BEGIN IMMEDIATE
so that two writers never meet half-way (a deferred transaction that read first would fail with
SQLITE_BUSY instead of waiting); reads stay deferred so listing never waits on a writer.
This module never decides business rules; it only hands out sessions.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 15000
# Advisory lock id for migrations, so several daemons starting at once on one PostgreSQL
# do not race each other through `alembic upgrade`.
_MIGRATION_LOCK_ID = 0x70726F76


def _sqlite_engine(url: str, *, immediate: bool) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=8, max_overflow=8)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite; we emit BEGIN ourselves below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _create_private(path: Path) -> None:
    """The database holds encrypted BMC secrets and token hashes: owner-only from birth
    (SQLite gives its -wal and -shm files the database file's permissions)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Database:
    """Holds the engines and hands out sessions: ``read()`` and ``write()``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        if self.dialect == "sqlite":
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                _create_private(Path(path))
            self.write_engine = _sqlite_engine(url, immediate=True)
            self.read_engine = _sqlite_engine(url, immediate=False)
        else:
            # prepare_threshold=None: psycopg would otherwise prepare a statement after five runs
            # and PostgreSQL keep the generic plan it made while the tables were empty (full
            # scans, 25 ms instead of 0.4 ms per lookup once the inventory has grown).
            self.write_engine = create_async_engine(
                url,
                pool_size=10,
                max_overflow=20,
                connect_args={"prepare_threshold": None},
            )
            self.read_engine = self.write_engine
        self._single_read_engine = (
            self.read_engine
            if self.dialect == "sqlite"
            else self.read_engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._write = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._read = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits at the end, rolls back on any exception."""
        async with self._write() as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def single_read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads done in ONE statement: on PostgreSQL it runs in autocommit,
        saving the BEGIN and ROLLBACK round trips (one statement is its own snapshot)."""
        async with self._single_read_engine.connect() as conn:
            yield conn

    async def upgrade(self, revision: str = "head") -> None:
        async with self.write_engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})"))
            await conn.run_sync(_alembic_upgrade, revision)

    async def current_revision(self) -> str | None:
        async with self.read_engine.connect() as conn:
            return await conn.run_sync(_alembic_current)

    async def ping(self) -> None:
        async with self.read_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _alembic_upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


def _alembic_current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()
