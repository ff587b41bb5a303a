"""Handlers of /v1/firmware and /v1/nodes/{node}/firmware: catalog import, firmware reports,
node and fleet verdicts. Thin: provisiond/firmware.py validates, stores and judges."""

from __future__ import annotations

from aiohttp import web

from provisiond.api import schemas as sc
from provisiond.api.routing import STAFF, Call, Route
from provisiond.api.routing import json_response as _json
from provisiond.auth import Role
from provisiond.errors import BadRequest, FieldProblem
from provisiond.firmware import FirmwareService

ADMIN = frozenset({Role.ADMIN})


def _service(call: Call) -> FirmwareService:
    svc = call.services.firmware
    assert svc is not None, "the firmware service is part of every daemon"
    return svc


async def import_catalog(call: Call) -> web.StreamResponse:
    raw = await call.request.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            "catalog is not UTF-8 text", [FieldProblem("(file)", f"byte {exc.start} is not UTF-8")]
        ) from exc
    q: sc.CatalogImportQuery = call.query
    out = await _service(call).import_catalog(text, q.filename or "catalog", call.who.name)
    return _json(out, 201)


async def list_catalogs(call: Call) -> web.StreamResponse:
    return _json({"items": await _service(call).catalogs()})


async def post_firmware(call: Call) -> web.StreamResponse:
    body: sc.FirmwareReportIn = call.body
    out = await _service(call).post_reports(
        call.match("node"),
        body.model_dump(exclude_unset=True),
        call.who.name,
        trusted=call.who.role is Role.ADMIN,
    )
    return _json(out, 201)


async def get_firmware(call: Call) -> web.StreamResponse:
    return _json(await _service(call).node_verdict(call.match("node")))


async def fleet_report(call: Call) -> web.StreamResponse:
    q: sc.FirmwareReportQuery = call.query
    return _json(await _service(call).fleet(rack=q.rack, plan=False))


def firmware_routes() -> list[Route]:
    n = {"node": "node name or id"}
    return [
        Route("POST", "/v1/firmware/catalogs", import_catalog, "Import a firmware catalog",
              "firmware", ADMIN, query=sc.CatalogImportQuery,
              raw_body=("application/yaml", "application/x-yaml", "text/yaml"), status=201,
              description="The YAML catalog (firmware_db/catalog.schema.json). Every problem is "
              "listed with its line (422) and nothing is stored; a valid one becomes the active "
              "catalog."),
        Route("GET", "/v1/firmware/catalogs", list_catalogs, "Imported catalogs", "firmware",
              STAFF),
        Route("GET", "/v1/firmware/report", fleet_report,
              "Fleet firmware: counts by verdict, model and component", "firmware", STAFF,
              query=sc.FirmwareReportQuery),
        Route("POST", "/v1/nodes/{node}/firmware", post_firmware, "Report a node's firmware",
              "firmware", STAFF, body=sc.FirmwareReportIn, status=201, path_params=n,
              description="Components as one or more channels saw them (drivers, the agent, "
              "operators); stored verbatim, judged at read time."),
        Route("GET", "/v1/nodes/{node}/firmware", get_firmware,
              "A node's firmware verdict, reasons and upgrade plan", "firmware", STAFF,
              path_params=n),
    ]  # fmt: skip
