"""The Ethernet switch driver contract, and the checks every change passes before a byte is sent.

A driver applies a batch (``ChangeSet``: VLAN creations/deletions and port changes) in ONE session
and persists once; reads ports, VLANs and LLDP neighbours back. Results are frozen values; errors
are ``SwitchError`` naming the switch, and the offending command when the switch refused one.

Before anything reaches a dialect, ``check(changes, policy, dialect)`` validates the whole batch:
VLAN ids 1-4094 and inside the switch's allow-list, port names matching the dialect's grammar and
the switch's allowed-ports pattern, descriptions free of control characters and quotes. A port
named ``swp1; reboot`` or carrying a newline is refused here, so no input can smuggle CLI.

Dialects (drivers/switch/dialects/<name>.py) are pure: ``render(changes)`` gives the commands,
``parse_*`` read ``show`` outputs, ``errors(output)`` finds the vendor's error lines. Transport
(netmiko, napalm) is separate from them.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from provisiond.errors import DriverError, FieldProblem, ValidationError

VLAN_MIN, VLAN_MAX = 1, 4094


class SwitchError(DriverError):
    """The switch refused or could not be reached. ``command``: the command it refused."""

    kind = "switch"

    def __init__(
        self, message: str, *, command: str | None = None, transient: bool = False
    ) -> None:
        super().__init__(message, transient=transient, command=command)
        self.command = command


class PortMode(StrEnum):
    ACCESS = "access"
    TRUNK = "trunk"


@dataclass(frozen=True)
class PortChange:
    """What one port must become. ``mode`` access needs ``vlan``; trunk needs ``native_vlan``
    and/or ``allowed_vlans``. ``None`` fields are left as they are."""

    port: str
    mode: PortMode | None = None
    vlan: int | None = None  # access VLAN
    native_vlan: int | None = None
    allowed_vlans: tuple[int, ...] = ()
    shutdown: bool | None = None
    mtu: int | None = None
    description: str | None = None


@dataclass(frozen=True)
class VlanChange:
    vlan: int
    name: str | None = None
    delete: bool = False


@dataclass(frozen=True)
class ChangeSet:
    """One batch for one switch: VLANs first, then ports, applied in one session, saved once."""

    vlans: tuple[VlanChange, ...] = ()
    ports: tuple[PortChange, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.vlans or self.ports)


@dataclass(frozen=True)
class ApplyResult:
    """What one apply sent: the commands (rendered by the dialect, saves excluded); from
    transactional drivers (napalm), the switch's own diff of the change (None: not known); and
    the ports asked for with ``read_back``, as read in the same session after the save (None:
    not read there; the caller reads them itself)."""

    commands: tuple[str, ...] = ()
    diff: str | None = None
    ports: Mapping[str, PortState] | None = None


@dataclass(frozen=True)
class PortState:
    """A port as the switch reports it."""

    port: str
    mode: PortMode | None  # None: routed / not a switchport / unknown
    vlan: int | None = None  # access VLAN
    native_vlan: int | None = None
    allowed_vlans: tuple[int, ...] = ()
    shutdown: bool | None = None
    mtu: int | None = None
    description: str | None = None


@dataclass(frozen=True)
class VlanState:
    vlan: int
    name: str | None = None


@dataclass(frozen=True)
class LldpNeighbor:
    """What the switch hears on one of its ports (LLDP): the neighbour's chassis id and port id
    as sent (a node running lldpd sends a MAC as chassis id and its interface name or MAC as
    port id), its system name and port description when sent."""

    local_port: str
    chassis_id: str | None
    port_id: str | None
    system_name: str | None = None
    port_description: str | None = None


_MAC_FORMS = re.compile(
    r"^(?:[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}"
    r"|[0-9a-fA-F]{4}([.-])[0-9a-fA-F]{4}\2[0-9a-fA-F]{4}|[0-9a-fA-F]{12})$"
)


def lldp_id(text: str | None) -> str | None:
    """An LLDP chassis or port id as provisiond compares them: a MAC in any vendor notation
    (``5254.0000.0101``, ``5254-0000-0101``, ``52-54-00-00-01-01``, ``525400000101``) becomes
    lowercase colon form; anything else (an interface name) is kept as sent, stripped."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    if _MAC_FORMS.match(text):
        hexs = re.sub(r"[^0-9a-fA-F]", "", text).lower()
        return ":".join(hexs[i : i + 2] for i in range(0, 12, 2))
    return text


