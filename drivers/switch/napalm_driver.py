"""The napalm transport: one transactional configuration session per batch.

``apply(target, changes, policy)`` runs ``check()`` first (nothing is sent for a bad batch),
renders the batch with our own dialect (drivers/switch/dialects/, the same commands the netmiko
transport sends), then in ONE napalm session: ``open`` -> ``load_merge_candidate(config=TEXT)``
-> ``compare_config()`` -> a diff: ``commit_config()`` (napalm's EOS commit copies the startup
configuration to ``flash:rollback-0``, commits the configure session and writes memory, so the
change is persisted by the commit); no diff: ``discard_config()``. The result carries the
switch's own diff (``ApplyResult.diff``; ``""``: nothing to change).

On failure nothing is left half-done where napalm lets us know: a refused line fails the load
(napalm aborts the session; the running configuration never saw it); a commit that failed before
taking effect is discarded; a commit that took effect but was followed by a failure (EOS: the
``write memory`` after it) is undone with ``rollback()`` (EOS: ``configure replace
flash:rollback-0``, the startup configuration from just before the commit: running changes that
were never saved are dropped with it). Whether an EOS commit took effect is read from the
refused command eAPI names, or, when no answer came, from the session's state on the switch;
where that cannot be known (other platforms, a dead connection) the session is discarded, nothing
is rolled back blindly, and the error says the read-back decides.

Errors are translated here, at the edge, into ``SwitchError``: connection failures, timeouts and
a locked configuration are transient; a refused line (named in ``command``), a refused login and
an unsupported switch are not.

``read_ports`` / ``read_vlans`` run our dialect's show commands through napalm's ``cli()`` (text)
and parse them with the dialect's parsers. napalm is blocking: every session runs in a bounded
thread pool with a deadline (provisiond.blocking), one session per switch at a time.

Drivers: ``napalm_eos`` (napalm's ``eos``, eAPI over https by default; the target's port is the
eAPI port; tested for real against the lab eAPI, provisiond/lab/eapi.py), ``napalm_junos``
(``junos``, NETCONF, ``config_private``) and ``napalm_nxos_ssh`` (``nxos_ssh``). The last two
use the same code path but are NOT tested against anything: no lab speaks NETCONF or NX-OS yet.

Options ([drivers.napalm]): ``timeout`` (napalm's per-request timeout, s, 60),
``session_timeout`` (deadline of one whole session, s, 300), ``eos_transport`` (or
``transport``; EOS: ``https`` or ``http``), ``verify_tls`` (EOS over https: check the
certificate, default true), ``ca_file`` (a CA bundle to check it with), ``sessions`` (16).

It must never send anything for a batch ``check()`` refuses, never roll back a commit it does not
know happened, and never let a napalm or pyeapi exception past its methods.
"""

from __future__ import annotations

import contextlib
import re
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Platform:
    """What a ``napalm_*`` driver name means: napalm's driver, our dialect, its fixed options."""

    napalm: str
    dialect: str
    optional_args: tuple[tuple[str, Any], ...] = ()


NAPALM_PLATFORMS: dict[str, Platform] = {
    "napalm_eos": Platform("eos", "arista_eos"),
    # private candidate: other sessions' uncommitted edits are neither seen nor committed
    "napalm_junos": Platform("junos", "junos", (("config_private", True),)),
    "napalm_nxos_ssh": Platform("nxos_ssh", "cisco_nxos"),
}

# eAPI's error message names the command it refused: "CLI command 4 of 5 'mtu 9216' failed:
# invalid command [errors: ['Invalid input']]" (pyeapi's CommandError, also inside napalm's
# MergeConfigException text)
_EAPI_REFUSED = re.compile(r"CLI command \d+ of \d+ '(?P<command>.*?)' failed: (?P<reason>[^\[]*)")
_EAPI_ERRORS = re.compile(r"errors: \[(?P<errors>[^\]]*)\]")
# the EOS commands napalm's commit runs AFTER the commit itself: failing there means it went in
_EOS_AFTER_COMMIT = re.compile(r"^(?:write(?: memory)?|copy running-config startup-config)$")
_LOGIN_REFUSED = re.compile(r"(?i)^unauthori[sz]ed|authentication failed|login refused")


