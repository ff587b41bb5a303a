"""OpenSM's partitions.conf: render it from a plan, and read it strictly. Pure: no I/O.

OpenSM fails OPEN. On any parse error it retries with its built-in default, in which every port is
a full member of the default partition (every tenant reaches every other). It also matches words
by prefix: a membership word it does not know (``Full``, ``FULL``, ``fulll``) silently means
limited, an empty one (``0x..=``) means full, ``m`` means ``mtu``. Its parser cuts lines at 4095
bytes. So:

- ``render`` writes one canonical form: the Default line, then tenant partitions sorted by P_Key,
  each ``name=0xKKKK`` with exact lowercase flags, one ``GUID=full|limited`` per line. Same plan,
  same bytes.
- ``parse`` accepts only what ``render`` writes, in any spacing and order, and reports everything
  else OpenSM would read differently from what a person reads, with the line: unknown or
  abbreviated words, missing membership words, decimal or octal numbers, repeated keys or GUIDs,
  ALL/SELF in a tenant partition, over-long lines, an unterminated definition. A file with
  ``problems`` must never be handed to OpenSM.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from drivers.fabric.base import DEFAULT_PKEY, Partition, format_pkey

# OpenSM reads lines with fgets into a 4096-byte buffer (4094 characters before the newline)
MAX_LINE = 4094
DEFAULT_LINE = "Default=0x7fff,ipoib : ALL=limited, SELF=full ;"
HEADER = (
    "# partitions.conf: written by provisiond; do not edit.\n"
    "# A hand edit is reported as drift and replaced on the next pass (docs/infiniband.md).\n"
)
_KEYWORDS = ("ALL", "ALL_CAS", "ALL_SWITCHES", "ALL_ROUTERS", "SELF", "NONE")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
# the only white space OpenSM's parser skips; anything else (\r, a no-break space) is part of a
# word to it, so a GUID followed by \r is a bad GUID and the whole file falls back
_WS = " \t\n"
_ODD = re.compile(r"[^\x20-\x7e\t]")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ConfProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class DefaultPartition:
    """The Default line: its flags and its keyword members (``ALL`` -> ``limited``...)."""

    ipoib: bool
    members: tuple[tuple[str, str], ...]
    mtu: int | None = None
    rate: int | None = None
    sl: int | None = None


@dataclass(frozen=True)
class ParsedConf:
    partitions: tuple[Partition, ...]
    default: DefaultPartition | None
    problems: tuple[ConfProblem, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------------- render


def render(partitions: Sequence[Partition], *, default_line: str = DEFAULT_LINE) -> str:
    """The whole file for ``partitions`` (tenant partitions; the default one comes from
    ``default_line``). Deterministic; the caller validates the plan first (base.check_plan)."""
    out = [HEADER, "\n", default_line.strip(), "\n"]
    for p in sorted(partitions, key=lambda p: p.pkey):
        flags = [f"{p.name}={format_pkey(p.pkey)}"]
        if p.ipoib:
            flags.append("ipoib")
        if p.index0:
            flags.append("indx0")
        for label, value in (("mtu", p.mtu), ("rate", p.rate), ("sl", p.sl)):
            if value is not None:
                flags.append(f"{label}={value}")
        out.append("\n")
        out.append(",".join(flags) + " :")
        if not p.members:
            out.append(" NONE ;\n")
            continue
        out.append("\n")
        members = list(p.members.items())
        for i, (guid, membership) in enumerate(members):
            end = " ;" if i == len(members) - 1 else ","
            out.append(f"  {guid}={membership}{end}\n")
    return "".join(out)


# ---------------------------------------------------------------------- parse


class _Reader:
    def __init__(self) -> None:
        self.problems: list[ConfProblem] = []
        self.partitions: list[Partition] = []
        self.default: DefaultPartition | None = None
        self.seen_pkeys: dict[int, int] = {}

    def problem(self, line: int, message: str) -> None:
        self.problems.append(ConfProblem(line, message))


def _number(text: str) -> int | None:
    """A number as we write it (0x-hex); None for decimal/octal, which OpenSM reads with
    strtoul(.., 0) (``0101`` is octal 65) and a person may read otherwise."""
    return int(text, 16) if _HEX.match(text) else None


def _statements(text: str, r: _Reader) -> list[tuple[int, str]]:
    """(first line, text) of each ``;``-terminated definition, comments removed."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for lineno, raw in enumerate(text.split("\n"), 1):
        if len(raw.encode()) > MAX_LINE:
            r.problem(lineno, f"line longer than {MAX_LINE} bytes: OpenSM splits it mid-token")
        odd = _ODD.search(raw)
        if odd is not None:
            r.problem(
                lineno,
                f"character U+{ord(odd.group()):04X} at column {odd.start() + 1}: OpenSM reads "
                "only plain ASCII, spaces and tabs (a CRLF line end makes a bad word)",
            )
        line = raw.split("#", 1)[0]
        while line:
            head, sep, line = line.partition(";")
            if head.strip(_WS) and not buf:
                start = lineno
            if buf or head.strip(_WS):
                buf.append(head)
            if sep:
                if buf:
                    out.append((start, "\n".join(buf)))
                else:
                    r.problem(lineno, "';' with no definition before it")
                buf = []
            else:
                break
    if buf:
        r.problem(start, "definition not terminated by ';'")
    return out


