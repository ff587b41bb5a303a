"""InfiniBand partitions: fabrics, their tenant P_Keys, and the reconciler that makes each
fabric's subnet manager hold exactly the desired set.

A fabric (models.Fabric) names a driver (drivers/fabric: opensm | ufm) and its settings. Its
partitions (models.FabricPartition) are the desired state: PUT/DELETE through the API (later, the
tenancy workflow). Every change bumps the fabric's ``desired_rev``; a pass applies the WHOLE
active set at once through the driver, which reads it back; the pass records what was applied,
what was observed, and an event with the diff.

Rules kept here, not in the drivers:
- a P_Key is allocated from the fabric's range (inside 0x0001-0x7ffe), never 0x7fff, never to two
  partitions, and never again while the subnet manager may still hold it: a removed partition
  stays (``removing``) until a read-back taken after its removal shows its key gone;
- a change that would give a port more keys than its table holds is refused when it is made
  (422), not at apply time;
- the drift check reads the subnet manager back on a timer: a hand edit or OpenSM's fall-back to
  its default configuration is reported (event ``fabric.drift``) and, with ``repair_drift`` (the
  default), put back by the next pass. A fabric nothing was ever applied to is only reported:
  adding a fabric never rewrites a site's partitions until a partition is set or an operator
  forces ``fabric apply``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from drivers.fabric.base import (
    DEFAULT_PORT_KEY_LIMIT,
    MEMBERSHIPS,
    PKEY_MAX,
    PKEY_MIN,
    FabricDriver,
    FabricError,
    Partition,
    PlanError,
    ReadBack,
    check_plan,
    diff_partitions,
    format_pkey,
    normalize_guid,
    parse_pkey,
)
from drivers.fabric.registry import fabric_driver, fabric_driver_class, fabric_driver_names
from provisiond import events, leases
from provisiond.config import FabricSettings
from provisiond.crypto import SecretBox
from provisiond.db import Database
from provisiond.errors import ConfigError, Conflict, FieldProblem, NotFound, ValidationError
from provisiond.loop import ReconcileLoop
from provisiond.models import Fabric, FabricPartition, Tenant, utcnow

if TYPE_CHECKING:
    from provisiond.engine import Engine

log = logging.getLogger(__name__)

PENDING, APPLIED, FAILED, DRIFTED = "pending", "applied", "failed", "drifted"
ACTIVE, REMOVING = "active", "removing"
# driver settings kept encrypted at rest and never shown
SECRET_KEYS = ("password", "token")
_FABRIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


# ---------------------------------------------------------------------- values


@dataclass(frozen=True)
class FabricSpec:
    """A fabric as POST /v1/fabrics gives it, validated."""

    name: str
    driver: str
    settings: Mapping[str, Any]
    pkey_range: tuple[int, int] = (PKEY_MIN, PKEY_MAX)
    port_key_limit: int = DEFAULT_PORT_KEY_LIMIT
    repair_drift: bool = True


@dataclass(frozen=True)
class PartitionSpec:
    """A partition's desired state as PUT gives it (members already normalised)."""

    name: str
    members: Mapping[str, str] = field(default_factory=dict)
    ipoib: bool = False
    mtu: int | None = None
    rate: int | None = None
    sl: int | None = None
    index0: bool = True
    tenant: str | None = None


@dataclass(frozen=True)
class FabricRecord:
    """What a pass needs of a fabric row, secrets decrypted (never stored or logged)."""

    id: int
    name: str
    driver: str
    settings: Mapping[str, Any]
    pkey_range: tuple[int, int]
    port_key_limit: int
    repair_drift: bool

    @classmethod
    def of(cls, f: Fabric, box: SecretBox) -> FabricRecord:
        return cls(
            f.id,
            f.name,
            f.driver,
            reveal(f.settings, box),
            (f.pkey_min, f.pkey_max),
            f.port_key_limit,
            f.repair_drift,
        )

    def driver_instance(self) -> FabricDriver:
        return fabric_driver(
            self.driver,
            self.settings,
            port_key_limit=self.port_key_limit,
            pkey_range=self.pkey_range,
        )


def conceal(settings: Mapping[str, Any], box: SecretBox) -> dict[str, Any]:
    out = {k: v for k, v in settings.items() if k not in SECRET_KEYS}
    for key in SECRET_KEYS:
        if settings.get(key) is not None:
            out[f"{key}_enc"] = box.encrypt(str(settings[key]))
    return out


def reveal(stored: Mapping[str, Any], box: SecretBox) -> dict[str, Any]:
    out = {k: v for k, v in stored.items() if not k.endswith("_enc")}
    for key in SECRET_KEYS:
        if stored.get(f"{key}_enc"):
            out[key] = box.decrypt(stored[f"{key}_enc"])
    return out


