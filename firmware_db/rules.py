"""Evaluation: a node's firmware inventory against a catalog -> a verdict per component, a verdict
for the node, reasons a person can act on, and an ordered upgrade plan. Pure: no I/O, no clock
(the caller passes ``now``).

Per component (the worst finding wins; every finding is kept as a reason):

- ``unknown-component``: no catalog component matches its stable identifiers (warn);
- ``unreadable-version``: a channel reported a version that does not parse in the component's
  format (warn: a version that does not match its format is an error, never a guess);
- ``channels-disagree``: two channels report different running versions (Redfish showing the
  staged image, an update pending reboot): both are shown with their times and BOTH are judged;
  the component is never silently taken at one channel's word (warn, or blocked when either
  version is blocked);
- ``known-bad``, ``below-minimum``: the running version is on a blocklist or under the minimum
  (blocked);
- ``unmet-requirement``: the installed release requires another component (or the parent) at a
  version the node does not have (hard: blocked, soft: warn);
- ``stale``: the newest reading is older than the catalog's ``max_report_age`` (warn);
- ``outdated``: below the target (the node's baseline when its model has one, else the newest
  release) (warn);
- ``ok``.

The node is ``blocked`` if any component is, ``warn`` if any warns, else ``compliant``.

The upgrade plan walks each outdated component from its version to its target through releases
that may be installed over the version before (``upgrade_from`` stepping), never stopping on a
known-bad release, and orders the steps so that every step's requirements hold when it runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from firmware_db.model import (
    Catalog,
    Component,
    Identifiers,
    InventoryComponent,
    Reading,
    Release,
)
from firmware_db.versions import Version, VersionError, parse

OK, OUTDATED, STALE = "ok", "outdated", "stale"
UNKNOWN, UNREADABLE, DISAGREE = "unknown-component", "unreadable-version", "channels-disagree"
BELOW_MINIMUM, KNOWN_BAD, UNMET = "below-minimum", "known-bad", "unmet-requirement"
COMPLIANT, WARN, BLOCKED = "compliant", "warn", "blocked"
_SEVERITY = {COMPLIANT: 0, WARN: 1, BLOCKED: 2}
# which finding names the component's verdict when there are several (first wins)
_PRECEDENCE = (KNOWN_BAD, BELOW_MINIMUM, DISAGREE, UNMET, UNREADABLE, UNKNOWN, STALE, OUTDATED, OK)

_OPS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}
_OP_TEXT = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@dataclass(frozen=True)
class Finding:
    verdict: str
    severity: str  # warn | blocked
    reason: str
    rule: str | None = None  # where in the catalog (component id, line)


@dataclass(slots=True)
class ComponentVerdict:
    slot: str
    kind: str
    component: str | None  # catalog id
    verdict: str
    severity: str
    findings: tuple[Finding, ...]
    readings: tuple[Reading, ...]
    version: str | None  # the running version (None when channels disagree or none)
    target: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "kind": self.kind,
            "component": self.component,
            "verdict": self.verdict,
            "severity": self.severity,
            "version": self.version,
            "target": self.target,
            "reasons": [f.reason for f in self.findings],
            "rules": [f.rule for f in self.findings if f.rule],
            "readings": [_reading_dict(r) for r in self.readings],
        }


@dataclass(frozen=True)
class PlanStep:
    slot: str
    component: str
    from_version: str
    to_version: str
    activation: str
    urgency: str
    cves: tuple[str, ...]
    artifact: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "component": self.component,
            "from": self.from_version,
            "to": self.to_version,
            "activation": self.activation,
            "urgency": self.urgency,
            "cves": list(self.cves),
            "artifact": self.artifact,
        }


@dataclass(frozen=True)
class NodeVerdict:
    verdict: str
    components: tuple[ComponentVerdict, ...]
    plan: tuple[PlanStep, ...] = ()
    plan_problems: tuple[str, ...] = ()

    @property
    def reasons(self) -> list[str]:
        return [
            f"{c.slot}: {f.reason}"
            for c in self.components
            for f in c.findings
            if f.severity == self.verdict
        ]

    def blocking(self) -> list[tuple[ComponentVerdict, Finding]]:
        return [(c, f) for c in self.components for f in c.findings if f.severity == BLOCKED]

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reasons": self.reasons,
            "components": [c.as_dict() for c in self.components],
            "plan": [s.as_dict() for s in self.plan],
            "plan_problems": list(self.plan_problems),
        }


# ---------------------------------------------------------------------- matching


class Matcher:
    """Finds the catalog component of a reported one by its stable identifiers, through
    indexes built once per catalog (PSID, PCI ids, SoftwareId, system model)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._by_kind: dict[str, list[Component]] = {}
        for c in catalog.components.values():
            self._by_kind.setdefault(c.kind, []).append(c)
        self._cache: dict[tuple[Identifiers, str | None], Component | None] = {}
        # kinds whose catalog components match on the system model (BIOS, BMC...): only for
        # those does the node's model take part
        self._by_model = {c.kind for c in catalog.components.values() if c.match.system_models}

    def find(self, ids: Identifiers, system_model: str | None = None) -> Component | None:
        """``system_model``: the node's, for a component that reports none of its own."""
        if ids.system_model is not None or ids.kind not in self._by_model:
            system_model = None
        key = (ids, system_model)
        if key in self._cache:
            return self._cache[key]
        if ids.system_model is None and system_model is not None:
            ids = replace(ids, system_model=system_model)
        best: Component | None = None
        best_score = 0
        tie = False
        for c in self._by_kind.get(ids.kind, ()):
            score = _score(c, ids)
            if score > best_score:
                best, best_score, tie = c, score, False
            elif score and score == best_score:
                tie = True
        found = None if tie else best
        if len(self._cache) < 100_000:
            self._cache[key] = found
        return found


