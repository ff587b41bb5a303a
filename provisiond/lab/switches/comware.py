"""Lab HPE Comware 7, a 5130 EI-like layer-2 switch (``provisiond lab switch --dialect comware``).

What it emulates, as far as drivers/switch/dialects/comware.py and netmiko's ``hp_comware``
driver use it:

* views and prompts: user view ``<lab-comware>``, ``system-view`` -> ``[lab-comware]``,
  ``interface GigabitEthernet1/0/N`` -> ``[lab-comware-GigabitEthernet1/0/N]``, ``vlan N`` ->
  ``[lab-comware-vlanN]``; ``quit`` goes up one view (and logs out from user view),
  ``return`` goes back to user view; keywords may be abbreviated to a unique prefix and
  interface types written short (``GE1/0/1``, ``gi 1/0/1``), as on Comware; ``screen-length
  disable`` (netmiko's session setup);
* VLANs: ``[undo] vlan N`` / ``vlan N to M``, ``name``, ``description``; deleting the VLAN of
  an access port puts the port back in VLAN 1;
* ports: ``port link-type access|trunk|hybrid`` (trunk <-> hybrid only through access, as
  Comware requires; a link-type change drops the VLAN settings of the old type: a port leaving
  trunk loses its permit list and PVID, one leaving access its access VLAN), ``port access
  vlan N`` (the VLAN must exist), ``port trunk permit vlan LIST|all`` (ADDS to the list, which
  starts as VLAN 1), ``undo port trunk permit vlan LIST|all``, ``[undo] port trunk pvid vlan
  N``, ``[undo] shutdown``, ``[undo] jumboframe enable [N]`` (1536-10000), ``[undo]
  description``;
* ``display current-configuration [interface TYPE NUMBER]``, ``display saved-configuration``,
  ``display this``, ``display vlan [all|brief|N]``, ``display version``, with ``| include``,
  ``| exclude``, ``| begin``;
* LLDP, from the neighbours the lab is given (``--lldp FILE``): ``display lldp
  neighbor-information [interface TYPE NUMBER] [agent nearest-bridge] verbose``: per port with
  neighbours ``LLDP neighbor-information of port N[GigabitEthernet1/0/N]:`` and ``LLDP agent
  nearest-bridge:``, then per neighbour ``LLDP neighbor index``, ``Update time`` (since the lab
  started), ``Chassis type`` / ``Chassis ID``, ``Port ID type`` / ``Port ID`` (``MAC address``,
  ``Interface name``, ``Locally assigned``; MACs as Comware prints them, ``5254-0000-0501``),
  ``Time to live``, and ``Port description`` / ``System name`` only when the neighbour sent them
  (Comware prints no line for a TLV it did not receive). The TLVs lldpd sends beyond those
  (system description, capabilities, management address, 802.3 ones) are not given to the lab,
  so not shown; a second neighbour on a port gets a new index block under the same header (the
  real layout of that case is not verified). The other agents have no neighbours; the
  non-verbose and ``list`` forms are not emulated (they answer a line saying so);
* ``save force`` (and ``save`` with its three questions) copies the running configuration to
  the saved one: ``Saved the current configuration to mainboard device successfully.``;
* errors under a caret line: ``% Unrecognized command found at '^' position.``, ``% Wrong
  parameter ...``, ``% Incomplete command ...``, ``% Too many parameters ...``, ``% Ambiguous
  command ...``.

Faults: ``drop_after`` counts every line typed in system view or below except ``quit``,
``return`` and ``display``, plus ``save``; ``config_locked`` makes the save answer ``Error: The
configuration is locked by another user. Try again later.`` (the lab's wording).

Not emulated: hybrid VLAN lists, routed ports, IRF, ``configuration exclusive``. Every output
is rendered from the configuration state; nothing here answers a canned text.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from drivers.switch.base import VLAN_MAX, VLAN_MIN, lldp_id
from provisiond.lab.switch import DialectCli, EndSession, LabNeighbor, LabSwitch, Terminal

VERSION = "7.1.070, Release 3506P06"
MODEL = "HPE 5130 48G 4SFP+ EI Switch"
JUMBO = (1536, 10000)
PERMIT_ITEMS = 10  # items (N or N to M) per `port trunk permit vlan` line
LOCKED = "Error: The configuration is locked by another user. Try again later."

# interface types: full name and the short forms Comware prints and accepts
_TYPES = {
    "GigabitEthernet": "GE",
    "Ten-GigabitEthernet": "XGE",
    "FortyGigE": "FGE",
    "HundredGigE": "HGE",
}


@dataclass
class CwPort:
    link_type: Literal["access", "trunk", "hybrid"] = "access"
    access_vlan: int = 1
    pvid: int = 1
    permit: set[int] = field(default_factory=lambda: {1})
    shutdown: bool = False
    jumbo: int | None = None
    description: str | None = None


@dataclass
class CwVlan:
    name: str | None = None  # None: the default "VLAN 0100"
    description: str | None = None


@dataclass
class CwConfig:
    sysname: str
    vlans: dict[int, CwVlan]
    ports: dict[str, CwPort]
    started: float = field(default_factory=time.time)  # boot: what LLDP update times count from


class CwError(Exception):
    """A refused line: Comware's ``% <kind> found at '^' position.`` under a caret."""

    def __init__(self, column: int, kind: str) -> None:
        super().__init__(kind)
        self.column = column
        self.kind = kind


