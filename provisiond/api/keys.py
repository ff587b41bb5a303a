"""Typed application keys and the services they hold, in one module."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from drivers.registry import BmcRegistry
from provisiond.auth import Authenticator
from provisiond.boot import BootService
from provisiond.config import Settings
from provisiond.crypto import SecretBox
from provisiond.db import Database
from provisiond.engine import Engine
from provisiond.fabric import Reconciler
from provisiond.firmware import FirmwareService
from provisiond.partitions import PartitionReconciler
from provisiond.webhooks import Sender


@dataclass
class Services:
    settings: Settings
    db: Database
    box: SecretBox
    registry: BmcRegistry
    engine: Engine
    auth: Authenticator
    boot: BootService | None = None
    switches: Reconciler | None = None
    partitions: PartitionReconciler | None = None
    firmware: FirmwareService | None = None
    webhooks: Sender | None = None


SERVICES = web.AppKey("services", Services)
SETTINGS = web.AppKey("settings", Settings)
