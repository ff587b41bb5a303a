"""Firmware in the daemon: imported catalogs, reports from drivers, the agent and operators, node
and fleet verdicts (firmware_db.rules), and the lifecycle gate: a node whose verdict is blocked
is not provided unless an admin overrides with a reason, which is recorded.

Reports are kept verbatim (history); a node's inventory is the newest reading per (slot, channel,
running or staged). The active catalog is parsed once per import and kept, with its evaluator,
for the daemon's life. This module never changes a report, and never decides without a catalog:
with none imported, every node is ``compliant`` with the reason "no catalog".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from firmware_db.catalog import load_catalog
from firmware_db.model import CHANNELS, KINDS, Identifiers, InventoryComponent, Reading
from firmware_db.rules import BLOCKED, COMPLIANT, Evaluator, NodeVerdict
from provisiond import events
from provisiond.db import Database
from provisiond.errors import Conflict, FieldProblem, Forbidden, NotFound, ValidationError
from provisiond.inventory import resolve_node
from provisiond.models import FirmwareCatalog, FirmwareReport, Node, Rack, utcnow

MAX_COMPONENTS = 500
# clocks differ a little; a report further ahead than this is refused
FUTURE_SLACK = dt.timedelta(minutes=5)
_ID_KEYS = {
    "system_model": str,
    "pci_vendor": int,
    "pci_device": int,
    "pci_subvendor": int,
    "pci_subdevice": int,
    "psid": str,
    "software_id": str,
}


class FirmwareBlocked(Conflict):
    """409: the node's firmware is blocked; names the component and the rule."""

    kind = "firmware-blocked"


@dataclass(frozen=True)
class Active:
    id: int
    name: str
    sha256: str
    evaluator: Evaluator