def _unrecognized(col: int) -> CwError:
    return CwError(col, "Unrecognized command")


def _wrong(col: int) -> CwError:
    return CwError(col, "Wrong parameter")


def _incomplete(col: int) -> CwError:
    return CwError(col, "Incomplete command")


def _too_many(col: int) -> CwError:
    return CwError(col, "Too many parameters")


@dataclass
class Words:
    """The words of a line with their columns; ``take`` walks them like Comware's parser."""

    line: str
    offset: int
    words: list[str]
    cols: list[int]
    pos: int = 0

    @classmethod
    def of(cls, line: str, offset: int) -> Words:
        words: list[str] = []
        cols: list[int] = []
        for m in re.finditer(r"\S+", line):
            words.append(m.group())
            cols.append(offset + m.start())
        return cls(line, offset, words, cols)

    @property
    def end(self) -> int:
        return self.cols[-1] + len(self.words[-1]) + 1 if self.words else self.offset

    def more(self) -> bool:
        return self.pos < len(self.words)

    def col(self) -> int:
        return self.cols[self.pos] if self.more() else self.end

    def keyword(self, *choices: str) -> str:
        """The next word as one of ``choices`` (a unique prefix, any case)."""
        if not self.more():
            raise _incomplete(self.end)
        word = self.words[self.pos].lower()
        found = [c for c in choices if c == word] or [c for c in choices if c.startswith(word)]
        if len(found) > 1:
            raise CwError(self.col(), "Ambiguous command")
        if not found:
            raise _unrecognized(self.col())
        self.pos += 1
        return found[0]

    def peek_keyword(self, *choices: str) -> str | None:
        if not self.more():
            return None
        word = self.words[self.pos].lower()
        found = [c for c in choices if c == word] or [c for c in choices if c.startswith(word)]
        return found[0] if len(found) == 1 else None

    def number(self, lo: int, hi: int) -> int:
        if not self.more():
            raise _incomplete(self.end)
        word = self.words[self.pos]
        if not word.isdigit() or not lo <= int(word) <= hi:
            raise _wrong(self.col())
        self.pos += 1
        return int(word)

    def rest(self) -> str:
        """The rest of the line as typed (a description keeps its spaces)."""
        if not self.more():
            raise _incomplete(self.end)
        return self.line[self.cols[self.pos] - self.offset :].rstrip()

    def done(self) -> None:
        if self.more():
            raise _too_many(self.col())

    def vlan_list(self, *, allow_all: bool = False) -> set[int] | None:
        """``10 20 to 22`` (at most 10 items) -> {10, 20, 21, 22}; ``all`` -> None."""
        if allow_all and self.peek_keyword("all") == "all":
            self.pos += 1
            self.done()
            return None
        out: set[int] = set()
        items = 0
        while True:
            if items == PERMIT_ITEMS and self.more():
                raise _too_many(self.col())
            lo = self.number(VLAN_MIN, VLAN_MAX)
            hi = lo
            if self.peek_keyword("to") == "to":
                self.pos += 1
                at = self.col()
                hi = self.number(VLAN_MIN, VLAN_MAX)
                if hi < lo:
                    raise _wrong(at)
            out.update(range(lo, hi + 1))
            items += 1
            if not self.more():
                return out


