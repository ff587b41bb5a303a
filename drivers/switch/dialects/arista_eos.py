"""Arista EOS: ``switchport`` CLI, read back from ``show running-config interfaces PORT``.

Rendering (configuration mode; netmiko enters and leaves it):

* VLAN create: ``vlan N`` / ``name X`` / ``exit``; delete: ``no vlan N``.
* access: ``switchport mode access``, ``switchport access vlan N``, then the trunk leftovers are
  reset (``no switchport trunk allowed vlan``, ``no switchport trunk native vlan``) so a port
  that was a trunk carries nothing but its access VLAN.
* trunk: ``switchport mode trunk``, ``switchport trunk native vlan N`` and
  ``switchport trunk allowed vlan LIST`` — the list REPLACES the port's list (no ``add``); the
  native VLAN is always part of it (untagged traffic is dropped otherwise), and a trunk never
  keeps the EOS default of "all VLANs".
* ``shutdown`` / ``no shutdown``, ``mtu N``, ``description X`` (``no description`` for "").
* every interface block ends with ``exit``.

Reading ports: one ``show running-config interfaces PORT`` per port. Each output starts with its
own ``interface PORT`` line, so the outputs concatenated in any order are delimited by those
header lines; ``parse_ports`` reads every ``interface`` block it finds. The running config only
shows what differs from the defaults, so absent lines mean: mode access, access VLAN 1, native
VLAN 1, allowed "all" (1-4094), not shut down, MTU and description unset (``None``). The trunk
fields (native, allowed) are reported for trunk ports only; the access VLAN for access ports
only. ``no switchport`` (a routed port) gives mode ``None``.

Reading VLANs: ``show vlan`` (``VLAN  Name  Status  Ports`` table; continuation lines of the
ports column start with blanks and are skipped).

Reading LLDP: ``show lldp neighbors detail | json``, the same command on EOS and NX-OS (each
prints its own JSON model of the detail table). On EOS ``| json`` works over SSH and through
eAPI's text format alike (Ansible's arista.eos eAPI plugin relies on it with ``show hostname |
json``), so the netmiko and napalm transports send the same line. EOS's model:
``lldpNeighbors`` maps every interface by its full name (``Ethernet5``, ``Management1``) to
``lldpNeighborInfo``, a list (empty when nothing is heard) of neighbours with
``chassisIdType``/``chassisId`` (a MAC in EOS's dotted notation, ``5254.0000.0501``),
``systemName`` and ``neighborInterfaceInfo``: ``interfaceIdType`` (``macAddress``,
``interfaceName``, ...), ``interfaceId`` and ``interfaceDescription``. EOS keeps the double
quotes of a name-type ``interfaceId`` in the string (its value is the 11 characters
``"Ethernet1"``, as the text output shows it); newer releases add ``interfaceId_v2`` without
them, which is preferred. Fields a neighbour did not send are absent or empty: ``None``. Every
neighbour is returned, also those heard on ports outside ``port_pattern`` (``Management1``),
under EOS's own name. Unverified: the type names EOS uses for locally assigned ids (recorded
outputs show only ``macAddress`` and ``interfaceName``); the parser does not depend on them.

``SwitchportDialect`` is shared with Cisco NX-OS (cisco_nxos.py), whose syntax is the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from drivers.switch.base import (
    VLAN_MAX,
    VLAN_MIN,
    ChangeSet,
    Dialect,
    LldpNeighbor,
    PortChange,
    PortMode,
    PortState,
    SwitchError,
    VlanState,
    format_vlan_ranges,
    lldp_id,
    parse_vlan_ranges,
)

ALL_VLANS: tuple[int, ...] = tuple(range(VLAN_MIN, VLAN_MAX + 1))

_INTERFACE = re.compile(r"^interface\s+(\S+)\s*$")
_VLAN_ROW = re.compile(r"^(\d{1,4})\s+(\S+)\s+\S+")


def interface_blocks(output: str) -> dict[str, list[str]]:
    """``interface X`` header lines (at column 0) and the indented lines under them, stripped.
    Anything else at column 0 (``!``, ``#``, banners, a prompt) closes the current block."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
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
    return blocks


def json_output(output: str) -> dict[str, Any]:
    """The JSON object a ``| json`` show printed; ``{}`` for no output at all. Anything else is
    a SwitchError: an LLDP read must not pass off output it cannot read as "no neighbours"."""
    text = output.strip()
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        # whatever the session left around the document (a stray banner line): the outermost {}
        start, end = text.find("{"), text.rfind("}")
        try:
            doc = json.loads(text[start : end + 1]) if 0 <= start < end else None
        except ValueError:
            doc = None
    if not isinstance(doc, dict):
        raise SwitchError(f"the switch's JSON output could not be read: {text[:120]!r}")
    return doc


def lldp_text(value: Any) -> str | None:
    """A text field of an LLDP JSON model: None when absent, empty, or what a platform prints
    for a TLV that was not sent (``null``, ``not advertised``); surrounding double quotes (EOS's
    interface names) removed."""
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    if not text or text.lower() in ("null", "not advertised"):
        return None
    return text


def vlan_list(text: str) -> set[int]:
    """A ``switchport trunk allowed vlan`` argument: ``10,20-30``, ``none`` or ``all``."""
    text = text.strip()
    if text == "none":
        return set()
    if text == "all":
        return set(ALL_VLANS)
    return set(parse_vlan_ranges(text))


class SwitchportDialect(Dialect):
    """The Cisco-style ``switchport`` grammar EOS and NX-OS share."""

    exit_command: ClassVar[str] = "exit"
    # NX-OS ports may default to routed; EOS ports are switchports already
    enable_switchport: ClassVar[bool] = False
    # what an absent shutdown line means (None: the platform default is not knowable)
    shutdown_default: ClassVar[bool | None] = False

    # ------------------------------------------------------------------ render

    def render(
        self, changes: ChangeSet, current: Mapping[str, PortState] | None = None
    ) -> list[str]:
        out: list[str] = []
        for v in changes.vlans:
            if v.delete:
                out.append(f"no vlan {v.vlan}")
                continue
            out.append(f"vlan {v.vlan}")
            if v.name:
                out.append(f"name {v.name}")
            out.append(self.exit_command)
        for p in changes.ports:
            body = self._port_body(p)
            if body:
                out += [f"interface {p.port}", *body, self.exit_command]
        return out

    def _port_body(self, p: PortChange) -> list[str]:
        out: list[str] = []
        if p.mode is not None and self.enable_switchport:
            out.append("switchport")
        if p.mode is PortMode.ACCESS:
            out.append("switchport mode access")
            if p.vlan is not None:
                out.append(f"switchport access vlan {p.vlan}")
            out += ["no switchport trunk allowed vlan", "no switchport trunk native vlan"]
        else:
            if p.mode is PortMode.TRUNK:
                out.append("switchport mode trunk")
            elif p.vlan is not None:
                out.append(f"switchport access vlan {p.vlan}")
            if p.native_vlan is not None:
                out.append(f"switchport trunk native vlan {p.native_vlan}")
            allowed = set(p.allowed_vlans)
            if p.native_vlan is not None:
                allowed.add(p.native_vlan)
            # a trunk always gets an explicit list; otherwise only a given list is replaced
            if allowed and (p.mode is PortMode.TRUNK or p.allowed_vlans):
                out.append(f"switchport trunk allowed vlan {format_vlan_ranges(allowed)}")
        if p.shutdown is not None:
            out.append("shutdown" if p.shutdown else "no shutdown")
        if p.mtu is not None:
            out.append(f"mtu {p.mtu}")
        if p.description is not None:
            out.append(f"description {p.description}" if p.description else "no description")
        return out

    def save_commands(self) -> list[str]:
        return ["copy running-config startup-config"]

    # ------------------------------------------------------------------ read back

    def parse_ports(self, output: str) -> dict[str, PortState]:
        states: dict[str, PortState] = {}
        for port, lines in interface_blocks(output).items():
            if self.port_pattern.fullmatch(port):
                states[port] = self._port_state(port, lines)
        return states

    def _port_state(self, port: str, lines: list[str]) -> PortState:
        routed = False
        mode = PortMode.ACCESS
        access = 1
        native = 1
        allowed: set[int] = set(ALL_VLANS)
        shutdown = self.shutdown_default
        mtu: int | None = None
        description: str | None = None
        for line in lines:
            words = line.split()
            if line == "no switchport":
                routed = True
            elif line == "switchport":
                routed = False
            elif line == "switchport mode trunk":
                mode = PortMode.TRUNK
            elif line == "switchport mode access":
                mode = PortMode.ACCESS
            elif line.startswith("switchport access vlan ") and len(words) == 4:
                access = int(words[3])
            elif line.startswith("switchport trunk native vlan ") and len(words) == 5:
                native = int(words[4]) if words[4].isdigit() else native
            elif line.startswith("switchport trunk allowed vlan "):
                arg = words[4:]
                if arg and arg[0] == "add":
                    allowed |= vlan_list(",".join(arg[1:]))
                elif arg and arg[0] == "remove":
                    allowed -= vlan_list(",".join(arg[1:]))
                elif arg and arg[0] == "except":
                    allowed = set(ALL_VLANS) - vlan_list(",".join(arg[1:]))
                else:
                    allowed = vlan_list(",".join(arg))
            elif line == "shutdown":
                shutdown = True
            elif line == "no shutdown":
                shutdown = False
            elif words[0] == "mtu" and len(words) == 2 and words[1].isdigit():
                mtu = int(words[1])
            elif words[0] == "description":
                description = line[len("description") :].strip()
        if routed:
            return PortState(port, None, shutdown=shutdown, mtu=mtu, description=description)
        if mode is PortMode.TRUNK:
            return PortState(
                port,
                mode,
                native_vlan=native,
                allowed_vlans=tuple(sorted(allowed)),
                shutdown=shutdown,
                mtu=mtu,
                description=description,
            )
        return PortState(
            port, mode, vlan=access, shutdown=shutdown, mtu=mtu, description=description
        )

    def parse_vlans(self, output: str) -> dict[int, VlanState]:
        vlans: dict[int, VlanState] = {}
        for line in output.splitlines():
            m = _VLAN_ROW.match(line)
            if m and VLAN_MIN <= int(m.group(1)) <= VLAN_MAX:
                vlans[int(m.group(1))] = VlanState(int(m.group(1)), m.group(2))
        return vlans

    def show_lldp_command(self) -> list[str]:
        # both platforms print their own JSON model of the detail table (parse_lldp per dialect)
        return ["show lldp neighbors detail | json"]


class AristaEosDialect(SwitchportDialect):
    name = "arista_eos"
    netmiko_device_type = "arista_eos"
    # Ethernet1, Ethernet1/1 (module/port or port/lane), Ethernet3/1/1 (linecard/port/lane)
    port_pattern = re.compile(r"Ethernet[1-9][0-9]{0,2}(?:/[1-9][0-9]{0,2}){0,2}")

    # another session holds the configuration lock: the save is retried a bounded number of times
    retry_patterns = (re.compile(r"(?i)configuration is locked"),)
    error_patterns = (
        re.compile(r"^\s*% ?Invalid input"),
        re.compile(r"^\s*% ?Incomplete command"),
        re.compile(r"^\s*% ?Ambiguous command"),
        re.compile(r"^\s*% ?Unavailable command"),
        re.compile(r"^\s*% ?Error"),
        re.compile(r"^\s*% ?Interface .* (?:does not exist|not found)"),
        re.compile(r"^\s*% ?VLAN .*(?:not found|does not exist|already)"),
        re.compile(r"^\s*% ?Not supported"),
    )

    def show_ports_command(self, ports: Sequence[str]) -> list[str]:
        return [f"show running-config interfaces {p}" for p in ports]

    def show_vlans_command(self) -> str:
        return "show vlan"

    def parse_lldp(self, output: str) -> list[LldpNeighbor]:
        interfaces = json_output(output).get("lldpNeighbors")
        if not isinstance(interfaces, dict):
            return []
        found: list[LldpNeighbor] = []
        for port, entry in interfaces.items():
            heard = entry.get("lldpNeighborInfo") if isinstance(entry, dict) else None
            for info in heard if isinstance(heard, list) else ():
                if not isinstance(info, dict):
                    continue
                iface = info.get("neighborInterfaceInfo")
                iface = iface if isinstance(iface, dict) else {}
                port_id = lldp_text(iface.get("interfaceId_v2")) or lldp_text(
                    iface.get("interfaceId")
                )
                found.append(
                    LldpNeighbor(
                        str(port),
                        lldp_id(lldp_text(info.get("chassisId"))),
                        lldp_id(port_id),
                        lldp_text(info.get("systemName")),
                        lldp_text(iface.get("interfaceDescription")),
                    )
                )
        return found
