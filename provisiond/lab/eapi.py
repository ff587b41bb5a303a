"""Lab Arista eAPI (``provisiond lab switch --dialect arista_eos --eapi-port Q``): JSON-RPC 2.0
``runCmds`` at ``POST /command-api`` over plain HTTP on 127.0.0.1, one listener per lab switch
(switch i of ``--count N`` on port Q+i), HTTP basic auth with the switch's login.

What it owns: the endpoint, EOS configure sessions and flash files. A configure session is a
named candidate copy of the running configuration: ``configure session NAME`` opens (or re-enters)
it, configuration lines inside it edit the candidate, ``commit`` makes the candidate the running
configuration, ``abort`` drops it, ``show session-config named NAME diffs`` is a unified diff
from the running configuration to the candidate (EOS's ``--- system:/running-config`` /
``+++ session:/NAME-session-config`` headers, three lines of context). Flash files hold
configuration text: ``copy running-config|startup-config flash:NAME``, ``configure replace
flash:NAME`` (the text replayed line by line on the factory configuration; the first refused line
refuses the whole replace). Sessions and flash files are bounded (EOS's 5 pending sessions, 1
completed one kept; 32 files).

Everything else is the EOS CLI's own (provisiond/lab/switches/eos.py, ``EosCli.run``): each
request is a fresh CLI session in exec mode (pyeapi sends ``enable`` first, as on EOS), and a
session's configuration lines go through the very same handlers, pointed at its candidate. The
running and saved configurations are the switch's (``switch.running``, ``switch.saved``), shared
with the SSH CLI: what is committed here is what ``show running-config`` shows over SSH, and the
other way round.

Answers, as EOS gives them as far as pyeapi and napalm's eos driver use them: ``format: json``
gives a JSON model for ``show version``, ``show hostname``, ``show configuration sessions
[detail]``, ``show lldp neighbors detail`` (the CLI's own, eos.py ``lldp_model``; the text
format of ``show lldp neighbors detail | json`` is that model as the CLI prints it) and ``{}``
for configuration commands (with ``warnings``/``messages`` when the CLI
printed any); any other show command asked for JSON fails as "unconverted command" (code 1003).
``format: text`` gives ``{"output": TEXT}``. The first command that fails ends the request with a
JSON-RPC error: code 1002 ("invalid command": ``% Invalid input``, ``% Incomplete command``,
``% Ambiguous command``) or 1000 ("could not run command": any other ``%`` message), message
``CLI command N of M 'CMD' failed: ...``, data: the results of the commands before it, then
``{"errors": [...]}`` (text: also its ``output``).

Faults (provisiond/lab/switch.py): ``auth_fail`` answers 401; ``slow`` delays every answer;
``config_locked`` refuses the saves (``write memory``, ``copy running-config startup-config``)
with the CLI's lock error, so a commit goes in and napalm's ``write memory`` after it fails;
``drop_after`` is for SSH sessions only.

Lab limits: HTTP only (no TLS), abbreviations are accepted without ``autoComplete``, no commit
timers, a commit replaces the running configuration with the candidate even if the running one
changed since the session was opened.

It must never keep a configuration of its own besides sessions and files (there is one running
configuration: the switch's), answer from anything but that state, accept a request without the
switch's login, or listen anywhere but the address it is given.
"""

from __future__ import annotations

import asyncio
import copy
import difflib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BasicAuth, web

from provisiond.lab.switch import LabSwitch, Terminal
from provisiond.lab.switches.eos import (
    _EOS_INCOMPLETE,
    _EOS_INVALID,
    _EOS_PRIVILEGED,
    EosCli,
    EosConfig,
)

log = logging.getLogger("provisiond.lab.eapi")

PATH = "/command-api"
MAX_PENDING_SESSIONS = 5  # EOS's default "max-sessions"
MAX_COMPLETED_SESSIONS = 1  # EOS keeps the last committed session (show configuration sessions)
MAX_FLASH_FILES = 32
MAX_COMMANDS = 10_000  # per request
MAX_BODY = 4 * 1024 * 1024
MAX_REPLACE_LINES = 100_000

