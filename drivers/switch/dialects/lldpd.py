"""lldpd's neighbour listing (``lldpctl -f json0`` / ``-f json``), read the same way for every
NOS that runs lldpd (Cumulus Linux natively, SONiC in its ``lldp`` container). Pure.

lldpd prints one JSON document per command (src/client/json_writer.c). Its ``json0`` format is
regular: every element is a list of objects, an interface's name is its ``name`` field, a text
element is ``[{"value": ...}]``::

    {"lldp": [{"interface": [{"name": "swp5", "via": "LLDP", "rid": "1", "age": "0 day, ...",
      "chassis": [{"id": [{"type": "mac", "value": "52:54:00:00:05:01"}],
                   "name": [{"value": "r05n01"}], ...}],
      "port": [{"id": [{"type": "mac", "value": "52:54:00:00:05:01"}],
                "descr": [{"value": "eno1"}], "ttl": [{"value": "120"}]}]}]}]}

Its ``json`` format is the same tree "cleaned": a one-element list becomes its element, an
object whose only key is ``value`` becomes that string, and an object with a ``name`` string is
keyed by it. So one neighbour gives ``"interface": {"swp5": {...}}``, several give a list of
one-key objects ``[{"swp5": {...}}, {"swp6": {...}}]`` (the same port twice when it hears two
neighbours), and a chassis that sent a system name is ``{"r05n01": {"id": {...}, ...}}`` while
one that did not is ``{"id": {...}, ...}``. A build configured with ``--enable-json0`` prints
the ``json0`` shape for ``-f json`` too. ``parse_lldpctl_json`` reads all of these.

``-f json0`` exists since lldpd 0.9.8 (2017) and prints the same shape on every build, which is
why the dialects ask for it. Neighbour fields kept: the local interface (lldpd's name for it:
the kernel's, ``swp5``, ``Ethernet8``, ``eth0``), chassis id and port id (the ``value`` of
``id``; MAC-type ids through ``lldp_id``), system name (``SysName``) and port description
(``PortDescr``); a TLV the neighbour did not send is absent: ``None``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from drivers.switch.base import LldpNeighbor, SwitchError, lldp_id

# lldpd's own complaints: a log line (src/log.c: a date, then "[WARN/<token>]" and the message,
# the prefix in colour on a terminal), e.g. lldpctl without access to the control socket:
# "2025-01-01T10:00:00 [WARN/control] unable to connect to socket /run/lldpd.socket: Permission
# denied". Anchored to that shape, so a neighbour's text quoting one inside the JSON is not one.
ERROR_PATTERNS = (
    re.compile(r"^\S*\s*(?:\x1b\[[0-9;]*m)?\[(?:WARN|\s?ERR|CRIT|ALRT|EMRG)/[\w-]+\]"),
)


def _first(value: Any) -> Any:
    """A ``json0`` list's first element; anything else as it is."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _text(value: Any) -> str | None:
    """A text element in either shape (``"x"``, ``{"value": "x"}``, ``[{"value": "x"}]``)."""
    value = _first(value)
    if isinstance(value, dict):
        value = value.get("value")
    if value is None or isinstance(value, (bool, dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _is_id(value: Any) -> bool:
    """Whether ``value`` is an ``id`` element (``{"type": ..., "value": ...}``, either shape)."""
    value = _first(value)
    return isinstance(value, str) or (
        isinstance(value, dict) and ("type" in value or "value" in value)
    )


def _interfaces(value: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(local interface, neighbour entry) from an ``interface`` element of either shape."""
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, dict):
            continue
        name = item.get("name")
        if isinstance(name, str):  # json0: the name is a field of the entry
            yield name, item
            continue
        for key, entry in item.items():  # json: entries keyed by their name
            if isinstance(entry, dict):
                yield str(key), entry


def _chassis(value: Any) -> tuple[str | None, dict[str, Any]]:
    """(system name, chassis fields) from a ``chassis`` element of either shape."""
    chassis = _first(value)
    if not isinstance(chassis, dict):
        return None, {}
    if "id" in chassis and _is_id(chassis["id"]):
        return _text(chassis.get("name")), chassis  # json0, or json without a system name
    if len(chassis) == 1:  # json: keyed by the system name
        name, fields = next(iter(chassis.items()))
        if isinstance(fields, dict):
            return (str(name).strip() or None), fields
    return _text(chassis.get("name")), chassis


def _id(value: Any) -> str | None:
    return lldp_id(_text(value))


def document(output: str) -> dict[str, Any]:
    """The JSON object lldpctl printed. Anything else is a SwitchError: an LLDP read must not
    pass off output it cannot read (or none at all) as "no neighbours"."""
    text = output.strip()
    start, end = text.find("{"), text.rfind("}")
    doc: Any = None
    if 0 <= start < end:
        try:
            doc = json.loads(text[start : end + 1])  # around it: a stray line of the session
        except ValueError:
            doc = None
    if not isinstance(doc, dict) or "lldp" not in doc:
        raise SwitchError(f"lldpctl's JSON output could not be read: {text[:160]!r}")
    return doc


def parse_lldpctl_json(output: str) -> list[LldpNeighbor]:
    """One LldpNeighbor per (local interface, neighbour) in ``lldpctl -f json0`` or ``-f json``
    output, in lldpd's order (its interfaces, then each one's neighbours)."""
    found: list[LldpNeighbor] = []
    lldp = document(output)["lldp"]
    for top in lldp if isinstance(lldp, list) else [lldp]:
        if not isinstance(top, dict):
            continue
        for local, entry in _interfaces(top.get("interface")):
            name, chassis = _chassis(entry.get("chassis"))
            port = _first(entry.get("port"))
            port = port if isinstance(port, dict) else {}
            found.append(
                LldpNeighbor(
                    local_port=local,
                    chassis_id=_id(chassis.get("id")),
                    port_id=_id(port.get("id")),
                    system_name=name,
                    port_description=_text(port.get("descr")),
                )
            )
    return found
