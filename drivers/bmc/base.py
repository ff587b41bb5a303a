"""The BMC driver contract: what the engine may ask of any BMC, async, keyword-only options.

Results are frozen values; errors are BmcError (``transient`` says whether a retry may help) raised
from the driver's edge, with a message that names the BMC and what it said. A driver must never
block the event loop: blocking libraries run off the loop (provisiond.blocking.BlockingRunner) or,
when they can hang forever (pyghmi), in killable worker processes (drivers.bmc.ipmi). The gateway
(provisiond.bmc) wraps every call with a deadline, one call at a time per BMC and the driver's
minimum interval between commands, so drivers need not.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from provisiond.errors import BmcError


class PowerState(StrEnum):
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


class PowerAction(StrEnum):
    ON = "on"
    OFF = "off"  # hard off
    SOFT_OFF = "soft-off"  # ACPI shutdown request; the OS decides
    RESET = "reset"  # warm reset, power stays on
    CYCLE = "cycle"  # off then on

    @property
    def expected(self) -> PowerState:
        """The power state this action ends in."""
        return PowerState.OFF if self in (PowerAction.OFF, PowerAction.SOFT_OFF) else PowerState.ON


class BootDevice(StrEnum):
    PXE = "pxe"
    DISK = "disk"
    BIOS = "bios"  # firmware setup
    NONE = "none"  # no override: the firmware's own boot order


class AuthError(BmcError):
    """The BMC refused the credentials. Never retried: a retry can lock the account out."""

    kind = "bmc-auth"

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


class Unsupported(BmcError):
    """The BMC does not offer this (no FRU, no soft-off, ...)."""

    kind = "bmc-unsupported"

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


@dataclass(frozen=True)
class BmcTarget:
    """Where a BMC is and how to log in. ``password`` is decrypted only for the call.

    ``address`` is an IP address or host name for IPMI, a URL (https://host[:port]) for Redfish;
    ``system_id`` picks one system behind a Redfish service (None: the only one there is).
    """

    driver: str
    address: str
    port: int | None
    username: str | None
    password: str | None = field(repr=False)
    system_id: str | None = None

    @property
    def key(self) -> str:
        """Identity for per-BMC serialization (and IPMI worker sharding)."""
        base = f"{self.address}:{self.port or 0}"
        return f"{base}/{self.system_id}" if self.system_id else base


@dataclass(frozen=True)
class BmcIdentity:
    """What the BMC says it is (IPMI Get Device ID; Redfish Manager)."""

    manufacturer: str
    product: str
    firmware: str
    manufacturer_id: int | None = None  # IANA enterprise number (IPMI)
    product_id: int | None = None
    device_id: int | None = None


@dataclass(frozen=True)
class BootSetting:
    device: BootDevice
    persistent: bool
    uefi: bool | None  # None: the BMC did not say
    #: IPMI: the boot-flags-valid bit (many BMCs clear it 60 s after it was set)
    valid: bool = True


@dataclass(frozen=True)
class SystemInventory:
    """FRU (IPMI) or ComputerSystem (Redfish) facts; empty strings where the BMC gives nothing."""

    manufacturer: str = ""
    product: str = ""
    serial: str = ""
    part_number: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


class BmcDriver(abc.ABC):
    """One BMC protocol. Instances are shared across nodes; keep per-BMC state keyed by target.

    ``options`` is this driver's section of the daemon config (``[drivers.<name>]``)."""

    name: ClassVar[str]
    #: seconds the gateway leaves between two commands to one BMC (many BMCs fall over under
    #: bursts); drivers read it from their options
    min_interval: float = 0.0

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: Mapping[str, Any] = dict(options or {})

    @abc.abstractmethod
    async def validate(self, target: BmcTarget) -> BmcIdentity:
        """Cheap check of address and credentials; returns what the BMC says it is."""

    @abc.abstractmethod
    async def get_power(self, target: BmcTarget) -> PowerState: ...

    @abc.abstractmethod
    async def set_power(self, target: BmcTarget, *, action: PowerAction, wait: float = 0) -> None:
        """Ask for ``action``. With ``wait`` > 0, return only once the BMC reports
        ``action.expected`` (raise a transient BmcError when it does not within ``wait`` s);
        some BMCs (and the Redfish emulator) apply power changes seconds after accepting them."""

    @abc.abstractmethod
    async def set_boot_device(
        self, target: BmcTarget, *, device: BootDevice, persistent: bool = False, uefi: bool = True
    ) -> None: ...

    @abc.abstractmethod
    async def get_boot_device(self, target: BmcTarget) -> BootSetting: ...

    async def get_inventory(self, target: BmcTarget) -> SystemInventory:
        raise Unsupported(f"{self.name} driver: no system inventory for BMC {target.key}")

    async def close(self) -> None:
        """Release sessions and workers; called once at daemon shutdown."""
        return None
