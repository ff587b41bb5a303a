"""Lab Arista EOS (``provisiond lab switch --dialect arista_eos``): ``lab-eos>``, ``enable`` ->
``lab-eos#``, ``configure terminal`` -> ``(config)#``, ``interface EthernetN`` ->
``(config-if-EtN)#``, ``vlan N`` -> ``(config-vlan-N)#``, ``exit``/``end``; the switchport commands
drivers/switch/dialects/arista_eos.py renders; ``show running-config [interfaces X]``,
``show startup-config``, ``show vlan``, ``show version``; ``copy running-config startup-config`` /
``write memory``; ``terminal length 0`` / ``terminal width N`` (netmiko's session setup).
Anything else: ``% Invalid input``; ``!`` lines are comments.

LLDP: ``show lldp neighbors detail`` answers from ``switch.lldp_neighbors()`` (``--lldp FILE``),
in EOS's text layout (``Interface EthernetN detected K LLDP neighbors:``, then per neighbour its
``Neighbor CHASSIS/PORT`` line and ``- Chassis ID type: MAC address (4)`` / ``Chassis ID :`` /
``- Port ID type:`` / ``Port ID :`` / ``- Time To Live:`` / ``- Port Description:`` / ``- System
Name:`` lines, as recorded from EOS 4.15), every port listed, MACs in EOS's dotted notation
(``5254.0000.0501``), interface-name and locally assigned port ids in double quotes. ``| json``
prints the JSON model instead (``lldp_model``: ``lldpNeighbors`` -> port -> ``lldpNeighborInfo``,
with ``chassisIdType``/``chassisId``, ``systemName``, ``ttl`` and ``neighborInterfaceInfo``
``interfaceIdType``/``interfaceId`` (a name keeps its quotes in the string, as on EOS)/
``interfaceId_v2``/``interfaceDescription``), indented by 4 as EOS prints it; the eAPI gives the
same model for ``format: json``. Lab limits: no management addresses, capabilities or 802.1/802.3
TLVs; ages are 0 (the lab does not know when a neighbour was first heard); the type names of
locally assigned ids (``local``) are the lab's guess. ``| json`` after any other show answers
``% Not supported by the provisiond lab: ...`` (lab wording: EOS has JSON for most shows); other
pipes are invalid.

``EosCli.run`` applies a line to ``target`` (the running configuration unless set): the lab eAPI
(provisiond/lab/eapi.py) runs the same handlers on its configure sessions' candidates.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drivers.switch.base import VLAN_MAX, VLAN_MIN, format_vlan_ranges, parse_vlan_ranges
from provisiond.lab.switch import DialectCli, EndSession, LabNeighbor, LabSwitch, Terminal
from provisiond.lab.switches.switchport import mac_notation


@dataclass
class EosPort:
    switchport: bool = True
    mode: str = "access"
    access_vlan: int = 1
    native_vlan: int = 1
    allowed: frozenset[int] | None = None  # None: all VLANs (the EOS default)
    shutdown: bool = False
    mtu: int | None = None
    description: str | None = None


@dataclass
class EosConfig:
    hostname: str
    vlans: dict[int, str] = field(default_factory=dict)
    ports: dict[str, EosPort] = field(default_factory=dict)


_EOS_INVALID = "% Invalid input"
_EOS_INCOMPLETE = "% Incomplete command"
_EOS_PRIVILEGED = "% Invalid input (privileged mode required)"
_EOS_LOCKED = "% Error: configuration is locked by another session"
# lab wording: EOS has JSON models for most shows, the lab only for the LLDP one
_EOS_NO_MODEL = "% Not supported by the provisiond lab: no JSON model for this command"
_EOS_IFNAME = re.compile(r"^(?:ethernet|etherne|ethern|ether|ethe|eth|et|e)\s*(\d+)$", re.I)
_EOS_MTU = (68, 9214)


def _kw(word: str, keyword: str, minimum: int = 1) -> bool:
    """``word`` is an abbreviation of ``keyword`` (EOS accepts any unambiguous prefix)."""
    return len(word) >= minimum and keyword.startswith(word.lower())


def _vlan_id(text: str) -> int | None:
    return int(text) if text.isdigit() and VLAN_MIN <= int(text) <= VLAN_MAX else None


def _vlan_set(text: str) -> frozenset[int] | None:
    try:
        return parse_vlan_ranges(text)
    except ValueError:
        return None


class EosCli(DialectCli):
    name = "arista_eos"
    hostname = "lab-eos"
    default_username = "admin"
    default_password = "admin"

    def __init__(self, switch: LabSwitch, term: Terminal, username: str) -> None:
        super().__init__(switch, term, username)
        self.mode = "exec"  # exec | enable | config | config-if | config-vlan
        self.interface: str | None = None
        self.vlans: list[int] = []
        # what configuration commands edit: None for the running configuration; the lab eAPI
        # (provisiond/lab/eapi.py) points it at a configure session's candidate
        self.target: EosConfig | None = None

    @property
    def config(self) -> EosConfig:
        """The configuration being edited (the running one unless ``target`` is set)."""
        return self.target if self.target is not None else self.running

    @property
    def running(self) -> EosConfig:
        """The switch's running configuration: what shows and saves read, in any mode."""
        cfg: EosConfig = self.switch.running
        return cfg

    @staticmethod
    def port_names(count: int) -> list[str]:
        return [f"Ethernet{i}" for i in range(1, count + 1)]

    @classmethod
    def initial_config(cls, ports: list[str]) -> EosConfig:
        return EosConfig(cls.hostname, {1: "default"}, {p: EosPort() for p in ports})

    def banner(self) -> str:
        return "\n"

    def prompt(self) -> str:
        host = self.config.hostname
        if self.mode == "exec":
            return f"{host}>"
        if self.mode == "enable":
            return f"{host}#"
        if self.mode == "config-if":
            assert self.interface is not None
            return f"{host}(config-if-{self.interface.replace('Ethernet', 'Et')})#"
        if self.mode == "config-vlan":
            return f"{host}(config-vlan-{format_vlan_ranges(self.vlans)})#"
        return f"{host}(config)#"

    def is_config_command(self, line: str) -> bool:
        words = line.split()
        if not words:
            return False
        if self.mode.startswith("config"):
            return not (_kw(words[0], "exit", 3) or _kw(words[0], "end", 2) or words[0] == "show")
        return self._is_save(words)

    @staticmethod
    def _is_save(words: list[str]) -> bool:
        return (
            len(words) == 3
            and _kw(words[0], "copy", 2)
            and _kw(words[1], "running-config", 3)
            and _kw(words[2], "startup-config", 3)
        ) or (
            bool(words)
            and _kw(words[0], "write", 2)
            and (len(words) == 1 or (len(words) == 2 and _kw(words[1], "memory", 3)))
        )

    async def execute(self, line: str) -> None:
        self.term.write(self.run(line))

    def run(self, line: str) -> str:
        """Run one line in the current mode against the configuration being edited and return
        what the switch prints (errors are lines starting with ``%``)."""
        words = line.split()
        if not words or words[0].startswith("!"):  # EOS reads "!" lines as comments
            return ""
        out = self._common(line, words)
        if out is None:
            if self.mode in ("exec", "enable"):
                out = self._exec(words)
            elif self.mode == "config":
                out = self._config(line, words)
            else:
                out = self._submode(line, words)
        return out

    # -------------------------------------------------------------- any mode

    def _common(self, line: str, words: list[str]) -> str | None:
        first = words[0].lower()
        if _kw(first, "show", 2):
            if (
                self.mode == "exec"
                and len(words) > 1
                and (_kw(words[1], "running-config", 3) or _kw(words[1], "startup-config", 3))
            ):
                return _EOS_PRIVILEGED + "\n"
            return self._show(words[1:])
        if self._is_save(words):
            if self.mode == "exec":
                return _EOS_PRIVILEGED + "\n"
            if self.switch.faults.current().config_locked:
                return _EOS_LOCKED + "\n"
            self.switch.saved = copy.deepcopy(self.running)
            return "Copy completed successfully.\n"
        if _kw(first, "terminal", 3) and len(words) == 3:
            what, value = words[1].lower(), words[2]
            if _kw(what, "length", 3) and value.isdigit():
                return "Pagination disabled.\n" if int(value) == 0 else ""
            if _kw(what, "width", 3) and value.isdigit() and 10 <= int(value) <= 32767:
                return f"Width set to {int(value)} columns.\n"
            return _EOS_INVALID + "\n"
        if _kw(first, "end", 2) and len(words) == 1:
            if self.mode.startswith("config"):
                self.mode, self.interface, self.vlans = "enable", None, []
                return ""
            return _EOS_INVALID + "\n"
        return None

    # -------------------------------------------------------------- exec modes

    def _exec(self, words: list[str]) -> str:
        first = words[0].lower()
        if _kw(first, "enable", 2) and len(words) == 1:
            self.mode = "enable"
            return ""
        if _kw(first, "disable", 3) and len(words) == 1:
            self.mode = "exec"
            return ""
        if first in ("exit", "quit", "logout") and len(words) == 1:
            raise EndSession
        if _kw(first, "configure", 4) and (
            len(words) == 1 or (len(words) == 2 and _kw(words[1], "terminal", 1))
        ):
            if self.mode == "exec":
                return _EOS_PRIVILEGED + "\n"
            self.mode = "config"
            return ""
        return _EOS_INVALID + "\n"

    # -------------------------------------------------------------- configuration

    def _config(self, line: str, words: list[str]) -> str:
        out = self._config_command(line, words)
        return _EOS_INVALID + "\n" if out is None else out

    def _config_command(self, line: str, words: list[str]) -> str | None:
        """A global-configuration command (also reached from sub-modes, which it leaves), or
        None when it is not one."""
        first = words[0].lower()
        cfg = self.config
        if _kw(first, "exit", 3) and len(words) == 1 and self.mode == "config":
            self.mode = "enable"
            return ""
        if _kw(first, "interface", 2):
            if len(words) == 1:
                return _EOS_INCOMPLETE + "\n"
            name = self._port_name("".join(words[1:]))
            if name is None:
                return _EOS_INVALID + "\n"
            self.mode, self.interface, self.vlans = "config-if", name, []
            return ""
        if _kw(first, "vlan", 2):
            if len(words) == 1:
                return _EOS_INCOMPLETE + "\n"
            ids = _vlan_set(words[1]) if len(words) == 2 else None
            if not ids:
                return _EOS_INVALID + "\n"
            for v in ids:
                cfg.vlans.setdefault(v, f"VLAN{v:04d}")
            self.mode, self.interface, self.vlans = "config-vlan", None, sorted(ids)
            return ""
        if first == "no" and len(words) >= 2 and _kw(words[1], "vlan", 2):
            ids = _vlan_set(words[2]) if len(words) == 3 else None
            if len(words) == 2:
                return _EOS_INCOMPLETE + "\n"
            if not ids:
                return _EOS_INVALID + "\n"
            if 1 in ids:
                return "% Default VLAN 1 cannot be deleted\n"
            for v in ids:
                cfg.vlans.pop(v, None)
            self.mode, self.interface, self.vlans = "config", None, []
            return ""
        if _kw(first, "hostname", 3):
            if len(words) != 2:
                return _EOS_INCOMPLETE + "\n" if len(words) == 1 else _EOS_INVALID + "\n"
            cfg.hostname = words[1]
            self.mode, self.interface, self.vlans = "config", None, []
            return ""
        if (  # the mode every lab configuration has (a saved configuration replays it)
            len(words) == 3
            and _kw(first, "spanning-tree", 2)
            and _kw(words[1], "mode", 2)
            and words[2].lower() == "mstp"
        ):
            self.mode, self.interface, self.vlans = "config", None, []
            return ""
        return None

    def _port_name(self, text: str) -> str | None:
        m = _EOS_IFNAME.match(text)
        if m is None:
            return None
        name = f"Ethernet{int(m.group(1))}"
        return name if name in self.config.ports else None

    def _submode(self, line: str, words: list[str]) -> str:
        first = words[0].lower()
        if _kw(first, "exit", 3) and len(words) == 1:
            self.mode, self.interface, self.vlans = "config", None, []
            return ""
        handler = self._interface if self.mode == "config-if" else self._vlan
        out = handler(line, words)
        if out is None:  # EOS tries the command in the parent mode, leaving this one
            out = self._config_command(line, words)
        return _EOS_INVALID + "\n" if out is None else out

    def _vlan(self, line: str, words: list[str]) -> str | None:
        cfg = self.config
        if _kw(words[0], "name", 2):
            if len(words) != 2:
                return _EOS_INCOMPLETE + "\n" if len(words) == 1 else _EOS_INVALID + "\n"
            for v in self.vlans:
                cfg.vlans[v] = words[1]
            return ""
        if words[0] == "no" and len(words) == 2 and _kw(words[1], "name", 2):
            for v in self.vlans:
                cfg.vlans[v] = f"VLAN{v:04d}"
            return ""
        return None

    def _interface(self, line: str, words: list[str]) -> str | None:
        assert self.interface is not None
        port = self.config.ports[self.interface]
        neg = words[0].lower() in ("no", "default")
        args = [w.lower() for w in (words[1:] if neg else words)]
        if not args:
            return _EOS_INCOMPLETE + "\n"
        head = args[0]
        if _kw(head, "shutdown", 2) and len(args) == 1:
            port.shutdown = not neg
            return ""
        if _kw(head, "mtu", 2):
            if neg and len(args) == 1:
                port.mtu = None
                return ""
            if len(args) == 1:
                return _EOS_INCOMPLETE + "\n"
            if len(args) == 2 and args[1].isdigit() and _EOS_MTU[0] <= int(args[1]) <= _EOS_MTU[1]:
                port.mtu = int(args[1])
                return ""
            return _EOS_INVALID + "\n"
        if _kw(head, "description", 3):
            if neg:
                port.description = None
                return ""
            text = line.strip()[len(words[0]) :].strip()
            if not text:
                return _EOS_INCOMPLETE + "\n"
            port.description = text
            return ""
        if _kw(head, "switchport", 3):
            return self._switchport(port, neg, args[1:])
        return None

    def _switchport(self, port: EosPort, neg: bool, args: list[str]) -> str:
        incomplete, invalid = _EOS_INCOMPLETE + "\n", _EOS_INVALID + "\n"
        if not args:
            port.switchport = not neg
            return ""
        head = args[0]
        if _kw(head, "mode", 2):
            if neg:
                port.mode = "access"
                return "" if len(args) <= 2 else invalid
            if len(args) != 2:
                return incomplete if len(args) == 1 else invalid
            if _kw(args[1], "access", 2):
                port.mode = "access"
            elif _kw(args[1], "trunk", 2):
                port.mode = "trunk"
            else:
                return invalid
            return ""
        if _kw(head, "access", 2):
            if len(args) < 2 or not _kw(args[1], "vlan", 1):
                return incomplete if len(args) < 2 else invalid
            if neg:
                port.access_vlan = 1
                return ""
            if len(args) != 3:
                return incomplete if len(args) == 2 else invalid
            vlan = _vlan_id(args[2])
            if vlan is None:
                return invalid
            port.access_vlan = vlan
            if vlan not in self.config.vlans:
                self.config.vlans[vlan] = f"VLAN{vlan:04d}"
                return f"! Access VLAN does not exist. Creating vlan {vlan}\n"
            return ""
        if _kw(head, "trunk", 2):
            if len(args) < 3:
                return incomplete
            what, kw_vlan = args[1], args[2]
            if not _kw(kw_vlan, "vlan", 1):
                return invalid
            if _kw(what, "native", 2):
                if neg:
                    port.native_vlan = 1
                    return ""
                if len(args) != 4:
                    return incomplete if len(args) == 3 else invalid
                vlan = _vlan_id(args[3])
                if vlan is None:
                    return invalid
                port.native_vlan = vlan
                return ""
            if _kw(what, "allowed", 2):
                return self._allowed(port, neg, args[3:])
            return invalid
        return invalid

    @staticmethod
    def _allowed(port: EosPort, neg: bool, args: list[str]) -> str:
        if neg:
            port.allowed = None
            return ""
        if not args:
            return _EOS_INCOMPLETE + "\n"
        every = frozenset(range(VLAN_MIN, VLAN_MAX + 1))
        current = every if port.allowed is None else port.allowed
        op = args[0]
        if op in ("add", "remove", "except"):
            if len(args) != 2:
                return _EOS_INCOMPLETE + "\n" if len(args) == 1 else _EOS_INVALID + "\n"
            ids = _vlan_set(args[1])
            if not ids:
                return _EOS_INVALID + "\n"
            new = {"add": current | ids, "remove": current - ids, "except": every - ids}[op]
        elif len(args) != 1:
            return _EOS_INVALID + "\n"
        elif op == "all":
            new = every
        elif op == "none":
            new = frozenset()
        else:
            ids = _vlan_set(op)
            if not ids:
                return _EOS_INVALID + "\n"
            new = ids
        port.allowed = None if new == every else frozenset(new)
        return ""

    # -------------------------------------------------------------- show

    @staticmethod
    def is_lldp_detail(args: list[str]) -> bool:
        """``args`` (after ``show``) are ``lldp neighbors detail``, abbreviated or not."""
        return (
            len(args) == 3
            and _kw(args[0], "lldp", 2)
            and _kw(args[1], "neighbors", 1)
            and _kw(args[2], "detail", 1)
        )

    def lldp_model(self) -> dict[str, Any]:
        """``show lldp neighbors detail`` as EOS's JSON model, from ``--lldp FILE``."""
        return lldp_model(self.switch.port_names, self.switch.lldp_neighbors(), time.time())

    def _show(self, args: list[str]) -> str:
        if "|" in args:  # "| json" is the one output modifier the lab knows
            at = args.index("|")
            if at == 0 or len(args) == at + 1:
                return _EOS_INCOMPLETE + "\n"
            if args[at + 1 :] != ["json"]:
                return _EOS_INVALID + "\n"
            if not self.is_lldp_detail(args[:at]):
                return _EOS_NO_MODEL + "\n"
            return json.dumps(self.lldp_model(), indent=4) + "\n"
        if not args:
            return _EOS_INCOMPLETE + "\n"
        if self.is_lldp_detail(args):
            return lldp_text(self.switch.port_names, self.switch.lldp_neighbors())
        what = args[0].lower()
        if _kw(what, "running-config", 3):
            if len(args) == 1:
                return self._render_config(self.running, "show running-config")
            if _kw(args[1], "interfaces", 2) and len(args) >= 3:
                name = self._port_name("".join(args[2:]))
                if name is None:
                    return _EOS_INVALID + "\n"
                return "\n".join(_eos_port_lines(name, self.running.ports[name])) + "\n"
            return _EOS_INVALID + "\n"
        if _kw(what, "startup-config", 3) and len(args) == 1:
            saved: EosConfig = self.switch.saved
            return self._render_config(saved, "show startup-config")
        if _kw(what, "vlan", 2) and (len(args) == 1 or (len(args) == 2 and _kw(args[1], "brief"))):
            return self._show_vlan()
        if _kw(what, "version", 2) and len(args) == 1:
            return (
                "Arista DCS-7050SX3-48YC8-F\n"
                "Hardware version: 11.00\n"
                f"Serial number: LAB{self.switch.port}\n"
                "Hardware MAC address: 02:1c:73:00:00:01\n"
                "System MAC address: 02:1c:73:00:00:01\n\n"
                "Software image version: 4.31.2F (provisiond lab)\n"
                "Architecture: x86_64\n"
                "Internal build version: 4.31.2F-lab\n\n"
                "Uptime: 1 hour and 0 minutes\n"
                "Total memory: 16012260 kB\n"
                "Free memory: 12124324 kB\n\n"
            )
        if _kw(what, "hostname", 2) and len(args) == 1:
            return f"Hostname: {self.running.hostname}\nFQDN:     {self.running.hostname}\n"
        return _EOS_INVALID + "\n"

    @staticmethod
    def _render_config(cfg: EosConfig, command: str) -> str:
        lines = [
            f"! Command: {command}",
            f"! device: {cfg.hostname} (DCS-7050SX3-48YC8-F, EOS-4.31.2F)",
            "!",
            f"hostname {cfg.hostname}",
            "!",
            "spanning-tree mode mstp",
            "!",
        ]
        for vid, name in sorted(cfg.vlans.items()):
            if vid == 1:
                continue
            lines.append(f"vlan {vid}")
            if name != f"VLAN{vid:04d}":
                lines.append(f"   name {name}")
            lines.append("!")
        for pname, port in cfg.ports.items():
            lines += [*_eos_port_lines(pname, port), "!"]
        lines.append("end")
        return "\n".join(lines) + "\n"

    def _show_vlan(self) -> str:
        cfg = self.running
        lines = [
            "VLAN  Name                             Status    Ports",
            "----- -------------------------------- --------- -------------------------------",
        ]
        for vid, name in sorted(cfg.vlans.items()):
            members = [
                pname.replace("Ethernet", "Et")
                for pname, p in cfg.ports.items()
                if p.switchport
                and (
                    (p.mode == "access" and p.access_vlan == vid)
                    or (p.mode == "trunk" and (p.allowed is None or vid in p.allowed))
                )
            ]
            chunks = [", ".join(members[i : i + 6]) for i in range(0, len(members), 6)] or [""]
            head = f"{vid:<5} {name:<32} {'active':<9} "
            lines.append((head + chunks[0]).rstrip())
            lines += [" " * len(head) + c for c in chunks[1:]]
        return "\n".join(lines) + "\n\n"


