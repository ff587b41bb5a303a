"""The netmiko transport: one SSH session per batch, any dialect (drivers/switch/dialects).

``apply`` checks the whole batch first (drivers.switch.base.check: nothing is sent for a bad
batch), then, in ONE session: for dialects that need it (``needs_current``), the batch's ports
are read and handed to ``render``; the dialect's commands are sent (configuration mode for CLI
switches; one shell command at a time for the Linux-based NOSes, NVUE and SONiC, driven through
netmiko's ``linux`` device type as networking-generic-switch does), each command's output checked
against the dialect's error patterns (the refused command is named in the SwitchError); then the
save commands once (retried while the output says the configuration is locked).

netmiko is used for what it is good at (login, paging, prompt discovery, privilege and
configuration mode); the commands themselves go through ``_exchange``: CLI switches get them
pipelined, ``pipeline`` commands per write (default 16), and the reply is split at the prompts
that follow each command, so a batch of 250 lines costs a few round trips instead of 250
(netmiko's ``send_command_timing`` waits 2 s per line; its ``send_command`` sleeps 25 ms per
read). A command refused in the middle of a chunk still stops the batch there: the commands after
it in the same chunk already ran, which the read-back shows (set ``pipeline = 1`` for strictly
one command at a time). Shells always get one command at a time: a tty echoes typed-ahead input
out of order, so output could not be attributed.

netmiko is blocking: every session runs in a thread of a bounded pool with a deadline; one
session per switch at a time; connection failures are retried a bounded number of times, refused
logins never; a session the switch closes is noticed at once (the channel is watched), not after
``read_timeout``.
"""

from __future__ import annotations

import contextlib
import re
import select
import time
from collections.abc import Mapping, Sequence
from typing import Any

from drivers.switch.base import (
    ANY_VLAN,
    ApplyResult,
    ChangeSet,
    Dialect,
    LldpNeighbor,
    Policy,
    PortState,
    SwitchDriver,
    SwitchError,
    SwitchTarget,
    VlanState,
    check,
)
from drivers.switch.dialects import dialect as dialect_of
from drivers.switch.sessions import SwitchSessions

# between reads of a channel that cannot be waited on (not paramiko)
POLL_SECONDS = 0.01


