"""The aiohttp application factory. ``create_app(settings)`` builds everything; the database,
the BMC drivers and the engine live in one cleanup context, started and stopped with the app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy import func, select

from drivers.registry import BmcRegistry
from drivers.switch.registry import SwitchDrivers
from provisiond import audit
from provisiond.api.boot_routes import boot_routes
from provisiond.api.errors import error_middleware
from provisiond.api.fabric_routes import fabric_routes
from provisiond.api.firmware_routes import firmware_routes
from provisiond.api.keys import SERVICES, SETTINGS, Services
from provisiond.api.openapi import build as build_openapi
from provisiond.api.routes import v1_routes
from provisiond.api.routing import install
from provisiond.api.switch_routes import switch_routes
from provisiond.auth import Authenticator
from provisiond.bmc import BmcGateway
from provisiond.boot import BootService
from provisiond.config import Settings
from provisiond.crypto import SecretBox, load_or_create_key
from provisiond.db import Database
from provisiond.engine import Engine
from provisiond.errors import ConfigError
from provisiond.fabric import Reconciler
from provisiond.firmware import FirmwareService
from provisiond.models import Node, Switch
from provisiond.netboot import Netboot
from provisiond.partitions import PartitionReconciler
from provisiond.powersync import PowerSync
from provisiond.webhooks import Sender
from pxe.dhcp_server import LoaderMemory

log = logging.getLogger(__name__)
OPENAPI = web.AppKey("openapi", str)
POWER_SYNC = web.AppKey("power_sync", PowerSync)


async def open_services(settings: Settings) -> Services:
    """Database (migrated to head), secret box, drivers and engine; the engine is not started."""
    db = Database(settings.db_url)
    try:
        await db.upgrade()
        key_existed = bool(settings.secret_key) or settings.key_file.exists()
        box = SecretBox(load_or_create_key(settings.secret_key, settings.key_file))
        if not key_existed:
            await _refuse_new_key_over_old_secrets(db, settings)
        registry = BmcRegistry(settings.drivers.bmc, settings.drivers.options())
        gateway = BmcGateway(
            registry,
            timeout=settings.engine.bmc_call_timeout,
            concurrency=settings.engine.bmc_concurrency,
        )
        engine = Engine(db, settings.engine, box, gateway)
    except BaseException:
        await db.close()
        raise
    auth = Authenticator(db, ttl=settings.api.token_cache_seconds)
    boot = BootService(db, settings, engine, LoaderMemory())
    switches = Reconciler(
        db,
        box,
        settings.switches,
        SwitchDrivers(settings.drivers.switch_options()),
        owner=engine.owner,
    )
    partitions = PartitionReconciler(db, box, settings.fabrics, owner=engine.owner)
    partitions.engine = engine
    return Services(
        settings=settings,
        db=db,
        box=box,
        registry=registry,
        engine=engine,
        auth=auth,
        boot=boot,
        switches=switches,
        partitions=partitions,
        firmware=FirmwareService(db),
        webhooks=Sender(db, box, settings.webhooks),
    )


async def _refuse_new_key_over_old_secrets(db: Database, settings: Settings) -> None:
    """A key file was just created, yet the database already holds encrypted secrets: this
    daemon has the wrong data directory, or is a second daemon on a shared PostgreSQL without
    the first one's key. Starting would make every stored BMC password unreadable to it."""
    async with db.read() as s:
        stored = await s.scalar(
            select(func.count()).select_from(Node).where(Node.bmc_password_enc.is_not(None))
        )
        stored = (stored or 0) + (
            await s.scalar(
                select(func.count()).select_from(Switch).where(Switch.password_enc.is_not(None))
            )
            or 0
        )
    if stored:
        settings.key_file.unlink(missing_ok=True)
        raise ConfigError(
            f"the database holds {stored} encrypted BMC/switch password(s) but there was no key "
            f"file at "
            f"{settings.key_file}: copy the key file of the daemon that wrote them (or set "
            "secret_key to it); see docs/runbooks/secret-key.md",
            key="secret_key_file",
        )


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    services = await open_services(app[SETTINGS])
    app[SERVICES] = services
    # DHCP and TFTP for the boot network (nothing when [pxe] mode = "off" and tftp is unset);
    # first, so a port that cannot be bound stops the start before any work is taken
    assert services.boot is not None
    netboot = Netboot(services.settings, services.boot)
    try:
        await netboot.start()
    except BaseException:
        await services.engine.bmc.close()
        await services.db.close()
        raise
    runner = asyncio.create_task(services.engine.run(), name="engine")
    # power reconciliation (provisiond.powersync): reads power states only, never acts
    power_sync = PowerSync(
        services.db, services.settings.power_sync, services.box, services.engine.bmc
    )
    app[POWER_SYNC] = power_sync
    power_sync.start()
    # switch reconciliation (provisiond.fabric): desired port state -> switches, drift checks
    assert services.switches is not None
    services.switches.start()
    # InfiniBand partitions (provisiond.partitions): desired P_Keys -> subnet managers, read-backs
    assert services.partitions is not None
    services.partitions.start()
    # events out to webhook subscribers (provisiond.webhooks), apart from the engine
    assert services.webhooks is not None
    services.webhooks.start()
    # the isolation audit, on a timer (provisiond.audit)
    auditor = None
    if services.settings.fabrics.audit_interval > 0:
        auditor = asyncio.create_task(
            audit.periodic(
                services.db,
                services.switches,
                services.partitions,
                services.settings.fabrics.audit_interval,
            ),
            name="isolation-audit",
        )
    # Everything alive now (SQLAlchemy, alembic, pydantic, routes: ~100k objects) lives as long
    # as the daemon; without this, each full collection walks them all (60-90 ms, the p99 of
    # listing).
    gc.freeze()
    yield
    await netboot.stop()
    if auditor is not None:
        auditor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await auditor
    await services.webhooks.stop()
    await services.switches.stop()
    await services.partitions.stop()
    await power_sync.stop()
    await services.engine.stop()
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    await services.engine.bmc.close()
    await services.db.close()


async def _openapi(request: web.Request) -> web.StreamResponse:
    return web.Response(text=request.app[OPENAPI], content_type="application/json")


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=settings.api.max_body_bytes, middlewares=[error_middleware]
    )
    app[SETTINGS] = settings
    routes = v1_routes() + switch_routes() + fabric_routes() + firmware_routes() + boot_routes()
    app[OPENAPI] = json.dumps(build_openapi(routes))
    app.cleanup_ctx.append(_services_ctx)
    install(app, routes)
    app.router.add_get("/v1/openapi.json", _openapi)
    return app
