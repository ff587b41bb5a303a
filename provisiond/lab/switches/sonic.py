"""Lab community SONiC (``provisiond lab switch --dialect sonic``), as of release 202411: an SSH
login into bash, ``admin@lab-sonic:~$``, and sonic-utilities' ``config`` / ``show`` commands over a
CONFIG_DB held as Redis has it (``TABLE -> key -> field -> string``: ``PORT``, ``VLAN``,
``VLAN_MEMBER``, ``DEVICE_METADATA``).

* ``config`` (root only, else ``Root privileges are required for this operation``):
  ``vlan add|del [-m] VID``, ``vlan member add [-u] VID PORT``, ``vlan member del VID PORT``,
  ``switchport mode access|trunk|routed PORT`` (202405's port mode: ``vlan member add`` then
  refuses tagged members on an access port, anything on a routed one), ``interface
  mtu|shutdown|startup``, ``save [-y]``, each checking what sonic-utilities checks, in its order,
  and failing as click 7.0 does (``Usage: ...`` / ``Try "... -h" for help.`` / ``Error: ...``);
  command names may be abbreviated (AbbreviationGroup). Every change is live at once; ``config
  save -y`` copies the running CONFIG_DB to /etc/sonic/config_db.json (``cat`` it; ``show
  runningconfiguration all`` prints the running one). There is no ``config interface
  description`` in community SONiC: it answers click's ``No such command``.
* ``show vlan brief`` (tabulate "grid"), ``show interfaces status|description [PORT]`` (tabulate
  "simple", right-aligned; the status's Vlan column is ``trunk`` for any VLAN member, as before
  202505), ``show runningconfiguration all|ports [PORT]`` (JSON), as sonic-utilities prints them.
* ``sonic-db-cli [-s] CONFIG_DB KEYS|EXISTS|HGETALL|HGET|HSET|HDEL|DEL ...``, printed as its C++
  version does; ``sed [-n] 's/RE/REPL/[gp]'`` (POSIX basic regular expressions); ``cat``,
  ``echo``, ``whoami``, ``hostname``, ``pwd``, ``true``, ``false``, ``exit``.
* The shell is a small bash: quoting, ``$VAR`` / ``"$VAR"``, ``$(...)`` with word splitting,
  pipelines, ``;`` and ``for NAME in WORDS; do ...; done`` -- what the dialect's one-line sweeps
  and guards (drivers/switch/dialects/sonic.py) are made of. It dispatches only to the emulated
  commands above; other operators (``&&``, ``>``, ...) answer ``-bash: OP: not supported``,
  unknown commands ``-bash: X: command not found``.
* sudo: the login user runs ``config``, ``show`` and ``sonic-db-cli`` through sudo without a
  password (what networking-generic-switch needs on SONiC), and ``lldpctl`` as every user may on
  SONiC (its /etc/sudoers: ``ALL ALL=NOPASSWD: READ_ONLY_CMDS``, which lists
  ``/usr/bin/lldpctl``); anything else, ``sudo -s`` / ``sudo -i`` / ``sudo su`` included, asks
  ``[sudo] password for USER:`` (the login password; three tries), or with ``sudo -n`` answers
  ``sudo: a password is required``; a root shell's prompt is ``root@lab-sonic:/home/USER#``
  (netmiko's ``linux`` driver enters "config mode" with ``sudo -s``).
* LLDP, with the neighbours of ``--lldp FILE``: lldpd runs in the ``lldp`` container, and the
  host's ``lldpctl`` / ``lldpcli`` are sonic-buildimage's wrappers ``docker exec -i[t] lldp
  lldpctl "$@"``; ``docker exec [-i] [-t] lldp lldpctl|lldpcli ...`` works too. The login is
  not in the ``docker`` group (the factory ``admin`` is; a provisioning login need not be), so
  without sudo they fail as docker does (``permission denied while trying to connect to the
  Docker daemon socket ...``; the API path in that message is unverified). lldpd's client
  (lldpd.py) prints ``-f plain|json|json0``; ``show lldp table`` prints lldpshow's table and
  ``show lldp neighbors [IF]`` lldpctl's text, as ``sudo lldpshow [-d]`` does (every user may).

Ports: ``Ethernet0..Ethernet{N-1}`` (25G, one lane each), admin up, MTU 9100, no description
(``show interfaces description`` prints ``N/A``), in no VLAN; no VLANs. Faults: ``config_locked``
makes ``config save`` answer ``Failed to acquire lock on /etc/sonic/reload.lock`` (what SONiC
prints when another config reload holds the lock; real saves take no lock: the lab's choice).
"""

from __future__ import annotations

import contextlib
import copy
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from provisiond.lab.switch import DialectCli, EndSession, LabSwitch, Terminal
from provisiond.lab.switches import lldpd

Db = dict[str, dict[str, dict[str, str]]]
Out = Callable[[str], None]

CONFIG_FILE = "/etc/sonic/config_db.json"
CFGGEN = "/usr/local/bin/sonic-cfggen"
RELOAD_LOCK = "/etc/sonic/reload.lock"
# the lab's sudoers NOPASSWD list: the provisioning login's rule, and SONiC's READ_ONLY_CMDS
NO_PASSWORD = frozenset({"config", "show", "sonic-db-cli", "lldpctl"})
# what sudo can run (the shell's builtins exit/logout are not commands)
_OTHERS = {"sed", "cat", "echo", "whoami", "hostname", "pwd", "true", "false", "lldpcli", "docker"}
COMMANDS = NO_PASSWORD | _OTHERS
DOCKER_SOCKET = "unix:///var/run/docker.sock"
_MTU = (68, 9216)
# sonic-db-cli: the Redis commands the lab answers, with their argument counts (min, max)
_DB_ARITY = {
    "KEYS": (1, 1),
    "EXISTS": (1, 99),
    "DEL": (1, 99),
    "HGETALL": (1, 1),
    "HGET": (2, 2),
    "HSET": (3, 99),
    "HDEL": (2, 99),
}


