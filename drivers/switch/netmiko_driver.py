"""The netmiko transport: one SSH session per batch, any dialect (drivers/switch/dialects).

``apply`` checks the whole batch first (drivers.switch.base.check: nothing is sent for a bad
batch), then, in ONE session: the dialect's commands (configuration mode for CLI switches, one
shell command at a time for the Linux-based NOSes, NVUE and SONiC, driven through netmiko's
``linux`` device type as networking-generic-switch does), each output checked against the
dialect's error patterns (the refused command is named in the SwitchError), then the save
commands once (retried while the output says the configuration is locked). netmiko is blocking:
every session runs in a thread of a bounded pool with a deadline; one session per switch at a
time; connection failures are retried a bounded number of times, refused logins never.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from drivers.switch.base import (
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
    parse_vlan_ranges,
)
from drivers.switch.dialects import dialect as dialect_of
from provisiond.blocking import BlockingRunner
from provisiond.errors import DeadlineExceeded

ANY_VLAN = Policy(parse_vlan_ranges("1-4094"))


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
        self._runner = BlockingRunner(max_workers=int(o.get("sessions", 16)), name="switch")
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, target: SwitchTarget) -> asyncio.Lock:
        return self._locks.setdefault(target.key, asyncio.Lock())

    async def _session(self, target: SwitchTarget, what: str, fn: Any, *args: Any) -> Any:
        async with self._lock(target):  # one session per switch at a time
            try:
                return await self._runner.call(
                    fn, target, *args, seconds=self.session_timeout, what=f"{target.name} {what}"
                )
            except DeadlineExceeded as exc:
                raise SwitchError(
                    f"switch {target.name} ({target.key}): {what}: no answer within "
                    f"{self.session_timeout:g}s",
                    transient=True,
                ) from exc

    # ------------------------------------------------------------------ the contract

    async def apply(
        self, target: SwitchTarget, changes: ChangeSet, policy: Policy | None = None
    ) -> None:
        d = dialect_of(target.driver)
        check(changes, policy or ANY_VLAN, d)  # before any byte is sent
        if not changes:
            return
        await self._session(target, "apply", self._apply_sync, d, d.render(changes))

    async def read_ports(self, target: SwitchTarget, ports: Sequence[str]) -> dict[str, PortState]:
        d = dialect_of(target.driver)
        bad = [p for p in ports if not d.port_pattern.fullmatch(p)]
        if bad:
            raise SwitchError(f"switch {target.name}: not {d.name} port names: {bad!r}")
        out = await self._session(target, "read ports", self._show_sync, d,
                                  d.show_ports_command(ports))  # fmt: skip
        return d.parse_ports(out)

    async def read_vlans(self, target: SwitchTarget) -> dict[int, VlanState]:
        d = dialect_of(target.driver)
        out = await self._session(target, "read VLANs", self._show_sync, d,
                                  [d.show_vlans_command()])  # fmt: skip
        return d.parse_vlans(out)

    async def lldp_neighbors(self, target: SwitchTarget) -> list[LldpNeighbor]:
        raise SwitchError(
            f"switch {target.name}: reading LLDP neighbours from the switch is not implemented "
            "yet (nodes report their neighbours through the inspection agent)"
        )

    async def close(self) -> None:
        self._runner.close()

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
                time.sleep(min(2.0 * (attempt + 1), 10.0))
        raise SwitchError(
            f"switch {target.name} ({target.key}): cannot connect after {self.connect_tries} "
            f"tries: {last}",
            transient=True,
        )

    def _apply_sync(self, target: SwitchTarget, d: Dialect, commands: list[str]) -> None:
        conn = self._connect(target, d)
        try:
            shell = d.netmiko_device_type == "linux"
            _enable(conn, d)
            if shell:
                for cmd in commands:
                    self._run(target, d, conn, cmd)
            elif commands:
                if d.config_command:
                    conn.config_mode(config_command=d.config_command)
                else:
                    conn.config_mode()
                for cmd in commands:
                    self._run(target, d, conn, cmd, config=True)
                if d.config_command:  # Junos: commit inside the private configuration
                    for cmd in d.save_commands():
                        self._save(target, d, conn, cmd, config=True)
                    conn.exit_config_mode()
                    return
                conn.exit_config_mode()
            for cmd in d.save_commands():
                self._save(target, d, conn, cmd)
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

    def _run(
        self, target: SwitchTarget, d: Dialect, conn: Any, cmd: str, *, config: bool = False
    ) -> str:
        out: str = conn.send_command_timing(
            cmd, read_timeout=self.read_timeout, strip_prompt=False, strip_command=False,
            cmd_verify=False,
        ) if config else conn.send_command(cmd, read_timeout=self.read_timeout)  # fmt: skip
        errors = d.errors(out)
        if errors:
            raise SwitchError(f"switch {target.name} refused {cmd!r}: {errors[0]}", command=cmd)
        return out

    def _save(
        self, target: SwitchTarget, d: Dialect, conn: Any, cmd: str, *, config: bool = False
    ) -> None:
        for attempt in range(self.save_tries):
            out: str = conn.send_command_timing(
                cmd, read_timeout=self.read_timeout, cmd_verify=False
            ) if config else conn.send_command(cmd, read_timeout=self.read_timeout)  # fmt: skip
            if any(p.search(out) for p in d.retry_patterns) and attempt + 1 < self.save_tries:
                time.sleep(self.save_retry_delay)
                continue
            errors = d.errors(out)
            if errors:
                locked = any(p.search(out) for p in d.retry_patterns)
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
            outputs = [conn.send_command(c, read_timeout=self.read_timeout) for c in commands]
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


def _enable(conn: Any, d: Dialect) -> None:
    """Privileged mode where the CLI has one (EOS refuses configuration and saves without)."""
    if d.netmiko_device_type not in ("linux", "juniper_junos"):
        conn.enable()


def _disconnect(conn: Any) -> None:
    with contextlib.suppress(Exception):  # a dropped session cannot be closed twice
        conn.disconnect()
