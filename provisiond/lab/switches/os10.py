"""Lab Dell SmartFabric OS10 10.5 (``provisiond lab switch --dialect dell_os10``).

What it emulates, as far as drivers/switch/dialects/dell_os10.py and netmiko's ``dell_os10``
driver exercise it:

* Logins (a ``sysadmin`` user) land in EXEC, ``lab-os10# ``; ``terminal length N`` (0-512) is
  what netmiko sends at setup. ``configure terminal`` -> ``lab-os10(config)# ``,
  ``interface ethernet1/1/N`` (also ``interface ethernet 1/1/N``, ``int e1/1/N``) ->
  ``(conf-if-eth1/1/N)#``, ``interface vlan N`` -> ``(conf-if-vl-N)#`` (creating the VLAN);
  ``exit``, ``end``, ``do CMD``; ``show`` works in every mode; a global command typed in a
  sub-mode leaves it.
* OS10's VLAN model: VLANs are interfaces (``[no] interface vlan N``, N 1-4093, ``description``);
  a trunk's untagged VLAN is its access VLAN (``switchport access vlan N``; there is no native
  VLAN command); ``switchport trunk allowed vlan LIST`` ADDS tagged VLANs and
  ``no switchport trunk allowed vlan LIST`` removes the ones it names. Assigning a VLAN that
  does not exist creates it, as OS10 does. Ports ``ethernet1/1/1..N`` start as access ports in
  VLAN 1, enabled, and the configuration prints ``switchport access vlan 1`` and
  ``no shutdown`` explicitly, as OS10 does.
* ``[no] switchport``, ``switchport mode access|trunk``, ``[no] switchport access vlan N``,
  ``[no] shutdown``, ``[no] mtu N`` (1280-9216), ``[no] description TEXT`` (OS10 keeps the
  blanks of a description only inside double quotes: unquoted words are joined), ``show
  configuration`` in an interface.
* ``show running-configuration [interface ethernet X]`` (one-blank indented lines under
  ``interface ethernetX``, ``!`` between blocks), ``show startup-configuration``, ``show vlan``
  (the ``Codes:`` legend, ``NUM Status Description Q Ports`` columns, ``*`` on the default
  VLAN, one ``A``/``T`` port run per line), ``show version``; ``write memory`` and ``copy
  running-configuration startup-configuration`` save silently.
* ``show lldp neighbors detail`` from ``switch.lldp_neighbors()`` (``--lldp FILE``), one block
  per neighbour in port order, each ended by a line of 75 dashes: ``Remote Chassis ID Subtype:
  Mac address (4)`` / ``Locally assigned (7)``, ``Remote Chassis ID`` (MACs in lowercase colon
  form, as OS10 prints them), ``Remote Port Subtype: Mac address (3)`` / ``Interface name (5)``
  / ``Locally assigned (7)``, ``Remote Port ID``, ``Remote Port Description``, ``Local Port ID:
  ethernet1/1/N``, the neighbour index, ``Remote TTL``, ``Information valid for next N
  seconds``, ``Time since last information change of this neighbor``, ``Remote System Name``,
  ``Remote System Desc``, ``Remote Max Frame Size``, ``Remote Aggregation Status``, ``MAC PHY
  Configuration``; what the neighbour did not send reads ``Not Advertised``. The layout is the
  one outputs recorded by others' tools show (no Dell document with a full example was at
  hand); the ages are the lab's (0: it does not know when a neighbour was first heard). Other
  ``show lldp`` commands are not modelled.
* Errors are ``% Error: ...`` lines without a caret: ``Unrecognized command.``, ``Incomplete
  command.``, ``Illegal parameter.``.

The lab's own wording (the real switch's text is not known here) is used for: the
``config_locked`` fault on the save (``% Error: Configuration is locked by another session.``),
``switchport mode access`` on a port that still has tagged VLANs and ``switchport trunk allowed
vlan`` on a port that is not a trunk (both refused: the lab is strict so that a renderer which
leaves tagged VLANs behind is caught), switchport commands on a routed port and deleting VLAN 1.
It must never accept what it does not model: other commands are unrecognized.
"""

from __future__ import annotations

import copy
import datetime
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from drivers.switch.base import format_vlan_ranges
from provisiond.lab.switch import DialectCli, EndSession, LabNeighbor, LabSwitch, Terminal
from provisiond.lab.switches.switchport import kw, mac_notation, runs, vlan_id, vlan_list