class NapalmDriver(SwitchDriver):
    name = "napalm"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        o = dict(options or {})
        self.timeout = float(o.get("timeout", 60.0))
        self.session_timeout = float(o.get("session_timeout", 300.0))
        # ``eos_transport`` is the [drivers.napalm] setting's name; ``transport`` napalm's own
        self.transport = str(o.get("eos_transport", o.get("transport", "https")))
        if self.transport not in ("http", "https"):
            raise ValueError(f"napalm transport must be http or https, got {self.transport!r}")
        self.verify_tls = bool(o.get("verify_tls", True))
        self.ca_file = str(o["ca_file"]) if o.get("ca_file") else None
        self._sessions = SwitchSessions(
            workers=int(o.get("sessions", 16)), timeout=self.session_timeout, name="napalm"
        )
        self._classes: dict[str, type[Any]] = {}

    # ------------------------------------------------------------------ the contract

    async def apply(
        self,
        target: SwitchTarget,
        changes: ChangeSet,
        policy: Policy | None = None,
        *,
        read_back: Sequence[str] = (),
    ) -> ApplyResult:
        """``read_back`` is left to the caller (``ports`` None): eAPI requests are cheap, and a
        read after a commit must not be mistaken for part of the transaction."""
        platform, d = _platform(target)
        check(changes, policy or ANY_VLAN, d)  # before any byte is sent
        if not changes:
            return ApplyResult()
        if d.needs_current:  # no napalm platform maps to such a dialect today
            raise SwitchError(f"switch {target.name}: {d.name} needs the ports' state to render")
        commands = d.render(changes)
        diff: str = await self._session(
            target, "apply", self._apply_sync, platform, d, "\n".join(commands)
        )
        return ApplyResult(commands=tuple(commands), diff=diff)

    async def read_ports(self, target: SwitchTarget, ports: Sequence[str]) -> dict[str, PortState]:
        platform, d = _platform(target)
        bad = [p for p in ports if not d.port_pattern.fullmatch(p)]
        if bad:
            raise SwitchError(f"switch {target.name}: not {d.name} port names: {bad!r}")
        if not ports:
            return {}
        out: str = await self._session(
            target, "read ports", self._show_sync, platform, d, d.show_ports_command(ports)
        )
        wanted = set(ports)
        return {p: s for p, s in d.parse_ports(out).items() if p in wanted}

    async def read_vlans(self, target: SwitchTarget) -> dict[int, VlanState]:
        platform, d = _platform(target)
        out: str = await self._session(
            target, "read VLANs", self._show_sync, platform, d, [d.show_vlans_command()]
        )
        return d.parse_vlans(out)

    async def lldp_neighbors(self, target: SwitchTarget) -> list[LldpNeighbor]:
        platform, d = _platform(target)
        out: str = await self._session(
            target, "read LLDP", self._show_sync, platform, d, d.show_lldp_command()
        )
        return d.parse_lldp(out)

    async def close(self) -> None:
        self._sessions.close()

    # ------------------------------------------------------------------ sessions

    async def _session(self, target: SwitchTarget, what: str, fn: Any, *args: Any) -> Any:
        return await self._sessions.run(target, what, fn, *args)

    # ------------------------------------------------------------------ in the session thread

    def _device(self, target: SwitchTarget, platform: Platform) -> Any:
        from napalm import get_network_driver

        optional: dict[str, Any] = {"port": target.port, **dict(platform.optional_args)}
        if platform.napalm == "eos":
            optional["transport"] = self.transport
            if self.transport == "https":
                if self.ca_file is not None:
                    optional["context"] = ssl.create_default_context(cafile=self.ca_file)
                # pyeapi turns certificate checks OFF unless told to enforce them
                optional["enforce_verification"] = self.verify_tls
        cls = self._classes.get(platform.napalm)
        if cls is None:
            # napalm's __del__ closes a device that still looks alive: for EOS that re-sends the
            # abort of a session already dealt with (a blocking request, in whatever thread the
            # garbage collector runs, the event loop's included). Devices are closed here, in
            # the session thread, so garbage collection must not touch the network.
            base = get_network_driver(platform.napalm)
            cls = type(f"Collected{base.__name__}", (base,), {"__del__": _no_cleanup})
            self._classes[platform.napalm] = cls
        return cls(
            hostname=target.address,
            username=target.username or "",
            password=target.password or "",
            timeout=self.timeout,
            optional_args=optional,
        )

    def _open(self, target: SwitchTarget, platform: Platform, d: Dialect) -> Any:
        device = self._device(target, platform)
        try:
            device.open()
        except Exception as exc:
            raise _switch_error(target, d, "connect", exc) from exc
        return device

    def _apply_sync(
        self, target: SwitchTarget, platform: Platform, d: Dialect, config: str
    ) -> str:
        device = self._open(target, platform, d)
        try:
            try:
                device.load_merge_candidate(config=config)
                diff = str(device.compare_config() or "")
            except Exception as exc:
                _discard(device)  # napalm aborted a refused load already; this is for the rest
                raise _switch_error(target, d, "load", exc) from exc
            if not diff.strip():
                try:
                    device.discard_config()
                except Exception as exc:
                    raise _switch_error(target, d, "discard", exc) from exc
                return ""
            try:
                device.commit_config()
            except Exception as exc:
                raise self._failed_commit(target, platform, d, device, exc) from exc
            return diff
        finally:
            with contextlib.suppress(Exception):  # a dead connection cannot be closed twice
                device.close()

    def _failed_commit(
        self, target: SwitchTarget, platform: Platform, d: Dialect, device: Any, exc: Exception
    ) -> SwitchError:
        """Undo what the failed commit left: discard when it did not take effect, roll back
        when it did, neither when that is unknown. The SwitchError says which happened."""
        error = _switch_error(target, d, "commit", exc)
        committed = _eos_committed(device, exc) if platform.napalm == "eos" else None
        if committed is False:
            _discard(device)
            return _with(error, "nothing was changed (the session was aborted)")
        if committed is None:
            _discard(device)
            return _with(
                error,
                "whether the commit took effect is unknown; the read-back decides",
                transient=True,
            )
        try:
            device.rollback()
        except Exception as rb_exc:
            refused = _EAPI_REFUSED.search(str(rb_exc))
            if refused and _EOS_AFTER_COMMIT.match(refused.group("command").strip()):
                # the replace went in, only the save after it failed
                return _with(
                    error,
                    "the commit was rolled back (running configuration restored; saving it "
                    f"failed too: {_detail(str(rb_exc))})",
                )
            return _with(
                error,
                f"the commit took effect and rolling it back failed ({_detail(str(rb_exc))}); "
                "the running configuration may hold the change",
                transient=True,
            )
        return _with(error, "the commit was rolled back (running configuration restored)")

    def _show_sync(
        self, target: SwitchTarget, platform: Platform, d: Dialect, commands: list[str]
    ) -> str:
        device = self._open(target, platform, d)
        try:
            outputs: list[str] = []
            for cmd in commands:  # one at a time: a refusal names its command
                try:
                    out = device.cli([cmd])
                except Exception as exc:
                    raise _switch_error(target, d, "read", exc, command=cmd) from exc
                text = str(out.get(cmd, ""))
                errors = d.errors(text)
                if errors:
                    raise SwitchError(
                        f"switch {target.name} refused {cmd!r}: {errors[0]}", command=cmd
                    )
                outputs.append(text)
            return "\n".join(outputs)
        finally:
            with contextlib.suppress(Exception):
                device.close()


