"""Lab Juniper Junos with ELS, an EX4300-like switch (``provisiond lab switch --dialect junos``).

What it emulates, as far as drivers/switch/dialects/junos.py and netmiko's ``juniper_junos``
driver use it:

* the CLI: ``--- JUNOS ...`` at login, operational mode ``{master:0}`` / ``admin@lab-junos> ``,
  configuration mode ``{master:0}[edit]`` / ``admin@lab-junos# ``; ``set cli screen-length N``,
  ``set cli screen-width N``, ``set cli complete-on-space on|off`` (netmiko's session setup, with
  the answers it waits for); keywords may be abbreviated to a unique prefix, as on Junos;
* ``configure`` (the shared candidate), ``configure private`` (a per-session copy of the
  committed configuration, discarded when the session leaves or dies before ``commit``; refused
  while the shared candidate has uncommitted changes) and ``configure exclusive`` (the shared
  candidate, locked: other sessions' commits answer ``error: configuration database locked
  by:``); ``exit`` / ``quit`` / ``exit configuration-mode`` with Junos' questions about
  uncommitted changes (``Exit with uncommitted changes? [yes,no] (yes)``, which netmiko's
  ``exit_config_mode`` answers);
* a configuration tree with Junos semantics for the statements the dialect renders: ``set`` /
  ``delete`` of ``interfaces <if> [description|disable|mtu|native-vlan-id|unit N family
  ethernet-switching [interface-mode|vlan members|storm-control]|unit N family inet address]``,
  ``vlans <name> [vlan-id|description|l3-interface]``, ``system host-name``; ``vlan members``
  APPENDS (a leaf-list), ``delete`` of an absent statement warns ``warning: statement not
  found`` and changes nothing;
* ``commit [check|and-quit|comment "x"]`` with ELS's checks (every member VLAN must be defined:
  ``No vlan matches vlan tag N for interface P.0``; an access port carries one VLAN; VLAN ids
  are unique: those two texts, and the one for an undefined VLAN name, are the lab's wording in
  Junos' layout), a commit history for ``rollback N``,
  ``update`` (private), ``show [path] [| display set | compare]`` and ``run <operational>`` in
  configuration mode; ``show configuration [path] [| display set]``, ``show vlans``, ``show
  version`` in operational mode; pipes ``| match RE``, ``| except RE``, ``| count``, ``| no-more``;
* LLDP, from the neighbours the lab is given (``--lldp FILE``): ``show lldp neighbors [interface
  P]`` (the brief table: Local Interface, Parent Interface, Chassis Id, Port info (the port
  description when the neighbour sent one, else its port id), System Name; column widths are the
  lab's), ``show lldp neighbors [interface P] [detail] | display json`` (Junos' JSON layout: every
  element a list of ``{"data": ...}``; brief: the physical port in ``lldp-local-port-id``; detail:
  it in ``lldp-local-interface``, the port's SNMP index, which the lab numbers 513 + N, in
  ``lldp-local-port-id``, plus index, TTL, time mark and age). Chassis and port ids that are MACs
  show as Junos prints them (``52:54:00:00:05:01``), subtypes as ``Mac address``, ``Interface
  name``, ``Locally assigned``. ``| display json`` is emulated for these only (anything else
  answers an ``error:`` saying so); ``show lldp neighbors detail`` as text is not emulated;
* vendor errors: ``unknown command.`` / ``syntax error.`` / ``syntax error, expecting
  <command>.`` / ``missing argument.`` / ``Value N is not within range (lo..hi) at 'N'`` under a
  caret line, and commit failures ending ``error: configuration check-out failed``.

Faults: ``drop_after`` counts ``set``, ``delete``, ``commit``, ``rollback`` and ``update`` typed
in configuration mode; ``config_locked`` makes every ``commit`` (and ``configure exclusive``)
answer the lock error a real exclusive session of ``root`` would cause.

Not emulated: ``edit``/``up``/``top`` (hierarchy navigation), ``commit confirmed`` (only its
refusal in private mode), ``load``, ``annotate``, groups. It must never pretend a statement
exists that the tree does not hold: every output is rendered from the configuration state.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from drivers.switch.base import VLAN_MAX, VLAN_MIN, lldp_id
from provisiond.lab.switch import DialectCli, EndSession, LabNeighbor, LabSwitch, Terminal

VERSION = "21.4R3.15"
MODEL = "ex4300-48t"
MASTER = "{master:0}"
HISTORY = 49  # Junos keeps rollback 1..49
CHECKOUT_FAILED = "error: configuration check-out failed"

Tree = dict[str, Any]


# --------------------------------------------------------------------------- the schema


class CliError(Exception):
    """A refused line: ``message`` under a caret at token ``index`` (None: no caret)."""

    def __init__(self, index: int | None, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


Check = Callable[[str], str | None]


@dataclass(frozen=True)
class Stmt:
    """One statement of the configuration schema. ``container``: named children; ``list``:
    entries keyed by an identifier (``check``), each a container of ``children``; ``leaf``: one
    value (``check``); ``flag``: present or not; ``multi``: a leaf-list (``set`` appends)."""

    kind: Literal["container", "list", "leaf", "flag", "multi"]
    children: Mapping[str, Stmt] = field(default_factory=dict)
    check: Check | None = None
    presence: bool = False  # a container that stays (and shows) when it has no children
    # a list whose entries show as ``unit 0 { ... }``; the top-level ``interfaces`` and
    # ``vlans`` hold their entries bare (``interfaces { ge-0/0/1 { ... } }``)
    keyed: bool = True
    # a container shown merged with its children: ``family ethernet-switching { ... }``
    flat: bool = False


def _int_range(lo: int, hi: int) -> Check:
    def check(text: str) -> str | None:
        if not re.fullmatch(r"-?[0-9]+", text):
            return f"invalid numeric value: '{text}'"
        if not lo <= int(text) <= hi:
            return f"Value {text} is not within range ({lo}..{hi})"
        return None

    return check


def _one_of(*choices: str) -> Check:
    def check(text: str) -> str | None:
        return None if text in choices else "syntax error."

    return check


def _string(max_len: int) -> Check:
    def check(text: str) -> str | None:
        if len(text) > max_len:
            return f"Length {len(text)} is greater than maximum length {max_len}"
        return None

    return check


_IFNAME = re.compile(r"(?:ge|xe|et|mge)-([0-9]{1,2})/([0-9]{1,2})/([0-9]{1,3})(?::[0-9])?")
_VLAN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def _interface_name(text: str) -> str | None:
    if (
        _IFNAME.fullmatch(text)
        or text in ("irb", "vme", "me0", "lo0")
        or re.fullmatch(r"ae[0-9]{1,3}", text)
    ):
        return None
    return f"invalid interface type in '{text}'"


def _vlan_name(text: str) -> str | None:
    if _VLAN_NAME.fullmatch(text):
        return None
    return "Must be a string of 1..64 characters starting with a letter"


def _member(text: str) -> str | None:
    """A ``vlan members`` value: a VLAN name, an id, an id range or ``all``."""
    m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", text)
    if m is None:
        return _vlan_name(text)
    lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
    for v in (lo, hi):
        if not VLAN_MIN <= v <= VLAN_MAX:
            return f"Value {v} is not within range ({VLAN_MIN}..{VLAN_MAX})"
    return None if lo <= hi else f"Invalid range: {text}"


def _address(text: str) -> str | None:
    if re.fullmatch(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}/[0-9]{1,2}", text):
        return None
    return f"invalid prefix: '{text}'"


_ESW = Stmt(
    "container",
    {
        "interface-mode": Stmt("leaf", check=_one_of("access", "trunk")),
        "vlan": Stmt("container", {"members": Stmt("multi", check=_member)}),
        "storm-control": Stmt("leaf", check=_string(127)),
    },
    presence=True,
)
_UNIT = Stmt(
    "list",
    {
        "description": Stmt("leaf", check=_string(900)),
        "family": Stmt(
            "container",
            {
                "ethernet-switching": _ESW,
                "inet": Stmt(
                    "container",
                    {"address": Stmt("list", check=_address)},
                    presence=True,
                ),
            },
            flat=True,
        ),
    },
    check=_int_range(0, 16385),
)
SCHEMA = Stmt(
    "container",
    {
        "version": Stmt("leaf", check=_string(64)),
        "system": Stmt("container", {"host-name": Stmt("leaf", check=_string(255))}),
        "interfaces": Stmt(
            "list",
            {
                "description": Stmt("leaf", check=_string(900)),
                "disable": Stmt("flag"),
                "mtu": Stmt("leaf", check=_int_range(256, 9216)),
                "native-vlan-id": Stmt("leaf", check=_int_range(VLAN_MIN, VLAN_MAX)),
                "unit": _UNIT,
            },
            check=_interface_name,
            keyed=False,
        ),
        "vlans": Stmt(
            "list",
            {
                "description": Stmt("leaf", check=_string(255)),
                "vlan-id": Stmt("leaf", check=_int_range(VLAN_MIN, VLAN_MAX)),
                "l3-interface": Stmt("leaf", check=_string(64)),
            },
            check=_vlan_name,
            keyed=False,
        ),
    },
)


def _keyword(word: str, choices: Mapping[str, Any] | list[str], index: int) -> str:
    """The keyword ``word`` names: itself or its unique prefix (Junos completes them)."""
    names = list(choices)
    if word in names:
        return word
    found = [n for n in names if n.startswith(word)]
    if len(found) == 1:
        return found[0]
    if found:
        raise CliError(index, f"'{word}' is ambiguous.")
    raise CliError(index, "syntax error.")


@dataclass
class Step:
    """One step of a resolved path: the words it adds and the statement it reaches."""

    words: list[str]
    stmt: Stmt
    kind: Literal["node", "entry", "all-entries"]


@dataclass
class Path:
    steps: list[Step]
    values: list[str]  # for a leaf / multi: the value(s) given


def resolve(tokens: list[str], cols: list[int]) -> Path:
    """Walk ``tokens`` (at columns ``cols``) through the schema; CliError points at the first
    token that does not fit."""

    def col(i: int) -> int:
        return cols[i] if i < len(cols) else cols[-1] + len(tokens[-1]) + 1

    steps: list[Step] = []
    node = SCHEMA
    i = 0
    while i < len(tokens):
        kw = _keyword(tokens[i], node.children, col(i))
        child = node.children[kw]
        i += 1
        if child.kind == "list":
            if i == len(tokens):
                steps.append(Step([kw], child, "all-entries"))
                return Path(steps, [])
            key = tokens[i]
            problem = child.check(key) if child.check else None
            if problem:
                raise CliError(col(i), f"{problem} at '{key}'")
            steps.append(Step([kw, key], child, "entry"))
            node = Stmt("container", child.children, presence=True)
            i += 1
            continue
        steps.append(Step([kw], child, "node"))
        if child.kind == "container":
            node = child
            continue
        values = tokens[i:]
        if child.kind == "flag":
            if values:
                raise CliError(col(i), "syntax error.")
            return Path(steps, [])
        first = i
        if child.kind == "multi" and values[:1] == ["["]:
            if values[-1] != "]" or len(values) < 3:
                raise CliError(col(len(tokens)), "syntax error, expecting ']'.")
            values = values[1:-1]
            first += 1
        elif child.kind == "leaf" and len(values) > 1:
            raise CliError(col(i + 1), "syntax error.")
        for n, value in enumerate(values):
            problem = child.check(value) if child.check else None
            if problem:
                raise CliError(col(first + n), f"{problem} at '{value}'")
        return Path(steps, values)
    return Path(steps, [])


# --------------------------------------------------------------------------- tree operations


def _walk(tree: Tree, path: Path, create: bool) -> list[tuple[Tree, str]]:
    """The (parent dict, key) pairs along ``path``; with ``create``, missing levels are made."""
    out: list[tuple[Tree, str]] = []
    here = tree
    for step in path.steps:
        for word in step.words:
            out.append((here, word))
            if step.stmt.kind in ("leaf", "flag", "multi"):
                return out
            nxt = here.get(word)
            if not isinstance(nxt, dict):
                if not create:
                    return out
                nxt = here[word] = {}
            here = nxt
    return out


def apply_set(tree: Tree, path: Path) -> str | None:
    """Apply ``set``; an error message when the statement needs more."""
    last = path.steps[-1]
    if last.kind == "all-entries":
        return "missing argument."
    if last.stmt.kind in ("leaf", "multi") and not path.values:
        return "missing argument."
    if last.kind == "node" and last.stmt.kind == "container" and not last.stmt.presence:
        return "syntax error, expecting <statement> or <identifier>."
    trail = _walk(tree, path, create=True)
    parent, key = trail[-1]
    if last.stmt.kind == "leaf":
        parent[key] = path.values[0]
    elif last.stmt.kind == "flag":
        parent[key] = True
    elif last.stmt.kind == "multi":
        members = parent.setdefault(key, [])
        for value in path.values:
            if value not in members:  # Junos appends, without duplicates
                members.append(value)
    return None


def apply_delete(tree: Tree, path: Path) -> bool:
    """Apply ``delete``; False when the statement is not there (nothing changes)."""
    trail = _walk(tree, path, create=False)
    words = [w for s in path.steps for w in s.words]
    if len(trail) != len(words):
        return False
    parent, key = trail[-1]
    if key not in parent:
        return False
    last = path.steps[-1]
    if path.values:
        current = parent[key]
        if last.stmt.kind == "leaf":
            if current != path.values[0]:
                return False
            del parent[key]
        else:
            if not all(v in current for v in path.values):
                return False
            parent[key] = [v for v in current if v not in path.values]
            if not parent[key]:
                del parent[key]
    else:
        del parent[key]
    _prune(tree, path)
    return True


def _prune(tree: Tree, path: Path) -> None:
    """Remove containers left empty by a delete, as Junos does (list entries and presence
    containers stay)."""
    for depth in range(len(path.steps) - 1, -1, -1):
        trail = _walk(tree, Path(path.steps[: depth + 1], []), create=False)
        words = [w for s in path.steps[: depth + 1] for w in s.words]
        if len(trail) != len(words):
            continue
        parent, key = trail[-1]
        step = path.steps[depth]
        value = parent.get(key)
        keep_empty = step.kind == "entry" or step.stmt.presence
        if isinstance(value, dict) and not value and not keep_empty:
            del parent[key]
        if step.kind == "entry":
            # the list itself, left without entries
            lst_trail = trail[:-1]
            if lst_trail:
                lparent, lkey = lst_trail[-1]
                if isinstance(lparent.get(lkey), dict) and not lparent[lkey]:
                    del lparent[lkey]


def _natural(text: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"([0-9]+)", text)]


def _ordered(stmt: Stmt, node: Tree) -> Iterator[tuple[str, Stmt, Any]]:
    """Children of a container in schema order."""
    for kw, child in stmt.children.items():
        if kw in node:
            yield kw, child, node[kw]


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z0-9_.:/@+,=-]+", value) else '"' + value + '"'


def display_set(stmt: Stmt, node: Tree, prefix: list[str]) -> list[str]:
    """``set`` lines of ``node`` (whose statement is ``stmt``) under ``prefix``."""
    out: list[str] = []
    for kw, child, value in _ordered(stmt, node):
        here = [*prefix, kw]
        if child.kind == "list":
            entry = Stmt("container", child.children, presence=True)
            for key in sorted(value, key=_natural):
                sub = display_set(entry, value[key], [*here, key])
                out += sub or ["set " + " ".join([*here, _quote(key)])]
        elif child.kind == "container":
            sub = display_set(child, value, here)
            out += sub or (["set " + " ".join(here)] if child.presence else [])
        elif child.kind == "flag":
            out.append("set " + " ".join(here))
        elif child.kind == "leaf":
            out.append("set " + " ".join(here) + " " + _quote(value))
        else:
            out += ["set " + " ".join(here) + " " + _quote(v) for v in value]
    return out


def display_curly(stmt: Stmt, node: Tree, depth: int = 0) -> list[str]:
    """The configuration in Junos' hierarchical format."""
    pad = "    " * depth
    out: list[str] = []
    for kw, child, value in _ordered(stmt, node):
        if child.kind == "list":
            entry = Stmt("container", child.children, presence=True)
            keys = sorted(value, key=_natural)
            if child.keyed:
                for key in keys:
                    out += _block(f"{kw} {_quote(key)}", entry, value[key], depth)
            else:
                inner: list[str] = []
                for key in keys:
                    inner += _block(_quote(key), entry, value[key], depth + 1)
                out += [f"{pad}{kw} {{", *inner, f"{pad}}}"]
        elif child.kind == "container" and child.flat:
            for sub, sub_stmt, sub_value in _ordered(child, value):
                out += _block(f"{kw} {sub}", sub_stmt, sub_value, depth)
        elif child.kind == "container":
            out += _block(kw, child, value, depth)
        elif child.kind == "flag":
            out.append(f"{pad}{kw};")
        elif child.kind == "leaf":
            out.append(f"{pad}{kw} {_quote(value)};")
        elif len(value) == 1:
            out.append(f"{pad}{kw} {_quote(value[0])};")
        else:
            out.append(f"{pad}{kw} [ {' '.join(_quote(v) for v in value)} ];")
    return out


