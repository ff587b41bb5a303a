"""The lab's lldpd client, shared by the Linux NOSes that run lldpd (Cumulus in nvue.py, SONiC in
sonic.py): what ``lldpctl`` / ``lldpcli show neighbors`` print about the neighbours a lab switch
hears (``LabSwitch.lldp_neighbors()``), as lldpd 1.0's client prints them.

lldpd's client writes every output through one writer interface (src/client/writer.h: ``start``
a tag, ``attr``, ``data``, ``end``) that the plain, json and json0 writers implement; the
neighbour listing (src/client/display.c ``display_interfaces``) calls it in a fixed order. Both
are ported here, so the three formats agree with each other and with lldpd: the plain text's
13-column labels and separator lines (text_writer.c), and the JSON element tree, its "cleaning"
into the ``json`` shape and its exact layout (json_writer.c: two-space indents, an empty object
printed with a blank line inside, a blank line after the document).

What a neighbour carries here is what ``LabNeighbor`` holds: chassis id and its subtype, system
name, port id and its subtype, port description, TTL; a TLV it lacks (system name, port
description) is left out as lldpd leaves out a TLV the neighbour did not send. No system
description, management address or capabilities: the lab has none to show. MAC ids print as
lldpd prints them (lowercase, colons), whatever notation the ``--lldp`` file used. ``RID``
numbers distinct chassis in order of appearance; ``Time`` (``age``) counts from the start of
the session (the lab keeps no history of when a neighbour appeared). Interfaces come in the
switch's port order, as lldpd lists them by interface index.

Not emulated: ``-f keyvalue`` / ``-f xml`` (answered with a lab message), lldpcli commands other
than ``show neighbors``, the ``protocol`` filter. No I/O and no state: strings in, strings out
(lldpd's log lines carry the current time).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from drivers.switch.base import lldp_id
from provisiond.lab.switch import LabNeighbor

SOCKET = "/run/lldpd.socket"
BRIEF, NORMAL, DETAILS = 1, 2, 3  # src/client/client.h DISPLAY_*
_SEP = "-" * 79  # text_writer.c


class Writer(Protocol):
    def start(self, tag: str, descr: str) -> None: ...
    def attr(self, tag: str, descr: str, value: str | None) -> None: ...
    def data(self, value: str | None) -> None: ...
    def end(self) -> None: ...
    def finish(self) -> str: ...


# --------------------------------------------------------------------------- plain


class TextWriter:
    """text_writer.c: labels padded to 13 columns, two spaces per level, a separator line around
    the top level and after each interface."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.level = 0
        self.attrs = 0
        self.lastnl = True

    def _print(self, fmt: str, *args: str) -> None:
        while self.lastnl and fmt.startswith("\n"):  # no newline after a newline
            fmt = fmt[1:]
        if not fmt:
            return
        self.out.append(fmt % args if args else fmt)
        self.lastnl = fmt.endswith("\n")  # the format string's end, as the C code checks

    def start(self, tag: str, descr: str) -> None:
        if self.level == 0:
            self._print("%s\n", _SEP)
        elif not self.lastnl:
            self._print("\n")
        for _ in range(1, self.level):
            self._print("  ")
        self._print("%-13s", f"{descr}:")
        if self.level == 0:
            self._print("\n%s", _SEP)
        self.level += 1
        self.attrs = 0

    def attr(self, tag: str, descr: str, value: str | None) -> None:
        lead = ", " if self.attrs > 0 else " "
        if descr:
            self._print("%s%s: %s", lead, descr, value if value is not None else "(none)")
        else:
            self._print("%s%s", lead, value if value is not None else "(none)")
        self.attrs += 1

    def data(self, value: str | None) -> None:
        if value is None:
            self._print(" %s", "(none)")
            return
        self._print(" ")
        lines = value.split("\n")
        for line in lines[:-1]:
            self._print("%s\n", line)
            for _ in range(1, self.level - 1):
                self._print("  ")
            self._print("%-14s", " ")
        self._print("%s", lines[-1])

    def end(self) -> None:
        self.level -= 1
        if self.level == 1:
            self._print("\n%s", _SEP)

    def finish(self) -> str:
        self._print("\n")
        return "".join(self.out)


# --------------------------------------------------------------------------- json, json0


