"""The UFM fabric driver: makes NVIDIA UFM Enterprise hold exactly the desired tenant P_Keys
through its REST API, sending only the difference.

Settings: ``url`` (``https://ufm.example`` or ``http://127.0.0.1:8443``), ``auth`` ``"basic"``
(``username``, ``password``; requests under /ufmRest) or ``"token"`` (``token``; requests under
/ufmRestV3 with ``Authorization: Basic <token>``), optional ``timeout`` (seconds per request,
default 10), ``verify_tls`` (default true) and ``partition_names`` (default true: send each
partition's name as ``partition_name``, which UFM takes from 6.22 on; false for an older UFM,
which names API keys ``api_pkey_0x<hex>`` itself: names are then neither sent nor compared).

One apply: validate the plan (base.check_plan plus what UFM cannot express, below), read what
UFM holds (``GET /resources/pkeys?guids_data=true`` and ``?qos_conf=true``: UFM does not
support both in one request, NVIDIA bug 5409095 as NVIDIA's own client notes), compute the
requests (pure: ``plan_requests``), send them in this order, then read back and require that
UFM now holds the plan:

1. removals: ``DELETE /resources/pkeys/<pkey>`` for every key UFM holds that is not desired
   (never 0x7fff, which the driver neither reads as a tenant key nor touches), and ``DELETE
   /resources/pkeys/<pkey>/guids/<g1>,<g2>`` for members leaving a key. Removals go first so a
   port moving between tenants is never in both keys at once, and a port's P_Key table never
   holds more than the larger of the old and the new set;
2. ``POST /resources/pkeys/add`` for new keys, with name, index0, ip_over_ib and QoS;
3. changes of a key's name, ip_over_ib or index0: ``PUT /resources/pkeys`` with the whole
   member list (UFM keeps ip_over_ib per key and index0 per member; PUT sets both and replaces
   the members in one request). A key that is to have no members is deleted and added again
   instead (nothing to disrupt; PUT needs GUIDs). MTU, rate and SL changes: ``PUT
   /resources/pkeys/qos_conf`` (whether a running IPoIB group picks them up at once is not
   verified: a third-party client notes that UFM needs a restart for QoS changes);
4. members joining a key or changing membership: ``POST /resources/pkeys`` per membership
   (UFM sets the membership of a GUID it already holds to the posted one).

Values as UFM writes them: keys ``0x101``, GUIDs 16 hex digits without ``0x``; ``mtu_limit``
2 or 4 (2048 or 4096 bytes: IBTA MTU codes 4 and 5; a plan with codes 1-3 is refused);
``rate_limit`` in Gb/s, the values of IBTA rate codes 2-18 (2.5-300; codes 19-22 are refused).
A partition without ``mtu``/``rate``/``sl`` gets OpenSM's defaults, sent explicitly: mtu 4
(2048), rate 3 (10 Gb/s), sl 0, so both fabric drivers mean the same thing. UFM always holds a
value, so ``read`` and ``Plan.partitions`` report a value equal to its default as None (then a
partition that names none reads back equal to itself), and ``ApplyResult.observed`` is written
in the plan's own terms (an explicit ``mtu=4`` stays 4). UFM does not report index0 for a key
without members: the plan's value is taken (``read`` alone says True, the Partition default).

Failures: unreachable, timed out or 5xx -> FabricError(transient=True) naming the URL; 401/403
-> FabricError saying the credentials were refused; any other 4xx -> FabricError naming the
request and UFM's message; a read-back that differs from the plan -> FabricError listing what
differs. REST has no transaction: when a failure comes after the first change was tried, the
driver reads UFM again and sends what makes it hold what it held before (best effort, once; the
error says whether that worked). If the roll-back fails too, UFM holds part of the plan, every
step of which moved towards it in the order above, and the next apply sends what is missing.
This module never sends a request for 0x7fff.

Where the API facts come from, and which are assumptions: provisiond/lab/ufm.py's docstring.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from drivers.fabric.base import (
    DEFAULT_PKEY,
    DEFAULT_PORT_KEY_LIMIT,
    MEMBERSHIPS,
    PKEY_MAX,
    PKEY_MIN,
    ApplyResult,
    FabricDriver,
    FabricError,
    Partition,
    Plan,
    PlanError,
    ReadBack,
    diff_partitions,
    ensure_plan,
    format_pkey,
    normalize_guid,
    parse_pkey,
)
from provisiond.errors import ConfigError, FieldProblem

log = logging.getLogger("drivers.fabric.ufm")

BASIC_PREFIX = "/ufmRest"
TOKEN_PREFIX = "/ufmRestV3"
PKEYS = "/resources/pkeys"
DEFAULT_TIMEOUT = 10.0
# IBTA MTU code -> UFM mtu_limit (2 = 2K, 4 = 4K: the only two UFM documents)
UFM_MTU = {4: 2, 5: 4}
# IBTA static rate code -> UFM rate_limit in Gb/s (UFM's documented list is codes 2-18 in order)
UFM_RATE: dict[int, float] = {
    2: 2.5,
    3: 10,
    4: 30,
    5: 5,
    6: 20,
    7: 40,
    8: 60,
    9: 80,
    10: 120,
    11: 14,
    12: 56,
    13: 112,
    14: 168,
    15: 25,
    16: 100,
    17: 200,
    18: 300,
}
MTU_FROM_UFM = {v: k for k, v in UFM_MTU.items()}
RATE_FROM_UFM = {v: k for k, v in UFM_RATE.items()}
# OpenSM's defaults for a partition that names none (partition-config.txt)
DEFAULT_MTU, DEFAULT_RATE, DEFAULT_SL = 4, 3, 0
# GUIDs per DELETE (they go into the URL path: keep it well under common 8 KiB line limits)
DELETE_BATCH = 128
# GUIDs per POST body
POST_BATCH = 1000
MAX_MESSAGE = 300
_SETTINGS = frozenset(
    {"url", "auth", "username", "password", "token", "timeout", "verify_tls", "partition_names"}
)


# --------------------------------------------------------------------------- pure parts


@dataclass(frozen=True)
class UfmRequest:
    """One request to UFM: method, path under the API prefix, the key it is about, JSON body."""

    method: str
    path: str
    pkey: int
    body: Mapping[str, Any] | None = None

    def describe(self, prefix: str) -> str:
        return f"{self.method} {prefix}{self.path} {format_pkey(self.pkey)}"


@dataclass(frozen=True)
class Holdings:
    """What UFM holds, as read: its tenant partitions, what looked wrong, and the keys whose
    index0 UFM did not report (no members)."""

    partitions: tuple[Partition, ...]
    problems: tuple[str, ...] = ()
    index0_unknown: frozenset[int] = frozenset()


def ufm_pkey(pkey: int) -> str:
    """A key as UFM writes it: ``0x101``."""
    return f"0x{pkey:x}"


def ufm_guid(guid: str) -> str:
    """A port GUID as UFM writes it: 16 lowercase hex digits, no ``0x``."""
    return normalize_guid(guid)[2:]


def effective(p: Partition) -> Partition:
    """``p`` with OpenSM's defaults made explicit (UFM always holds a value)."""
    return replace(
        p,
        mtu=DEFAULT_MTU if p.mtu is None else p.mtu,
        rate=DEFAULT_RATE if p.rate is None else p.rate,
        sl=DEFAULT_SL if p.sl is None else p.sl,
    )


