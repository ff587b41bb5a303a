"""The InfiniBand fabric driver contract, and the checks every partition plan passes first.

A fabric driver owns the partitions (P_Keys) of one subnet: ``apply`` makes the subnet manager
hold exactly the desired set (every tenant partition; the default partition is the driver's own
setting), ``read`` reads back what it holds, ``validate`` checks a plan without touching anything.
Values crossing this seam are frozen dataclasses; failures are ``FabricError``.

``check_plan`` is the part every driver shares, run before a driver renders anything: P_Keys in
0x0001-0x7ffe (0x7fff is the default partition) and unique, names OpenSM and UFM both accept and
unique, GUIDs that are 64-bit and non-zero, membership exactly ``full`` or ``limited``, and no
port holding more keys than its P_Key table (the default key counts). On an overflowing table
OpenSM silently stops enforcing keys on that port: such a plan is refused, never applied.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from provisiond.errors import DriverError, FieldProblem, ValidationError

DEFAULT_PKEY = 0x7FFF
PKEY_MIN, PKEY_MAX = 0x0001, 0x7FFE
DEFAULT_PORT_KEY_LIMIT = 128
MEMBERSHIPS = ("full", "limited")
# IPoIB MTU codes (IBTA): 1=256 2=512 3=1024 4=2048 5=4096
MTU_CODES = frozenset(range(1, 6))
# IBTA static rate codes OpenSM accepts in partitions.conf (2=2.5 Gb/s ... 22=600 Gb/s)
RATE_CODES = frozenset(range(2, 23))
# a partition name both OpenSM's grammar and UFM's API take as one token
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_GUID = re.compile(r"^(?:0x)?([0-9a-fA-F]{1,16})$")


class FabricError(DriverError):
    """The subnet manager (or its file, or its API) refused or could not be reached."""

    kind = "fabric"


class PlanError(ValidationError):
    """A partition plan that must not be applied; ``problems`` says where and why."""

    kind = "validation"


def normalize_guid(value: str) -> str:
    """``0x0002c90300001003`` form (lowercase, 16 digits) of a port GUID; ValueError otherwise.
    Accepts ``0002:c903:0000:1003`` (ibstat's grouping) and a missing ``0x``."""
    text = value.strip()
    if ":" in text:
        text = text.replace(":", "")
    m = _GUID.match(text)
    if m is None:
        raise ValueError(f"not a 64-bit GUID: {value!r}")
    number = int(m.group(1), 16)
    if number == 0:
        raise ValueError("GUID 0 names no port")
    return f"0x{number:016x}"


def format_pkey(pkey: int) -> str:
    return f"0x{pkey:04x}"


def parse_pkey(value: str | int) -> int:
    """A P_Key from ``0x0101``, ``257`` or an int; the full-membership bit (0x8000) is dropped
    (``0xffff`` is the default key). ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError(f"not a P_Key: {value!r}")
    if isinstance(value, int):
        number = value
    else:
        text = value.strip().lower()
        try:
            number = int(text, 16) if text.startswith("0x") else int(text, 10)
        except ValueError:
            raise ValueError(f"not a P_Key: {value!r}") from None
    if not 0 <= number <= 0xFFFF:
        raise ValueError(f"P_Key out of 16 bits: {value!r}")
    return number & 0x7FFF


@dataclass(frozen=True)
class Partition:
    """One partition: a P_Key and its members (port GUID -> ``full`` | ``limited``).

    ``index0`` puts the key at P_Key table index 0 on its members (applications that hard-code
    index 0 hang otherwise); ``mtu`` and ``rate`` are IBTA codes for the IPoIB broadcast group;
    ``sl`` its service level. ``members`` is kept sorted, so equal partitions compare equal
    and render identically."""

    name: str
    pkey: int
    members: Mapping[str, str] = field(default_factory=dict)
    ipoib: bool = False
    mtu: int | None = None
    rate: int | None = None
    sl: int | None = None
    index0: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", MappingProxyType(dict(sorted(self.members.items()))))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pkey": format_pkey(self.pkey),
            "ipoib": self.ipoib,
            "mtu": self.mtu,
            "rate": self.rate,
            "sl": self.sl,
            "index0": self.index0,
            "members": dict(self.members),
        }

    def options(self) -> tuple[Any, ...]:
        """Everything but the members: what a change of options compares."""
        return (self.name, self.ipoib, self.mtu, self.rate, self.sl, self.index0)


@dataclass(frozen=True)
class ReadBack:
    """What the subnet manager holds: its tenant partitions (never the default one) and anything
    it would misread (``problems``: OpenSM's file edited into something unsafe, say)."""

    partitions: tuple[Partition, ...]
    problems: tuple[str, ...] = ()
    # the rendered source when the driver has one (OpenSM: the partitions.conf text)
    source: str | None = None


@dataclass(frozen=True)
class ApplyResult:
    """One apply: the changes it made (``diff`` lines, empty when nothing changed) and what the
    read-back then showed."""

    diff: tuple[str, ...]
    observed: ReadBack
    # OpenSM: the file written; UFM: the requests sent (method and path)
    rendered: str | None = None
    requests: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """A validated desired set, as the driver would apply it."""

    partitions: tuple[Partition, ...]
    diff: tuple[str, ...]
    rendered: str | None = None
    requests: tuple[str, ...] = ()


class FabricDriver(abc.ABC):
    """One subnet's partitions. Built from the fabric's settings (``settings``: the driver's own
    keys, validated by the constructor, which raises ConfigError naming the key)."""

    name: ClassVar[str]

    def __init__(
        self,
        settings: Mapping[str, Any],
        *,
        port_key_limit: int = DEFAULT_PORT_KEY_LIMIT,
        pkey_range: tuple[int, int] = (PKEY_MIN, PKEY_MAX),
    ) -> None:
        self.settings = dict(settings)
        self.port_key_limit = port_key_limit
        # the tenant keys this fabric manages (a driver that can leave others alone does)
        self.pkey_range = pkey_range

    @abc.abstractmethod
    async def validate(self, partitions: Sequence[Partition]) -> Plan:
        """Check ``partitions`` (the whole desired set) and compute what applying it would change;
        PlanError when it must not be applied. Touches nothing."""

    @abc.abstractmethod
    async def apply(self, partitions: Sequence[Partition], *, force: bool = False) -> ApplyResult:
        """Make the subnet manager hold exactly ``partitions``, then read back. PlanError before
        anything is touched when the plan is unsafe; FabricError when the manager fails (the
        driver leaves it with its previous, valid configuration). ``force``: make the manager
        take the set again even when it seems to hold it (OpenSM: signal it anyway)."""

    @classmethod
    def plan_problems(cls, partitions: Sequence[Partition]) -> list[FieldProblem]:
        """What this kind of subnet manager cannot hold, beyond ``check_plan`` (UFM: some MTU
        and rate codes). Needs no settings: the API checks a change with it when it is made."""
        return []

    @abc.abstractmethod
    async def read(self) -> ReadBack:
        """The partitions the subnet manager holds now."""

    def comparable(self, partitions: Iterable[Partition]) -> list[Partition]:
        """``partitions`` in the form this driver compares them: what it cannot hold or report
        (UFM: an explicit default mtu, the index0 of a key without members) made equal on both
        sides. The reconciler puts what it applied and what ``read`` returned through this
        before it calls them different."""
        return list(partitions)

    async def close(self) -> None:  # noqa: B027 - drivers without resources need no close
        """Release connections."""


def check_plan(
    partitions: Sequence[Partition],
    *,
    port_key_limit: int = DEFAULT_PORT_KEY_LIMIT,
    pkey_range: tuple[int, int] = (PKEY_MIN, PKEY_MAX),
) -> list[FieldProblem]:
    """Every reason ``partitions`` must not be applied (empty: safe)."""
    problems: list[FieldProblem] = []
    lo, hi = pkey_range
    by_pkey: dict[int, str] = {}
    by_name: dict[str, int] = {}
    keys_per_port: dict[str, int] = {}
    for p in partitions:
        where = f"partitions[{format_pkey(p.pkey)}]"
        if p.pkey == DEFAULT_PKEY:
            problems.append(FieldProblem(where, "0x7fff is the default partition, not a tenant's"))
        elif not PKEY_MIN <= p.pkey <= PKEY_MAX:
            problems.append(FieldProblem(where, "P_Key outside 0x0001-0x7ffe", value=p.pkey))
        elif not lo <= p.pkey <= hi:
            problems.append(
                FieldProblem(
                    where,
                    f"P_Key outside this fabric's range {format_pkey(lo)}-{format_pkey(hi)}",
                )
            )
        if p.pkey in by_pkey:
            # OpenSM merges a repeated key into the first definition: two tenants would share it
            problems.append(FieldProblem(where, f"P_Key already used by {by_pkey[p.pkey]!r}"))
        by_pkey.setdefault(p.pkey, p.name)
        if not _NAME.match(p.name) or p.name == "Default":
            problems.append(
                FieldProblem(
                    f"{where}.name",
                    "partition name must be 1-64 of A-Z a-z 0-9 _ . - (and not 'Default')",
                    value=p.name,
                )
            )
        elif p.name in by_name:
            problems.append(
                FieldProblem(
                    f"{where}.name", f"name already used by {format_pkey(by_name[p.name])}"
                )
            )
        by_name.setdefault(p.name, p.pkey)
        if p.mtu is not None and p.mtu not in MTU_CODES:
            problems.append(FieldProblem(f"{where}.mtu", "mtu is an IBTA code 1-5", value=p.mtu))
        if p.rate is not None and p.rate not in RATE_CODES:
            problems.append(
                FieldProblem(f"{where}.rate", "rate is an IBTA rate code 2-22", value=p.rate)
            )
        if p.sl is not None and not 0 <= p.sl <= 15:
            problems.append(FieldProblem(f"{where}.sl", "sl is 0-15", value=p.sl))
        for guid, membership in p.members.items():
            try:
                ok = normalize_guid(guid) == guid
            except ValueError:
                ok = False
            if not ok:
                problems.append(
                    FieldProblem(
                        f"{where}.members",
                        "GUID must be 0x and 16 lowercase hex digits, not 0",
                        value=guid,
                    )
                )
            if membership not in MEMBERSHIPS:
                # OpenSM reads any other word (even 'Full') as limited, silently
                problems.append(
                    FieldProblem(
                        f"{where}.members[{guid}]",
                        "membership must be exactly 'full' or 'limited'",
                        value=membership,
                    )
                )
            keys_per_port[guid] = keys_per_port.get(guid, 0) + 1
    # every port also holds the default key
    for guid, count in sorted(keys_per_port.items()):
        if count + 1 > port_key_limit:
            problems.append(
                FieldProblem(
                    f"members[{guid}]",
                    f"port would hold {count + 1} P_Keys (default included); its table holds "
                    f"{port_key_limit} and OpenSM stops enforcing keys on a port that overflows",
                    value=count + 1,
                )
            )
    return problems


def ensure_plan(
    partitions: Sequence[Partition],
    *,
    port_key_limit: int = DEFAULT_PORT_KEY_LIMIT,
    pkey_range: tuple[int, int] = (PKEY_MIN, PKEY_MAX),
) -> None:
    problems = check_plan(partitions, port_key_limit=port_key_limit, pkey_range=pkey_range)
    if problems:
        raise PlanError(f"partition plan refused ({len(problems)} problems)", problems)


def _members_text(members: Mapping[str, str]) -> str:
    return ", ".join(f"{g}={m}" for g, m in members.items()) or "no members"


def diff_partitions(old: Iterable[Partition], new: Iterable[Partition]) -> tuple[str, ...]:
    """What going from ``old`` to ``new`` changes, one line per partition, sorted by P_Key:
    ``+`` added, ``-`` removed, ``~`` changed (members added/removed/changed, options)."""
    before = {p.pkey: p for p in old}
    after = {p.pkey: p for p in new}
    lines: list[str] = []
    for pkey in sorted(before.keys() | after.keys()):
        a, b = before.get(pkey), after.get(pkey)
        key = format_pkey(pkey)
        if a is None and b is not None:
            lines.append(f"+ {key} {b.name}: {_members_text(b.members)}")
        elif b is None and a is not None:
            lines.append(f"- {key} {a.name}: {_members_text(a.members)}")
        elif a is not None and b is not None and a != b:
            parts: list[str] = []
            if a.options() != b.options():
                parts.append(f"options {_options_text(a)} -> {_options_text(b)}")
            added = [g for g in b.members if g not in a.members]
            removed = [g for g in a.members if g not in b.members]
            changed = [g for g in b.members if g in a.members and a.members[g] != b.members[g]]
            parts += [f"+{g}={b.members[g]}" for g in added]
            parts += [f"-{g}" for g in removed]
            parts += [f"{g} {a.members[g]}->{b.members[g]}" for g in changed]
            lines.append(f"~ {key} {b.name}: {', '.join(parts)}")
    return tuple(lines)


def _options_text(p: Partition) -> str:
    bits = [p.name]
    if p.ipoib:
        bits.append("ipoib")
    if p.index0:
        bits.append("indx0")
    for label, value in (("mtu", p.mtu), ("rate", p.rate), ("sl", p.sl)):
        if value is not None:
            bits.append(f"{label}={value}")
    return ",".join(bits)
