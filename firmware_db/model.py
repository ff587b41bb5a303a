"""The values of the firmware compatibility database: a catalog (components, releases, rules,
baselines) and a node's inventory (components as reported, by channel), frozen. The loader
(catalog.py) builds a Catalog from YAML; the evaluator (rules.py) reads both. Nothing here does
I/O or decides anything.

Components are matched by stable identifiers only, never by display names: a component kind,
system model ids (SMBIOS/Redfish model or SKU ids), PCI vendor/device/subvendor/subdevice, an
NVIDIA PSID, a Redfish SoftwareId.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from firmware_db.versions import Version

KINDS = ("bios", "bmc", "nic", "hca", "gpu", "disk", "cpld", "psu", "nvme", "raid", "system")
OPS = ("eq", "ne", "lt", "le", "gt", "ge")
URGENCIES = ("low", "medium", "high", "critical")
ACTIVATIONS = ("none", "reboot", "ac-cycle", "mlxfwreset", "bmc-reset")
CHANNELS = ("ipmi", "redfish", "inband", "operator")


@dataclass(frozen=True)
class Match:
    """What a reported component must carry to be this catalog component. Every given field must
    match; an empty Match matches nothing (the loader refuses it)."""

    system_models: tuple[str, ...] = ()
    pci_vendor: int | None = None
    pci_device: int | None = None
    pci_subvendor: int | None = None
    pci_subdevice: int | None = None
    psids: tuple[str, ...] = ()
    software_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Requirement:
    """``component`` (a catalog component id, ``self`` or ``parent``) must be ``op`` ``version``.
    A hard requirement blocks; a soft one warns."""

    component: str
    op: str
    version: Version
    hard: bool = True
    line: int | None = None


@dataclass(frozen=True)
class Artifact:
    url: str
    sha256: str


@dataclass(frozen=True)
class Release:
    version: Version
    date: dt.date | None = None
    urgency: str = "medium"
    cves: tuple[str, ...] = ()
    artifact: Artifact | None = None
    activation: str = "reboot"
    requires: tuple[Requirement, ...] = ()
    # stepping: the versions this release may be installed over (empty: any older one)
    upgrade_from: tuple[Version, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class KnownBad:
    """A version, or a range (``ge``/``gt`` lower, ``le``/``lt`` upper bound), known bad."""

    reason: str
    version: Version | None = None
    lower: Version | None = None
    lower_inclusive: bool = True
    upper: Version | None = None
    upper_inclusive: bool = False
    line: int | None = None

    def covers(self, v: Version) -> bool:
        if self.version is not None:
            return v == self.version
        if self.lower is not None and (
            v < self.lower or (v == self.lower and not self.lower_inclusive)
        ):
            return False
        return not (
            self.upper is not None
            and (v > self.upper or (v == self.upper and not self.upper_inclusive))
        )


@dataclass(frozen=True)
class Component:
    """One catalog component: how to recognise it, its version format, its releases (sorted,
    oldest first) and its rules."""

    id: str
    kind: str
    format: str
    match: Match
    name: str = ""  # for people only; never used to match
    releases: tuple[Release, ...] = ()
    minimum: Version | None = None
    minimum_reason: str = ""
    known_bad: tuple[KnownBad, ...] = ()
    # the catalog component id of the parent (a NIC's system, say), for ``parent`` requirements
    parent: str | None = None
    line: int | None = None

    def release(self, v: Version) -> Release | None:
        return next((r for r in self.releases if r.version == v), None)

    @property
    def latest(self) -> Release | None:
        return self.releases[-1] if self.releases else None


@dataclass(frozen=True)
class Baseline:
    """A tested set of versions for a system model (as HPE's SPP): component id -> version."""

    name: str
    system_models: tuple[str, ...]
    versions: Mapping[str, Version]
    line: int | None = None


@dataclass(frozen=True)
class Catalog:
    name: str
    components: Mapping[str, Component]
    baselines: tuple[Baseline, ...] = ()
    # how old a reading may be before it is "stale"
    max_report_age: dt.timedelta = dt.timedelta(days=30)

    def baseline_for(self, system_model: str | None) -> Baseline | None:
        if system_model is None:
            return None
        return next((b for b in self.baselines if system_model in b.system_models), None)


# ---------------------------------------------------------------------- inventory


@dataclass(frozen=True)
class Identifiers:
    """What a channel reports about a component besides its version."""

    kind: str
    system_model: str | None = None
    pci_vendor: int | None = None
    pci_device: int | None = None
    pci_subvendor: int | None = None
    pci_subdevice: int | None = None
    psid: str | None = None
    software_id: str | None = None


@dataclass(frozen=True)
class Reading:
    """One channel's report of one component: the version it says runs (or is staged), when."""

    version: str
    channel: str
    at: dt.datetime
    staged: bool = False  # an image waiting for activation ("pending reboot")


@dataclass(frozen=True)
class InventoryComponent:
    """A component of one node (``slot``: where it sits, e.g. ``bios``, ``nic:0000:3b:00.0``),
    every reading of it, and its parent slot."""

    slot: str
    ids: Identifiers
    readings: tuple[Reading, ...] = field(default_factory=tuple)
    parent: str | None = None
    # the channels named this slot differently (another kind, another PCI id...): what differed
    conflict: str | None = None