class NetmikoDriver(SwitchDriver):
    name = "netmiko"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        o = dict(options or {})
        self.connect_timeout = float(o.get("connect_timeout", 15.0))
        self.read_timeout = float(o.get("read_timeout", 60.0))
        self.session_timeout = float(o.get("session_timeout", 300.0))
        self.connect_tries = int(o.get("connect_tries", 3))
        self.save_tries = int(o.get("save_tries", 5))
        self.save_retry_delay = float(o.get("save_retry_delay", 2.0))
        self.pipeline = max(1, int(o.get("pipeline", 16)))
        self._sessions = SwitchSessions(
            workers=int(o.get("sessions", 16)), timeout=self.session_timeout, name="switch"
        )

    async def _session(self, target: SwitchTarget, what: str, fn: Any, *args: Any) -> Any:
        return await self._sessions.run(target, what, fn, *args)

    # ------------------------------------------------------------------ the contract

    async def apply(
        self,
        target: SwitchTarget,
        changes: ChangeSet,
        policy: Policy | None = None,
        *,
        read_back: Sequence[str] = (),
    ) -> ApplyResult:
        d = dialect_of(target.driver)
        check(changes, policy or ANY_VLAN, d)  # before any byte is sent
        bad = [p for p in read_back if not d.port_pattern.fullmatch(p)]
        if bad:
            raise SwitchError(f"switch {target.name}: not {d.name} port names: {bad!r}")
        if not changes:
            return ApplyResult()
        commands, ports = await self._session(
            target, "apply", self._apply_sync, d, changes, tuple(read_back)
        )
        return ApplyResult(tuple(commands), ports=ports)

    async def read_ports(self, target: SwitchTarget, ports: Sequence[str]) -> dict[str, PortState]:
        d = dialect_of(target.driver)
        bad = [p for p in ports if not d.port_pattern.fullmatch(p)]
        if bad:
            raise SwitchError(f"switch {target.name}: not {d.name} port names: {bad!r}")
        if not ports:
            return {}
        out = await self._session(target, "read ports", self._show_sync, d,
                                  d.show_ports_command(ports))  # fmt: skip
        wanted = set(ports)
        # some reads return every port (NVUE's whole configuration): keep the ones asked for
        return {p: s for p, s in d.parse_ports(out).items() if p in wanted}

    async def read_vlans(self, target: SwitchTarget) -> dict[int, VlanState]:
        d = dialect_of(target.driver)
        out = await self._session(target, "read VLANs", self._show_sync, d,
                                  [d.show_vlans_command()])  # fmt: skip
        return d.parse_vlans(out)

    async def lldp_neighbors(self, target: SwitchTarget) -> list[LldpNeighbor]:
        d = dialect_of(target.driver)
        out = await self._session(target, "read LLDP", self._show_sync, d,
                                  d.show_lldp_command())  # fmt: skip
        return d.parse_lldp(out)

    async def close(self) -> None:
        self._sessions.close()

    # ------------------------------------------------------------------ in the session thread

    def _connect(self, target: SwitchTarget, d: Dialect) -> Any:
        from netmiko import ConnectHandler
        from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException

        last: Exception | None = None
        for attempt in range(self.connect_tries):
            try:
                return ConnectHandler(
                    device_type=d.netmiko_device_type,
                    host=target.address,
                    port=target.port,
                    username=target.username,
                    password=target.password,
                    secret=target.password,  # enable (EOS, NX-OS, OS10) with the login password
                    conn_timeout=self.connect_timeout,
                    auth_timeout=self.connect_timeout,
                    banner_timeout=self.connect_timeout,
                    read_timeout_override=self.read_timeout,
                    fast_cli=False,
                    allow_agent=False,
                    use_keys=False,
                )
            except NetmikoAuthenticationException as exc:
                raise SwitchError(
                    f"switch {target.name} ({target.key}): login refused for user "
                    f"{target.username!r}; check the switch's credentials"
                ) from exc
            except (NetmikoTimeoutException, OSError, EOFError) as exc:
                last = exc
                if attempt + 1 < self.connect_tries:
                    time.sleep(min(2.0 * (attempt + 1), 10.0))
        raise SwitchError(
            f"switch {target.name} ({target.key}): cannot connect after {self.connect_tries} "
            f"tries: {last}",
            transient=True,
        )

    def _apply_sync(
        self, target: SwitchTarget, d: Dialect, changes: ChangeSet, read_back: Sequence[str]
    ) -> tuple[list[str], dict[str, PortState] | None]:
        conn = self._connect(target, d)
        try:
            _enable(conn, d)
            session = _Session(conn, d, target, self.read_timeout)
            current: dict[str, PortState] | None = None
            if d.needs_current and changes.ports:
                shown = session.exchange(d.show_ports_command([p.port for p in changes.ports]))
                current = d.parse_ports("\n".join(shown))
            commands = d.render(changes, current)
            shell = d.netmiko_device_type == "linux"
            if shell:
                for cmd in commands:
                    session.run([cmd], pipeline=1)
            elif commands:
                if d.config_command:
                    conn.config_mode(config_command=d.config_command)
                else:
                    conn.config_mode()
                session.rebase()  # the prompt changed (host(config)#, [edit], [host])
                session.run(commands, pipeline=self.pipeline)
                if d.config_command:  # Junos: commit inside the private configuration
                    for cmd in d.save_commands():
                        self._save(session, cmd)
                conn.exit_config_mode()
                session.rebase()
            if commands and (shell or not d.config_command):  # nothing sent: nothing to save
                for cmd in d.save_commands():
                    self._save(session, cmd)
            return commands, self._read_back(session, read_back, pipeline=1 if shell else None)
        except SwitchError:
            raise
        except Exception as exc:  # the session died mid-batch, a timeout inside netmiko, ...
            raise SwitchError(
                f"switch {target.name} ({target.key}): session failed during apply: "
                f"{type(exc).__name__}: {exc}",
                transient=True,
            ) from exc
        finally:
            _disconnect(conn)

    def _read_back(
        self, session: _Session, ports: Sequence[str], *, pipeline: int | None
    ) -> dict[str, PortState] | None:
        """The ports as the switch has them now, in the apply's own session (a session less per
        batch). None when there is nothing to read or the switch refused a read (the caller then
        reads on its own, port by port if need be)."""
        if not ports:
            return None
        d = session.dialect
        commands = d.show_ports_command(ports)
        outputs = session.exchange(commands, pipeline=pipeline or self.pipeline)
        if len(outputs) < len(commands) or any(d.errors(o) for o in outputs):
            return None
        wanted = set(ports)
        return {p: st for p, st in d.parse_ports("\n".join(outputs)).items() if p in wanted}

    def _save(self, session: _Session, cmd: str) -> None:
        d, target = session.dialect, session.target
        for attempt in range(self.save_tries):
            out = session.exchange([cmd], pipeline=1)[0]
            locked = any(p.search(out) for p in d.retry_patterns)
            if locked and attempt + 1 < self.save_tries:
                time.sleep(self.save_retry_delay)
                continue
            errors = d.errors(out)
            if errors:
                raise SwitchError(
                    f"switch {target.name}: {cmd!r} failed: {errors[0]}"
                    + (f" (still locked after {self.save_tries} tries)" if locked else ""),
                    command=cmd,
                    transient=locked,
                )
            return

    def _show_sync(self, target: SwitchTarget, d: Dialect, commands: list[str]) -> str:
        conn = self._connect(target, d)
        try:
            _enable(conn, d)
            session = _Session(conn, d, target, self.read_timeout)
            outputs = session.exchange(
                commands, pipeline=1 if d.netmiko_device_type == "linux" else self.pipeline
            )
        except SwitchError:
            raise
        except Exception as exc:
            raise SwitchError(
                f"switch {target.name} ({target.key}): session failed during read: "
                f"{type(exc).__name__}: {exc}",
                transient=True,
            ) from exc
        finally:
            _disconnect(conn)
        for cmd, out in zip(commands, outputs, strict=True):
            errors = d.errors(out)
            if errors:
                raise SwitchError(f"switch {target.name} refused {cmd!r}: {errors[0]}", command=cmd)
        return "\n".join(outputs)