class FirmwareService:
    """The active catalog (cached by id) and everything that reads it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._active: Active | None = None

    # ------------------------------------------------------------------ catalogs

    async def import_catalog(self, text: str, source: str, actor: str | None) -> dict[str, Any]:
        """Validate (every problem at once, with its line) and store as the active catalog;
        nothing is stored when anything is wrong."""
        # YAML, JSON Schema and the checks take a while on a big catalog: not on the event loop
        catalog = await asyncio.to_thread(load_catalog, text, source=source)
        digest = hashlib.sha256(text.encode()).hexdigest()
        releases = sum(len(c.releases) for c in catalog.components.values())
        async with self.db.write() as s:
            await s.execute(update(FirmwareCatalog).values(active=False))
            row = FirmwareCatalog(
                name=catalog.name,
                sha256=digest,
                text=text,
                components=len(catalog.components),
                releases=releases,
                active=True,
                imported_by=actor,
            )
            s.add(row)
            await s.flush()
            events.record(
                s,
                "catalog.imported",
                f"firmware catalog {catalog.name} imported ({len(catalog.components)} "
                f"components, {releases} releases)",
                actor=actor,
                data={"catalog": catalog.name, "sha256": digest, "source": source},
            )
            out = catalog_dict(row)
        self._active = Active(
            row.id, catalog.name, digest, await asyncio.to_thread(Evaluator, catalog)
        )
        return out

    async def active(self) -> Active | None:
        async with self.db.read() as s:
            row = (
                await s.execute(
                    select(FirmwareCatalog.id, FirmwareCatalog.name, FirmwareCatalog.sha256)
                    .where(FirmwareCatalog.active.is_(True))
                    .order_by(FirmwareCatalog.id.desc())
                    .limit(1)
                )
            ).first()
            if row is None:
                self._active = None
                return None
            if self._active is not None and self._active.id == row[0]:
                return self._active
            text = await s.scalar(select(FirmwareCatalog.text).where(FirmwareCatalog.id == row[0]))
        catalog = await asyncio.to_thread(load_catalog, text or "", source=f"catalog {row[1]}")
        self._active = Active(row[0], row[1], row[2], await asyncio.to_thread(Evaluator, catalog))
        return self._active

    async def catalogs(self) -> list[dict[str, Any]]:
        async with self.db.read() as s:
            rows = await s.scalars(select(FirmwareCatalog).order_by(FirmwareCatalog.id.desc()))
            return [catalog_dict(r) for r in rows]

    # ------------------------------------------------------------------ reports

    async def post_reports(
        self, node_ref: str, body: Mapping[str, Any], actor: str | None, *, trusted: bool
    ) -> dict[str, Any]:
        """Store a node's firmware inventory as one channel (or several) reported it.
        ``trusted`` (an admin, or the tooling an admin runs) may report for any channel and
        change the node's model; anyone else reports as ``operator``, so a reading cannot pass
        for the agent's or the BMC's and quietly lift the gate."""
        system_model, rows = parse_reports(body)
        now = utcnow()
        if not trusted:
            claimed = sorted({str(r["channel"]) for r in rows} - {"operator"})
            if claimed:
                raise Forbidden(
                    f"only an admin may report for channel(s) {', '.join(claimed)}; report as "
                    "channel 'operator'"
                )
        async with self.db.write() as s:
            node = await resolve_node(s, node_ref, for_update=True)
            known = node.facts.get("system_model")
            if not trusted and system_model is not None and known and known != system_model:
                raise Forbidden(
                    f"{node.name}'s system model is {known!r}; only an admin may change it"
                )
            for r in rows:
                s.add(FirmwareReport(node_id=node.id, reported_at=r.pop("reported_at") or now, **r))
            if system_model is not None and node.facts.get("system_model") != system_model:
                node.facts = {**node.facts, "system_model": system_model}
            events.record(
                s,
                "firmware.reported",
                f"{len(rows)} firmware reading(s) stored",
                node_id=node.id,
                actor=actor,
                data={
                    "channels": sorted({str(r["channel"]) for r in rows}),
                    "components": sorted({str(r["component"]) for r in rows}),
                },
            )
            node_id = node.id
        return {"node": node_id, "stored": len(rows)}

    # ------------------------------------------------------------------ verdicts

    async def node_verdict(self, node_ref: str) -> dict[str, Any]:
        active = await self.active()
        async with self.db.read() as s:
            node = await resolve_node(s, node_ref)
            inventory = await _inventories(s, [node.id])
            out: dict[str, Any] = {"node": node.name, "id": node.id}
        verdict = _judge(active, inventory.get(node.id, []), node, plan=True)
        return {**out, **_verdict_dict(active, verdict, node)}

    async def fleet(self, *, rack: str | None = None, plan: bool = False) -> dict[str, Any]:
        """Every node (of ``rack``): counts by verdict, by system model, by catalog component,
        and each node's verdict and reasons."""
        active = await self.active()
        async with self.db.read() as s:
            stmt = select(Node).order_by(Node.name)
            if rack is not None:
                rack_id = await s.scalar(select(Rack.id).where(Rack.name == rack))
                if rack_id is None:
                    raise NotFound(f"no rack {rack!r}")
                stmt = stmt.where(Node.rack_id == rack_id)
            nodes = list(await s.scalars(stmt))
            inventory = await _inventories(s, [n.id for n in nodes])
        # judging thousands of nodes takes a second or two: not on the event loop
        return await asyncio.to_thread(_fleet, active, nodes, inventory, plan)

    async def verdicts(self, node_ids: Sequence[str]) -> dict[str, str]:
        """Each node's verdict (compliant, warn, blocked) as the gate would judge it now; every
        node is compliant while no catalog is imported."""
        active = await self.active()
        if active is None or not node_ids:
            return dict.fromkeys(node_ids, COMPLIANT)
        async with self.db.read() as s:
            nodes = list(await s.scalars(select(Node).where(Node.id.in_(list(node_ids)))))
            inventory = await _inventories(s, [n.id for n in nodes])

        def judge() -> dict[str, str]:
            return {
                n.id: _judge(active, inventory.get(n.id, []), n, plan=False).verdict for n in nodes
            }

        return await asyncio.to_thread(judge)

    # ------------------------------------------------------------------ the gate

    async def gate(
        self, node_ref: str, *, override: str | None, actor: str | None, may_override: bool
    ) -> dict[str, Any] | None:
        """Before an action that puts a node into service (provide, deploy, rebuild):
        FirmwareBlocked (409) naming the component and rule when the node's verdict is
        blocked, unless an admin overrides with a reason. Returns the override to record
        (``record_override``) once the action is accepted, else None."""
        active = await self.active()
        if active is None:
            return None
        async with self.db.read() as s:
            node = await resolve_node(s, node_ref)
            inventory = await _inventories(s, [node.id])
        verdict = _judge(active, inventory.get(node.id, []), node, plan=False)
        if verdict.verdict != BLOCKED:
            return None
        blocking = [
            {"slot": c.slot, "component": c.component, "verdict": f.verdict, "reason": f.reason,
             "rule": f.rule}
            for c, f in verdict.blocking()
        ]  # fmt: skip
        first = blocking[0]
        if override is None or not may_override:
            # the refusal is part of the node's history too
            async with self.db.write() as s:
                events.record(
                    s,
                    "firmware.blocked",
                    f"refused: firmware blocked ({first['slot']}: {first['reason']})",
                    node_id=node.id,
                    actor=actor,
                    data={"blocking": blocking, "catalog": active.name,
                          "override_refused": override is not None},
                )  # fmt: skip
        if override is None:
            raise FirmwareBlocked(
                f"{node.name}: firmware blocked: {first['slot']}: {first['reason']}"
                + (f" (rule {first['rule']})" if first["rule"] else "")
                + (f"; and {len(blocking) - 1} more" if len(blocking) > 1 else "")
                + "; an admin may override with a reason",
                node=node.name,
                blocking=blocking,
            )
        if not may_override:
            raise Forbidden(f"{node.name}: firmware blocked; only an admin may override")
        return {
            "node_id": node.id,
            "reason": override,
            "blocking": blocking,
            "catalog": active.name,
        }

    async def record_override(
        self, override: Mapping[str, Any], actor: str | None, operation_id: str | None
    ) -> None:
        """The event of an accepted override: who, why, what it overrode."""
        async with self.db.write() as s:
            events.record(
                s,
                "firmware.override",
                f"firmware gate overridden: {override['reason']}",
                node_id=override["node_id"],
                operation_id=operation_id,
                actor=actor,
                data={k: override[k] for k in ("reason", "blocking", "catalog")},
            )