def _score(c: Component, ids: Identifiers) -> int:
    """How many identifiers match (0: not this component: a given one differs or none given)."""
    m = c.match
    score = 0
    if m.system_models:
        if ids.system_model not in m.system_models:
            return 0
        score += 1
    for want, have in (
        (m.pci_vendor, ids.pci_vendor),
        (m.pci_device, ids.pci_device),
        (m.pci_subvendor, ids.pci_subvendor),
        (m.pci_subdevice, ids.pci_subdevice),
    ):
        if want is not None:
            if want != have:
                return 0
            score += 1
    if m.psids:
        if ids.psid not in m.psids:
            return 0
        score += 2
    if m.software_ids:
        if ids.software_id not in m.software_ids:
            return 0
        score += 2
    return score


# ---------------------------------------------------------------------- evaluation


@dataclass
class _Seen:
    """One matched component of the node: its consensus version (None if unknown)."""

    slot: str
    component: Component
    version: Version | None
    versions: list[Version] = field(default_factory=list)


class Evaluator:
    """Evaluates nodes against one catalog; reuse it across nodes (indexes, parsed versions and
    upgrade paths are cached)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.matcher = Matcher(catalog)
        self._releases: dict[str, dict[Version, Release]] = {
            cid: {r.version: r for r in c.releases} for cid, c in catalog.components.items()
        }
        self._paths: dict[tuple[str, Version, Version], tuple[Release, ...] | None] = {}
        # fleets repeat themselves: the same version texts, the same findings
        self._parsed: dict[tuple[str, str], Version | str] = {}
        self._judged: dict[tuple[str, str, bool], list[Finding]] = {}
        self._newest_good: dict[str, Version | None] = {}
        self._behind: dict[tuple[str, str, str, str | None], Finding | None] = {}
        self._firsts: dict[
            tuple[str, tuple[tuple[str, str], ...]], tuple[list[Version], list[Finding], int]
        ] = {}

    def _parse(self, text: str, fmt: str) -> Version:
        key = (fmt, text)
        hit = self._parsed.get(key)
        if hit is None:
            try:
                hit = parse(text, fmt)
            except VersionError as exc:
                hit = str(exc)
            if len(self._parsed) < 500_000:
                self._parsed[key] = hit
        if isinstance(hit, str):
            raise VersionError(hit)
        return hit

    # -------------------------------------------------------------- one node

    def evaluate(
        self,
        components: Sequence[InventoryComponent],
        *,
        now: dt.datetime,
        system_model: str | None = None,
        plan: bool = True,
    ) -> NodeVerdict:
        baseline = self.catalog.baseline_for(system_model)
        seen: dict[str, _Seen] = {}  # slot -> the node's matched component
        by_comp: dict[str, list[_Seen]] = {}  # catalog id -> its instances on this node
        partial: list[tuple[InventoryComponent, Component | None, list[Finding], Any]] = []
        for inv in components:
            ids = inv.ids
            comp = self.matcher.find(ids, system_model)
            findings: list[Finding] = []
            readings = inv.readings
            if inv.conflict:
                # the channels do not even agree on what this slot is
                findings.append(
                    Finding(DISAGREE, BLOCKED, f"channels disagree on what this is: {inv.conflict}")
                )
            if comp is None:
                findings.append(
                    Finding(
                        UNKNOWN,
                        WARN,
                        f"{ids.kind} {_ids_text(ids)} matches no catalog component",
                    )
                )
                partial.append((inv, None, findings, readings))
                continue
            running = [r for r in inv.readings if not r.staged]
            distinct, judged, unreadable = self._first(comp, running)
            findings += judged
            if len(distinct) > 1:
                said = "; ".join(
                    f"{r.channel} says {r.version} ({r.at:%Y-%m-%d %H:%M})" for r in running
                )
                findings.append(
                    Finding(
                        DISAGREE,
                        WARN,
                        f"channels disagree on the running version: {said}; an update may be "
                        "pending activation, or one channel reports the staged image",
                        _rule(comp),
                    )
                )
            if not running:
                findings.append(
                    Finding(UNREADABLE, WARN, "no channel reports a running version", _rule(comp))
                )
            else:
                newest = max(r.at for r in running)
                if now - newest > self.catalog.max_report_age:
                    findings.append(
                        Finding(
                            STALE,
                            WARN,
                            f"newest report is from {newest:%Y-%m-%d} (older than "
                            f"{self.catalog.max_report_age.days} days)",
                        )
                    )
            # a staged image runs after the next activation: judged now, before it is live
            for r in inv.readings:
                if r.staged:
                    findings += self._staged_findings(comp, r)
            # one version only when every running reading names it (an unreadable one counts
            # as disagreeing: never silently the readable one)
            version = distinct[0] if len(distinct) == 1 and not unreadable else None
            me = _Seen(inv.slot, comp, version, distinct)
            seen[inv.slot] = me
            by_comp.setdefault(comp.id, []).append(me)
            partial.append((inv, comp, findings, readings))
        # requirements need every component of the node: a second pass
        out: list[ComponentVerdict] = []
        for inv, comp, findings, readings in partial:
            target: Version | None = None
            mine = seen.get(inv.slot) if comp is not None else None
            if comp is not None and mine is not None:
                for v in mine.versions:
                    findings += self._requirement_findings(comp, v, by_comp)
                target = self._target(comp, baseline)
                if mine.version is not None and target is not None:
                    behind = self._outdated(comp, mine.version, target, baseline)
                    if behind is not None:
                        findings.append(behind)
            verdict, severity = _worst(findings)
            out.append(
                ComponentVerdict(
                    slot=inv.slot,
                    kind=inv.ids.kind,
                    component=comp.id if comp else None,
                    verdict=verdict,
                    severity=severity,
                    findings=tuple(findings),
                    readings=readings,
                    version=mine.version.text if mine and mine.version else None,
                    target=target.text if target else None,
                )
            )
        node = max((c.severity for c in out), key=_SEVERITY.__getitem__, default=COMPLIANT)
        steps: tuple[PlanStep, ...] = ()
        problems: tuple[str, ...] = ()
        if plan:
            steps, problems = self._plan(seen, by_comp, baseline)
        return NodeVerdict(node, tuple(out), steps, problems)

    # -------------------------------------------------------------- rules

    def _outdated(
        self, comp: Component, v: Version, target: Version, baseline: Any
    ) -> Finding | None:
        by = baseline.name if baseline and comp.id in baseline.versions else None
        key = (comp.id, v.text, target.text, by)
        if key in self._behind:
            return self._behind[key]
        found = None
        if v < target:
            why = f"baseline {by}" if by else "newest release"
            found = Finding(OUTDATED, WARN, f"{v.text} is below {target.text} ({why})")
        if len(self._behind) < 500_000:
            self._behind[key] = found
        return found

    def _first(
        self, comp: Component, running: Sequence[Reading]
    ) -> tuple[list[Version], list[Finding], int]:
        """The distinct running versions a component's readings name, what the catalog says
        about each (unreadable, known bad, below minimum), and how many readings could not be
        read; cached by the readings' texts."""
        key = (comp.id, tuple((r.version, r.channel) for r in running))
        hit = self._firsts.get(key)
        if hit is not None:
            return hit
        findings: list[Finding] = []
        distinct: list[Version] = []
        unreadable = 0
        for r in running:
            try:
                v = self._parse(r.version, comp.format)
            except VersionError as exc:
                unreadable += 1
                findings.append(
                    Finding(UNREADABLE, WARN, f"{r.channel} reported {exc}", _rule(comp))
                )
                continue
            if v not in distinct:
                distinct.append(v)
        for v in distinct:
            findings += self._version_findings(comp, v, label=len(distinct) > 1)
        result = (distinct, findings, unreadable)
        if len(self._firsts) < 500_000:
            self._firsts[key] = result
        return result

    def _staged_findings(self, comp: Component, r: Reading) -> list[Finding]:
        try:
            v = self._parse(r.version, comp.format)
        except VersionError as exc:
            return [Finding(UNREADABLE, WARN, f"{r.channel} reported a staged {exc}", _rule(comp))]
        return [
            Finding(
                f.verdict,
                f.severity,
                f"staged image (runs after the next activation): {f.reason}",
                f.rule,
            )
            for f in self._version_findings(comp, v, label=False)
        ]

    def _version_findings(self, comp: Component, v: Version, *, label: bool) -> list[Finding]:
        key = (comp.id, v.text, label)
        hit = self._judged.get(key)
        if hit is None:
            hit = self._judge_version(comp, v, label=label)
            if len(self._judged) < 500_000:
                self._judged[key] = hit
        return hit

    def _judge_version(self, comp: Component, v: Version, *, label: bool) -> list[Finding]:
        at = f"{v.text}: " if label else ""
        out: list[Finding] = []
        for kb in comp.known_bad:
            if kb.covers(v):
                out.append(
                    Finding(
                        KNOWN_BAD,
                        BLOCKED,
                        f"{at}{comp.id} {v.text} is known bad: {kb.reason}",
                        _rule(comp, kb.line),
                    )
                )
        if comp.minimum is not None and v < comp.minimum:
            why = f": {comp.minimum_reason}" if comp.minimum_reason else ""
            out.append(
                Finding(
                    BELOW_MINIMUM,
                    BLOCKED,
                    f"{at}{comp.id} {v.text} is below the minimum {comp.minimum.text}{why}",
                    _rule(comp),
                )
            )
        return out

    def _requirement_findings(
        self, comp: Component, v: Version, by_comp: Mapping[str, Sequence[_Seen]]
    ) -> list[Finding]:
        release = self._releases[comp.id].get(v)
        if release is None:
            return []
        out: list[Finding] = []
        for req in release.requires:
            if req.component == "self":
                continue  # a prerequisite of installing it, checked by the plan
            target_id = comp.parent if req.component == "parent" else req.component
            others = [o for o in by_comp.get(target_id or "", ()) if o.versions]
            severity = BLOCKED if req.hard else WARN
            need = f"{target_id} {_OP_TEXT[req.op]} {req.version.text}"
            if not others:
                out.append(
                    Finding(
                        UNMET,
                        severity,
                        f"{comp.id} {v.text} requires {need}, which this node does not report",
                        _rule(comp, req.line),
                    )
                )
                continue
            for other in others:  # every instance must meet it
                for have in other.versions:
                    if not _holds(req.op, have, req.version):
                        out.append(
                            Finding(
                                UNMET,
                                severity,
                                f"{comp.id} {v.text} requires {need} "
                                f"({'hard' if req.hard else 'soft'}); {other.slot} has "
                                f"{have.text}",
                                _rule(comp, req.line),
                            )
                        )
        return out

    def _target(self, comp: Component, baseline: Any) -> Version | None:
        """The baseline's version, else the newest release that is neither known bad nor
        below the minimum."""
        if baseline is not None and comp.id in baseline.versions:
            v: Version = baseline.versions[comp.id]
            return v
        if comp.id not in self._newest_good:
            good = [
                r.version
                for r in comp.releases
                if not any(kb.covers(r.version) for kb in comp.known_bad)
                and not (comp.minimum is not None and r.version < comp.minimum)
            ]
            self._newest_good[comp.id] = good[-1] if good else None
        return self._newest_good[comp.id]

    # -------------------------------------------------------------- plan

    def _path(self, comp: Component, start: Version, goal: Version) -> tuple[Release, ...] | None:
        """The fewest releases that take ``comp`` from ``start`` to ``goal``, each installable
        over the one before (stepping), none known bad (except the goal, never chosen so)."""
        key = (comp.id, start, goal)
        if key in self._paths:
            return self._paths[key]
        candidates = [
            r
            for r in comp.releases
            if start < r.version <= goal
            and (r.version == goal or not any(kb.covers(r.version) for kb in comp.known_bad))
        ]
        frontier: list[tuple[Version, tuple[Release, ...]]] = [(start, ())]
        visited = {start}
        found: tuple[Release, ...] | None = None
        for _ in range(len(candidates) + 1):
            nxt: list[tuple[Version, tuple[Release, ...]]] = []
            for at, path in frontier:
                for r in candidates:
                    if r.version in visited or not r.version > at:
                        continue
                    if r.upgrade_from and at not in r.upgrade_from:
                        continue
                    if _self_blocks(r, at):
                        continue
                    step = (*path, r)
                    if r.version == goal:
                        found = step
                        break
                    visited.add(r.version)
                    nxt.append((r.version, step))
                if found is not None:
                    break
            if found is not None or not nxt:
                break
            # prefer long jumps: try the newest reachable first
            frontier = sorted(nxt, key=lambda item: item[0], reverse=True)
        if len(self._paths) < 200_000:
            self._paths[key] = found
        return found

    def _plan(
        self,
        seen: Mapping[str, _Seen],
        by_comp: Mapping[str, Sequence[_Seen]],
        baseline: Any,
    ) -> tuple[tuple[PlanStep, ...], tuple[str, ...]]:
        problems: list[str] = []
        queues: dict[str, list[Release]] = {}  # slot -> the releases to install, in order
        state: dict[str, Version] = {}  # slot -> its version as the plan goes
        for slot, me in seen.items():
            if me.version is None:
                if me.versions:
                    problems.append(f"{slot}: channels disagree; no plan until they agree")
                continue
            state[slot] = me.version
            goal = self._target(me.component, baseline)
            if goal is None or not me.version < goal:
                continue
            path = self._path(me.component, me.version, goal)
            if path is None:
                problems.append(
                    f"{slot}: no upgrade path from {me.version.text} to {goal.text} "
                    "(stepping or known-bad releases in the way)"
                )
                continue
            queues[slot] = list(path)
        steps: list[PlanStep] = []
        for _ in range(sum(len(q) for q in queues.values()) + 1):
            progressed = False
            for slot in sorted(queues):
                queue = queues[slot]
                if not queue:
                    continue
                release = queue[0]
                comp = seen[slot].component
                if not self._requirements_hold(comp, release, slot, state, by_comp):
                    continue
                steps.append(
                    PlanStep(
                        slot=slot,
                        component=comp.id,
                        from_version=state[slot].text,
                        to_version=release.version.text,
                        activation=release.activation,
                        urgency=release.urgency,
                        cves=release.cves,
                        artifact=release.artifact.url if release.artifact else None,
                    )
                )
                state[slot] = release.version
                queue.pop(0)
                progressed = True
            if not progressed:
                break
        for slot, queue in queues.items():
            if queue:
                problems.append(
                    f"{slot}: {seen[slot].component.id} {queue[0].version.text} needs "
                    + ", ".join(
                        f"{r.component} {_OP_TEXT[r.op]} {r.version.text}"
                        for r in queue[0].requires
                        if r.hard
                    )
                    + " and no step of the plan gets there"
                )
        return tuple(steps), tuple(problems)

    def _requirements_hold(
        self,
        comp: Component,
        release: Release,
        slot: str,
        state: Mapping[str, Version],
        by_comp: Mapping[str, Sequence[_Seen]],
    ) -> bool:
        for req in release.requires:
            if not req.hard:
                continue
            if req.component == "self":
                slots = [slot]
            else:
                target = comp.parent if req.component == "parent" else req.component
                slots = [o.slot for o in by_comp.get(target or "", ())]
            if not slots:
                return False
            for other in slots:
                have = state.get(other)
                if have is None or not _holds(req.op, have, req.version):
                    return False
        return True


