"""Handlers of /v1 and the health endpoints. Thin: validate (done by routing), call the
inventory/engine/enroll modules, shape the answer."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from provisiond import ansible, events, hooks, rackfile
from provisiond.api import schemas as sc
from provisiond.api.routing import EVERYONE, STAFF, Call, Route
from provisiond.api.routing import json_response as _json
from provisiond.auth import Role
from provisiond.db import Database
from provisiond.errors import (
    BadRequest,
    FieldProblem,
    Forbidden,
    NotFound,
    ProvisionError,
    ValidationError,
)
from provisiond.inventory import (
    decode_cursor,
    encode_cursor,
    event_dict,
    nic_dict,
    node_dict,
    node_page,
    operation_dict,
    resolve_node,
)
from provisiond.lifecycle import INTO_SERVICE, Action
from provisiond.models import Event, Nic, Node, Operation, Rack, Switch, Tenant
from provisiond.workflows.enroll import enroll

INFRA = frozenset({Role.ADMIN, Role.OPERATOR, Role.SCHEDULER})
# What the narrower roles may ask of a node; staff may ask anything.
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.SCHEDULER: frozenset({Action.POWER_ON, Action.POWER_OFF, Action.REBOOT}),
    Role.TENANT: frozenset({Action.POWER_ON, Action.POWER_OFF, Action.REBOOT, Action.REBUILD}),
}


# ------------------------------------------------------------------ health


async def healthz(call: Call) -> web.StreamResponse:
    return _json({"status": "ok"})


async def readyz(call: Call) -> web.StreamResponse:
    svc = call.services
    checks: dict[str, str] = {}
    try:
        await svc.db.ping()
        checks["database"] = "ok"
        rev = await svc.db.current_revision()
        checks["schema"] = f"ok ({rev})" if rev else "not migrated"
    except Exception as exc:  # readiness reports, it does not raise
        checks["database"] = f"unreachable: {type(exc).__name__}"
    checks["engine"] = "ok" if svc.engine.running else "not running"
    if checks.get("schema", "").startswith("ok"):
        checks["secrets"] = await _secrets_check(call)
    ready = all(v.startswith("ok") for v in checks.values())
    return _json(
        {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
    )


async def _secrets_check(call: Call) -> str:
    """Stored BMC passwords must decrypt with the current key (a replaced or lost key file
    otherwise shows up only when a node's next operation fails)."""
    async with call.services.db.read() as s:
        samples = [
            ("BMC", (await s.scalars(
                select(Node.bmc_password_enc).where(Node.bmc_password_enc.is_not(None)).limit(1)
            )).first()),
            ("switch", (await s.scalars(
                select(Switch.password_enc).where(Switch.password_enc.is_not(None)).limit(1)
            )).first()),
        ]  # fmt: skip
    if all(sample is None for _, sample in samples):
        return "ok (none stored)"
    for what, sample in samples:
        if sample is None:
            continue
        try:
            call.services.box.decrypt(sample)
        except ProvisionError:
            return (
                f"cannot decrypt stored {what} passwords with the current key (runbook: secret-key)"
            )
    return "ok"


async def whoami(call: Call) -> web.StreamResponse:
    p = call.who
    return _json({"name": p.name, "role": p.role.value, "tenant": p.tenant})


# ------------------------------------------------------------------ racks


async def _rack_by_name(db: Database, name: str) -> Rack:
    async with db.read() as s:
        rack = (await s.scalars(select(Rack).where(Rack.name == name))).first()
    if rack is None:
        raise NotFound(f"no rack {name!r}", rack=name)
    return rack


async def list_racks(call: Call) -> web.StreamResponse:
    async with call.services.db.read() as s:
        rows = await s.execute(
            select(Rack, func.count(Node.id))
            .outerjoin(Node, Node.rack_id == Rack.id)
            .group_by(Rack.id)
            .order_by(Rack.name)
        )
        items = [
            {"name": r.name, "height": r.height, "location": r.location, "nodes": n}
            for r, n in rows
        ]
    return _json({"items": items})


async def get_rack(call: Call) -> web.StreamResponse:
    rack = await _rack_by_name(call.services.db, call.match("rack"))
    async with call.services.db.read() as s:
        rows = await s.execute(
            select(Node.name, Node.unit, Node.unit_height, Node.state)
            .where(Node.rack_id == rack.id)
            .order_by(Node.unit)
        )
        units = [{"unit": u, "height": h, "node": n, "state": st} for n, u, h, st in rows]
    return _json(
        {
            "name": rack.name,
            "height": rack.height,
            "location": rack.location,
            "nodes": len(units),
            "units": units,
        }
    )


async def enroll_rack(call: Call) -> web.StreamResponse:
    req = call.request
    raw = await req.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            "rack file is not UTF-8 text",
            [FieldProblem("(file)", f"byte {exc.start} is not UTF-8")],
        ) from exc
    if not text.strip():
        raise BadRequest("empty rack file", [FieldProblem("(file)", "no content")])
    fmt = rackfile.detect_format(call.query.filename, req.content_type)
    parsed = rackfile.parse(text, fmt)
    svc = call.services
    result = await enroll(
        svc.db,
        svc.box,
        parsed,
        rack_name=call.match("rack"),
        actor=call.who.name,
        dry_run=call.query.dry_run,
        known_drivers=svc.registry.accepted_names(),
    )
    return _json(result.as_dict(), 201 if result.changed and not result.dry_run else 200)