# ---------------------------------------------------------------------- helpers


def catalog_dict(row: FirmwareCatalog) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "sha256": row.sha256,
        "components": row.components,
        "releases": row.releases,
        "active": row.active,
        "imported_by": row.imported_by,
        "imported_at": row.imported_at,
    }


def system_model_of(node: Node) -> str | None:
    """The node's stable model id: reported with its firmware, else the agent's DMI SKU."""
    model = node.facts.get("system_model")
    if isinstance(model, str) and model:
        return model
    system = node.facts.get("system")
    sku = system.get("sku") if isinstance(system, Mapping) else None
    return sku if isinstance(sku, str) and sku else None


def _judge(
    active: Active | None, inventory: Sequence[InventoryComponent], node: Node, *, plan: bool
) -> NodeVerdict:
    if active is None:
        return NodeVerdict(COMPLIANT, ())
    return active.evaluator.evaluate(
        inventory, now=utcnow(), system_model=system_model_of(node), plan=plan
    )


def _verdict_dict(active: Active | None, verdict: NodeVerdict, node: Node) -> dict[str, Any]:
    out = verdict.as_dict()
    out["catalog"] = active.name if active else None
    out["system_model"] = system_model_of(node)
    if active is None:
        out["reasons"] = ["no catalog imported: nothing to judge by"]
    return out