def _block(name: str, stmt: Stmt, node: Tree, depth: int) -> list[str]:
    pad = "    " * depth
    inner = display_curly(stmt, node, depth + 1)
    return [f"{pad}{name} {{", *inner, f"{pad}}}"] if inner else [f"{pad}{name};"]


def subtree(tree: Tree, path: Path) -> tuple[Stmt, Tree, list[str]] | None:
    """The part of ``tree`` that ``path`` names, as (statement, node, words above it); a
    single statement or a whole list comes back wrapped in a container of its own. None when
    the configuration does not have it."""
    stmt, node = SCHEMA, tree
    prefix: list[str] = []
    for step in path.steps:
        kw = step.words[0]
        if kw not in node:
            return None
        if step.stmt.kind in ("leaf", "flag", "multi") or step.kind == "all-entries":
            return Stmt("container", {kw: step.stmt}), {kw: node[kw]}, prefix
        child = node[kw]
        if step.kind == "entry":
            key = step.words[1]
            if key not in child:
                return None
            stmt, node, prefix = (
                Stmt("container", step.stmt.children),
                child[key],
                [*prefix, kw, key],
            )
        else:
            stmt, node, prefix = step.stmt, child, [*prefix, kw]
    return stmt, node, prefix


def compare(old: Tree, new: Tree) -> list[str]:
    """``show | compare``: the changes from ``old`` to ``new``, grouped under ``[edit ...]``."""
    sections: list[tuple[list[str], list[str]]] = []
    _compare(SCHEMA, old, new, [], sections)
    out: list[str] = []
    for where, lines in sections:
        out.append("[edit" + "".join(" " + w for w in where) + "]")
        out += lines
    return out