@dataclass(eq=False)
class _El:
    tag: str  # "str" | "bool" | "array" | "object"
    key: str | None = None
    text: str = ""
    flag: bool = False
    children: list[_El] = field(default_factory=list)
    parent: _El | None = None

    def add(self, child: _El) -> _El:
        child.parent = self
        self.children.append(child)
        return child

    def replace(self, new: _El) -> None:
        """Put ``new`` where this element is in its parent's children."""
        assert self.parent is not None
        siblings = self.parent.children
        siblings[siblings.index(self)] = new
        new.parent = self.parent


def _cleanup(el: _El) -> None:
    """json_writer.c's cleaning (the ``json`` format): a one-element array becomes its element,
    an object whose one key is ``value`` becomes that value, an object with a ``name`` string is
    wrapped in an object keyed by that name."""
    if el.tag in ("array", "object") and len(el.children) == 1:
        child = el.children[0]
        if el.tag == "array" or child.key == "value":
            child.key = el.key
            el.replace(child)
            _cleanup(child)
            return
    if el.tag == "array":
        for child in list(el.children):
            _cleanup(child)
        return
    if el.tag == "object":
        for child in list(el.children):
            _cleanup(child)
        names = [c for c in el.children if c.key == "name" and c.tag == "str"]
        if names and el.parent is not None:
            name = names[-1]
            wrapper = _El("object", key=el.key)
            el.replace(wrapper)
            el.children.remove(name)
            el.key = name.text
            wrapper.add(el)


def _string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ord(ch) <= 0x1F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)  # UTF-8 as is
    out.append('"')
    return "".join(out)


def _dump(el: _El, indent: int) -> str:
    if el.tag == "str":
        return _string(el.text)
    if el.tag == "bool":
        return "true" if el.flag else "false"
    opening, closing = ("[", "]") if el.tag == "array" else ("{", "}")
    inner = " " * (indent + 2)
    items = [
        (f"{_string(c.key or '')}: " if el.tag == "object" else "") + _dump(c, indent + 2)
        for c in el.children
    ]
    return f"{opening}\n{inner}" + f",\n{inner}".join(items) + f"\n{' ' * indent}{closing}"


class JsonWriter:
    """json_writer.c: ``variant`` 1 is ``-f json`` (cleaned), 0 is ``-f json0``."""

    def __init__(self, variant: int) -> None:
        self.variant = variant
        self.out: list[str] = []
        self.root = self.current = _El("object")

    def start(self, tag: str, descr: str) -> None:
        array = next((c for c in self.current.children if c.key == tag), None)
        if array is None:
            array = self.current.add(_El("array", key=tag))
        self.current = array.add(_El("object"))

    def attr(self, tag: str, descr: str, value: str | None) -> None:
        if value in ("yes", "on", "no", "off"):
            self.current.add(_El("bool", key=tag, flag=value in ("yes", "on")))
        else:
            self.current.add(_El("str", key=tag, text=value or ""))

    def data(self, value: str | None) -> None:
        self.current.add(_El("str", key="value", text=value or ""))

    def end(self) -> None:
        up = self.current.parent
        while up is not None and up.tag != "object":
            up = up.parent
        assert up is not None, "unbalanced tags"
        self.current = up
        if self.current is self.root:
            if self.variant != 0:
                _cleanup(self.root)
            self.out.append(_dump(self.root, 0) + "\n\n")
            self.root = self.current = _El("object")

    def finish(self) -> str:
        return "".join(self.out)


# --------------------------------------------------------------------------- the listing


@dataclass(frozen=True)
class Heard:
    """One neighbour as lldpd holds it: the local interface, its remote index (``RID``)."""

    port: str
    neighbor: LabNeighbor
    rid: int


def heard(neighbors: Mapping[str, Sequence[LabNeighbor]], ports: Sequence[str]) -> list[Heard]:
    """The neighbours in lldpd's order (interfaces by index, i.e. the switch's port order)."""
    rids: dict[tuple[str, str], int] = {}
    out: list[Heard] = []
    for port in ports:
        for n in neighbors.get(port, ()):
            key = (n.chassis_id_subtype, _id(n.chassis_id, n.chassis_id_subtype))
            rid = rids.setdefault(key, len(rids) + 1)
            out.append(Heard(port, n, rid))
    return out


def _id(value: str, subtype: str) -> str:
    """An id as lldpd prints it: a MAC in lowercase colon form, anything else as it is."""
    return (lldp_id(value) or value) if subtype == "mac" else value


