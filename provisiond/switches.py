"""Switch inventory and desired port state: enrollment (rack file or API), a port's desired
state, a node's network binding. Validation first, then one transaction; the reconciler
(provisiond/fabric.py) does the switch I/O.

Never talks to a switch, never stores a password in clear, never accepts a desired state the
switch's allow-lists or port grammar would refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from drivers.switch.base import ChangeSet, Policy, check, parse_vlan_ranges
from drivers.switch.registry import dialect_for
from provisiond import events
from provisiond.crypto import SecretBox
from provisiond.db import Database
from provisiond.errors import Conflict, FieldProblem, NotFound, ProvisionError, ValidationError
from provisiond.fabric import (
    FAILED,
    PENDING,
    QUARANTINED,
    SwitchRecord,
    access,
    port_change,
    system_vlan,
    trunk,
)
from provisiond.inventory import resolve_node
from provisiond.models import Nic, Node, PortBinding, Switch
from provisiond.rackfile import SwitchSpec

_COLUMNS = (
    "driver",
    "address",
    "port",
    "username",
    "allowed_vlans",
    "allowed_ports",
    "provisioning_vlan",
    "quarantine_vlan",
    "repair_drift",
)
SYSTEM_NETWORKS = ("provisioning", "quarantine")


@dataclass
class SwitchUpsert:
    name: str
    created: bool = False
    changes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "created": self.created, "changes": self.changes}


async def upsert_switches(
    s: AsyncSession, specs: Sequence[SwitchSpec], box: SecretBox, actor: str | None
) -> list[SwitchUpsert]:
    """Create or update switches (by name) inside the caller's transaction. A switch whose
    provisioning or quarantine VLAN changes re-resolves the ports bound to that network."""
    if not specs:
        return []
    names = [sp.name for sp in specs]
    existing = {sw.name: sw for sw in await s.scalars(select(Switch).where(Switch.name.in_(names)))}
    out: list[SwitchUpsert] = []
    for spec in specs:
        sw = existing.get(spec.name)
        res = SwitchUpsert(spec.name)
        if sw is None:
            sw = Switch(
                name=spec.name,
                password_enc=box.encrypt(spec.password) if spec.password else None,
                known_vlans={},
                failures=0,
                **{c: getattr(spec, c) for c in _COLUMNS},
            )
            s.add(sw)
            await s.flush()
            res.created = True
            events.record(
                s,
                "switch.enroll",
                f"switch {spec.name} enrolled ({spec.driver} at {spec.address})",
                switch_id=sw.id,
                actor=actor,
                data={"switch": spec.name, "driver": spec.driver},
            )
            out.append(res)
            continue
        res.changes = [c for c in _COLUMNS if getattr(sw, c) != getattr(spec, c)]
        try:
            have_pw = box.decrypt(sw.password_enc) if sw.password_enc else None
        except ProvisionError:
            have_pw = None  # stored under a lost key: the new password replaces it
        # a file or request without a password keeps the one stored (it is write-only: an
        # export cannot carry it back)
        if spec.password is not None and have_pw != spec.password:
            res.changes.append("password")
        if res.changes:
            for c in _COLUMNS:
                setattr(sw, c, getattr(spec, c))
            if "password" in res.changes:
                sw.password_enc = box.encrypt(spec.password) if spec.password else None
            # a new address or login may answer: try at once rather than after the backoff
            sw.next_attempt_at = None
            for net in SYSTEM_NETWORKS:
                if f"{net}_vlan" in res.changes:
                    await _reresolve(s, sw, net)
            await _revisit(s, sw, res.changes)
            events.record(
                s,
                "switch.enroll",
                f"switch {spec.name} updated: {', '.join(res.changes)}",
                switch_id=sw.id,
                actor=actor,
                data={"switch": spec.name, "changes": res.changes},
            )
        out.append(res)
    return out


async def _binding(s: AsyncSession, sw: Switch, port: str) -> PortBinding | None:
    """A port's binding, locked for this transaction (two requests on one port, or a request
    and a pass recording, never both win with the same revision)."""
    return (
        await s.scalars(
            select(PortBinding)
            .where(PortBinding.switch_id == sw.id, PortBinding.port == port)
            .with_for_update()
        )
    ).first()


async def _reresolve(s: AsyncSession, sw: Switch, network: str) -> None:
    rows = await s.scalars(
        select(PortBinding).where(PortBinding.switch_id == sw.id, PortBinding.network == network)
    )
    for b in rows:
        try:
            b.desired = access(system_vlan(sw, network))
        except ValueError:
            # the network went away: quarantine is required, so this is provisioning
            b.desired = access(system_vlan(sw, "quarantine"))
            b.network = "quarantine"
        b.desired_rev += 1
        b.status = PENDING


async def _revisit(s: AsyncSession, sw: Switch, changes: list[str]) -> None:
    """Bindings a re-enrollment puts in doubt become pending: every port when the switch's
    identity changed (a replaced switch has none of what was applied; its VLAN cache goes too),
    the ports the new allow-lists no longer allow when those changed (they go to quarantine at
    the next pass instead of staying in a VLAN that is not allowed any more)."""
    identity = any(c in changes for c in ("driver", "address", "port"))
    allow = any(c in changes for c in ("allowed_vlans", "allowed_ports"))
    if not (identity or allow):
        return
    if identity:
        sw.known_vlans = {}
    policy, dialect = _policy(sw), dialect_for(sw.driver)
    rows = await s.scalars(
        select(PortBinding).where(PortBinding.switch_id == sw.id).with_for_update()
    )
    for b in rows:
        if not identity:
            try:
                check(ChangeSet(ports=(port_change(b.port, b.desired),)), policy, dialect)
                continue
            except ValidationError:
                pass
        b.desired_rev += 1
        b.status = PENDING


async def enroll_switch(
    db: Database, box: SecretBox, spec: SwitchSpec, actor: str | None
) -> SwitchUpsert:
    async with db.write() as s:
        return (await upsert_switches(s, [spec], box, actor))[0]


async def get_switch(s: AsyncSession, name: str) -> Switch:
    sw = (await s.scalars(select(Switch).where(Switch.name == name))).first()
    if sw is None:
        raise NotFound(f"no switch {name!r}", switch=name)
    return sw


async def delete_switch(db: Database, name: str, actor: str | None) -> None:
    async with db.write() as s:
        sw = await get_switch(s, name)
        bound = (
            await s.scalars(select(PortBinding.port).where(PortBinding.switch_id == sw.id))
        ).all()
        if bound:
            raise Conflict(
                f"switch {name} still manages {len(bound)} port(s) ({', '.join(bound[:5])}"
                + (", ..." if len(bound) > 5 else "")
                + "); release them first (DELETE /v1/switches/{name}/ports/{port})",
                switch=name,
            )
        events.record(
            s, "switch.delete", f"switch {name} removed", actor=actor, data={"switch": name}
        )
        await s.delete(sw)


def switch_dict(sw: Switch, counts: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "name": sw.name,
        "driver": sw.driver,
        "address": sw.address,
        "port": sw.port,
        "username": sw.username,
        "password_set": sw.password_enc is not None,
        "allowed_vlans": sw.allowed_vlans,
        "allowed_ports": sw.allowed_ports,
        "provisioning_vlan": sw.provisioning_vlan,
        "quarantine_vlan": sw.quarantine_vlan,
        "repair_drift": sw.repair_drift,
        "ports": counts or {},
        "failures": sw.failures,
        "last_error": sw.last_error,
        "next_attempt_at": sw.next_attempt_at,
        "last_applied_at": sw.last_applied_at,
        "last_drift_check_at": sw.last_drift_check_at,
    }


# --------------------------------------------------------------------------- desired state


def _policy(sw: Switch) -> Policy:
    return Policy.parse(sw.allowed_vlans, sw.allowed_ports)


def desired_state(
    mode: Literal["access", "trunk"],
    vlan: int | None,
    native_vlan: int | None,
    allowed_vlans: str | None,
) -> dict[str, Any]:
    """The desired-state dict of a request; ValidationError names the bad field."""
    problems: list[FieldProblem] = []
    if mode == "access":
        if vlan is None:
            problems.append(FieldProblem("vlan", "access mode needs a vlan"))
        if native_vlan is not None or allowed_vlans is not None:
            problems.append(
                FieldProblem("mode", "access ports take vlan only (native/allowed are trunk)")
            )
        if problems:
            raise ValidationError("bad port state", problems)
        assert vlan is not None
        return access(vlan)
    if vlan is not None:
        problems.append(FieldProblem("vlan", "a trunk takes native_vlan and allowed_vlans"))
    allowed: set[int] = set()
    if allowed_vlans:
        try:
            allowed = set(parse_vlan_ranges(allowed_vlans))
        except ValueError as exc:
            problems.append(FieldProblem("allowed_vlans", str(exc), value=allowed_vlans))
    if native_vlan is None:
        # untagged traffic on a trunk without one lands in whatever the platform defaults to
        # (VLAN 1, shared by every unused port): say which VLAN it is, a dedicated unused one
        # when nothing should be untagged
        problems.append(
            FieldProblem("native_vlan", "a trunk needs its native (untagged) VLAN named")
        )
    if problems:
        raise ValidationError("bad port state", problems)
    return trunk(native_vlan, allowed)


def _check_port(sw: Switch, port: str, desired: dict[str, Any], where: str = "") -> None:
    """The switch would accept this (dialect grammar, allow-lists): raises ValidationError with
    the fields named as the request names them (``port``, ``vlan``, ...; prefixed by ``where``
    when given)."""
    try:
        check(ChangeSet(ports=(port_change(port, desired),)), _policy(sw), dialect_for(sw.driver))
    except ValidationError as exc:
        problems = []
        for p in exc.problems:
            name = p.where.removeprefix("ports[0].")
            problems.append(
                FieldProblem(
                    f"{where}.{name}" if where else name,
                    f"{p.message} (switch {sw.name})",
                    p.line,
                    p.value,
                )
            )
        raise ValidationError(f"switch {sw.name} refuses this port state", problems) from exc


async def set_port(
    db: Database, switch: str, port: str, desired: dict[str, Any], actor: str | None
) -> dict[str, Any]:
    """Set a port's desired state (source "api"); unchanged desired state changes nothing."""
    from provisiond.fabric import binding_dict

    async with db.write() as s:
        sw = await get_switch(s, switch)
        _check_port(sw, port, desired)
        b = await _binding(s, sw, port)
        if b is None:
            b = PortBinding(
                switch_id=sw.id,
                port=port,
                source="api",
                desired=desired,
                desired_rev=1,
                applied_rev=0,
                status=PENDING,
            )
            s.add(b)
        elif (
            b.desired != desired
            or b.source != "api"
            or b.releasing
            or b.status in (QUARANTINED, FAILED)  # the same state again: try it again
        ):
            b.desired, b.source, b.node_id, b.network = desired, "api", None, None
            b.desired_rev += 1
            b.status, b.releasing, b.quarantine_owed = PENDING, False, False
        else:
            return binding_dict(b, sw.name)
        await s.flush()
        events.record(
            s,
            "switch.port",
            f"switch {switch} port {port}: desired {desired}",
            switch_id=sw.id,
            actor=actor,
            data={"switch": switch, "port": port, "desired": desired},
        )
        return binding_dict(b, sw.name)