def _emit(sections: list[tuple[list[str], list[str]]], where: list[str], lines: list[str]) -> None:
    if sections and sections[-1][0] == where:
        sections[-1][1].extend(lines)
    else:
        sections.append((where, list(lines)))


def _signed(sign: str, lines: list[str]) -> list[str]:
    # Junos puts the sign in the first column of the statement's indentation
    return [sign + "   " + line for line in lines]


def _compare(
    stmt: Stmt, old: Tree, new: Tree, where: list[str], out: list[tuple[list[str], list[str]]]
) -> None:
    for kw, child in stmt.children.items():
        a, b = old.get(kw), new.get(kw)
        if a == b:
            continue
        wrap = Stmt("container", {kw: child})
        if a is None or b is None:
            sign, value = ("+", b) if a is None else ("-", a)
            _emit(out, where, _signed(sign, display_curly(wrap, {kw: value})))
        elif child.kind == "list":
            entry = Stmt("container", child.children, presence=True)
            for key in sorted(set(a) | set(b), key=_natural):
                ea, eb = a.get(key), b.get(key)
                if ea == eb:
                    continue
                if ea is None or eb is None:
                    sign, value = ("+", eb) if ea is None else ("-", ea)
                    if child.keyed:  # `unit 0 { ... }` under its interface
                        block = _block(f"{kw} {_quote(key)}", entry, value, 0)
                        _emit(out, where, _signed(sign, block))
                    else:
                        block = _block(_quote(key), entry, value, 0)
                        _emit(out, [*where, kw], _signed(sign, block))
                else:
                    _compare(entry, ea, eb, [*where, kw, _quote(key)], out)
        elif child.kind == "container" and child.flat:
            for sub, sub_stmt in child.children.items():
                sa, sb = a.get(sub), b.get(sub)
                if sa == sb:
                    continue
                if sa is None or sb is None:
                    sign, value = ("+", sb) if sa is None else ("-", sa)
                    _emit(out, where, _signed(sign, _block(f"{kw} {sub}", sub_stmt, value, 0)))
                else:
                    _compare(sub_stmt, sa, sb, [*where, kw, sub], out)
        elif child.kind == "container":
            _compare(child, a, b, [*where, kw], out)
        elif child.kind == "multi":
            gone = [v for v in a if v not in b]
            added = [v for v in b if v not in a]
            lines = _signed("-", display_curly(wrap, {kw: gone})) if gone else []
            lines += _signed("+", display_curly(wrap, {kw: added})) if added else []
            _emit(out, where, lines)
        else:
            lines = _signed("-", display_curly(wrap, {kw: a}))
            _emit(out, where, lines + _signed("+", display_curly(wrap, {kw: b})))