def age(seconds: float) -> str:
    """display.c's display_age: ``0 day, 00:01:40``, ``2 days, ...``."""
    s = max(int(seconds), 0)
    days, plural = s // 86400, "s" if s // 86400 > 1 else ""
    return f"{days} day{plural}, {s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def display_neighbors(w: Writer, entries: Sequence[Heard], details: int, seconds: float) -> str:
    """display.c's display_interfaces/display_interface/display_chassis/display_port, for the
    TLVs a lab neighbour carries."""
    w.start("lldp", "LLDP neighbors")
    for e in entries:
        n = e.neighbor
        w.start("interface", "Interface")
        w.attr("name", "", e.port)
        w.attr("via", "via", "LLDP")
        if details > BRIEF:
            w.attr("rid", "RID", str(e.rid))
            w.attr("age", "Time", age(seconds))
        w.start("chassis", "Chassis")
        w.start("id", "ChassisID")
        w.attr("type", "", n.chassis_id_subtype)
        w.data(_id(n.chassis_id, n.chassis_id_subtype))
        w.end()
        if n.system_name is not None:
            w.start("name", "SysName")
            w.data(n.system_name)
            w.end()
        w.end()
        w.start("port", "Port")
        w.start("id", "PortID")
        w.attr("type", "", n.port_id_subtype)
        w.data(_id(n.port_id, n.port_id_subtype))
        w.end()
        if n.port_description is not None:
            w.start("descr", "PortDescr")
            w.data(n.port_description)
            w.end()
        if details > BRIEF and n.ttl > 0:
            w.start("ttl", "TTL")
            w.data(str(n.ttl))
            w.end()
        w.end()
        w.end()
    w.end()
    return w.finish()


# --------------------------------------------------------------------------- the commands


@dataclass
class Result:
    stdout: str = ""
    stderr: str = ""
    status: int = 0


def _log(token: str, message: str, *, tty: bool) -> str:
    """A warning as lldpd's log.c prints it on stderr (the prefix in colour on a terminal)."""
    date = time.strftime("%Y-%m-%dT%H:%M:%S")
    if tty:
        return f"{date} \033[1;33m[WARN/{token}]\033[0m {message}\n"
    return f"{date} [WARN/{token}] {message}\n"


def _usage(prog: str) -> str:
    """lldpcli.c's usage() (the lab's build: no XML writer)."""
    lines = [
        f"Usage:   {prog} [OPTIONS ...] [COMMAND ...]",
        "Version: lldpd 1.0.16",
        "",
        "-d          Enable more debugging information.",
        "-u socket   Specify the Unix-domain socket used for communication with lldpd(8).",
        "-f format   Choose output format (plain, keyvalue, json, json0).",
    ]
    if prog != "lldpctl":
        lines.append("-c conf     Read the provided configuration file.")
    lines += ["", "See manual page lldpcli(8) for more information"]
    return "\n".join(lines) + "\n"


def run(
    prog: str,
    argv: Sequence[str],
    neighbors: Mapping[str, Sequence[LabNeighbor]],
    ports: Sequence[str],
    *,
    privileged: bool,
    seconds: float,
    tty: bool = False,
) -> Result:
    """``lldpctl [-d] [-u SOCKET] [-f FORMAT] [INTERFACE...]`` (lldpd: ``show neighbors
    details``, for the interfaces given) or ``lldpcli [options] show neighbors [ports LIST]
    [details|summary] [hidden]``. ``privileged``: the caller may use lldpd's control socket
    (root, or the _lldpd group)."""
    fmt, socket, words = "plain", SOCKET, []
    opts = "hdvf:u:" if prog == "lldpctl" else "hdsvf:c:C:u:"
    i = 0
    while i < len(argv):
        word = argv[i]
        if not word.startswith("-") or word == "-":
            words.append(word)  # GNU getopt: options may follow the operands
            i += 1
            continue
        if word == "--":
            words.extend(argv[i + 1 :])
            break
        k = 1
        while k < len(word):
            opt = word[k]
            spec = opts.find(opt)
            if spec < 0 or opt == ":":
                return Result(stderr=f"{prog}: invalid option -- '{opt}'\n" + _usage(prog),
                              status=1)  # fmt: skip
            if spec + 1 < len(opts) and opts[spec + 1] == ":":
                value = word[k + 1 :]
                if not value:
                    if i + 1 >= len(argv):
                        return Result(
                            stderr=f"{prog}: option requires an argument -- '{opt}'\n"
                            + _usage(prog),
                            status=1,
                        )
                    i += 1
                    value = argv[i]
                if opt == "f":
                    fmt = value
                elif opt == "u":
                    socket = value
                else:
                    return Result(stderr=f"{prog}: the provisiond lab does not emulate -{opt}\n",
                                  status=1)  # fmt: skip
                break
            if opt == "h":
                return Result(stderr=_usage(prog), status=1)
            if opt in "vs":
                return Result(stderr=f"{prog}: the provisiond lab does not emulate -{opt}\n",
                              status=1)  # fmt: skip
            k += 1  # -d: more debugging, nothing the lab prints
        i += 1
    if socket != SOCKET or not privileged:
        reason = "No such file or directory" if socket != SOCKET else "Permission denied"
        return Result(stderr=_log("control", f"unable to connect to socket {socket}: {reason}",
                                  tty=tty), status=1)  # fmt: skip
    if fmt in ("keyvalue", "xml"):
        return Result(stderr=f"{prog}: the provisiond lab does not emulate -f {fmt}\n", status=1)
    err = ""
    writer: Writer
    if fmt == "json":
        writer = JsonWriter(1)
    elif fmt == "json0":
        writer = JsonWriter(0)
    else:
        if fmt != "plain":
            err = _log("lldpctl", f'unknown output format "{fmt}"', tty=tty)
        writer = TextWriter()
    if prog == "lldpctl":
        wanted = {p for w in words for p in w.split(",") if p} or None
        details = DETAILS
    else:
        parsed = _lldpcli_show_neighbors(words)
        if isinstance(parsed, str):
            return Result(stderr=err + _log("lldpctl", parsed, tty=tty), status=1)
        wanted, details = parsed
    entries = [e for e in heard(neighbors, ports) if wanted is None or e.port in wanted]
    return Result(stdout=display_neighbors(writer, entries, details, seconds), stderr=err)


