"""Which fabric driver serves a fabric's driver name: the one place those names resolve.

Built in: ``opensm`` (partitions.conf + SIGHUP) and ``ufm`` (NVIDIA UFM's REST API). Other
packages add drivers under the entry point group ``provisiond.drivers.fabric``. Modules load on
first use, so a daemon without aiohttp's client in use never imports the UFM one.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from drivers.fabric.base import DEFAULT_PORT_KEY_LIMIT, PKEY_MAX, PKEY_MIN, FabricDriver
from provisiond.errors import ConfigError

GROUP = "provisiond.drivers.fabric"
BUILT_IN = {
    "opensm": "drivers.fabric.opensm:OpenSmDriver",
    "ufm": "drivers.fabric.ufm:UfmDriver",
}


def fabric_driver_names() -> frozenset[str]:
    return frozenset(BUILT_IN) | frozenset(ep.name for ep in entry_points(group=GROUP))


def fabric_driver_class(name: str) -> type[FabricDriver]:
    """The driver class for ``name``; ConfigError naming the known ones."""
    target = BUILT_IN.get(name)
    if target is None:
        for ep in entry_points(group=GROUP):
            if ep.name == name:
                target = ep.value
    if target is None:
        raise ConfigError(
            f"no fabric driver {name!r}; known: {', '.join(sorted(fabric_driver_names()))}",
            key="driver",
        )
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"fabric driver {name!r}: cannot load {target}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, FabricDriver)):
        raise ConfigError(f"fabric driver {name!r}: {target} is not a FabricDriver")
    return cls


def fabric_driver(
    name: str,
    settings: Mapping[str, Any],
    *,
    port_key_limit: int = DEFAULT_PORT_KEY_LIMIT,
    pkey_range: tuple[int, int] = (PKEY_MIN, PKEY_MAX),
) -> FabricDriver:
    """A driver for one fabric; ConfigError naming the setting that is wrong."""
    return fabric_driver_class(name)(settings, port_key_limit=port_key_limit, pkey_range=pkey_range)