def vlan_items(vlans: set[int]) -> list[str]:
    """{10, 20, 21, 22} -> ["10", "20 to 22"]."""
    items = sorted(vlans)
    out: list[str] = []
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        out.append(str(items[i]) if i == j else f"{items[i]} to {items[j]}")
        i = j + 1
    return out


def _short(port: str) -> str:
    for full, short in _TYPES.items():
        if port.startswith(full):
            return short + port[len(full) :]
    return port


# --------------------------------------------------------------------------- rendering


def port_lines(p: CwPort) -> list[str]:
    """A port's block in ``display current-configuration`` (defaults are not shown)."""
    out: list[str] = []
    if p.description is not None:
        out.append(f" description {p.description}")
    if p.shutdown:
        out.append(" shutdown")
    if p.link_type != "access":
        out.append(f" port link-type {p.link_type}")
    if p.link_type == "access" and p.access_vlan != 1:
        out.append(f" port access vlan {p.access_vlan}")
    if p.link_type == "trunk":
        every = set(range(VLAN_MIN, VLAN_MAX + 1))
        if p.permit == every:
            out.append(" port trunk permit vlan all")
        else:
            if 1 not in p.permit:
                out.append(" undo port trunk permit vlan 1")
            items = vlan_items(p.permit) if p.permit != {1} else []
            out += [
                " port trunk permit vlan " + " ".join(items[i : i + PERMIT_ITEMS])
                for i in range(0, len(items), PERMIT_ITEMS)
            ]
        if p.pvid != 1:
            out.append(f" port trunk pvid vlan {p.pvid}")
    if p.jumbo is not None:
        out.append(f" jumboframe enable {p.jumbo}")
    return out


def vlan_lines(vid: int, v: CwVlan) -> list[str]:
    out = [f"vlan {vid}"]
    if v.name is not None:
        out.append(f" name {v.name}")
    if v.description is not None:
        out.append(f" description {v.description}")
    return out


def full_config(cfg: CwConfig) -> str:
    blocks: list[list[str]] = [
        [f" version {VERSION}"],
        [f" sysname {cfg.sysname}"],
        [" irf mac-address persistent timer", " irf auto-update enable"],
        [" lldp global enable"],
        [" system-working-mode standard", " password-recovery enable"],
    ]
    blocks += [vlan_lines(vid, v) for vid, v in sorted(cfg.vlans.items())]
    blocks += [[f"interface {name}", *port_lines(p)] for name, p in cfg.ports.items()]
    blocks.append([" line class aux", " user-role network-admin"])
    blocks.append([" ssh server enable"])
    lines: list[str] = []
    for block in blocks:
        lines += ["#", *block]
    return "\n".join([*lines, "#", "return"]) + "\n"


def _two_columns(ports: list[str]) -> list[str]:
    return ["    " + "".join(f"{p:<30}" for p in ports[i : i + 2]) for i in range(0, len(ports), 2)]


