"""HPE/H3C Comware 7: ``port link-type`` CLI in system view (netmiko's ``hp_comware`` enters
``system-view`` and leaves with ``return``).

Rendering:

* VLAN create: ``vlan N`` / ``name X`` / ``quit``; delete: ``undo vlan N``.
* access: ``port link-type access`` / ``port access vlan N``. Comware keeps trunk and access
  settings apart (a trunk goes to access before it may become hybrid), and the trunk VLAN
  settings do not survive the link-type change, so no trunk cleanup is sent (``undo port trunk
  ...`` is a trunk-only command). Unverified on hardware: parse_ports shows any leftover.
* trunk: ``port link-type trunk`` / ``undo port trunk permit vlan all`` (``port trunk permit``
  ADDS, so the list is emptied first: replace, not append) / ``port trunk permit vlan ...`` (at
  most 10 items ``N`` or ``N to M`` per command, the CLI's limit) / ``port trunk pvid vlan N``.
  The PVID (native) VLAN is always permitted.
* ``shutdown`` / ``undo shutdown``, ``jumboframe enable N`` (the layer-2 frame size; ``mtu``
  is a layer-3 command on Comware), ``description X`` / ``undo description``.
* every block ends with ``quit``. Save: ``save force``.

Reading ports: one ``display current-configuration interface TYPE NUMBER`` per port; each
output is its ``interface X`` block between ``#`` lines, so concatenated outputs are delimited by
the ``interface`` header lines. Defaults when absent: link-type access, access VLAN 1, trunk
permits VLAN 1 (``undo port trunk permit vlan 1`` removes it), PVID 1, not shut down, frame size
and description ``None``. ``port link-mode route`` and hybrid ports give mode ``None``.

Reading VLANs: ``display vlan all`` (one ``VLAN ID: N`` ... ``Name: X`` block per VLAN).

LLDP: ``display lldp neighbor-information verbose`` (Comware 7 has no structured output over the
CLI). Each port with neighbours starts ``LLDP neighbor-information of port N[IFNAME]:`` (the full
interface name), then ``LLDP agent nearest-bridge:`` (or another agent), then one block per
neighbour from `` LLDP neighbor index : N`` with ``Key : value`` lines: ``Chassis ID`` and
``Port ID`` (MACs in Comware's ``5254-0000-0501`` notation, normalised by ``lldp_id``), ``Port
description``, ``System name``; a TLV the neighbour did not send has no line. Continuation lines of
a long ``System description`` carry no key and are skipped. Verified against recorded outputs
(ntc-templates' hp_comware verbose capture, an MSR 7.1.064 capture); how a second neighbour on the
same port is laid out (a new index line under the same header, or a repeated header) is not, and
either is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from drivers.switch.base import (
    VLAN_MAX,
    VLAN_MIN,
    ChangeSet,
    Dialect,
    LldpNeighbor,
    PortChange,
    PortMode,
    PortState,
    VlanState,
    lldp_id,
)

_TYPES = (
    "GigabitEthernet",
    "Ten-GigabitEthernet",
    "Twenty-FiveGigE",
    "FortyGigE",
    "FiftyGigE",
    "HundredGigE",
    "Two-HundredGigE",
    "FourHundredGigE",
    "FastEthernet",
)
_TYPE_RE = "|".join(re.escape(t) for t in sorted(_TYPES, key=len, reverse=True))
_INTERFACE = re.compile(r"^interface\s+(\S+)\s*$")
# `LLDP neighbor-information of port 1[GigabitEthernet1/0/1]:`
_LLDP_PORT = re.compile(r"^LLDP neighbor-information of port \d+\[(\S+)\]:\s*$")
# ` Chassis ID          : 5254-0000-0501` (one space of indent, the key padded to a column)
_LLDP_FIELD = re.compile(r"^ (\S(?:.*?\S)?)\s*:(?: (.*))?$")
_LLDP_KEYS = {
    "Chassis ID": "chassis_id",
    "Port ID": "port_id",
    "System name": "system_name",
    "Port description": "port_description",
}
_PERMIT_CHUNK = 10


def vlan_items(vlans: Iterable[int]) -> list[str]:
    """{10, 20, 21, 22} -> ["10", "20 to 22"] (Comware's list syntax, sorted, compact)."""
    items = sorted(set(vlans))
    out: list[str] = []
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        out.append(str(items[i]) if i == j else f"{items[i]} to {items[j]}")
        i = j + 1
    return out


def parse_vlan_items(words: Sequence[str]) -> set[int]:
    """["10", "20", "to", "22"] -> {10, 20, 21, 22}; ["all"] -> 1-4094."""
    if list(words) == ["all"]:
        return set(range(VLAN_MIN, VLAN_MAX + 1))
    out: set[int] = set()
    i = 0
    while i < len(words):
        lo = int(words[i])
        if i + 2 < len(words) and words[i + 1] == "to":
            out.update(range(lo, int(words[i + 2]) + 1))
            i += 3
        else:
            out.add(lo)
            i += 1
    return out


class ComwareDialect(Dialect):
    name = "comware"
    netmiko_device_type = "hp_comware"
    # GigabitEthernet1/0/1, Ten-GigabitEthernet1/0/49, FortyGigE1/0/53, HundredGigE1/0/25:1,
    # IRF chassis numbering GigabitEthernet1/2/0/1
    port_pattern = re.compile(rf"(?:{_TYPE_RE})[0-9]{{1,3}}(?:/[0-9]{{1,3}}){{2,3}}(?::[1-4])?")

    error_patterns = (
        re.compile(r"^\s*% ?Unrecognized command found at"),
        re.compile(r"^\s*% ?Wrong parameter found at"),
        re.compile(r"^\s*% ?Incomplete command found at"),
        re.compile(r"^\s*% ?Too many parameters found at"),
        re.compile(r"^\s*% ?Ambiguous command found at"),
        re.compile(r"^\s*% ?Error"),
        re.compile(r"^\s*Error:"),
        re.compile(r"^\s*(?:The )?VLAN .*(?:does not exist|doesn't exist)"),
        # a command of another link type: "Please set the link type of the port to access first."
        re.compile(r"^\s*Please set the link type of the port"),
    )

    def render(
        self, changes: ChangeSet, current: Mapping[str, PortState] | None = None
    ) -> list[str]:
        out: list[str] = []
        for v in changes.vlans:
            if v.delete:
                out.append(f"undo vlan {v.vlan}")
                continue
            out.append(f"vlan {v.vlan}")
            if v.name:
                out.append(f"name {v.name}")
            out.append("quit")
        for p in changes.ports:
            body = self._port_body(p)
            if body:
                out += [f"interface {p.port}", *body, "quit"]
        return out

    def _permit(self, vlans: set[int]) -> list[str]:
        items = vlan_items(vlans)
        return [
            "port trunk permit vlan " + " ".join(items[i : i + _PERMIT_CHUNK])
            for i in range(0, len(items), _PERMIT_CHUNK)
        ]

    def _port_body(self, p: PortChange) -> list[str]:
        out: list[str] = []
        if p.mode is PortMode.ACCESS:
            out.append("port link-type access")
            if p.vlan is not None:
                out.append(f"port access vlan {p.vlan}")
        else:
            if p.mode is PortMode.TRUNK:
                out.append("port link-type trunk")
            elif p.vlan is not None:
                out.append(f"port access vlan {p.vlan}")
            allowed = set(p.allowed_vlans)
            if p.native_vlan is not None:
                allowed.add(p.native_vlan)
            # a trunk always gets an explicit list; otherwise only a given list is replaced
            if allowed and (p.mode is PortMode.TRUNK or p.allowed_vlans):
                out.append("undo port trunk permit vlan all")
                out += self._permit(allowed)
            if p.native_vlan is not None:
                out.append(f"port trunk pvid vlan {p.native_vlan}")
        if p.shutdown is not None:
            out.append("shutdown" if p.shutdown else "undo shutdown")
        if p.mtu is not None:
            out.append(f"jumboframe enable {p.mtu}")
        if p.description is not None:
            out.append(f"description {p.description}" if p.description else "undo description")
        return out

    def save_commands(self) -> list[str]:
        return ["save force"]

    def show_ports_command(self, ports: Sequence[str]) -> list[str]:
        out: list[str] = []
        for p in ports:
            m = re.match(rf"({_TYPE_RE})(.*)", p)
            kind, number = (m.group(1), m.group(2)) if m else (p, "")
            out.append(f"display current-configuration interface {kind} {number}".rstrip())
        return out

    def parse_ports(self, output: str) -> dict[str, PortState]:
        states: dict[str, PortState] = {}
        current: list[str] | None = None
        blocks: dict[str, list[str]] = {}
        for raw in output.splitlines():
            line = raw.rstrip()
            if not line:
                continue
            if line[0].isspace():
                if current is not None:
                    current.append(line.strip())
                continue
            m = _INTERFACE.match(line)
            current = blocks.setdefault(m.group(1), []) if m else None
        for port, lines in blocks.items():
            if self.port_pattern.fullmatch(port):
                states[port] = self._port_state(port, lines)
        return states

    def _port_state(self, port: str, lines: list[str]) -> PortState:
        mode: PortMode | None = PortMode.ACCESS
        access = 1
        pvid = 1
        permitted: set[int] = {1}
        shutdown = False
        frame: int | None = None
        description: str | None = None
        for line in lines:
            words = line.split()
            if line == "port link-mode route" or line == "port link-type hybrid":
                mode = None
            elif line == "port link-type trunk":
                mode = PortMode.TRUNK
            elif line == "port link-type access":
                mode = PortMode.ACCESS
            elif line.startswith("port access vlan ") and len(words) == 4:
                access = int(words[3])
            elif line.startswith("port trunk permit vlan "):
                permitted |= parse_vlan_items(words[4:])
            elif line.startswith("undo port trunk permit vlan "):
                permitted -= parse_vlan_items(words[5:])
            elif line.startswith("port trunk pvid vlan ") and len(words) == 5:
                pvid = int(words[4])
            elif line == "shutdown":
                shutdown = True
            elif line.startswith("jumboframe enable ") and len(words) == 3:
                frame = int(words[2])
            elif words[0] == "description":
                description = line[len("description") :].strip()
        if mode is None:
            return PortState(port, None, shutdown=shutdown, mtu=frame, description=description)
        if mode is PortMode.TRUNK:
            return PortState(
                port,
                mode,
                native_vlan=pvid,
                allowed_vlans=tuple(sorted(permitted)),
                shutdown=shutdown,
                mtu=frame,
                description=description,
            )
        return PortState(
            port, mode, vlan=access, shutdown=shutdown, mtu=frame, description=description
        )

    def show_vlans_command(self) -> str:
        return "display vlan all"

    def parse_vlans(self, output: str) -> dict[int, VlanState]:
        vlans: dict[int, VlanState] = {}
        current: int | None = None
        for line in output.splitlines():
            key, sep, value = line.strip().partition(":")
            if not sep:
                continue
            value = value.strip()
            if key == "VLAN ID" and value.isdigit():
                current = int(value)
                if VLAN_MIN <= current <= VLAN_MAX:
                    vlans[current] = VlanState(current)
                else:
                    current = None
            elif key == "Name" and current is not None:
                vlans[current] = VlanState(current, value or None)
        return vlans

    # ------------------------------------------------------------------ LLDP

    def show_lldp_command(self) -> list[str]:
        return ["display lldp neighbor-information verbose"]

    def parse_lldp(self, output: str) -> list[LldpNeighbor]:
        out: list[LldpNeighbor] = []
        port: str | None = None
        fields: dict[str, str] | None = None

        def flush() -> None:
            if port is not None and fields is not None:
                out.append(
                    LldpNeighbor(
                        local_port=port,
                        chassis_id=lldp_id(fields.get("chassis_id")),
                        port_id=lldp_id(fields.get("port_id")),
                        system_name=fields.get("system_name") or None,
                        port_description=fields.get("port_description") or None,
                    )
                )

        for raw in output.splitlines():
            line = raw.rstrip()
            header = _LLDP_PORT.match(line)
            if header is not None:
                flush()
                port, fields = header.group(1), None
                continue
            m = _LLDP_FIELD.match(line)
            if m is None or port is None:
                continue
            key, value = m.group(1), (m.group(2) or "").strip()
            if key == "LLDP neighbor index":
                flush()
                fields = {}
            elif fields is not None and key in _LLDP_KEYS:
                fields[_LLDP_KEYS[key]] = value
        flush()
        return out