# ------------------------------------------------------------------ nodes


async def _scope_filter(call: Call, tenant_name: str | None) -> int | None:
    """Tenant id to filter by: the token's own for tenant tokens, else the ?tenant= filter."""
    scope = call.who.scope
    if scope is not None:
        return scope
    if tenant_name is None:
        return None
    async with call.services.db.read() as s:
        tid = (await s.scalars(select(Tenant.id).where(Tenant.name == tenant_name))).first()
    if tid is None:
        raise NotFound(f"no tenant {tenant_name!r}", tenant=tenant_name)
    return tid


async def list_nodes(call: Call) -> web.StreamResponse:
    q: sc.NodeListQuery = call.query
    tenant_id = await _scope_filter(call, q.tenant)
    if call.who.scope is not None and q.tenant is not None and q.tenant != call.who.tenant:
        return _json({"items": [], "next_cursor": None})
    rack_id = None
    if q.rack is not None:
        rack_id = (await _rack_by_name(call.services.db, q.rack)).id
    api_cfg = call.services.settings.api
    limit = q.limit or api_cfg.page_size_default
    if limit > api_cfg.page_size_max:
        raise ValidationError(
            "page too large",
            [
                FieldProblem(
                    "query.limit",
                    f"at most {api_cfg.page_size_max} (api.page_size_max)",
                    value=limit,
                )
            ],
        )
    after = decode_cursor(q.cursor) if q.cursor else None
    async with call.services.db.single_read() as conn:
        items = await node_page(
            conn,
            state=q.state.value if q.state else None,
            rack_id=rack_id,
            tenant_id=tenant_id,
            maintenance=q.maintenance,
            after=after,
            limit=limit + 1,
        )
    more = len(items) > limit
    items = items[:limit]
    next_cursor = encode_cursor(items[-1]["name"]) if more else None
    return _json({"items": items, "next_cursor": next_cursor})


async def _node_detail(call: Call, ref: str) -> dict[str, Any]:
    async with call.services.db.read() as s:
        node = await resolve_node(s, ref, tenant_id=call.who.scope, with_nics=True)
        rack = await s.get(Rack, node.rack_id) if node.rack_id else None
        tenant = await s.get(Tenant, node.tenant_id) if node.tenant_id else None
        return node_dict(
            node,
            rack_name=rack.name if rack else None,
            tenant_name=tenant.name if tenant else None,
            nics=node.nics,
            detail=True,
        )


async def get_node(call: Call) -> web.StreamResponse:
    return _json(await _node_detail(call, call.match("node")))