def _self_blocks(release: Release, current: Version) -> bool:
    return any(
        req.component == "self" and req.hard and not _holds(req.op, current, req.version)
        for req in release.requires
    )


def _holds(op: str, have: Version, want: Version) -> bool:
    """``have op want``; False for versions of different families (never comparable)."""
    if have.family != want.family:
        return False
    try:
        return bool(_OPS[op](have, want))
    except VersionError:
        return False


def _worst(findings: Iterable[Finding]) -> tuple[str, str]:
    found = list(findings)
    if not found:
        return OK, COMPLIANT
    severity = max((f.severity for f in found), key=_SEVERITY.__getitem__)
    names = {f.verdict for f in found}
    verdict = next(v for v in _PRECEDENCE if v in names or v == OK)
    return verdict, severity


def _rule(comp: Component, line: int | None = None) -> str:
    return f"{comp.id} (catalog line {line or comp.line})" if (line or comp.line) else comp.id


def _ids_text(ids: Identifiers) -> str:
    bits = []
    if ids.system_model:
        bits.append(f"model {ids.system_model}")
    if ids.pci_vendor is not None:
        pci = [ids.pci_vendor, ids.pci_device, ids.pci_subvendor, ids.pci_subdevice]
        bits.append("pci " + ":".join("----" if x is None else f"{x:04x}" for x in pci))
    if ids.psid:
        bits.append(f"psid {ids.psid}")
    if ids.software_id:
        bits.append(f"software id {ids.software_id}")
    return "(" + (", ".join(bits) or "no identifiers") + ")"


def _reading_dict(r: Any) -> dict[str, Any]:
    return {"version": r.version, "channel": r.channel, "at": r.at.isoformat(), "staged": r.staged}