# --------------------------------------------------------------------------- commit checks


def _members(entry: Tree) -> list[str]:
    esw = entry.get("family", {}).get("ethernet-switching", {})
    members: list[str] = esw.get("vlan", {}).get("members", [])
    return members


def commit_errors(tree: Tree) -> list[str]:
    """ELS's checks at commit, in its output format; empty when the commit may go on."""
    vlans: dict[str, Tree] = tree.get("vlans", {})
    by_id: dict[int, str] = {}
    out: list[str] = []
    for name in sorted(vlans, key=_natural):
        vid = vlans[name].get("vlan-id")
        if vid is None:
            continue
        if int(vid) in by_id:
            out += [
                "[edit vlans]",
                f"  '{name}'",
                f"    l2ald: vlan-id {vid} is already used by vlan {by_id[int(vid)]}",
            ]
        else:
            by_id[int(vid)] = name
    for ifname in sorted(tree.get("interfaces", {}), key=_natural):
        units: dict[str, Tree] = tree["interfaces"][ifname].get("unit", {})
        for unit in sorted(units, key=_natural):
            entry = units[unit]
            esw = entry.get("family", {}).get("ethernet-switching")
            if esw is None:
                continue
            where = f"interfaces {ifname} unit {unit} family ethernet-switching"
            resolved: list[str] = []
            for member in _members(entry):
                if member == "all":
                    resolved.append(member)
                    continue
                m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", member)
                if m is None:
                    if member not in vlans:
                        out += [
                            f"[edit {where} vlan]",
                            f"  'members {member}'",
                            f"    No vlan matches vlan name {member} for interface {ifname}.{unit}",
                        ]
                    else:
                        resolved.append(member)
                    continue
                for vid in range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1):
                    if vid not in by_id:
                        out += [
                            f"[edit {where} vlan]",
                            f"  'members {member}'",
                            f"    No vlan matches vlan tag {vid} for interface {ifname}.{unit}",
                        ]
                        break
                    resolved.append(by_id[vid])
            distinct = list(dict.fromkeys(resolved))
            if esw.get("interface-mode", "access") == "access" and len(distinct) > 1:
                out += [
                    f"[edit {where}]",
                    "  'interface-mode'",
                    f"    Access interface <{ifname}.{unit}> has more than one vlan member: "
                    f"<{distinct[0]}> and <{distinct[1]}>",
                ]
    return [*out, CHECKOUT_FAILED] if out else []


def vlan_ports(tree: Tree) -> dict[str, list[str]]:
    """VLAN name -> its logical interfaces (``ge-0/0/1.0``), from a configuration."""
    vlans: dict[str, Tree] = tree.get("vlans", {})
    by_id = {int(v["vlan-id"]): n for n, v in vlans.items() if "vlan-id" in v}
    out: dict[str, list[str]] = {name: [] for name in vlans}
    for ifname in sorted(tree.get("interfaces", {}), key=_natural):
        units: dict[str, Tree] = tree["interfaces"][ifname].get("unit", {})
        for unit, entry in units.items():
            if "ethernet-switching" not in entry.get("family", {}):
                continue
            names: list[str] = []
            for member in _members(entry):
                m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", member)
                if m is None:
                    names += list(vlans) if member == "all" else [member]
                else:
                    lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
                    names += [by_id[v] for v in range(lo, hi + 1) if v in by_id]
            if not names and "default" in vlans:  # ELS: untagged traffic of a bare port
                names = ["default"]
            for name in dict.fromkeys(names):
                if name in out:
                    out[name].append(f"{ifname}.{unit}")
    return out


# --------------------------------------------------------------------------- LLDP


def _no_json() -> CliError:
    return CliError(None, "error: the lab emulates '| display json' for 'show lldp neighbors' only")


_SUBTYPES = {"mac": "Mac address", "ifname": "Interface name", "local": "Locally assigned"}
LLDP_INTERVAL = 30  # seconds between a neighbour's LLDPDUs (lldpd's and Junos' default)


def _lldp_shown(value: str, subtype: str) -> str:
    """An id as Junos prints it: a MAC in lowercase colon form, anything else as sent."""
    return (lldp_id(value) or value) if subtype == "mac" else value


JsonNode = dict[str, Any]


def _elements(*items: tuple[str, str | None]) -> JsonNode:
    """Junos JSON elements: name -> ``[{"data": text}]``, absent ones (None) left out."""
    return {name: [{"data": text}] for name, text in items if text is not None}


def lldp_json(found: list[tuple[int, str, LabNeighbor]], *, detail: bool, started: float) -> str:
    """``show lldp neighbors [detail] | display json`` for ``(port number, port, neighbour)``."""
    now = time.time()
    age = int(now - started) % LLDP_INTERVAL  # seconds since the last LLDPDU
    entries: list[JsonNode] = []
    for index, (n, port, nb) in enumerate(found, 1):
        remote = (
            ("lldp-remote-chassis-id-subtype", _SUBTYPES.get(nb.chassis_id_subtype, "")),
            ("lldp-remote-chassis-id", _lldp_shown(nb.chassis_id, nb.chassis_id_subtype)),
            ("lldp-remote-port-id-subtype", _SUBTYPES.get(nb.port_id_subtype, "")),
            ("lldp-remote-port-id", _lldp_shown(nb.port_id, nb.port_id_subtype)),
            ("lldp-remote-port-description", nb.port_description),
            ("lldp-remote-system-name", nb.system_name),
        )
        if detail:
            mark = time.asctime(time.gmtime(now - age))  # C's ctime layout
            entries.append(_elements(
                ("lldp-index", str(index)), ("lldp-ttl", str(nb.ttl)),
                ("lldp-timemark", mark), ("lldp-age", str(age)),
                ("lldp-local-interface", port), ("lldp-local-parent-interface-name", "-"),
                ("lldp-local-port-id", str(513 + n)), ("lldp-local-port-ageout-count", "0"),
                *remote,
            ))  # fmt: skip
        else:
            entries.append(_elements(
                ("lldp-local-port-id", port), ("lldp-local-parent-interface-name", "-"), *remote
            ))  # fmt: skip
    info: JsonNode = {"attributes": {"junos:style": "detail" if detail else "brief"}}
    if entries:
        info["lldp-neighbor-information"] = entries
    return _lines(_json_node({"lldp-neighbors-information": [info]}, 0)) + "\n"