def redacted(stored: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in stored.items() if not k.endswith("_enc")}
    for key in SECRET_KEYS:
        if stored.get(f"{key}_enc"):
            out[key] = "(set)"
    return out


def partition_of(row: FabricPartition) -> Partition:
    return Partition(
        name=row.name,
        pkey=row.pkey,
        members=dict(row.members),
        ipoib=row.ipoib,
        mtu=row.mtu,
        rate=row.rate,
        sl=row.sl,
        index0=row.index0,
    )


def partition_from_dict(d: Mapping[str, Any]) -> Partition:
    return Partition(
        name=d["name"],
        pkey=parse_pkey(d["pkey"]),
        members=dict(d.get("members") or {}),
        ipoib=bool(d.get("ipoib")),
        mtu=d.get("mtu"),
        rate=d.get("rate"),
        sl=d.get("sl"),
        index0=bool(d.get("index0", True)),
    )


def partitions_json(parts: Sequence[Partition]) -> dict[str, Any]:
    return {format_pkey(p.pkey): p.as_dict() for p in sorted(parts, key=lambda p: p.pkey)}


def partitions_from_json(data: Mapping[str, Any] | None) -> list[Partition]:
    return [partition_from_dict(d) for d in (data or {}).values()]


# ---------------------------------------------------------------------- validation


def parse_pkey_range(value: Any) -> tuple[int, int]:
    """``"0x0100-0x01ff"`` or ``[256, 511]`` / ``["0x100", "0x1ff"]``; ValueError otherwise."""
    if isinstance(value, str):
        lo_text, sep, hi_text = value.partition("-")
        if not sep:
            raise ValueError("a range: '0x0100-0x01ff'")
        pair: list[Any] = [lo_text, hi_text]
    elif isinstance(value, list | tuple) and len(value) == 2:
        pair = list(value)
    else:
        raise ValueError("a range: '0x0100-0x01ff' or [low, high]")
    lo, hi = (parse_pkey(v) for v in pair)
    if not PKEY_MIN <= lo <= hi <= PKEY_MAX:
        raise ValueError("tenant P_Keys lie in 0x0001-0x7ffe (0x7fff is the default partition)")
    return lo, hi


def policy_problems(
    driver: str, settings: Mapping[str, Any], policy: FabricSettings
) -> list[FieldProblem]:
    """What the daemon's [fabrics] policy forbids in a fabric's settings: an OpenSM
    partitions_file outside ``opensm_dirs``, a reload_command not in ``reload_commands``."""
    if driver != "opensm":
        return []
    problems: list[FieldProblem] = []
    path = settings.get("partitions_file")
    if isinstance(path, str):
        real = os.path.realpath(path)
        dirs = [os.path.realpath(d) for d in policy.opensm_dirs]
        if not any(real.startswith(d.rstrip("/") + "/") for d in dirs):
            problems.append(
                FieldProblem(
                    "settings.partitions_file",
                    "outside the directories this daemon may write partitions files in "
                    f"([fabrics] opensm_dirs: {', '.join(policy.opensm_dirs) or 'none'})",
                    value=path,
                )
            )
    command = settings.get("reload_command")
    if command is not None:
        argv = shlex.split(command) if isinstance(command, str) else command
        if argv not in policy.reload_commands:
            problems.append(
                FieldProblem(
                    "settings.reload_command",
                    "not one of the commands this daemon may run ([fabrics] reload_commands)",
                    value=argv,
                )
            )
    return problems


