"""Lab UFM: the P_Key part of NVIDIA UFM Enterprise's REST API, in memory, on 127.0.0.1.

``provisiond lab ufm --port P [--user U --password W] [--token T] [--control FILE]
[--fault 500|500:N|slow|auth] [--delay S]`` serves until SIGTERM/SIGINT; ``LabUfm`` serves the
same thing in-process (``await lab.start()`` / ``await lab.stop()``, ``lab.state`` to assert on).

It owns the partitions (P_Keys) of one pretend subnet, the management key 0x7fff included, and
answers the endpoints below under ``/ufmRest`` (HTTP basic auth, default ``admin``/``123456``)
and, identically, under ``/ufmRestV3`` (token auth: ``Authorization: Basic <token>``; without a
configured token every /ufmRestV3 request is refused):

  GET    /resources/pkeys                         the keys, a JSON list: ["0x7fff", "0x101"]
  GET    /resources/pkeys?guids_data=true         {"0x101": {"partition": NAME, "ip_over_ib":
                                                  B, "guids": [{"guid": "0002c90300001003",
                                                  "membership": "full", "index0": B}]}, ...}
  GET    /resources/pkeys?qos_conf=true           the same keyed object with "qos_conf":
                                                  {"mtu_limit": 2|4, "service_level": N,
                                                  "rate_limit": GBPS} instead of "guids"
  GET    /resources/pkeys/<pkey>[?guids_data=true][&qos_conf=true]
                                                  one such object; an unknown key is 200 ``{}``
  POST   /resources/pkeys/add                     create an empty key
  POST   /resources/pkeys                         add GUIDs (creating the key if needed); a
                                                  GUID already in it takes the new membership
  PUT    /resources/pkeys                         replace the key's GUID list
  DELETE /resources/pkeys/<pkey>/guids/<g1>,<g2>  remove GUIDs (one not in the key: a no-op)
  DELETE /resources/pkeys/<pkey>                  delete the key
  PUT    /resources/pkeys/qos_conf                {"pkey", "mtu_limit", "service_level",
                                                  "rate_limit"}
  GET    /app/ufm_version                         {"ufm_release_version": ...}

Where the shapes come from (facts, not code): the endpoints, request fields and defaults are
NVIDIA's "UFM Enterprise REST API Guide" (PKey GUIDs REST API, v6.11-v6.22: pkey "hexadecimal
string between 0x0-0x7fff exclusive", GUIDs "hexadecimal string with a minimum length of 16 and
maximum length of 20 characters", ``membership``/``memberships``, ``index0`` default false,
``ip_over_ib`` default true; ``partition_name`` on /pkeys/add from v6.22; the /ufmRest (basic),
/ufmRestV2 (session), /ufmRestV3 (token) split from its "REST API Complementary Information").
The response shapes are what NVIDIA's own client parses (NVIDIA/bare-metal-manager-core,
crates/api/src/ib/ufmclient; its tests hold recorded UFM answers): list answers keyed by
``0x<hex>`` without padding, GUIDs as 16 lowercase hex digits without ``0x``, the management key
named ``management`` with top-level ``"index0": false, "membership": "limited"`` (UFM 6.19+), an
API-made key named ``api_pkey_0x<hex>``, ``qos_conf`` as ``{"mtu_limit": 4, "rate_limit": 200,
"service_level": 0}`` (management: 2, 2.5, 0), an unknown key answered 200 ``{}`` ("UFM in some
cases does not return a 404"), a bare GET answering a different (list) shape, guids_data and
qos_conf not supported together (NVIDIA bug 5409095; this lab answers both anyway), mtu_limit
"one of 2k or 4k" and the rate_limit values 2.5, 10, 30, 5, 20, 40, 60, 80, 120, 14, 56, 112,
168, 25, 100, 200, 300 (its comments). ``Authorization: Basic <token>`` under /ufmRestV3 is what
that client, Mellanox/ufm_sdk_3.0's scripts and fabiendupont/nvidia-ufm-api send. Removing a
GUID that is not in the key is a no-op per NVIDIA's config-manager workflow documentation
(ib-pkey-member-delete).

Lab assumptions (not verified against a real UFM): error bodies are ``{"error": MESSAGE}``;
creating a key that exists is 400; DELETE of an unknown key is 404 and of 0x7fff is 400; PUT on
a missing key creates it; POST/PUT with ``partition_name`` renames the key; a POST/PUT without
``ip_over_ib`` leaves the key's setting as it was; a POST of a GUID the key holds sets its
membership; refused credentials are 401; mutations answer 200 with an empty body; a new key's
QoS defaults to the management key's (mtu_limit 2, rate_limit 2.5, service_level 0); the
rate_limit list being IBTA rate codes 2-18 in order is this lab's reading of it.

Faults, from constructor/CLI flags and a JSON control file re-read whenever it changes (checked
at every request and every half second): ``{"error_500": true | N | [K, ...], "slow":
SECONDS, "auth_fail": true}`` (the file's keys override the flags; invalid content is logged and
the faults stay as they were; requests are counted from the file's last change):

  error_500  --fault 500 | 500:N  HTTP 500 for every request, for the next N requests, or (file
                                  only) for the K-th requests: a failure midway through a batch.
                                  Nothing is changed by a request answered 500.
  slow       --fault slow --delay S  S seconds (default 5) before each answer
  auth_fail  --fault auth         every credential and token is refused (401)

It must never listen anywhere but 127.0.0.1, accept a request without the configured login or
token, or change its state for a request it answered with an error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from provisiond.lab.control import WatchedJson

log = logging.getLogger("provisiond.lab.ufm")

ADDRESS = "127.0.0.1"
BASIC_PREFIX = "/ufmRest"
TOKEN_PREFIX = "/ufmRestV3"
DEFAULT_USERNAME = "admin"
DEFAULT_PASSWORD = "123456"  # UFM's factory login
MANAGEMENT_PKEY = 0x7FFF
CONTROL_POLL_SECONDS = 0.5
DEFAULT_SLOW_SECONDS = 5.0
MAX_SLOW_SECONDS = 600.0
MAX_LOGGED_REQUESTS = 100_000
MAX_GUIDS_PER_REQUEST = 10_000
VERSION = "6.19.0 (provisiond lab)"
MEMBERSHIPS = ("full", "limited")
MTU_LIMITS = frozenset({2, 4})  # 2048 and 4096 bytes
# Gb/s of IBTA static rate codes 2..18, the values UFM's rate_limit documents
RATE_LIMITS = frozenset({2.5, 10, 30, 5, 20, 40, 60, 80, 120, 14, 56, 112, 168, 25, 100, 200, 300})
_PKEY = re.compile(r"^0[xX]([0-9a-fA-F]{1,4})$")
_GUID = re.compile(r"^(?:0[xX])?([0-9a-fA-F]{1,16})$")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_TRUE = frozenset({"true", "1", "yes"})


class BadRequest(Exception):
    """Input UFM would refuse: answered 400 with the message."""


class NotFoundError(Exception):
    """A key that does not exist, where UFM answers 404."""


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Faults:
    error_500: bool | int | tuple[int, ...] = False
    slow: float = 0.0
    auth_fail: bool = False

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Faults:
        unknown = set(raw) - {"error_500", "slow", "auth_fail"}
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        err = raw.get("error_500", False)
        if isinstance(err, list | tuple):
            if not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in err):
                raise ValueError(f"error_500 as a list holds request numbers >= 1, got {err!r}")
            err = tuple(sorted(set(err)))
        elif not isinstance(err, bool) and (not isinstance(err, int) or err < 0):
            raise ValueError(f"error_500 must be true, false, a count >= 0 or a list, got {err!r}")
        slow = raw.get("slow") or 0.0
        if isinstance(slow, bool) or not isinstance(slow, int | float):
            raise ValueError(f"slow must be seconds, got {slow!r}")
        if not 0 <= slow <= MAX_SLOW_SECONDS:
            raise ValueError(f"slow must be 0-{MAX_SLOW_SECONDS:g} seconds, got {slow!r}")
        auth = raw.get("auth_fail", False)
        if not isinstance(auth, bool):
            raise ValueError(f"auth_fail must be true or false, got {auth!r}")
        return cls(error_500=err, slow=float(slow), auth_fail=auth)


def parse_fault_flags(faults: list[str], delay: float | None = None) -> dict[str, Any]:
    """``--fault 500|500:N|slow|auth`` (repeatable) and ``--delay S`` -> control-file form;
    ValueError for anything else. ``--delay`` alone means ``slow``."""
    out: dict[str, Any] = {}
    for spec in faults:
        name, _, value = spec.strip().partition(":")
        if name == "500" and not value:
            out["error_500"] = True
        elif name == "500" and value.isdigit():
            out["error_500"] = int(value)
        elif name == "slow" and not value:
            out["slow"] = DEFAULT_SLOW_SECONDS if delay is None else delay
        elif name == "auth" and not value:
            out["auth_fail"] = True
        else:
            raise ValueError(f"--fault {spec!r}: expected 500, 500:N, slow or auth")
    if delay is not None:
        out["slow"] = delay
    Faults.parse(out)
    return out


class FaultSource:
    """The lab's faults: the flags, overridden by the control file's keys. A count of 500s
    starts over whenever the faults change."""

    def __init__(self, flags: Mapping[str, Any], control: Path | None) -> None:
        self.flags = dict(flags)
        self.control = control
        self.faults = Faults.parse(self.flags)
        self._watch = WatchedJson(control)
        self._counted = 0  # requests since the faults were last set

    def current(self) -> Faults:
        try:
            data = self._watch.changed()
            if data is None:
                return self.faults
            faults = Faults.parse({**self.flags, **data})
        except (OSError, ValueError) as exc:
            log.error("lab ufm: %s: %s (faults unchanged)", self.control, exc)
            return self.faults
        if faults != self.faults:
            log.info("lab ufm: faults from %s applied: %s", self.control, faults)
        self.faults = faults
        self._counted = 0
        return faults

    def fail_this_request(self) -> bool:
        """Whether the request being answered gets a 500 (counts it)."""
        err = self.current().error_500
        self._counted += 1
        if isinstance(err, bool):
            return err
        if isinstance(err, int):
            return self._counted <= err
        return self._counted in err


# --------------------------------------------------------------------------- state


@dataclass
class LabMember:
    membership: str
    index0: bool


@dataclass
class LabPkey:
    pkey: int
    name: str
    ip_over_ib: bool = True
    index0: bool = False
    mtu_limit: int = 2
    service_level: int = 0
    rate_limit: float = 2.5
    # port GUID as UFM writes it (16 lowercase hex digits, no 0x) -> membership
    members: dict[str, LabMember] = field(default_factory=dict)


@dataclass
class LabUfmState:
    """Everything the lab UFM holds, plus ``requests``: ``METHOD /path?query`` of every request
    that reached it (faulted and refused ones too), oldest first."""

    pkeys: dict[int, LabPkey] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    @classmethod
    def fresh(cls) -> LabUfmState:
        management = LabPkey(MANAGEMENT_PKEY, "management", ip_over_ib=True, index0=False)
        return cls(pkeys={MANAGEMENT_PKEY: management})

    def memberships(self, pkey: int) -> dict[str, str]:
        """Members of ``pkey`` as ``{"0x0002c90300001003": "full"}`` (empty if no such key)."""
        held = self.pkeys.get(pkey)
        if held is None:
            return {}
        return {f"0x{g}": m.membership for g, m in sorted(held.members.items())}

    def mutations(self) -> list[str]:
        """The logged requests that were not reads."""
        return [r for r in self.requests if not r.startswith("GET ")]

    def log(self, line: str) -> None:
        if len(self.requests) >= MAX_LOGGED_REQUESTS:
            del self.requests[: MAX_LOGGED_REQUESTS // 10]
        self.requests.append(line)


def pkey_text(pkey: int) -> str:
    """A key as UFM writes it in answers: ``0x101`` (no padding)."""
    return f"0x{pkey:x}"


def parse_pkey(value: Any, *, management_ok: bool = False) -> int:
    """``"0x12"`` -> 0x12; BadRequest unless a hex string between 0x0 and 0x7fff exclusive
    (0x7fff itself where ``management_ok``)."""
    m = _PKEY.match(value) if isinstance(value, str) else None
    number = int(m.group(1), 16) if m else -1
    top = MANAGEMENT_PKEY if management_ok else MANAGEMENT_PKEY - 1
    if not 0 < number <= top:
        raise BadRequest(
            f"Invalid pkey {value!r}: expected a hexadecimal string between 0x0 and 0x7fff "
            "(exclusive)"
        )
    return number


def parse_guid(value: Any) -> str:
    """A port GUID as UFM stores it (16 lowercase hex digits, no 0x); BadRequest otherwise."""
    m = _GUID.match(value) if isinstance(value, str) and 16 <= len(value) <= 20 else None
    if m is None or int(m.group(1), 16) == 0:
        raise BadRequest(
            f"Invalid GUID {value!r}: expected a hexadecimal string of 16 to 20 characters"
        )
    return f"{int(m.group(1), 16):016x}"


def parse_guid_list(value: Any) -> list[str]:
    """The GUIDs of a request (duplicates dropped, order kept); BadRequest if none or bad."""
    if not isinstance(value, list) or not value:
        raise BadRequest("'guids' is mandatory: a non-empty list of port GUIDs")
    if len(value) > MAX_GUIDS_PER_REQUEST:
        raise BadRequest(f"too many GUIDs in one request (at most {MAX_GUIDS_PER_REQUEST})")
    return list(dict.fromkeys(parse_guid(v) for v in value))


def _bool(body: Mapping[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"'{key}' must be a boolean (true/false), got {value!r}")
    return value


def _members(body: Mapping[str, Any]) -> dict[str, str]:
    """GUID -> membership of a request, from ``guids`` and ``membership`` or ``memberships``
    (a GUID given twice: its last membership)."""
    raw = body.get("guids")
    parse_guid_list(raw)
    if not isinstance(raw, list):  # parse_guid_list refused it already; this narrows the type
        raise BadRequest("'guids' must be a list")
    if "membership" in body and "memberships" in body:
        raise BadRequest("'membership' and 'memberships' conflict: send one of them")
    if "memberships" in body:
        many = body["memberships"]
        if not isinstance(many, list) or len(many) != len(raw):
            raise BadRequest("'memberships' must be a list as long as 'guids'")
        memberships = list(many)
    else:
        memberships = [body.get("membership", "full")] * len(raw)
    for m in memberships:
        if m not in MEMBERSHIPS:
            raise BadRequest(f"Invalid membership {m!r}: expected 'full' or 'limited'")
    return {parse_guid(g): str(m) for g, m in zip(raw, memberships, strict=True)}


def _name(body: Mapping[str, Any]) -> str | None:
    name = body.get("partition_name")
    if name is None:
        return None
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadRequest(f"Invalid partition_name {name!r}: 1-64 characters of A-Z a-z 0-9 _ . -")
    return name


def _qos(body: Mapping[str, Any], held: LabPkey) -> tuple[int, int, float]:
    mtu = body.get("mtu_limit", held.mtu_limit)
    if isinstance(mtu, bool) or mtu not in MTU_LIMITS:
        raise BadRequest(f"Invalid mtu_limit {mtu!r}: expected 2 (2K) or 4 (4K)")
    sl = body.get("service_level", held.service_level)
    if isinstance(sl, bool) or not isinstance(sl, int) or not 0 <= sl <= 15:
        raise BadRequest(f"Invalid service_level {sl!r}: expected 0-15")
    rate = body.get("rate_limit", held.rate_limit)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate not in RATE_LIMITS:
        allowed = ", ".join(f"{r:g}" for r in sorted(RATE_LIMITS))
        raise BadRequest(f"Invalid rate_limit {rate!r}: expected one of {allowed}")
    return int(mtu), sl, float(rate)


def _entry(held: LabPkey, *, guids: bool, qos: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"partition": held.name, "ip_over_ib": held.ip_over_ib}
    if guids:
        out["guids"] = [
            {"guid": g, "membership": m.membership, "index0": m.index0}
            for g, m in sorted(held.members.items())
        ]
        if held.pkey == MANAGEMENT_PKEY:
            # UFM 6.19+ reports the default key's own membership and index0
            out["index0"] = held.index0
            out["membership"] = "limited"
    if qos:
        out["qos_conf"] = {
            "mtu_limit": held.mtu_limit,
            "service_level": held.service_level,
            "rate_limit": held.rate_limit,
        }
    return out


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in _TRUE


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Request body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    return body


def _ok() -> web.Response:
    return web.Response(status=200)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


# --------------------------------------------------------------------------- the server

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LabUfm:
    """One lab UFM. ``state`` is live: tests read it, and may seed it before requests."""

    def __init__(
        self,
        *,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        token: str | None = None,
        faults: Mapping[str, Any] | None = None,
        control: Path | None = None,
    ) -> None:
        if not username or not password:
            raise ValueError("the lab UFM needs a username and a password")
        if token is not None and (not token or any(c.isspace() for c in token)):
            raise ValueError("a token is one word of printable characters")
        self.username = username
        self.password = password
        self.token = token
        self.address = ADDRESS  # never anywhere else
        self.faults = FaultSource(faults or {}, control)
        self.state = LabUfmState.fresh()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        for prefix in (BASIC_PREFIX, TOKEN_PREFIX):
            r = app.router
            r.add_get(f"{prefix}/app/ufm_version", self._version)
            r.add_get(f"{prefix}/resources/pkeys", self._list)
            r.add_post(f"{prefix}/resources/pkeys/add", self._add)
            r.add_put(f"{prefix}/resources/pkeys/qos_conf", self._set_qos)
            for path in (f"{prefix}/resources/pkeys", f"{prefix}/resources/pkeys/"):
                r.add_post(path, self._add_guids)
                r.add_put(path, self._set_guids)
            r.add_get(f"{prefix}/resources/pkeys/{{pkey}}", self._get)
            r.add_delete(f"{prefix}/resources/pkeys/{{pkey}}", self._delete)
            r.add_delete(f"{prefix}/resources/pkeys/{{pkey}}/guids/{{guids}}", self._remove_guids)
        return app

    async def start(self, port: int = 0) -> int:
        """Serve on ``address``:``port`` (0: any free port); returns the port."""
        if self._runner is not None:
            raise RuntimeError("the lab UFM is already started")
        self._closing.clear()
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.address, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        self._closing.set()  # slow answers in flight end now
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ------------------------------------------------------------------ gate

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.state.log(f"{request.method} {request.path_qs}")
        faults = self.faults.current()
        if faults.slow:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), faults.slow)
        if self.faults.fail_this_request():
            return _error(500, "Internal Server Error (lab fault)")
        path = request.path
        if path.startswith(TOKEN_PREFIX + "/"):
            allowed = self._token_ok(request)
        elif path.startswith(BASIC_PREFIX + "/"):
            allowed = self._basic_ok(request)
        else:
            return _error(404, f"Not Found: {path}")
        if faults.auth_fail or not allowed:
            return web.json_response(
                {"error": "Unauthorized"},
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="UFM"'},
            )
        try:
            return await handler(request)
        except BadRequest as exc:
            return _error(400, str(exc))
        except NotFoundError as exc:
            return _error(404, str(exc))

    def _basic_ok(self, request: web.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            login, sep, password = base64.b64decode(value.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        # both compared, always: the time taken says nothing about which one was wrong
        return (
            bool(sep)
            & hmac.compare_digest(login, self.username.encode())
            & (hmac.compare_digest(password, self.password.encode()))
        )

    def _token_ok(self, request: web.Request) -> bool:
        if self.token is None:
            return False
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "basic" and hmac.compare_digest(
            value.strip().encode(), self.token.encode()
        )

    # ------------------------------------------------------------------ handlers

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"ufm_release_version": VERSION})

    async def _list(self, request: web.Request) -> web.Response:
        guids, qos = _flag(request, "guids_data"), _flag(request, "qos_conf")
        pkeys = sorted(self.state.pkeys)
        if not guids and not qos:
            return web.json_response([pkey_text(p) for p in pkeys])
        return web.json_response(
            {pkey_text(p): _entry(self.state.pkeys[p], guids=guids, qos=qos) for p in pkeys}
        )

    async def _get(self, request: web.Request) -> web.Response:
        pkey = parse_pkey(request.match_info["pkey"], management_ok=True)
        held = self.state.pkeys.get(pkey)
        if held is None:
            return web.json_response({})
        return web.json_response(
            _entry(held, guids=_flag(request, "guids_data"), qos=_flag(request, "qos_conf"))
        )

    async def _add(self, request: web.Request) -> web.Response:
        body = await _body(request)
        pkey = parse_pkey(body.get("pkey"))
        if pkey in self.state.pkeys:
            raise BadRequest(f"PKey {pkey_text(pkey)} already exists")
        name = _name(body) or f"api_pkey_{pkey_text(pkey)}"
        held = LabPkey(pkey, name)
        index0, ipoib = _bool(body, "index0"), _bool(body, "ip_over_ib")
        held.mtu_limit, held.service_level, held.rate_limit = _qos(body, held)
        held.index0 = bool(index0)
        held.ip_over_ib = True if ipoib is None else ipoib
        self.state.pkeys[pkey] = held
        log.info("lab ufm: created %s (%s)", pkey_text(pkey), name)
        return _ok()

    async def _add_guids(self, request: web.Request) -> web.Response:
        return await self._put_members(request, replace=False)

    async def _set_guids(self, request: web.Request) -> web.Response:
        return await self._put_members(request, replace=True)

    async def _put_members(self, request: web.Request, *, replace: bool) -> web.Response:
        body = await _body(request)
        pkey = parse_pkey(body.get("pkey"))
        members = _members(body)
        index0, ipoib, name = _bool(body, "index0"), _bool(body, "ip_over_ib"), _name(body)
        held = self.state.pkeys.get(pkey)
        if held is None:
            held = LabPkey(pkey, name or f"api_pkey_{pkey_text(pkey)}", index0=bool(index0))
        if name is not None:
            held.name = name
        if ipoib is not None:
            held.ip_over_ib = ipoib
        if replace:
            held.members.clear()
        for guid, membership in members.items():
            held.members[guid] = LabMember(membership, bool(index0))
        self.state.pkeys[pkey] = held
        return _ok()

    async def _remove_guids(self, request: web.Request) -> web.Response:
        pkey = parse_pkey(request.match_info["pkey"])
        held = self.state.pkeys.get(pkey)
        if held is None:
            raise NotFoundError(f"PKey {pkey_text(pkey)} not found")
        parts = [g.strip() for g in request.match_info["guids"].split(",") if g.strip()]
        guids = parse_guid_list(parts)
        for guid in guids:
            held.members.pop(guid, None)
        return _ok()

    async def _delete(self, request: web.Request) -> web.Response:
        pkey = parse_pkey(request.match_info["pkey"], management_ok=True)
        if pkey == MANAGEMENT_PKEY:
            raise BadRequest("the management PKey 0x7fff cannot be deleted")
        if self.state.pkeys.pop(pkey, None) is None:
            raise NotFoundError(f"PKey {pkey_text(pkey)} not found")
        log.info("lab ufm: deleted %s", pkey_text(pkey))
        return _ok()

    async def _set_qos(self, request: web.Request) -> web.Response:
        body = await _body(request)
        pkey = parse_pkey(body.get("pkey"))
        held = self.state.pkeys.get(pkey)
        if held is None:
            raise NotFoundError(f"PKey {pkey_text(pkey)} not found")
        held.mtu_limit, held.service_level, held.rate_limit = _qos(body, held)
        return _ok()


# --------------------------------------------------------------------------- run


async def _serve(lab: LabUfm, port: int, ready: Callable[[], None]) -> None:
    await lab.start(port)
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        ready()
        while not stop.is_set():
            lab.faults.current()  # a changed control file is logged even while idle
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CONTROL_POLL_SECONDS)
    finally:
        await lab.stop()


def run(
    port: int,
    *,
    username: str = DEFAULT_USERNAME,
    password: str = DEFAULT_PASSWORD,
    token: str | None = None,
    control: Path | None = None,
    faults: list[str] | None = None,
    delay: float | None = None,
) -> int:
    """`provisiond lab ufm`: serve on 127.0.0.1:``port`` until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not 1 <= port <= 65535:
        print(f"provisiond lab ufm: --port {port} is not a TCP port", file=sys.stderr)
        return 2
    try:
        flags = parse_fault_flags(list(faults or ()), delay)
        lab = LabUfm(
            username=username, password=password, token=token, faults=flags, control=control
        )
    except ValueError as exc:
        print(f"provisiond lab ufm: {exc}", file=sys.stderr)
        return 2

    def ready() -> None:
        tokens = "token auth" if token else "no token: every request refused"
        print(
            f"lab ufm: UFM REST on {lab.url}{BASIC_PREFIX} (user {username!r}) and "
            f"{lab.url}{TOKEN_PREFIX} ({tokens}), pid {os.getpid()} ready",
            flush=True,
        )

    try:
        asyncio.run(_serve(lab, port, ready))
    except OSError as exc:
        print(f"provisiond lab ufm: cannot listen on {ADDRESS}:{port}: {exc}", file=sys.stderr)
        return 2
    return 0


__all__ = [
    "BASIC_PREFIX",
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "MANAGEMENT_PKEY",
    "TOKEN_PREFIX",
    "FaultSource",
    "Faults",
    "LabMember",
    "LabPkey",
    "LabUfm",
    "LabUfmState",
    "parse_fault_flags",
    "run",
]
