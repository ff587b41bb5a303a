"""Resolves driver names to driver classes: entry points first, then the config's extras.

Driver names are validated here and nowhere else.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from drivers.bmc.base import BmcDriver
from provisiond.errors import ConfigError

BMC_GROUP = "provisiond.drivers.bmc"
# Protocols a rack file may name even when this daemon has no driver installed for them yet:
# the inventory describes hardware; an action on such a node fails with a clear error.
KNOWN_BMC_PROTOCOLS = frozenset({"ipmi", "redfish"})
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def _load(target: str, where: str) -> type[BmcDriver]:
    module_name, _, attr = target.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}: cannot load {target!r}: {exc}", key=where) from exc
    if not (isinstance(obj, type) and issubclass(obj, BmcDriver)):
        raise ConfigError(f"{where}: {target!r} is not a BmcDriver subclass", key=where)
    return obj


class BmcRegistry:
    def __init__(
        self,
        extra: Mapping[str, str] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self._options = dict(options or {})
        self._classes: dict[str, type[BmcDriver]] = {}
        self._instances: dict[str, BmcDriver] = {}
        for ep in entry_points(group=BMC_GROUP):
            self._classes[ep.name] = _load(ep.value, f"entry point {ep.name}")
        for name, target in (extra or {}).items():
            if not _NAME.match(name):
                raise ConfigError(f"drivers.bmc.{name}: bad driver name", key=f"drivers.bmc.{name}")
            self._classes[name] = _load(target, f"drivers.bmc.{name}")

    def installed(self) -> frozenset[str]:
        return frozenset(self._classes)

    def accepted_names(self) -> frozenset[str]:
        return self.installed() | KNOWN_BMC_PROTOCOLS

    def get(self, name: str) -> BmcDriver | None:
        if name not in self._instances:
            cls = self._classes.get(name)
            if cls is None:
                return None
            self._instances[name] = cls(self._options.get(name))
        return self._instances[name]

    async def close(self) -> None:
        for drv in self._instances.values():
            await drv.close()
        self._instances.clear()
