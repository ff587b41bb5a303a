"""Which switch driver serves a switch's driver name: the one place those names resolve.

The seven CLI dialect names (drivers/switch/dialects: ``arista_eos``, ``cisco_nxos``,
``comware``, ``cumulus_nvue``, ``dell_os10``, ``junos``, ``sonic``) go to the netmiko transport;
``napalm_eos``, ``napalm_junos`` and ``napalm_nxos_ssh`` to the napalm one (only ``napalm_eos``
is tested against a switch, the lab's eAPI), whose commands come from the matching dialect
(``dialect_for``). ``SwitchDrivers`` holds one instance per transport (its per-switch session
locks and thread pool are shared by every switch it serves), built from the per-transport option
sections (``{"netmiko": {...}, "napalm": {...}}``).

Importing this module imports neither netmiko nor napalm; the drivers load them when they first
talk to a switch. It never talks to a switch itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from drivers.switch.base import Dialect, SwitchDriver
from drivers.switch.dialects import DIALECTS, dialect
from drivers.switch.napalm_driver import NAPALM_PLATFORMS, NapalmDriver
from drivers.switch.netmiko_driver import NetmikoDriver
from provisiond.errors import ConfigError

# transport name (its option section) -> how to build it
_FACTORIES: dict[str, Callable[[Mapping[str, Any] | None], SwitchDriver]] = {
    NetmikoDriver.name: NetmikoDriver,
    NapalmDriver.name: NapalmDriver,
}


def switch_driver_names() -> frozenset[str]:
    """Every driver name a switch record may carry."""
    return frozenset(DIALECTS) | frozenset(NAPALM_PLATFORMS)


def switch_driver_class(name: str) -> type[SwitchDriver]:
    """The driver class for switch driver ``name``; ConfigError names the known ones."""
    if name in DIALECTS:
        return NetmikoDriver
    if name in NAPALM_PLATFORMS:
        return NapalmDriver
    raise ConfigError(
        f"no switch driver {name!r}; known: {', '.join(sorted(switch_driver_names()))}",
        key="driver",
    )


def dialect_for(name: str) -> Dialect:
    """The dialect that renders and parses for switch driver ``name`` (``napalm_eos``:
    ``arista_eos``); ConfigError for an unknown name."""
    switch_driver_class(name)
    platform = NAPALM_PLATFORMS.get(name)
    return dialect(platform.dialect if platform is not None else name)


class SwitchDrivers:
    """One driver instance per transport, made on first use, closed together."""

    def __init__(self, options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._options = dict(options or {})
        self._instances: dict[str, SwitchDriver] = {}

    def get(self, name: str) -> SwitchDriver:
        """The driver for switch driver ``name``; ConfigError for an unknown name."""
        transport = switch_driver_class(name).name
        if transport not in self._instances:
            self._instances[transport] = _FACTORIES[transport](self._options.get(transport))
        return self._instances[transport]

    async def close(self) -> None:
        for driver in self._instances.values():
            await driver.close()
        self._instances.clear()


__all__ = ["SwitchDrivers", "dialect_for", "switch_driver_class", "switch_driver_names"]
