"""Lab switches: one emulated Ethernet switch per process, an SSH server (asyncssh) on 127.0.0.1.

``provisiond lab switch --dialect D --port P`` serves ONE switch whose CLI is dialect ``D``:
password logins only (the host key is an ed25519 key generated in memory at start, never
written anywhere), an interactive shell with echo, prompts and the vendor's messages, so
netmiko's own drivers (``arista_eos``, ``linux``) drive it as they drive the real thing.

State: VLANs and ports (``--ports`` of them, default 48: ``Ethernet1..48`` on EOS, ``swp1..48``
on Cumulus), each with mode access/trunk, access VLAN (default 1), native VLAN, allowed VLANs,
shutdown, MTU and description; a running configuration and a saved (startup) one, which only the
dialect's save command copies. NVUE also has its pending (staged) revision.

Dialects: a dialect is one ``DialectCli`` subclass holding its prompts, mode transitions,
command handlers and ``show`` renderers, one instance per SSH session (modes are per session,
the configuration is the switch's). Implemented:

* ``arista_eos`` (``EosCli``): ``lab-eos>``, ``enable`` -> ``lab-eos#``, ``configure terminal``
  -> ``(config)#``, ``interface EthernetN`` -> ``(config-if-EtN)#``, ``vlan N`` ->
  ``(config-vlan-N)#``, ``exit``/``end``; the switchport commands
  drivers/switch/dialects/arista_eos.py renders; ``show running-config [interfaces X]``,
  ``show startup-config``, ``show vlan``, ``show version``; ``copy running-config
  startup-config`` / ``write memory``; ``terminal length 0`` / ``terminal width N`` (netmiko's
  session setup). Anything else: ``% Invalid input``.
* ``cumulus_nvue`` (``NvueCli``): a bash-like shell ``cumulus@lab-nvue:mgmt:~$`` (``sudo -s`` asks
  the login password and gives a root shell, which is how netmiko's ``linux`` driver enters
  "config mode"); ``nv set`` / ``nv unset`` for the paths drivers/switch/dialects/cumulus_nvue.py
  renders stage a pending revision; ``nv config apply [--assume-yes]`` makes it the applied one
  (refusing a port with both ``access`` and ``untagged``/``vlan``), ``nv config save`` the
  startup one; ``nv config show [-r applied|pending|startup] [-o json]``, ``nv config detach``,
  ``nv show bridge domain br_default vlan [-o json]``. Unknown ``nv`` commands: ``Error: ...``;
  unknown shell commands: bash's ``command not found``.

Still to write (same shape, one class each): sonic, cisco_nxos, dell_os10, junos, comware.

Faults, from ``--fault SPEC`` flags and a JSON control file (``--control FILE``) re-read whenever
it changes (checked at every login and every command line, and every half second):
``{"*": {"slow": 0.5}, "2222": {"drop_after": 2, "config_locked": true, "auth_fail": false}}``
(``*`` applies to any lab switch reading the file, a port number to the switch on that port):

  drop_after     drop-after:N   the TCP connection is cut when a session's N+1th configuration
                                command arrives (that command is not executed): a batch dropped
                                midway, the first N commands in effect
  slow           slow:S         S seconds of delay before each answer
  config_locked  config-locked  the save (EOS) / apply and save (NVUE) answer a lock error
  auth_fail      auth-fail      every login is refused
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import copy
import hmac
import json
import logging
import os
import re
import shlex
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import asyncssh
import yaml

from drivers.switch.base import VLAN_MAX, VLAN_MIN, format_vlan_ranges, parse_vlan_ranges

log = logging.getLogger("provisiond.lab.switch")

ADDRESS = "127.0.0.1"
MAX_PORTS = 256
CONTROL_POLL_SECONDS = 0.5


class EndSession(Exception):
    """The user logged out."""


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Faults:
    drop_after: int | None = None
    slow: float = 0.0
    config_locked: bool = False
    auth_fail: bool = False

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Faults:
        unknown = set(raw) - {"drop_after", "slow", "config_locked", "auth_fail"}
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        drop = raw.get("drop_after")
        if drop is not None and (isinstance(drop, bool) or not isinstance(drop, int) or drop < 0):
            raise ValueError(f"drop_after must be a count >= 0, got {drop!r}")
        slow = raw.get("slow") or 0.0
        if isinstance(slow, bool) or not isinstance(slow, (int, float)) or slow < 0:
            raise ValueError(f"slow must be seconds >= 0, got {slow!r}")
        return cls(
            drop_after=drop,
            slow=float(slow),
            config_locked=bool(raw.get("config_locked")),
            auth_fail=bool(raw.get("auth_fail")),
        )


def parse_fault_spec(spec: str) -> dict[str, Any]:
    """``drop-after:N`` | ``slow:S`` | ``config-locked`` | ``auth-fail`` -> control-file form."""
    name, _, value = spec.strip().partition(":")
    try:
        if name == "drop-after" and value:
            return {"drop_after": int(value)}
        if name == "slow" and value:
            return {"slow": float(value)}
    except ValueError:
        raise ValueError(f"--fault {spec!r}: {value!r} is not a number") from None
    if name in ("config-locked", "auth-fail") and not value:
        return {name.replace("-", "_"): True}
    raise ValueError(
        f"--fault {spec!r}: expected drop-after:N, slow:SECONDS, config-locked or auth-fail"
    )


class FaultSource:
    """The switch's faults: the flags, overridden by the control file's ``*`` entry, overridden
    by its entry for this port. Invalid file content is logged and the faults stay as they were."""

    def __init__(self, port: int, flags: Mapping[str, Any], control: Path | None) -> None:
        self.port = port
        self.flags = dict(flags)
        self.control = control
        self._seen: tuple[int, int, int] | None = None
        self.faults = Faults.parse(self.flags)

    def current(self) -> Faults:
        if self.control is None:
            return self.faults
        try:
            st = self.control.stat()
            key: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            key = None
        if key == self._seen:
            return self.faults
        self._seen = key
        try:
            data = json.loads(self.control.read_text()) if key is not None else {}
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object of '*' or PORT -> faults")
            merged = dict(self.flags)
            for k in ("*", str(self.port)):
                entry = data.get(k, {})
                if not isinstance(entry, dict):
                    raise ValueError(f"{k!r}: expected an object of faults")
                merged.update(entry)
            self.faults = Faults.parse(merged)
            log.info("lab switch: faults from %s applied: %s", self.control, self.faults)
        except (OSError, ValueError) as exc:
            log.error("lab switch: %s: %s (faults unchanged)", self.control, exc)
        return self.faults


# --------------------------------------------------------------------------- the terminal


class Terminal:
    """One interactive session's input and output: lines read with echo (as a PTY in canonical
    mode would show them), output with CRLF line ends."""

    def __init__(self, process: asyncssh.SSHServerProcess[str]) -> None:
        self.process = process
        self._buf = ""
        self._skip_lf = False

    def write(self, text: str) -> None:
        if text and not self.process.is_closing():
            self.process.stdout.write(text.replace("\r\n", "\n").replace("\n", "\r\n"))

    def writeln(self, text: str = "") -> None:
        self.write(text + "\n")

    async def readline(self, *, echo: bool = True) -> str | None:
        """The next line (without its end), or None at end of input."""
        line: list[str] = []
        while True:
            while self._buf:
                ch, self._buf = self._buf[0], self._buf[1:]
                if self._skip_lf and ch == "\n":
                    self._skip_lf = False
                    continue
                self._skip_lf = ch == "\r"
                if ch in "\r\n":
                    self.write("\n")
                    return "".join(line)
                if ch in "\x7f\x08":
                    if line:
                        line.pop()
                        if echo:
                            self.write("\b \b")
                elif ch == "\x03":  # ^C: drop the line
                    self.write("^C\n")
                    return ""
                elif ch >= " " or ch == "\t":
                    line.append(ch)
                    if echo:
                        self.write(ch)
            try:
                data = await self.process.stdin.read(4096)
            except (asyncssh.TerminalSizeChanged, asyncssh.BreakReceived, asyncssh.SignalReceived):
                continue
            if not data:
                return None
            self._buf += data


# --------------------------------------------------------------------------- the switch


class LabSwitch:
    """One switch: its dialect, ports, configurations (running, saved, NVUE's pending) and
    faults, shared by all its sessions."""

    def __init__(
        self,
        dialect: type[DialectCli],
        *,
        port: int,
        ports: int,
        username: str,
        password: str,
        faults: FaultSource,
    ) -> None:
        if not 1 <= ports <= MAX_PORTS:
            raise ValueError(f"--ports must be 1..{MAX_PORTS}, got {ports}")
        self.dialect = dialect
        self.port = port
        self.username = username
        self.password = password
        self.faults = faults
        self.port_names = dialect.port_names(ports)
        self.running: Any = dialect.initial_config(self.port_names)
        self.saved: Any = copy.deepcopy(self.running)
        self.pending: Any = copy.deepcopy(self.running)
        self.rev = 1
        self.sessions = 0

    def check_login(self, username: str, password: str) -> bool:
        if self.faults.current().auth_fail:
            log.info("lab switch: login of %r refused (auth-fail)", username)
            return False
        ok = hmac.compare_digest(username.encode(), self.username.encode()) and (
            hmac.compare_digest(password.encode(), self.password.encode())
        )
        if not ok:
            log.info("lab switch: login of %r refused (wrong username or password)", username)
        return ok

    async def serve_session(self, process: asyncssh.SSHServerProcess[str]) -> None:
        term = Terminal(process)
        username = str(process.get_extra_info("username") or self.username)
        cli = self.dialect(self, term, username)
        self.sessions += 1
        sid = self.sessions
        config_commands = 0
        log.info("lab switch: session %d of %r opened", sid, username)
        try:
            if process.command is not None:  # ssh host 'command'
                for command in process.command.splitlines():
                    await cli.execute(command)
                process.exit(0)
                return
            term.write(cli.banner())
            while True:
                term.write(cli.prompt())
                line = await term.readline(echo=True)
                if line is None:
                    break
                faults = self.faults.current()
                if cli.is_config_command(line):
                    if faults.drop_after is not None and config_commands >= faults.drop_after:
                        log.info(
                            "lab switch: session %d dropped before %r (drop-after:%d)",
                            sid,
                            line,
                            faults.drop_after,
                        )
                        process.channel.get_connection().abort()
                        return
                    config_commands += 1
                if faults.slow:
                    await asyncio.sleep(faults.slow)
                await cli.execute(line)
            process.exit(0)
        except EndSession:
            process.exit(0)
        except (BrokenPipeError, ConnectionError, asyncssh.Error):
            pass
        finally:
            log.info("lab switch: session %d closed", sid)


class DialectCli(abc.ABC):
    """One switch CLI, one instance per session: prompts, modes, command handlers, renderers.
    The configuration objects (``switch.running`` etc.) are the dialect's own types."""

    name: ClassVar[str]
    hostname: ClassVar[str]
    default_username: ClassVar[str]
    default_password: ClassVar[str]

    def __init__(self, switch: LabSwitch, term: Terminal, username: str) -> None:
        self.switch = switch
        self.term = term
        self.username = username

    @staticmethod
    @abc.abstractmethod
    def port_names(count: int) -> list[str]: ...

    @classmethod
    @abc.abstractmethod
    def initial_config(cls, ports: list[str]) -> Any:
        """The factory configuration with these ports."""

    @abc.abstractmethod
    def banner(self) -> str: ...

    @abc.abstractmethod
    def prompt(self) -> str: ...

    @abc.abstractmethod
    def is_config_command(self, line: str) -> bool:
        """Whether ``line`` (about to run in the current mode) changes configuration: what
        ``drop-after`` counts."""

    @abc.abstractmethod
    async def execute(self, line: str) -> None:
        """Run one line, writing its output; raise EndSession to log out."""


# --------------------------------------------------------------------------- Arista EOS


@dataclass
class EosPort:
    switchport: bool = True
    mode: str = "access"
    access_vlan: int = 1
    native_vlan: int = 1
    allowed: frozenset[int] | None = None  # None: all VLANs (the EOS default)
    shutdown: bool = False
    mtu: int | None = None
    description: str | None = None


@dataclass
class EosConfig:
    hostname: str
    vlans: dict[int, str] = field(default_factory=dict)
    ports: dict[str, EosPort] = field(default_factory=dict)


_EOS_INVALID = "% Invalid input"
_EOS_INCOMPLETE = "% Incomplete command"
_EOS_PRIVILEGED = "% Invalid input (privileged mode required)"
_EOS_LOCKED = "% Error: configuration is locked by another session"
_EOS_IFNAME = re.compile(r"^(?:ethernet|etherne|ethern|ether|ethe|eth|et|e)\s*(\d+)$", re.I)
_EOS_MTU = (68, 9214)


def _kw(word: str, keyword: str, minimum: int = 1) -> bool:
    """``word`` is an abbreviation of ``keyword`` (EOS accepts any unambiguous prefix)."""
    return len(word) >= minimum and keyword.startswith(word.lower())


def _vlan_id(text: str) -> int | None:
    return int(text) if text.isdigit() and VLAN_MIN <= int(text) <= VLAN_MAX else None


def _vlan_set(text: str) -> frozenset[int] | None:
    try:
        return parse_vlan_ranges(text)
    except ValueError:
        return None


class EosCli(DialectCli):
    name = "arista_eos"
    hostname = "lab-eos"
    default_username = "admin"
    default_password = "admin"

    def __init__(self, switch: LabSwitch, term: Terminal, username: str) -> None:
        super().__init__(switch, term, username)
        self.mode = "exec"  # exec | enable | config | config-if | config-vlan
        self.interface: str | None = None
        self.vlans: list[int] = []

    @property
    def config(self) -> EosConfig:
        cfg: EosConfig = self.switch.running
        return cfg

    @staticmethod
    def port_names(count: int) -> list[str]:
        return [f"Ethernet{i}" for i in range(1, count + 1)]

    @classmethod
    def initial_config(cls, ports: list[str]) -> EosConfig:
        return EosConfig(cls.hostname, {1: "default"}, {p: EosPort() for p in ports})

    def banner(self) -> str:
        return "\n"

    def prompt(self) -> str:
        host = self.config.hostname
        if self.mode == "exec":
            return f"{host}>"
        if self.mode == "enable":
            return f"{host}#"
        if self.mode == "config-if":
            assert self.interface is not None
            return f"{host}(config-if-{self.interface.replace('Ethernet', 'Et')})#"
        if self.mode == "config-vlan":
            return f"{host}(config-vlan-{format_vlan_ranges(self.vlans)})#"
        return f"{host}(config)#"

    def is_config_command(self, line: str) -> bool:
        words = line.split()
        if not words:
            return False
        if self.mode.startswith("config"):
            return not (_kw(words[0], "exit", 3) or _kw(words[0], "end", 2) or words[0] == "show")
        return self._is_save(words)

    @staticmethod
    def _is_save(words: list[str]) -> bool:
        return (
            len(words) == 3
            and _kw(words[0], "copy", 2)
            and _kw(words[1], "running-config", 3)
            and _kw(words[2], "startup-config", 3)
        ) or (
            bool(words)
            and _kw(words[0], "write", 2)
            and (len(words) == 1 or (len(words) == 2 and _kw(words[1], "memory", 3)))
        )

    async def execute(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        out = self._common(line, words)
        if out is None:
            if self.mode in ("exec", "enable"):
                out = self._exec(words)
            elif self.mode == "config":
                out = self._config(line, words)
            else:
                out = self._submode(line, words)
        self.term.write(out)

    # -------------------------------------------------------------- any mode

    def _common(self, line: str, words: list[str]) -> str | None:
        first = words[0].lower()
        if _kw(first, "show", 2):
            if (
                self.mode == "exec"
                and len(words) > 1
                and (_kw(words[1], "running-config", 3) or _kw(words[1], "startup-config", 3))
            ):
                return _EOS_PRIVILEGED + "\n"
            return self._show(words[1:])
        if self._is_save(words):
            if self.mode == "exec":
                return _EOS_PRIVILEGED + "\n"
            if self.switch.faults.current().config_locked:
                return _EOS_LOCKED + "\n"
            self.switch.saved = copy.deepcopy(self.config)
            return "Copy completed successfully.\n"
        if _kw(first, "terminal", 3) and len(words) == 3:
            what, value = words[1].lower(), words[2]
            if _kw(what, "length", 3) and value.isdigit():
                return "Pagination disabled.\n" if int(value) == 0 else ""
            if _kw(what, "width", 3) and value.isdigit() and 10 <= int(value) <= 32767:
                return f"Width set to {int(value)} columns.\n"
            return _EOS_INVALID + "\n"
        if _kw(first, "end", 2) and len(words) == 1:
            if self.mode.startswith("config"):
                self.mode, self.interface, self.vlans = "enable", None, []
                return ""
            return _EOS_INVALID + "\n"
        return None

    # -------------------------------------------------------------- exec modes

    def _exec(self, words: list[str]) -> str:
        first = words[0].lower()
        if _kw(first, "enable", 2) and len(words) == 1:
            self.mode = "enable"
            return ""
        if _kw(first, "disable", 3) and len(words) == 1:
            self.mode = "exec"
            return ""
        if first in ("exit", "quit", "logout") and len(words) == 1:
            raise EndSession
        if _kw(first, "configure", 4) and (
            len(words) == 1 or (len(words) == 2 and _kw(words[1], "terminal", 1))
        ):
            if self.mode == "exec":
                return _EOS_PRIVILEGED + "\n"
            self.mode = "config"
            return ""
        return _EOS_INVALID + "\n"

    # -------------------------------------------------------------- configuration

    def _config(self, line: str, words: list[str]) -> str:
        out = self._config_command(line, words)
        return _EOS_INVALID + "\n" if out is None else out

    def _config_command(self, line: str, words: list[str]) -> str | None:
        """A global-configuration command (also reached from sub-modes, which it leaves), or
        None when it is not one."""
        first = words[0].lower()
        cfg = self.config
        if _kw(first, "exit", 3) and len(words) == 1 and self.mode == "config":
            self.mode = "enable"
            return ""
        if _kw(first, "interface", 2):
            if len(words) == 1:
                return _EOS_INCOMPLETE + "\n"
            name = self._port_name("".join(words[1:]))
            if name is None:
                return _EOS_INVALID + "\n"
            self.mode, self.interface, self.vlans = "config-if", name, []
            return ""
        if _kw(first, "vlan", 2):
            if len(words) == 1:
                return _EOS_INCOMPLETE + "\n"
            ids = _vlan_set(words[1]) if len(words) == 2 else None
            if not ids:
                return _EOS_INVALID + "\n"
            for v in ids:
                cfg.vlans.setdefault(v, f"VLAN{v:04d}")
            self.mode, self.interface, self.vlans = "config-vlan", None, sorted(ids)
            return ""
        if first == "no" and len(words) >= 2 and _kw(words[1], "vlan", 2):
            ids = _vlan_set(words[2]) if len(words) == 3 else None
            if len(words) == 2:
                return _EOS_INCOMPLETE + "\n"
            if not ids:
                return _EOS_INVALID + "\n"
            if 1 in ids:
                return "% Default VLAN 1 cannot be deleted\n"
            for v in ids:
                cfg.vlans.pop(v, None)
            self.mode, self.interface, self.vlans = "config", None, []
            return ""
        if _kw(first, "hostname", 3):
            if len(words) != 2:
                return _EOS_INCOMPLETE + "\n" if len(words) == 1 else _EOS_INVALID + "\n"
            cfg.hostname = words[1]
            self.mode, self.interface, self.vlans = "config", None, []
            return ""
        return None

    def _port_name(self, text: str) -> str | None:
        m = _EOS_IFNAME.match(text)
        if m is None:
            return None
        name = f"Ethernet{int(m.group(1))}"
        return name if name in self.config.ports else None

    def _submode(self, line: str, words: list[str]) -> str:
        first = words[0].lower()
        if _kw(first, "exit", 3) and len(words) == 1:
            self.mode, self.interface, self.vlans = "config", None, []
            return ""
        handler = self._interface if self.mode == "config-if" else self._vlan
        out = handler(line, words)
        if out is None:  # EOS tries the command in the parent mode, leaving this one
            out = self._config_command(line, words)
        return _EOS_INVALID + "\n" if out is None else out

    def _vlan(self, line: str, words: list[str]) -> str | None:
        cfg = self.config
        if _kw(words[0], "name", 2):
            if len(words) != 2:
                return _EOS_INCOMPLETE + "\n" if len(words) == 1 else _EOS_INVALID + "\n"
            for v in self.vlans:
                cfg.vlans[v] = words[1]
            return ""
        if words[0] == "no" and len(words) == 2 and _kw(words[1], "name", 2):
            for v in self.vlans:
                cfg.vlans[v] = f"VLAN{v:04d}"
            return ""
        return None

    def _interface(self, line: str, words: list[str]) -> str | None:
        assert self.interface is not None
        port = self.config.ports[self.interface]
        neg = words[0].lower() in ("no", "default")
        args = [w.lower() for w in (words[1:] if neg else words)]
        if not args:
            return _EOS_INCOMPLETE + "\n"
        head = args[0]
        if _kw(head, "shutdown", 2) and len(args) == 1:
            port.shutdown = not neg
            return ""
        if _kw(head, "mtu", 2):
            if neg and len(args) == 1:
                port.mtu = None
                return ""
            if len(args) == 1:
                return _EOS_INCOMPLETE + "\n"
            if len(args) == 2 and args[1].isdigit() and _EOS_MTU[0] <= int(args[1]) <= _EOS_MTU[1]:
                port.mtu = int(args[1])
                return ""
            return _EOS_INVALID + "\n"
        if _kw(head, "description", 3):
            if neg:
                port.description = None
                return ""
            text = line.strip()[len(words[0]) :].strip()
            if not text:
                return _EOS_INCOMPLETE + "\n"
            port.description = text
            return ""
        if _kw(head, "switchport", 3):
            return self._switchport(port, neg, args[1:])
        return None

    def _switchport(self, port: EosPort, neg: bool, args: list[str]) -> str:
        incomplete, invalid = _EOS_INCOMPLETE + "\n", _EOS_INVALID + "\n"
        if not args:
            port.switchport = not neg
            return ""
        head = args[0]
        if _kw(head, "mode", 2):
            if neg:
                port.mode = "access"
                return "" if len(args) <= 2 else invalid
            if len(args) != 2:
                return incomplete if len(args) == 1 else invalid
            if _kw(args[1], "access", 2):
                port.mode = "access"
            elif _kw(args[1], "trunk", 2):
                port.mode = "trunk"
            else:
                return invalid
            return ""
        if _kw(head, "access", 2):
            if len(args) < 2 or not _kw(args[1], "vlan", 1):
                return incomplete if len(args) < 2 else invalid
            if neg:
                port.access_vlan = 1
                return ""
            if len(args) != 3:
                return incomplete if len(args) == 2 else invalid
            vlan = _vlan_id(args[2])
            if vlan is None:
                return invalid
            port.access_vlan = vlan
            if vlan not in self.config.vlans:
                self.config.vlans[vlan] = f"VLAN{vlan:04d}"
                return f"! Access VLAN does not exist. Creating vlan {vlan}\n"
            return ""
        if _kw(head, "trunk", 2):
            if len(args) < 3:
                return incomplete
            what, kw_vlan = args[1], args[2]
            if not _kw(kw_vlan, "vlan", 1):
                return invalid
            if _kw(what, "native", 2):
                if neg:
                    port.native_vlan = 1
                    return ""
                if len(args) != 4:
                    return incomplete if len(args) == 3 else invalid
                vlan = _vlan_id(args[3])
                if vlan is None:
                    return invalid
                port.native_vlan = vlan
                return ""
            if _kw(what, "allowed", 2):
                return self._allowed(port, neg, args[3:])
            return invalid
        return invalid

    @staticmethod
    def _allowed(port: EosPort, neg: bool, args: list[str]) -> str:
        if neg:
            port.allowed = None
            return ""
        if not args:
            return _EOS_INCOMPLETE + "\n"
        every = frozenset(range(VLAN_MIN, VLAN_MAX + 1))
        current = every if port.allowed is None else port.allowed
        op = args[0]
        if op in ("add", "remove", "except"):
            if len(args) != 2:
                return _EOS_INCOMPLETE + "\n" if len(args) == 1 else _EOS_INVALID + "\n"
            ids = _vlan_set(args[1])
            if not ids:
                return _EOS_INVALID + "\n"
            new = {"add": current | ids, "remove": current - ids, "except": every - ids}[op]
        elif len(args) != 1:
            return _EOS_INVALID + "\n"
        elif op == "all":
            new = every
        elif op == "none":
            new = frozenset()
        else:
            ids = _vlan_set(op)
            if not ids:
                return _EOS_INVALID + "\n"
            new = ids
        port.allowed = None if new == every else frozenset(new)
        return ""

    # -------------------------------------------------------------- show

    def _show(self, args: list[str]) -> str:
        if not args:
            return _EOS_INCOMPLETE + "\n"
        what = args[0].lower()
        if _kw(what, "running-config", 3):
            if len(args) == 1:
                return self._render_config(self.config, "show running-config")
            if _kw(args[1], "interfaces", 2) and len(args) >= 3:
                name = self._port_name("".join(args[2:]))
                if name is None:
                    return _EOS_INVALID + "\n"
                return "\n".join(_eos_port_lines(name, self.config.ports[name])) + "\n"
            return _EOS_INVALID + "\n"
        if _kw(what, "startup-config", 3) and len(args) == 1:
            saved: EosConfig = self.switch.saved
            return self._render_config(saved, "show startup-config")
        if _kw(what, "vlan", 2) and (len(args) == 1 or (len(args) == 2 and _kw(args[1], "brief"))):
            return self._show_vlan()
        if _kw(what, "version", 2) and len(args) == 1:
            return (
                "Arista DCS-7050SX3-48YC8-F\n"
                "Hardware version: 11.00\n"
                f"Serial number: LAB{self.switch.port}\n"
                "Hardware MAC address: 02:1c:73:00:00:01\n"
                "System MAC address: 02:1c:73:00:00:01\n\n"
                "Software image version: 4.31.2F (provisiond lab)\n"
                "Architecture: x86_64\n"
                "Internal build version: 4.31.2F-lab\n\n"
                "Uptime: 1 hour and 0 minutes\n"
                "Total memory: 16012260 kB\n"
                "Free memory: 12124324 kB\n\n"
            )
        if _kw(what, "hostname", 2) and len(args) == 1:
            return f"Hostname: {self.config.hostname}\nFQDN:     {self.config.hostname}\n"
        return _EOS_INVALID + "\n"

    @staticmethod
    def _render_config(cfg: EosConfig, command: str) -> str:
        lines = [
            f"! Command: {command}",
            f"! device: {cfg.hostname} (DCS-7050SX3-48YC8-F, EOS-4.31.2F)",
            "!",
            f"hostname {cfg.hostname}",
            "!",
            "spanning-tree mode mstp",
            "!",
        ]
        for vid, name in sorted(cfg.vlans.items()):
            if vid == 1:
                continue
            lines.append(f"vlan {vid}")
            if name != f"VLAN{vid:04d}":
                lines.append(f"   name {name}")
            lines.append("!")
        for pname, port in cfg.ports.items():
            lines += [*_eos_port_lines(pname, port), "!"]
        lines.append("end")
        return "\n".join(lines) + "\n"

    def _show_vlan(self) -> str:
        cfg = self.config
        lines = [
            "VLAN  Name                             Status    Ports",
            "----- -------------------------------- --------- -------------------------------",
        ]
        for vid, name in sorted(cfg.vlans.items()):
            members = [
                pname.replace("Ethernet", "Et")
                for pname, p in cfg.ports.items()
                if p.switchport
                and (
                    (p.mode == "access" and p.access_vlan == vid)
                    or (p.mode == "trunk" and (p.allowed is None or vid in p.allowed))
                )
            ]
            chunks = [", ".join(members[i : i + 6]) for i in range(0, len(members), 6)] or [""]
            head = f"{vid:<5} {name:<32} {'active':<9} "
            lines.append((head + chunks[0]).rstrip())
            lines += [" " * len(head) + c for c in chunks[1:]]
        return "\n".join(lines) + "\n\n"


def _eos_port_lines(name: str, p: EosPort) -> list[str]:
    out = [f"interface {name}"]
    if p.description:
        out.append(f"   description {p.description}")
    if p.shutdown:
        out.append("   shutdown")
    if p.mtu is not None:
        out.append(f"   mtu {p.mtu}")
    if p.access_vlan != 1:
        out.append(f"   switchport access vlan {p.access_vlan}")
    if p.native_vlan != 1:
        out.append(f"   switchport trunk native vlan {p.native_vlan}")
    if p.allowed is not None:
        allowed = format_vlan_ranges(p.allowed) if p.allowed else "none"
        out.append(f"   switchport trunk allowed vlan {allowed}")
    if p.mode == "trunk":
        out.append("   switchport mode trunk")
    if not p.switchport:
        out.append("   no switchport")
    return out


# --------------------------------------------------------------------------- Cumulus NVUE


BRIDGE = "br_default"
_NVUE_MTU = (552, 9216)
_NVUE_LOCKED = "Error: Config is locked: another apply is in progress. Try again later."
_NVUE_VLAN_DETAIL: dict[str, Any] = {
    "multicast": {"snooping": {"querier": {"source-ip": "0.0.0.0"}}},
    "ptp": {"enable": "off"},
    "vni": {},
}


class NvueError(Exception):
    pass


def _node(tree: dict[str, Any], *keys: str) -> dict[str, Any]:
    for key in keys:
        child = tree.get(key)
        if not isinstance(child, dict):
            child = tree[key] = {}
        tree = child
    return tree


def _tree_vlans(value: Any) -> set[int]:
    if isinstance(value, dict):
        return set(parse_vlan_ranges(",".join(str(k) for k in value)))
    if isinstance(value, (int, str)):
        return set(parse_vlan_ranges(str(value)))
    return set()


def _vlan_tree(vlans: set[int]) -> dict[str, Any]:
    return {k: {} for k in format_vlan_ranges(vlans).split(",")} if vlans else {}


def _ranged(name: str, value: str, lo: int, hi: int) -> int:
    if not value.isdigit() or not lo <= int(value) <= hi:
        raise NvueError(f"Error: Invalid value for '{name}': {value} is not in the range {lo}-{hi}")
    return int(value)


class NvueCli(DialectCli):
    name = "cumulus_nvue"
    hostname = "lab-nvue"
    default_username = "cumulus"
    default_password = "cumulus"

    def __init__(self, switch: LabSwitch, term: Terminal, username: str) -> None:
        super().__init__(switch, term, username)
        self.root = False

    @staticmethod
    def port_names(count: int) -> list[str]:
        return [f"swp{i}" for i in range(1, count + 1)]

    @classmethod
    def initial_config(cls, ports: list[str]) -> dict[str, Any]:
        interfaces: dict[str, Any] = {
            "eth0": {"ip": {"address": {"dhcp": {}}}, "type": "eth", "ip-vrf": "mgmt"},
            "lo": {"type": "loopback"},
        }
        for p in ports:
            interfaces[p] = {
                "bridge": {"domain": {BRIDGE: {"access": 1}}},
                "link": {"state": {"up": {}}},
                "type": "swp",
            }
        return {
            "bridge": {"domain": {BRIDGE: {"untagged": 1, "vlan": {"1": {}}}}},
            "interface": interfaces,
            "system": {"hostname": cls.hostname},
        }

    def banner(self) -> str:
        return (
            "\nWelcome to NVIDIA Cumulus (R) Linux (R) 5.8.0 (provisiond lab: config auto-save "
            "off)\n\n"
        )

    def prompt(self) -> str:
        host = str(_node(self.switch.running, "system").get("hostname", self.hostname))
        if self.root:
            return f"root@{host}:mgmt:/home/{self.username}# "
        return f"{self.username}@{host}:mgmt:~$ "

    def is_config_command(self, line: str) -> bool:
        words = self._words(line)
        return bool(words) and (
            (len(words) >= 2 and words[0] == "nv" and words[1] in ("set", "unset"))
            or words[:3] in (["nv", "config", "apply"], ["nv", "config", "save"])
        )

    @staticmethod
    def _words(line: str) -> list[str]:
        try:
            words = shlex.split(line)
        except ValueError:
            return []
        if len(words) >= 2 and words[0] == "sudo" and words[1] == "nv":
            words = words[1:]
        return words

    async def execute(self, line: str) -> None:
        if not line.strip():
            return
        try:
            words = shlex.split(line)
        except ValueError:
            self.term.writeln("-bash: syntax error: unexpected end of file")
            return
        if words[:2] == ["sudo", "nv"]:
            words = words[1:]
        cmd = words[0]
        try:
            if cmd == "nv":
                await self._nv(words[1:])
            elif cmd in ("exit", "logout"):
                if self.root:
                    self.root = False
                    self.term.writeln("exit")
                else:
                    raise EndSession
            elif cmd == "sudo" and words[1:] in (["-s"], ["-i"], ["su"], ["-su"]):
                await self._sudo()
            elif cmd == "whoami":
                self.term.writeln("root" if self.root else self.username)
            elif cmd == "hostname":
                self.term.writeln(str(_node(self.switch.running, "system")["hostname"]))
            elif cmd == "echo":
                self.term.writeln(" ".join(words[1:]))
            elif cmd == "pwd":
                self.term.writeln(f"/home/{self.username}")
            elif cmd == "true":
                pass
            else:
                self.term.writeln(f"-bash: {cmd}: command not found")
        except NvueError as exc:
            self.term.writeln(str(exc))

    async def _sudo(self) -> None:
        if self.root:
            return
        self.term.write(f"[sudo] password for {self.username}: ")
        answer = await self.term.readline(echo=False)
        if answer is None:
            raise EndSession
        if hmac.compare_digest(answer.encode(), self.switch.password.encode()):
            self.root = True
        else:
            self.term.writeln("sudo: 1 incorrect password attempt")

    # -------------------------------------------------------------- nv

    async def _nv(self, args: list[str]) -> None:
        if not args:
            raise NvueError("Error: Missing command.")
        verb, rest = args[0], args[1:]
        if verb in ("set", "unset"):
            self._set(rest, unset=verb == "unset")
        elif verb == "config":
            await self._config(rest)
        elif verb == "show":
            self._show(rest)
        else:
            raise NvueError(f"Error: No such command '{verb}'.")

    def _set(self, path: list[str], *, unset: bool) -> None:
        verb = "unset" if unset else "set"
        pending: dict[str, Any] = copy.deepcopy(self.switch.pending)
        if not path:
            raise NvueError(f"Error: Missing command: nv {verb} requires a path.")
        if path[0] == "bridge":
            if path[1:3] != ["domain", BRIDGE]:
                raise NvueError(f"Error: Invalid path: 'bridge {' '.join(path[1:3])}'")
            self._bridge_attr(_node(pending, "bridge", "domain", BRIDGE), path[3:], unset, True)
        elif path[0] == "interface":
            self._interface(pending, path[1:], unset)
        elif path[0] == "system" and len(path) >= 2 and path[1] == "hostname":
            system = _node(pending, "system")
            if unset:
                system["hostname"] = "cumulus"
            elif len(path) != 3:
                raise NvueError("Error: Missing argument 'hostname'.")
            else:
                system["hostname"] = path[2]
        else:
            raise NvueError(f"Error: '{path[0]}' is not a valid path for 'nv {verb}'.")
        self.switch.pending = pending

    def _interface(self, pending: dict[str, Any], path: list[str], unset: bool) -> None:
        if not path:
            raise NvueError("Error: Missing argument 'interface-id'.")
        name, rest = path[0], path[1:]
        if name not in self.switch.port_names:
            raise NvueError(f"Error: Invalid config: {name} is not a physical interface")
        iface = _node(pending, "interface", name)
        iface.setdefault("type", "swp")
        if not rest:
            if unset:
                pending["interface"][name] = {"type": "swp"}
            return
        attr = rest[0]
        if attr == "bridge":
            if rest[1:3] != ["domain", BRIDGE]:
                raise NvueError(f"Error: Invalid path: 'bridge {' '.join(rest[1:3])}'")
            if len(rest) == 3:
                if unset:
                    iface.pop("bridge", None)
                else:
                    _node(iface, "bridge", "domain", BRIDGE)
                return
            bd = _node(iface, "bridge", "domain", BRIDGE)
            self._bridge_attr(bd, rest[3:], unset, False)
        elif attr == "link" and len(rest) >= 2 and rest[1] in ("mtu", "state"):
            link = _node(iface, "link")
            if unset:
                link.pop(rest[1], None)
                if rest[1] == "state":
                    link["state"] = {"up": {}}
            elif len(rest) != 3:
                raise NvueError(f"Error: Missing argument '{rest[1]}'.")
            elif rest[1] == "mtu":
                link["mtu"] = _ranged("mtu", rest[2], *_NVUE_MTU)
            elif rest[2] in ("up", "down"):
                link["state"] = {rest[2]: {}}
            else:
                raise NvueError(
                    f"Error: Invalid value for 'state': '{rest[2]}' is not one of ['down', 'up']"
                )
        elif attr == "description":
            if unset:
                iface.pop("description", None)
            elif len(rest) < 2:
                raise NvueError("Error: Missing argument 'description'.")
            else:
                iface["description"] = " ".join(rest[1:])
        else:
            raise NvueError(f"Error: '{attr}' is not a valid attribute of interface {name}.")

    @staticmethod
    def _bridge_attr(bd: dict[str, Any], rest: list[str], unset: bool, is_bridge: bool) -> None:
        if not rest:
            if unset:
                raise NvueError(f"Error: {BRIDGE} cannot be removed.")
            return
        attr, values = rest[0], rest[1:]
        allowed = ("vlan", "untagged") if is_bridge else ("vlan", "untagged", "access")
        if attr not in allowed:
            raise NvueError(f"Error: '{attr}' is not a valid attribute here.")
        if len(values) > 1:
            raise NvueError(f"Error: Got unexpected extra argument ({values[1]})")
        value = values[0] if values else None
        if attr == "vlan":
            if value is None:
                if not unset:
                    raise NvueError("Error: Missing argument 'vid'.")
                bd.pop("vlan", None)
                return
            try:
                ids = set(parse_vlan_ranges(value))
            except ValueError:
                raise NvueError(
                    f"Error: Invalid value for 'vlan': '{value}' is not a VLAN id or range "
                    f"({VLAN_MIN}-{VLAN_MAX})"
                ) from None
            current = _tree_vlans(bd.get("vlan"))
            new = current - ids if unset else current | ids
            if new:
                bd["vlan"] = _vlan_tree(new)
            else:
                bd.pop("vlan", None)
            return
        if unset:
            bd.pop(attr, None)
            return
        if value is None:
            raise NvueError(f"Error: Missing argument '{attr}'.")
        if attr == "untagged" and value == "none":
            bd[attr] = "none"
            return
        bd[attr] = _ranged(attr, value, VLAN_MIN, VLAN_MAX)

    async def _config(self, args: list[str]) -> None:
        sub, opts = (args[0], args[1:]) if args else ("", [])
        sw = self.switch
        if sub == "apply":
            yes = any(o in ("-y", "--y", "--assume-yes") for o in opts)
            unknown = [o for o in opts if o not in ("-y", "--y", "--assume-yes", "--assume-no")]
            if unknown:
                raise NvueError(f"Error: No such option: {unknown[0]}")
            if sw.faults.current().config_locked:
                raise NvueError(_NVUE_LOCKED)
            problems = self._validate(sw.pending)
            if problems:
                self.term.writeln(f"Invalid config [rev_id: {sw.rev + 1}]")
                for p in problems:
                    self.term.writeln(f"  Config invalid at {p}")
                return
            if not yes:
                if "--assume-no" in opts:
                    self.term.writeln("Aborted by user.")
                    return
                self.term.write("Are you sure? [y/N] ")
                answer = await self.term.readline(echo=True)
                if answer is None:
                    raise EndSession
                if answer.strip().lower() not in ("y", "yes"):
                    self.term.writeln("Aborted by user.")
                    return
            sw.rev += 1
            sw.running = copy.deepcopy(sw.pending)
            self.term.writeln(f"applied [rev_id: {sw.rev}]")
        elif sub == "save" and not opts:
            if sw.faults.current().config_locked:
                raise NvueError(_NVUE_LOCKED)
            sw.saved = copy.deepcopy(sw.running)
            self.term.writeln(f"saved [rev_id: {sw.rev}]")
        elif sub == "detach" and not opts:
            sw.pending = copy.deepcopy(sw.running)
        elif sub == "show":
            rev, fmt, extra = self._options(opts)
            if extra:
                raise NvueError(f"Error: Got unexpected extra argument ({extra[0]})")
            tree = {"applied": sw.running, "startup": sw.saved, "pending": sw.pending}.get(rev)
            if tree is None:
                raise NvueError(f"Error: Invalid revision '{rev}': use applied, pending or startup")
            doc = [
                {
                    "header": {
                        "model": "VX",
                        "nvue-api-version": "nvue_v1",
                        "rev-id": float(sw.rev),
                        "version": "Cumulus Linux 5.8.0",
                    }
                },
                {"set": tree},
            ]
            self._emit(doc, fmt)
        else:
            raise NvueError(f"Error: No such command '{' '.join(args) or 'config'}'.")

    @staticmethod
    def _validate(tree: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        for name, iface in sorted(_node(tree, "interface").items()):
            bd = _node(iface, "bridge", "domain", BRIDGE) if "bridge" in iface else {}
            if "access" in bd:
                for other in ("untagged", "vlan"):
                    if other in bd:
                        problems.append(
                            f"interface.{name}.bridge.domain.{BRIDGE}: access and {other} "
                            "cannot both be set"
                        )
        return problems

    def _show(self, args: list[str]) -> None:
        _, fmt, words = self._options(args)
        if words == ["bridge", "domain", BRIDGE, "vlan"]:
            bridge = _node(self.switch.running, "bridge", "domain", BRIDGE)
            vlans = sorted(_tree_vlans(bridge.get("vlan")))
            self._emit({str(v): copy.deepcopy(_NVUE_VLAN_DETAIL) for v in vlans}, fmt)
            return
        raise NvueError(f"Error: Unsupported show path in the lab: '{' '.join(words)}'")

    @staticmethod
    def _options(opts: list[str]) -> tuple[str, str, list[str]]:
        """``-r/--rev REV`` and ``-o/--output FORMAT`` out of ``opts``; the rest: the path."""
        rev, fmt = "applied", "auto"
        words: list[str] = []
        i = 0
        while i < len(opts):
            opt = opts[i]
            if opt in ("-r", "--rev", "-o", "--output") and i + 1 < len(opts):
                if opt in ("-r", "--rev"):
                    rev = opts[i + 1]
                else:
                    fmt = opts[i + 1]
                i += 2
                continue
            if opt.startswith("--rev="):
                rev = opt.split("=", 1)[1]
            elif opt.startswith("--output="):
                fmt = opt.split("=", 1)[1]
            elif opt.startswith("-"):
                raise NvueError(f"Error: No such option: {opt}")
            else:
                words.append(opt)
            i += 1
        if fmt not in ("auto", "json", "yaml"):
            raise NvueError(f"Error: Invalid value for '-o': '{fmt}' is not one of json, yaml")
        return rev, fmt, words

    def _emit(self, data: Any, fmt: str) -> None:
        if fmt == "json":
            self.term.writeln(json.dumps(data, indent=2))
        else:
            self.term.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


DIALECTS: dict[str, type[DialectCli]] = {EosCli.name: EosCli, NvueCli.name: NvueCli}


# --------------------------------------------------------------------------- the server


class _SshServer(asyncssh.SSHServer):
    def __init__(self, switch: LabSwitch) -> None:
        self.switch = switch

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return self.switch.check_login(username, password)


async def serve(switch: LabSwitch, address: str, ready: Callable[[], None]) -> None:
    """Serve ``switch`` until SIGTERM/SIGINT."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        lambda: _SshServer(switch),
        address,
        switch.port,
        server_host_keys=[key],
        process_factory=switch.serve_session,
        line_editor=False,
        encoding="utf-8",
        public_key_auth=False,
        kbdint_auth=False,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready()
    try:
        while not stop.is_set():
            switch.faults.current()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CONTROL_POLL_SECONDS)
    finally:
        server.close()
        await server.wait_closed()


def run(
    *,
    dialect: str,
    port: int,
    address: str = ADDRESS,
    username: str | None,
    password: str | None,
    ports: int,
    control: Path | None,
    faults: list[str],
) -> int:
    """`provisiond lab switch`: serve one switch until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    # a client that hangs up without waiting for the exit status (netmiko's disconnect) makes
    # asyncio warn once per packet asyncssh still sends; nothing is wrong
    logging.getLogger("asyncio").addFilter(
        lambda record: record.getMessage() != "socket.send() raised exception."
    )
    try:
        cls = DIALECTS.get(dialect)
        if cls is None:
            raise ValueError(f"--dialect {dialect!r}: one of {', '.join(sorted(DIALECTS))}")
        flags: dict[str, Any] = {}
        for spec in faults:
            flags.update(parse_fault_spec(spec))
        user = username or cls.default_username
        switch = LabSwitch(
            cls,
            port=port,
            ports=ports,
            username=user,
            password=password or cls.default_password,
            faults=FaultSource(port, flags, control),
        )
    except ValueError as exc:
        print(f"provisiond lab switch: {exc}", file=sys.stderr)
        return 2

    def ready() -> None:
        print(
            f"lab switch: {dialect} on {address}:{port} (user {user}, pid {os.getpid()}) ready",
            flush=True,
        )

    try:
        asyncio.run(serve(switch, address, ready))
    except OSError as exc:
        print(f"provisiond lab switch: cannot listen on {address}:{port}: {exc}", file=sys.stderr)
        return 2
    return 0


__all__ = [
    "DIALECTS",
    "DialectCli",
    "EosCli",
    "FaultSource",
    "Faults",
    "LabSwitch",
    "NvueCli",
    "parse_fault_spec",
    "run",
]
