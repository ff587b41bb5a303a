"""Firmware version formats: parse a vendor's version text, or render a raw integer, and order them.

Owns turning version text (or the integer a device reports) into a comparable ``Version`` for
one named format, in the spirit of fwupd's version formats (``FwupdVersionFormat``; the layouts
are fwupd's ``fu_version_from_uint32`` in libfwupdplugin/fu-version-common.c). It must never
guess: text that does not match the named format is a ``VersionError``, not a best effort, and
versions of different families never compare (``<`` and friends raise; ``==`` is False).

Families and formats (text is the version as written, stripped of surrounding whitespace):

- ``plain`` (family ``plain``): any non-empty printable string; ordered as plain strings
  (exact, case-sensitive), as fwupd's ``plain``.
- ``dotted`` (family ``dotted``): vendor versions such as ``22.39.1002``, ``2.14.1a``,
  ``1.0.23-rc1``, ``A01``. Sections are split on ``.``, ``-`` and ``_`` (all three are the same
  separator); a section is runs of ASCII digits (compared as numbers, so ``01`` == ``1``) and of
  other characters (compared as case-sensitive strings). Compared token by token; following
  fwupd's ``fu_version_compare``: a shorter version sorts first (``1.0`` < ``1.0.1``), a suffix
  sorts after the bare number (``1.0`` < ``1.0a`` < ``1.0b``, and ``1.0.23`` < ``1.0.23-rc1``:
  a dash does not make a pre-release), and ``~`` sorts before everything, even the end
  (``1.2.3~rc1`` < ``1.2.3``). Where a text token meets a number, text sorts first (``1.A`` <
  ``1.0``). Two deliberate differences from fwupd, which compares a section's leading number and
  then the rest character by character: digits inside a suffix are numbers (``rc9`` < ``rc10``),
  and a section without a leading number is not read as 0 (fwupd has ``1.0`` < ``1.alpha``).
  Whitespace inside, empty sections (``1..2``, ``.1``, ``1.``) and numbers over 64 digits are
  refused.
- Integer-backed formats (ONE family ``integer``; the key is the raw uint32, so the same integer
  as ``triplet`` and as ``quad`` is equal). Fields are most significant first, in decimal
  (``bcd``: two BCD digits a byte), ``.``-separated; leading zeros are accepted (Supermicro BMCs
  write ``01.01.07``) and the text is kept as written; a field out of range, a sign, an empty or
  missing or extra field, or any other character is refused, so parsing rebuilds the raw exactly.

  ========================  ====================  =========================================
  format                    text                  raw uint32 layout (bit 31 first)
  ========================  ====================  =========================================
  ``number``                ``N``                 32 bits decimal
  ``pair``                  ``N.N``               16.16
  ``triplet``               ``N.N.N``             8.8.16 (``AA.BB.CCDD``)
  ``quad``                  ``N.N.N.N``           8.8.8.8
  ``bcd``                   ``N.N.N.N``           4 bytes, each 2 BCD digits (0-99)
  ``hex``                   ``0xHHHHHHHH``        32 bits; rendered ``0x%08x``, parsed as
                                                  ``0x`` and 1-8 hex digits of either case
  ``intel-me``              ``N.N.N.N``           3.5.8.16, the first field shown +11 (11-18)
  ``intel-me2``             ``N.N.N.N``           4.4.8.16 (``A.B.CC.DDDD``)
  ``dell-bios``             ``N.N.N``             8.8.8 of the low 24 bits (``BB.CC.DD``)
  ``dell-bios-msb``         ``N.N.N``             8.8.8 of the high 24 bits (``AA.BB.CC``)
  ``surface``               ``N.N.N``             8.16.8
  ``surface-legacy``        ``N.N.N``             10.12.10
  ========================  ====================  =========================================

  fwupd renders bits outside the fields (dell-bios's top byte, dell-bios-msb's low byte) as
  nothing, and a non-BCD nibble as a number anyway (0x0A and 0x10 are both "10"); ``from_raw``
  refuses such raws instead, so that every rendering parses back to the same integer. fwupd's
  16- and 64-bit renderings (a 16-bit ``bcd`` is ``N.N``; a 64-bit ``quad`` is 16.16.16.16) are
  not these formats; register another format for them.

``register()`` adds a format: an integer-backed one joins the ``integer`` family (its versions
carry ``raw`` and the key ``(raw,)``), any other one is its own family (``raw`` stays None).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

__all__ = ["FORMATS", "Version", "VersionError", "VersionFormat", "compare", "from_raw"]
__all__ += ["known_formats", "parse", "register", "sort_key"]

INTEGER_FAMILY = "integer"
_UINT32_MAX = 0xFFFFFFFF


class VersionError(ValueError):
    """Text or a raw value that is not a version of the named format, an unknown format, or two
    versions that cannot be compared."""


@dataclass(frozen=True, eq=False)
class Version:
    """One parsed version. Compare only through the operators or ``compare()``."""

    text: str
    format: str
    key: tuple[Any, ...]
    raw: int | None = None
    # ``integer`` for integer-backed versions, otherwise the format's own name; and the hash of
    # (family, key): both computed once (versions are compared and hashed a great deal when a
    # fleet is judged)
    family: str = field(init=False, repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        family = INTEGER_FAMILY if self.raw is not None else self.format
        object.__setattr__(self, "family", family)
        object.__setattr__(self, "_hash", hash((family, self.key)))

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._hash == other._hash and self.family == other.family and self.key == other.key

    def __hash__(self) -> int:
        return self._hash

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return compare(self, other) < 0

    def __le__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return compare(self, other) <= 0

    def __gt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return compare(self, other) > 0

    def __ge__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return compare(self, other) >= 0


@runtime_checkable
class VersionFormat(Protocol):
    """A named version format; each is one object in the registry."""

    name: str
    integer: bool

    def parse(self, text: str) -> Version: ...

    def from_raw(self, value: int) -> Version: ...


def _clean(text: object, name: str, shape: str) -> str:
    if not isinstance(text, str):
        raise VersionError(
            f"{text!r} is not a {name} version ({shape}): a {type(text).__name__}, not text"
        )
    return text.strip()


def _check_raw(value: object, name: str, shape: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise VersionError(f"{value!r} is not a raw {name} version ({shape}): not an integer")
    if not 0 <= value <= _UINT32_MAX:
        raise VersionError(
            f"{value} is not a raw {name} version ({shape}): outside 0..{_UINT32_MAX}"
        )
    return value


_DIGITS = re.compile(r"[0-9]+", re.ASCII)


class _TextFormat:
    """Base of the non-integer formats: no raw form."""

    name = ""
    shape = ""
    integer = False

    def from_raw(self, value: int) -> Version:
        raise VersionError(f"{self.name} is not an integer-backed format; {value!r} has no text")


class _Plain(_TextFormat):
    name = "plain"
    shape = "any non-empty printable text"

    def parse(self, text: str) -> Version:
        s = _clean(text, self.name, self.shape)
        if not s or not s.isprintable():
            raise VersionError(f"{text!r} is not a {self.name} version ({self.shape})")
        return Version(s, self.name, (s,))


# dotted tokens, ranked so that plain tuple comparison gives the order documented above
_TILDE, _END, _SEP, _TEXT, _NUM = range(5)
_DOTTED_TOKEN = re.compile(r"([0-9]+)|([._-])|(~)|([^0-9._~-]+)", re.ASCII)
_MAX_DOTTED_DIGITS = 64


class _Dotted(_TextFormat):
    name = "dotted"
    shape = "sections of digits and text separated by '.', '-' or '_'"

    def parse(self, text: str) -> Version:
        s = _clean(text, self.name, self.shape)

        def bad(why: str) -> VersionError:
            return VersionError(f"{text!r} is not a {self.name} version ({self.shape}): {why}")

        if not s:
            raise bad("empty")
        if any(c.isspace() or not c.isprintable() for c in s):
            raise bad("whitespace or a control character inside")
        key: list[tuple[int, Any]] = []
        for m in _DOTTED_TOKEN.finditer(s):  # bounded by len(s); every character is one token
            digits, sep, tilde, word = m.groups()
            if digits is not None:
                significant = digits.lstrip("0") or "0"
                if len(significant) > _MAX_DOTTED_DIGITS:
                    raise bad(f"a number longer than {_MAX_DOTTED_DIGITS} digits")
                key.append((_NUM, int(significant)))
            elif sep is not None:
                if not key or key[-1][0] == _SEP:
                    raise bad("an empty section")
                key.append((_SEP, ""))
            elif tilde is not None:
                key.append((_TILDE, ""))
            else:
                key.append((_TEXT, word))
        if key[-1][0] == _SEP:
            raise bad("an empty section")
        key.append((_END, ""))
        return Version(s, self.name, tuple(key))


@dataclass(frozen=True)
class _Field:
    shift: int
    bits: int
    offset: int = 0  # added when shown (intel-me's major is stored minus 11)
    bcd: bool = False  # the field is one byte of two BCD digits

    @property
    def mask(self) -> int:
        return ((1 << self.bits) - 1) << self.shift

    @property
    def top(self) -> int:
        """The largest value shown."""
        return 99 if self.bcd else (1 << self.bits) - 1 + self.offset


class _BitFields:
    """An integer-backed format of decimal fields taken from bit ranges of a uint32."""

    integer = True

    def __init__(self, name: str, fields: tuple[_Field, ...], shape: str = "") -> None:
        self.name = name
        self.fields = fields
        self.used = 0
        for f in fields:
            self.used |= f.mask
        widths = ".".join(f"{f.bits}(+{f.offset})" if f.offset else str(f.bits) for f in fields)
        self.shape = shape or f"{'.'.join('N' * len(fields))}, {widths} bits"

    def _bad(self, text: str, why: str) -> VersionError:
        return VersionError(f"{text!r} is not a {self.name} version ({self.shape}): {why}")

    def parse(self, text: str) -> Version:
        s = _clean(text, self.name, self.shape)
        parts = s.split(".")
        if len(parts) != len(self.fields):
            raise self._bad(text, f"{len(parts)} field(s), not {len(self.fields)}")
        raw = 0
        for i, (part, f) in enumerate(zip(parts, self.fields, strict=True), start=1):
            if not _DIGITS.fullmatch(part):
                raise self._bad(text, f"field {i} {part!r} is not decimal digits")
            significant = part.lstrip("0") or "0"
            n = int(significant) if len(significant) <= 10 else -1
            if not f.offset <= n <= f.top:
                raise self._bad(text, f"field {i} {part} is outside {f.offset}..{f.top}")
            n -= f.offset
            if f.bcd:
                n = (n // 10) << 4 | n % 10
            raw |= n << f.shift
        return Version(s, self.name, (raw,), raw)

    def from_raw(self, value: int) -> Version:
        raw = _check_raw(value, self.name, self.shape)
        if raw & ~self.used:
            raise VersionError(
                f"{raw:#x} is not a raw {self.name} version ({self.shape}): "
                f"bits outside the fields are set ({raw & ~self.used & _UINT32_MAX:#x})"
            )
        shown: list[str] = []
        for f in self.fields:
            n = (raw >> f.shift) & ((1 << f.bits) - 1)
            if f.bcd:
                hi, lo = n >> 4, n & 0xF
                if hi > 9 or lo > 9:
                    raise VersionError(
                        f"{raw:#x} is not a raw {self.name} version ({self.shape}): "
                        f"byte {n:#04x} is not two BCD digits"
                    )
                n = hi * 10 + lo
            shown.append(str(n + f.offset))
        text = ".".join(shown)
        return Version(text, self.name, (raw,), raw)


_HEX = re.compile(r"0x([0-9a-fA-F]{1,8})", re.ASCII)


class _Hex:
    name = "hex"
    integer = True
    shape = "0xHHHHHHHH, 32 bits"

    def parse(self, text: str) -> Version:
        s = _clean(text, self.name, self.shape)
        m = _HEX.fullmatch(s)
        if m is None:
            raise VersionError(
                f"{text!r} is not a {self.name} version ({self.shape}): "
                "expected '0x' and 1 to 8 hex digits"
            )
        raw = int(m.group(1), 16)
        return Version(s, self.name, (raw,), raw)

    def from_raw(self, value: int) -> Version:
        raw = _check_raw(value, self.name, self.shape)
        return Version(f"0x{raw:08x}", self.name, (raw,), raw)


def _fields(*spec: tuple[int, int]) -> tuple[_Field, ...]:
    """Fields from (shift, bits) pairs."""
    return tuple(_Field(shift, bits) for shift, bits in spec)


_REGISTRY: dict[str, VersionFormat] = {}
_LOCK = threading.Lock()
FORMATS: Mapping[str, VersionFormat] = MappingProxyType(_REGISTRY)


def register(fmt: VersionFormat) -> None:
    """Add a format to the registry; a name already taken is refused."""
    if not isinstance(fmt, VersionFormat):
        raise TypeError(f"{fmt!r} is not a VersionFormat (name, integer, parse, from_raw)")
    name = fmt.name
    if not isinstance(name, str) or not name or name != name.strip():
        raise VersionError(f"a version format needs a non-empty name, not {name!r}")
    with _LOCK:
        if name in _REGISTRY:
            raise VersionError(f"version format {name!r} is already registered")
        _REGISTRY[name] = fmt


def known_formats() -> list[str]:
    return sorted(_REGISTRY)


def _format(fmt: str) -> VersionFormat:
    found = _REGISTRY.get(fmt) if isinstance(fmt, str) else None
    if found is None:
        raise VersionError(f"unknown version format {fmt!r} (known: {', '.join(known_formats())})")
    return found


def parse(text: str, fmt: str) -> Version:
    """The version ``text`` in format ``fmt``; VersionError if it is not one (never a guess)."""
    return _format(fmt).parse(text)


def from_raw(value: int, fmt: str) -> Version:
    """The integer ``value`` rendered in the integer-backed format ``fmt``."""
    return _format(fmt).from_raw(value)


def compare(a: Version, b: Version) -> int:
    """-1, 0 or 1; VersionError for versions of different families."""
    if a.family != b.family:
        raise VersionError(
            f"cannot compare {a.text!r} ({a.format}, family {a.family}) with "
            f"{b.text!r} ({b.format}, family {b.family})"
        )
    return (a.key > b.key) - (a.key < b.key)


def sort_key(v: Version) -> tuple[Any, ...]:
    """A key ordering versions of one family as ``compare()`` does (mixing families: TypeError)."""
    return v.key


_BUILTIN: tuple[VersionFormat, ...] = (
    _Plain(),
    _Dotted(),
    _BitFields("number", _fields((0, 32)), "N, 32 bits"),
    _BitFields("pair", _fields((16, 16), (0, 16))),
    _BitFields("triplet", _fields((24, 8), (16, 8), (0, 16))),
    _BitFields("quad", _fields((24, 8), (16, 8), (8, 8), (0, 8))),
    _BitFields(
        "bcd",
        tuple(_Field(s, 8, bcd=True) for s in (24, 16, 8, 0)),
        "N.N.N.N, 4 bytes of 2 BCD digits, each 0-99",
    ),
    _Hex(),
    _BitFields("intel-me", (_Field(29, 3, offset=11), *_fields((24, 5), (16, 8), (0, 16)))),
    _BitFields("intel-me2", _fields((28, 4), (24, 4), (16, 8), (0, 16))),
    _BitFields("dell-bios", _fields((16, 8), (8, 8), (0, 8)), "N.N.N, 8.8.8 bits of the low 24"),
    _BitFields(
        "dell-bios-msb", _fields((24, 8), (16, 8), (8, 8)), "N.N.N, 8.8.8 bits of the high 24"
    ),
    _BitFields("surface", _fields((24, 8), (8, 16), (0, 8))),
    _BitFields("surface-legacy", _fields((22, 10), (10, 12), (0, 10))),
)
for _fmt in _BUILTIN:
    register(_fmt)