async def release_port(
    db: Database, switch: str, port: str, actor: str | None, *, leave: bool = False
) -> dict[str, Any] | None:
    """Stop managing a port. It goes to the switch's quarantine VLAN first (a released port
    must not stay in a tenant's network) and the binding is removed once that is confirmed;
    ``leave``: forget it at once, leaving it as it is on the switch."""
    from provisiond.fabric import binding_dict

    async with db.write() as s:
        sw = await get_switch(s, switch)
        b = await _binding(s, sw, port)
        if b is None:
            raise NotFound(f"switch {switch} does not manage port {port}", switch=switch)
        if leave:
            await s.delete(b)
            events.record(
                s,
                "switch.port",
                f"switch {switch} port {port}: no longer managed (left as it is on the switch)",
                switch_id=sw.id,
                actor=actor,
                data={"switch": switch, "port": port},
            )
            return None
        assert sw.quarantine_vlan is not None  # required at enrollment
        b.desired, b.network, b.source, b.node_id = access(sw.quarantine_vlan), None, "api", None
        b.desired_rev += 1
        b.status, b.releasing = PENDING, True
        events.record(
            s,
            "switch.port",
            f"switch {switch} port {port}: released, going to quarantine VLAN "
            f"{sw.quarantine_vlan}, then no longer managed",
            switch_id=sw.id,
            actor=actor,
            data={"switch": switch, "port": port},
        )
        await s.flush()
        return binding_dict(b, sw.name)


