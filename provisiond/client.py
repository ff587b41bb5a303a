"""A small synchronous HTTP client for the CLI (stdlib only): JSON in, JSON out, problem+json
turned into ApiError with the server's words."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(problem.get("detail") or problem.get("title") or f"HTTP {status}")

    def describe(self) -> str:
        lines = [f"error ({self.status}): {self}"]
        for err in self.problem.get("errors") or []:
            at = f"line {err['line']}: " if err.get("line") else ""
            row = f" (node {err['row']})" if err.get("row") else ""
            val = f" (got {err['value']!r})" if err.get("value") is not None else ""
            lines.append(f"  {at}{err.get('field')}{row}: {err.get('message')}{val}")
        return "\n".join(lines)


class Unreachable(Exception):
    pass


@dataclass(frozen=True)
class Client:
    url: str
    token: str | None
    timeout: float = 30.0

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> tuple[int, Any]:
        # "%" is kept: callers quote a segment that may hold "/" (a port named Ethernet1/1)
        url = self.url.rstrip("/") + urllib.parse.quote(path, safe="/%")
        if query:
            q = {k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()}
            url += "?" + urllib.parse.urlencode({k: v for k, v in q.items() if v is not None})
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if json_body is not None:
            data = json.dumps(json_body).encode()
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = resp.read()
                return resp.status, json.loads(body) if body else None
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                problem = json.loads(body)
            except ValueError:
                problem = {"detail": body.decode(errors="replace")[:500] or exc.reason}
            raise ApiError(exc.code, problem) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"cannot reach provisiond at {self.url}: {reason}") from None

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query or None)[1]

    def post(self, path: str, body: Any = None, **query: Any) -> Any:
        return self.request("POST", path, json_body=body if body is not None else {}, query=query)[
            1
        ]