def _eos_port_lines(name: str, p: EosPort) -> list[str]:
    out = [f"interface {name}"]
    if p.description:
        out.append(f"   description {p.description}")
    if p.shutdown:
        out.append("   shutdown")
    if p.mtu is not None:
        out.append(f"   mtu {p.mtu}")
    if p.access_vlan != 1:
        out.append(f"   switchport access vlan {p.access_vlan}")
    if p.native_vlan != 1:
        out.append(f"   switchport trunk native vlan {p.native_vlan}")
    if p.allowed is not None:
        allowed = format_vlan_ranges(p.allowed) if p.allowed else "none"
        out.append(f"   switchport trunk allowed vlan {allowed}")
    if p.mode == "trunk":
        out.append("   switchport mode trunk")
    if not p.switchport:
        out.append("   no switchport")
    return out


# --------------------------------------------------------------------------- LLDP

# LabNeighbor subtypes -> (EOS JSON type name, EOS text type) for chassis and port ids
_CHASSIS_TYPES = {
    "mac": ("macAddress", "MAC address (4)"),
    "local": ("local", "Locally assigned (7)"),
}
_PORT_TYPES = {
    "mac": ("macAddress", "MAC address (3)"),
    "ifname": ("interfaceName", "Interface name (5)"),
    "local": ("local", "Locally assigned (7)"),
}