@dataclass(frozen=True)
class SwitchTarget:
    """Where a switch is and how to log in; built from the inventory."""

    name: str
    driver: str
    address: str
    port: int = 22
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return f"{self.address}:{self.port}"


# --------------------------------------------------------------------------- allow-lists


def parse_vlan_ranges(text: str) -> frozenset[int]:
    """ "100-199,300" -> {100..199, 300}; raises ValueError naming the bad part."""
    out: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo_s, sep, hi_s = part.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if sep else lo
        except ValueError:
            raise ValueError(f"{part!r} is not a VLAN id or range") from None
        if not (VLAN_MIN <= lo <= hi <= VLAN_MAX):
            raise ValueError(f"{part!r}: VLAN ids are {VLAN_MIN}-{VLAN_MAX}, low to high")
        out.update(range(lo, hi + 1))
    return frozenset(out)


def format_vlan_ranges(vlans: Iterable[int]) -> str:
    """{100, 101, 102, 300} -> "100-102,300" (sorted, compact)."""
    items = sorted(set(vlans))
    parts: list[str] = []
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        parts.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ",".join(parts)


@dataclass(frozen=True)
class Policy:
    """What provisiond may touch on one switch: VLANs (allow-list) and ports (a regex the whole
    port name must match; None: any port the dialect's grammar accepts)."""

    allowed_vlans: frozenset[int]
    allowed_ports: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, allowed_vlans: str, allowed_ports: str | None = None) -> Policy:
        try:
            ports = re.compile(allowed_ports) if allowed_ports else None
        except (re.error, OverflowError, RecursionError) as exc:
            raise ValueError(f"allowed_ports {allowed_ports!r}: not a regex: {exc}") from None
        return cls(parse_vlan_ranges(allowed_vlans), ports)


# --------------------------------------------------------------------------- dialects