def canonical(p: Partition) -> Partition:
    """``p`` as this driver reports it: an mtu, rate or sl equal to the default it stands for
    is None, so that a partition that names none reads back equal to itself."""
    e = effective(p)
    return replace(
        p,
        mtu=None if e.mtu == DEFAULT_MTU else e.mtu,
        rate=None if e.rate == DEFAULT_RATE else e.rate,
        sl=None if e.sl == DEFAULT_SL else e.sl,
    )


def as_desired(
    observed: Sequence[Partition],
    holdings: Holdings,
    desired: Sequence[Partition],
    *,
    names: bool = True,
) -> tuple[Partition, ...]:
    """``observed`` (canonical) written the way ``desired`` says the same thing: an explicit
    default where the plan names one, the plan's index0 where UFM reports none (no members),
    the plan's name where names are not this UFM's business. Only the form changes: a value
    UFM holds differently from the plan stays as UFM holds it."""
    want = {p.pkey: p for p in desired}
    out: list[Partition] = []
    for p in observed:
        d = want.get(p.pkey)
        if d is not None:
            same = canonical(d)
            p = replace(
                p,
                mtu=d.mtu if p.mtu == same.mtu else p.mtu,
                rate=d.rate if p.rate == same.rate else p.rate,
                sl=d.sl if p.sl == same.sl else p.sl,
                index0=d.index0 if p.pkey in holdings.index0_unknown else p.index0,
                name=p.name if names else d.name,
            )
        out.append(p)
    return tuple(out)