def vlan_block(cfg: CwConfig, vid: int) -> list[str]:
    """One VLAN of ``display vlan all``: its tagged and untagged ports."""
    v = cfg.vlans[vid]
    tagged: list[str] = []
    untagged: list[str] = []
    for name, p in cfg.ports.items():
        # hybrid ports are untagged in VLAN 1 (their VLAN lists are not emulated)
        if (p.link_type == "access" and p.access_vlan == vid) or (
            p.link_type == "hybrid" and vid == 1
        ):
            untagged.append(name)
        elif p.link_type == "trunk" and vid in p.permit:
            (untagged if vid == p.pvid else tagged).append(name)
    default = f"VLAN {vid:04d}"
    out = [
        f" VLAN ID: {vid}",
        " VLAN type: Static",
        " Route interface: Not configured",
        f" Description: {v.description or default}",
        f" Name: {v.name or default}",
    ]
    out += [" Tagged ports:   None"] if not tagged else [" Tagged ports:   ", *_two_columns(tagged)]
    out += (
        [" Untagged ports: None"]
        if not untagged
        else [" Untagged ports: ", *_two_columns(untagged)]
    )
    return out


# --------------------------------------------------------------------------- LLDP

_LLDP_SUBTYPES = {"mac": "MAC address", "ifname": "Interface name", "local": "Locally assigned"}


def _lldp_shown(value: str, subtype: str) -> str:
    """An id as Comware prints it: a MAC as ``5254-0000-0501``, anything else as sent."""
    mac = lldp_id(value) if subtype == "mac" else None
    if mac is None or len(mac) != 17:
        return value
    hexs = mac.replace(":", "")
    return "-".join(hexs[i : i + 4] for i in range(0, 12, 4))


def _field(key: str, value: str) -> str:
    return f" {key:<19} : {value}" if len(key) <= 19 else f" {key} : {value}"


def lldp_verbose(heard: list[tuple[int, str, list[LabNeighbor]]], *, started: float) -> str:
    """``display lldp neighbor-information verbose`` for ``(port number, port, neighbours)``."""
    up = int(time.time() - started)
    since = (
        f"{up // 86400} days, {up // 3600 % 24} hours, {up // 60 % 60} minutes, {up % 60} seconds"
    )
    lines: list[str] = []
    for number, port, neighbors in heard:
        lines += [
            f"LLDP neighbor-information of port {number}[{port}]:",
            "LLDP agent nearest-bridge:",
        ]
        for index, nb in enumerate(neighbors, 1):
            if index > 1:
                lines.append("")
            lines += [
                _field("LLDP neighbor index", str(index)),
                _field("Update time", since),
                _field("Chassis type", _LLDP_SUBTYPES.get(nb.chassis_id_subtype, "")),
                _field("Chassis ID", _lldp_shown(nb.chassis_id, nb.chassis_id_subtype)),
                _field("Port ID type", _LLDP_SUBTYPES.get(nb.port_id_subtype, "")),
                _field("Port ID", _lldp_shown(nb.port_id, nb.port_id_subtype)),
                _field("Time to live", str(nb.ttl)),
            ]
            if nb.port_description is not None:
                lines.append(_field("Port description", nb.port_description))
            if nb.system_name is not None:
                lines.append(_field("System name", nb.system_name))
        lines.append("")
    return "".join(x + "\n" for x in lines)


# --------------------------------------------------------------------------- the CLI

View = Literal["user", "system", "interface", "vlan"]


