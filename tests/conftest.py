"""Shared fixtures: settings on a temporary data dir, both database backends, an API client."""

from __future__ import annotations

import os
import secrets
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from provisiond.api.app import create_app
from provisiond.api.keys import SERVICES, Services
from provisiond.auth import create_token
from provisiond.config import Settings, load_settings
from tests.support.daemon import Daemon, free_port  # noqa: F401 - re-exported
from tests.support.listener import Listener
from tests.support.peers import missing

PG_URL = os.environ.get("PROVISIOND_TEST_PG_URL", "")


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from provisiond.db import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


FAKE_DRIVER = "tests.support.fakebmc:FakeBmc"


def need_postgres() -> str:
    """The admin URL of the test PostgreSQL, or skip (locally) / fail (under CI)."""
    if PG_URL:
        return PG_URL
    msg = (
        "PostgreSQL not available: install Debian's 'postgresql' package (make test does this as "
        "root) or set PROVISIOND_TEST_PG_URL"
    )
    missing(msg)


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    import psycopg

    admin = need_postgres()
    name = f"provisiond_t_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        _drop_database(admin, name)


def _drop_database(admin: str, name: str, tries: int = 20) -> None:
    """DROP ... WITH (FORCE) terminates the test's own connections, but fails with
    InsufficientPrivilege while an autovacuum worker (a superuser backend) is in that database,
    which a busy CI machine hits now and then: wait for it, a bounded number of times. A
    database left behind in the end is only disk: warn, do not fail the test that used it."""
    import psycopg

    for _ in range(tries):
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse):
            time.sleep(0.5)
    warnings.warn(f"test database {name} could not be dropped (autovacuum?)", stacklevel=2)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'provisiond.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture
def fakebmc_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "fakebmc"
    d.mkdir()
    monkeypatch.setenv("PROVISIOND_TEST_FAKEBMC_DIR", str(d))
    return d


def make_settings(tmp_path: Path, db_url: str, **engine: Any) -> Settings:
    eng = {
        "lease_seconds": 3,
        "poll_seconds": 0.1,
        "retry_backoff_seconds": 0.05,
        "retry_backoff_max_seconds": 0.2,
        "bmc_call_timeout": 5,
        **engine,
    }
    return load_settings(
        None,
        env={},
        overrides={
            "data_dir": str(tmp_path / "data"),
            "database_url": db_url,
            "engine": eng,
            "drivers": {"bmc": {"fake": FAKE_DRIVER}},
        },
    )


class Api:
    """An API client with tokens for each role."""

    def __init__(self, client: TestClient, services: Services, tokens: dict[str, str]) -> None:
        self.client = client
        self.services = services
        self.tokens = tokens

    def h(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def req(self, method: str, path: str, role: str = "admin", **kw: Any) -> Any:
        headers = {**self.h(role), **kw.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kw)

    async def enroll(
        self,
        text: str,
        rack: str = "r01",
        ctype: str = "application/yaml",
        role: str = "admin",
        **query: str,
    ) -> Any:
        return await self.req(
            "POST",
            f"/v1/racks/{rack}/enroll",
            role=role,
            data=text.encode(),
            headers={"Content-Type": ctype},
            params=query or None,
        )


@pytest.fixture
async def api(tmp_path: Path, db_url: str, fakebmc_dir: Path) -> AsyncIterator[Api]:
    settings = make_settings(tmp_path, db_url)
    app = create_app(settings)
    async with TestClient(TestServer(app)) as client:
        services = app[SERVICES]
        tokens = {}
        for role in ("admin", "operator", "scheduler"):
            tokens[role], _ = await create_token(services.db, role=role, name=f"t-{role}")
        tokens["tenant"], _ = await create_token(
            services.db, role="tenant", name="t-tenant", tenant="acme"
        )
        tokens["tenant2"], _ = await create_token(
            services.db, role="tenant", name="t-tenant2", tenant="globex"
        )
        yield Api(client, services, tokens)


def rack_yaml(
    rack: str = "r01", n: int = 4, driver: str = "fake", port0: int = 7000, mac_block: int = 1
) -> str:
    lines = [f"rack: {rack}", "nodes:"]
    for i in range(1, n + 1):
        lines += [
            f"  - name: {rack}n{i:02d}",
            f"    unit: {i}",
            f"    bmc: {{driver: {driver}, address: 127.0.0.1, port: {port0 + i}, "
            "username: admin, password: secret}",
            "    nics:",
            f'      - {{mac: "52:54:00:{mac_block:02x}:00:{i:02x}", kind: ethernet, pxe: true}}',
            f'      - {{guid: "0x0002c9030000{mac_block:02x}{i:02x}", kind: infiniband}}',
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def daemon_factory(tmp_path: Path, fakebmc_dir: Path) -> Iterator[Callable[..., Daemon]]:
    """Real `provisiond serve` subprocesses, stopped (by pid) at the end of the test."""
    made: list[Daemon] = []

    def make(db_url: str, **kw: Any) -> Daemon:
        d = Daemon(tmp_path, db_url, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A TCP port on 127.0.0.1 counting the connections made to it."""
    lst = Listener()
    try:
        yield lst
    finally:
        lst.close()