def _natkey(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


# --------------------------------------------------------------------------- tabulate 0.9.0


def _simple_table(header: list[str], rows: list[list[str]]) -> str:
    """tabulate(rows, header, tablefmt="simple", stralign="right"), as intfutil prints."""
    rows = [[c.strip() for c in r] for r in rows]
    widths = [max([len(h) + 2] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = [
        "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    for r in rows:
        lines.append("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _grid_table(header: list[str], rows: list[list[str]]) -> str:
    """tabulate(rows, header, tablefmt="grid"): numeric columns right-aligned, text left,
    multi-line cells one line per row line."""
    cells = [[c.split("\n") for c in r] for r in rows]
    numeric = [
        bool(rows) and all(r[i].strip().lstrip("-").isdigit() for r in rows)
        for i in range(len(header))
    ]
    widths = [
        max([len(h) + 2] + [len(line) for r in cells for line in r[i]])
        for i, h in enumerate(header)
    ]

    def rule(ch: str) -> str:
        return "+" + "+".join(ch * (w + 2) for w in widths) + "+"

    def line(values: list[str]) -> str:
        out = []
        for v, w, num in zip(values, widths, numeric, strict=True):
            out.append(" " + (v.rjust(w) if num else v.ljust(w)) + " ")
        return "|" + "|".join(out) + "|"

    lines = [rule("-"), line(header), rule("=")]
    for r in cells:
        height = max(len(c) for c in r)
        for k in range(height):
            lines.append(line([c[k] if k < len(c) else "" for c in r]))
        lines.append(rule("-"))
    if not rows:
        lines.append(rule("-"))
    return "\n".join(lines)


# --------------------------------------------------------------------------- a small bash


class ShellError(Exception):
    """A line the lab's shell refuses (its message is bash-like: ``-bash: ...``)."""


@dataclass(frozen=True)
class Part:
    kind: str  # "lit" | "var" | "sub"
    text: str
    quoted: bool


Word = tuple[Part, ...]


@dataclass(frozen=True)
class Pipeline:
    stages: tuple[tuple[Word, ...], ...]


@dataclass(frozen=True)
class ForLoop:
    var: str
    items: tuple[Word, ...]
    body: tuple[Statement, ...]


Statement = Pipeline | ForLoop

_SUPPORTED_OPS = ("|", ";")
_OTHER_OPS = ("&&", "||", ";;", ">>", "<<", "&", ">", "<", "(", ")")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _match_paren(line: str, start: int) -> int:
    """The index of the ``)`` closing the ``$(`` whose inside starts at ``start``."""
    depth, i = 1, start
    while i < len(line):
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            end = line.find("'", i + 1)
            if end < 0:
                break
            i = end
        elif c == '"':
            i += 1
            while i < len(line) and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ShellError("-bash: unexpected EOF while looking for matching `)'")


def _dollar(line: str, i: int, quoted: bool) -> tuple[Part, int]:
    """The expansion starting at ``line[i] == "$"`` and the index after it."""
    rest = line[i + 1 :]
    if rest.startswith("(("):
        raise ShellError("-bash: $((: not supported by the provisiond lab shell")
    if rest.startswith("("):
        end = _match_paren(line, i + 2)
        return Part("sub", line[i + 2 : end], quoted), end + 1
    if rest.startswith("{"):
        end = line.find("}", i + 2)
        name = line[i + 2 : end] if end > 0 else ""
        if not (_NAME.fullmatch(name) or name == "?"):
            raise ShellError(f"-bash: {line[i : end + 1 if end > 0 else None]}: bad substitution")
        return Part("var", name, quoted), end + 1
    if rest.startswith("?"):
        return Part("var", "?", quoted), i + 2
    m = _NAME.match(rest)
    if m:
        return Part("var", m.group(), quoted), i + 1 + m.end()
    return Part("lit", "$", quoted), i + 1


def lex(line: str) -> list[Word | str]:
    """Words (tuples of parts) and operators (str) of one line."""
    tokens: list[Word | str] = []
    parts: list[Part] = []
    lit: list[str] = []
    started = False

    def flush_lit() -> None:
        if lit:
            parts.append(Part("lit", "".join(lit), False))
            lit.clear()

    def end_word() -> None:
        nonlocal started
        flush_lit()
        if started:
            tokens.append(tuple(parts))
        parts.clear()
        started = False

    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c in " \t":
            end_word()
            i += 1
        elif c == "#" and not started:
            break  # a comment
        elif c == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise ShellError("-bash: unexpected EOF while looking for matching `''")
            flush_lit()
            parts.append(Part("lit", line[i + 1 : end], True))
            started, i = True, end + 1
        elif c == '"':
            flush_lit()
            started, i = True, i + 1
            buf: list[str] = []
            while True:
                if i >= n:
                    raise ShellError("-bash: unexpected EOF while looking for matching `\"'")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and line[i + 1] in '$`"\\':
                    buf.append(line[i + 1])
                    i += 2
                elif c == "$":
                    if buf:
                        parts.append(Part("lit", "".join(buf), True))
                        buf.clear()
                    part, i = _dollar(line, i, True)
                    parts.append(part)
                elif c == "`":
                    raise ShellError("-bash: `: not supported by the provisiond lab shell")
                else:
                    buf.append(c)
                    i += 1
            parts.append(Part("lit", "".join(buf), True))
        elif c == "\\":
            flush_lit()
            if i + 1 < n:
                parts.append(Part("lit", line[i + 1], True))
            started, i = True, i + 2
        elif c == "$":
            flush_lit()
            part, i = _dollar(line, i, False)
            parts.append(part)
            started = True
        elif c == "`":
            raise ShellError("-bash: `: not supported by the provisiond lab shell")
        else:
            op = next((o for o in (*_OTHER_OPS, *_SUPPORTED_OPS) if line.startswith(o, i)), None)
            if op is None:
                lit.append(c)
                started, i = True, i + 1
                continue
            end_word()
            if op in _OTHER_OPS:
                raise ShellError(f"-bash: {op}: not supported by the provisiond lab shell")
            tokens.append(op)
            i += len(op)
    end_word()
    return tokens


def static(word: Word | str) -> str | None:
    """The text of a word made of literal parts only (None for operators and expansions)."""
    if isinstance(word, str) or any(p.kind != "lit" for p in word):
        return None
    return "".join(p.text for p in word)


def parse(line: str) -> list[Statement]:
    """The statements of one line: pipelines and ``for`` loops, separated by ``;``."""
    tokens = lex(line)
    pos = 0

    def unexpected(tok: Word | str | None) -> ShellError:
        text = "newline" if tok is None else tok if isinstance(tok, str) else static(tok)
        return ShellError(f"-bash: syntax error near unexpected token `{text}'")

    def peek() -> Word | str | None:
        return tokens[pos] if pos < len(tokens) else None

    def statements(until: str | None) -> list[Statement]:
        nonlocal pos
        out: list[Statement] = []
        while pos < len(tokens):
            tok = tokens[pos]
            if tok == ";":
                if not out:
                    raise unexpected(tok)
                pos += 1
                continue
            word = static(tok)
            if until is not None and word == until:
                return out
            if word in ("do", "done"):
                raise unexpected(tok)
            out.append(for_loop() if word == "for" else pipeline())
        if until is not None:
            raise unexpected(None)
        return out

    def for_loop() -> ForLoop:
        nonlocal pos
        pos += 1
        name = static(peek() or ";")
        if name is None or not _NAME.fullmatch(name):
            raise ShellError(f"-bash: `{name or ''}': not a valid identifier")
        pos += 1
        if static(peek() or ";") != "in":
            raise unexpected(peek())
        pos += 1
        items: list[Word] = []
        while isinstance(tok := peek(), tuple):
            items.append(tok)
            pos += 1
        if peek() != ";":
            raise unexpected(peek())
        pos += 1
        if static(peek() or ";") != "do":
            raise unexpected(peek())
        pos += 1
        body = statements("done")
        if not body:
            raise unexpected("done")
        pos += 1
        return ForLoop(name, tuple(items), tuple(body))

    def pipeline() -> Pipeline:
        nonlocal pos
        stages: list[list[Word]] = [[]]
        while pos < len(tokens):
            tok = tokens[pos]
            if tok == ";":
                break
            if isinstance(tok, tuple):
                stages[-1].append(tok)
            elif not stages[-1]:
                raise unexpected(tok)
            else:
                stages.append([])
            pos += 1
        if not stages[-1]:
            raise unexpected(None)
        return Pipeline(tuple(tuple(s) for s in stages))

    return statements(None)


def _simple_commands(stmts: list[Statement] | tuple[Statement, ...]) -> list[list[str | None]]:
    """Every simple command of a parse, as its words' static texts (None: an expansion)."""
    out: list[list[str | None]] = []
    for stmt in stmts:
        if isinstance(stmt, ForLoop):
            out.extend(_simple_commands(stmt.body))
        else:
            for stage in stmt.stages:
                out.append([static(w) for w in stage])
                for word in stage:
                    for part in word:
                        if part.kind == "sub":
                            with contextlib.suppress(ShellError):
                                out.extend(_simple_commands(parse(part.text)))
    return out


# --------------------------------------------------------------------------- sed


def bre_to_python(bre: str) -> str:
    """A POSIX basic regular expression (GNU flavour: ``\\(`` groups, ``\\|`` alternation) as a
    Python one."""
    out: list[str] = []
    i = 0
    while i < len(bre):
        c = bre[i]
        if c == "\\" and i + 1 < len(bre):
            nxt = bre[i + 1]
            out.append(nxt if nxt in "(){}|+?" else "\\" + nxt)
            i += 2
        elif c == "[":
            end = bre.find("]", i + 2 if bre[i + 1 : i + 2] in ("]", "^") else i + 1)
            if end < 0:
                raise ValueError("unterminated [")
            body = bre[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + body + "]")
            i = end + 1
        elif c in "(){}|+?":
            out.append("\\" + c)
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


class SedSubstitute:
    """sed's ``s<d>RE<d>REPL<d>FLAGS`` (flags ``g`` and ``p``): ``self(line)`` is the line after
    the substitution and whether one was made."""

    def __init__(self, script: str) -> None:
        if len(script) < 2 or script[0] != "s" or script[1] in "\\\n":
            raise ValueError(f"unknown command: `{script[:1]}'")
        delim = script[1]
        fields: list[str] = []
        buf: list[str] = []
        i = 2
        while i < len(script) and len(fields) < 2:
            c = script[i]
            if c == "\\" and i + 1 < len(script):
                buf.append(script[i + 1] if script[i + 1] == delim else script[i : i + 2])
                i += 2
                continue
            if c == delim:
                fields.append("".join(buf))
                buf.clear()
            else:
                buf.append(c)
            i += 1
        if len(fields) < 2:
            raise ValueError("unterminated `s' command")
        flags = script[i:]
        if set(flags) - set("gp"):
            raise ValueError("unknown option to `s'")
        self.regex = re.compile(bre_to_python(fields[0]))
        self.replacement = fields[1]
        self.count = 0 if "g" in flags else 1
        self.prints = "p" in flags

    def _expand(self, m: re.Match[str]) -> str:
        repl, out, k = self.replacement, [], 0
        while k < len(repl):
            c = repl[k]
            if c == "\\" and k + 1 < len(repl):
                nxt = repl[k + 1]
                if nxt.isdigit():
                    out.append(m.group(int(nxt)) or "")
                else:
                    out.append("\n" if nxt == "n" else nxt)
                k += 2
            else:
                out.append(m.group(0) if c == "&" else c)
                k += 1
        return "".join(out)

    def __call__(self, line: str) -> tuple[str, bool]:
        new, n = self.regex.subn(self._expand, line, count=self.count)
        return new, n > 0


# --------------------------------------------------------------------------- click 7.0


@dataclass(frozen=True)
class Leaf:
    usage: str
    summary: str
    options: tuple[tuple[str, str, str], ...] = ()  # (short, long, help); flags only
    args: tuple[str, ...] = ()
    optional: int = 0  # how many of the trailing args may be left out

    def flag(self, word: str) -> str | None:
        for short, long, _ in self.options:
            if word in (short, long):
                return long.lstrip("-")
        return None


@dataclass(frozen=True)
class Group:
    summary: str
    commands: dict[str, Group | Leaf]


GROUP_USAGE = "[OPTIONS] COMMAND [ARGS]..."
_MULTIPLE = ("-m", "--multiple", "Add Multiple Vlan(s) in Range or in Comma separated list")
_EXCEPT = ("-e", "--except_flag", "Skips the given vlans and adds all other existing vlans")

CONFIG = Group(
    "SONiC command line - 'config' command",
    {
        "interface": Group(
            "Interface-related configuration tasks",
            {
                "mtu": Leaf(
                    "[OPTIONS] <interface_name> <interface_mtu>",
                    "Set interface mtu",
                    (("-v", "--verbose", "Enable verbose output"),),
                    ("<interface_name>", "<interface_mtu>"),
                ),
                "shutdown": Leaf(
                    "[OPTIONS] <interface_name>", "Shut down interface", (), ("<interface_name>",)
                ),
                "startup": Leaf(
                    "[OPTIONS] <interface_name>", "Start up interface", (), ("<interface_name>",)
                ),
            },
        ),
        "save": Leaf(
            "[OPTIONS] [FILENAME]",
            "Export current config DB to a file on disk.",
            (("-y", "--yes", ""),),
            ("[FILENAME]",),
            optional=1,
        ),
        "switchport": Group(
            "Switchport mode configuration tasks",
            {
                "mode": Leaf(
                    "[OPTIONS] <mode_type> port",
                    "switchport mode help commands.Mode_type can be access or trunk or routed",
                    (),
                    ("<mode_type>", "port"),
                )
            },
        ),
        "vlan": Group(
            "VLAN-related configuration tasks",
            {
                "add": Leaf("[OPTIONS] <vid>", "Add VLAN", (_MULTIPLE,), ("<vid>",)),
                "del": Leaf("[OPTIONS] <vid>", "Delete VLAN", (_MULTIPLE,), ("<vid>",)),
                "member": Group(
                    "",
                    {
                        "add": Leaf(
                            "[OPTIONS] <vid> port",
                            "Add VLAN member",
                            (("-u", "--untagged", "Untagged status"), _MULTIPLE, _EXCEPT),
                            ("<vid>", "port"),
                        ),
                        "del": Leaf(
                            "[OPTIONS] <vid> <port>",
                            "Delete VLAN member",
                            (_MULTIPLE, _EXCEPT),
                            ("<vid>", "<port>"),
                        ),
                    },
                ),
            },
        ),
    },
)

SHOW = Group(
    "SONiC command line - 'show' command",
    {
        "interfaces": Group(
            "Show details of the network interfaces",
            {
                "description": Leaf(
                    "[OPTIONS] [INTERFACENAME]",
                    "Show interface status, protocol and description",
                    (),
                    ("[INTERFACENAME]",),
                    optional=1,
                ),
                "status": Leaf(
                    "[OPTIONS] [INTERFACENAME]",
                    "Show Interface status information",
                    (),
                    ("[INTERFACENAME]",),
                    optional=1,
                ),
            },
        ),
        "runningconfiguration": Group(
            "Show current running configuration information",
            {
                "all": Leaf("[OPTIONS]", "Show full running configuration"),
                "ports": Leaf(
                    "[OPTIONS] [PORTNAME]",
                    "Show ports running configuration",
                    (),
                    ("[PORTNAME]",),
                    optional=1,
                ),
            },
        ),
        "lldp": Group(
            "Show LLDP information",
            {
                "neighbors": Leaf(
                    "[OPTIONS] [INTERFACENAME]",
                    "Show LLDP neighbors",
                    (),
                    ("[INTERFACENAME]",),
                    optional=1,
                ),
                "table": Leaf("[OPTIONS]", "Show LLDP neighbors in tabular format"),
            },
        ),
        "vlan": Group(
            "Show VLAN information",
            {"brief": Leaf("[OPTIONS]", "Show all bridge information")},
        ),
    },
)


class ClickFail(Exception):
    """click's UsageError: ``Usage:`` / ``Try ... for help.`` / ``Error: ...`` on stderr."""

    def __init__(self, path: str, usage: str, message: str) -> None:
        super().__init__(message)
        self.text = f'Usage: {path} {usage}\nTry "{path} -h" for help.\n\nError: {message}\n'


class ClickHelp(Exception):
    def __init__(self, path: str, node: Group | Leaf) -> None:
        super().__init__(path)
        if isinstance(node, Group):
            width = max(len(n) for n in node.commands) + 2
            text = f"Usage: {path} {GROUP_USAGE}\n\n"
            text += f"  {node.summary}\n\n" if node.summary else ""
            text += "Options:\n  -h, -?, --help  Show this message and exit.\n\nCommands:\n"
            text += "".join(
                f"  {n.ljust(width)}{c.summary}".rstrip() + "\n"
                for n, c in sorted(node.commands.items())
            )
        else:
            opts = [(f"{s}, {long}", h) for s, long, h in node.options]
            opts.append(("-h, -?, --help", "Show this message and exit."))
            width = max(len(o) for o, _ in opts) + 2
            text = f"Usage: {path} {node.usage}\n\n  {node.summary}\n\nOptions:\n"
            text += "".join(f"  {o.ljust(width)}{h}".rstrip() + "\n" for o, h in opts)
        self.text = text


def resolve(
    group: Group, prog: str, argv: list[str], first: Callable[[str], None] | None = None
) -> tuple[str, Leaf, list[str]]:
    """Walk ``argv`` down ``group`` (AbbreviationGroup: unambiguous prefixes accepted) to a leaf
    command; ``first(name)`` runs once the first-level command is known (click runs the group's
    callback then: ``config`` checks for root there)."""
    path: str = prog
    node: Group | Leaf = group
    level = 0
    while isinstance(node, Group):
        if not argv or argv[0] in ("-h", "-?", "--help"):
            raise ClickHelp(path, node)
        word = argv[0]
        if word.startswith("-"):
            raise ClickFail(path, GROUP_USAGE, f"no such option: {word}")
        names = sorted(node.commands)
        if word in node.commands:
            name = word
        else:
            matches = [x for x in names if x.lower().startswith(word.lower())]
            if not matches:
                raise ClickFail(path, GROUP_USAGE, f'No such command "{word}".')
            shortest = min(matches, key=len)
            if len(matches) > 1 and not all(x.startswith(shortest) for x in matches):
                raise ClickFail(path, GROUP_USAGE, f"Too many matches: {', '.join(matches)}")
            name = shortest
        if level == 0 and first is not None:
            first(name)
        path, node, argv, level = f"{path} {name}", node.commands[name], argv[1:], level + 1
    return path, node, argv


def leaf_args(path: str, leaf: Leaf, argv: list[str]) -> tuple[set[str], list[str]]:
    """A leaf command's flags and positional arguments, checked as click checks them."""
    if any(w in ("-h", "-?", "--help") for w in argv):
        raise ClickHelp(path, leaf)
    flags: set[str] = set()
    args: list[str] = []
    only_args = False
    for word in argv:
        if not only_args and word == "--":
            only_args = True
        elif not only_args and word.startswith("-") and len(word) > 1:
            name = leaf.flag(word)
            if name is None:
                raise ClickFail(path, leaf.usage, f"no such option: {word}")
            flags.add(name)
        else:
            args.append(word)
    required = len(leaf.args) - leaf.optional
    if len(args) < required:
        raise ClickFail(path, leaf.usage, f'Missing argument "{leaf.args[len(args)]}".')
    if len(args) > len(leaf.args):
        extra = args[len(leaf.args) :]
        s = "s" if len(extra) > 1 else ""
        raise ClickFail(path, leaf.usage, f"Got unexpected extra argument{s} ({' '.join(extra)})")
    return flags, args


class CommandExit(Exception):
    """A command ended with this exit status (sys.exit with a message printed)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


# --------------------------------------------------------------------------- the CLI


class SonicCli(DialectCli):
    name = "sonic"
    hostname = "lab-sonic"
    default_username = "admin"
    default_password = "YourPaSsWoRd"

    def __init__(self, switch: LabSwitch, term: Terminal, username: str) -> None:
        super().__init__(switch, term, username)
        self.root = False  # in a root shell (sudo -s)
        self.sudo_cached = False  # sudo's timestamp: the password was given in this session
        self.status = 0  # $?
        self.started = time.monotonic()  # lldpd's neighbour ages count from here

    @property
    def db(self) -> Db:
        running: Db = self.switch.running
        return running

    @staticmethod
    def port_names(count: int) -> list[str]:
        return [f"Ethernet{i}" for i in range(count)]

    @classmethod
    def initial_config(cls, ports: list[str]) -> Db:
        return {
            "DEVICE_METADATA": {
                "localhost": {
                    "hostname": cls.hostname,
                    "hwsku": "provisiond-lab-25G",
                    "mac": "52:54:00:5c:a1:01",
                    "platform": "x86_64-kvm_x86_64-r0",
                    "type": "ToRRouter",
                }
            },
            "PORT": {
                p: {
                    "admin_status": "up",
                    "alias": f"Eth1/{i + 1}",
                    "index": str(i + 1),
                    "lanes": str(i + 1),
                    "mtu": "9100",
                    "speed": "25000",
                }
                for i, p in enumerate(ports)
            },
            "VLAN": {},
            "VLAN_MEMBER": {},
        }

    def banner(self) -> str:
        return (
            f"Linux {self._hostname()} 6.1.0-22-2-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.94-1 "
            "(2024-06-21) x86_64\n"
            "You are on\n"
            "  ____   ___  _   _ _  ____\n"
            " / ___| / _ \\| \\ | (_)/ ___|\n"
            " \\___ \\| | | |  \\| | | |\n"
            "  ___) | |_| | |\\  | | |___\n"
            " |____/ \\___/|_| \\_|_|\\____|\n"
            "\n"
            "-- Software for Open Networking in the Cloud --\n"
            "\n"
            "Unauthorized access and/or use are prohibited.\n"
            "All access and/or use are subject to monitoring.\n"
            "\n"
            "Help:    https://sonic-net.github.io/SONiC/\n"
            "\n"
        )

    def _hostname(self) -> str:
        meta = self.db.get("DEVICE_METADATA", {}).get("localhost", {})
        return meta.get("hostname", self.hostname)

    def prompt(self) -> str:
        if self.root:
            return f"root@{self._hostname()}:/home/{self.username}# "
        return f"{self.username}@{self._hostname()}:~$ "

    def is_config_command(self, line: str) -> bool:
        try:
            commands = _simple_commands(parse(line))
        except ShellError:
            return False
        for words in commands:
            while words and words[0] == "sudo":
                words = words[1:]
            if not words:
                continue
            if words[0] == "config" and len(words) > 1:
                return True
            if words[0] == "sonic-db-cli" and any(
                (w or "").upper() in ("HSET", "HDEL", "DEL", "HMSET", "SET") for w in words[1:4]
            ):
                return True
        return False

    # -------------------------------------------------------------- the shell

    async def execute(self, line: str) -> None:
        if not line.strip():
            return
        try:
            stmts = parse(line)
        except ShellError as exc:
            self.term.writeln(str(exc))
            self.status = 2
            return
        try:
            self.status = await self._run(stmts, {}, self.term.write)
        except ShellError as exc:
            self.term.writeln(str(exc))
            self.status = 1

    async def _run(
        self, stmts: list[Statement] | tuple[Statement, ...], env: dict[str, str], out: Out
    ) -> int:
        status = 0
        for stmt in stmts:
            if isinstance(stmt, ForLoop):
                values: list[str] = []
                for word in stmt.items:
                    values.extend(await self._expand(word, env))
                status = 0
                for value in values:
                    status = await self._run(stmt.body, {**env, stmt.var: value}, out)
            else:
                status = await self._pipeline(stmt, env, out)
            self.status = status
        return status

    async def _pipeline(self, pipe: Pipeline, env: dict[str, str], out: Out) -> int:
        data: str | None = None
        status = 0
        for k, stage in enumerate(pipe.stages):
            argv: list[str] = []
            for word in stage:
                argv.extend(await self._expand(word, env))
            last = k == len(pipe.stages) - 1
            buf: list[str] = []
            status = await self._command(argv, data, out if last else buf.append, root=self.root)
            data = "".join(buf)
        return status

    async def _expand(self, word: Word, env: dict[str, str]) -> list[str]:
        """One word's fields: expansions substituted, unquoted ones split on whitespace."""
        fields: list[str] = []
        cur, have = "", False
        for part in word:
            if part.kind == "lit":
                cur, have = cur + part.text, True
                continue
            if part.kind == "var":
                value = str(self.status) if part.text == "?" else env.get(part.text, "")
                if part.text in ("USER", "HOME") and part.text not in env:
                    value = self.username if part.text == "USER" else f"/home/{self.username}"
            else:
                buf: list[str] = []
                await self._run(parse(part.text), env, buf.append)
                value = "".join(buf).rstrip("\n")
            if part.quoted:
                cur, have = cur + value, True
                continue
            pieces = value.split()
            if not pieces:
                continue
            if value[0].isspace() and have:
                fields.append(cur)
                cur = ""
            cur += pieces[0]
            for piece in pieces[1:]:
                fields.append(cur)
                cur = piece
            have = True
            if value[-1].isspace():
                fields.append(cur)
                cur, have = "", False
        if have:
            fields.append(cur)
        return fields

    async def _command(self, argv: list[str], stdin: str | None, out: Out, *, root: bool) -> int:
        """Run one command; its stdout goes to ``out``, its stderr to the terminal."""
        if not argv:
            return 0
        cmd, args = argv[0], argv[1:]
        err = self.term.write
        try:
            if cmd == "sudo":
                return await self._sudo(args, stdin, out, root=root)
            if cmd == "config":
                return await self._config(args, out, root=root)
            if cmd == "show":
                return self._show(args, out)
            if cmd == "sonic-db-cli":
                return self._db_cli(args, out)
            if cmd == "sed":
                return self._sed(args, stdin, out)
            if cmd == "cat":
                return self._cat(args, stdin, out)
            if cmd in ("lldpctl", "lldpcli"):  # the host's wrappers: docker exec -i[t] lldp ...
                flags = "-it" if out == self.term.write else "-i"  # -t: stdout is a terminal
                return self._docker(["exec", flags, "lldp", cmd, *args], out, root=root)
            if cmd == "docker":
                return self._docker(args, out, root=root)
            if cmd in ("exit", "logout"):
                if self.root:
                    self.root = False
                    err("exit\n")
                    return 0
                err("logout\n")
                raise EndSession
            if cmd == "echo":
                newline = args[:1] != ["-n"]
                out(" ".join(args[0 if newline else 1 :]) + ("\n" if newline else ""))
            elif cmd == "whoami":
                out(("root" if root else self.username) + "\n")
            elif cmd == "hostname":
                out(self._hostname() + "\n")
            elif cmd == "pwd":
                out(f"/home/{self.username}\n")
            elif cmd == "false":
                return 1
            elif cmd != "true":
                err(f"-bash: {cmd}: command not found\n")
                return 127
            return 0
        except ClickFail as exc:
            err(exc.text)
            return 2
        except ClickHelp as exc:
            out(exc.text)
            return 0
        except CommandExit as exc:
            return exc.status

    async def _sudo(self, args: list[str], stdin: str | None, out: Out, *, root: bool) -> int:
        err = self.term.write
        interactive = True
        while args[:1] == ["-n"]:
            interactive, args = False, args[1:]
        shell = args in (["-s"], ["-i"], ["su"], ["su", "-"], ["-su"], ["su", "root"])
        if not args:
            err("usage: sudo -h | -K | -k | -V\n")
            err("usage: sudo -v [-ABkNnS] [-g group] [-h host] [-p prompt] [-u user]\n")
            return 1
        if not shell and args[0].startswith("-"):
            err(f"sudo: the provisiond lab does not emulate sudo option {args[0]}\n")
            return 1
        if not shell and args[0] not in COMMANDS:
            err(f"sudo: {args[0]}: command not found\n")
            return 1
        needs_password = not (root or self.sudo_cached or (not shell and args[0] in NO_PASSWORD))
        if needs_password and not interactive:
            err("sudo: a password is required\n")
            return 1
        if needs_password and not await self._password():
            return 1
        if shell:
            self.root = True
            return 0
        return await self._command(args, stdin, out, root=True)

    async def _password(self) -> bool:
        for _ in range(3):
            self.term.write(f"[sudo] password for {self.username}: ")
            answer = await self.term.readline(echo=False)
            if answer is None:
                raise EndSession
            if hmac.compare_digest(answer.encode(), self.switch.password.encode()):
                self.sudo_cached = True
                return True
            self.term.write("Sorry, try again.\n")
        self.term.write("sudo: 3 incorrect password attempts\n")
        return False

    # -------------------------------------------------------------- config

    async def _config(self, args: list[str], out: Out, *, root: bool) -> int:
        def need_root(_: str) -> None:
            if not root:
                self.term.write("Root privileges are required for this operation\n")
                raise CommandExit(1)

        path, leaf, rest = resolve(CONFIG, "config", args, need_root)
        flags, params = leaf_args(path, leaf, rest)
        if path == "config save":
            return await self._save(path, leaf, flags, params, out)
        if path.startswith("config vlan member"):
            self._vlan_member(path, leaf, flags, params)
        elif path.startswith("config vlan"):
            self._vlan(path, leaf, flags, params)
        elif path == "config interface mtu":
            return self._mtu(path, leaf, params)
        elif path == "config switchport mode":
            self._switchport(path, leaf, params, out)
        else:
            self._admin(path, leaf, params[0], "down" if path.endswith("shutdown") else "up")
        return 0

    def _vids(self, path: str, leaf: Leaf, text: str, multiple: bool) -> list[int]:
        def fail(message: str) -> ClickFail:
            return ClickFail(path, leaf.usage, message)

        if not multiple:
            if not text.isdigit():
                raise fail(f"{text} is not integer")
            return [int(text)]
        vids: list[int] = []
        for item in text.replace(" ", "").split(","):
            if "-" in item:
                lo_s, _, hi_s = item.partition("-")
                if not (lo_s.isdigit() and hi_s.isdigit()):
                    raise fail(f"{item} is not integer")
                lo, hi = int(lo_s), int(hi_s)
                if 1 in (lo, hi):
                    raise fail("Vlan1 is default vlan")
                if lo >= hi:
                    raise fail(f"{lo} is greater than {hi}. List cannot be generated")
                if not (1 <= lo <= 4094 and 1 <= hi <= 4094):
                    raise fail("Invalid VLAN ID must be in (2-4094)")
                vids.extend(range(lo, hi + 1))
            elif item.isdigit():
                if int(item) not in vids:
                    vids.append(int(item))
            else:
                raise fail(f"{item} is not integer")
        return sorted(vids)

    def _vlan(self, path: str, leaf: Leaf, flags: set[str], params: list[str]) -> None:
        vlans = self.db.setdefault("VLAN", {})
        for vid in self._vids(path, leaf, params[0], "multiple" in flags):
            name = f"Vlan{vid}"
            if path.endswith("add"):
                if not 1 <= vid <= 4094:
                    raise ClickFail(path, leaf.usage, f"Invalid VLAN ID {vid} (2-4094)")
                if vid == 1:
                    raise ClickFail(path, leaf.usage, f"{name} is default VLAN")
                if name in vlans:
                    raise ClickFail(path, leaf.usage, f"{name} already exists.")
                vlans[name] = {"vlanid": str(vid)}
            else:
                if not 1 <= vid <= 4094:
                    raise ClickFail(path, leaf.usage, f"Invalid VLAN ID {vid} (2-4094)")
                if name not in vlans:
                    raise ClickFail(path, leaf.usage, f"{name} does not exist")
                if any(vlan == name for vlan, _, _ in _members(self.db)):
                    raise ClickFail(
                        path,
                        leaf.usage,
                        f"VLAN ID {vid} can not be removed. First remove all members assigned "
                        "to this VLAN.",
                    )
                del vlans[name]

    def _vlan_member(self, path: str, leaf: Leaf, flags: set[str], params: list[str]) -> None:
        vid_text, port = params
        vlans, members = self.db.setdefault("VLAN", {}), self.db.setdefault("VLAN_MEMBER", {})
        add = path.endswith("add")
        untagged = "untagged" in flags

        def fail(message: str) -> ClickFail:
            return ClickFail(path, leaf.usage, message)

        mine = sorted(int(vlan[4:]) for vlan, p, _ in _members(self.db) if p == port)
        existing_vids = sorted(int(v[4:]) for v in vlans if re.fullmatch(r"Vlan[0-9]+", v))
        if vid_text == "all":
            vids = existing_vids if add else mine
        else:
            vids = self._vids(path, leaf, vid_text, "multiple" in flags)
            if "except_flag" in flags:
                base = existing_vids if add else mine
                vids = [v for v in base if v not in vids]
        if add and untagged and ({"multiple", "except_flag"} & flags or vid_text == "all"):
            raise fail(f"{port} cannot have more than one untagged Vlan.")
        for vid in vids:
            name = f"Vlan{vid}"
            key = f"{name}|{port}"
            if add and vid == 1:
                raise fail(f"{name} is default VLAN")
            if not 1 <= vid <= 4094:
                raise fail(f"Invalid VLAN ID {vid} (2-4094)")
            if name not in vlans:
                raise fail(f"{name} does not exist")
            if not add:
                if key not in members:
                    raise fail(f"{port} is not a member of {name}")
                del members[key]
                continue
            if key in members:
                raise fail(f"{port} is already a member of {name}")
            if port not in self.db.get("PORT", {}):
                raise fail(f"{port} does not exist")
            if untagged and any(
                p == port and fields.get("tagging_mode") == "untagged"
                for _, p, fields in _members(self.db)
            ):
                raise fail(f"{port} is already untagged member!")
            existing = self.db["PORT"][port].get("mode")
            if existing == "routed":
                raise fail(
                    f"{port} is in routed mode!\nUse switchport mode command to change port mode"
                )
            if existing == "access" and not untagged:
                raise fail(f"{port} is in access mode! Tagged Members cannot be added")
            members[key] = {"tagging_mode": "untagged" if untagged else "tagged"}

    def _switchport(self, path: str, leaf: Leaf, params: list[str], out: Out) -> None:
        mode, port = params
        if mode not in ("access", "trunk", "routed"):
            raise ClickFail(
                path,
                leaf.usage,
                f'Invalid value for "<mode_type>": invalid choice: {mode}. '
                "(choose from access, trunk, routed)",
            )
        entry = self.db.get("PORT", {}).get(port)
        if entry is None:
            raise ClickFail(path, leaf.usage, f"{port} does not exist")
        tagging = [fields.get("tagging_mode") for _, p, fields in _members(self.db) if p == port]
        existing = entry.get("mode")
        if mode == "routed":
            if "tagged" in tagging:
                raise ClickFail(
                    path,
                    leaf.usage,
                    f"{port} has tagged member(s). \nRemove them to change mode to {mode}",
                )
            if "untagged" in tagging:
                raise ClickFail(
                    path,
                    leaf.usage,
                    f"{port} has untagged member. \nRemove it to change mode to {mode}",
                )
        if existing == mode:
            raise ClickFail(path, leaf.usage, f"{port} is already in {mode} mode")
        if existing == "trunk" and mode == "access" and "tagged" in tagging:
            raise ClickFail(
                path,
                leaf.usage,
                f"{port} is in {existing} mode and have tagged member(s).\nRemove tagged "
                f"member(s) from {port} to switch to {mode} mode",
            )
        entry["mode"] = mode
        out(f"{port} switched to {mode} mode\n")

    def _mtu(self, path: str, leaf: Leaf, params: list[str]) -> int:
        port, value = params
        try:
            mtu = int(value)
        except ValueError:
            raise ClickFail(
                path,
                leaf.usage,
                f'Invalid value for "<interface_mtu>": {value} is not a valid integer',
            ) from None
        if not _MTU[0] <= mtu <= _MTU[1]:
            raise ClickFail(
                path,
                leaf.usage,
                f'Invalid value for "<interface_mtu>": {mtu} is not in the valid range of '
                f"{_MTU[0]} to {_MTU[1]}.",
            )
        ports = self.db.get("PORT", {})
        if port not in ports:  # portconfig's own check, printed on stderr; exit status 1
            self.term.write(f"Invalid port {port}\n")
            return 1
        ports[port]["mtu"] = str(mtu)
        return 0

    def _admin(self, path: str, leaf: Leaf, name: str, state: str) -> None:
        ports = self.db.get("PORT", {})
        names = _interface_filter(name)
        if len(names) == 1 and name not in ports:
            raise ClickFail(
                path, leaf.usage, "Interface name is invalid. Please enter a valid interface name!!"
            )
        for port in names:
            if port in ports:
                ports[port]["admin_status"] = state

    async def _save(
        self, path: str, leaf: Leaf, flags: set[str], params: list[str], out: Out
    ) -> int:
        if "yes" not in flags:
            self.term.write("Existing files will be overwritten, continue? [y/N]: ")
            answer = await self.term.readline(echo=True)
            if answer is None:
                raise EndSession
            if answer.strip().lower() not in ("y", "yes"):
                self.term.write("Aborted!\n")
                return 1
        target = params[0] if params else CONFIG_FILE
        if target != CONFIG_FILE:
            self.term.write(f"Error: the provisiond lab saves only to {CONFIG_FILE}\n")
            return 1
        if self.switch.faults.current().config_locked:
            out(f"Failed to acquire lock on {RELOAD_LOCK}\n")
            return 1
        out(f"Running command: {CFGGEN} -d --print-data > {CONFIG_FILE}\n")
        self.switch.saved = copy.deepcopy(self.db)
        return 0

    # -------------------------------------------------------------- show

    def _show(self, args: list[str], out: Out) -> int:
        path, leaf, rest = resolve(SHOW, "show", args)
        _, params = leaf_args(path, leaf, rest)
        if path == "show vlan brief":
            out(self._vlan_brief() + "\n")
        elif path == "show lldp table":  # sudo lldpshow: lldpctl -f xml, every interface
            heard = lldpd.heard(self.switch.lldp_neighbors(), self.switch.port_names)
            out(lldpd.lldpshow_table(heard) + "\n")
        elif path == "show lldp neighbors":  # sudo lldpshow -d [-p IF]: lldpctl's text
            res = self._lldpctl("lldpctl", params, tty=False)
            if not params or params[0] in res.stdout:
                out(res.stdout + "\n")
            out("\n")
        elif path == "show runningconfiguration all":
            out(_config_json(self.db) + "\n")
        elif path == "show runningconfiguration ports":  # sonic-cfggen -d --var-json PORT
            table = json.loads(_config_json({"PORT": self.db.get("PORT", {})}) or "{}")
            ports = table.get("PORT", {})
            out(json.dumps(ports.get(params[0], {}) if params else ports, indent=4) + "\n")
        else:
            wanted = set(_interface_filter(params[0])) if params else None
            out(self._interfaces(path.rsplit(" ", 1)[1], wanted) + "\n")
        return 0

    def _lldpctl(self, prog: str, args: list[str], *, tty: bool) -> lldpd.Result:
        """lldpd's client inside the lldp container (as root there)."""
        return lldpd.run(
            prog,
            args,
            self.switch.lldp_neighbors(),
            self.switch.port_names,
            privileged=True,
            seconds=time.monotonic() - self.started,
            tty=tty,
        )

    def _docker(self, args: list[str], out: Out, *, root: bool) -> int:
        """``docker exec [-i] [-t] lldp lldpctl|lldpcli ...``: docker's socket is for root and
        the docker group (which the lab's login is not in)."""
        err = self.term.write
        if args[:1] != ["exec"]:
            err(f"docker: the provisiond lab emulates only docker exec, not {' '.join(args[:1])}\n")
            return 1
        rest, tty = args[1:], False
        while rest and rest[0] in ("-i", "-t", "-it", "-ti", "--interactive", "--tty"):
            tty = tty or "t" in rest[0].lstrip("-").replace("interactive", "")
            rest = rest[1:]
        if len(rest) < 2:
            err('"docker exec" requires at least 2 arguments.\n')
            return 1
        if not root:
            err(
                f"permission denied while trying to connect to the Docker daemon socket at "
                f'{DOCKER_SOCKET}: Post "http://%2Fvar%2Frun%2Fdocker.sock/v1.43/containers/'
                f'{rest[0]}/exec": dial unix /var/run/docker.sock: connect: permission denied\n'
            )
            return 1
        if rest[0] != "lldp":
            err(f"Error response from daemon: No such container: {rest[0]}\n")
            return 1
        if rest[1] not in ("lldpctl", "lldpcli"):
            err(
                "OCI runtime exec failed: exec failed: unable to start container process: exec: "
                f'"{rest[1]}": executable file not found in $PATH: unknown\n'
            )
            return 126
        res = self._lldpctl(rest[1], rest[2:], tty=tty and out == self.term.write)
        err(res.stderr)
        out(res.stdout)
        return res.status

    def _vlan_brief(self) -> str:
        rows: list[list[str]] = []
        for vlan in sorted(self.db.get("VLAN", {}), key=_natkey):
            mine = sorted(
                ((p, fields) for v, p, fields in _members(self.db) if v == vlan),
                key=lambda item: _natkey(item[0]),
            )
            rows.append(
                [
                    vlan[len("Vlan") :],
                    "",
                    "\n".join(port for port, _ in mine),
                    "\n".join(fields.get("tagging_mode", "") for _, fields in mine),
                    "disabled",
                    "",
                ]
            )
        header = ["VLAN ID", "IP Address", "Ports", "Port Tagging", "Proxy ARP"]
        return _grid_table([*header, "DHCP Helper Address"], rows)

    def _interfaces(self, what: str, wanted: set[str] | None) -> str:
        ports = self.db.get("PORT", {})
        in_vlan = {port for _, port, _ in _members(self.db)}
        rows: list[list[str]] = []
        # what APPL_DB has: the platform's ports (a CONFIG_DB entry for another name is not one)
        for name in sorted(set(ports) & set(self.switch.port_names), key=_natkey):
            if wanted is not None and name not in wanted:
                continue
            p = ports[name]
            admin = p.get("admin_status", "down")
            alias = p.get("alias", "N/A")
            if what == "status":
                # 202411 prints "trunk" for any VLAN member (the switchport mode: from 202505)
                mode = "trunk" if name in in_vlan else "routed"
                speed = p.get("speed", "")
                rows.append(
                    [
                        name,
                        p.get("lanes", "N/A"),
                        f"{int(speed) // 1000}G" if speed.isdigit() else "N/A",
                        p.get("mtu", "N/A"),
                        p.get("fec", "N/A"),
                        alias,
                        mode,
                        admin,  # the lab's links are up wherever the port is
                        admin,
                        "SFP/SFP+/SFP28",
                        "off",
                    ]
                )
            else:
                rows.append([name, admin, admin, alias, p.get("description", "N/A")])
        if what == "status":
            header = ["Interface", "Lanes", "Speed", "MTU", "FEC", "Alias", "Vlan", "Oper"]
            return _simple_table([*header, "Admin", "Type", "Asym PFC"], rows)
        return _simple_table(["Interface", "Oper", "Admin", "Alias", "Description"], rows)

    # -------------------------------------------------------------- sonic-db-cli, sed, cat

    def _db_cli(self, args: list[str], out: Out) -> int:
        err = self.term.write
        while args and args[0] in ("-s", "--unixsocket"):
            args = args[1:]
        if not args or args[0] in ("-h", "--help"):
            out("usage: sonic-db-cli [-h] [-s] [-j] [-n NAMESPACE] db_or_op [cmd [cmd ...]]\n")
            return 0 if args else 1
        db_name, cmd = args[0], args[1:]
        if db_name not in ("CONFIG_DB", "APPL_DB", "STATE_DB", "COUNTERS_DB", "ASIC_DB"):
            err(f"Invalid database name input : '{db_name}'\n")
            err(f"{db_name} is not a valid database name\n")
            return 1
        if not cmd:
            err(f"Command is required for database {db_name}\n")
            return 1
        # the lab keeps CONFIG_DB only; the others read as empty
        data: Db = self.db if db_name == "CONFIG_DB" else {}
        op, rest = cmd[0].upper(), cmd[1:]
        if op not in _DB_ARITY:
            err(f"ERR unknown command '{cmd[0]}', with args beginning with: \n")
            return 1
        lo, hi = _DB_ARITY[op]
        if not lo <= len(rest) <= hi or (op == "HSET" and len(rest) % 2 == 0):
            err(f"ERR wrong number of arguments for '{op.lower()}' command\n")
            return 1
        if op == "KEYS":
            regex = re.compile(_redis_glob(rest[0]), re.S)
            keys = [k for k in _redis_keys(data) if regex.fullmatch(k)]
            out("\n".join(sorted(keys, key=_natkey)) + "\n")
            return 0
        if op in ("EXISTS", "DEL"):
            count = 0
            for key in rest:
                table, entry = _split_key(key)
                if entry in data.get(table, {}):
                    count += 1
                    if op == "DEL":
                        del data[table][entry]
            out(f"{count}\n")
            return 0
        table, entry = _split_key(rest[0])
        fields = data.get(table, {}).get(entry)
        if op == "HGETALL":
            items = ", ".join(f"{_quot(k)}: {_quot(v)}" for k, v in (fields or {}).items())
            out("{" + items + "}\n")
        elif op == "HGET":
            out((fields or {}).get(rest[1], "") + "\n")
        elif op == "HSET":
            if db_name != "CONFIG_DB" or not entry:
                err("ERR the provisiond lab keeps CONFIG_DB's TABLE|key hashes only\n")
                return 1
            if fields is None:
                fields = self.db.setdefault(table, {}).setdefault(entry, {})
            new = 0
            for k in range(1, len(rest), 2):
                new += rest[k] not in fields
                fields[rest[k]] = rest[k + 1]
            out(f"{new}\n")
        else:  # HDEL
            removed = 0
            for name in rest[1:]:
                if fields is not None and name in fields:
                    del fields[name]
                    removed += 1
            if fields is not None and not fields:
                del data[table][entry]  # Redis drops a hash with no fields left
            out(f"{removed}\n")
        return 0

    def _sed(self, args: list[str], stdin: str | None, out: Out) -> int:
        err = self.term.write
        quiet = False
        script: str | None = None
        files: list[str] = []
        k = 0
        while k < len(args):
            a = args[k]
            if a in ("-n", "--quiet", "--silent"):
                quiet = True
            elif a == "-e" and k + 1 < len(args):
                script = args[k + 1]
                k += 1
            elif a.startswith("-") and len(a) > 1:
                err(f"sed: invalid option -- '{a[1:]}'\n")
                return 1
            elif script is None:
                script = a
            else:
                files.append(a)
            k += 1
        if script is None:
            err("Usage: sed [OPTION]... {script-only-if-no-other-script} [input-file]...\n")
            return 1
        if files:
            err(f"sed: can't read {files[0]}: No such file or directory\n")
            return 2
        try:
            subst = SedSubstitute(script)
        except (ValueError, re.error, IndexError) as exc:
            err(f"sed: -e expression #1, char {len(script)}: {exc}\n")
            return 1
        for line in (stdin or "").splitlines():
            new, done = subst(line)
            if not quiet:
                out(new + "\n")
            if done and subst.prints:
                out(new + "\n")
        return 0

    def _cat(self, args: list[str], stdin: str | None, out: Out) -> int:
        if not args:
            out(stdin or "")
            return 0
        status = 0
        for name in args:
            if name == CONFIG_FILE:
                out(_config_json(self.switch.saved) + "\n")
            else:
                self.term.write(f"cat: {name}: No such file or directory\n")
                status = 1
        return status


# --------------------------------------------------------------------------- helpers


def _members(db: Db) -> list[tuple[str, str, dict[str, str]]]:
    """VLAN_MEMBER as (``VlanN``, port, fields); keys of another shape (an HSET's) left out."""
    out = []
    for key, fields in db.get("VLAN_MEMBER", {}).items():
        vlan, _, port = key.partition("|")
        if re.fullmatch(r"Vlan[0-9]+", vlan) and port:
            out.append((vlan, port, fields))
    return out


def _interface_filter(text: str) -> list[str]:
    """sonic-utilities' parse_interface_in_filter: ``Ethernet0``, ``Ethernet0,Ethernet4``,
    ``Ethernet0-3``."""
    names: list[str] = []
    for item in text.split(","):
        m = re.fullmatch(r"(\D+)(\d+)-(\d+)", item)
        if m:
            names.extend(f"{m[1]}{n}" for n in range(int(m[2]), int(m[3]) + 1))
        elif item:
            names.append(item)
    return names


def _config_json(db: Db) -> str:
    """CONFIG_DB as ``config save`` writes it: tables and keys in natural order (sort_dict),
    fields sorted, empty tables left out."""
    data = {
        table: {key: dict(sorted(db[table][key].items())) for key in sorted(db[table], key=_natkey)}
        for table in sorted(db, key=_natkey)
        if db[table]
    }
    return json.dumps(data, indent=4)


def _split_key(key: str) -> tuple[str, str]:
    table, _, entry = key.partition("|")
    return table, entry


def _redis_keys(db: Db) -> list[str]:
    return [f"{table}|{entry}" for table, entries in db.items() for entry in entries]


def _redis_glob(pattern: str) -> str:
    """A Redis KEYS pattern (``*``, ``?``, ``[...]``, ``\\`` escapes) as a regex."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                body = "^" + body[1:] if body.startswith("^") else body
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _quot(text: str) -> str:
    """sonic-db-cli's quoting of strings inside a printed dict."""
    return f'"{text}"' if "'" in text else f"'{text}'"