async def _inventories(
    s: AsyncSession, node_ids: Sequence[str]
) -> dict[str, list[InventoryComponent]]:
    """Each node's components: the newest reading per (slot, channel, staged)."""
    if not node_ids:
        return {}
    newest = (
        select(
            FirmwareReport.node_id,
            FirmwareReport.component,
            FirmwareReport.channel,
            FirmwareReport.staged,
            func.max(FirmwareReport.id).label("id"),
        )
        .where(FirmwareReport.node_id.in_(node_ids) if len(node_ids) < 5000 else true())
        .group_by(
            FirmwareReport.node_id,
            FirmwareReport.component,
            FirmwareReport.channel,
            FirmwareReport.staged,
        )
        .subquery()
    )
    rows = await s.execute(select(FirmwareReport).join(newest, FirmwareReport.id == newest.c.id))
    wanted = set(node_ids)
    grouped: dict[tuple[str, str], list[FirmwareReport]] = {}
    for (r,) in rows:
        if r.node_id in wanted:
            grouped.setdefault((r.node_id, r.component), []).append(r)
    out: dict[str, list[InventoryComponent]] = {}
    for (node_id, slot), reports in sorted(grouped.items()):
        ids, conflict = _merged_identity(reports)
        readings = tuple(
            Reading(r.version, r.channel, _aware(r.reported_at), r.staged)
            for r in sorted(reports, key=lambda r: r.id)
        )
        out.setdefault(node_id, []).append(InventoryComponent(slot, ids, readings, None, conflict))
    return out


def _kind_of(r: FirmwareReport) -> str | None:
    """The reported kind; for the agent's rows (no kind), the slot's own word (``bios``) or
    prefix (``nic:eth0``)."""
    if r.kind:
        return r.kind
    head = r.component.split(":", 1)[0]
    return head if head in KINDS else None


def _merged_identity(reports: Sequence[FirmwareReport]) -> tuple[Identifiers, str | None]:
    """One identity from every channel's newest reading of a slot: identifiers one channel
    gives and another does not are combined; a channel that says something else (another
    kind, another PCI id) is a conflict, never settled by whichever came last."""
    kinds: dict[str, set[str]] = {}
    values: dict[str, dict[Any, set[str]]] = {}
    for r in reports:
        kind = _kind_of(r)
        if kind is not None:
            kinds.setdefault(kind, set()).add(r.channel)
        for key, value in (r.identifiers or {}).items():
            if key in _ID_KEYS and value is not None:
                values.setdefault(key, {}).setdefault(value, set()).add(r.channel)
    problems = []
    if len(kinds) > 1:
        problems.append("kind " + _who_said(kinds))
    for key, said in sorted(values.items()):
        if len(said) > 1:
            problems.append(f"{key} {_who_said(said)}")
    kind = next(iter(kinds)) if len(kinds) == 1 else "unknown"
    merged = {key: next(iter(said)) for key, said in values.items() if len(said) == 1}
    ids = Identifiers(kind=kind, **{k: merged.get(k) for k in _ID_KEYS})
    return ids, "; ".join(problems) or None