async def patch_node(call: Call) -> web.StreamResponse:
    body: sc.NodePatch = call.body
    changes = body.model_dump(exclude_none=True)
    if changes.get("boot_loader") == "-":
        changes["boot_loader"] = None
    if not changes:
        raise ValidationError("nothing to change", [FieldProblem("(body)", "no fields given")])
    async with call.services.db.write() as s:
        node = await resolve_node(s, call.match("node"), for_update=True)
        before = {k: getattr(node, k) for k in changes}
        for k, v in changes.items():
            setattr(node, k, v)
        events.record(
            s,
            "node",
            "changed " + ", ".join(f"{k}: {before[k]} -> {v}" for k, v in changes.items()),
            node_id=node.id,
            actor=call.who.name,
            data={"before": before, "after": changes},
        )
        ref = node.id
    return _json(await _node_detail(call, ref))


async def node_action(call: Call) -> web.StreamResponse:
    raw_action = call.match("action")
    try:
        action = Action(raw_action)
    except ValueError:
        raise NotFound(
            f"no action {raw_action!r}; actions: {', '.join(a.value for a in Action)}",
            action=raw_action,
        ) from None
    allowed = ROLE_ACTIONS.get(call.who.role)
    if allowed is not None and action not in allowed:
        raise Forbidden(
            f"role {call.who.role.value} may not {action.value} nodes",
            role=call.who.role.value,
            action=action.value,
        )
    body: sc.ActionRequest = call.body
    params: dict[str, Any] = {"reason": body.reason} if body.reason else {}
    if action in (Action.DEPLOY, Action.REBUILD):
        if body.image:
            params["image"] = body.image  # the engine checks it exists, after the state check
    elif body.image is not None:
        raise ValidationError(
            f"{action.value} takes no image",
            [FieldProblem("image", "only deploy and rebuild take an image", value=body.image)],
        )
    gated = action in INTO_SERVICE  # provide, deploy, rebuild: the node goes to someone
    if body.firmware_override is not None and not gated:
        raise ValidationError(
            f"{action.value} takes no firmware_override",
            [FieldProblem("firmware_override", "only provide, deploy and rebuild are gated")],
        )
    override = None
    if gated and call.services.firmware is not None:
        override = await call.services.firmware.gate(
            call.match("node"),
            override=body.firmware_override,
            actor=call.who.name,
            may_override=call.who.role is Role.ADMIN,
        )
    if override is not None:
        # carried by the operation itself, so an accepted override is never unrecorded
        params["firmware_override"] = override["reason"]
    op = await call.services.engine.submit(
        call.match("node"),
        action.value,
        params=params,
        actor=call.who.name,
        tenant_id=call.who.scope,
    )
    if override is not None and call.services.firmware is not None:
        await call.services.firmware.record_override(override, call.who.name, op["id"])
    resp = _json(op, 202)
    resp.headers["Location"] = f"/v1/operations/{op['id']}"
    return resp


async def ansible_inventory(call: Call) -> web.StreamResponse:
    return _json(await ansible.inventory(call.services.db, tenant_id=call.who.scope))


async def slurm_resume(call: Call) -> web.StreamResponse:
    return await _slurm(call, Action.POWER_ON)


async def slurm_suspend(call: Call) -> web.StreamResponse:
    return await _slurm(call, Action.POWER_OFF)


async def _slurm(call: Call, action: Action) -> web.StreamResponse:
    body: sc.SlurmHookIn = call.body
    out = await hooks.slurm(
        call.services.db,
        call.services.engine,
        body.nodes,
        action,
        actor=call.who.name,
        tenant_id=call.who.scope,
    )
    return _json(out, 202)


async def node_events(call: Call) -> web.StreamResponse:
    q: sc.EventListQuery = call.query
    async with call.services.db.read() as s:
        node = await resolve_node(s, call.match("node"), tenant_id=call.who.scope)
        stmt = select(Event).where(Event.node_id == node.id)
        if q.kind:
            stmt = stmt.where(Event.kind == q.kind)
        if q.after is not None:
            stmt = stmt.where(Event.id > q.after)
        order = Event.id.desc() if q.newest else Event.id
        evs = sorted((await s.scalars(stmt.order_by(order).limit(q.limit))).all(), key=_by_id)
        return _json({"items": [event_dict(e, node.name) for e in evs]})