def fabric_spec(body: Mapping[str, Any], policy: FabricSettings) -> FabricSpec:
    """Validate a POST /v1/fabrics body: every problem at once."""
    problems: list[FieldProblem] = []
    known = {"name", "driver", "settings", "pkey_range", "port_key_limit", "repair_drift"}
    for key in sorted(set(body) - known):
        problems.append(FieldProblem(key, "unknown field"))
    name = body.get("name")
    if not isinstance(name, str) or not _FABRIC_NAME.match(name):
        problems.append(FieldProblem("name", "1-64 of a-z 0-9 _ . - (lowercase)", value=name))
    driver = body.get("driver")
    if driver not in fabric_driver_names():
        problems.append(
            FieldProblem(
                "driver", f"one of {', '.join(sorted(fabric_driver_names()))}", value=driver
            )
        )
    settings = body.get("settings", {})
    if not isinstance(settings, dict):
        problems.append(FieldProblem("settings", "an object"))
        settings = {}
    pkey_range = (PKEY_MIN, PKEY_MAX)
    if "pkey_range" in body:
        try:
            pkey_range = parse_pkey_range(body["pkey_range"])
        except ValueError as exc:
            problems.append(FieldProblem("pkey_range", str(exc), value=body["pkey_range"]))
    limit = body.get("port_key_limit", DEFAULT_PORT_KEY_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 2 <= limit <= 32768:
        problems.append(FieldProblem("port_key_limit", "an integer 2-32768", value=limit))
        limit = DEFAULT_PORT_KEY_LIMIT
    repair = body.get("repair_drift", True)
    if not isinstance(repair, bool):
        problems.append(FieldProblem("repair_drift", "true or false", value=repair))
    if not problems:
        try:
            fabric_driver(str(driver), settings, port_key_limit=limit)
        except ConfigError as exc:
            problems.append(FieldProblem(str(exc.extra.get("key") or "settings"), exc.message))
        else:
            problems += policy_problems(str(driver), settings, policy)
    if problems:
        raise ValidationError("fabric refused", problems)
    return FabricSpec(str(name), str(driver), settings, pkey_range, limit, bool(repair))


def partition_spec(body: Mapping[str, Any]) -> PartitionSpec:
    """Validate a partition body (PUT/POST): every problem at once; GUIDs normalised."""
    problems: list[FieldProblem] = []
    known = {"name", "members", "ipoib", "mtu", "rate", "sl", "index0", "tenant"}
    for key in sorted(set(body) - known):
        problems.append(FieldProblem(key, "unknown field"))
    name = body.get("name")
    if not isinstance(name, str):
        problems.append(FieldProblem("name", "required: the partition's name"))
        name = ""
    members_in = body.get("members", {})
    members: dict[str, str] = {}
    if not isinstance(members_in, dict):
        problems.append(FieldProblem("members", "an object: GUID -> 'full' | 'limited'"))
        members_in = {}
    for guid, membership in members_in.items():
        try:
            g = normalize_guid(str(guid))
        except ValueError as exc:
            problems.append(FieldProblem(f"members[{guid}]", str(exc)))
            continue
        if membership not in MEMBERSHIPS:
            problems.append(
                FieldProblem(
                    f"members[{guid}]",
                    "membership must be exactly 'full' or 'limited' (OpenSM reads any other "
                    "word, even 'Full', as limited)",
                    value=membership,
                )
            )
        if g in members:
            problems.append(FieldProblem(f"members[{guid}]", f"same port as {g}, given twice"))
        members[g] = str(membership)
    flags: dict[str, Any] = {}
    for key, default in (("ipoib", False), ("index0", True)):
        value = body.get(key, default)
        if not isinstance(value, bool):
            problems.append(FieldProblem(key, "true or false", value=value))
        flags[key] = bool(value)
    for key in ("mtu", "rate", "sl"):
        value = body.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            problems.append(FieldProblem(key, "an integer (IBTA code)", value=value))
            value = None
        flags[key] = value
    tenant = body.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        problems.append(FieldProblem("tenant", "a tenant name", value=tenant))
    if problems:
        raise ValidationError("partition refused", problems)
    return PartitionSpec(name=name, members=members, tenant=tenant, **flags)


# ---------------------------------------------------------------------- fabrics


async def get_fabric(s: AsyncSession, name: str, *, lock: bool = False) -> Fabric:
    stmt = select(Fabric).where(Fabric.name == name)
    if lock:
        stmt = stmt.with_for_update()
    f = await s.scalar(stmt)
    if f is None:
        raise NotFound(f"no fabric {name!r}")
    return f


async def _rows(s: AsyncSession, fabric_id: int) -> list[FabricPartition]:
    return list(
        await s.scalars(
            select(FabricPartition)
            .where(FabricPartition.fabric_id == fabric_id)
            .order_by(FabricPartition.pkey)
        )
    )


def fabric_dict(f: Fabric, rows: Sequence[FabricPartition] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": f.name,
        "driver": f.driver,
        "settings": redacted(f.settings),
        "pkey_range": f"{format_pkey(f.pkey_min)}-{format_pkey(f.pkey_max)}",
        "port_key_limit": f.port_key_limit,
        "repair_drift": f.repair_drift,
        "status": f.status,
        "pending": f.applied_rev < f.desired_rev,
        "desired_rev": f.desired_rev,
        "applied_rev": f.applied_rev,
        "failures": f.failures,
        "last_error": f.last_error,
        "last_applied_at": f.last_applied_at,
        "last_drift_check_at": f.last_drift_check_at,
        "problems": list((f.problems or {}).get("items", [])),
    }
    if rows is not None:
        out["partitions"] = {
            "active": sum(1 for r in rows if r.state == ACTIVE),
            "removing": sum(1 for r in rows if r.state == REMOVING),
        }
    return out


async def create_fabric(
    db: Database, box: SecretBox, spec: FabricSpec, actor: str | None
) -> dict[str, Any]:
    async with db.write() as s:
        if await s.scalar(select(Fabric.id).where(Fabric.name == spec.name)) is not None:
            raise Conflict(f"fabric {spec.name!r} exists")
        f = Fabric(
            name=spec.name,
            driver=spec.driver,
            settings=conceal(spec.settings, box),
            pkey_min=spec.pkey_range[0],
            pkey_max=spec.pkey_range[1],
            port_key_limit=spec.port_key_limit,
            repair_drift=spec.repair_drift,
        )
        s.add(f)
        await s.flush()
        events.record(
            s,
            "fabric.created",
            f"fabric {spec.name} ({spec.driver}) added",
            actor=actor,
            data={"fabric": spec.name, "driver": spec.driver},
        )
        return fabric_dict(f, [])


async def delete_fabric(db: Database, name: str, actor: str | None) -> None:
    async with db.write() as s:
        f = await get_fabric(s, name, lock=True)
        rows = await _rows(s, f.id)
        if rows:
            raise Conflict(
                f"fabric {name!r} still has {len(rows)} partitions; delete them first (a "
                "removed partition goes once the subnet manager confirms its key is gone)"
            )
        await s.delete(f)
        events.record(s, "fabric.deleted", f"fabric {name} removed", actor=actor,
                      data={"fabric": name})  # fmt: skip


async def list_fabrics(db: Database) -> list[dict[str, Any]]:
    async with db.read() as s:
        fabrics = list(await s.scalars(select(Fabric).order_by(Fabric.name)))
        return [fabric_dict(f, await _rows(s, f.id)) for f in fabrics]


async def show_fabric(db: Database, name: str) -> dict[str, Any]:
    async with db.read() as s:
        f = await get_fabric(s, name)
        return fabric_dict(f, await _rows(s, f.id))


# ---------------------------------------------------------------------- partitions


def row_dict(row: FabricPartition, tenant: str | None = None) -> dict[str, Any]:
    return {**partition_of(row).as_dict(), "state": row.state, "tenant": tenant}


async def _tenant_id(s: AsyncSession, name: str | None) -> int | None:
    if name is None:
        return None
    tid = await s.scalar(select(Tenant.id).where(Tenant.name == name))
    if tid is None:
        raise ValidationError(
            "partition refused", [FieldProblem("tenant", "no such tenant", value=name)]
        )
    return tid


def _check_set(f: Fabric, partitions: Sequence[Partition]) -> None:
    problems = check_plan(
        partitions, port_key_limit=f.port_key_limit, pkey_range=(f.pkey_min, f.pkey_max)
    )
    # what this kind of subnet manager cannot hold (UFM: some MTU and rate codes), now rather
    # than at the pass, where one such partition would hold up every other change
    problems += fabric_driver_class(f.driver).plan_problems(partitions)
    if problems:
        raise ValidationError("partition refused: the fabric's set would be unsafe", problems)


async def _put(
    s: AsyncSession,
    f: Fabric,
    pkey: int,
    spec: PartitionSpec,
    actor: str | None,
) -> tuple[FabricPartition, bool]:
    rows = await _rows(s, f.id)
    current = next((r for r in rows if r.pkey == pkey), None)
    tenant_id = await _tenant_id(s, spec.tenant)
    if (
        current is not None
        and current.state == REMOVING
        and (current.name != spec.name or current.tenant_id != tenant_id)
    ):
        # the subnet manager may still hold this key on the old partition's ports
        raise Conflict(
            f"{format_pkey(pkey)} is being removed ({current.name!r}) and stays reserved until "
            "the subnet manager no longer holds it; take another key"
        )
    for r in rows:
        if r.pkey == pkey:
            continue
        if r.name == spec.name:
            held = " (being removed)" if r.state == REMOVING else ""
            raise Conflict(f"partition name {spec.name!r} is {format_pkey(r.pkey)}'s{held}")
        if tenant_id is not None and r.tenant_id == tenant_id:
            raise Conflict(f"tenant {spec.tenant!r} already has {format_pkey(r.pkey)} here")
    new = Partition(
        name=spec.name,
        pkey=pkey,
        members=spec.members,
        ipoib=spec.ipoib,
        mtu=spec.mtu,
        rate=spec.rate,
        sl=spec.sl,
        index0=spec.index0,
    )
    others = [partition_of(r) for r in rows if r.state == ACTIVE and r.pkey != pkey]
    _check_set(f, [*others, new])
    if (
        current is not None
        and current.state == ACTIVE
        and partition_of(current) == new
        and (current.tenant_id == tenant_id)
    ):
        return current, False
    f.desired_rev += 1
    f.status = PENDING
    created = current is None
    row = current or FabricPartition(fabric_id=f.id, pkey=pkey)
    row.name, row.members, row.ipoib, row.index0 = (
        new.name,
        dict(new.members),
        new.ipoib,
        new.index0,
    )
    row.mtu, row.rate, row.sl = new.mtu, new.rate, new.sl
    row.tenant_id, row.state, row.rev = tenant_id, ACTIVE, f.desired_rev
    if created:
        s.add(row)
    before = partition_of(current) if current is not None and current.state == ACTIVE else None
    diff = diff_partitions([before] if before else [], [new])
    events.record(
        s,
        "partition.set",
        f"fabric {f.name}: partition {format_pkey(pkey)} {spec.name} set",
        actor=actor,
        data={"fabric": f.name, "pkey": format_pkey(pkey), "diff": list(diff)},
    )
    await s.flush()
    return row, created


def _path_pkey(text: str) -> int:
    try:
        return parse_pkey(text)
    except ValueError as exc:
        raise ValidationError("bad P_Key", [FieldProblem("pkey", str(exc), value=text)]) from exc


async def set_partition(
    db: Database, name: str, pkey_text: str, spec: PartitionSpec, actor: str | None
) -> tuple[dict[str, Any], bool]:
    """PUT: the desired state of partition ``pkey``. Returns (partition, created)."""
    pkey = _path_pkey(pkey_text)
    async with db.write() as s:
        f = await get_fabric(s, name, lock=True)
        row, created = await _put(s, f, pkey, spec, actor)
        return row_dict(row, spec.tenant), created


async def allocate_partition(
    db: Database, name: str, spec: PartitionSpec, actor: str | None
) -> dict[str, Any]:
    """POST: a new partition on the lowest free key of the fabric's range. A key is free when
    no partition row has it (removed ones stay until the subnet manager confirms) and the last
    read-back did not see it either (a key someone else put there)."""
    async with db.write() as s:
        f = await get_fabric(s, name, lock=True)
        row = await allocate_in(s, f, spec, actor)
        return row_dict(row, spec.tenant)


async def allocate_in(
    s: AsyncSession, f: Fabric, spec: PartitionSpec, actor: str | None
) -> FabricPartition:
    """The allocation inside the caller's transaction (``f`` locked by it): tenant creation
    allocates a key on every fabric in one transaction."""
    used = {r.pkey for r in await _rows(s, f.id)}
    used |= {parse_pkey(k) for k in (f.observed or {})}
    free = next((k for k in range(f.pkey_min, f.pkey_max + 1) if k not in used), None)
    if free is None:
        raise Conflict(
            f"fabric {f.name!r}: no free P_Key in {format_pkey(f.pkey_min)}-"
            f"{format_pkey(f.pkey_max)} ({len(used)} held or being removed)"
        )
    row, _ = await _put(s, f, free, spec, actor)
    return row


async def remove_partition(
    db: Database, name: str, pkey_text: str, actor: str | None
) -> dict[str, Any]:
    """DELETE: the partition leaves the desired set; its row stays ``removing`` (its key not
    reusable) until a read-back shows the subnet manager dropped it."""
    pkey = _path_pkey(pkey_text)
    async with db.write() as s:
        f = await get_fabric(s, name, lock=True)
        row = await s.scalar(
            select(FabricPartition).where(
                FabricPartition.fabric_id == f.id, FabricPartition.pkey == pkey
            )
        )
        if row is None:
            raise NotFound(f"fabric {name!r} has no partition {format_pkey(pkey)}")
        if row.state != REMOVING:
            f.desired_rev += 1
            f.status = PENDING
            row.state, row.rev = REMOVING, f.desired_rev
            events.record(
                s,
                "partition.removed",
                f"fabric {f.name}: partition {format_pkey(pkey)} {row.name} to be removed",
                actor=actor,
                data={"fabric": f.name, "pkey": format_pkey(pkey)},
            )
        return row_dict(row)


async def partitions_view(db: Database, name: str) -> dict[str, Any]:
    """Desired, applied and observed partitions of a fabric, side by side."""
    async with db.read() as s:
        f = await get_fabric(s, name)
        rows = await _rows(s, f.id)
        tenants: dict[int, str] = {
            tid: tname for tid, tname in await s.execute(select(Tenant.id, Tenant.name))
        }
        return {
            "fabric": f.name,
            "status": f.status,
            "pending": f.applied_rev < f.desired_rev,
            "desired": [
                row_dict(r, tenants.get(r.tenant_id) if r.tenant_id else None)
                for r in rows
                if r.state == ACTIVE
            ],
            "removing": [format_pkey(r.pkey) for r in rows if r.state == REMOVING],
            "applied": list((f.applied or {}).values()),
            "observed": list((f.observed or {}).values()) if f.observed is not None else None,
            "problems": list((f.problems or {}).get("items", [])),
            "last_error": f.last_error,
        }


async def plan(db: Database, box: SecretBox, name: str) -> dict[str, Any]:
    """A dry run: what applying the desired set now would change, and the rendered file (OpenSM)
    or the requests (UFM). Touches nothing; an unsafe set comes back with its problems."""
    async with db.read() as s:
        f = await get_fabric(s, name)
        record = FabricRecord.of(f, box)
        desired = [partition_of(r) for r in await _rows(s, f.id) if r.state == ACTIVE]
    driver = record.driver_instance()
    try:
        p = await driver.validate(desired)
    except PlanError as exc:
        return {"fabric": name, "ok": False, "diff": [], "rendered": None, "requests": [],
                "problems": [pr.as_dict() for pr in exc.problems]}  # fmt: skip
    finally:
        await driver.close()
    return {
        "fabric": name,
        "ok": True,
        "diff": list(p.diff),
        "rendered": p.rendered,
        "requests": list(p.requests),
        "problems": [],
    }


# ---------------------------------------------------------------------- the reconciler


@dataclass
class PassResult:
    fabric: str
    applied: bool = False
    diff: list[str] = field(default_factory=list)
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "fabric": self.fabric,
            "applied": self.applied,
            "diff": self.diff,
            "error": self.error,
            "problems": self.problems,
            "skipped": self.skipped,
        }