class _Session:
    """Commands in, per-command outputs out, over one netmiko connection. A command's output is
    what the switch printed between its echo and the next prompt."""

    def __init__(self, conn: Any, dialect: Dialect, target: SwitchTarget, timeout: float) -> None:
        self.conn = conn
        self.dialect = dialect
        self.target = target
        self.timeout = timeout
        self.prompt = _prompt_pattern(str(conn.base_prompt))

    def rebase(self) -> None:
        """netmiko re-reads the base prompt when modes change on some platforms."""
        self.prompt = _prompt_pattern(str(self.conn.base_prompt))

    def run(self, commands: Sequence[str], *, pipeline: int) -> None:
        """Send configuration commands; the first refused one raises SwitchError naming it."""
        for cmd, out in zip(commands, self.exchange(commands, pipeline=pipeline), strict=False):
            errors = self.dialect.errors(out)
            if errors:
                raise SwitchError(
                    f"switch {self.target.name} refused {cmd!r}: {errors[0]}", command=cmd
                )

    def exchange(self, commands: Sequence[str], *, pipeline: int = 16) -> list[str]:
        """Each command's output (echo and prompt removed), ``pipeline`` commands per write.
        Stops early (fewer outputs than commands) after a chunk whose output holds an error."""
        outputs: list[str] = []
        for start in range(0, len(commands), pipeline):
            chunk = commands[start : start + pipeline]
            self.conn.write_channel("".join(c + self.conn.RETURN for c in chunk))
            pieces = self.prompt.split(self._read_prompts(chunk))
            outputs.append(pieces[0])  # the first command's echo is already cut
            for cmd, piece in zip(chunk[1:], pieces[1:], strict=False):
                outputs.append(_strip_echo(piece, cmd))
            if any(self.dialect.errors(o) for o in outputs[start:]):
                break
        return outputs

    def _read_prompts(self, chunk: Sequence[str]) -> str:
        """What came after the echo of the chunk's first command, once a prompt has followed
        every command of the chunk. Anything before that echo is dropped: a prompt that session
        setup left unread (netmiko's OS10 driver leaves one) would otherwise be counted."""
        deadline = time.monotonic() + self.timeout
        text = ""
        while True:
            data: str = self.conn.read_channel()
            if data:
                text += data
                start = _echo_end(text, chunk[0])
                # done when every command has its prompt and the output ends in one (nothing of
                # a command's output can still be on its way)
                if (
                    start >= 0
                    and len(self.prompt.findall(text, start)) >= len(chunk)
                    and self.prompt.match(text, _last_line(text))
                ):
                    return text[start:]
                continue
            if _closed(self.conn):
                raise SwitchError(
                    f"switch {self.target.name} ({self.target.key}): the switch closed the "
                    f"session (after {chunk[-1]!r} was sent)",
                    transient=True,
                )
            if time.monotonic() > deadline:
                raise SwitchError(
                    f"switch {self.target.name} ({self.target.key}): no prompt within "
                    f"{self.timeout:g}s after {chunk[-1]!r}",
                    transient=True,
                )
            _wait_readable(self.conn, min(deadline - time.monotonic(), 0.5))