VERSION = "10.5.6.4"
VLAN_TOP = 4093  # OS10's VLAN ids end at 4093
MTU_RANGE = (1280, 9216)
UNRECOGNIZED = "% Error: Unrecognized command.\n"
INCOMPLETE = "% Error: Incomplete command.\n"
ILLEGAL = "% Error: Illegal parameter.\n"
# the lab's wording (see the module docstring)
LOCKED = "% Error: Configuration is locked by another session.\n"
TAGGED_LEFT = "% Error: Remove the tagged VLANs of the port before setting access mode.\n"
NOT_TRUNK = "% Error: Tagged VLANs need switchport mode trunk.\n"
ROUTED = "% Error: The interface is not in switchport mode.\n"
DEFAULT_VLAN = "% Error: The default VLAN cannot be deleted.\n"
_IFNAME = re.compile(
    r"^(?:e|et|eth|ethe|ether|ethern|etherne|ethernet)(\d+)/(\d+)/(\d+)(?::(\d+))?$",
    re.IGNORECASE,
)
_VLANIF = re.compile(r"^(?:v|vl|vla|vlan)(\d+)$", re.IGNORECASE)


@dataclass
class Os10Port:
    switchport: bool = True
    mode: str = "access"
    access_vlan: int = 1  # on a trunk: its untagged VLAN
    tagged: frozenset[int] = frozenset()
    shutdown: bool = False
    mtu: int | None = None  # None: OS10's default (1532), not printed
    description: str | None = None


@dataclass
class Os10Vlan:
    description: str | None = None
    shutdown: bool = False


@dataclass
class Os10Config:
    hostname: str
    vlans: dict[int, Os10Vlan] = field(default_factory=dict)
    ports: dict[str, Os10Port] = field(default_factory=dict)
    changed_at: float = field(default_factory=time.time)