def _who_said(said: Mapping[Any, set[str]]) -> str:
    return ", ".join(f"{v} ({'/'.join(sorted(c))})" for v, c in sorted(said.items(), key=str))


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def parse_reports(body: Mapping[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """Validate a POST /v1/nodes/{id}/firmware body: every problem at once."""
    problems: list[FieldProblem] = []
    for key in sorted(set(body) - {"system_model", "components"}):
        problems.append(FieldProblem(key, "unknown field"))
    model = body.get("system_model")
    if model is not None and (not isinstance(model, str) or not model or len(model) > 255):
        problems.append(FieldProblem("system_model", "a stable model id (SKU, SystemID)"))
        model = None
    comps = body.get("components")
    if not isinstance(comps, list) or not comps:
        problems.append(FieldProblem("components", "a non-empty list"))
        comps = []
    if len(comps) > MAX_COMPONENTS:
        problems.append(FieldProblem("components", f"at most {MAX_COMPONENTS} per report"))
        comps = []
    rows: list[dict[str, Any]] = []
    for i, c in enumerate(comps):
        where = f"components[{i}]"
        if not isinstance(c, dict):
            problems.append(FieldProblem(where, "an object"))
            continue
        known = {"slot", "kind", "version", "channel", "staged", "ids", "reported_at", "source"}
        for key in sorted(set(c) - known):
            problems.append(FieldProblem(f"{where}.{key}", "unknown field"))
        slot, kind, version = c.get("slot"), c.get("kind"), c.get("version")
        channel, staged = c.get("channel", "operator"), c.get("staged", False)
        if not isinstance(slot, str) or not 0 < len(slot) <= 64:
            problems.append(
                FieldProblem(
                    f"{where}.slot", "1-64 characters, e.g. bios, nic:0000:3b:00.0", value=slot
                )
            )
        if kind not in KINDS:
            problems.append(FieldProblem(f"{where}.kind", f"one of {', '.join(KINDS)}", value=kind))
        if (
            not isinstance(version, str)
            or not 0 < len(version) <= 255
            or version != version.strip()
        ):
            problems.append(
                FieldProblem(
                    f"{where}.version", "the version as reported (1-255 characters)", value=version
                )
            )
        if channel not in CHANNELS:
            problems.append(
                FieldProblem(f"{where}.channel", f"one of {', '.join(CHANNELS)}", value=channel)
            )
        if not isinstance(staged, bool):
            problems.append(FieldProblem(f"{where}.staged", "true or false", value=staged))
        ids_in = c.get("ids", {})
        ids: dict[str, Any] = {}
        if not isinstance(ids_in, dict):
            problems.append(FieldProblem(f"{where}.ids", "an object"))
            ids_in = {}
        for key, value in ids_in.items():
            want = _ID_KEYS.get(key)
            if want is None:
                problems.append(
                    FieldProblem(
                        f"{where}.ids.{key}", f"unknown identifier; known: {', '.join(_ID_KEYS)}"
                    )
                )
            elif want is int:
                number = _pci_id(value)
                if number is None:
                    problems.append(
                        FieldProblem(
                            f"{where}.ids.{key}", 'a 16-bit PCI id, e.g. "0x15b3"', value=value
                        )
                    )
                ids[key] = number
            elif not isinstance(value, str) or not value:
                problems.append(
                    FieldProblem(f"{where}.ids.{key}", "a non-empty string", value=value)
                )
            else:
                ids[key] = value
        at = c.get("reported_at")
        when: dt.datetime | None = None
        if at is not None:
            try:
                when = _aware(dt.datetime.fromisoformat(str(at)))
            except ValueError:
                problems.append(FieldProblem(f"{where}.reported_at", "an ISO 8601 time", value=at))
            else:
                if when > utcnow() + FUTURE_SLACK:
                    # a reading from the future would never go stale
                    problems.append(FieldProblem(f"{where}.reported_at", "in the future", value=at))
        source = c.get("source", channel)
        rows.append(
            {
                "component": slot,
                "kind": kind,
                "version": version,
                "channel": channel,
                "staged": staged,
                "identifiers": ids,
                "source": str(source)[:32],
                "reported_at": when,
            }
        )
    if problems:
        raise ValidationError("firmware report refused", problems)
    return model, rows


def _pci_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value, 16)
        except ValueError:
            return None
    else:
        return None
    return number if 0 <= number <= 0xFFFF else None


def _fleet(
    active: Active | None,
    nodes: Sequence[Node],
    inventory: Mapping[str, Sequence[InventoryComponent]],
    plan: bool,
) -> dict[str, Any]:
    by_verdict: dict[str, int] = {}
    by_model: dict[str, dict[str, int]] = {}
    by_component: dict[str, dict[str, int]] = {}
    items = []
    for node in nodes:
        verdict = _judge(active, inventory.get(node.id, []), node, plan=plan)
        by_verdict[verdict.verdict] = by_verdict.get(verdict.verdict, 0) + 1
        model = system_model_of(node) or "(unknown model)"
        per = by_model.setdefault(model, {})
        per[verdict.verdict] = per.get(verdict.verdict, 0) + 1
        for c in verdict.components:
            key = c.component or f"({c.kind}: unknown)"
            comp = by_component.setdefault(key, {})
            comp[c.verdict] = comp.get(c.verdict, 0) + 1
        items.append(
            {
                "node": node.name,
                "verdict": verdict.verdict,
                "reasons": verdict.reasons if active else ["no catalog imported"],
            }
        )
    return {
        "catalog": active.name if active else None,
        "nodes": len(nodes),
        "by_verdict": by_verdict,
        "by_model": by_model,
        "by_component": by_component,
        "items": items,
    }