def _prompt_pattern(base: str) -> re.Pattern[str]:
    """A prompt line: the base prompt at the start of a line, optionally inside the ``[`` or
    ``<`` Comware puts around it, then the mode (``(config-if-Et1)``, ``:mgmt:~``, ...) and the
    prompt character."""
    return re.compile(rf"(?m)^[\[<]?{re.escape(base.strip())}[^\r\n#>$\]]*[#>$\]] ?")


def _last_line(text: str) -> int:
    """Where the last line of ``text`` starts."""
    return max(text.rfind("\n"), text.rfind("\r")) + 1


def _echo_end(text: str, cmd: str) -> int:
    """Where the line echoing ``cmd`` ends in ``text`` (-1: not there yet). The command is found
    by its first 40 characters (a terminal may wrap a long echo further on, inserting characters
    that are not newlines)."""
    at = text.find(cmd[:40])
    if at < 0:
        return -1
    i, n = at, 0
    while i < len(text) and n < len(cmd):
        if text[i] not in "\r\n":
            n += 1
        i += 1
    end = text.find("\n", i) if n == len(cmd) else -1
    return -1 if end < 0 else end + 1


def _strip_echo(piece: str, cmd: str) -> str:
    """``piece`` without the echoed command at its start (which a terminal may have wrapped):
    skip as many non-newline characters as the command has, then the rest of that line."""
    i = n = 0
    while i < len(piece) and n < len(cmd):
        if piece[i] not in "\r\n":
            n += 1
        i += 1
    end = piece.find("\n", i)
    return "" if end < 0 else piece[end + 1 :]


def _wait_readable(conn: Any, seconds: float) -> None:
    """Sleep until the session has data (paramiko's channel is selectable), at most
    ``seconds``: a poll loop cost more CPU than the whole exchange once tens of sessions ran."""
    chan = getattr(conn, "remote_conn", None)
    if chan is None or not hasattr(chan, "fileno"):
        time.sleep(POLL_SECONDS)
        return
    with contextlib.suppress(OSError, ValueError):
        select.select([chan], [], [], max(seconds, 0.0))


def _closed(conn: Any) -> bool:
    """Whether the switch has closed the session (paramiko sees it; netmiko does not ask)."""
    chan = getattr(conn, "remote_conn", None)
    if chan is None:
        return False
    try:
        transport = chan.get_transport()
        return bool(chan.closed or chan.eof_received or transport is None
                    or not transport.is_active())  # fmt: skip
    except Exception:  # a half-torn-down channel: treat as closed
        return True


def _enable(conn: Any, d: Dialect) -> None:
    """Privileged mode where the CLI has one (EOS refuses configuration and saves without)."""
    if d.netmiko_device_type not in ("linux", "juniper_junos", "hp_comware"):
        conn.enable()


def _disconnect(conn: Any) -> None:
    with contextlib.suppress(Exception):  # a dropped session cannot be closed twice
        conn.disconnect()