async def bind_node(
    db: Database,
    node_ref: str,
    *,
    network: str | None,
    vlan: int | None,
    actor: str | None,
) -> dict[str, Any]:
    """Put every cabled Ethernet NIC of a node (switch + port known) on a system network
    (provisioning | quarantine: each switch's own VLAN) or an access VLAN. All or nothing:
    every port is checked against its switch first."""
    async with db.write() as s:
        return await _bind_in(s, node_ref, network=network, vlan=vlan, actor=actor)


async def bind_nodes(
    db: Database, moves: Sequence[tuple[str, str | None, int | None]], actor: str | None
) -> dict[str, str]:
    """Many ``(node, network, vlan)`` moves in one transaction (the follower moves hundreds of
    nodes at once); a node refused does not stop the others. Returns the refusals by node."""
    refused: dict[str, str] = {}
    async with db.write() as s:
        for node_ref, network, vlan in moves:
            try:
                await _bind_in(s, node_ref, network=network, vlan=vlan, actor=actor)
            except ProvisionError as exc:  # raised before anything of it was written
                problems = exc.problems if isinstance(exc, ValidationError) else []
                refused[node_ref] = "; ".join(
                    [exc.message, *(f"{p.where}: {p.message}" for p in problems)]
                )
    return refused


async def _bind_in(
    s: AsyncSession, node_ref: str, *, network: str | None, vlan: int | None, actor: str | None
) -> dict[str, Any]:
    """bind_node inside the caller's transaction: every check comes before the first write."""
    from provisiond.fabric import binding_dict

    if (network is None) == (vlan is None):
        raise ValidationError(
            "give a network or a vlan",
            [FieldProblem("network", "exactly one of network and vlan")],
        )
    node: Node = await resolve_node(s, node_ref, for_update=True)
    nics = list(
        await s.scalars(
            select(Nic).where(Nic.node_id == node.id, Nic.kind == "ethernet").order_by(Nic.id)
        )
    )
    cabled = [n for n in nics if n.switch_name and n.switch_port]
    names = sorted({n.switch_name for n in cabled if n.switch_name})
    switches = {
        sw.name: sw for sw in await s.scalars(select(Switch).where(Switch.name.in_(names)))
    }
    skipped = [
        {"mac": n.mac, "reason": "no switch port known (rack file or LLDP)"}
        for n in nics
        if not (n.switch_name and n.switch_port)
    ] + [
        {"mac": n.mac, "reason": f"switch {n.switch_name} is not enrolled"}
        for n in cabled
        if n.switch_name not in switches
    ]
    plan: list[tuple[Switch, str, dict[str, Any]]] = []
    problems: list[FieldProblem] = []
    for n in cabled:
        sw = switches.get(n.switch_name or "")
        if sw is None:
            continue
        assert n.switch_port is not None
        try:
            want = access(system_vlan(sw, network)) if network else access(vlan or 0)
            _check_port(sw, n.switch_port, want, f"{sw.name}:{n.switch_port}")
        except ValueError as exc:
            problems.append(FieldProblem("network", str(exc), value=network))
            continue
        except ValidationError as exc:
            problems += exc.problems
            continue
        plan.append((sw, n.switch_port, want))
    if problems:
        raise ValidationError(f"node {node.name}: cannot bind its ports", problems)
    out = []
    for sw, port, want in plan:
        b = await _binding(s, sw, port)
        if b is None:
            b = PortBinding(
                switch_id=sw.id,
                port=port,
                desired=want,
                desired_rev=1,
                applied_rev=0,
                status=PENDING,
            )
            s.add(b)
        elif b.desired != want or b.releasing or b.status in (QUARANTINED, FAILED):
            b.desired = want
            b.desired_rev += 1
            b.status, b.releasing, b.quarantine_owed = PENDING, False, False
        b.source, b.node_id, b.network = "node", node.id, network
        await s.flush()
        out.append(binding_dict(b, sw.name, node.name))
    events.record(
        s,
        "network",
        f"ports of {node.name} -> "
        + (f"{network} network" if network else f"VLAN {vlan}")
        + f" ({len(out)} port(s), {len(skipped)} NIC(s) skipped)",
        node_id=node.id,
        actor=actor,
        data={
            "network": network,
            "vlan": vlan,
            "ports": [{"switch": b["switch"], "port": b["port"]} for b in out],
            "skipped": skipped,
        },
    )
    return {"node": node.name, "ports": out, "skipped": skipped}


def record_of(sw: Switch, box: SecretBox) -> SwitchRecord:
    return SwitchRecord.of(sw, box)