def ufm_problems(partitions: Sequence[Partition]) -> list[FieldProblem]:
    """What UFM cannot hold as asked (on top of base.check_plan)."""
    problems: list[FieldProblem] = []
    for p in map(effective, partitions):
        where = f"partitions[{format_pkey(p.pkey)}]"
        if p.mtu not in UFM_MTU:
            problems.append(
                FieldProblem(
                    f"{where}.mtu",
                    "UFM sets an IPoIB MTU of 2048 or 4096 bytes only: mtu 4 or 5",
                    value=p.mtu,
                )
            )
        if p.rate not in UFM_RATE:
            problems.append(
                FieldProblem(
                    f"{where}.rate",
                    "UFM's rate_limit takes IBTA rate codes 2-18 (2.5-300 Gb/s) only",
                    value=p.rate,
                )
            )
    return problems


def parse_holdings(guids_data: Any, qos_data: Any) -> Holdings:
    """UFM's answers to ``GET /resources/pkeys?guids_data=true`` and ``?qos_conf=true`` ->
    what it holds (0x7fff left out). ValueError for answers of the wrong shape."""
    if not isinstance(guids_data, dict) or not isinstance(qos_data, dict):
        raise ValueError("expected JSON objects keyed by P_Key")
    qos_by_pkey: dict[int, Any] = {}
    for key, entry in qos_data.items():
        with_key = _pkey_of(key)
        if with_key is not None and isinstance(entry, dict):
            qos_by_pkey[with_key] = entry.get("qos_conf")
    partitions: list[Partition] = []
    problems: list[str] = []
    unknown: set[int] = set()
    for key, entry in guids_data.items():
        pkey = _pkey_of(key)
        if pkey is None:
            problems.append(f"UFM holds a key this driver cannot read: {key!r}")
            continue
        if pkey == DEFAULT_PKEY:
            continue
        if not isinstance(entry, dict):
            problems.append(f"{format_pkey(pkey)}: unexpected entry {entry!r}")
            continue
        where = format_pkey(pkey)
        members: dict[str, str] = {}
        index0s: set[bool] = set()
        for item in entry.get("guids") or ():
            try:
                guid = normalize_guid(str(item["guid"]))
            except (KeyError, TypeError, ValueError):
                problems.append(f"{where}: member without a readable GUID: {item!r}")
                continue
            membership = item.get("membership")
            if membership not in MEMBERSHIPS:
                problems.append(f"{where}: {guid} has membership {membership!r}")
            members[guid] = str(membership)
            index0s.add(item.get("index0") is True)
        if len(index0s) > 1:
            problems.append(f"{where}: index0 differs between members")
        if index0s:
            index0 = all(index0s)
        elif isinstance(entry.get("index0"), bool):
            index0 = entry["index0"]
        else:
            index0 = True
            unknown.add(pkey)
        mtu, rate, sl = _qos_codes(where, qos_by_pkey.get(pkey), problems)
        partitions.append(
            Partition(
                name=str(entry.get("partition", "")),
                pkey=pkey,
                members=members,
                ipoib=entry.get("ip_over_ib") is True,
                mtu=mtu,
                rate=rate,
                sl=sl,
                index0=index0,
            )
        )
    partitions.sort(key=lambda p: p.pkey)
    return Holdings(tuple(partitions), tuple(problems), frozenset(unknown))