# --------------------------------------------------------------------------- helpers


def _platform(target: SwitchTarget) -> tuple[Platform, Dialect]:
    platform = NAPALM_PLATFORMS.get(target.driver)
    if platform is None:
        raise SwitchError(
            f"switch {target.name}: driver {target.driver!r} is not a napalm driver "
            f"(known: {', '.join(sorted(NAPALM_PLATFORMS))})"
        )
    return platform, dialect_of(platform.dialect)


def _no_cleanup(device: Any) -> None:
    """A collected napalm device does nothing (it was closed by its session)."""


def _discard(device: Any) -> None:
    """Best effort: the session may already be gone with the connection."""
    with contextlib.suppress(Exception):
        device.discard_config()


def _eos_committed(device: Any, exc: Exception) -> bool | None:
    """Whether napalm's EOS commit took effect: the command eAPI refused says so (the commit
    and what precedes it: no; the save after it: yes); with no answer, the session's state on
    the switch (pending: no; completed: yes); None when neither can be read."""
    refused = _EAPI_REFUSED.search(str(exc))
    if refused:
        return bool(_EOS_AFTER_COMMIT.match(refused.group("command").strip()))
    name = getattr(device, "config_session", None)
    if not name:
        return None
    try:
        out = device.cli(["show configuration sessions"], encoding="json")
        sessions = out["show configuration sessions"].get("sessions", {})
    except Exception:
        return None
    state = sessions.get(name, {}).get("state")
    return {"pending": False, "completed": True}.get(str(state))


