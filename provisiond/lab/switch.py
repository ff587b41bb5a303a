"""Lab switches: emulated Ethernet switches, each an SSH server (asyncssh) on 127.0.0.1.

``provisiond lab switch --dialect D --port P [--count N]`` serves N switches (default 1) whose
CLI is dialect ``D`` on TCP ports P..P+N-1, in one process: password logins only (the host key is
an ed25519 key generated in memory at start, never written anywhere), an interactive shell with
echo, prompts and the vendor's messages, so netmiko's own drivers drive them as they drive the
real thing.

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
the configuration is the switch's), in its own module under provisiond/lab/switches/
(``CLI_CLASSES`` maps dialect names to them; each module's docstring says what it emulates).

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
import functools
import hmac
import importlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import asyncssh

from provisiond.lab.control import WatchedJson

log = logging.getLogger("provisiond.lab.switch")

ADDRESS = "127.0.0.1"
MAX_PORTS = 256
MAX_SWITCHES = 200
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
        self._watch = WatchedJson(control)
        self.faults = Faults.parse(self.flags)

    def current(self) -> Faults:
        try:
            data = self._watch.changed()
            if data is None:
                return self.faults
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


# --------------------------------------------------------------------------- LLDP


@dataclass(frozen=True)
class LabNeighbor:
    """An LLDP neighbour a lab switch hears on one port: what lldpd on a Linux host sends by
    default (chassis id: the MAC of its first interface, subtype "mac"; port id: the interface's
    MAC, subtype "mac", or its name, subtype "ifname"; system name: the host name)."""

    chassis_id: str
    port_id: str
    system_name: str | None = None
    port_description: str | None = None
    chassis_id_subtype: str = "mac"  # mac | local
    port_id_subtype: str = "mac"  # mac | ifname | local
    ttl: int = 120

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> LabNeighbor:
        unknown = set(raw) - {
            "chassis_id", "port_id", "system_name", "port_description", "chassis_id_subtype",
            "port_id_subtype", "ttl",
        }  # fmt: skip
        if unknown:
            raise ValueError(f"unknown LLDP field(s): {', '.join(sorted(unknown))}")
        for key in ("chassis_id", "port_id"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise ValueError(f"{key} must be a non-empty string")
        return cls(**{k: raw[k] for k in raw})


class LldpSource:
    """The neighbours of one lab switch, from a JSON file re-read when it changes:
    ``{"*" | "TCPPORT": {"PORT": {"chassis_id": ..., "port_id": ..., "system_name": ...} |
    [...]}}`` (``*``: every switch reading the file; a TCP port: the switch on it). A port may
    have a list of neighbours. Bad content is logged and the neighbours stay as they were."""

    def __init__(self, tcp_port: int, path: Path | None) -> None:
        self.tcp_port = tcp_port
        self.path = path
        self._watch = WatchedJson(path)
        self.neighbors: dict[str, list[LabNeighbor]] = {}

    def current(self, ports: list[str]) -> dict[str, list[LabNeighbor]]:
        try:
            data = self._watch.changed()
            if data is None:
                return self.neighbors
            merged: dict[str, list[LabNeighbor]] = {}
            for k in ("*", str(self.tcp_port)):
                entry = data.get(k, {})
                if not isinstance(entry, dict):
                    raise ValueError(f"{k!r}: expected an object of PORT -> neighbour(s)")
                for port, raw in entry.items():
                    if port not in ports:
                        raise ValueError(f"{k!r}: no port {port!r} on this switch")
                    items = raw if isinstance(raw, list) else [raw]
                    merged[port] = [LabNeighbor.parse(item) for item in items]
            self.neighbors = merged
            log.info("lab switch %d: LLDP neighbours from %s: %d port(s)", self.tcp_port,
                     self.path, len(merged))  # fmt: skip
        except (OSError, ValueError, TypeError) as exc:
            log.error("lab switch %d: %s: %s (LLDP neighbours unchanged)", self.tcp_port,
                      self.path, exc)  # fmt: skip
        return self.neighbors


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
        """The next line (without its end), or None at end of input. What a read brought is
        echoed in one write, as a CLI echoes what it read (one SSH packet per character made a
        pasted batch cost thousands of packets on both ends)."""
        line: list[str] = []
        echoed: list[str] = []
        while True:
            buf, i = self._buf, 0
            while i < len(buf):
                ch = buf[i]
                i += 1
                if self._skip_lf and ch == "\n":
                    self._skip_lf = False
                    continue
                self._skip_lf = ch == "\r"
                if ch in "\r\n":
                    self._buf = buf[i:]
                    self.write("".join(echoed) + "\n")
                    return "".join(line)
                if ch in "\x7f\x08":
                    if line:
                        line.pop()
                        if echo:
                            echoed.append("\b \b")
                elif ch == "\x03":  # ^C: drop the line
                    self._buf = buf[i:]
                    self.write("".join(echoed) + "^C\n")
                    return ""
                elif ch >= " " or ch == "\t":
                    line.append(ch)
                    if echo:
                        echoed.append(ch)
            self._buf = ""
            if echoed:
                self.write("".join(echoed))
                echoed.clear()
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
        lldp: LldpSource | None = None,
    ) -> None:
        if not 1 <= ports <= MAX_PORTS:
            raise ValueError(f"--ports must be 1..{MAX_PORTS}, got {ports}")
        self.dialect = dialect
        self.port = port
        self.username = username
        self.password = password
        self.faults = faults
        self._lldp = lldp or LldpSource(port, None)
        self.port_names = dialect.port_names(ports)
        self.running: Any = dialect.initial_config(self.port_names)
        self.saved: Any = copy.deepcopy(self.running)
        self.pending: Any = copy.deepcopy(self.running)
        self.rev = 1
        self.sessions = 0

    def lldp_neighbors(self) -> dict[str, list[LabNeighbor]]:
        """Port name -> the LLDP neighbours heard on it (``--lldp FILE``), for the dialects'
        ``show lldp ...`` renderers."""
        return self._lldp.current(self.port_names)

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


# dialect name -> "module:class" of its lab CLI (provisiond/lab/switches/), imported on use
CLI_CLASSES: dict[str, str] = {
    "arista_eos": "provisiond.lab.switches.eos:EosCli",
    "cumulus_nvue": "provisiond.lab.switches.nvue:NvueCli",
    "sonic": "provisiond.lab.switches.sonic:SonicCli",
    "cisco_nxos": "provisiond.lab.switches.nxos:NxosCli",
    "dell_os10": "provisiond.lab.switches.os10:Os10Cli",
    "junos": "provisiond.lab.switches.junos:JunosCli",
    "comware": "provisiond.lab.switches.comware:ComwareCli",
}


def cli_class(dialect: str) -> type[DialectCli]:
    """The lab CLI class of ``dialect``; ValueError names the known dialects."""
    spec = CLI_CLASSES.get(dialect)
    if spec is None:
        raise ValueError(f"--dialect {dialect!r}: one of {', '.join(sorted(CLI_CLASSES))}")
    module, _, cls = spec.partition(":")
    try:
        found: type[DialectCli] = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--dialect {dialect!r}: the lab has no CLI for it yet ({exc})") from None
    return found



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


async def serve(
    switches: list[LabSwitch],
    address: str,
    ready: Callable[[], None],
    extra: Callable[[], Awaitable[Callable[[], Awaitable[None]]]] | None = None,
) -> None:
    """Serve ``switches`` (each on its own TCP port) until SIGTERM/SIGINT. ``extra``, when
    given, starts more listeners (EOS's eAPI) and returns the coroutine function that stops
    them."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    servers = []
    stop_extra: Callable[[], Awaitable[None]] | None = None
    try:
        for switch in switches:
            servers.append(
                await asyncssh.create_server(
                    functools.partial(_SshServer, switch),
                    address,
                    switch.port,
                    server_host_keys=[key],
                    process_factory=switch.serve_session,
                    line_editor=False,
                    encoding="utf-8",
                    public_key_auth=False,
                    kbdint_auth=False,
                )
            )
        if extra is not None:
            stop_extra = await extra()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        ready()
        while not stop.is_set():
            for switch in switches:
                switch.faults.current()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CONTROL_POLL_SECONDS)
    finally:
        if stop_extra is not None:
            await stop_extra()
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()