def _json_node(node: JsonNode, depth: int) -> list[str]:
    """One object in the layout of Junos' ``| display json``: 4-space steps, ``"name" : [``
    with the list's objects at the name's indentation, ``, `` ending every member but the
    last."""
    pad, inner = " " * depth, " " * (depth + 4)
    members: list[list[str]] = []
    for key, value in node.items():
        if key == "attributes":
            attrs = ", ".join(f"{json.dumps(k)} : {json.dumps(v)}" for k, v in value.items())
            members.append([f'{inner}"attributes" : {{{attrs}}}'])
        elif key == "data":
            members.append([f'{inner}"data" : {json.dumps(value)}'])
        else:
            block = [f"{inner}{json.dumps(key)} : ["]
            for i, child in enumerate(value):
                sub = _json_node(child, depth + 4)
                if i < len(value) - 1:
                    sub[-1] += ", "
                block += sub
            members.append([*block, f"{inner}]"])
    out = [pad + "{"]
    for i, member in enumerate(members):
        if i < len(members) - 1:
            member[-1] += ", "
        out += member
    return [*out, pad + "}"]


# --------------------------------------------------------------------------- the database


@dataclass
class Commit:
    tree: Tree
    user: str
    at: float


@dataclass
class JunosDb:
    """The switch's configuration database: the committed configuration (Junos has no separate
    startup configuration: a commit is saved), its history, the shared candidate, and who holds
    the exclusive lock. Sessions in configuration mode register in ``editors``."""

    committed: Tree
    candidate: Tree
    history: list[Commit] = field(default_factory=list)  # newest first; [0] is rollback 0
    started: float = field(default_factory=time.time)
    rev: int = 0
    exclusive: JunosCli | None = None  # the session holding `configure exclusive`
    editors: list[JunosCli] = field(default_factory=list)

    def __deepcopy__(self, memo: dict[int, Any]) -> JunosDb:
        # LabSwitch copies the initial configuration for its saved/pending slots: sessions
        # (which hold sockets) are never copied
        return JunosDb(
            copy.deepcopy(self.committed, memo),
            copy.deepcopy(self.candidate, memo),
            copy.deepcopy(self.history, memo),
            self.started,
            self.rev,
        )


