"""Handlers of /v1/switches and /v1/nodes/{node}/network: switch enrollment, desired port state,
plans, forced passes, drift checks. Thin: provisiond/switches.py validates and writes,
provisiond/fabric.py talks to the switches."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from provisiond import fabric
from provisiond import switches as sw_service
from provisiond.api import schemas as sc
from provisiond.api.routing import STAFF, Call, Route
from provisiond.api.routing import json_response as _json
from provisiond.auth import Role
from provisiond.fabric import Reconciler
from provisiond.inventory import event_dict
from provisiond.models import Event, Node, PortBinding, Switch
from provisiond.rackfile import SwitchSpec

ADMIN = frozenset({Role.ADMIN})


def _reconciler(call: Call) -> Reconciler:
    rec = call.services.switches
    assert rec is not None, "the switch reconciler is part of every daemon"
    return rec


async def _detail(call: Call, name: str) -> dict[str, Any]:
    counts = await fabric.binding_counts(call.services.db)
    async with call.services.db.read() as s:
        sw = await sw_service.get_switch(s, name)
        rows = await s.execute(
            select(PortBinding, Node.name)
            .outerjoin(Node, Node.id == PortBinding.node_id)
            .where(PortBinding.switch_id == sw.id)
            .order_by(PortBinding.port)
        )
        out = sw_service.switch_dict(sw, counts.get(sw.id))
        out["bindings"] = [fabric.binding_dict(b, sw.name, node) for b, node in rows]
    return out


async def list_switches(call: Call) -> web.StreamResponse:
    counts = await fabric.binding_counts(call.services.db)
    async with call.services.db.read() as s:
        rows = await s.scalars(select(Switch).order_by(Switch.name))
        items = [sw_service.switch_dict(sw, counts.get(sw.id)) for sw in rows]
    return _json({"items": items})


async def enroll_switch(call: Call) -> web.StreamResponse:
    spec: SwitchSpec = call.body
    res = await sw_service.enroll_switch(call.services.db, call.services.box, spec, call.who.name)
    _reconciler(call).wake()
    return _json(
        {**res.as_dict(), "switch": await _detail(call, spec.name)}, 201 if res.created else 200
    )


async def get_switch(call: Call) -> web.StreamResponse:
    return _json(await _detail(call, call.match("switch")))


async def delete_switch(call: Call) -> web.StreamResponse:
    await sw_service.delete_switch(call.services.db, call.match("switch"), call.who.name)
    return web.Response(status=204)


async def list_ports(call: Call) -> web.StreamResponse:
    detail = await _detail(call, call.match("switch"))
    return _json({"items": detail["bindings"]})


async def set_port(call: Call) -> web.StreamResponse:
    body: sc.PortStateIn = call.body
    desired = sw_service.desired_state(body.mode, body.vlan, body.native_vlan, body.allowed_vlans)
    out = await sw_service.set_port(
        call.services.db, call.match("switch"), call.match("port"), desired, call.who.name
    )
    _reconciler(call).wake()
    return _json(out, 202 if not out["in_sync"] else 200)


async def release_port(call: Call) -> web.StreamResponse:
    q: sc.ReleaseQuery = call.query
    out = await sw_service.release_port(
        call.services.db, call.match("switch"), call.match("port"), call.who.name, leave=q.leave
    )
    if out is None:
        return web.Response(status=204)
    _reconciler(call).wake()
    return _json(out, 202)


async def switch_plan(call: Call) -> web.StreamResponse:
    return _json(await fabric.plan(call.services.db, call.services.box, call.match("switch")))


async def switch_apply(call: Call) -> web.StreamResponse:
    q: sc.SwitchApplyQuery = call.query
    res = await _reconciler(call).reconcile(call.match("switch"), retry_failed=q.retry)
    return _json(res.as_dict())


async def switch_drift(call: Call) -> web.StreamResponse:
    res = await _reconciler(call).check_drift(call.match("switch"))
    return _json(res.as_dict())


async def switch_lldp(call: Call) -> web.StreamResponse:
    return _json(await _reconciler(call).cabling(call.match("switch")))


async def switch_events(call: Call) -> web.StreamResponse:
    q: sc.EventListQuery = call.query
    async with call.services.db.read() as s:
        sw = await sw_service.get_switch(s, call.match("switch"))
        stmt = select(Event).where(Event.switch_id == sw.id)
        if q.kind:
            stmt = stmt.where(Event.kind == q.kind)
        if q.after is not None:
            stmt = stmt.where(Event.id > q.after)
        order = Event.id.desc() if q.newest else Event.id
        evs = sorted((await s.scalars(stmt.order_by(order).limit(q.limit))).all(), key=_by_id)
        return _json({"items": [event_dict(e) for e in evs]})


def _by_id(ev: Event) -> int:
    return ev.id


async def set_node_network(call: Call) -> web.StreamResponse:
    body: sc.NodeNetworkIn = call.body
    out = await sw_service.bind_node(
        call.services.db,
        call.match("node"),
        network=body.network,
        vlan=body.vlan,
        actor=call.who.name,
    )
    _reconciler(call).wake()
    return _json(out, 202)


async def get_node_network(call: Call) -> web.StreamResponse:
    from provisiond.inventory import resolve_node

    async with call.services.db.read() as s:
        node = await resolve_node(s, call.match("node"))
        rows = await s.execute(
            select(PortBinding, Switch.name)
            .join(Switch, Switch.id == PortBinding.switch_id)
            .where(PortBinding.node_id == node.id)
            .order_by(Switch.name, PortBinding.port)
        )
        ports = [fabric.binding_dict(b, sw, node.name) for b, sw in rows]
    return _json({"node": node.name, "ports": ports, "skipped": []})


def switch_routes() -> list[Route]:
    p = {"switch": "switch name"}
    pp = {**p, "port": "port name as the switch writes it (Ethernet1, swp1, ge-0/0/1, ...)"}
    return [
        Route("GET", "/v1/switches", list_switches, "List switches", "switches", STAFF,
              response=sc.SwitchList),
        Route(
            "POST",
            "/v1/switches",
            enroll_switch,
            "Enroll or update a switch",
            "switches",
            ADMIN,
            body=SwitchSpec,
            response=sc.SwitchEnrollOut,
            status=201,
            description="Creates the switch (201) or updates it (200, with the changed fields). "
            "The password is encrypted at rest and never shown again.",
        ),
        Route("GET", "/v1/switches/{switch}", get_switch, "Show a switch and its ports",
              "switches", STAFF, response=sc.SwitchOut, path_params=p),
        Route("DELETE", "/v1/switches/{switch}", delete_switch, "Remove a switch",
              "switches", ADMIN, status=204, path_params=p,
              description="Refused (409) while the switch manages ports."),
        Route("GET", "/v1/switches/{switch}/ports", list_ports, "A switch's managed ports",
              "switches", STAFF, path_params=p),
        Route(
            "PUT",
            "/v1/switches/{switch}/ports/{port}",
            set_port,
            "Set a port's desired state",
            "switches",
            STAFF,
            body=sc.PortStateIn,
            response=sc.PortBindingOut,
            status=202,
            path_params=pp,
            description="Checked against the switch's port grammar and allow-lists at once "
            "(422), then applied by the reconciler within seconds (202).",
        ),
        Route("DELETE", "/v1/switches/{switch}/ports/{port}", release_port,
              "Stop managing a port", "switches", STAFF, query=sc.ReleaseQuery,
              response=sc.PortBindingOut, status=202, path_params=pp,
              description="The port goes to the switch's quarantine VLAN, then the binding is "
              "removed (202); ?leave=true forgets it at once, left as it is (204)."),
        Route("GET", "/v1/switches/{switch}/plan", switch_plan,
              "What the next pass would send", "switches", STAFF, response=sc.PlanOut,
              path_params=p),
        Route("POST", "/v1/switches/{switch}/apply", switch_apply, "Run a pass now",
              "switches", STAFF, query=sc.SwitchApplyQuery, response=sc.PassOut, path_params=p),
        Route("POST", "/v1/switches/{switch}/drift", switch_drift, "Check for drift now",
              "switches", STAFF, response=sc.DriftOut, path_params=p),
        Route("GET", "/v1/switches/{switch}/lldp", switch_lldp,
              "LLDP neighbours checked against the inventory's cabling", "switches", STAFF,
              response=sc.CablingOut, path_params=p),
        Route("GET", "/v1/switches/{switch}/events", switch_events, "A switch's history",
              "switches", STAFF, query=sc.EventListQuery, response=sc.EventList, path_params=p),
        Route(
            "PUT",
            "/v1/nodes/{node}/network",
            set_node_network,
            "Bind a node's switch ports",
            "nodes",
            STAFF,
            body=sc.NodeNetworkIn,
            response=sc.NodeNetworkOut,
            status=202,
            path_params={"node": "node name or id"},
        ),
        Route("GET", "/v1/nodes/{node}/network", get_node_network, "A node's switch ports",
              "nodes", STAFF, response=sc.NodeNetworkOut,
              path_params={"node": "node name or id"}),
    ]  # fmt: skip
