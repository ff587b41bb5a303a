"""Rack enrollment: a validated rack file becomes inventory in one transaction.

Validate everything first (the file, then the file against the database), then write once.
Enrolling the same file again changes nothing and says so; changed nodes are reported as updates
with the fields that changed. Nodes of the rack that the file does not mention are kept and
listed: removing inventory is never a side effect of a file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import Table, delete, insert, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from provisiond import events
from provisiond.crypto import SecretBox
from provisiond.db import Database
from provisiond.errors import FieldProblem, ProvisionError, ValidationError
from provisiond.models import Event, Nic, Node, Rack, new_id, utcnow
from provisiond.rackfile import (
    DEFAULT_RACK_HEIGHT,
    NodeSpec,
    ParsedFile,
    RackFile,
    line_for,
    validate,
    where_of,
)
from provisiond.switches import upsert_switches

T = TypeVar("T")
_ENROLL_LOCK_ID = 0x656E726C  # "enrl"
_CHUNK = 500  # bound parameters per IN (...) stay far below every backend's limit


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass
class EnrollResult:
    rack: str
    created: list[str] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    not_in_file: list[str] = field(default_factory=list)
    rack_created: bool = False
    rack_updated: list[str] = field(default_factory=list)
    # switches of the file created or changed: {"name", "created", "changes"}
    switches: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return bool(
            self.created or self.updated or self.rack_created or self.rack_updated or self.switches
        )

    def summary(self) -> str:
        if not self.changed:
            return (
                f"rack {self.rack}: nothing changed ({len(self.unchanged)} node(s) already "
                "enrolled as described)"
            )
        verb = "would enroll" if self.dry_run else "enrolled"
        switches = f", {len(self.switches)} switch(es) new or changed" if self.switches else ""
        return (
            f"rack {self.rack}: {verb} {len(self.created)} new, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged{switches}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "rack": self.rack,
            "changed": self.changed,
            "dry_run": self.dry_run,
            "summary": self.summary(),
            "rack_created": self.rack_created,
            "rack_updated": self.rack_updated,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "not_in_file": self.not_in_file,
            "switches": self.switches,
        }


def _nic_rows(spec: NodeSpec) -> list[tuple[Any, ...]]:
    return [(n.kind, n.mac, n.guid, n.pxe, n.switch, n.port, n.ip) for n in spec.nics]


def _nic_rows_db(node: Node) -> list[tuple[Any, ...]]:
    return [(n.kind, n.mac, n.guid, n.pxe, n.switch_name, n.switch_port, n.ip) for n in node.nics]


def _diff(node: Node, spec: NodeSpec, rack_id: int, box: SecretBox) -> list[str]:
    changes = []
    pairs: Iterable[tuple[str, Any, Any]] = (
        ("rack", node.rack_id, rack_id),
        ("unit", node.unit, spec.unit),
        ("height", node.unit_height, spec.height),
        ("boot_mode", node.boot_mode, spec.boot_mode),
        ("boot_loader", node.boot_loader, spec.boot_loader),
        ("arch", node.arch, spec.arch),
        ("bmc.driver", node.bmc_driver, spec.bmc.driver),
        ("bmc.address", node.bmc_address, spec.bmc.address),
        ("bmc.port", node.bmc_port, spec.bmc.port),
        ("bmc.username", node.bmc_username, spec.bmc.username),
        ("bmc.system_id", node.bmc_system_id, spec.bmc.system_id),
    )
    for name, have, want in pairs:
        if have != want:
            changes.append(name)
    try:
        have_pw = box.decrypt(node.bmc_password_enc) if node.bmc_password_enc else None
    except ProvisionError:
        have_pw = None  # stored under a lost key: the file's password replaces it
    if have_pw != spec.bmc.password:
        changes.append("bmc.password")
    if sorted(_nic_rows_db(node), key=repr) != sorted(_nic_rows(spec), key=repr):
        changes.append("nics")
    return changes


async def _conflicts(
    s: AsyncSession, rack: RackFile, parsed: ParsedFile, rack_name: str, height: int
) -> list[FieldProblem]:
    """Checks against the inventory: a name, MAC, GUID or BMC owned by a node outside this file,
    a unit taken by a node of this rack that the file does not mention, and (when the file does
    not give the rack's height) units beyond the enrolled rack's height."""
    problems: list[FieldProblem] = []
    names = [n.name for n in rack.nodes]
    in_file = set(names)
    where: dict[str, tuple[int, int]] = {}  # mac/guid -> (node index, nic index)
    for i, n in enumerate(rack.nodes):
        for j, nic in enumerate(n.nics):
            where[nic.mac or nic.guid or ""] = (i, j)
            if nic.ip:
                where[nic.ip] = (i, j)

    def add(path: tuple[str | int, ...], msg: str, value: Any, row: str) -> None:
        problems.append(
            FieldProblem(
                where_of(path), msg, line=line_for(parsed.lines, path), value=value, row=row
            )
        )

    for chunk in _chunks(names):
        rows = await s.execute(
            select(Node.name, Rack.name).outerjoin(Rack).where(Node.name.in_(chunk))
        )
        for node_name, other_rack in rows:
            if other_rack != rack_name:
                i = names.index(node_name)
                add(
                    ("nodes", i, "name"),
                    f"node {node_name} is already enrolled in rack {other_rack or '(none)'}",
                    node_name,
                    node_name,
                )
    macs = [n.mac for spec in rack.nodes for n in spec.nics if n.mac]
    guids = [n.guid for spec in rack.nodes for n in spec.nics if n.guid]
    ips = [n.ip for spec in rack.nodes for n in spec.nics if n.ip]
    checks = ((Nic.mac, macs, "mac"), (Nic.guid, guids, "guid"), (Nic.ip, ips, "ip"))
    for column, values, label in checks:
        for chunk in _chunks(values):
            rows = await s.execute(select(column, Node.name).join(Node).where(column.in_(chunk)))
            for value, owner in rows:
                if owner not in in_file:
                    i, j = where[value]
                    add(
                        ("nodes", i, "nics", j, label),
                        f"{label.upper()} already belongs to node {owner}",
                        value,
                        rack.nodes[i].name,
                    )
    # (address, port, Redfish system id): one Redfish service may front several systems
    want_system = {
        (n.bmc.address, n.bmc.port, n.bmc.system_id): i for i, n in enumerate(rack.nodes)
    }
    want_bmc = {(a, p) for a, p, _ in want_system}
    # look up exactly the (address, port) pairs of the file: many BMCs may share an address
    # (a chassis manager, or the lab's 127.0.0.1), and reading all of them made every
    # enrollment scan the whole inventory
    with_port = sorted((a, p) for a, p in want_bmc if p is not None)
    without_port = sorted(a for a, p in want_bmc if p is None)
    lookups = [
        Node.bmc_address.in_(chunk) & Node.bmc_port.is_(None) for chunk in _chunks(without_port)
    ] + [tuple_(Node.bmc_address, Node.bmc_port).in_(chunk) for chunk in _chunks(with_port)]
    for condition in lookups:
        bmc_rows = await s.execute(
            select(Node.bmc_address, Node.bmc_port, Node.bmc_system_id, Node.name).where(condition)
        )
        for address, port, system_id, owner in bmc_rows:
            i_bmc = want_system.get((address, port, system_id))
            if i_bmc is not None and owner not in in_file:
                add(
                    ("nodes", i_bmc, "bmc", "address"),
                    f"BMC {address}:{port or 'default'} already belongs to node {owner}",
                    address,
                    rack.nodes[i_bmc].name,
                )
    if rack.height is None:  # the file relies on the rack's height: check its units here
        for i, spec in enumerate(rack.nodes):
            if spec.unit + spec.height - 1 > height:
                add(
                    ("nodes", i, "unit"),
                    f"unit {spec.unit} does not exist in rack {rack_name}, which has units "
                    f"1-{height}",
                    spec.unit,
                    spec.name,
                )
    # Units held by nodes of this rack that the file does not mention.
    units: dict[int, str] = {}
    for i, spec in enumerate(rack.nodes):
        for u in range(spec.unit, spec.unit + spec.height):
            units[u] = f"{i}"
    unit_rows = await s.execute(
        select(Node.name, Node.unit, Node.unit_height)
        .join(Rack)
        .where(Rack.name == rack_name, Node.unit.is_not(None))
    )
    for owner, unit, node_height in unit_rows:
        if owner in in_file or unit is None:
            continue
        if rack.height is not None and unit + node_height - 1 > rack.height:
            add(
                ("height",),
                f"rack {rack_name} would have units 1-{rack.height}, but node {owner}, which this "
                f"file does not mention, sits in unit {unit}",
                rack.height,
                owner,
            )
        for u in range(unit, unit + node_height):
            if u in units:
                i = int(units[u])
                add(
                    ("nodes", i, "unit"),
                    f"unit {u} is taken by node {owner}, which this file does not mention",
                    rack.nodes[i].unit,
                    rack.nodes[i].name,
                )
                break
    return problems


async def enroll(
    db: Database,
    box: SecretBox,
    parsed: ParsedFile,
    *,
    rack_name: str | None = None,
    actor: str | None = None,
    dry_run: bool = False,
    known_drivers: frozenset[str] | None = None,
) -> EnrollResult:
    rack = validate(parsed, rack_name=rack_name)
    if known_drivers is not None:
        bad = [
            FieldProblem(
                f"nodes[{i}].bmc.driver",
                f"unknown BMC driver; known: {', '.join(sorted(known_drivers))}",
                line=parsed.lines.get(("nodes", i, "bmc", "driver")),
                value=n.bmc.driver,
                row=n.name,
            )
            for i, n in enumerate(rack.nodes)
            if n.bmc.driver not in known_drivers
        ]
        if bad:
            raise ValidationError(f"rack file has {len(bad)} error(s)", bad)
    result = EnrollResult(rack=rack.rack, dry_run=dry_run)
    async with db.write() as s:
        if not db.is_sqlite:
            # one enrollment at a time (SQLite's BEGIN IMMEDIATE already does this): two files
            # sharing a MAC must give one clear error, not a unique-violation race
            await s.execute(text(f"SELECT pg_advisory_xact_lock({_ENROLL_LOCK_ID})"))
        db_rack = (await s.scalars(select(Rack).where(Rack.name == rack.rack))).first()
        height = rack.height or (db_rack.height if db_rack else DEFAULT_RACK_HEIGHT)
        problems = await _conflicts(s, rack, parsed, rack.rack, height)
        if problems:
            problems.sort(key=lambda p: (p.line or 0, p.where))
            raise ValidationError(
                f"rack file conflicts with the inventory ({len(problems)} error(s))", problems
            )
        if db_rack is None:
            db_rack = Rack(name=rack.rack, height=height, location=rack.location)
            s.add(db_rack)
            await s.flush()
            result.rack_created = True
        else:
            # only what the file says: a CSV (which has no rack columns) changes neither
            for attr in ("height", "location"):
                wanted = getattr(rack, attr)
                if wanted is not None and getattr(db_rack, attr) != wanted:
                    setattr(db_rack, attr, wanted)
                    result.rack_updated.append(attr)
        existing: dict[str, Node] = {}
        for chunk in _chunks([n.name for n in rack.nodes]):
            found = await s.scalars(
                select(Node).where(Node.name.in_(chunk)).options(selectinload(Node.nics))
            )
            existing.update({n.name: n for n in found})
        others = await s.scalars(
            select(Node.name).where(Node.rack_id == db_rack.id).order_by(Node.name)
        )
        result.not_in_file = [n for n in others if n not in existing]
        now = utcnow()
        new_nodes: list[dict[str, Any]] = []
        new_nics: list[dict[str, Any]] = []
        new_events: list[dict[str, Any]] = []
        moved: list[Node] = []
        for spec in rack.nodes:
            node = existing.get(spec.name)
            if node is None:
                node_id = new_id()
                new_nodes.append(_node_row(spec, node_id, db_rack.id, box, now))
                new_nics.extend(_nic_row(node_id, nic) for nic in spec.nics)
                new_events.append(
                    _event_row(
                        node_id, f"enrolled in rack {rack.rack} unit {spec.unit}", actor, now
                    )
                )
                result.created.append(spec.name)
                continue
            changes = _diff(node, spec, db_rack.id, box)
            if not changes:
                result.unchanged.append(spec.name)
                continue
            result.updated.append({"name": spec.name, "changes": changes})
            # Clear units first so two nodes swapping units never collide mid-flush.
            node.unit = None
            moved.append(node)
            _apply(node, spec, db_rack.id, box, changes)
            if "nics" in changes:
                await s.execute(delete(Nic).where(Nic.node_id == node.id))
                new_nics.extend(_nic_row(node.id, nic) for nic in spec.nics)
            new_events.append(
                _event_row(node.id, f"enrollment updated: {', '.join(changes)}", actor, now)
            )
        # the file's switches, in the same transaction (a NIC may name one of them)
        result.switches = [
            r.as_dict()
            for r in await upsert_switches(s, rack.switches, box, actor)
            if r.created or r.changes
        ]
        if dry_run:
            await s.rollback()
            return result
        await s.flush()
        specs = {n.name: n for n in rack.nodes}
        for node in moved:
            node.unit = specs[node.name].unit
        await s.flush()
        # Core executemany on the tables: the ORM bulk path groups rows by the set of non-None
        # keys, and alternating ethernet/infiniband rows turned into one INSERT per NIC.
        if new_nodes:
            await s.execute(insert(cast(Table, Node.__table__)), new_nodes)
        if new_nics:
            await s.execute(insert(cast(Table, Nic.__table__)), new_nics)
        if new_events:
            await s.execute(insert(cast(Table, Event.__table__)), new_events)
        if result.changed:
            events.record(s, "enroll", result.summary(), actor=actor, data=result.as_dict())
    return result


def _node_row(
    spec: NodeSpec, node_id: str, rack_id: int, box: SecretBox, now: Any
) -> dict[str, Any]:
    return {
        "id": node_id,
        "name": spec.name,
        "rack_id": rack_id,
        "unit": spec.unit,
        "unit_height": spec.height,
        "state": "enrolled",
        "maintenance": False,
        "protected": False,
        "retired": False,
        "power_state": "unknown",
        "boot_mode": spec.boot_mode,
        "boot_loader": spec.boot_loader,
        "arch": spec.arch,
        "facts": {},
        "bmc_driver": spec.bmc.driver,
        "bmc_address": spec.bmc.address,
        "bmc_port": spec.bmc.port,
        "bmc_username": spec.bmc.username,
        "bmc_system_id": spec.bmc.system_id,
        "power_failures": 0,
        "bmc_password_enc": box.encrypt(spec.bmc.password) if spec.bmc.password else None,
        "state_entered_at": now,
        "created_at": now,
        "updated_at": now,
    }


def _nic_row(node_id: str, nic: Any) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "kind": nic.kind,
        "mac": nic.mac,
        "guid": nic.guid,
        "pxe": nic.pxe,
        "switch_name": nic.switch,
        "switch_port": nic.port,
        "ip": nic.ip,
    }


def _event_row(node_id: str, message: str, actor: str | None, now: Any) -> dict[str, Any]:
    return {
        "ts": now,
        "node_id": node_id,
        "kind": "enroll",
        "message": message,
        "data": {},
        "actor": actor,
    }


def _apply(node: Node, spec: NodeSpec, rack_id: int, box: SecretBox, changes: list[str]) -> None:
    node.rack_id = rack_id
    node.unit_height = spec.height
    node.boot_mode = spec.boot_mode
    node.boot_loader = spec.boot_loader
    node.arch = spec.arch
    node.bmc_driver = spec.bmc.driver
    node.bmc_address = spec.bmc.address
    node.bmc_port = spec.bmc.port
    node.bmc_username = spec.bmc.username
    node.bmc_system_id = spec.bmc.system_id
    if "bmc.password" in changes:
        node.bmc_password_enc = box.encrypt(spec.bmc.password) if spec.bmc.password else None
