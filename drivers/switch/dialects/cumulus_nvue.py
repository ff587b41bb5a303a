"""NVIDIA Cumulus Linux 5.x through NVUE (``nv set`` / ``nv unset``), driven as shell commands.

Every command is one shell line run on its own (netmiko device type ``linux``, as
networking-generic-switch does). Ports live in the default VLAN-aware bridge ``br_default``.

Rendering (``render``): VLAN creations, then ports, then VLAN deletions. Nothing is live until
``nv config apply``: ``render`` only stages the pending revision and ``save_commands()`` returns
``nv config apply --assume-yes`` (make it live) then ``nv config save`` (make it survive a reboot).
The transport runs them once per session after the rendered batch, so a refused ``nv set``
stops the session before anything was applied.

Traps handled here:

* an access VLAN needs ``untagged`` (and any tagged ``vlan`` list) unset first, or NVUE refuses
  ``access`` / keeps the old trunk list;
* a trunk's VLAN list is replaced, never appended: ``nv unset ... vlan`` then ``nv set ... vlan
  L`` with the whole list; the list carries the native VLAN too (NVUE needs the untagged VLAN
  among the port's VLANs);
* descriptions go through ``shlex.quote`` (``check()`` already refused quotes and control
  characters; the quoting keeps ``#``, ``(`` and spaces away from the shell).

Reading back: ``nv config show -o json`` is the applied configuration (a JSON list: a ``header``
document, then a ``set`` document holding the whole tree); one command for every port, no
delimiting needed. VLANs: ``nv show bridge domain br_default vlan -o json`` (an object keyed by
VLAN id or range). ``parse_*`` accept either shape.

LLDP: Cumulus Linux runs lldpd natively. NVUE's neighbour data is per interface (``nv show interface
<if> lldp neighbor [-o json]``); for all ports at once it has the ``nv show interface lldp`` table
(no chassis id), and whether the bulk ``nv show interface -o json`` carries each interface's
``lldp`` subtree could not be verified. So the read asks lldpd itself, every port at once: ``sudo -n
lldpctl -f json0`` (read by dialects/lldpd.py). lldpd's control socket is ``root:_lldpd`` mode 0770
(lldpd.c), so the ``cumulus`` login needs sudo for it, as NVIDIA's documentation shows (``sudo
lldpcli show neighbors``); the switch needs a password-less rule for it, e.g. ``cumulus ALL=(root)
NOPASSWD: /usr/sbin/lldpctl`` in /etc/sudoers.d. ``-n`` makes sudo answer ``sudo: a password is
required`` instead of waiting at a password prompt without one. ``json0`` rather than ``json``:
third-party tools record the ``json0`` shape from Cumulus's ``lldpctl -f json`` (a build with
``--enable-json0``, unverified here); ``-f json0`` prints that one shape on any lldpd since 0.9.8,
and the parser reads both anyway. Neighbours heard on ``eth0`` (management) are returned under that
name like the others.

Error patterns start at a line's start (after blanks): ``nv config show -o json`` and
lldpctl's JSON quote descriptions and neighbour texts, which may say "Invalid" or "Error:".
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from drivers.switch.base import (
    ChangeSet,
    Dialect,
    LldpNeighbor,
    PortChange,
    PortMode,
    PortState,
    VlanState,
    format_vlan_ranges,
    parse_vlan_ranges,
)
from drivers.switch.dialects.lldpd import ERROR_PATTERNS, parse_lldpctl_json

BRIDGE = "br_default"


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _vlan_keys(value: Any) -> tuple[int, ...]:
    """NVUE VLAN lists are objects keyed by id or range ("10", "20-30"), sometimes a string."""
    if isinstance(value, dict):
        text = ",".join(str(k) for k in value)
    elif isinstance(value, (int, str)):
        text = str(value)
    else:
        return ()
    try:
        return tuple(sorted(parse_vlan_ranges(text)))
    except ValueError:
        return ()


_RANGE_KEY = re.compile(r"^(swp)(\d+)-(\d+)$")


def _expand_iface_key(key: str) -> list[str]:
    """``swp1-4`` (a range some configurations keep) -> swp1..swp4; anything else as is."""
    names: list[str] = []
    for part in key.split(","):
        m = _RANGE_KEY.match(part)
        if m and int(m.group(2)) <= int(m.group(3)):
            names.extend(f"{m.group(1)}{n}" for n in range(int(m.group(2)), int(m.group(3)) + 1))
        else:
            names.append(part)
    return names


def _applied_tree(output: str) -> dict[str, Any]:
    """The ``set`` tree of ``nv config show -o json`` (or an already-unwrapped tree)."""
    data = json.loads(output)
    if isinstance(data, list):
        tree: dict[str, Any] = {}
        for doc in data:
            tree.update(_as_dict(_as_dict(doc).get("set")))
        return tree
    return _as_dict(data)


class CumulusNvueDialect(Dialect):
    name: ClassVar[str] = "cumulus_nvue"
    netmiko_device_type: ClassVar[str] = "linux"
    # swp1..swp999, breakouts swp1s0..swp1s7
    port_pattern: ClassVar[re.Pattern[str]] = re.compile(r"\Aswp[1-9][0-9]{0,2}(?:s[0-7])?\Z")

    # another apply in progress: the transport retries apply/save a bounded number of times
    retry_patterns: ClassVar[tuple[re.Pattern[str], ...]] = (re.compile(r"(?i)config is locked"),)
    error_patterns: ClassVar[tuple[re.Pattern[str], ...]] = (
        *(
            re.compile(r"^\s*" + p)
            for p in (
                r"Error:",
                r"Invalid",  # Invalid config [rev_id: N]
                r"Config invalid at",
                r"Failure during apply",
                r"Unable to restart services",
                r"-?bash: ",
                r"sudo: ",  # sudo -n: "a password is required"; "lldpctl: command not found"
            )
        ),
        re.compile(r"command not found\s*$"),
        re.compile(r"is not a physical interface\.?\s*$"),
        *ERROR_PATTERNS,  # lldpctl's own
    )

    # ------------------------------------------------------------------ render

    def render(
        self, changes: ChangeSet, current: Mapping[str, PortState] | None = None
    ) -> list[str]:
        cmds: list[str] = []
        for v in changes.vlans:
            if not v.delete:
                # NVUE VLANs carry no name: VlanChange.name is not rendered
                cmds.append(f"nv set bridge domain {BRIDGE} vlan {v.vlan}")
        for p in changes.ports:
            cmds.extend(self._port(p))
        for v in changes.vlans:
            if v.delete:
                cmds.append(f"nv unset bridge domain {BRIDGE} vlan {v.vlan}")
        return cmds

    def _port(self, p: PortChange) -> list[str]:
        bd = f"interface {p.port} bridge domain {BRIDGE}"
        out: list[str] = []
        if p.mode is PortMode.ACCESS and p.vlan is not None:
            out += [
                f"nv unset {bd} untagged",
                f"nv unset {bd} vlan",
                f"nv set {bd} access {p.vlan}",
            ]
        elif p.mode is PortMode.TRUNK:
            carried = set(p.allowed_vlans)
            if p.native_vlan is not None:
                carried.add(p.native_vlan)
            out += [f"nv unset {bd} access", f"nv unset {bd} vlan"]
            out.append(f"nv set {bd} vlan {format_vlan_ranges(carried)}")
            if p.native_vlan is not None:
                out.append(f"nv set {bd} untagged {p.native_vlan}")
        if p.mtu is not None:
            out.append(f"nv set interface {p.port} link mtu {p.mtu}")
        if p.description is not None:
            if p.description:
                out.append(f"nv set interface {p.port} description {shlex.quote(p.description)}")
            else:
                out.append(f"nv unset interface {p.port} description")
        if p.shutdown is not None:
            state = "down" if p.shutdown else "up"
            out.append(f"nv set interface {p.port} link state {state}")
        return out

    def save_commands(self) -> list[str]:
        # apply makes the staged revision live; save persists it (separate steps in NVUE)
        return ["nv config apply --assume-yes", "nv config save"]

    # ------------------------------------------------------------------ read back

    def show_ports_command(self, ports: Sequence[str]) -> list[str]:
        for port in ports:
            if not self.port_pattern.fullmatch(port):
                raise ValueError(f"not a {self.name} port name: {port!r}")
        return ["nv config show -o json"]

    def parse_ports(self, output: str) -> dict[str, PortState]:
        tree = _applied_tree(output)
        bridge = _as_dict(_as_dict(_as_dict(tree.get("bridge")).get("domain")).get(BRIDGE))
        bridge_vlans = _vlan_keys(bridge.get("vlan"))
        states: dict[str, PortState] = {}
        for key, raw in _as_dict(tree.get("interface")).items():
            iface = _as_dict(raw)
            for port in _expand_iface_key(str(key)):
                if not self.port_pattern.fullmatch(port):
                    continue  # bonds, loopback, eth0, vlan interfaces
                states[port] = self._port_state(port, iface, bridge, bridge_vlans)
        return states

    @staticmethod
    def _port_state(
        port: str, iface: dict[str, Any], bridge: dict[str, Any], bridge_vlans: tuple[int, ...]
    ) -> PortState:
        link = _as_dict(iface.get("link"))
        state = link.get("state")
        if isinstance(state, dict):
            state = next(iter(state), None)
        shutdown = {"down": True, "up": False}.get(str(state)) if state is not None else None
        desc = iface.get("description")
        description = str(desc) if desc not in (None, "") else None
        mtu = _int_or_none(link.get("mtu"))

        domains = _as_dict(_as_dict(iface.get("bridge")).get("domain"))
        mode: PortMode | None = None
        vlan = native = None
        allowed: tuple[int, ...] = ()
        if BRIDGE in domains:
            bd = _as_dict(domains[BRIDGE])
            access = _int_or_none(bd.get("access"))
            if access is not None:
                mode, vlan = PortMode.ACCESS, access
            else:
                mode = PortMode.TRUNK
                # an interface without its own list carries every VLAN of the bridge
                allowed = _vlan_keys(bd["vlan"]) if "vlan" in bd else bridge_vlans
                untagged = bd.get("untagged", bridge.get("untagged"))
                native = _int_or_none(untagged)  # "none" -> no native VLAN
                if native is not None and native not in allowed:
                    allowed = tuple(sorted({*allowed, native}))
        return PortState(
            port=port,
            mode=mode,
            vlan=vlan,
            native_vlan=native,
            allowed_vlans=allowed,
            shutdown=shutdown,
            mtu=mtu,
            description=description,
        )

    def show_vlans_command(self) -> str:
        return f"nv show bridge domain {BRIDGE} vlan -o json"

    def parse_vlans(self, output: str) -> dict[int, VlanState]:
        data = json.loads(output)
        if isinstance(data, list):  # nv config show -o json also works
            tree = _applied_tree(output)
            domain = _as_dict(_as_dict(_as_dict(tree.get("bridge")).get("domain")).get(BRIDGE))
            data = domain.get("vlan")
        return {v: VlanState(v) for v in _vlan_keys(data)}

    def show_lldp_command(self) -> list[str]:
        return ["sudo -n lldpctl -f json0"]

    def parse_lldp(self, output: str) -> list[LldpNeighbor]:
        return parse_lldpctl_json(output)