def _pkey_of(key: Any) -> int | None:
    try:
        return parse_pkey(str(key))
    except ValueError:
        return None


def _qos_codes(
    where: str, qos: Any, problems: list[str]
) -> tuple[int | None, int | None, int | None]:
    if not isinstance(qos, dict):
        problems.append(f"{where}: UFM reported no qos_conf")
        return None, None, None
    raw_mtu: Any = qos.get("mtu_limit")
    raw_rate: Any = qos.get("rate_limit")
    mtu = MTU_FROM_UFM.get(raw_mtu) if _number(raw_mtu) else None
    rate = RATE_FROM_UFM.get(raw_rate) if _number(raw_rate) else None
    sl = qos.get("service_level")
    if mtu is None:
        problems.append(f"{where}: unknown mtu_limit {raw_mtu!r}")
    if rate is None:
        problems.append(f"{where}: unknown rate_limit {raw_rate!r}")
    if not isinstance(sl, int) or isinstance(sl, bool):
        problems.append(f"{where}: unknown service_level {sl!r}")
        sl = None
    return mtu, rate, sl


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def comparable(
    holdings: Holdings, desired: Sequence[Partition], *, names: bool = True
) -> tuple[Partition, ...]:
    """UFM's partitions with what it does not report (or, without ``names``, what this UFM
    does not take) filled in from the desired ones, so that equal means "nothing to send"."""
    want = {p.pkey: p for p in desired}
    out: list[Partition] = []
    for p in holdings.partitions:
        w = want.get(p.pkey)
        if w is not None and p.pkey in holdings.index0_unknown:
            p = replace(p, index0=w.index0)
        if w is not None and not names:
            p = replace(p, name=w.name)
        out.append(p)
    return tuple(out)


def plan_requests(
    current: Sequence[Partition], desired: Sequence[Partition], *, names: bool = True
) -> list[UfmRequest]:
    """The requests that make UFM go from ``current`` (``comparable`` output) to ``desired``
    (``effective`` partitions, already checked), in the order they must be sent."""
    cur = {p.pkey: p for p in current if p.pkey != DEFAULT_PKEY}
    want = {p.pkey: p for p in desired if p.pkey != DEFAULT_PKEY}
    removals: list[UfmRequest] = []
    creations: list[UfmRequest] = []
    changes: list[UfmRequest] = []
    grants: list[UfmRequest] = []
    for pkey in sorted(cur.keys() - want.keys()):
        removals.append(UfmRequest("DELETE", f"{PKEYS}/{ufm_pkey(pkey)}", pkey))
    for pkey in sorted(want):
        w, c = want[pkey], cur.get(pkey)
        if c == w:
            continue
        if c is None:
            creations.append(_add(w, names))
            grants += _grants(w, w.members)
            continue
        if (c.name, c.ipoib, c.index0) != (w.name, w.ipoib, w.index0):
            if not w.members:
                removals.append(UfmRequest("DELETE", f"{PKEYS}/{ufm_pkey(pkey)}", pkey))
                creations.append(_add(w, names))
                continue
            changes.append(_set_all(w, names))
        else:
            leaving = sorted(g for g in c.members if g not in w.members)
            for batch in _batches(leaving, DELETE_BATCH):
                guids = ",".join(ufm_guid(g) for g in batch)
                removals.append(
                    UfmRequest("DELETE", f"{PKEYS}/{ufm_pkey(pkey)}/guids/{guids}", pkey)
                )
            joining = {g: m for g, m in w.members.items() if c.members.get(g) != m}
            grants += _grants(w, joining)
        if (c.mtu, c.rate, c.sl) != (w.mtu, w.rate, w.sl):
            changes.append(UfmRequest("PUT", f"{PKEYS}/qos_conf", pkey, _qos_body(w)))
    return removals + creations + changes + grants


