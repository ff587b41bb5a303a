"""Pieces the lab's Cisco-style CLIs share (NX-OS in nxos.py, Dell OS10 in os10.py; EOS in
eos.py for the MAC notations): keyword abbreviations, VLAN id and list arguments, the
``switchport trunk allowed vlan`` list operations (replace, ``add``, ``remove``, ``except``,
``all``, ``none``), word positions for error carets, the clock strings the configuration headers
print, and a MAC in the notation a CLI prints (LLDP neighbours).

Pure functions over strings and sets: no I/O, no switch state. It must never grow
vendor-specific wording; each CLI module owns its own messages.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from drivers.switch.base import VLAN_MAX, VLAN_MIN, lldp_id, parse_vlan_ranges

ALL_VLANS: frozenset[int] = frozenset(range(VLAN_MIN, VLAN_MAX + 1))

_WORD = re.compile(r"\S+")


def kw(word: str, keyword: str, minimum: int = 1) -> bool:
    """``word`` is an abbreviation of ``keyword`` of at least ``minimum`` letters (these CLIs
    accept any unambiguous prefix: ``conf t``, ``sh run int``)."""
    return len(word) >= minimum and keyword.startswith(word.lower())


def vlan_id(text: str, lo: int = VLAN_MIN, hi: int = VLAN_MAX) -> int | None:
    """A single VLAN id in ``lo``..``hi``, or None."""
    return int(text) if text.isdigit() and lo <= int(text) <= hi else None


def vlan_list(text: str, hi: int = VLAN_MAX) -> frozenset[int] | None:
    """``10,20-30`` -> the ids; None when malformed, empty or beyond ``hi``."""
    try:
        ids = parse_vlan_ranges(text)
    except ValueError:
        return None
    return ids if ids and max(ids) <= hi else None


def allowed_after(current: frozenset[int], args: list[str]) -> frozenset[int] | str:
    """The allowed list after ``switchport trunk allowed vlan ARGS`` on a port allowing
    ``current``; a string names what is wrong instead: ``"incomplete"`` (an operation without its
    list), ``"invalid"`` (a bad keyword or list; ``"invalid:N"``: the bad word is ARGS[N])."""
    if not args:
        return "incomplete"
    op = args[0].lower()
    if op in ("add", "remove", "except"):
        if len(args) == 1:
            return "incomplete"
        if len(args) > 2:
            return "invalid:2"
        ids = vlan_list(args[1])
        if ids is None:
            return "invalid:1"
        if op == "add":
            return current | ids
        if op == "remove":
            return current - ids
        return ALL_VLANS - ids
    if len(args) > 1:
        return "invalid:1"
    if op == "all":
        return ALL_VLANS
    if op == "none":
        return frozenset()
    ids = vlan_list(op)
    return "invalid:0" if ids is None else ids


def word_starts(line: str) -> list[int]:
    """The column where each word of ``line`` starts (what a caret under a word needs)."""
    return [m.start() for m in _WORD.finditer(line)]


def runs(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive runs of the sorted numbers: [1, 2, 3, 5] -> [(1, 3), (5, 5)]."""
    out: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def clock(seconds: float | None = None) -> str:
    """``Tue Mar  5 09:14:02 2024``: ctime's layout, which both CLIs' headers use."""
    return time.ctime(time.time() if seconds is None else seconds)


def mac_notation(text: str, form: str) -> str:
    """A MAC given in any notation as a CLI prints it: ``dotted`` (``5254.0000.0501``: EOS,
    NX-OS) or ``colon`` (``52:54:00:00:05:01``, lowercase: OS10). Text that is not a MAC comes
    back unchanged."""
    colon = lldp_id(text)
    if colon is None or len(colon) != 17 or colon.count(":") != 5:
        return text
    if form == "dotted":
        hexs = colon.replace(":", "")
        return ".".join(hexs[i : i + 4] for i in range(0, 12, 4))
    return colon