class Os10Cli(DialectCli):
    name = "dell_os10"
    hostname = "lab-os10"
    default_username = "admin"
    default_password = "admin"

    def __init__(self, switch: LabSwitch, term: Terminal, username: str) -> None:
        super().__init__(switch, term, username)
        self.mode = "exec"  # exec | config | if | vlan
        self.interface: str | None = None
        self.vlan: int | None = None
        self._line = ""

    @property
    def config(self) -> Os10Config:
        cfg: Os10Config = self.switch.running
        return cfg

    @staticmethod
    def port_names(count: int) -> list[str]:
        return [f"ethernet1/1/{i}" for i in range(1, count + 1)]

    @classmethod
    def initial_config(cls, ports: list[str]) -> Os10Config:
        return Os10Config(cls.hostname, {1: Os10Vlan()}, {p: Os10Port() for p in ports})

    def banner(self) -> str:
        # no "#" or ">" before the first prompt: netmiko reads up to the first of them
        return "\nDell SmartFabric OS10 Enterprise (provisiond lab, not Dell software)\n\n"

    def prompt(self) -> str:
        host = self.config.hostname
        if self.mode == "exec":
            return f"{host}# "
        if self.mode == "if":
            assert self.interface is not None
            return f"{host}(conf-if-eth{self.interface[len('ethernet') :]})# "
        if self.mode == "vlan":
            return f"{host}(conf-if-vl-{self.vlan})# "
        return f"{host}(config)# "

    def is_config_command(self, line: str) -> bool:
        words = line.split()
        if self.mode != "exec" and words and words[0].lower() == "do":
            return self._is_save(words[1:])
        if not words:
            return False
        if self._is_save(words):
            return True
        if self.mode == "exec":
            return False
        first = words[0].lower()
        return not any(kw(first, k, n) for k, n in (("exit", 2), ("end", 2), ("show", 2)))

    @staticmethod
    def _is_save(words: list[str]) -> bool:
        return (len(words) == 2 and kw(words[0], "write", 2) and kw(words[1], "memory", 1)) or (
            len(words) == 3
            and kw(words[0], "copy", 2)
            and kw(words[1], "running-configuration", 3)
            and kw(words[2], "startup-configuration", 3)
        )

    async def execute(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        self._line = line
        self.term.write(self._run(words))

    def _changed(self) -> None:
        self.config.changed_at = time.time()

    # -------------------------------------------------------------- dispatch

    def _run(self, words: list[str]) -> str:
        first = words[0].lower()
        if self.mode != "exec" and first == "do":
            if len(words) == 1:
                return INCOMPLETE
            done = self._exec_command(words[1:])
            return UNRECOGNIZED if done is None else done
        if kw(first, "show", 2):
            return self._show(words[1:])
        if self.mode == "exec":
            if first in ("exit", "quit", "logout") and len(words) == 1:
                raise EndSession
            if kw(first, "configure", 4):
                if len(words) == 2 and kw(words[1], "terminal", 1):
                    self.mode = "config"
                    return ""
                return INCOMPLETE if len(words) == 1 else UNRECOGNIZED
            done = self._exec_command(words)
            return UNRECOGNIZED if done is None else done
        if kw(first, "end", 2) and len(words) == 1:
            self.mode, self.interface, self.vlan = "exec", None, None
            return ""
        if kw(first, "exit", 2) and len(words) == 1:
            self.mode = "exec" if self.mode == "config" else "config"
            self.interface, self.vlan = None, None
            return ""
        out: str | None = None
        if self.mode == "if":
            out = self._port_command(words)
        elif self.mode == "vlan":
            out = self._vlan_command(words)
        if out is None:  # a global command, which also leaves a sub-mode
            out = self._global(words)
        return UNRECOGNIZED if out is None else out

    def _exec_command(self, words: list[str]) -> str | None:
        """An EXEC command (also reached through ``do``), or None when it is not one."""
        first = words[0].lower()
        if kw(first, "show", 2):
            return self._show(words[1:])
        if self._is_save(words):
            if self.switch.faults.current().config_locked:
                return LOCKED
            self.switch.saved = copy.deepcopy(self.config)
            return ""  # OS10 saves silently
        if kw(first, "write", 2):
            return INCOMPLETE if len(words) == 1 else UNRECOGNIZED
        if kw(first, "terminal", 3):
            if len(words) == 2 and kw(words[1], "monitor", 1):
                return ""
            if len(words) >= 2 and kw(words[1], "length", 1):
                if len(words) == 2:
                    return INCOMPLETE
                lines = words[2]
                ok = len(words) == 3 and lines.isdigit() and int(lines) <= 512
                return "" if ok else ILLEGAL
            return INCOMPLETE if len(words) == 1 else UNRECOGNIZED
        return None

    # -------------------------------------------------------------- configuration

    def _global(self, words: list[str]) -> str | None:
        neg = words[0].lower() == "no"
        args = words[1:] if neg else words
        if not args:
            return INCOMPLETE
        cfg = self.config
        if kw(args[0], "interface", 3):
            if len(args) == 1:
                return INCOMPLETE
            target = "".join(args[1:])
            vm = _VLANIF.match(target)
            if vm is not None:
                vlan = vlan_id(vm.group(1), hi=VLAN_TOP)
                if vlan is None:
                    return ILLEGAL
                if neg:
                    return self._delete_vlan(vlan)
                cfg.vlans.setdefault(vlan, Os10Vlan())
                self.mode, self.interface, self.vlan = "vlan", None, vlan
                self._changed()
                return ""
            if neg:  # physical ports cannot be removed
                return UNRECOGNIZED
            name = self._port_name(target)
            if name is None:
                return ILLEGAL
            self.mode, self.interface, self.vlan = "if", name, None
            return ""
        if kw(args[0], "hostname", 3):
            if neg:
                cfg.hostname = "OS10"
            elif len(args) != 2:
                return INCOMPLETE if len(args) == 1 else UNRECOGNIZED
            else:
                cfg.hostname = args[1]
            self.mode, self.interface, self.vlan = "config", None, None
            self._changed()
            return ""
        return None

    def _port_name(self, text: str) -> str | None:
        m = _IFNAME.match(text)
        if m is None:
            return None
        name = "ethernet" + "/".join(m.groups()[:3]) + (f":{m.group(4)}" if m.group(4) else "")
        return name if name in self.config.ports else None

    def _delete_vlan(self, vlan: int) -> str:
        cfg = self.config
        if vlan == 1:
            return DEFAULT_VLAN
        if cfg.vlans.pop(vlan, None) is not None:
            for port in cfg.ports.values():  # the memberships go with the VLAN
                port.tagged = port.tagged - {vlan}
                if port.access_vlan == vlan:
                    port.access_vlan = 1
            self._changed()
        self.mode, self.interface, self.vlan = "config", None, None
        return ""

    def _vlan_command(self, words: list[str]) -> str | None:
        assert self.vlan is not None
        entry = self.config.vlans[self.vlan]
        neg = words[0].lower() == "no"
        args = words[1:] if neg else words
        if not args:
            return INCOMPLETE
        if kw(args[0], "description", 4):
            if neg:
                entry.description = None
            else:
                text = self._text_after()
                if text is None:
                    return INCOMPLETE
                entry.description = text
        elif kw(args[0], "shutdown", 4) and len(args) == 1:
            entry.shutdown = not neg
        else:
            return None
        self._changed()
        return ""

    def _text_after(self) -> str | None:
        """The argument of ``description ...`` (the current line): the text inside double
        quotes, or the words joined without their blanks (OS10 keeps blanks only inside
        quotes)."""
        rest = self._line.strip().partition(" ")[2].strip()
        if not rest:
            return None
        if rest.startswith('"'):
            end = rest.rfind('"')
            text = rest[1:end] if end > 0 else rest[1:]
        else:
            text = "".join(rest.split())
        return text[:240] or None

    def _port_command(self, words: list[str]) -> str | None:
        assert self.interface is not None
        port = self.config.ports[self.interface]
        neg = words[0].lower() == "no"
        args = words[1:] if neg else words
        if not args:
            return INCOMPLETE
        head = args[0]
        if kw(head, "shutdown", 4):
            if len(args) != 1:
                return UNRECOGNIZED
            port.shutdown = not neg
        elif kw(head, "mtu", 2):
            if neg:
                port.mtu = None
            elif len(args) != 2:
                return INCOMPLETE if len(args) == 1 else UNRECOGNIZED
            elif not args[1].isdigit() or not MTU_RANGE[0] <= int(args[1]) <= MTU_RANGE[1]:
                return ILLEGAL
            else:
                port.mtu = int(args[1])
        elif kw(head, "description", 4):
            if neg:
                port.description = None
            else:
                text = self._text_after()
                if text is None:
                    return INCOMPLETE
                port.description = text
        elif kw(head, "switchport", 3):
            out = self._switchport(port, neg, args[1:])
            if out:
                return out
        else:
            return None
        self._changed()
        return ""

    def _switchport(self, port: Os10Port, neg: bool, args: list[str]) -> str:
        """``[no] switchport ARGS``; "" when applied."""
        cfg = self.config
        if not args:
            if port.switchport == neg:  # a change of layer: the layer-2 settings go
                port.switchport = not neg
                port.mode, port.access_vlan, port.tagged = "access", 1, frozenset()
            return ""
        if not port.switchport:
            return ROUTED
        head = args[0]
        if kw(head, "mode", 2):
            if neg:
                mode = "access"
            elif len(args) != 2:
                return INCOMPLETE if len(args) == 1 else UNRECOGNIZED
            elif kw(args[1], "access", 2):
                mode = "access"
            elif kw(args[1], "trunk", 2):
                mode = "trunk"
            else:
                return UNRECOGNIZED
            if mode == "access" and port.tagged:
                return TAGGED_LEFT
            port.mode = mode
            return ""
        if kw(head, "access", 2):
            if len(args) < 2 or not kw(args[1], "vlan", 1):
                return INCOMPLETE if len(args) < 2 else UNRECOGNIZED
            if neg:
                port.access_vlan = 1
                return ""
            if len(args) != 3:
                return INCOMPLETE if len(args) == 2 else UNRECOGNIZED
            vlan = vlan_id(args[2], hi=VLAN_TOP)
            if vlan is None:
                return ILLEGAL
            cfg.vlans.setdefault(vlan, Os10Vlan())  # OS10 creates a VLAN a port is put in
            port.access_vlan = vlan
            return ""
        if kw(head, "trunk", 2):
            if len(args) < 3 or not kw(args[1], "allowed", 2) or not kw(args[2], "vlan", 1):
                return INCOMPLETE if len(args) < 3 else UNRECOGNIZED
            if len(args) != 4:
                return INCOMPLETE if len(args) == 3 else UNRECOGNIZED
            ids = vlan_list(args[3], hi=VLAN_TOP)
            if ids is None:
                return ILLEGAL
            if neg:  # removes the VLANs it names, and only those
                port.tagged = port.tagged - ids
                return ""
            if port.mode != "trunk":
                return NOT_TRUNK
            for v in ids:
                cfg.vlans.setdefault(v, Os10Vlan())
            port.tagged = port.tagged | ids  # adds: OS10 never replaces the list
            return ""
        return UNRECOGNIZED

    # -------------------------------------------------------------- show

    def _show(self, args: list[str]) -> str:
        if not args:
            return INCOMPLETE
        what = args[0]
        cfg = self.config
        if kw(what, "running-configuration", 3):
            if len(args) == 1:
                return _render(cfg, header=True)
            if not kw(args[1], "interface", 3):
                return UNRECOGNIZED
            if len(args) == 2:
                return "".join(_port_block(p, s) for p, s in cfg.ports.items())
            target = "".join(args[2:])
            vm = _VLANIF.match(target)
            if vm is not None:
                vlan = int(vm.group(1))
                if vlan not in cfg.vlans:
                    return ILLEGAL
                return _vlan_block(vlan, cfg.vlans[vlan])
            name = self._port_name(target)
            if name is None:
                return ILLEGAL
            return _port_block(name, cfg.ports[name])
        if kw(what, "startup-configuration", 3) and len(args) == 1:
            saved: Os10Config = self.switch.saved
            return _render(saved, header=False)
        if kw(what, "configuration", 4) and len(args) == 1 and self.mode in ("if", "vlan"):
            if self.interface is not None:
                return _port_block(self.interface, cfg.ports[self.interface])
            assert self.vlan is not None
            return _vlan_block(self.vlan, cfg.vlans[self.vlan])
        if kw(what, "vlan", 2) and len(args) == 1:
            return _vlan_table(cfg)
        if kw(what, "lldp", 2):
            if len(args) == 3 and kw(args[1], "neighbors", 1) and kw(args[2], "detail", 1):
                return lldp_text(self.switch.port_names, self.switch.lldp_neighbors())
            return INCOMPLETE if len(args) == 1 else UNRECOGNIZED
        if kw(what, "version", 3) and len(args) == 1:
            return (
                "Dell SmartFabric OS10 Enterprise\n"
                "Copyright (c) 1999-2024 by Dell Inc. All Rights Reserved.\n"
                f"OS Version: {VERSION}\n"
                f"Build Version: {VERSION}.227\n"
                "Build Time: 2024-03-15T03:09:34+0000\n"
                "System Type: S5248F-ON\n"
                "Architecture: x86_64\n"
                "Up Time: 01:00:00\n"
            )
        return UNRECOGNIZED


def _quoted(text: str) -> str:
    return f'"{text}"' if " " in text else text


def _port_block(name: str, p: Os10Port) -> str:
    lines = ["!", f"interface {name}"]
    if p.description:
        lines.append(f" description {_quoted(p.description)}")
    lines.append(" shutdown" if p.shutdown else " no shutdown")
    if not p.switchport:
        lines.append(" no switchport")
    else:
        if p.mode == "trunk":
            lines.append(" switchport mode trunk")
        lines.append(f" switchport access vlan {p.access_vlan}")
        if p.tagged:
            lines.append(f" switchport trunk allowed vlan {format_vlan_ranges(p.tagged)}")
    if p.mtu is not None:
        lines.append(f" mtu {p.mtu}")
    lines.append(" flowcontrol receive on")
    return "\n".join(lines) + "\n"


def _vlan_block(vlan: int, v: Os10Vlan) -> str:
    lines = ["!", f"interface vlan{vlan}"]
    if v.description:
        lines.append(f" description {_quoted(v.description)}")
    lines.append(" shutdown" if v.shutdown else " no shutdown")
    return "\n".join(lines) + "\n"


def _stamp(seconds: float) -> str:
    """``Mar  5 09:14:02 2024``: the layout of OS10's "Last configuration change" line."""
    t = datetime.datetime.fromtimestamp(seconds)
    return f"{t:%b}  {t.day} {t:%H:%M:%S %Y}"


def _render(cfg: Os10Config, *, header: bool) -> str:
    out = ""
    if header:
        out += f"! Version {VERSION}\n! Last configuration change at {_stamp(cfg.changed_at)}\n"
    out += (
        "!\n"
        f"hostname {cfg.hostname}\n"
        "username admin password **** role sysadmin priv-lvl 15\n"
        "aaa authentication login default local\n"
        "spanning-tree mode rstp\n"
    )
    out += "".join(_vlan_block(v, entry) for v, entry in sorted(cfg.vlans.items()))
    out += "".join(_port_block(p, s) for p, s in cfg.ports.items())
    out += "!\ninterface mgmt1/1/1\n no shutdown\n ip address dhcp\n ipv6 address autoconfig\n"
    return out


def _vlan_table(cfg: Os10Config) -> str:
    lines = [
        "Codes: * - Default VLAN, M - Management VLAN, R - Remote Port Mirroring VLANs,",
        "       @ - Attached to Virtual Network, P - Primary, C - Community, I - Isolated,",
        "       S - VLAN-Stack VLAN",
        "Q: A - Access (Untagged), T - Tagged",
        f"{'':<4}{'NUM':<7}{'Status':<10}{'Description':<32}Q Ports",
    ]
    numbered = {name: int(name.rsplit("/", 1)[1]) for name in cfg.ports if ":" not in name}
    for vid, entry in sorted(cfg.vlans.items()):
        members: dict[int, str] = {}
        up = False
        for pname, p in cfg.ports.items():
            if not p.switchport or pname not in numbered:
                continue
            if p.access_vlan == vid:
                members[numbered[pname]] = "A"
            elif p.mode == "trunk" and vid in p.tagged:
                members[numbered[pname]] = "T"
            else:
                continue
            up = up or not p.shutdown
        status = "Active" if up and not entry.shutdown else "Inactive"
        desc = (entry.description or "")[:32]
        head = f"{'*' if vid == 1 else '':<4}{vid:<7}{status:<10}{desc:<32}"
        rows = _port_runs(members)
        if not rows:
            lines.append(head.rstrip())
            continue
        lines.append(head + rows[0])
        lines += [" " * 53 + row for row in rows[1:]]
    return "\n".join(lines) + "\n"


def _port_runs(members: dict[int, str]) -> list[str]:
    """``A Eth1/1/1-1/1/3``: one line per run of consecutive ports with the same Q code, in
    port order."""
    found: list[tuple[int, str]] = []
    for q in ("A", "T"):
        for lo, hi in runs(n for n, code in members.items() if code == q):
            found.append((lo, f"{q} Eth1/1/{lo}" + (f"-1/1/{hi}" if hi > lo else "")))
    return [text for _, text in sorted(found)]


# --------------------------------------------------------------------------- LLDP

_CHASSIS_SUBTYPES = {"mac": "Mac address (4)", "local": "Locally assigned (7)"}
_PORT_SUBTYPES = {
    "mac": "Mac address (3)",
    "ifname": "Interface name (5)",
    "local": "Locally assigned (7)",
}
_NOT_SENT = "Not Advertised"


def lldp_text(ports: list[str], heard: Mapping[str, list[LabNeighbor]]) -> str:
    """``show lldp neighbors detail`` as OS10 prints it."""
    blocks: list[str] = []
    index = 0
    for port in ports:
        for n in heard.get(port, []):
            index += 1
            chassis = n.chassis_id
            if n.chassis_id_subtype == "mac":
                chassis = mac_notation(chassis, "colon")
            port_id = mac_notation(n.port_id, "colon") if n.port_id_subtype == "mac" else n.port_id
            lines = [
                "Remote Chassis ID Subtype: "
                + _CHASSIS_SUBTYPES.get(n.chassis_id_subtype, _CHASSIS_SUBTYPES["local"]),
                f"Remote Chassis ID: {chassis}",
                "Remote Port Subtype: "
                + _PORT_SUBTYPES.get(n.port_id_subtype, _PORT_SUBTYPES["local"]),
                f"Remote Port ID: {port_id}",
                f"Remote Port Description: {n.port_description or _NOT_SENT}",
                f"Local Port ID: {port}",
                f"Locally assigned remote Neighbor Index: {index}",
                f"Remote TTL: {n.ttl}",
                f"Information valid for next {n.ttl} seconds",
                "Time since last information change of this neighbor: 00:00:00",
                f"Remote System Name: {n.system_name or _NOT_SENT}",
                f"Remote System Desc: {_NOT_SENT}",
                "Remote Max Frame Size: 0",
                "Remote Aggregation Status: false",
                "MAC PHY Configuration:",
                "    Auto-neg supported: 0",
                "    Auto-neg enabled: 0",
                "-" * 75,
            ]
            blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)
