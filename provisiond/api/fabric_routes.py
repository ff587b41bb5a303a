"""Handlers of /v1/fabrics: InfiniBand fabrics, their partitions' desired state, plans (dry
runs), forced passes and read-backs. Thin: provisiond/partitions.py validates, writes and talks
to the subnet managers through the fabric drivers."""

from __future__ import annotations

from aiohttp import web

from provisiond import allocations, audit, tenants, webhooks
from provisiond import partitions as ib
from provisiond.api import schemas as sc
from provisiond.api.routing import STAFF, Call, Route
from provisiond.api.routing import json_response as _json
from provisiond.auth import Role
from provisiond.partitions import PartitionReconciler

ADMIN = frozenset({Role.ADMIN})
# tenants act on their own allocations (the handlers scope them); schedulers only call hooks
EVERYONE_BUT_SCHEDULER = frozenset({Role.ADMIN, Role.OPERATOR, Role.TENANT})


def _reconciler(call: Call) -> PartitionReconciler:
    rec = call.services.partitions
    assert rec is not None, "the partition reconciler is part of every daemon"
    return rec


async def list_fabrics(call: Call) -> web.StreamResponse:
    return _json({"items": await ib.list_fabrics(call.services.db)})


async def create_fabric(call: Call) -> web.StreamResponse:
    spec = ib.fabric_spec(call.body.model_dump(exclude_unset=True), call.services.settings.fabrics)
    out = await ib.create_fabric(call.services.db, call.services.box, spec, call.who.name)
    _reconciler(call).wake()
    return _json(out, 201)


async def get_fabric(call: Call) -> web.StreamResponse:
    return _json(await ib.show_fabric(call.services.db, call.match("fabric")))


async def delete_fabric(call: Call) -> web.StreamResponse:
    await ib.delete_fabric(call.services.db, call.match("fabric"), call.who.name)
    return web.Response(status=204)


async def get_partitions(call: Call) -> web.StreamResponse:
    return _json(await ib.partitions_view(call.services.db, call.match("fabric")))


async def add_partition(call: Call) -> web.StreamResponse:
    spec = ib.partition_spec(call.body.model_dump(exclude_unset=True))
    out = await ib.allocate_partition(call.services.db, call.match("fabric"), spec, call.who.name)
    _reconciler(call).wake()
    return _json(out, 201)


async def set_partition(call: Call) -> web.StreamResponse:
    spec = ib.partition_spec(call.body.model_dump(exclude_unset=True))
    out, created = await ib.set_partition(
        call.services.db, call.match("fabric"), call.match("pkey"), spec, call.who.name
    )
    _reconciler(call).wake()
    return _json(out, 201 if created else 200)


async def remove_partition(call: Call) -> web.StreamResponse:
    out = await ib.remove_partition(
        call.services.db, call.match("fabric"), call.match("pkey"), call.who.name
    )
    _reconciler(call).wake()
    return _json(out, 202)


async def fabric_plan(call: Call) -> web.StreamResponse:
    return _json(await ib.plan(call.services.db, call.services.box, call.match("fabric")))


async def fabric_apply(call: Call) -> web.StreamResponse:
    res = await _reconciler(call).reconcile(call.match("fabric"), force=True)
    return _json(res.as_dict())


async def fabric_drift(call: Call) -> web.StreamResponse:
    return _json(await _reconciler(call).check_drift(call.match("fabric")))


async def create_tenant(call: Call) -> web.StreamResponse:
    body: sc.TenantIn = call.body
    out, changed = await tenants.create_tenant(
        call.services.db, body.name, vlan=body.vlan, actor=call.who.name
    )
    _reconciler(call).wake()
    return _json(out, 201 if changed else 200)


async def list_tenants(call: Call) -> web.StreamResponse:
    return _json({"items": await tenants.list_tenants(call.services.db)})


async def get_tenant(call: Call) -> web.StreamResponse:
    return _json(await tenants.show_tenant(call.services.db, call.match("tenant")))


async def delete_tenant(call: Call) -> web.StreamResponse:
    out = await tenants.delete_tenant(call.services.db, call.match("tenant"), call.who.name)
    _reconciler(call).wake()
    return _json(out, 202)


async def fabric_audit(call: Call) -> web.StreamResponse:
    switches = call.services.switches
    assert switches is not None
    report = await audit.run(call.services.db, switches, _reconciler(call), actor=call.who.name)
    return _json(report)


