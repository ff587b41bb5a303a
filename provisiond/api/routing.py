"""Route declarations: one Route per endpoint carries its auth, schemas and docs, so the
handler binding and the OpenAPI document come from the same place."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from provisiond.api.keys import SERVICES, Services
from provisiond.auth import Principal, Role
from provisiond.errors import BadRequest, FieldProblem, Forbidden, ValidationError


@dataclass(frozen=True)
class Call:
    """What a handler gets besides the request: who asks, and the validated inputs."""

    request: web.Request
    services: Services
    principal: Principal | None
    query: Any = None
    body: Any = None

    @property
    def who(self) -> Principal:
        assert self.principal is not None
        return self.principal

    def match(self, name: str) -> str:
        return self.request.match_info[name]


Handler = Callable[[Call], Awaitable[web.StreamResponse]]

EVERYONE = frozenset(Role)
SCHEDULER_PATHS = ("/v1/hooks/", "/v1/whoami")
STAFF = frozenset({Role.ADMIN, Role.OPERATOR})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    roles: frozenset[Role] | None = EVERYONE  # None: no token needed
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    # a raw body (rack files): content types and the schema that documents it
    raw_body: tuple[str, ...] = ()
    raw_schema: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    path_params: dict[str, str] = field(default_factory=dict)
    description: str = ""


def _problems(exc: PydanticValidationError, where: str) -> list[FieldProblem]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or where
        value = err.get("input")
        if "pass" in loc.lower():
            value = None  # never echo a secret back, even a malformed one
        out.append(
            FieldProblem(
                f"{where}.{loc}" if where == "query" else loc,
                err["msg"].removeprefix("Value error, "),
                value=None if isinstance(value, (dict, list)) else value,
            )
        )
    return out


async def _json_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    raw = await request.read()
    if not raw.strip():
        data: Any = {}
    else:
        ctype = request.content_type
        if ctype not in ("application/json", "application/octet-stream", ""):
            raise BadRequest(
                f"expected a JSON body (Content-Type: application/json), got {ctype}",
                [FieldProblem("Content-Type", "must be application/json", value=ctype)],
            )
        try:
            data = json.loads(raw)
        except RecursionError:
            raise BadRequest(
                "request body is nested too deeply", [FieldProblem("(body)", "nesting too deep")]
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            line = getattr(exc, "lineno", None)
            raise BadRequest(
                "request body is not valid JSON", [FieldProblem("(body)", str(exc), line=line)]
            ) from exc
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError("request body is invalid", _problems(exc, "body")) from exc


def bind(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]
        for where, items in (
            ("path", request.match_info.items()),
            ("query", request.query.items()),
        ):
            for key, value in items:
                if any(ord(c) < 32 or ord(c) == 127 for c in value):
                    raise BadRequest(
                        "control characters in the request",
                        [FieldProblem(f"{where}.{key}", "control characters are not allowed")],
                    )
        principal = None
        if route.roles is not None:
            principal = await services.auth.authenticate(request.headers.get("Authorization"))
            if principal.role is Role.SCHEDULER and not route.path.startswith(SCHEDULER_PATHS):
                # a scheduler token (slurmctld's) calls the hooks and nothing else
                raise Forbidden(
                    "a scheduler token may only call /v1/hooks/ (and /v1/whoami)",
                    role=principal.role.value,
                )
            if principal.role not in route.roles:
                raise Forbidden(
                    f"role {principal.role.value} may not {route.summary.lower()}",
                    role=principal.role.value,
                )
        query = None
        if route.query is not None:
            try:
                query = route.query.model_validate(dict(request.query))
            except PydanticValidationError as exc:
                raise ValidationError("bad query parameters", _problems(exc, "query")) from exc
        body = await _json_body(request, route.body) if route.body is not None else None
        return await route.handler(Call(request, services, principal, query, body))

    handler.__name__ = route.handler.__name__
    return handler


def install(app: web.Application, routes: list[Route]) -> None:
    for r in routes:
        app.router.add_route(r.method, r.path, bind(r))


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON answer; values JSON does not know (datetimes) as their str()."""
    return web.Response(
        text=json.dumps(data, default=str), status=status, content_type="application/json"
    )