def _lldpcli_show_neighbors(words: list[str]) -> tuple[set[str] | None, int] | str:
    """(ports wanted, detail level) of ``show neighbors ...``; a string: lldpcli's complaint."""
    if not words:
        return "the provisiond lab does not emulate lldpcli's interactive mode"
    expected = ["show", "neighbors"]
    for n, token in enumerate(expected):
        if len(words) <= n:
            return "incomplete command"
        if not token.startswith(words[n]):  # lldpcli accepts unambiguous prefixes
            return f"unknown command from argument {n + 1}: `{words[n]}`"
    wanted: set[str] | None = None
    details = NORMAL
    rest = words[2:]
    n = 2
    while rest:
        token = rest[0]
        if "ports".startswith(token) and len(token) >= 2:
            if len(rest) < 2:
                return "incomplete command"
            wanted = {p for p in rest[1].split(",") if p}
            rest, n = rest[2:], n + 2
        elif "details".startswith(token):
            details, rest, n = DETAILS, rest[1:], n + 1
        elif "summary".startswith(token):
            details, rest, n = BRIEF, rest[1:], n + 1
        elif "hidden".startswith(token):
            rest, n = rest[1:], n + 1
        else:
            return f"unknown command from argument {n + 1}: `{token}`"
    return wanted, details


def lldpshow_table(entries: Sequence[Heard]) -> str:
    """sonic-utilities' ``lldpshow`` (``show lldp table``): tabulate's "simple" table of
    LocalPort, RemoteDevice, RemotePortID, Capability, RemotePortDescr, by local port in natural
    order, then a dashed line and the count. Capabilities: none (lab neighbours send none)."""
    rows: dict[str, list[str]] = {}
    for e in entries:
        n = e.neighbor
        port_id = _id(n.port_id, n.port_id_subtype)
        rows[f"{e.port}#{port_id}"] = [
            e.port, n.system_name or "", port_id, "", n.port_description or "",
        ]  # fmt: skip
    ordered = sorted(rows.values(), key=lambda r: _natural(r[0]))
    header = ["LocalPort", "RemoteDevice", "RemotePortID", "Capability", "RemotePortDescr"]
    widths = [max([len(h) + 2] + [len(r[i]) for r in ordered]) for i, h in enumerate(header)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
        *("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in ordered),
    ]
    return (
        "Capability codes: (R) Router, (B) Bridge, (O) Other\n"
        + "\n".join(lines)
        + "\n"
        + "-" * 50
        + "\n"
        + f"Total entries displayed:  {len(rows)}"
    )


def _natural(port: str) -> list[list[str | int]]:
    """lldpshow's sort key: the letters of the name, then its numbers."""
    return [[*re.findall("[A-Za-z]+", port), *(int(d) for d in re.findall(r"\d+", port))]]