async def create_allocation(call: Call) -> web.StreamResponse:
    body: sc.AllocationIn = call.body
    out = await allocations.allocate(
        call.services.db,
        call.services.engine,
        call.match("tenant"),
        count=body.count,
        image=body.image,
        constraints=allocations.parse_constraints(body.constraints),
        actor=call.who.name,
        tenant_scope=call.who.scope,
        firmware=call.services.firmware,
    )
    return _json(out, 201)


async def list_allocations(call: Call) -> web.StreamResponse:
    q: sc.AllocationListQuery = call.query
    items = await allocations.list_allocations(
        call.services.db, tenant=q.tenant, include_released=q.all, tenant_scope=call.who.scope
    )
    return _json({"items": items})


async def get_allocation(call: Call) -> web.StreamResponse:
    return _json(
        await allocations.show(call.services.db, call.match("id"), tenant_scope=call.who.scope)
    )


async def release_allocation(call: Call) -> web.StreamResponse:
    out = await allocations.release(
        call.services.db, call.services.engine, call.match("id"), actor=call.who.name,
        tenant_scope=call.who.scope,
    )  # fmt: skip
    return _json(out, 202)


async def release_allocated_node(call: Call) -> web.StreamResponse:
    out = await allocations.release(
        call.services.db, call.services.engine, call.match("id"), actor=call.who.name,
        tenant_scope=call.who.scope, node=call.match("node"),
    )  # fmt: skip
    return _json(out, 202)


async def create_webhook(call: Call) -> web.StreamResponse:
    body: sc.WebhookIn = call.body
    out = await webhooks.subscribe(
        call.services.db, call.services.box, body.model_dump(exclude_unset=True), call.who.name
    )
    return _json(out, 201)


async def list_webhooks(call: Call) -> web.StreamResponse:
    return _json({"items": await webhooks.subscriptions(call.services.db)})


async def delete_webhook(call: Call) -> web.StreamResponse:
    await webhooks.unsubscribe(call.services.db, call.match("id"))
    return web.Response(status=204)


async def webhook_deliveries(call: Call) -> web.StreamResponse:
    return _json({"items": await webhooks.deliveries(call.services.db, call.match("id"))})