def _definition(lineno: int, text: str, r: _Reader) -> None:
    header, colon, ports = text.partition(":")
    if not colon:
        r.problem(lineno, "no ':' between the partition definition and its ports")
        return
    if ":" in ports:
        r.problem(lineno, "more than one ':' in a definition")
        return
    fields = [f.strip(_WS) for f in header.split(",")]
    name, eq, key = (s.strip(_WS) for s in fields[0].partition("="))
    if not eq or not key:
        r.problem(lineno, f"partition {name!r} has no P_Key (OpenSM would invent one)")
        return
    pkey = _number(key)
    if pkey is None or pkey > 0xFFFF:
        r.problem(lineno, f"P_Key {key!r} is not a 0x-hex 16-bit number")
        return
    if pkey & 0x8000:
        r.problem(
            lineno, f"P_Key {key} has the membership bit set; write {format_pkey(pkey & 0x7FFF)}"
        )
    pkey &= 0x7FFF
    if not _NAME.match(name):
        r.problem(lineno, f"partition name {name!r} is not 1-64 of A-Z a-z 0-9 _ . -")
    opts: dict[str, int | None] = {"mtu": None, "rate": None, "sl": None}
    ipoib = index0 = False
    for flag in fields[1:]:
        word, has_value, value = (s.strip(_WS) for s in flag.partition("="))
        if word in opts and has_value:
            number = int(value) if value.isdigit() else None
            if number is None:
                r.problem(lineno, f"{word}={value!r} is not a decimal number")
            opts[word] = number
        elif word == "ipoib" and not has_value:
            ipoib = True
        elif word == "indx0" and not has_value:
            index0 = True
        else:
            # OpenSM matches flags by prefix ('m' is mtu) and ignores unknown ones; defmember
            # changes the membership of every GUID written without a word
            r.problem(
                lineno,
                f"flag {flag!r} is not one provisiond writes (ipoib, indx0, mtu=, rate=, sl=)",
            )
    if pkey in r.seen_pkeys:
        r.problem(
            lineno,
            f"P_Key {format_pkey(pkey)} already defined on line {r.seen_pkeys[pkey]}: OpenSM "
            "merges both into the first",
        )
    r.seen_pkeys.setdefault(pkey, lineno)
    members: dict[str, str] = {}
    keywords: list[tuple[str, str]] = []
    offset = len(header) + 1
    for raw_entry in ports.split(","):
        at = lineno + text.count("\n", 0, offset + len(raw_entry) - len(raw_entry.lstrip()))
        offset += len(raw_entry) + 1
        entry = raw_entry.strip(_WS)
        if not entry:
            continue
        guid_text, has_word, word = (s.strip(_WS) for s in entry.partition("="))
        if guid_text in _KEYWORDS:
            if guid_text == "NONE":
                continue
            keywords.append((guid_text, word if has_word else "limited"))
            if pkey != DEFAULT_PKEY:
                r.problem(at, f"{guid_text} in tenant partition {name!r} makes ports members")
            if has_word and word not in ("full", "limited"):
                r.problem(at, f"membership {word!r} for {guid_text}: OpenSM reads it as limited")
            continue
        number = _number(guid_text)
        if number is None or number == 0 or number > 0xFFFF_FFFF_FFFF_FFFF:
            r.problem(at, f"{guid_text!r} is not a 0x-hex port GUID")
            continue
        guid = f"0x{number:016x}"
        if not has_word:
            r.problem(at, f"{guid} has no membership word: OpenSM makes it limited")
            membership = "limited"
        elif word in ("full", "limited"):
            membership = word
        else:
            # 'Full', 'FULL', 'fu', '' ...: OpenSM reads a prefix of "full"/"both" as that, and
            # anything else as limited, silently
            r.problem(at, f"{guid}={word!r}: membership must be exactly 'full' or 'limited'")
            membership = "limited"
        if guid in members:
            r.problem(at, f"{guid} listed twice in {name!r}")
        members[guid] = membership
    if pkey == DEFAULT_PKEY:
        if r.default is not None:
            return
        if members:
            r.problem(lineno, "GUIDs in the Default partition: provisiond writes keywords only")
        r.default = DefaultPartition(ipoib, tuple(keywords), opts["mtu"], opts["rate"], opts["sl"])
        if name != "Default":
            r.problem(lineno, f"the default partition is named {name!r}, not 'Default'")
        if index0:
            r.problem(lineno, "indx0 on the default partition")
        return
    r.partitions.append(
        Partition(
            name=name,
            pkey=pkey,
            members=members,
            ipoib=ipoib,
            mtu=opts["mtu"],
            rate=opts["rate"],
            sl=opts["sl"],
            index0=index0,
        )
    )


def parse(text: str) -> ParsedConf:
    """Read a partitions.conf strictly: the tenant partitions it defines, its Default line, and
    every place OpenSM would read it differently from what it seems to say."""
    r = _Reader()
    if text and not text.endswith("\n"):
        r.problem(text.count("\n") + 1, "file does not end with a newline (truncated?)")
    for lineno, statement in _statements(text, r):
        _definition(lineno, statement, r)
    return ParsedConf(tuple(r.partitions), r.default, tuple(r.problems))


def check_default_line(line: str) -> list[str]:
    """Why ``line`` must not be the Default line (empty: fine). It must parse, be key 0x7fff
    and never make ALL (or ALL_CAS) full members: that joins every tenant to every other."""
    parsed = parse(line.strip(_WS) + "\n")
    problems = [str(p) for p in parsed.problems]
    if parsed.partitions or parsed.default is None:
        problems.append("the default line must define exactly the partition Default=0x7fff")
        return problems
    for word, membership in parsed.default.members:
        if word in ("ALL", "ALL_CAS") and membership == "full":
            problems.append(
                f"{word}=full in the default partition lets every tenant reach every other"
            )
    return problems