class ComwareCli(DialectCli):
    name = "comware"
    hostname = "lab-comware"
    default_username = "admin"
    default_password = "admin"

    def __init__(self, switch: LabSwitch, term: Terminal, username: str) -> None:
        super().__init__(switch, term, username)
        self.view: View = "user"
        self.interface: str | None = None
        self.vlan: int | None = None
        # a question waiting for its answer (`save`): what to do with the answer
        self.question: Callable[[str], str] | None = None

    @property
    def config(self) -> CwConfig:
        cfg: CwConfig = self.switch.running
        return cfg

    @staticmethod
    def port_names(count: int) -> list[str]:
        return [f"GigabitEthernet1/0/{i}" for i in range(1, count + 1)]

    @classmethod
    def initial_config(cls, ports: list[str]) -> CwConfig:
        return CwConfig(cls.hostname, {1: CwVlan()}, {p: CwPort() for p in ports})

    def banner(self) -> str:
        return (
            "\n******************************************************************************\n"
            "* Copyright (c) 2010-2021 Hewlett Packard Enterprise Development LP          *\n"
            "* Without the owner's prior written consent,                                 *\n"
            "* no decompiling or reverse-engineering shall be allowed.                    *\n"
            "******************************************************************************\n\n"
        )

    def prompt(self) -> str:
        if self.question is not None:
            return ""
        host = self.config.sysname
        if self.view == "user":
            return f"<{host}>"
        if self.view == "interface":
            return f"[{host}-{self.interface}]"
        if self.view == "vlan":
            return f"[{host}-vlan{self.vlan}]"
        return f"[{host}]"

    def is_config_command(self, line: str) -> bool:
        words = line.split()
        if not words or self.question is not None:
            return False
        first = words[0].lower()
        if len(first) >= 2 and "save".startswith(first):
            return True
        if self.view == "user":
            return False
        return not any(
            len(first) >= n and kw.startswith(first)
            for kw, n in (("quit", 1), ("return", 3), ("display", 3))
        )

    async def execute(self, line: str) -> None:
        if self.question is not None:
            answer, self.question = self.question, None
            self.term.write(answer(line.strip()))
            return
        if not line.strip():
            return
        text, pipe = line, None
        if "|" in line:
            text, _, pipe = line.partition("|")
        w = Words.of(text, len(self.prompt()))
        try:
            out = self._line(w)
            if pipe is not None:
                out = self._pipe(out, Words.of(pipe, len(self.prompt()) + len(text) + 1))
        except CwError as exc:
            out = " " * exc.column + f"^\n % {exc.kind} found at '^' position.\n"
        self.term.write(out)

    @staticmethod
    def _pipe(out: str, w: Words) -> str:
        how = w.keyword("begin", "exclude", "include")
        rx = w.rest()
        try:
            pattern = re.compile(rx)
        except re.error:
            raise _wrong(w.col()) from None
        lines = out.splitlines()
        if how == "include":
            lines = [x for x in lines if pattern.search(x)]
        elif how == "exclude":
            lines = [x for x in lines if not pattern.search(x)]
        else:
            starts = [i for i, x in enumerate(lines) if pattern.search(x)]
            lines = lines[starts[0] :] if starts else []
        return "".join(x + "\n" for x in lines)

    # ------------------------------------------------------------------ dispatch

    def _line(self, w: Words) -> str:
        common = ["display", "quit", "save"]
        by_view: dict[View, list[str]] = {
            "user": ["screen-length", "system-view", "undo"],
            "system": ["interface", "return", "sysname", "undo", "vlan"],
            "interface": [
                "description",
                "interface",
                "jumboframe",
                "port",
                "return",
                "shutdown",
                "undo",
                "vlan",
            ],
            "vlan": ["description", "interface", "name", "return", "undo", "vlan"],
        }
        cmd = w.keyword(*common, *by_view[self.view])
        if cmd == "display":
            return self._display(w)
        if cmd == "save":
            return self._save(w)
        if cmd == "quit":
            w.done()
            if self.view == "user":
                raise EndSession
            self.view = "user" if self.view == "system" else "system"
            self.interface, self.vlan = None, None
            return ""
        if cmd == "return":
            w.done()
            self.view, self.interface, self.vlan = "user", None, None
            return ""
        if self.view == "user":
            return self._user(cmd, w)
        if cmd == "interface":
            return self._enter_interface(w)
        if cmd == "vlan":
            return self._vlan(w, undo=False)
        if cmd == "sysname":
            name = w.rest()
            if len(name) > 64 or " " in name:
                raise _wrong(w.col())
            self.config.sysname = name
            return ""
        undo = cmd == "undo"
        if undo:
            cmd = w.keyword(*[c for c in by_view[self.view] if c not in ("undo", "return")])
            if cmd == "vlan":
                return self._vlan(w, undo=True)
            if cmd == "interface":
                raise _unrecognized(w.cols[1])
        if self.view == "interface":
            return self._port(cmd, w, undo)
        return self._vlan_view(cmd, w, undo)

    def _user(self, cmd: str, w: Words) -> str:
        if cmd == "system-view":
            w.done()
            self.view = "system"
            return "System View: return to User View with Ctrl+Z.\n"
        if cmd == "undo":
            w.keyword("screen-length")
            w.keyword("disable")
            w.done()
            return ""
        w.keyword("disable")  # screen-length disable: no more pages for this session
        w.done()
        return ""

    # ------------------------------------------------------------------ system view

    def _port_name(self, w: Words) -> str:
        """``GigabitEthernet 1/0/1``, ``GigabitEthernet1/0/1``, ``ge1/0/1``, ``gi 1/0/1``."""
        if not w.more():
            raise _incomplete(w.end)
        at = w.col()
        word = w.words[w.pos]
        m = re.fullmatch(r"([A-Za-z-]+)([0-9/:]*)", word)
        if m is None:
            raise _wrong(at)
        kind, number = m.group(1).lower(), m.group(2)
        names = [t for t in _TYPES if t.lower().startswith(kind) or _TYPES[t].lower() == kind]
        if len(names) != 1:
            raise _wrong(at) if not names else CwError(at, "Ambiguous command")
        w.pos += 1
        if not number:
            if not w.more():
                raise _incomplete(w.end)
            at = w.col()
            number = w.words[w.pos]
            w.pos += 1
        name = names[0] + number
        if name not in self.config.ports:
            raise _wrong(at)
        return name

    def _enter_interface(self, w: Words) -> str:
        name = self._port_name(w)
        w.done()
        self.view, self.interface, self.vlan = "interface", name, None
        return ""

    def _vlan(self, w: Words, *, undo: bool) -> str:
        cfg = self.config
        ids = w.vlan_list()
        assert ids is not None
        if undo:
            if 1 in ids:
                return "The default VLAN cannot be deleted.\n"
            for vid in ids:
                if cfg.vlans.pop(vid, None) is None:
                    continue
                for p in cfg.ports.values():  # an access port of a deleted VLAN goes to VLAN 1
                    if p.link_type == "access" and p.access_vlan == vid:
                        p.access_vlan = 1
            return ""
        for vid in ids:
            cfg.vlans.setdefault(vid, CwVlan())
        if len(ids) == 1:
            self.view, self.vlan, self.interface = "vlan", next(iter(ids)), None
        return ""

    def _vlan_view(self, cmd: str, w: Words, undo: bool) -> str:
        assert self.vlan is not None
        v = self.config.vlans[self.vlan]
        if cmd == "name":
            if undo:
                w.done()
                v.name = None
                return ""
            name = w.rest()
            if len(name) > 32:
                raise _wrong(w.col())
            v.name = name
            return ""
        if undo:
            w.done()
            v.description = None
            return ""
        text = w.rest()
        if len(text) > 255:
            raise _wrong(w.col())
        v.description = text
        return ""

    # ------------------------------------------------------------------ interface view

    def _port(self, cmd: str, w: Words, undo: bool) -> str:
        assert self.interface is not None
        p = self.config.ports[self.interface]
        if cmd == "shutdown":
            w.done()
            p.shutdown = not undo
            return ""
        if cmd == "description":
            if undo:
                w.done()
                p.description = None
                return ""
            text = w.rest()
            if len(text) > 255:
                raise _wrong(w.col())
            p.description = text
            return ""
        if cmd == "jumboframe":
            w.keyword("enable")
            if undo:
                w.done()
                p.jumbo = None
                return ""
            p.jumbo = w.number(*JUMBO) if w.more() else JUMBO[1]
            w.done()
            return ""
        # port ...
        what = w.keyword("access", "link-type", "trunk")
        if what == "link-type":
            kind: Literal["access", "trunk", "hybrid"] = "access"
            if not undo:
                choice = w.keyword("access", "hybrid", "trunk")
                kind = (
                    "trunk" if choice == "trunk" else "hybrid" if choice == "hybrid" else "access"
                )
            w.done()
            return self._link_type(p, kind)
        if what == "access":
            w.keyword("vlan")
            if p.link_type != "access":
                return "Please set the link type of the port to access first.\n"
            if undo:
                w.done()
                p.access_vlan = 1
                return ""
            vid = w.number(VLAN_MIN, VLAN_MAX)
            w.done()
            if vid not in self.config.vlans:
                return f"VLAN {vid} does not exist.\n"
            p.access_vlan = vid
            return ""
        sub = w.keyword("permit", "pvid")
        w.keyword("vlan")
        if p.link_type != "trunk":
            return "Please set the link type of the port to trunk first.\n"
        if sub == "pvid":
            if undo:
                w.done()
                p.pvid = 1
                return ""
            p.pvid = w.number(VLAN_MIN, VLAN_MAX)
            w.done()
            return ""
        ids = w.vlan_list(allow_all=True)
        every = set(range(VLAN_MIN, VLAN_MAX + 1))
        if undo:
            p.permit -= every if ids is None else ids
        else:
            p.permit |= every if ids is None else ids  # Comware adds to the list
        return ""

    @staticmethod
    def _link_type(p: CwPort, kind: Literal["access", "trunk", "hybrid"]) -> str:
        if p.link_type == kind:
            return ""
        if {p.link_type, kind} == {"trunk", "hybrid"}:
            return "Please set the link type of the port to access first.\n"
        # the VLAN settings of the old link type do not carry over
        if p.link_type == "trunk":
            p.permit, p.pvid = {1}, 1
        if p.link_type == "access":
            p.access_vlan = 1
        p.link_type = kind
        return ""

    # ------------------------------------------------------------------ display and save

    def _display(self, w: Words) -> str:
        cfg = self.config
        what = w.keyword("current-configuration", "lldp", "saved-configuration", "this",
                         "version", "vlan")  # fmt: skip
        if what == "lldp":
            return self._display_lldp(w)
        if what == "current-configuration":
            if not w.more():
                return full_config(cfg)
            w.keyword("interface")
            name = self._port_name(w)
            w.done()
            return "\n".join(["#", f"interface {name}", *port_lines(cfg.ports[name]), "#",
                              "return"]) + "\n"  # fmt: skip
        if what == "saved-configuration":
            w.done()
            saved: CwConfig = self.switch.saved
            return full_config(saved)
        if what == "this":
            w.done()
            if self.view == "interface" and self.interface is not None:
                lines = [f"interface {self.interface}", *port_lines(cfg.ports[self.interface])]
            elif self.view == "vlan" and self.vlan is not None:
                lines = vlan_lines(self.vlan, cfg.vlans[self.vlan])
            else:
                return full_config(cfg)
            return "\n".join(["#", *lines, "#", "return"]) + "\n"
        if what == "version":
            w.done()
            return (
                f"HPE Comware Software, Version {VERSION}\n"
                "Copyright (c) 2010-2021 Hewlett Packard Enterprise Development LP\n"
                f"{MODEL} uptime is 0 weeks, 0 days, 1 hour, 0 minutes\n"
                "Last reboot reason : Cold reboot\n"
            )
        return self._display_vlan(w)

    def _display_lldp(self, w: Words) -> str:
        """``display lldp neighbor-information [interface T N] [agent A] verbose``."""
        w.keyword("neighbor-information")
        only: str | None = None
        agent = "nearest-bridge"
        verbose = False
        while w.more():
            opt = w.keyword("agent", "interface", "list", "verbose")
            if opt == "interface" and only is None:
                only = self._port_name(w)
            elif opt == "agent":
                agent = w.keyword("nearest-bridge", "nearest-customer", "nearest-nontpmr")
            elif opt == "verbose":
                verbose = True
                w.done()
            elif opt == "list":
                return "The lab emulates display lldp neighbor-information only with verbose.\n"
            else:
                raise _wrong(w.cols[w.pos - 1])
        if not verbose:
            return "The lab emulates display lldp neighbor-information only with verbose.\n"
        if agent != "nearest-bridge":
            return ""
        neighbors = self.switch.lldp_neighbors()
        heard = [
            (n, port, neighbors[port])
            for n, port in enumerate(self.switch.port_names, 1)
            if neighbors.get(port) and (only is None or port == only)
        ]
        return lldp_verbose(heard, started=self.config.started)

    def _display_vlan(self, w: Words) -> str:
        cfg = self.config
        if not w.more():
            ids = sorted(cfg.vlans)
            listed = ", ".join("1(default)" if v == 1 else str(v) for v in ids)
            return f" Total VLANs: {len(ids)}\n The VLANs include:\n {listed}\n"
        how = w.peek_keyword("all", "brief")
        if how == "all":
            w.pos += 1
            w.done()
            lines: list[str] = []
            for vid in sorted(cfg.vlans):
                lines += [*vlan_block(cfg, vid), ""]
            return "\n".join(lines) + "\n"
        if how == "brief":
            w.pos += 1
            w.done()
            out = [
                "Brief information about all VLANs:",
                f"Supported Minimum VLAN ID: {VLAN_MIN}",
                f"Supported Maximum VLAN ID: {VLAN_MAX}",
                "Default VLAN ID: 1",
                "VLAN ID   Name                             Port",
            ]
            for vid in sorted(cfg.vlans):
                v = cfg.vlans[vid]
                ports = [
                    _short(n)
                    for n, p in cfg.ports.items()
                    if (p.link_type == "access" and p.access_vlan == vid)
                    or (p.link_type == "trunk" and vid in p.permit)
                    or (p.link_type == "hybrid" and vid == 1)
                ]
                head = f"{vid:<10}{(v.name or f'VLAN {vid:04d}'):<33}"
                rows = ["  ".join(ports[i : i + 3]) for i in range(0, len(ports), 3)] or [""]
                out.append((head + rows[0]).rstrip())
                out += [" " * 43 + r for r in rows[1:]]
            return "\n".join(out) + "\n"
        vid = w.number(VLAN_MIN, VLAN_MAX)
        w.done()
        if vid not in cfg.vlans:
            return f" VLAN {vid} does not exist.\n"
        return "\n".join(vlan_block(cfg, vid)) + "\n\n"

    def _save(self, w: Words) -> str:
        force = w.peek_keyword("force") == "force"
        if force:
            w.pos += 1
        w.done()
        if force:
            return self._do_save()

        def overwrite(answer: str) -> str:
            return self._do_save() if answer.lower().startswith("y") else ""

        def filename(answer: str) -> str:
            if answer in ("", "flash:/startup.cfg", "startup.cfg"):
                self.question = overwrite
                return "flash:/startup.cfg exists, overwrite? [Y/N]:"
            if not answer.endswith(".cfg"):
                return "The file name is invalid(does not end with .cfg).\n"
            return self._do_save()

        def sure(answer: str) -> str:
            if not answer.lower().startswith("y"):
                return ""
            self.question = filename
            return (
                "Please input the file name(*.cfg)[flash:/startup.cfg]\n"
                "(To leave the existing filename unchanged, press the enter key):"
            )

        self.question = sure
        return "The current configuration will be written to the device. Are you sure? [Y/N]:"

    def _do_save(self) -> str:
        if self.switch.faults.current().config_locked:
            return f"Validating file. Please wait...\n{LOCKED}\n"
        self.switch.saved = copy.deepcopy(self.config)
        return (
            "Validating file. Please wait...\n"
            "Saved the current configuration to mainboard device successfully.\n"
        )