# eAPI error codes and the reasons in their messages
INVALID, COULD_NOT_RUN, UNCONVERTED = 1002, 1000, 1003
_REASONS = {
    INVALID: "invalid command",
    COULD_NOT_RUN: "could not run command",
    UNCONVERTED: "unconverted command",
}
_INVALID_TEXT = re.compile(r"^(?:Invalid input|Incomplete command|Ambiguous command)")
_SESSION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_FLASH_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_UPTIME_PART = re.compile(r"(\d+)\s+(week|day|hour|minute|second)s?")
_UPTIME_SECONDS = {"week": 604800, "day": 86400, "hour": 3600, "minute": 60, "second": 1}


def _kw(word: str, keyword: str, minimum: int = 1) -> bool:
    """``word`` abbreviates ``keyword`` (as the EOS CLI accepts it)."""
    return len(word) >= minimum and keyword.startswith(word.lower())


@dataclass
class ConfigSession:
    name: str
    candidate: EosConfig
    state: str = "pending"  # pending | completed


@dataclass
class EapiSwitch:
    """One switch's eAPI: its sessions and flash files; its configurations are the switch's."""

    switch: LabSwitch
    port: int
    sessions: dict[str, ConfigSession] = field(default_factory=dict)
    flash: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    generated: int = 0  # names for ``configure session`` without one

    def pending(self) -> list[str]:
        return [n for n, s in self.sessions.items() if s.state == "pending"]


@dataclass(frozen=True)
class Reply:
    """One command's answer: the text the CLI printed, the JSON model (None: the command has
    none), and its errors (``%`` lines without the ``%``) with their eAPI code."""

    output: str
    model: dict[str, Any] | None = None
    errors: tuple[str, ...] = ()
    code: int = 0

    def entry(self, fmt: str) -> dict[str, Any]:
        """What goes into ``result`` (or an error's ``data``) for this command."""
        if fmt == "text":
            out: dict[str, Any] = {"output": self.output}
            if self.errors:
                out["errors"] = list(self.errors)
            return out
        if self.errors:
            return {"errors": list(self.errors)}
        return dict(self.model or {})


class _NoTerminal(Terminal):
    """eAPI has no terminal: commands run through ``EosCli.run``, which returns what it prints."""

    def __init__(self) -> None:  # no SSH channel behind it
        pass

    def write(self, text: str) -> None:
        raise RuntimeError("the lab eAPI has no terminal; use EosCli.run")