def fabric_routes() -> list[Route]:
    f = {"fabric": "fabric name"}
    fp = {**f, "pkey": "P_Key, 0x0001-0x7ffe"}
    return [
        Route("GET", "/v1/fabrics", list_fabrics, "List InfiniBand fabrics", "fabrics", STAFF,
              response=sc.FabricList),
        Route("POST", "/v1/fabrics", create_fabric, "Add an InfiniBand fabric", "fabrics", ADMIN,
              body=sc.FabricIn, response=sc.FabricOut, status=201,
              description="The driver's settings are checked when given (422 naming the key). "
              "Nothing is written to the subnet manager until a partition is set or the "
              "fabric is applied."),
        Route("GET", "/v1/fabrics/{fabric}", get_fabric, "Show a fabric", "fabrics", STAFF,
              response=sc.FabricOut, path_params=f),
        Route("DELETE", "/v1/fabrics/{fabric}", delete_fabric, "Remove a fabric", "fabrics",
              ADMIN, status=204, path_params=f,
              description="Refused (409) while it has partitions, removing ones included."),
        Route("GET", "/v1/fabrics/{fabric}/partitions", get_partitions,
              "Partitions: desired, applied and observed", "fabrics", STAFF,
              response=sc.PartitionsView, path_params=f),
        Route("POST", "/v1/fabrics/{fabric}/partitions", add_partition,
              "Add a partition on the lowest free P_Key", "fabrics", ADMIN,
              body=sc.PartitionIn, response=sc.PartitionOut, status=201, path_params=f,
              description="A key is free when no partition holds it, none being removed holds "
              "it and the subnet manager's last read-back did not show it."),
        Route("PUT", "/v1/fabrics/{fabric}/partitions/{pkey}", set_partition,
              "Set a partition's desired state", "fabrics", ADMIN, body=sc.PartitionIn,
              response=sc.PartitionOut, path_params=fp,
              description="The whole set is checked first: a port holding more keys than "
              "port_key_limit, a membership word other than full/limited, or a key outside "
              "the fabric's range is refused (422). The reconciler applies it within seconds."),
        Route("DELETE", "/v1/fabrics/{fabric}/partitions/{pkey}", remove_partition,
              "Remove a partition", "fabrics", ADMIN, response=sc.PartitionOut, status=202,
              path_params=fp,
              description="The key stays reserved until a read-back shows it gone."),
        Route("POST", "/v1/fabrics/{fabric}/plan", fabric_plan,
              "Dry run: the diff and the rendered file or requests", "fabrics", STAFF,
              response=sc.FabricPlanOut, path_params=f),
        Route("POST", "/v1/fabrics/{fabric}/apply", fabric_apply, "Run a pass now", "fabrics",
              ADMIN, response=sc.FabricPassOut, path_params=f),
        Route("POST", "/v1/fabrics/{fabric}/drift", fabric_drift, "Read back and compare now",
              "fabrics", STAFF, response=sc.FabricDriftOut, path_params=f),
        Route("GET", "/v1/fabric/audit", fabric_audit, "Isolation audit", "fabrics", STAFF,
              description="Reads every managed switch port and every partition from the "
              "devices and proves, or refutes with the exact ports and GUIDs, that no port or "
              "GUID is in two tenants' networks, each is as desired, and none belongs to a node "
              "outside its tenant. A device that cannot be read is a finding (unverified)."),
        Route("POST", "/v1/tenants/{tenant}/allocations", create_allocation,
              "Allocate nodes to a tenant", "tenants", EVERYONE_BUT_SCHEDULER,
              body=sc.AllocationIn, status=201, path_params={"tenant": "tenant name"},
              description="Picks available nodes matching the constraints (spread across racks "
              "unless spread is false), reserves them atomically (two requests never get one "
              "node) and deploys each with the image; 409 with how many match when too few."),
        Route("GET", "/v1/allocations", list_allocations, "Allocations, oldest first",
              "tenants", EVERYONE_BUT_SCHEDULER, query=sc.AllocationListQuery,
              description="A tenant token sees its own tenant's only."),
        Route("GET", "/v1/allocations/{id}", get_allocation, "An allocation and its nodes",
              "tenants", EVERYONE_BUT_SCHEDULER, path_params={"id": "allocation id"}),
        Route("DELETE", "/v1/allocations/{id}", release_allocation, "Release an allocation",
              "tenants", EVERYONE_BUT_SCHEDULER, status=202, path_params={"id": "allocation id"},
              description="Undeploys every node; cleaning brings them back to available, then "
              "they leave the tenant."),
        Route("DELETE", "/v1/allocations/{id}/nodes/{node}", release_allocated_node,
              "Release one node of an allocation", "tenants", EVERYONE_BUT_SCHEDULER,
              status=202, path_params={"id": "allocation id", "node": "node name"}),
        Route("POST", "/v1/webhooks", create_webhook, "Subscribe a URL to events", "webhooks",
              ADMIN, body=sc.WebhookIn, status=201,
              description="Deliveries are POSTed as JSON, signed with HMAC-SHA256 over "
              "'<timestamp>.<body>' (headers X-Provisiond-Timestamp, X-Provisiond-Signature), "
              "retried with backoff; the secret is write-only."),
        Route("GET", "/v1/webhooks", list_webhooks, "Webhook subscriptions", "webhooks", STAFF),
        Route("DELETE", "/v1/webhooks/{id}", delete_webhook, "Unsubscribe", "webhooks", ADMIN,
              status=204, path_params={"id": "subscription id"}),
        Route("GET", "/v1/webhooks/{id}/deliveries", webhook_deliveries,
              "A subscription's deliveries, newest first", "webhooks", STAFF,
              path_params={"id": "subscription id"}),
        Route("POST", "/v1/tenants", create_tenant, "Create a tenant and its networks",
              "tenants", ADMIN, body=sc.TenantIn, response=sc.TenantOut, status=201,
              description="Allocates its VLAN (the same id on every managed switch) and a P_Key "
              "on every fabric, in one transaction; 200 when it already had them."),
        Route("GET", "/v1/tenants", list_tenants, "List tenants", "tenants", STAFF),
        Route("GET", "/v1/tenants/{tenant}", get_tenant, "Show a tenant", "tenants", STAFF,
              response=sc.TenantOut, path_params={"tenant": "tenant name"}),
        Route("DELETE", "/v1/tenants/{tenant}", delete_tenant, "Delete a tenant", "tenants",
              ADMIN, response=sc.TenantOut, status=202, path_params={"tenant": "tenant name"},
              description="Refused (409) while it holds nodes. Its VLAN and keys are freed once "
              "no port and no partition holds them (state deleting until then)."),
    ]  # fmt: skip