def _qos_body(p: Partition) -> dict[str, Any]:
    e = effective(p)  # already is, for every partition a plan holds; this narrows the types
    return {
        "pkey": ufm_pkey(e.pkey),
        "mtu_limit": UFM_MTU[e.mtu or DEFAULT_MTU],
        "service_level": e.sl,
        "rate_limit": UFM_RATE[e.rate or DEFAULT_RATE],
    }


def _add(p: Partition, names: bool) -> UfmRequest:
    body: dict[str, Any] = {"pkey": ufm_pkey(p.pkey)}
    if names:
        body["partition_name"] = p.name
    body.update({"index0": p.index0, "ip_over_ib": p.ipoib})
    body.update({k: v for k, v in _qos_body(p).items() if k != "pkey"})
    return UfmRequest("POST", f"{PKEYS}/add", p.pkey, body)


def _set_all(p: Partition, names: bool) -> UfmRequest:
    guids = list(p.members)
    body: dict[str, Any] = {"pkey": ufm_pkey(p.pkey), "guids": [ufm_guid(g) for g in guids]}
    kinds = set(p.members.values())
    if len(kinds) == 1:
        body["membership"] = kinds.pop()
    else:
        body["memberships"] = [p.members[g] for g in guids]
    body.update({"index0": p.index0, "ip_over_ib": p.ipoib})
    if names:
        body["partition_name"] = p.name
    return UfmRequest("PUT", PKEYS, p.pkey, body)


def _grants(p: Partition, members: Mapping[str, str]) -> list[UfmRequest]:
    out: list[UfmRequest] = []
    for membership in MEMBERSHIPS:
        guids = sorted(g for g, m in members.items() if m == membership)
        for batch in _batches(guids, POST_BATCH):
            body = {
                "pkey": ufm_pkey(p.pkey),
                "guids": [ufm_guid(g) for g in batch],
                "membership": membership,
                "index0": p.index0,
                "ip_over_ib": p.ipoib,
            }
            out.append(UfmRequest("POST", PKEYS, p.pkey, body))
    return out