def _by_id(ev: Event) -> int:
    return ev.id


async def list_nics(call: Call) -> web.StreamResponse:
    q: sc.NicListQuery = call.query
    stmt = select(Nic, Node.name).join(Node, Nic.node_id == Node.id)
    if call.who.scope is not None:
        stmt = stmt.where(Node.tenant_id == call.who.scope)
    if q.mac:
        try:
            stmt = stmt.where(Nic.mac == rackfile.normalise_mac(q.mac))
        except ValueError as exc:
            raise ValidationError(
                "bad mac", [FieldProblem("query.mac", str(exc), value=q.mac)]
            ) from exc
    if q.guid:
        try:
            stmt = stmt.where(Nic.guid == rackfile.normalise_guid(q.guid))
        except ValueError as exc:
            raise ValidationError(
                "bad guid", [FieldProblem("query.guid", str(exc), value=q.guid)]
            ) from exc
    if q.node:
        stmt = stmt.where(Node.name == q.node)
    async with call.services.db.read() as s:
        rows = (await s.execute(stmt.order_by(Node.name, Nic.id).limit(5000))).all()
    return _json({"items": [{**nic_dict(n), "node": name} for n, name in rows]})


# ------------------------------------------------------------------ operations & events


async def list_operations(call: Call) -> web.StreamResponse:
    q: sc.OperationListQuery = call.query
    stmt = select(Operation, Node.name).outerjoin(Node, Operation.node_id == Node.id)
    if call.who.scope is not None:
        stmt = stmt.where(Node.tenant_id == call.who.scope)
    if q.node:
        stmt = stmt.where(Node.name == q.node)
    if q.state:
        stmt = stmt.where(Operation.state == q.state)
    async with call.services.db.read() as s:
        rows = (await s.execute(stmt.order_by(Operation.created_at.desc()).limit(q.limit))).all()
    return _json({"items": [operation_dict(op, name) for op, name in rows]})


async def get_operation(call: Call) -> web.StreamResponse:
    op_id = call.match("op")
    async with call.services.db.read() as s:
        row = (
            await s.execute(
                select(Operation, Node.name, Node.tenant_id)
                .outerjoin(Node, Operation.node_id == Node.id)
                .where(Operation.id == op_id)
            )
        ).first()
    if row is None or (call.who.scope is not None and row[2] != call.who.scope):
        raise NotFound(f"no operation {op_id!r}", operation=op_id)
    return _json(operation_dict(row[0], row[1]))


async def list_events(call: Call) -> web.StreamResponse:
    q: sc.EventListQuery = call.query
    stmt = select(Event, Node.name).outerjoin(Node, Event.node_id == Node.id)
    if call.who.scope is not None:
        stmt = stmt.where(Node.tenant_id == call.who.scope)
    if q.node:
        stmt = stmt.where(Node.name == q.node)
    if q.kind:
        stmt = stmt.where(Event.kind == q.kind)
    if q.after is not None:
        stmt = stmt.where(Event.id > q.after)
    async with call.services.db.read() as s:
        order = Event.id.desc() if q.newest else Event.id
        rows = sorted(
            (await s.execute(stmt.order_by(order).limit(q.limit))).all(), key=lambda r: r[0].id
        )
    return _json({"items": [event_dict(e, name) for e, name in rows]})


