"""Errors to RFC 9457 problem+json, in one place: ProvisionError kinds to HTTP statuses."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from provisiond.errors import (
    BadRequest,
    Conflict,
    DriverError,
    Forbidden,
    NotFound,
    ProvisionError,
    Unauthorized,
    ValidationError,
)

log = logging.getLogger(__name__)
PROBLEM_TYPE = "https://provisiond.dev/problems/"

_STATUS: list[tuple[type[ProvisionError], int]] = [
    (BadRequest, 400),
    (ValidationError, 422),
    (NotFound, 404),
    (Conflict, 409),
    (Unauthorized, 401),
    (Forbidden, 403),
    (DriverError, 502),
]


def status_of(exc: ProvisionError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str,
    instance: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + kind,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    return web.Response(
        status=status,
        text=json.dumps(body, default=str),
        content_type="application/problem+json",
        headers=headers,
    )


def from_error(exc: ProvisionError, path: str) -> web.Response:
    status = status_of(exc)
    extra: dict[str, Any] = dict(exc.extra)
    if isinstance(exc, ValidationError) and exc.problems:
        extra["errors"] = [p.as_dict() for p in exc.problems]
    headers = {"WWW-Authenticate": 'Bearer realm="provisiond"'} if status == 401 else None
    title = type(exc).__name__ if status >= 500 else exc.kind.replace("-", " ")
    return problem(
        status, title, exc.message, kind=exc.kind, instance=path, extra=extra, headers=headers
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProvisionError as exc:
        return from_error(exc, request.path)
    except web.HTTPRequestEntityTooLarge as exc:
        return problem(
            413,
            "request too large",
            f"{exc.text} (limit: config api.max_body_bytes); split the rack file into "
            "several racks",
            kind="too-large",
            instance=request.path,
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(
            exc.status,
            exc.reason.lower(),
            exc.text or exc.reason,
            kind=exc.reason.lower().replace(" ", "-"),
            instance=request.path,
            headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
        )
    except IntegrityError as exc:
        log.warning("integrity error on %s %s: %s", request.method, request.path, exc.orig)
        return problem(
            409,
            "conflict",
            "the change clashes with one made at the same time (a unique name, MAC, GUID or unit);"
            " read the current state and retry",
            kind="conflict",
            instance=request.path,
        )
    except DataError as exc:
        return problem(
            422,
            "validation",
            f"a value cannot be stored: {str(exc.orig).splitlines()[0]}",
            kind="validation",
            instance=request.path,
        )
    except DBAPIError as exc:
        # "database is locked" past the busy timeout, or PostgreSQL down: a retry may succeed
        log.error("database error on %s %s: %s", request.method, request.path, exc.orig)
        return problem(
            503,
            "database unavailable",
            f"the database did not answer: {type(exc.orig).__name__}; retry shortly "
            "(docs/runbooks/database-locked.md, docs/runbooks/postgres-unavailable.md)",
            kind="database-unavailable",
            instance=request.path,
            headers={"Retry-After": "2"},
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(
            500,
            "internal error",
            "internal error; the daemon log has the details",
            kind="internal",
            instance=request.path,
        )
