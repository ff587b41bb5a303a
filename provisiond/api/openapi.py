"""OpenAPI 3.1 from the Route declarations and their pydantic schemas (JSON Schema 2020-12,
which OpenAPI 3.1 uses as is)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from provisiond import __version__
from provisiond.api.routing import Route
from provisiond.api.schemas import Problem

REF = "#/components/schemas/{model}"


def build(routes: list[Route]) -> dict[str, Any]:
    models: list[type[BaseModel]] = [Problem]
    for r in routes:
        for m in (r.body, r.response, r.raw_schema):
            if m is not None and m not in models:
                models.append(m)
    keyed, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    schemas = dict(defs.get("$defs", {}))

    def ref(m: type[BaseModel]) -> dict[str, Any]:
        return keyed[(m, "validation")]

    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {
            "summary": r.summary,
            "operationId": r.handler.__name__,
            "tags": [r.tag],
            "responses": {},
        }
        if r.description:
            op["description"] = r.description
        if r.roles is None:
            op["security"] = []
        else:
            op["x-roles"] = sorted(role.value for role in r.roles)
        params = [
            {
                "name": n,
                "in": "path",
                "required": True,
                "description": d,
                "schema": {"type": "string"},
            }
            for n, d in r.path_params.items()
        ]
        if r.query is not None:
            qschema = r.query.model_json_schema(ref_template=REF)
            for name, prop in qschema.get("properties", {}).items():
                params.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in qschema.get("required", []),
                        "schema": prop,
                    }
                )
            schemas.update(qschema.get("$defs", {}))
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": ref(r.body)}},
            }
        if r.raw_body:
            content: dict[str, Any] = {}
            for ctype in r.raw_body:
                if ctype == "text/csv":
                    content[ctype] = {"schema": {"type": "string"}}
                else:
                    content[ctype] = {"schema": ref(r.raw_schema) if r.raw_schema else {}}
            op["requestBody"] = {"required": True, "content": content}
        ok: dict[str, Any] = {"description": "success"}
        if r.response is not None:
            ok["content"] = {"application/json": {"schema": ref(r.response)}}
        op["responses"][str(r.status)] = ok
        if r.status == 201:
            op["responses"]["200"] = {**ok, "description": "nothing changed"}
        op["responses"]["default"] = {
            "description": "problem (RFC 9457)",
            "content": {"application/problem+json": {"schema": ref(Problem)}},
        }
        path = r.path
        paths.setdefault(path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "provisiond",
            "version": __version__,
            "description": "Bare-metal provisioning for HPC and AI clusters.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
