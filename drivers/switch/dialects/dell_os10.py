"""Dell OS10 (PowerSwitch): ``switchport`` CLI with OS10's own VLAN model.

OS10 differences from EOS/NX-OS that shape the rendering:

* VLANs are interfaces: create ``interface vlan N`` / ``description X`` / ``exit``; delete
  ``no interface vlan N``. (OS10 shows the VLAN's description in ``show vlan``.)
* A trunk's untagged (native) VLAN is its ACCESS VLAN: there is no ``switchport trunk native
  vlan``; ``switchport mode trunk`` + ``switchport access vlan N`` sets it.
* ``switchport trunk allowed vlan LIST`` ADDS tagged VLANs (it does not replace), and its ``no``
  form removes the VLANs it names. Replacing a list therefore needs the port's current one:
  the dialect sets ``needs_current`` and the transport reads the batch's ports in the same
  session and passes them to ``render(changes, current)``. With ``current``, a trunk change
  first removes the tagged VLANs the port must no longer carry
  (``no switchport trunk allowed vlan EXTRA``, before the untagged VLAN changes, so a VLAN can
  move from tagged to untagged), and an access move first removes every tagged VLAN of a former
  trunk. Without ``current`` (None), a trunk change only adds, and an access move of a former
  trunk leaves its tagged VLANs behind; the read-back of the trunk shows any extra.
* Access move: ``interface P`` / [``no switchport trunk allowed vlan CURRENT``] /
  ``switchport mode access`` / ``switchport access vlan N`` / ``exit`` (what
  networking-generic-switch sends, plus the cleanup).
* A description with blanks is sent in double quotes: OS10 keeps blanks only inside quotes
  (unquoted words are joined), and the running configuration shows it quoted.
* ``exit`` ends every block; save is ``write memory``, retried while the output says the
  configuration is locked.

Reading ports: one ``show running-configuration interface ethernet X/Y/Z`` per port; each output
holds ``interface ethernetX/Y/Z`` (no space) and its one-space-indented lines, so concatenated
outputs are delimited by those header lines. Defaults when a line is absent: mode access,
access VLAN 1, no tagged VLANs, shutdown/MTU/description unknown (``None``; OS10 prints
``no shutdown`` explicitly). ``no switchport`` gives mode ``None``. For trunk ports,
``native_vlan`` is the access VLAN and ``vlan`` is ``None``.

Reading VLANs: ``show vlan``; columns are located from its ``NUM Status Description Q Ports``
header line, continuation lines (ports only) are skipped.

Reading LLDP: ``show lldp neighbors detail`` (OS10 has no JSON output; its structured form,
``| display-xml``, is a whole interface model per port, far larger than the text). One block per
neighbour, ``Key: value`` lines at column 0, each block ended by a line of dashes:
``Remote Chassis ID Subtype: Mac address (4)``, ``Remote Chassis ID: 52:54:00:00:05:01``
(OS10 prints MACs in lowercase colon form), ``Remote Port Subtype: Mac address (3)`` /
``Interface name (5)`` / ``Locally assigned (7)``, ``Remote Port ID``, ``Remote Port
Description``, ``Local Port ID: ethernet1/1/5`` (the dialect's own port naming), then the
neighbour index, TTL and ages, ``Remote System Name``, ``Remote System Desc`` (which may run
over several lines) and the 802.3 TLVs. A TLV the neighbour did not send reads ``Not
Advertised``: ``None``. The first line of each key in a block is taken (a wrapped system
description cannot override one), and a block also starts at a ``Remote Chassis ID Subtype``
line, so blocks without their dash line are still told apart. The layout comes from outputs
recorded by others' tools and tests (no Dell document with a full example was at hand); a
block with no ``Local Port ID`` is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

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
    format_vlan_ranges,
    lldp_id,
    parse_vlan_ranges,
)

_INTERFACE = re.compile(r"^interface\s+(\S+)\s*$")
_VLAN_NUM = re.compile(r"^[\s*@MRPCIS]*?\s*(\d{1,4})\s")
_LLDP_FIELD = re.compile(r"^(Remote [A-Za-z ]+?|Local Port ID)\s*:\s?(.*)$")
_LLDP_END = re.compile(r"^-{20,}\s*$")
_LLDP_KEYS = {
    "Remote Chassis ID": "chassis_id",
    "Remote Port ID": "port_id",
    "Remote Port Description": "port_description",
    "Local Port ID": "local_port",
    "Remote System Name": "system_name",
}


def _interface_blocks(output: str) -> dict[str, list[str]]:
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


def _tagged(state: PortState | None) -> set[int]:
    """The tagged VLANs of a port as read (a trunk's allowed list holds its untagged VLAN too);
    nothing when unknown or not a trunk."""
    if state is None or state.mode is not PortMode.TRUNK:
        return set()
    return set(state.allowed_vlans) - {state.native_vlan}


def _untagged(state: PortState | None) -> int | None:
    """The untagged VLAN of a port as read: a trunk's native VLAN, an access port's VLAN."""
    if state is None:
        return None
    return state.native_vlan if state.mode is PortMode.TRUNK else state.vlan


def _description(text: str) -> str:
    if not text:
        return "no description"
    # OS10 keeps blanks only inside double quotes (check() lets no quote into a description)
    return f'description "{text}"' if " " in text else f"description {text}"


class DellOs10Dialect(Dialect):
    name = "dell_os10"
    netmiko_device_type = "dell_os10"
    # ethernet1/1/1, ethernet1/1/49:1 (breakout)
    port_pattern = re.compile(r"ethernet[1-9][0-9]?/[1-9][0-9]?/[1-9][0-9]{0,2}(?::[1-9])?")
    # trunk lists are only added to / removed from: replacing one needs the current list
    needs_current = True

    # another session holds the configuration lock: the save is retried a bounded number of times
    retry_patterns = (re.compile(r"(?i)\bis locked\b"),)

    error_patterns = (
        re.compile(r"^\s*% ?Error"),
        re.compile(r"^\s*% ?Invalid input"),
        re.compile(r"^\s*% ?Incomplete command"),
        re.compile(r"^\s*% ?Ambiguous command"),
        re.compile(r"^\s*% ?Unrecognized command"),
        re.compile(r"^\s*% ?Failed"),
    )

    def render(
        self, changes: ChangeSet, current: Mapping[str, PortState] | None = None
    ) -> list[str]:
        out: list[str] = []
        for v in changes.vlans:
            if v.delete:
                out.append(f"no interface vlan {v.vlan}")
                continue
            out.append(f"interface vlan {v.vlan}")
            if v.name:
                out.append(f"description {v.name}")
            out.append("exit")
        for p in changes.ports:
            body = self._port_body(p, None if current is None else current.get(p.port))
            if body:
                out += [f"interface {p.port}", *body, "exit"]
        return out

    def _port_body(self, p: PortChange, now: PortState | None) -> list[str]:
        """The port's commands; ``now``: its current state when the transport read it."""
        out: list[str] = []
        tagged_now = _tagged(now)
        if p.mode is PortMode.ACCESS:
            if tagged_now:  # a former trunk: its tagged VLANs would stay behind the mode change
                out.append(f"no switchport trunk allowed vlan {format_vlan_ranges(tagged_now)}")
            out.append("switchport mode access")
            if p.vlan is not None:
                out.append(f"switchport access vlan {p.vlan}")
        else:
            if p.mode is PortMode.TRUNK:
                out.append("switchport mode trunk")
            elif p.vlan is not None:
                out.append(f"switchport access vlan {p.vlan}")
            untagged = p.native_vlan if p.native_vlan is not None else _untagged(now)
            tagged = set(p.allowed_vlans) - {untagged}
            # a trunk's list is replaced, never appended to: what it carries and must not goes
            # first, so a VLAN can move from tagged to untagged
            extra = tagged_now - tagged if p.mode is PortMode.TRUNK or p.allowed_vlans else set()
            if extra:
                out.append(f"no switchport trunk allowed vlan {format_vlan_ranges(extra)}")
            if p.native_vlan is not None:
                # the untagged VLAN of an OS10 trunk is its access VLAN
                out.append(f"switchport access vlan {p.native_vlan}")
            if tagged:
                out.append(f"switchport trunk allowed vlan {format_vlan_ranges(tagged)}")
        if p.shutdown is not None:
            out.append("shutdown" if p.shutdown else "no shutdown")
        if p.mtu is not None:
            out.append(f"mtu {p.mtu}")
        if p.description is not None:
            out.append(_description(p.description))
        return out

    def save_commands(self) -> list[str]:
        return ["write memory"]

    def show_ports_command(self, ports: Sequence[str]) -> list[str]:
        # "ethernet1/1/1" -> "show running-configuration interface ethernet 1/1/1"
        return [
            f"show running-configuration interface ethernet {p[len('ethernet') :]}" for p in ports
        ]

    def parse_ports(self, output: str) -> dict[str, PortState]:
        states: dict[str, PortState] = {}
        for port, lines in _interface_blocks(output).items():
            if self.port_pattern.fullmatch(port):
                states[port] = self._port_state(port, lines)
        return states

    def _port_state(self, port: str, lines: list[str]) -> PortState:
        routed = False
        mode = PortMode.ACCESS
        access = 1
        tagged: set[int] = set()
        shutdown: bool | None = None
        mtu: int | None = None
        description: str | None = None
        for line in lines:
            words = line.split()
            if line == "no switchport":
                routed = True
            elif line == "switchport mode trunk":
                mode = PortMode.TRUNK
            elif line == "switchport mode access":
                mode = PortMode.ACCESS
            elif line.startswith("switchport access vlan ") and len(words) == 4:
                access = int(words[3])
            elif line.startswith("switchport trunk allowed vlan ") and len(words) == 5:
                tagged |= parse_vlan_ranges(words[4])
            elif line == "shutdown":
                shutdown = True
            elif line == "no shutdown":
                shutdown = False
            elif words[0] == "mtu" and len(words) == 2 and words[1].isdigit():
                mtu = int(words[1])
            elif words[0] == "description":
                # a description with blanks may come back quoted
                description = line[len("description") :].strip().strip('"')
        if routed:
            return PortState(port, None, shutdown=shutdown, mtu=mtu, description=description)
        if mode is PortMode.TRUNK:
            return PortState(
                port,
                mode,
                native_vlan=access,
                allowed_vlans=tuple(sorted(tagged | {access})),
                shutdown=shutdown,
                mtu=mtu,
                description=description,
            )
        return PortState(
            port, mode, vlan=access, shutdown=shutdown, mtu=mtu, description=description
        )

    def show_vlans_command(self) -> str:
        return "show vlan"

    def parse_vlans(self, output: str) -> dict[int, VlanState]:
        vlans: dict[int, VlanState] = {}
        desc_at = q_at = -1
        for line in output.splitlines():
            if "NUM" in line and "Status" in line and "Description" in line:
                desc_at = line.index("Description")
                q_at = line.index(" Q ", desc_at) + 1 if " Q " in line[desc_at:] else len(line)
                continue
            if desc_at < 0:
                continue
            m = _VLAN_NUM.match(line[:desc_at])
            if not m or not (VLAN_MIN <= int(m.group(1)) <= VLAN_MAX):
                continue
            desc = line[desc_at:q_at].strip() if len(line) > desc_at else ""
            vlans[int(m.group(1))] = VlanState(int(m.group(1)), desc or None)
        return vlans

    def show_lldp_command(self) -> list[str]:
        return ["show lldp neighbors detail"]

    def parse_lldp(self, output: str) -> list[LldpNeighbor]:
        found: list[LldpNeighbor] = []
        block: dict[str, str] = {}

        def close() -> None:
            local = _lldp_value(block.get("local_port"))
            if local is not None:
                found.append(
                    LldpNeighbor(
                        local,
                        lldp_id(_lldp_value(block.get("chassis_id"))),
                        lldp_id(_lldp_value(block.get("port_id"))),
                        _lldp_value(block.get("system_name")),
                        _lldp_value(block.get("port_description")),
                    )
                )
            block.clear()

        for raw in output.splitlines():
            line = raw.rstrip()
            if _LLDP_END.match(line.strip()):
                close()
                continue
            m = _LLDP_FIELD.match(line)
            if m is None:
                continue
            key = m.group(1).strip()
            if key == "Remote Chassis ID Subtype" and block:
                close()  # a new neighbour without the dash line before it
            field = _LLDP_KEYS.get(key)
            if field is not None and field not in block:
                block[field] = m.group(2)
        close()
        return found


def _lldp_value(text: str | None) -> str | None:
    """An LLDP field as OS10 prints it: None when absent, empty or ``Not Advertised``."""
    if text is None:
        return None
    text = text.strip()
    return None if not text or text.lower() == "not advertised" else text