def _utc(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


# --------------------------------------------------------------------------- the CLI

Mode = Literal["shared", "private", "exclusive"]
# configuration-mode commands: those that change a candidate are what drop-after counts
_CONFIG_COMMANDS = ["activate", "annotate", "commit", "copy", "deactivate", "delete", "edit",
                    "exit", "help", "insert", "load", "quit", "rename", "replace", "rollback",
                    "run", "save", "set", "show", "status", "top", "up", "update",
                    "wildcard"]  # fmt: skip
_CHANGES = ("set", "delete", "commit", "rollback", "update")
_OPERATIONAL = ["clear", "configure", "exit", "file", "help", "monitor", "ping", "quit",
                "request", "restart", "set", "show", "ssh", "start", "telnet", "test",
                "traceroute"]  # fmt: skip
_PIPES = ["compare", "count", "display", "except", "match", "no-more"]


def _tokens(line: str, offset: int = 0) -> tuple[list[str], list[int]]:
    """Words and their columns (``offset`` added); ``"..."`` is one word, without quotes."""
    words: list[str] = []
    cols: list[int] = []
    i = 0
    while i < len(line):
        if line[i].isspace():
            i += 1
            continue
        start = i
        if line[i] == '"':
            end = line.find('"', i + 1)
            if end < 0:
                raise CliError(offset + len(line), "syntax error, expecting <quoted-string>.")
            words.append(line[i + 1 : end])
            i = end + 1
        else:
            while i < len(line) and not line[i].isspace():
                i += 1
            words.append(line[start:i])
        cols.append(offset + start)
    return words, cols


@dataclass
class Line:
    """A command line: its words with their columns, and its pipes (``| display set`` ...)."""

    words: list[str]
    cols: list[int]
    pipes: list[list[str]]
    end: int  # the column just after the command (where a missing word would go)

    def col(self, i: int) -> int:
        return self.cols[i] if i < len(self.cols) else self.end

    @property
    def display_set(self) -> bool:
        return ["display", "set"] in self.pipes

    @property
    def display_json(self) -> bool:
        return ["display", "json"] in self.pipes


def parse_line(line: str, offset: int = 0) -> Line:
    parts: list[tuple[str, int]] = []
    start, quoted = 0, False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "|" and not quoted:
            parts.append((line[start:i], start))
            start = i + 1
    parts.append((line[start:], start))
    head, _ = parts[0]
    words, cols = _tokens(head, offset)
    end = (cols[-1] + len(words[-1]) + 1) if words else offset
    pipes: list[list[str]] = []
    for text, at in parts[1:]:
        pw, pc = _tokens(text, offset + at)
        if not pw:
            raise CliError(offset + at + 1, "syntax error, expecting <command>.")
        cmd = _keyword(pw[0], _PIPES, pc[0])
        if cmd == "display":
            if len(pw) != 2:
                raise CliError(pc[2] if len(pw) > 2 else pc[0] + len(pw[0]) + 1, "syntax error.")
            pipes.append(["display", _keyword(pw[1], ["json", "set"], pc[1])])
        elif cmd in ("match", "except"):
            if len(pw) != 2:
                raise CliError(pc[2] if len(pw) > 2 else pc[0] + len(pw[0]) + 1, "syntax error.")
            pipes.append([cmd, pw[1]])
        else:
            if len(pw) != 1:
                raise CliError(pc[1], "syntax error.")
            pipes.append([cmd])
    return Line(words, cols, pipes, end)


def _unknown(exc: CliError) -> CliError:
    """A first word that names no command is an ``unknown command.`` (an ambiguous one keeps
    its own message)."""
    if exc.message.endswith("is ambiguous."):
        return exc
    return CliError(exc.index, "unknown command.")


def _lines(lines: list[str]) -> str:
    return "".join(x + "\n" for x in lines)


def _pipe(text: str, pipes: list[list[str]]) -> str:
    lines = text.splitlines()
    for pipe in pipes:
        try:
            if pipe[0] == "match":
                lines = [x for x in lines if re.search(pipe[1], x)]
            elif pipe[0] == "except":
                lines = [x for x in lines if not re.search(pipe[1], x)]
            elif pipe[0] == "count":
                lines = [f"Count: {len(lines)} lines"]
        except re.error:
            return "error: invalid regular expression\n"
    return _lines(lines)


def render(tree: Tree, path: Path, *, as_set: bool) -> list[str]:
    """``show [configuration] PATH [| display set]`` of ``tree``: hierarchical text relative to
    PATH, or ``set`` lines with full paths; nothing when the configuration has no such part."""
    found = subtree(tree, path)
    if found is None:
        return []
    stmt, node, prefix = found
    return display_set(stmt, node, prefix) if as_set else display_curly(stmt, node)


class JunosCli(DialectCli):
    name = "junos"
    hostname = "lab-junos"
    default_username = "admin"
    default_password = "admin123"

    def __init__(self, switch: LabSwitch, term: Terminal, username: str) -> None:
        super().__init__(switch, term, username)
        self.sid = switch.sessions + 1  # the framework counts this session right after
        self.pid = 4000 + self.sid
        self.since = time.time()
        self.mode: Mode | None = None  # None: operational mode
        self.private: Tree | None = None  # the private candidate
        self.private_ops: list[tuple[str, Path]] = []  # edits since base_rev, for merging
        self.base_rev = 0
        self.question: str | None = None  # a yes/no question waiting for its answer

    # ------------------------------------------------------------------ framework

    @property
    def db(self) -> JunosDb:
        db: JunosDb = self.switch.running
        return db

    @staticmethod
    def port_names(count: int) -> list[str]:
        return [f"ge-0/0/{i}" for i in range(count)]

    @classmethod
    def initial_config(cls, ports: list[str]) -> JunosDb:
        """An EX's factory configuration (ELS): every port switching, in VLAN ``default``."""
        tree: Tree = {
            "version": VERSION,
            "system": {"host-name": cls.hostname},
            "interfaces": {
                p: {"unit": {"0": {"family": {"ethernet-switching": {"storm-control": "default"}}}}}
                for p in ports
            },
            "vlans": {"default": {"vlan-id": "1"}},
        }
        now = time.time()
        return JunosDb(tree, copy.deepcopy(tree), [Commit(copy.deepcopy(tree), "root", now)])

    def banner(self) -> str:
        return f"--- JUNOS {VERSION} Kernel 64-bit  JNPR-12.1-20220603.f5f5b5b_builder_stable_12\n"

    def prompt(self) -> str:
        if self.question is not None:
            return ""  # the question is on screen, waiting for its answer
        host = str(self.db.committed.get("system", {}).get("host-name", self.hostname))
        if self.mode is None:
            return f"\n{MASTER}\n{self.username}@{host}> "
        return f"\n{MASTER}[edit]\n{self.username}@{host}# "

    def is_config_command(self, line: str) -> bool:
        words = line.split()
        if self.mode is None or self.question is not None or not words:
            return False
        found = [c for c in _CONFIG_COMMANDS if c.startswith(words[0])]
        return (words[0] if words[0] in found else found[0] if len(found) == 1 else "") in _CHANGES

    async def execute(self, line: str) -> None:
        if self.question is not None:
            self.term.write(self._answer(line.strip()))
            return
        if not line.strip():
            return
        try:
            out = self._config(line) if self.mode is not None else self._operational(line, 0)
        except CliError as exc:
            out = self._error(exc)
        self.term.write(out)

    def _error(self, exc: CliError) -> str:
        if exc.index is None:
            return exc.message + "\n"
        # the caret sits under the word, counting the prompt the line was typed after
        prompt = self.prompt().rsplit("\n", 1)[-1]
        return " " * (len(prompt) + exc.index) + "^\n" + exc.message + "\n"

    # ------------------------------------------------------------------ operational mode

    def _operational(self, text: str, offset: int) -> str:
        line = parse_line(text, offset)
        if not line.words:
            raise CliError(line.end, "syntax error, expecting <command>.")
        try:
            cmd = _keyword(line.words[0], _OPERATIONAL, line.cols[0])
        except CliError as exc:
            raise _unknown(exc) from None
        if cmd in ("exit", "quit") and not offset:
            if len(line.words) > 1:
                raise CliError(line.cols[1], "syntax error, expecting <command>.")
            raise EndSession
        if cmd == "show":
            return self._show(line)
        if cmd == "set":
            return self._set_cli(line)
        if cmd == "configure" and not offset:
            return self._configure(line)
        # a Junos command the lab does not emulate (or not from `run`)
        raise CliError(line.cols[0], "syntax error, expecting <command>.")

    def _set_cli(self, line: Line) -> str:
        w = line.words
        if len(w) < 2 or _keyword(w[1], ["chassis", "cli", "date"], line.col(1)) != "cli":
            raise CliError(line.col(1), "syntax error, expecting <command>.")
        if len(w) < 3:
            raise CliError(line.end, "syntax error, expecting <command>.")
        what = _keyword(w[2], ["complete-on-space", "screen-length", "screen-width"], line.col(2))
        if len(w) != 4:
            raise CliError(line.col(4) if len(w) > 4 else line.end, "syntax error.")
        value, at = w[3], line.col(3)
        if what == "complete-on-space":
            choice = _keyword(value, ["off", "on"], at)
            return ("Disabling" if choice == "off" else "Enabling") + " complete-on-space\n"
        problem = _int_range(0, 100000 if what == "screen-length" else 1024)(value)
        if problem:
            raise CliError(at, f"{problem} at '{value}'")
        if what == "screen-width":
            return f"Screen width set to {int(value)}\n"
        return f"Screen length set to {int(value)}\n"

    def _show(self, line: Line) -> str:
        w = line.words
        if len(w) < 2:
            raise CliError(line.end, "syntax error, expecting <command>.")
        topics = ["chassis", "configuration", "interfaces", "lldp", "system", "version", "vlans"]
        try:
            what = _keyword(w[1], topics, line.col(1))
        except CliError as exc:
            raise CliError(exc.index, "syntax error, expecting <command>.") from None
        if what == "lldp":
            return _pipe(self._show_lldp(line), line.pipes)
        if line.display_json:
            raise _no_json()
        if what == "configuration":
            committed = self.db.committed
            path = resolve(w[2:], line.cols[2:]) if len(w) > 2 else Path([], [])
            lines = render(committed, path, as_set=line.display_set)
            if len(w) == 2 and not line.display_set:
                last = self.db.history[0]
                lines = [f"## Last commit: {_utc(last.at)} by {last.user}", *lines]
            return _pipe(_lines(lines), line.pipes)
        if len(w) > 3 or (len(w) == 3 and what != "vlans"):
            raise CliError(line.col(2 if what != "vlans" else 3), "syntax error.")
        if what == "version":
            host = self.db.committed.get("system", {}).get("host-name", self.hostname)
            text = (
                "fpc0:\n" + "-" * 74 + "\n"
                f"Hostname: {host}\nModel: {MODEL}\nJunos: {VERSION}\n"
                "JUNOS OS Kernel 64-bit  [20220603.f5f5b5b_builder_stable_12]\n"
                f"JUNOS EX  Software Suite [{VERSION}]\n"
            )
            return _pipe(text, line.pipes)
        if what == "vlans":
            return _pipe(self._show_vlans(w[2] if len(w) == 3 else None), line.pipes)
        raise CliError(line.col(1), "syntax error, expecting <command>.")

    def _show_lldp(self, line: Line) -> str:
        """``show lldp neighbors [interface P] [detail]``, as text (brief) or JSON."""
        w = line.words
        if len(w) < 3:  # `show lldp` (the protocol's own state) is not emulated
            raise CliError(line.end, "syntax error, expecting <command>.")
        _keyword(w[2], ["neighbors"], line.col(2))
        detail, only = False, None
        i = 3
        while i < len(w):
            opt = _keyword(w[i], ["detail", "interface"], line.col(i))
            if opt == "detail" and not detail:
                detail = True
            elif opt == "interface" and only is None:
                if i + 1 == len(w):
                    raise CliError(line.end, "syntax error, expecting <interface-name>.")
                i += 1
                only = w[i].split(".")[0]  # ge-0/0/5.0: its physical port
                problem = _interface_name(only)
                if problem:
                    raise CliError(line.col(i), f"{problem} at '{w[i]}'")
            else:
                raise CliError(line.col(i), "syntax error.")
            i += 1
        heard = self.switch.lldp_neighbors()
        found = [
            (n, port, neighbor)
            for n, port in enumerate(self.switch.port_names)
            if only is None or port == only
            for neighbor in heard.get(port, ())
        ]
        if line.display_json:
            return lldp_json(found, detail=detail, started=self.db.started)
        if detail:
            raise CliError(None, "error: the lab shows LLDP neighbour details only with "
                           "'| display json'")  # fmt: skip
        if not found:
            return ""
        rows = ["Local Interface    Parent Interface    Chassis Id          Port info"
                "          System Name"]  # fmt: skip
        for _, port, nb in found:
            info = nb.port_description or _lldp_shown(nb.port_id, nb.port_id_subtype)
            chassis = _lldp_shown(nb.chassis_id, nb.chassis_id_subtype)
            rows.append(f"{port:<19}{'-':<20}{chassis:<20}{info:<19}{nb.system_name or ''}"
                        .rstrip())  # fmt: skip
        return _lines(rows) + "\n"

    def _show_vlans(self, only: str | None) -> str:
        committed = self.db.committed
        vlans: dict[str, Tree] = committed.get("vlans", {})
        if only is not None and only not in vlans:
            return f"error: vlan with name {only} does not exist\n"
        names = [only] if only is not None else sorted(vlans, key=_natural)
        members = vlan_ports(committed)
        lines = ["Routing instance        VLAN name             Tag          Interfaces"]
        for name in names:
            tag = str(vlans[name].get("vlan-id", "NA"))
            lines.append(f"{'default-switch':<24}{name:<22}{tag:<13}".rstrip())
            lines += [" " * 59 + p for p in sorted(members.get(name, []), key=_natural)]
        return _lines(lines) + "\n"

    # ------------------------------------------------------------------ entering configuration

    def _others(self) -> list[JunosCli]:
        """Other live sessions in configuration mode. A session that died left configuration
        mode: its exclusive lock goes, and the uncommitted edits made under it."""
        db = self.db
        db.editors = [s for s in db.editors if not s.term.process.is_closing()]
        if db.exclusive is not None and db.exclusive not in db.editors:
            db.exclusive = None
            db.candidate = copy.deepcopy(db.committed)
        return [s for s in db.editors if s is not self]

    @staticmethod
    def _who(sessions: list[JunosCli]) -> list[str]:
        out: list[str] = []
        for s in sessions:
            kind = {"private": "private ", "exclusive": "exclusive "}.get(s.mode or "", "")
            out += [
                f"  {s.username} terminal p{s.sid} (pid {s.pid}) on since {_utc(s.since)}",
                f"      {kind}[edit]",
            ]
        return out

    def _holder_lock(self) -> str | None:
        """The lock error when another session holds ``configure exclusive``."""
        others = self._others()
        holder = self.db.exclusive
        if holder is None or holder is self or holder not in others:
            return None
        return _lines(["error: configuration database locked by:", *self._who([holder])])

    def _lock_error(self) -> str | None:
        """The lock error for a commit: another exclusive session, or the config_locked fault
        (which plays an exclusive session of root's)."""
        if self.switch.faults.current().config_locked:
            return _lines([
                "error: configuration database locked by:",
                f"  root terminal p0 (pid 1342) on since {_utc(self.db.started)}",
                "      exclusive [edit]",
            ])  # fmt: skip
        return self._holder_lock()

    def _configure(self, line: Line) -> str:
        w = line.words
        if len(w) > 2:
            raise CliError(line.col(2), "syntax error, expecting <command>.")
        kind: Mode = "shared"
        if len(w) == 2:
            choice = _keyword(w[1], ["batch", "dynamic", "exclusive", "private"], line.col(1))
            if choice not in ("exclusive", "private"):
                raise CliError(line.col(1), "syntax error, expecting <command>.")
            kind = "exclusive" if choice == "exclusive" else "private"
        others = self._others()
        db = self.db
        modified = db.candidate != db.committed
        out: list[str] = []
        if kind == "private":
            if modified:  # Junos: no private copy while the shared candidate is dirty
                editing = ["Users currently editing the configuration:", *self._who(others)]
                return _lines(["error: shared configuration database modified",
                               *(editing if others else [])])  # fmt: skip
            self.private = copy.deepcopy(db.committed)
            self.private_ops = []
            self.base_rev = db.rev
            out.append("warning: uncommitted changes will be discarded on exit")
        elif kind == "exclusive":
            locked = self._lock_error()
            if locked:
                return locked
            if modified:
                return "error: configuration database modified\n"
            db.exclusive = self
            out.append("warning: uncommitted changes will be discarded on exit")
        out.append("Entering configuration mode")
        if others:
            out += ["Users currently editing the configuration:", *self._who(others)]
        if kind == "shared" and modified:
            out.append("The configuration has been changed but not committed")
        self.mode = kind
        db.editors.append(self)
        return _lines(out)

    # ------------------------------------------------------------------ configuration mode

    @property
    def candidate(self) -> Tree:
        if self.private is not None:
            return self.private
        return self.db.candidate

    def _changed(self) -> bool:
        if self.mode == "private":
            return bool(self.private_ops)
        return self.db.candidate != self.db.committed

    def _config(self, text: str) -> str:
        self._others()  # notice dead sessions (and the locks they held)
        stripped = text.lstrip()
        first = stripped.split()[0]
        at = len(text) - len(stripped)
        try:
            cmd = _keyword(first, _CONFIG_COMMANDS, at)
        except CliError as exc:
            raise _unknown(exc) from None
        if cmd == "run":
            rest = stripped[len(first) :]
            if not rest.strip():
                raise CliError(at + len(first) + 1, "syntax error, expecting <command>.")
            return self._operational(rest, at + len(first))
        line = parse_line(text)
        w = line.words
        if cmd in ("set", "delete"):
            if line.pipes:
                raise CliError(None, "syntax error.")
            return self._edit(cmd, line)
        if cmd == "show":
            return self._show_candidate(line)
        if cmd == "commit":
            return self._commit(line)
        if cmd == "rollback":
            return self._rollback(line)
        if cmd == "update":
            if len(w) > 1:
                raise CliError(line.col(1), "syntax error.")
            if self.mode != "private":
                return "error: update is only valid in configure private mode\n"
            self.private = self._merged()
            self.base_rev = self.db.rev
            return ""
        if cmd in ("exit", "quit"):
            if len(w) > 2 or (len(w) == 2 and not "configuration-mode".startswith(w[1])):
                raise CliError(line.col(1), "syntax error.")
            return self._leave(explicit=len(w) == 2)
        if cmd == "status":
            return _lines(["Users currently editing the configuration:",
                           *self._who([self, *self._others()])])  # fmt: skip
        raise CliError(line.cols[0], "syntax error.")  # a Junos command the lab does not emulate

    def _edit(self, cmd: str, line: Line) -> str:
        if len(line.words) < 2:
            raise CliError(line.end, "syntax error, expecting <statement> or <identifier>.")
        path = resolve(line.words[1:], line.cols[1:])
        if self.mode == "shared":
            locked = self._holder_lock()
            if locked:  # another session's exclusive lock forbids edits of the shared candidate
                return locked
        if cmd == "set":
            problem = apply_set(self.candidate, path)
            if problem:
                raise CliError(line.end, problem)
        elif not apply_delete(self.candidate, path):
            return "warning: statement not found\n"
        if self.mode == "private":
            self.private_ops.append((cmd, path))
        return ""

    def _show_candidate(self, line: Line) -> str:
        w = line.words
        if line.display_json:
            raise _no_json()
        if ["compare"] in line.pipes:
            if len(w) > 1:
                raise CliError(line.col(1), "syntax error.")
            text = _lines(compare(self.db.committed, self.candidate))
            return _pipe(text, [p for p in line.pipes if p != ["compare"]])
        path = resolve(w[1:], line.cols[1:]) if len(w) > 1 else Path([], [])
        return _pipe(_lines(render(self.candidate, path, as_set=line.display_set)), line.pipes)

    def _commit(self, line: Line) -> str:
        w = line.words
        check = and_quit = False
        i = 1
        while i < len(w):
            opt = _keyword(w[i], ["and-quit", "check", "comment", "confirmed", "synchronize"],
                           line.col(i))  # fmt: skip
            if opt == "check":
                check = True
            elif opt == "and-quit":
                and_quit = True
            elif opt == "comment":
                i += 1
                if i == len(w):
                    raise CliError(line.end, "missing argument.")
            elif opt == "confirmed" and self.mode == "private":
                return "error: commit confirmed not supported for private configuration\n"
            else:  # commit confirmed / synchronize: not emulated
                raise CliError(line.col(i), "syntax error.")
            i += 1
        if not check:
            locked = self._lock_error()
            if locked:
                return locked
            if self.mode == "private" and self.db.candidate != self.db.committed:
                return "error: shared configuration database modified\n"
        new = self._merged()
        errors = commit_errors(new)
        if errors:
            return _lines(errors)
        if check:
            return "configuration check succeeds\n"
        db = self.db
        db.committed = copy.deepcopy(new)
        db.rev += 1
        db.history.insert(0, Commit(copy.deepcopy(new), self.username, time.time()))
        del db.history[HISTORY + 1 :]
        # the shared candidate was unmodified (a private commit requires it): it follows
        db.candidate = copy.deepcopy(new)
        if self.mode == "private":
            self.private = copy.deepcopy(new)
            self.private_ops = []
            self.base_rev = db.rev
        out = "configuration check succeeds\ncommit complete\n"
        if and_quit:
            self._exit_config()
            out += "Exiting configuration mode\n"
        return out

    def _merged(self) -> Tree:
        """What a commit makes of this session's candidate: a private candidate's edits are
        merged into the latest committed configuration (others may have committed since)."""
        if self.mode != "private" or self.base_rev == self.db.rev:
            return copy.deepcopy(self.candidate)
        tree = copy.deepcopy(self.db.committed)
        for cmd, path in self.private_ops:
            if cmd == "set":
                apply_set(tree, path)
            else:
                apply_delete(tree, path)
        return tree

    def _rollback(self, line: Line) -> str:
        w = line.words
        n = 0
        if len(w) > 2:
            raise CliError(line.col(2), "syntax error.")
        if len(w) == 2:
            problem = _int_range(0, HISTORY)(w[1])
            if problem:
                raise CliError(line.col(1), f"{problem} at '{w[1]}'")
            n = int(w[1])
        if n >= len(self.db.history):
            return f"error: Cannot find rollback {n}\n"
        tree = copy.deepcopy(self.db.history[n].tree)
        if self.mode == "private":
            self.private_ops = _ops_between(self.db.committed, tree)
            self.private = tree
            self.base_rev = self.db.rev
        else:
            self.db.candidate = tree
        return "load complete\n"

    def _leave(self, *, explicit: bool) -> str:
        if not self._changed():
            self._exit_config()
            return "Exiting configuration mode\n"
        changed = "The configuration has been changed but not committed\n"
        if self.mode == "shared" and explicit:
            self._exit_config()  # the shared candidate keeps the changes
            return changed + "Exiting configuration mode\n"
        if self.mode == "exclusive":
            self.question = "exclusive"
            return (
                changed + "warning: Auto rollback on exiting 'configure exclusive'\n"
                "Discard uncommitted changes? [yes,no] (yes) "
            )
        self.question = self.mode or "shared"
        return changed + "Exit with uncommitted changes? [yes,no] (yes) "

    def _answer(self, answer: str) -> str:
        kind, self.question = self.question, None
        if answer and not "yes".startswith(answer.lower()):
            return ""  # "no": stay in configuration mode
        out = ""
        if kind == "exclusive":
            out = "warning: discarding uncommitted changes\nload complete\n"
        self._exit_config()
        return out + "Exiting configuration mode\n"

    def _exit_config(self) -> None:
        db = self.db
        if db.exclusive is self:
            db.exclusive = None
            db.candidate = copy.deepcopy(db.committed)  # exclusive edits do not outlive it
        if self in db.editors:
            db.editors.remove(self)
        self.mode = None
        self.private = None
        self.private_ops = []


def _ops_between(old: Tree, new: Tree) -> list[tuple[str, Path]]:
    """Edits turning ``old`` into ``new`` (a private ``rollback N`` is a change merged at commit
    like typed ones)."""
    before = display_set(SCHEMA, old, [])
    after = display_set(SCHEMA, new, [])
    ops: list[tuple[str, Path]] = []
    for cmd, lines, other in (("delete", before, set(after)), ("set", after, set(before))):
        for text in lines:
            if text not in other:
                words, cols = _tokens(text)
                ops.append((cmd, resolve(words[1:], cols[1:])))
    return ops