def _detail(text: str) -> str:
    """The switch's own words from a pyeapi/napalm error text."""
    errors = _EAPI_ERRORS.search(text)
    if errors:
        return errors.group("errors").replace("'", "").replace('"', "").strip()
    refused = _EAPI_REFUSED.search(text)
    if refused:
        return refused.group("reason").strip()
    return text.strip().splitlines()[0] if text.strip() else "no detail"


def _switch_error(
    target: SwitchTarget, d: Dialect, what: str, exc: Exception, *, command: str | None = None
) -> SwitchError:
    """A napalm/pyeapi failure as a SwitchError: transient unless the switch refused."""
    if isinstance(exc, SwitchError):
        return exc
    from napalm.base import exceptions as nx

    where = f"switch {target.name} ({target.key})"
    text = str(exc)
    if _login_refused(exc):
        return SwitchError(
            f"{where}: login refused for user {target.username!r}; check the switch's credentials"
        )
    locked = any(p.search(text) for p in d.retry_patterns)
    refused = _EAPI_REFUSED.search(text)
    if refused:
        cmd = refused.group("command")
        return SwitchError(
            f"switch {target.name} refused {cmd!r}: {_detail(text)}",
            command=cmd,
            transient=locked,
        )
    if isinstance(exc, nx.UnsupportedVersion):
        return SwitchError(f"{where}: unsupported software version: {text}")
    if isinstance(exc, nx.SessionLockedException):
        return SwitchError(
            f"{where}: {what}: another configuration session is open", transient=True
        )
    refusals = (
        nx.MergeConfigException,
        nx.ReplaceConfigException,
        nx.CommitError,
        nx.CommandErrorException,
    )
    if isinstance(exc, refusals) and not locked:
        return SwitchError(f"{where}: {what} refused: {_detail(text)}", command=command)
    # connection refused/reset, timeouts, a session cut mid-way: worth another try
    return SwitchError(
        f"{where}: {what} failed: {type(exc).__name__}: {text or 'no detail'}",
        command=command,
        transient=True,
    )


def _login_refused(exc: Exception) -> bool:
    """pyeapi reports HTTP 401 as a ConnectionError "Unauthorized. ..."; netmiko (nxos_ssh)
    and napalm have their own authentication exceptions."""
    from napalm.base.exceptions import ConnectAuthError
    from netmiko.exceptions import NetmikoAuthenticationException
    from pyeapi.eapilib import ConnectionError as EapiConnectionError

    if isinstance(exc, ConnectAuthError | NetmikoAuthenticationException):
        return True
    return isinstance(exc, EapiConnectionError) and bool(_LOGIN_REFUSED.search(str(exc.message)))


def _with(error: SwitchError, outcome: str, *, transient: bool | None = None) -> SwitchError:
    """``error`` with what was done about it appended."""
    return SwitchError(
        f"{error.message}; {outcome}",
        command=error.command,
        transient=error.transient if transient is None else transient,
    )


__all__ = ["NAPALM_PLATFORMS", "NapalmDriver", "Platform"]