def build_switches(
    *,
    dialect: str,
    port: int,
    count: int,
    username: str | None,
    password: str | None,
    ports: int,
    control: Path | None,
    faults: list[str],
    lldp: Path | None = None,
) -> list[LabSwitch]:
    """``count`` lab switches of ``dialect`` on TCP ports ``port`` .. ``port + count - 1``;
    ValueError for a bad argument."""
    if not 1 <= count <= MAX_SWITCHES:
        raise ValueError(f"--count must be 1..{MAX_SWITCHES}, got {count}")
    if not 1 <= port <= 65535 - count + 1:
        raise ValueError(f"--port {port}: ports {port}..{port + count - 1} are not all TCP ports")
    cls = cli_class(dialect)
    flags: dict[str, Any] = {}
    for spec in faults:
        flags.update(parse_fault_spec(spec))
    return [
        LabSwitch(
            cls,
            port=port + i,
            ports=ports,
            username=username or cls.default_username,
            password=password or cls.default_password,
            faults=FaultSource(port + i, flags, control),
            lldp=LldpSource(port + i, lldp),
        )
        for i in range(count)
    ]


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
    count: int = 1,
    eapi_port: int | None = None,
    lldp: Path | None = None,
) -> int:
    """`provisiond lab switch`: serve ``count`` switches until SIGTERM/SIGINT (EOS: with
    their eAPI on ``eapi_port`` + i when given, provisiond/lab/eapi.py)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    # a client that hangs up without waiting for the exit status (netmiko's disconnect) makes
    # asyncio warn once per packet asyncssh still sends; nothing is wrong
    logging.getLogger("asyncio").addFilter(
        lambda record: record.getMessage() != "socket.send() raised exception."
    )
    try:
        switches = build_switches(
            dialect=dialect,
            port=port,
            count=count,
            username=username,
            password=password,
            ports=ports,
            control=control,
            faults=faults,
            lldp=lldp,
        )
    except ValueError as exc:
        print(f"provisiond lab switch: {exc}", file=sys.stderr)
        return 2
    user = switches[0].username
    last = port + count - 1
    where = f"{address}:{port}" + (f"-{last}" if count > 1 else "")
    extra: Callable[[], Awaitable[Callable[[], Awaitable[None]]]] | None = None
    if eapi_port is not None:
        problem = _eapi_problem(dialect, port, count, eapi_port)
        if problem:
            print(f"provisiond lab switch: {problem}", file=sys.stderr)
            return 2
        from provisiond.lab import eapi

        extra = functools.partial(eapi.start, switches, address, eapi_port)
        where += f", eAPI http://{address}:{eapi_port}" + (
            f"-{eapi_port + count - 1}" if count > 1 else ""
        )

    def ready() -> None:
        print(
            f"lab switch: {count} x {dialect} on {where} (user {user}, pid {os.getpid()}) ready",
            flush=True,
        )

    try:
        asyncio.run(serve(switches, address, ready, extra))
    except OSError as exc:
        print(f"provisiond lab switch: cannot listen on {where}: {exc}", file=sys.stderr)
        return 2
    return 0


def _eapi_problem(dialect: str, port: int, count: int, eapi_port: int) -> str | None:
    """What is wrong with ``--eapi-port`` for these switches, if anything."""
    if dialect != "arista_eos":
        return f"--eapi-port: only arista_eos has an eAPI, not {dialect}"
    last = eapi_port + count - 1
    if not 1 <= eapi_port <= 65535 - count + 1:
        return f"--eapi-port {eapi_port}: ports {eapi_port}..{last} are not all TCP ports"
    if eapi_port <= port + count - 1 and port <= last:
        return f"--eapi-port {eapi_port}: ports {eapi_port}..{last} overlap the SSH ports"
    return None


__all__ = [
    "CLI_CLASSES",
    "DialectCli",
    "EndSession",
    "FaultSource",
    "Faults",
    "LabSwitch",
    "Terminal",
    "build_switches",
    "cli_class",
    "parse_fault_spec",
    "run",
    "serve",
]