def v1_routes() -> list[Route]:
    node_param = {"node": "node name or id"}
    return [
        Route("GET", "/healthz", healthz, "Liveness", "health", roles=None, response=sc.Health),
        Route("GET", "/readyz", readyz, "Readiness", "health", roles=None, response=sc.Health),
        Route("GET", "/v1/whoami", whoami, "Show the caller", "auth", response=sc.WhoAmI),
        Route("GET", "/v1/racks", list_racks, "List racks", "racks", INFRA, response=sc.RackList),
        Route(
            "GET",
            "/v1/racks/{rack}",
            get_rack,
            "Show a rack",
            "racks",
            INFRA,
            response=sc.RackDetail,
            path_params={"rack": "rack name"},
        ),
        Route(
            "POST",
            "/v1/racks/{rack}/enroll",
            enroll_rack,
            "Enroll a rack file",
            "racks",
            STAFF,
            query=sc.EnrollQuery,
            raw_body=("application/yaml", "application/json", "text/csv"),
            raw_schema=rackfile.RackFile,
            response=sc.EnrollOut,
            status=201,
            path_params={"rack": "rack name (must match the file's rack)"},
            description=(
                "Validates the whole file, then writes it in one transaction. Re-sending the "
                "same file changes nothing (200, changed=false). Errors list every bad row "
                "with its line and field (422)."
            ),
        ),
        Route(
            "GET",
            "/v1/nodes",
            list_nodes,
            "List nodes",
            "nodes",
            EVERYONE,
            query=sc.NodeListQuery,
            response=sc.NodePage,
        ),
        Route(
            "GET",
            "/v1/nodes/{node}",
            get_node,
            "Show a node",
            "nodes",
            response=sc.NodeOut,
            path_params=node_param,
        ),
        Route(
            "PATCH",
            "/v1/nodes/{node}",
            patch_node,
            "Change node flags",
            "nodes",
            STAFF,
            body=sc.NodePatch,
            response=sc.NodeOut,
            path_params=node_param,
        ),
        Route(
            "POST",
            "/v1/nodes/{node}/actions/{action}",
            node_action,
            "Act on a node",
            "nodes",
            EVERYONE,
            body=sc.ActionRequest,
            response=sc.OperationOut,
            status=202,
            path_params={**node_param, "action": ", ".join(a.value for a in Action)},
            description="Answers 202 with the operation to poll; 409 if the node is busy or "
            "the action is illegal in its state (the problem names the allowed actions).",
        ),
        Route(
            "GET",
            "/v1/nodes/{node}/events",
            node_events,
            "A node's history",
            "nodes",
            query=sc.EventListQuery,
            response=sc.EventList,
            path_params=node_param,
        ),
        Route(
            "GET",
            "/v1/nics",
            list_nics,
            "Find NICs",
            "nodes",
            query=sc.NicListQuery,
            response=sc.NicList,
        ),
        Route(
            "GET",
            "/v1/operations",
            list_operations,
            "List operations",
            "operations",
            query=sc.OperationListQuery,
            response=sc.OperationList,
        ),
        Route(
            "GET",
            "/v1/operations/{op}",
            get_operation,
            "Show an operation",
            "operations",
            response=sc.OperationOut,
            path_params={"op": "operation id"},
        ),
        Route(
            "GET",
            "/v1/inventory/ansible",
            ansible_inventory,
            "Ansible dynamic inventory (groups by rack, tenant, state)",
            "inventory",
            description="The JSON an inventory script prints for --list: groups rack_<name>, "
            "tenant_<name>, state_<state>, and _meta.hostvars (ansible_host when a NIC has an "
            "address). A tenant token sees its own nodes only.",
        ),
        Route(
            "POST",
            "/v1/hooks/slurm/resume",
            slurm_resume,
            "SLURM ResumeProgram: power on deployed nodes",
            "hooks",
            INFRA,
            body=sc.SlurmHookIn,
            response=sc.SlurmHookOut,
            status=202,
            description="Powers on each named node that is deployed and off; nodes already "
            "on, busy, not deployed or unknown are reported, not acted on. Answers at once.",
        ),
        Route(
            "POST",
            "/v1/hooks/slurm/suspend",
            slurm_suspend,
            "SLURM SuspendProgram: power off deployed nodes",
            "hooks",
            INFRA,
            body=sc.SlurmHookIn,
            response=sc.SlurmHookOut,
            status=202,
        ),
        Route(
            "GET",
            "/v1/events",
            list_events,
            "Event log",
            "events",
            query=sc.EventListQuery,
            response=sc.EventList,
        ),
    ]