def _chassis(n: LabNeighbor) -> tuple[str, str, str]:
    """(JSON type, text type, id as EOS prints it) of a neighbour's chassis id."""
    kind, label = _CHASSIS_TYPES.get(n.chassis_id_subtype, _CHASSIS_TYPES["local"])
    value = mac_notation(n.chassis_id, "dotted") if n.chassis_id_subtype == "mac" else n.chassis_id
    return kind, label, value


def _port(n: LabNeighbor) -> tuple[str, str, str, str]:
    """(JSON type, text type, id as EOS prints it, id without EOS's quotes) of its port id."""
    kind, label = _PORT_TYPES.get(n.port_id_subtype, _PORT_TYPES["local"])
    if n.port_id_subtype == "mac":
        value = mac_notation(n.port_id, "dotted")
        return kind, label, value, value
    return kind, label, f'"{n.port_id}"', n.port_id


def lldp_model(
    ports: list[str], heard: Mapping[str, list[LabNeighbor]], now: float
) -> dict[str, Any]:
    """EOS's JSON model of ``show lldp neighbors detail``: every port, its neighbours."""
    model: dict[str, Any] = {}
    for port in ports:
        infos: list[dict[str, Any]] = []
        for n in heard.get(port, []):
            chassis_type, _, chassis = _chassis(n)
            port_type, _, port_id, bare = _port(n)
            iface: dict[str, Any] = {
                "interfaceIdType": port_type,
                "interfaceId": port_id,
                "interfaceId_v2": bare,
            }
            if n.port_description is not None:
                iface["interfaceDescription"] = n.port_description
            iface.update({"vlanNames": {}, "unknownTlvs": [], "unknownOrgDefinedTlvs": []})
            info: dict[str, Any] = {"chassisIdType": chassis_type, "chassisId": chassis}
            if n.system_name is not None:
                info["systemName"] = n.system_name
            info.update(
                {
                    "ttl": n.ttl,
                    "neighborDiscoveryTime": now,
                    "lastChangeTime": now,
                    "lastContactTime": now,
                    "managementAddresses": [],
                    "systemCapabilities": {},
                    "neighborInterfaceInfo": iface,
                }
            )
            infos.append(info)
        model[port] = {"lldpNeighborInfo": infos}
    return {"lldpNeighbors": model}


def lldp_text(ports: list[str], heard: Mapping[str, list[LabNeighbor]]) -> str:
    """``show lldp neighbors detail`` in EOS's text layout: every port, its neighbours."""
    lines: list[str] = []
    for port in ports:
        neighbors = heard.get(port, [])
        lines += [f"Interface {port} detected {len(neighbors)} LLDP neighbors:", ""]
        for n in neighbors:
            _, chassis_label, chassis = _chassis(n)
            _, port_label, port_id, _ = _port(n)
            lines += [
                f"  Neighbor {chassis}/{port_id}, age 0 seconds",
                "  Discovered 0:00:00 ago; Last changed 0:00:00 ago",
                f"  - Chassis ID type: {chassis_label}",
                f"    Chassis ID     : {chassis}",
                f"  - Port ID type: {port_label}",
                f"    Port ID     : {port_id}",
                f"  - Time To Live: {n.ttl} seconds",
            ]
            if n.port_description is not None:
                lines.append(f'  - Port Description: "{n.port_description}"')
            if n.system_name is not None:
                lines.append(f'  - System Name: "{n.system_name}"')
            lines.append("")
    return "\n".join(lines) + "\n"
