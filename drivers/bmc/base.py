"""The BMC driver contract: what the engine may ask of any BMC, async, keyword-only options.

Results are frozen values; errors are BmcError (transient or not) raised from the driver's edge.
A driver must never block the event loop: blocking libraries go through
provisiond.blocking.BlockingRunner. The engine wraps every call with a deadline and per-BMC
serialization (provisiond.bmc), so drivers need not.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar


class PowerState(StrEnum):
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


class PowerAction(StrEnum):
    ON = "on"
    OFF = "off"
    SOFT_OFF = "soft-off"
    RESET = "reset"
    CYCLE = "cycle"


class BootDevice(StrEnum):
    PXE = "pxe"
    DISK = "disk"
    BIOS = "bios"


@dataclass(frozen=True)
class BmcTarget:
    """Where a BMC is and how to log in. ``password`` is decrypted only for the call."""

    driver: str
    address: str
    port: int | None
    username: str | None
    password: str | None = field(repr=False)

    @property
    def key(self) -> str:
        """Identity for per-BMC serialization."""
        return f"{self.address}:{self.port or 0}"


@dataclass(frozen=True)
class BmcIdentity:
    manufacturer: str
    product: str
    firmware: str


class BmcDriver(abc.ABC):
    """One BMC protocol. Instances are shared across nodes; keep per-BMC state keyed by target."""

    name: ClassVar[str]
    #: what this driver can do beyond power: "boot-device", "identity", ...
    capabilities: ClassVar[frozenset[str]] = frozenset()

    @abc.abstractmethod
    async def validate(self, target: BmcTarget) -> BmcIdentity:
        """Cheap check of address and credentials; returns what the BMC says it is."""

    @abc.abstractmethod
    async def get_power(self, target: BmcTarget) -> PowerState: ...

    @abc.abstractmethod
    async def set_power(self, target: BmcTarget, *, action: PowerAction) -> None: ...

    @abc.abstractmethod
    async def set_boot_device(
        self, target: BmcTarget, *, device: BootDevice, persistent: bool = False, uefi: bool = True
    ) -> None: ...

    async def close(self) -> None:
        """Release sessions and workers; called once at daemon shutdown."""
        return None
