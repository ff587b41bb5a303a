"""SLURM hostlist expressions: ``node[01-16,20],gpu[1-4]`` -> the host names, in order.

The grammar SLURM's ``scontrol show hostnames`` reads: a comma-separated list of terms (commas
inside brackets belong to the brackets); a term is literal text and bracket groups; a group is a
comma-separated list of numbers or ranges ``A-B``; a range keeps the width of its first number
when that one has leading zeros (``01-16`` -> ``01`` .. ``16``); several groups in one term
multiply (``r[1-2]n[1-2]`` -> ``r1n1 r1n2 r2n1 r2n2``). Pure; bounded: an expression naming more
than ``limit`` hosts is refused rather than expanded.
"""

from __future__ import annotations

import itertools
import re

DEFAULT_LIMIT = 100_000
_NAME = re.compile(r"^[A-Za-z0-9_.\-]*$")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


class HostlistError(ValueError):
    """What is wrong with the expression, and at which character (0-based)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position + 1})")
        self.position = position


def _terms(text: str) -> list[tuple[int, str]]:
    """(start, term) for each top-level comma-separated term."""
    out: list[tuple[int, str]] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "[":
            if depth:
                raise HostlistError("nested '['", i)
            depth = 1
        elif ch == "]":
            if not depth:
                raise HostlistError("']' without '['", i)
            depth = 0
        elif ch == "," and not depth:
            out.append((start, text[start:i]))
            start = i + 1
    if depth:
        raise HostlistError("'[' not closed", text.rindex("["))
    out.append((start, text[start:]))
    return out


def _group(body: str, at: int, limit: int) -> list[str]:
    values: list[str] = []
    offset = at
    for item in body.split(","):
        m = _RANGE.match(item)
        if m is None:
            raise HostlistError(f"{item!r} is not a number or a range A-B", offset)
        lo_text, hi_text = m.group(1), m.group(2)
        lo = int(lo_text)
        hi = int(hi_text) if hi_text is not None else lo
        if hi < lo:
            raise HostlistError(f"range {item!r} runs backwards", offset)
        if hi - lo + 1 + len(values) > limit:
            raise HostlistError(f"more than {limit} hosts", offset)
        width = len(lo_text) if lo_text.startswith("0") and len(lo_text) > 1 else 0
        values += [str(n).zfill(width) for n in range(lo, hi + 1)]
        offset += len(item) + 1
    return values


def expand(text: str, *, limit: int = DEFAULT_LIMIT) -> list[str]:
    """The host names of ``text``, in order, duplicates dropped (first kept)."""
    text = text.strip()
    if not text:
        raise HostlistError("empty hostlist", 0)
    if any(ch.isspace() for ch in text):
        raise HostlistError(
            "white space inside the hostlist", next(i for i, c in enumerate(text) if c.isspace())
        )
    names: list[str] = []
    seen: set[str] = set()
    for start, term in _terms(text):
        if not term:
            raise HostlistError("empty name", start)
        parts: list[list[str]] = []
        pos = 0
        for m in re.finditer(r"\[([^\]]*)\]", term):
            literal = term[pos : m.start()]
            if not _NAME.match(literal):
                raise HostlistError(f"{literal!r} is not a host name part", start + pos)
            parts.append([literal])
            parts.append(_group(m.group(1), start + m.start() + 1, limit))
            pos = m.end()
        tail = term[pos:]
        if not _NAME.match(tail):
            raise HostlistError(f"{tail!r} is not a host name part", start + pos)
        parts.append([tail])
        count = 1
        for p in parts:
            count *= len(p)
        if count + len(names) > limit:
            raise HostlistError(f"more than {limit} hosts", start)
        for combo in itertools.product(*parts):
            name = "".join(combo)
            if name not in seen:
                seen.add(name)
                names.append(name)
    return names


def compress(names: list[str]) -> str:
    """A compact hostlist for ``names`` (runs of numeric suffixes with one prefix and width
    bracketed): ``node01,node02,node03,gpu1`` -> ``gpu1,node[01-03]``. ``expand`` reads it back
    to the same set."""
    by_prefix: dict[tuple[str, int], list[int]] = {}
    plain: list[str] = []
    for name in names:
        m = re.match(r"^(.*?)(\d+)$", name)
        if m is None:
            plain.append(name)
            continue
        digits = m.group(2)
        width = len(digits) if digits.startswith("0") and len(digits) > 1 else 0
        by_prefix.setdefault((m.group(1), width), []).append(int(digits))
    out = sorted(set(plain))
    for (prefix, width), numbers in sorted(by_prefix.items()):
        numbers = sorted(set(numbers))
        runs: list[str] = []
        run_start = prev = numbers[0]
        for n in [*numbers[1:], None]:
            if n is not None and n == prev + 1:
                prev = n
                continue
            a, b = str(run_start).zfill(width), str(prev).zfill(width)
            runs.append(a if run_start == prev else f"{a}-{b}")
            if n is not None:
                run_start = prev = n
        if len(numbers) == 1:
            out.append(f"{prefix}{runs[0]}")
        else:
            out.append(f"{prefix}[{','.join(runs)}]")
    return ",".join(out)