_SAFE_TEXT = re.compile(r"^[A-Za-z0-9 ._:/@#+=,()\[\]-]{0,80}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class Dialect(abc.ABC):
    """One switch CLI: its port grammar, how a batch becomes commands, how outputs are read."""

    name: ClassVar[str]
    netmiko_device_type: ClassVar[str]
    # the whole port name must match (no spaces, no separators the CLI would split on)
    port_pattern: ClassVar[re.Pattern[str]]

    # render() needs the ports' current state (a CLI whose list commands only add or remove
    # named VLANs, so replacing a list means knowing what is there): the transport reads the
    # batch's ports in the same session, just before rendering, and passes them as ``current``
    needs_current: ClassVar[bool] = False

    @abc.abstractmethod
    def render(
        self, changes: ChangeSet, current: Mapping[str, PortState] | None = None
    ) -> list[str]:
        """Configuration commands for the batch (no save). Pure. ``current``: the batch's
        ports as read just before (only given to dialects with ``needs_current``)."""

    @abc.abstractmethod
    def save_commands(self) -> list[str]:
        """Persist the running configuration (once per session)."""

    @abc.abstractmethod
    def show_ports_command(self, ports: Sequence[str]) -> list[str]:
        """Commands whose output parse_ports reads."""

    @abc.abstractmethod
    def parse_ports(self, output: str) -> dict[str, PortState]:
        """Port states from the show output. Pure."""

    @abc.abstractmethod
    def show_vlans_command(self) -> str: ...

    @abc.abstractmethod
    def parse_vlans(self, output: str) -> dict[int, VlanState]: ...

    @abc.abstractmethod
    def show_lldp_command(self) -> list[str]:
        """Commands whose output parse_lldp reads (every port's neighbours)."""

    @abc.abstractmethod
    def parse_lldp(self, output: str) -> list[LldpNeighbor]:
        """The neighbours from the show output, one per (local port, neighbour). Pure."""

    error_patterns: ClassVar[tuple[re.Pattern[str], ...]] = ()
    # output that means "try the save/commit again" (Junos: configuration database locked)
    retry_patterns: ClassVar[tuple[re.Pattern[str], ...]] = ()
    # rendering a VLAN creation for a VLAN that exists is harmless (EOS ``vlan N``, NVUE ``nv
    # set``, Junos ``set``; SONiC's rendering guards its ``config vlan add``): the reconciler then
    # creates what its cache does not know without reading the switch first. A dialect whose
    # creation fails on an existing VLAN sets False and gets the VLANs read first.
    vlan_create_idempotent: ClassVar[bool] = True
    # the save checks the ports' configuration (Junos ``commit``): a refused save may be a
    # port's fault, not only the switch's
    save_validates: ClassVar[bool] = False
    # the command that enters configuration mode, when not the transport's default
    config_command: ClassVar[str | None] = None

    def errors(self, output: str) -> list[str]:
        """The lines of ``output`` that say the switch refused something."""
        return [
            line.strip()
            for line in output.splitlines()
            if any(p.search(line) for p in self.error_patterns)
        ]


# no allow-list: every VLAN (a driver called without a switch's policy)
ANY_VLAN = Policy(frozenset(range(VLAN_MIN, VLAN_MAX + 1)))


def check(changes: ChangeSet, policy: Policy, dialect: Dialect) -> None:
    """Refuse the whole batch (ValidationError listing every problem) unless every VLAN is in
    range and allowed, every port matches the dialect's grammar and the allowed ports, and every
    text is plain. Nothing is sent for a batch that fails here."""
    problems: list[FieldProblem] = []

    def vlan_ok(where: str, vlan: int | None) -> None:
        if vlan is None:
            return
        if not (VLAN_MIN <= vlan <= VLAN_MAX):
            problems.append(FieldProblem(where, f"VLAN ids are {VLAN_MIN}-{VLAN_MAX}", value=vlan))
        elif vlan not in policy.allowed_vlans:
            problems.append(
                FieldProblem(where, "VLAN outside this switch's allow-list", value=vlan)
            )

    for i, v in enumerate(changes.vlans):
        vlan_ok(f"vlans[{i}].vlan", v.vlan)
        if v.name is not None and not _SAFE_NAME.match(v.name):
            problems.append(
                FieldProblem(f"vlans[{i}].name", "letters, digits, _ and - only", value=v.name)
            )
    seen: set[str] = set()
    for i, p in enumerate(changes.ports):
        where = f"ports[{i}]"
        if not dialect.port_pattern.fullmatch(p.port):
            problems.append(
                FieldProblem(f"{where}.port", f"not a {dialect.name} port name", value=repr(p.port))
            )
        elif policy.allowed_ports is not None and not policy.allowed_ports.fullmatch(p.port):
            problems.append(
                FieldProblem(f"{where}.port", "port outside the allowed ports", value=p.port)
            )
        if p.port in seen:
            problems.append(FieldProblem(f"{where}.port", "port twice in one batch", value=p.port))
        seen.add(p.port)
        if p.mode is PortMode.ACCESS and p.vlan is None:
            problems.append(FieldProblem(f"{where}.vlan", "access mode needs a VLAN"))
        if p.mode is PortMode.TRUNK and p.native_vlan is None and not p.allowed_vlans:
            problems.append(FieldProblem(f"{where}.allowed_vlans", "trunk needs VLANs"))
        vlan_ok(f"{where}.vlan", p.vlan)
        vlan_ok(f"{where}.native_vlan", p.native_vlan)
        for allowed in p.allowed_vlans:
            vlan_ok(f"{where}.allowed_vlans", allowed)
        if p.mtu is not None and not (576 <= p.mtu <= 9216):
            problems.append(FieldProblem(f"{where}.mtu", "MTU is 576-9216", value=p.mtu))
        if p.description is not None and not _SAFE_TEXT.match(p.description):
            problems.append(
                FieldProblem(
                    f"{where}.description",
                    "up to 80 letters, digits, spaces and ._:/@#+=,()[]- only",
                    value=repr(p.description),
                )
            )
    if problems:
        raise ValidationError("switch change refused before sending", problems)


class SwitchDriver(abc.ABC):
    """A transport for one or more dialects. Async; the reconciler serializes calls per switch
    and gives each a deadline."""

    name: ClassVar[str]

    @abc.abstractmethod
    async def apply(
        self,
        target: SwitchTarget,
        changes: ChangeSet,
        policy: Policy | None = None,
        *,
        read_back: Sequence[str] = (),
    ) -> ApplyResult:
        """Check the batch against ``policy`` (nothing is sent for a bad batch), apply it in one
        session and persist once; raise SwitchError (with the refused command) on the first
        error, leaving the running config to the read-back. ``read_back``: ports to read after
        the save, in the same session when the transport can (``ApplyResult.ports``)."""

    @abc.abstractmethod
    async def read_ports(
        self, target: SwitchTarget, ports: Sequence[str]
    ) -> dict[str, PortState]: ...

    @abc.abstractmethod
    async def read_vlans(self, target: SwitchTarget) -> dict[int, VlanState]: ...

    @abc.abstractmethod
    async def lldp_neighbors(self, target: SwitchTarget) -> list[LldpNeighbor]: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions and threads."""
