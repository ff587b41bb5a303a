"""The one exception tree of provisiond.

Every error raised on purpose derives from ProvisionError. Drivers translate library errors at
their edge (``raise BmcError(...) from exc``); the API maps these classes to HTTP statuses in one
place (provisiond.api.errors). Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ProvisionError(Exception):
    """Root of every error provisiond raises deliberately."""

    #: short, stable, machine-readable kind, used as the problem type suffix
    kind = "error"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class ConfigError(ProvisionError):
    """Bad configuration: names the key, the value and the reason."""

    kind = "config"


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with one input field.

    ``where`` is a dotted/indexed path (``nodes[3].bmc.port``); ``line`` is the 1-based line in the
    submitted file when the input was a file.
    """

    where: str
    message: str
    line: int | None = None
    value: Any = None
    row: str | None = None  # human name of the row (node name) when known

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"field": self.where, "message": self.message}
        if self.line is not None:
            d["line"] = self.line
        if self.row is not None:
            d["row"] = self.row
        if self.value is not None:
            d["value"] = self.value
        return d

    def __str__(self) -> str:
        at = f"line {self.line}: " if self.line is not None else ""
        row = f" (node {self.row})" if self.row else ""
        val = f" (got {self.value!r})" if self.value is not None else ""
        return f"{at}{self.where}{row}: {self.message}{val}"


class ValidationError(ProvisionError):
    """Input that cannot be accepted; carries every problem found, not only the first."""

    kind = "validation"

    def __init__(self, message: str, problems: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.problems: list[FieldProblem] = problems or []

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        lines = [self.message] + [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class NotFound(ProvisionError):
    kind = "not-found"


class Conflict(ProvisionError):
    """The request is valid but clashes with current state (busy node, duplicate, ...)."""

    kind = "conflict"


class IllegalTransition(Conflict):
    """A lifecycle move that the transition table does not allow."""

    kind = "illegal-transition"

    def __init__(self, state: str, event: str, allowed: tuple[str, ...]) -> None:
        allowed_txt = ", ".join(allowed) if allowed else "none"
        super().__init__(
            f"cannot {event} a node in state '{state}'; allowed here: {allowed_txt}",
            state=state,
            action=event,
            allowed_actions=list(allowed),
        )
        self.state = state
        self.event = event
        self.allowed = allowed


class NodeBusy(Conflict):
    kind = "node-busy"


class Unauthorized(ProvisionError):
    kind = "unauthorized"


class Forbidden(ProvisionError):
    kind = "forbidden"


class DriverError(ProvisionError):
    """A driver call failed. ``transient`` says whether a retry may help."""

    kind = "driver"

    def __init__(self, message: str, *, transient: bool = False, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.transient = transient


class BmcError(DriverError):
    kind = "bmc"


class DeadlineExceeded(DriverError):
    """A call overran its deadline. Transient: the device may answer next time."""

    kind = "deadline"

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)


class BadRequest(ValidationError):
    """Input that cannot even be parsed (malformed JSON body, bad content type)."""

    kind = "bad-request"