class EapiCli:
    """One request's CLI session: the EOS CLI plus what eAPI adds (configure sessions, flash)."""

    def __init__(self, eapi: EapiSwitch, username: str) -> None:
        self.eapi = eapi
        self.username = username
        self.cli = EosCli(eapi.switch, _NoTerminal(), username)
        self.session: ConfigSession | None = None  # the configure session this request is in

    @property
    def running(self) -> EosConfig:
        cfg: EosConfig = self.eapi.switch.running
        return cfg

    def run(self, command: str, fmt: str) -> Reply:
        words = command.split()
        text, model = self._dispatch(command, words)
        errors = tuple(line[1:].strip() for line in text.splitlines() if line.startswith("%"))
        if errors:
            code = INVALID if _INVALID_TEXT.match(errors[0]) else COULD_NOT_RUN
            return Reply(text, None, errors, code)
        if fmt == "json" and model is None:
            return Reply(text, None, ("This is an unconverted command",), UNCONVERTED)
        if model == {}:  # a configuration or action command: what it printed, as EOS files it
            notes = [line.strip() for line in text.splitlines() if line.strip()]
            warnings = [n.lstrip("! ").strip() for n in notes if n.startswith("!")]
            messages = [n for n in notes if not n.startswith("!")]
            model = {k: v for k, v in (("warnings", warnings), ("messages", messages)) if v}
        return Reply(text, model)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, command: str, words: list[str]) -> tuple[str, dict[str, Any] | None]:
        """(what the switch prints, the JSON model or None when it has none)."""
        if not words:
            return "", {}
        first = words[0].lower()
        if _kw(first, "configure", 4) and len(words) >= 2:
            if _kw(words[1], "session", 4):
                return self._configure_session(words[2:]), {}
            if _kw(words[1], "replace", 3):
                return self._configure_replace(words[2:]), {}
        if self.session is not None and len(words) == 1 and _kw(first, "commit", 3):
            return self._commit(self.session.name), {}
        if self.session is not None and len(words) == 1 and _kw(first, "abort", 2):
            return self._abort(self.session.name), {}
        if (
            self.session is not None
            and len(words) == 2
            and _kw(first, "rollback", 3)
            and words[1].lower() == "clean-config"
        ):
            self.session.candidate = EosCli.initial_config(self.eapi.switch.port_names)
            self.cli.target = self.session.candidate
            return "", {}
        if (
            _kw(first, "copy", 2)
            and len(words) == 3
            and any(w.lower().startswith("flash:") for w in words[1:])
        ):
            return self._copy(words[1], words[2]), {}
        if _kw(first, "show", 2) and len(words) >= 2:
            shown = self._show(words[1:])
            if shown is not None:
                return shown
            return self._cli(command), None
        return self._cli(command), {}

    def _cli(self, command: str) -> str:
        """A line for the EOS CLI itself, editing this request's session candidate if any."""
        self.cli.target = self.session.candidate if self.session is not None else None
        out = self.cli.run(command)
        if self.session is not None and not self.cli.mode.startswith("config"):
            self._leave_session()  # `end` / `exit`: the session stays pending
        return out

    def _leave_session(self) -> None:
        self.session = None
        self.cli.target = None
        if self.cli.mode.startswith("config"):
            self.cli.mode, self.cli.interface, self.cli.vlans = "enable", None, []

    # ------------------------------------------------------------------ configure sessions

    def _configure_session(self, args: list[str]) -> str:
        if self.cli.mode == "exec":
            return _EOS_PRIVILEGED + "\n"
        if not args:
            self.eapi.generated += 1
            args = [f"session{self.eapi.generated}"]
        name = args[0]
        if not _SESSION_NAME.fullmatch(name):
            return _EOS_INVALID + "\n"
        rest = args[1:]
        if not rest:
            return self._enter(name)
        if len(rest) == 1 and _kw(rest[0], "commit", 3):
            return self._commit(name)
        if len(rest) == 1 and _kw(rest[0], "abort", 2):
            return self._abort(name)
        return _EOS_INVALID + "\n"

    def _enter(self, name: str) -> str:
        sessions = self.eapi.sessions
        found = sessions.get(name)
        if found is None:
            if len(self.eapi.pending()) >= MAX_PENDING_SESSIONS:
                return (
                    "% Maximum number of pending sessions has been reached. Please commit or "
                    "abort one of the pending sessions\n"
                )
            found = ConfigSession(name, copy.deepcopy(self.running))
            sessions[name] = found
        elif found.state != "pending":
            return f"% Cannot enter session {name} (session is {found.state})\n"
        self.session = found
        self.cli.target = found.candidate
        self.cli.mode, self.cli.interface, self.cli.vlans = "config", None, []
        return ""

    def _commit(self, name: str) -> str:
        found = self.eapi.sessions.get(name)
        if found is None:
            return f"% Session {name} does not exist\n"
        if found.state != "pending":
            return f"% Session {name} is {found.state}\n"
        self.eapi.switch.running = copy.deepcopy(found.candidate)
        found.state = "completed"
        # the completed sessions kept are the latest ones (dict order is commit order)
        del self.eapi.sessions[name]
        self.eapi.sessions[name] = found
        completed = [n for n, s in self.eapi.sessions.items() if s.state == "completed"]
        for old in completed[: max(0, len(completed) - MAX_COMPLETED_SESSIONS)]:
            del self.eapi.sessions[old]
        log.info("lab eapi :%d: session %s committed", self.eapi.port, name)
        if self.session is found:
            self._leave_session()
        return ""

    def _abort(self, name: str) -> str:
        found = self.eapi.sessions.get(name)
        if found is None:
            return f"% Session {name} does not exist\n"
        if found.state != "pending":
            return f"% Session {name} is {found.state}\n"
        del self.eapi.sessions[name]
        if self.session is found:
            self._leave_session()
        return ""

    # ------------------------------------------------------------------ flash and replace

    def _flash_name(self, word: str) -> str | None:
        """``flash:NAME`` / ``flash:/NAME`` -> NAME."""
        if not word.lower().startswith("flash:"):
            return None
        name = word[len("flash:") :].lstrip("/")
        return name if _FLASH_NAME.fullmatch(name) else None

    def _copy(self, src: str, dst: str) -> str:
        if self.cli.mode == "exec":
            return _EOS_PRIVILEGED + "\n"
        target = self._flash_name(dst)
        if target is None:  # from flash elsewhere: not in this lab
            return _EOS_INVALID + "\n"
        if _kw(src, "running-config", 3):
            text = EosCli._render_config(self.running, "show running-config")
        elif _kw(src, "startup-config", 3):
            saved: EosConfig = self.eapi.switch.saved
            text = EosCli._render_config(saved, "show startup-config")
        elif (source := self._flash_name(src)) is not None:
            if source not in self.eapi.flash:
                return f"% Error copying {src} to {dst} (No such file or directory)\n"
            text = self.eapi.flash[source]
        else:
            return _EOS_INVALID + "\n"
        if target not in self.eapi.flash and len(self.eapi.flash) >= MAX_FLASH_FILES:
            return f"% Error copying {src} to {dst} (No space left on device)\n"
        self.eapi.flash[target] = text
        return "Copy completed successfully.\n"

    def _configure_replace(self, args: list[str]) -> str:
        if self.cli.mode == "exec":
            return _EOS_PRIVILEGED + "\n"
        if not args:
            return _EOS_INCOMPLETE + "\n"
        if len(args) > 2 or (len(args) == 2 and not _kw(args[1], "force", 1)):
            return _EOS_INVALID + "\n"
        src = args[0]
        if _kw(src, "startup-config", 3):
            saved: EosConfig = self.eapi.switch.saved
            text = EosCli._render_config(saved, "show startup-config")
        elif (name := self._flash_name(src)) is not None:
            if name not in self.eapi.flash:
                return f"% Error copying {src} to running-config (No such file or directory)\n"
            text = self.eapi.flash[name]
        else:
            return _EOS_INVALID + "\n"
        loaded = self._load(text)
        if isinstance(loaded, str):
            return loaded
        if self.session is not None:  # inside a session: replaces its candidate
            self.session.candidate = loaded
            self.cli.target = loaded
        else:
            self.eapi.switch.running = loaded
        return ""

    def _load(self, text: str) -> EosConfig | str:
        """The configuration ``text`` describes: its lines replayed through the CLI's handlers
        on the factory configuration; or the error of the first line refused."""
        cfg = EosCli.initial_config(self.eapi.switch.port_names)
        replay = EosCli(self.eapi.switch, _NoTerminal(), self.username)
        replay.mode, replay.target = "config", cfg
        for n, line in enumerate(text.splitlines()[:MAX_REPLACE_LINES], 1):
            out = replay.run(line)
            refused = [o for o in out.splitlines() if o.startswith("%")]
            if refused:
                return f"{refused[0]} (line {n}: {line.strip()!r})\n"
            if not replay.mode.startswith("config"):  # `end`
                break
        return cfg

    # ------------------------------------------------------------------ shows

    def _show(self, args: list[str]) -> tuple[str, dict[str, Any] | None] | None:
        """The shows eAPI adds or has JSON for; None: the CLI's own (text only)."""
        what = args[0].lower()
        if _kw(what, "session-config", 3):
            return self._show_session_config(args[1:]), None
        if _kw(what, "configuration", 4) and len(args) >= 2 and _kw(args[1], "sessions", 4):
            if len(args) > 3 or (len(args) == 3 and not _kw(args[2], "detail", 3)):
                return _EOS_INVALID + "\n", None
            return self._show_sessions(), self._sessions_model(detail=len(args) == 3)
        if _kw(what, "version", 2) and len(args) == 1:
            text = self._cli("show version")
            return text, _version_model(text)
        if _kw(what, "hostname", 2) and len(args) == 1:
            text = self._cli("show hostname")
            host = self.running.hostname
            return text, {"hostname": host, "fqdn": host}
        if EosCli.is_lldp_detail(args):
            return self._cli("show " + " ".join(args)), self.cli.lldp_model()
        return None

    def _show_session_config(self, args: list[str]) -> str:
        if self.cli.mode == "exec":
            return _EOS_PRIVILEGED + "\n"
        session = self.session
        if args and _kw(args[0], "named", 2):
            if len(args) < 2:
                return _EOS_INCOMPLETE + "\n"
            session = self.eapi.sessions.get(args[1])
            if session is None:
                return f"% Session {args[1]} does not exist\n"
            args = args[2:]
        if session is None:
            return "% Not in a configuration session\n"
        if not args:
            return EosCli._render_config(session.candidate, "show session-config")
        if len(args) == 1 and _kw(args[0], "diffs", 2):
            return session_diff(self.running, session.candidate, session.name)
        return _EOS_INVALID + "\n"

    def _show_sessions(self) -> str:
        lines = [
            f"Maximum number of completed sessions: {MAX_COMPLETED_SESSIONS}",
            f"Maximum number of pending sessions: {MAX_PENDING_SESSIONS}",
            "",
            "  Name" + " " * 28 + "State",
            "  " + "-" * 30 + " " + "-" * 12,
        ]
        for name, s in self.eapi.sessions.items():
            mark = "* " if s is self.session else "  "
            lines.append(f"{mark}{name:<30} {s.state}")
        return "\n".join(lines) + "\n"

    def _sessions_model(self, *, detail: bool) -> dict[str, Any]:
        sessions: dict[str, Any] = {}
        for name, s in self.eapi.sessions.items():
            entry: dict[str, Any] = {
                "state": s.state,
                "commitUser": "",
                "description": "",
                "instances": {},
            }
            if detail:
                entry["sessionType"] = "normal"
            sessions[name] = entry
        return {
            "sessions": sessions,
            "maxSavedSessions": MAX_COMPLETED_SESSIONS,
            "maxOpenSessions": MAX_PENDING_SESSIONS,
        }