class PartitionReconciler(ReconcileLoop):
    """Reconciles every fabric: a loop woken by changes and by a timer; one pass per fabric at a
    time, under a lease on the fabric row (several daemons may share the database)."""

    loop_name = "partition-reconciler"

    def __init__(self, db: Database, box: SecretBox, settings: FabricSettings, owner: str) -> None:
        super().__init__(settings)
        self.db = db
        self.box = box
        self.settings = settings
        self.owner = owner
        self._locks: dict[int, asyncio.Lock] = {}
        # set by the app: the allocation sweep undeploys nodes whose release found them busy
        self.engine: Engine | None = None

    async def tick(self) -> None:
        # tenants being deleted go once their keys and VLAN are confirmed free
        from provisiond.allocations import settle
        from provisiond.follower import follow
        from provisiond.tenants import finish_deletions

        # each on its own: one failing (a database hiccup, a bug) must not stop the others,
        # nor the fabric passes below
        for what, step in (
            ("allocation sweep", lambda: settle(self.db, self.engine)),
            ("tenant deletions", lambda: finish_deletions(self.db)),
            ("network follower", lambda: follow(self.db)),
        ):
            try:
                if await step() and what == "network follower":
                    self.wake()
            except Exception:
                log.exception("fabric loop: %s failed", what)
        now = utcnow()
        drift_before = now - dt.timedelta(seconds=self.settings.drift_interval)
        ready = or_(Fabric.next_attempt_at.is_(None), Fabric.next_attempt_at <= now)
        async with self.db.read() as s:
            pending = set(
                await s.scalars(
                    select(Fabric.id).where(
                        Fabric.applied_rev < Fabric.desired_rev,
                        Fabric.status.in_((PENDING, DRIFTED)),
                        ready,
                    )
                )
            )
            due = set(
                await s.scalars(
                    select(Fabric.id).where(
                        or_(
                            Fabric.last_drift_check_at.is_(None),
                            Fabric.last_drift_check_at <= drift_before,
                        ),
                        ready,
                    )
                )
            )
        for fabric_id in sorted(pending | due):
            if fabric_id not in self._running:
                self.spawn(
                    fabric_id,
                    self._background(fabric_id, apply=fabric_id in pending, drift=fabric_id in due),
                    f"fabric-{fabric_id}",
                )

    async def _background(self, fabric_id: int, *, apply: bool, drift: bool) -> None:
        try:
            if apply:
                await self.reconcile(fabric_id)
            elif drift:
                await self.check_drift(fabric_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("partition reconciler: fabric %s: pass failed", fabric_id)

    async def _resolve(self, fabric: int | str) -> tuple[int, str]:
        async with self.db.read() as s:
            col = Fabric.id if isinstance(fabric, int) else Fabric.name
            row = (await s.execute(select(Fabric.id, Fabric.name).where(col == fabric))).first()
        if row is None:
            raise NotFound(f"no fabric {fabric!r}")
        return row[0], row[1]

    # ------------------------------------------------------------------ one pass

    async def reconcile(self, fabric: int | str, *, force: bool = False) -> PassResult:
        """Apply the fabric's active partition set now, read it back, record. ``force``: even
        when nothing is pending (an operator's ``fabric apply``: it also takes over a fabric
        nothing was applied to yet)."""
        fabric_id, name = await self._resolve(fabric)
        result = PassResult(name)
        lock = self._locks.setdefault(fabric_id, asyncio.Lock())
        async with leases.held(
            self.db, Fabric, fabric_id, self.owner, self.settings.lease_seconds, lock
        ) as got:
            if not got:
                result.skipped = "another daemon holds this fabric's lease"
                return result
            async with self.db.read() as s:
                f = await get_fabric(s, name)
                record = FabricRecord.of(f, self.box)
                rev = f.desired_rev
                rows = await _rows(s, fabric_id)
                if f.applied_rev >= rev and not force:
                    result.skipped = "nothing pending"
                    return result
            desired = [partition_of(r) for r in rows if r.state == ACTIVE]
            forbidden = policy_problems(record.driver, record.settings, self.settings)
            if forbidden:
                result.error = "; ".join(str(p) for p in forbidden)
                await self._failed(fabric_id, result.error, transient=False)
                return result
            try:
                driver = record.driver_instance()
            except ConfigError as exc:
                await self._failed(fabric_id, exc.message, transient=False)
                result.error = exc.message
                return result
            try:
                applied = await driver.apply(desired, force=force)
            except PlanError as exc:
                result.error = exc.message
                result.problems = [str(p) for p in exc.problems]
                await self._failed(
                    fabric_id, f"{exc.message}: {'; '.join(result.problems)}", transient=False,
                    kind="fabric.plan_refused",
                )  # fmt: skip
                return result
            except FabricError as exc:
                result.error = exc.message
                await self._failed(fabric_id, exc.message, transient=exc.transient)
                return result
            finally:
                await driver.close()
            observed = applied.observed.partitions
            result.diff = list(applied.diff)
            result.problems = list(applied.observed.problems)
            mismatch = diff_partitions(driver.comparable(desired), driver.comparable(observed))
            if mismatch:
                result.error = "read-back differs from the applied set: " + "; ".join(mismatch)
                await self._failed(fabric_id, result.error, transient=True)
                return result
            if result.problems:
                # e.g. OpenSM's last sweep fell back although our file is in place
                result.error = "the subnet manager reports problems after the apply"
                await self._failed(
                    fabric_id, f"{result.error}: {'; '.join(result.problems)}", transient=False
                )
                return result
            if not await leases.owns(self.db, Fabric, fabric_id, self.owner):
                # another daemon took the fabric over meanwhile: its pass records the truth
                result.skipped = "the lease was lost during the pass; not recorded"
                return result
            result.applied = True
            await self._applied(fabric_id, rev, desired, applied.observed, result, force)
        return result

    async def _applied(
        self,
        fabric_id: int,
        rev: int,
        desired: Sequence[Partition],
        observed: ReadBack,
        result: PassResult,
        force: bool,
    ) -> None:
        problems = observed.problems
        now = utcnow()
        held = {p.pkey for p in desired}
        async with self.db.write() as s:
            f = await s.get(Fabric, fabric_id)
            assert f is not None
            f.applied = partitions_json(desired)
            f.observed = partitions_json(observed.partitions)
            f.problems = {"items": list(problems)}
            f.applied_rev = max(f.applied_rev, rev)
            f.status = APPLIED if f.applied_rev >= f.desired_rev else PENDING
            f.failures, f.next_attempt_at, f.last_error = 0, None, None
            f.last_applied_at = f.last_drift_check_at = now
            gone = await s.scalars(
                select(FabricPartition.pkey).where(
                    FabricPartition.fabric_id == fabric_id,
                    FabricPartition.state == REMOVING,
                    FabricPartition.rev <= rev,
                )
            )
            freed = [k for k in gone if k not in held]
            if freed:
                await s.execute(
                    delete(FabricPartition).where(
                        FabricPartition.fabric_id == fabric_id,
                        FabricPartition.pkey.in_(freed),
                        FabricPartition.state == REMOVING,
                    )
                )
            # every pass is recorded, a pass that changed nothing too
            events.record(
                s,
                "fabric.applied",
                f"fabric {f.name}: {len(result.diff)} partition"
                f"{'s' if len(result.diff) != 1 else ''} changed"
                if result.diff
                else f"fabric {f.name}: applied, nothing changed",
                data={
                    "fabric": f.name,
                    "diff": result.diff,
                    "freed": [format_pkey(k) for k in freed],
                    "problems": list(problems),
                },
            )

    async def _failed(
        self, fabric_id: int, error: str, *, transient: bool, kind: str = "fabric.apply_failed"
    ) -> None:
        async with self.db.write() as s:
            f = await s.get(Fabric, fabric_id)
            assert f is not None
            f.failures += 1
            f.last_error = error
            if transient:
                delay = min(
                    self.settings.backoff_seconds * 2 ** min(f.failures - 1, 30),
                    self.settings.backoff_max_seconds,
                )
                f.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)
                f.status = PENDING
            else:
                # waits for a new desired state or an operator's `fabric apply`
                f.status = FAILED
            events.record(
                s,
                kind,
                f"fabric {f.name}: {error}",
                data={"fabric": f.name, "transient": transient, "failures": f.failures},
            )

    # ------------------------------------------------------------------ drift

    async def check_drift(self, fabric: int | str) -> dict[str, Any]:
        """Read the subnet manager back and compare with what was applied. Differences (a hand
        edit, a key someone added) and problems (OpenSM's fall-back) raise ``fabric.drift``; with
        repair_drift the fabric becomes pending so the next pass puts it back."""
        fabric_id, name = await self._resolve(fabric)
        out: dict[str, Any] = {"fabric": name, "drift": [], "problems": [], "error": None}
        lock = self._locks.setdefault(fabric_id, asyncio.Lock())
        async with leases.held(
            self.db, Fabric, fabric_id, self.owner, self.settings.lease_seconds, lock
        ) as got:
            if not got:
                out["skipped"] = "another daemon holds this fabric's lease"
                return out
            async with self.db.read() as s:
                f = await get_fabric(s, name)
                record = FabricRecord.of(f, self.box)
                applied = partitions_from_json(f.applied)
                ever_applied = f.applied_rev > 0
            try:
                driver = record.driver_instance()
                try:
                    read = await driver.read()
                finally:
                    await driver.close()
            except (FabricError, ConfigError) as exc:
                out["error"] = exc.message
                await self._drift_checked(fabric_id, None, None, exc.message)
                return out
            drift = (
                list(
                    diff_partitions(driver.comparable(applied), driver.comparable(read.partitions))
                )
                if ever_applied
                else []
            )
            out["drift"], out["problems"] = drift, list(read.problems)
            await self._drift_checked(fabric_id, read.partitions, read.problems, None, drift)
        return out

    async def read_now(self, fabric: int | str) -> tuple[ReadBack | None, str | None]:
        """What the subnet manager holds now, for the isolation audit. Changes nothing."""
        _, name = await self._resolve(fabric)
        async with self.db.read() as s:
            record = FabricRecord.of(await get_fabric(s, name), self.box)
        try:
            driver = record.driver_instance()
            try:
                return await driver.read(), None
            finally:
                await driver.close()
        except (FabricError, ConfigError) as exc:
            return None, exc.message

    async def _drift_checked(
        self,
        fabric_id: int,
        observed: Sequence[Partition] | None,
        problems: Sequence[str] | None,
        error: str | None,
        drift: Sequence[str] = (),
    ) -> None:
        now = utcnow()
        async with self.db.write() as s:
            f = await s.get(Fabric, fabric_id)
            assert f is not None
            f.last_drift_check_at = now
            if error is not None:
                f.last_error = error
                events.record(s, "fabric.read_failed", f"fabric {f.name}: {error}",
                              data={"fabric": f.name})  # fmt: skip
                return
            assert observed is not None and problems is not None
            # the same finding as the last check: no new event (a reported-only drift would
            # otherwise repeat every drift_interval)
            known = (
                f.status == DRIFTED
                and f.observed == partitions_json(observed)
                and (f.problems or {}).get("items") == list(problems)
            )
            f.observed = partitions_json(observed)
            f.problems = {"items": list(problems)}
            held = {p.pkey for p in observed}
            await s.execute(
                delete(FabricPartition).where(
                    FabricPartition.fabric_id == fabric_id,
                    FabricPartition.state == REMOVING,
                    FabricPartition.pkey.not_in(held) if held else FabricPartition.id.is_not(None),
                    FabricPartition.rev <= f.applied_rev,
                )
            )
            bad = bool(drift) or (bool(problems) and f.applied_rev > 0)
            if bad:
                repair = f.repair_drift and f.applied_rev >= f.desired_rev
                if not known or repair:
                    events.record(
                        s,
                        "fabric.drift",
                        f"fabric {f.name}: the subnet manager does not hold what was applied"
                        + ("; putting it back" if repair else ""),
                        data={"fabric": f.name, "diff": list(drift), "problems": list(problems)},
                    )
                if f.status not in (PENDING, FAILED):
                    f.status = DRIFTED
                if repair:
                    f.desired_rev += 1
            elif f.status == DRIFTED and f.applied_rev >= f.desired_rev:
                f.status = APPLIED