def _batches(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _message(text: str) -> str:
    """UFM's error message from an error body (JSON ``error``/``message``/``detail`` or text)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message", "detail", "msg"):
            if isinstance(data.get(key), str) and data[key]:
                return str(data[key])[:MAX_MESSAGE]
    flat = " ".join(text.split())
    return flat[:MAX_MESSAGE] or "(empty answer)"


# --------------------------------------------------------------------------- the driver


class UfmDriver(FabricDriver):
    """One UFM's tenant partitions over its REST API (see the module docstring)."""

    name = "ufm"

    def __init__(
        self,
        settings: Mapping[str, Any],
        *,
        port_key_limit: int = DEFAULT_PORT_KEY_LIMIT,
        pkey_range: tuple[int, int] = (PKEY_MIN, PKEY_MAX),
    ) -> None:
        super().__init__(settings, port_key_limit=port_key_limit, pkey_range=pkey_range)
        for key in settings:
            if key not in _SETTINGS:
                raise ConfigError(
                    f"settings.{key}: unknown UFM setting; known: {', '.join(sorted(_SETTINGS))}",
                    key=f"settings.{key}",
                )
        self.url = _url(settings.get("url"))
        auth = settings.get("auth", "token" if "token" in settings else "basic")
        if auth not in ("basic", "token"):
            raise ConfigError("settings.auth: 'basic' or 'token'", key="settings.auth")
        self.auth: str = auth
        self._headers: dict[str, str] = {}
        if auth == "basic":
            username = _word(settings, "username", "with auth 'basic'")
            password = _word(settings, "password", "with auth 'basic'", spaces=True)
            if ":" in username:
                raise ConfigError(
                    "settings.username: a basic-auth user has no ':'", key="settings.username"
                )
            self._headers = {"Authorization": aiohttp.encode_basic_auth(username, password)}
            self.prefix = BASIC_PREFIX
        else:
            token = _word(settings, "token", "with auth 'token'")
            self._headers = {"Authorization": f"Basic {token}"}
            self.prefix = TOKEN_PREFIX
        timeout = settings.get("timeout", DEFAULT_TIMEOUT)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= 600
        ):
            raise ConfigError(
                "settings.timeout: seconds, more than 0 and at most 600", key="settings.timeout"
            )
        self.timeout = float(timeout)
        verify = settings.get("verify_tls", True)
        if not isinstance(verify, bool):
            raise ConfigError("settings.verify_tls: true or false", key="settings.verify_tls")
        self.verify_tls = verify
        names = settings.get("partition_names", True)
        if not isinstance(names, bool):
            raise ConfigError(
                "settings.partition_names: true or false", key="settings.partition_names"
            )
        self.names = names
        self._http: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ contract

    async def validate(self, partitions: Sequence[Partition]) -> Plan:
        want = self._checked(partitions)
        holdings = await self._holdings()
        current = comparable(holdings, want, names=self.names)
        requests = plan_requests(current, want, names=self.names)
        return Plan(
            partitions=tuple(map(canonical, want)),
            diff=diff_partitions(current, want),
            requests=tuple(r.describe(self.prefix) for r in requests),
        )

    @classmethod
    def plan_problems(cls, partitions: Sequence[Partition]) -> list[FieldProblem]:
        return ufm_problems(partitions)

    async def apply(self, partitions: Sequence[Partition], *, force: bool = False) -> ApplyResult:
        # force changes nothing here: every apply compares with what UFM holds now
        want = self._checked(partitions)
        async with self._lock:
            holdings = before = await self._holdings()
            current = comparable(holdings, want, names=self.names)
            requests = plan_requests(current, want, names=self.names)
            diff = diff_partitions(current, want)
            sent: list[str] = []
            try:
                for request in requests:
                    sent.append(request.describe(self.prefix))
                    await self._send(request)
                if sent:
                    log.info("ufm %s: sent %d request(s): %s", self.url, len(sent), "; ".join(diff))
                    holdings = await self._holdings()
                self._check_holds(holdings, want, len(sent))
            except FabricError as exc:
                if not sent:
                    raise
                # a request that failed may have been carried out all the same (a timeout)
                note = await self._roll_back(before)
                raise FabricError(
                    f"{exc.message} ({len(sent)} of {len(requests)} request(s) tried; {note})",
                    transient=exc.transient,
                ) from exc
        observed = as_desired(
            tuple(map(canonical, holdings.partitions)), holdings, partitions, names=self.names
        )
        return ApplyResult(
            diff=diff, observed=ReadBack(observed, holdings.problems), requests=tuple(sent)
        )

    def _check_holds(self, holdings: Holdings, want: Sequence[Partition], sent: int) -> None:
        left = diff_partitions(comparable(holdings, want, names=self.names), want)
        if not left:
            return
        hint = ""
        if self.names and any(" options " in line for line in left):
            hint = " (a UFM before 6.22 ignores partition_name: partition_names = false)"
        raise FabricError(
            f"UFM {self.url} does not hold the plan after {sent} request(s): "
            + "; ".join(left)
            + hint
        )

    async def _roll_back(self, before: Holdings) -> str:
        """Best effort: send what makes UFM hold ``before`` again; says how it went."""
        back = tuple(effective(p) for p in before.partitions)
        undo: list[UfmRequest] = []
        try:
            now = await self._holdings()
            undo = plan_requests(comparable(now, back, names=self.names), back, names=self.names)
            for request in undo:
                await self._send(request)
        except FabricError as exc:
            log.error("ufm %s: roll-back failed: %s", self.url, exc.message)
            return (
                f"the roll-back failed too ({exc.message}): UFM holds part of the plan, the "
                "next apply sends what is missing"
            )
        log.warning("ufm %s: rolled back with %d request(s)", self.url, len(undo))
        return f"rolled back with {len(undo)} request(s): UFM holds what it held before"

    def comparable(self, partitions: Iterable[Partition]) -> list[Partition]:
        """Defaults made None (UFM always holds one), index0 of a key without members ignored
        (UFM keeps it per member), names ignored when this UFM does not keep them."""
        out = []
        for p in map(canonical, partitions):
            if not p.members:
                p = replace(p, index0=True)
            if not self.names:
                p = replace(p, name="-")
            out.append(p)
        return out

    async def read(self) -> ReadBack:
        holdings = await self._holdings()
        return ReadBack(tuple(map(canonical, holdings.partitions)), holdings.problems)

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    # ------------------------------------------------------------------ plan

    def _checked(self, partitions: Sequence[Partition]) -> tuple[Partition, ...]:
        ensure_plan(partitions, port_key_limit=self.port_key_limit)
        problems = ufm_problems(partitions)
        if problems:
            raise PlanError(f"partition plan refused ({len(problems)} problems)", problems)
        return tuple(sorted(map(effective, partitions), key=lambda p: p.pkey))

    # ------------------------------------------------------------------ transport

    async def _holdings(self) -> Holdings:
        guids = await self._call("GET", PKEYS, params={"guids_data": "true"})
        qos = await self._call("GET", PKEYS, params={"qos_conf": "true"})
        try:
            held = parse_holdings(guids, qos)
        except ValueError as exc:
            raise FabricError(
                f"UFM {self.url}: unexpected answer to GET {self.prefix}{PKEYS}: {exc}"
            ) from exc
        # keys outside this fabric's range are someone else's: never read as ours, never removed
        lo, hi = self.pkey_range
        return replace(held, partitions=tuple(p for p in held.partitions if lo <= p.pkey <= hi))

    async def _send(self, request: UfmRequest) -> None:
        await self._call(
            request.method, request.path, body=request.body, what=format_pkey(request.pkey)
        )

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(ssl=self.verify_tls),
                headers=self._headers,
            )
        return self._http

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        what: str = "",
    ) -> Any:
        request = f"{method} {self.prefix}{path}" + (f" ({what})" if what else "")
        try:
            async with self._session().request(
                method,
                f"{self.url}{self.prefix}{path}",
                params=params,
                json=body,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                text = await resp.text(errors="replace")
        except TimeoutError as exc:
            raise FabricError(
                f"UFM {self.url}: {request} timed out after {self.timeout:g} s", transient=True
            ) from exc
        except aiohttp.ClientError as exc:
            raise FabricError(
                f"UFM {self.url} unreachable: {request}: {exc}", transient=True
            ) from exc
        if status in (401, 403):
            raise FabricError(
                f"UFM {self.url} refused the credentials ({self.auth} auth, HTTP {status}) "
                f"for {request}",
                transient=False,
            )
        if status >= 500:
            raise FabricError(
                f"UFM {self.url} failed {request}: HTTP {status}: {_message(text)}",
                transient=True,
            )
        if status >= 300:
            raise FabricError(
                f"UFM {self.url} refused {request}: HTTP {status}: {_message(text)}",
                transient=False,
            )
        if method != "GET":
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise FabricError(
                f"UFM {self.url}: {request} answered {status} with no JSON "
                f"(a login page? check url and auth): {_message(text)}"
            ) from exc


def _word(settings: Mapping[str, Any], key: str, why: str, *, spaces: bool = False) -> str:
    value = settings.get(key)
    if (
        not isinstance(value, str)
        or not value.strip()
        or (not spaces and any(c.isspace() for c in value))
    ):
        raise ConfigError(
            f"settings.{key}: required {why}: a non-empty string"
            + ("" if spaces else " without spaces"),
            key=f"settings.{key}",
        )
    return value


def _url(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError("settings.url: required, e.g. https://ufm.example", key="settings.url")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"settings.url: an http(s)://host[:port] URL, not {value!r}", key="settings.url"
        )
    if parts.path.rstrip("/") or parts.query or parts.fragment:
        raise ConfigError(
            f"settings.url: give the UFM's base URL without a path ({value!r}); the driver adds "
            "/ufmRest or /ufmRestV3",
            key="settings.url",
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(f"settings.url: {exc}", key="settings.url") from exc
    return f"{parts.scheme}://{parts.netloc}"


__all__ = [
    "Holdings",
    "UfmDriver",
    "UfmRequest",
    "as_desired",
    "canonical",
    "comparable",
    "effective",
    "parse_holdings",
    "plan_requests",
    "ufm_problems",
]