def session_diff(running: EosConfig, candidate: EosConfig, name: str) -> str:
    """``show session-config named NAME diffs``: a unified diff (3 lines of context) from the
    running configuration to the candidate, both as ``show running-config`` prints them; empty
    when they are the same."""
    before = EosCli._render_config(running, "show running-config").splitlines()
    after = EosCli._render_config(candidate, "show running-config").splitlines()
    lines = list(
        difflib.unified_diff(
            before,
            after,
            "system:/running-config",
            f"session:/{name}-session-config",
            lineterm="",
        )
    )
    return "\n".join(lines) + "\n" if lines else ""


def _version_model(text: str) -> dict[str, Any]:
    """``show version`` as JSON, read from the CLI's own text (one source for both formats)."""
    fields: dict[str, str] = {}
    lines = text.splitlines()
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    model_name = lines[0].removeprefix("Arista ").strip() if lines else ""
    uptime = float(
        sum(
            int(n) * _UPTIME_SECONDS[unit]
            for n, unit in _UPTIME_PART.findall(fields.get("Uptime", ""))
        )
    )

    def kb(key: str) -> int:
        words = fields.get(key, "0").split()
        return int(words[0]) if words and words[0].isdigit() else 0

    image = fields.get("Software image version", "").split()
    return {
        "mfgName": "Arista",
        "modelName": model_name,
        "hardwareRevision": fields.get("Hardware version", ""),
        "serialNumber": fields.get("Serial number", ""),
        "systemMacAddress": fields.get("System MAC address", ""),
        "hwMacAddress": fields.get("Hardware MAC address", ""),
        "configMacAddress": "00:00:00:00:00:00",
        "version": image[0] if image else "",
        "architecture": fields.get("Architecture", ""),
        "internalVersion": fields.get("Internal build version", ""),
        "internalBuildId": "",
        "imageFormatVersion": "",
        "isIntlVersion": False,
        "uptime": uptime,
        "bootupTimestamp": time.time() - uptime,
        "memTotal": kb("Total memory"),
        "memFree": kb("Free memory"),
    }


# --------------------------------------------------------------------------- HTTP

EAPI = web.AppKey("eapi", EapiSwitch)


def _rpc_error(
    req_id: Any, code: int, message: str, data: list[dict[str, Any]] | None = None
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return web.json_response({"jsonrpc": "2.0", "id": req_id, "error": error})


def _login(request: web.Request, switch: LabSwitch) -> str | None:
    """The user of a request whose basic-auth login the switch accepts, else None."""
    header = request.headers.get("Authorization", "")
    try:
        auth = BasicAuth.decode(header) if header else None
    except ValueError:
        auth = None
    if auth is None or not switch.check_login(auth.login, auth.password):
        return None
    return str(auth.login)


def _commands(params: Any) -> tuple[list[str], str] | str:
    """The command lines and format of ``runCmds`` params, or what is wrong with them."""
    if not isinstance(params, dict):
        return "params must be an object"
    fmt = params.get("format", "json")
    if fmt not in ("json", "text"):
        return f"format must be json or text, got {fmt!r}"
    version = params.get("version", 1)
    if version != "latest" and (isinstance(version, bool) or not isinstance(version, int)):
        return f"version must be an integer or 'latest', got {version!r}"
    cmds = params.get("cmds")
    if not isinstance(cmds, list) or not cmds or len(cmds) > MAX_COMMANDS:
        return f"cmds must be a list of 1..{MAX_COMMANDS} commands"
    lines: list[str] = []
    for item in cmds:
        # {"cmd": ..., "input": ...}: the input answers a prompt (enable's password); this lab
        # has no enable password, so it is not needed
        cmd = item.get("cmd") if isinstance(item, dict) else item
        if not isinstance(cmd, str):
            return f"a command must be a string or an object with 'cmd', got {item!r}"
        lines.append(cmd)
    return lines, fmt


async def _command_api(request: web.Request) -> web.Response:
    eapi = request.app[EAPI]
    switch = eapi.switch
    faults = switch.faults.current()
    if faults.slow:
        await asyncio.sleep(faults.slow)
    user = _login(request, switch)
    if user is None:
        return web.Response(
            status=401,
            text="Unable to authenticate",
            headers={"WWW-Authenticate": 'Basic realm="eAPI"'},
        )
    try:
        body = json.loads(await request.text())
    except ValueError:
        return _rpc_error(None, -32700, "Parse error: the request is not JSON")
    if not isinstance(body, dict):
        return _rpc_error(None, -32600, "Invalid request: expected a JSON object")
    req_id = body.get("id")
    if body.get("jsonrpc") != "2.0":
        return _rpc_error(req_id, -32600, "Expected field 'jsonrpc' not specified")
    if body.get("method") != "runCmds":
        return _rpc_error(req_id, -32601, f"Method not found: {body.get('method')!r}")
    parsed = _commands(body.get("params"))
    if isinstance(parsed, str):
        return _rpc_error(req_id, -32602, f"Invalid params: {parsed}")
    lines, fmt = parsed
    cli = EapiCli(eapi, user)
    results: list[dict[str, Any]] = []
    for i, line in enumerate(lines, 1):
        reply = cli.run(line, fmt)
        results.append(reply.entry(fmt))
        if reply.errors:
            log.info("lab eapi :%d: %r refused: %s", eapi.port, line, reply.errors[0])
            return _rpc_error(
                req_id,
                reply.code,
                f"CLI command {i} of {len(lines)} '{line}' failed: {_REASONS[reply.code]}",
                results,
            )
    return web.json_response({"jsonrpc": "2.0", "id": req_id, "result": results})


@web.middleware
async def _count_requests(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every HTTP request is counted and logged (tests count them to prove none was sent)."""
    eapi = request.app[EAPI]
    eapi.requests += 1
    log.info(
        "lab eapi :%d: request %d: %s %s", eapi.port, eapi.requests, request.method, request.path
    )
    return await handler(request)


def create_app(eapi: EapiSwitch) -> web.Application:
    app = web.Application(middlewares=[_count_requests], client_max_size=MAX_BODY)
    app[EAPI] = eapi
    app.router.add_post(PATH, _command_api)
    return app


async def start(
    switches: list[LabSwitch], address: str, first_port: int
) -> Callable[[], Awaitable[None]]:
    """Serve the eAPI of ``switches`` (switch i on ``first_port + i``); returns the coroutine
    function that stops them all."""
    runners: list[web.AppRunner] = []

    async def stop() -> None:
        for runner in runners:
            await runner.cleanup()

    try:
        for i, switch in enumerate(switches):
            runner = web.AppRunner(create_app(EapiSwitch(switch, first_port + i)), access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, address, first_port + i).start()
    except BaseException:
        await stop()
        raise
    return stop


__all__ = ["EAPI", "ConfigSession", "EapiCli", "EapiSwitch", "create_app", "session_diff", "start"]
