"""Lab Cisco Nexus 9000 on NX-OS 9.3 (``provisiond lab switch --dialect cisco_nxos``).

What it emulates, as far as drivers/switch/dialects/cisco_nxos.py and netmiko's ``cisco_nxos``
driver exercise it:

* Logins land in privileged EXEC, ``lab-nxos# `` (NX-OS prompts end with a blank); netmiko's
  session setup (``terminal width 511``, ``terminal length 0``) is answered silently, as NX-OS does.
  ``configure [terminal]`` -> ``lab-nxos(config)# ``, ``interface Ethernet1/N`` (also
  ``int eth1/N``, ``interface ethernet 1/N``) -> ``(config-if)#``, ``vlan LIST`` ->
  ``(config-vlan)#``; ``exit``, ``end``; a global command typed in a sub-mode leaves it.
  EXEC commands (``show``, ``copy``, ``terminal``) work in every mode, as on NX-OS.
* Ports ``Ethernet1/1..N`` start as layer-2 access ports in VLAN 1, enabled: the configuration
  carries ``system default switchport`` and ``system default switchport shutdown`` (the N9K
  setup-script defaults), so a layer-2 port prints ``no shutdown`` when enabled and nothing when
  shut, and a routed port (``no switchport``) prints ``shutdown`` when shut and nothing when
  enabled. ``no switchport`` drops the port's layer-2 settings (NX-OS loses "all information
  about the access VLAN, native VLAN, allowed VLANs"); ``switchport mode|access|trunk ...`` on a
  routed port is refused (``ERROR: Ethernet1/N: requested config change not allowed``).
* ``switchport``, ``switchport mode access|trunk``, ``switchport access vlan N`` (a VLAN that
  does not exist is accepted: the port stays inactive until it is created),
  ``switchport trunk native vlan N``, ``switchport trunk allowed vlan LIST|add L|remove L|except
  L|all|none`` and their ``no`` forms; ``[no] shutdown``; ``[no] mtu N`` (576-9216; a layer-2 port
  takes only 1500 or the system jumbo MTU 9216, as on Nexus, anything else answers ``ERROR:
  EthernetX: MTU on L2 interfaces can only be set to default or system-jumboMTU``);
  ``[no] description TEXT``; ``[no] vlan LIST``, ``[no] name X``, ``hostname X``.
* ``show running-config [interface X]`` with NX-OS's ``!Command:`` / ``!Running configuration
  last done at:`` / ``!Time:`` preamble and ``version`` line; allowed lists longer than a line
  are wrapped into ``switchport trunk allowed vlan add ...`` lines (80 columns);
  ``show startup-config`` (``!Startup config saved at:``); ``show vlan [brief]``;
  ``show version``; ``show hostname``.
* ``show lldp neighbors detail [| json]`` from ``switch.lldp_neighbors()`` (``--lldp FILE``):
  the text as NX-OS prints it (the ``Capability codes:`` legend and column header, then per
  neighbour ``Chassis id:``, ``Port id:``, ``Local Port id: Eth1/N``, ``Port Description:``,
  ``System Name:``, ..., ``Time remaining:``, ``Vlan ID:`` blocks, ``Total entries
  displayed: N``), or with ``| json`` its JSON model on one line (``neigh_hdr``,
  ``TABLE_nbor_detail``/``ROW_nbor_detail``: a list of rows, one object for a single neighbour,
  no table for none; ``neigh_count``). MACs in NX-OS's dotted notation (``5254.0000.0501``);
  port types ``Mac Address``, ``Interface Name``, ``Locally Assigned``. What a neighbour did not
  send reads ``null`` (port description, system name and description) or ``not advertised``
  (capabilities, management address, VLAN), as recorded outputs show; which of the two NX-OS
  uses for a missing port description or system name in the TEXT output, and the JSON shape
  for no neighbours, are the lab's guesses. Other ``show lldp`` commands are not modelled.
* ``copy running-config startup-config`` prints the progress bar, ``Copy complete, now saving
  to disk (please wait)...`` and ``Copy complete.``; with the ``config_locked`` fault it answers
  ``Configuration update aborted: another request for config change is already in progress``.
* Errors as NX-OS prints them: a caret under the offending word, then ``% Invalid command at
  '^' marker.``, ``% Incomplete command at '^' marker.``, ``% Invalid number, range is (LO:HI)
  at '^' marker.``, or ``Invalid range at '^' marker.`` for a port that does not exist.

It must never pretend to know what it does not model: other commands are invalid, and the
reserved VLAN range (3968-4094 on Nexus) is not emulated.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drivers.switch.base import format_vlan_ranges
from provisiond.lab.switch import DialectCli, EndSession, LabNeighbor, LabSwitch, Terminal
from provisiond.lab.switches.switchport import (
    ALL_VLANS,
    allowed_after,
    clock,
    kw,
    mac_notation,
    vlan_id,
    vlan_list,
    word_starts,
)

VERSION = "9.3(10)"
BIOS = "05.47"
MTU_RANGE = (576, 9216)
MTU_DEFAULT, MTU_JUMBO = 1500, 9216
LINE_WIDTH = 80  # NX-OS wraps "switchport trunk allowed vlan" lines at this width
LOCKED = "Configuration update aborted: another request for config change is already in progress"
PROGRESS = "[########################################] 100%"
_ALLOWED = "switchport trunk allowed vlan "
_IFNAME = re.compile(
    r"^(?:e|et|eth|ethe|ether|ethern|etherne|ethernet)(\d+)/(\d+)(?:/(\d+))?$", re.IGNORECASE
)


@dataclass
class NxosPort:
    switchport: bool = True
    mode: str = "access"
    access_vlan: int = 1
    native_vlan: int = 1
    allowed: frozenset[int] = ALL_VLANS
    shutdown: bool = False
    mtu: int = MTU_DEFAULT
    description: str | None = None

    def reset_layer2(self) -> None:
        """What NX-OS forgets when a port changes layer."""
        self.mode, self.access_vlan, self.native_vlan, self.allowed = "access", 1, 1, ALL_VLANS


@dataclass
class NxosConfig:
    hostname: str
    vlans: dict[int, str] = field(default_factory=dict)
    ports: dict[str, NxosPort] = field(default_factory=dict)
    changed_at: float = field(default_factory=time.time)
    saved_at: float = field(default_factory=time.time)


def _default_name(vlan: int) -> str:
    return "default" if vlan == 1 else f"VLAN{vlan:04d}"


class NxosCli(DialectCli):
    name = "cisco_nxos"
    hostname = "lab-nxos"
    default_username = "admin"
    default_password = "admin"

    def __init__(self, switch: LabSwitch, term: Terminal, username: str) -> None:
        super().__init__(switch, term, username)
        self.mode = "exec"  # exec | config | config-if | config-vlan
        self.interface: str | None = None
        self.vlans: list[int] = []
        # the line being run and where its words start, for the caret under an error
        self._line = ""
        self._lead = 0
        self._starts: list[int] = []

    @property
    def config(self) -> NxosConfig:
        cfg: NxosConfig = self.switch.running
        return cfg

    @staticmethod
    def port_names(count: int) -> list[str]:
        return [f"Ethernet1/{i}" for i in range(1, count + 1)]

    @classmethod
    def initial_config(cls, ports: list[str]) -> NxosConfig:
        return NxosConfig(cls.hostname, {1: "default"}, {p: NxosPort() for p in ports})

    def banner(self) -> str:
        # no "#" or ">" before the first prompt: netmiko reads up to the first of them
        return (
            "\nCisco NX-OS Software\n"
            "Copyright (c) 2002-2023, Cisco Systems, Inc. All rights reserved.\n"
            "provisiond lab: an emulated Nexus 9000, not Cisco software.\n"
        )

    def prompt(self) -> str:
        host = self.config.hostname
        if self.mode == "exec":
            return f"{host}# "
        return f"{host}({self.mode})# "

    def is_config_command(self, line: str) -> bool:
        words = line.split()
        if not words:
            return False
        if self._is_save(words):
            return True
        if self.mode == "exec":
            return False
        first = words[0].lower()
        return not any(
            kw(first, k, n) for k, n in (("exit", 2), ("end", 2), ("show", 2), ("terminal", 3))
        )

    @staticmethod
    def _is_save(words: list[str]) -> bool:
        return (
            len(words) == 3
            and kw(words[0], "copy", 2)
            and kw(words[1], "running-config", 3)
            and kw(words[2], "startup-config", 3)
        )

    async def execute(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        self._line, self._lead, self._starts = line, len(self.prompt()), word_starts(line)
        out = self._run(words)
        self.term.write(out)

    # -------------------------------------------------------------- errors

    def _caret(self, word: int | None) -> str:
        """The caret line under word number ``word`` (None: just past the end of the line)."""
        if word is None or word >= len(self._starts):
            col = len(self._line.rstrip())
        else:
            col = self._starts[word]
        return " " * (self._lead + col) + "^\n"

    def _invalid(self, word: int) -> str:
        return self._caret(word) + "% Invalid command at '^' marker.\n"

    def _incomplete(self) -> str:
        return self._caret(None) + "% Incomplete command at '^' marker.\n"

    def _number(self, word: int, lo: int, hi: int) -> str:
        return self._caret(word) + f"% Invalid number, range is ({lo}:{hi}) at '^' marker.\n"

    def _no_such_port(self, word: int) -> str:
        return self._caret(word) + "Invalid range at '^' marker.\n"

    def _changed(self) -> None:
        self.config.changed_at = time.time()

    # -------------------------------------------------------------- dispatch

    def _run(self, words: list[str]) -> str:
        first = words[0].lower()
        # EXEC commands run in every mode on NX-OS (no "do" needed)
        if kw(first, "show", 2):
            return self._show(words)
        if self._is_save(words):
            return self._save()
        if kw(first, "terminal", 3):
            return self._terminal(words)
        if self.mode == "exec":
            return self._exec(words)
        if kw(first, "end", 2) and len(words) == 1:
            self.mode, self.interface, self.vlans = "exec", None, []
            return ""
        if kw(first, "exit", 2) and len(words) == 1:
            if self.mode == "config":
                self.mode = "exec"
            else:
                self.mode, self.interface, self.vlans = "config", None, []
            return ""
        out: str | None = None
        if self.mode == "config-if":
            out = self._interface(words)
        elif self.mode == "config-vlan":
            out = self._vlan_mode(words)
        if out is None:  # a global command, which also leaves a sub-mode
            out = self._global(words)
        if out is None:
            return self._invalid(1 if first == "no" and len(words) > 1 else 0)
        return out

    def _exec(self, words: list[str]) -> str:
        first = words[0].lower()
        if first in ("exit", "quit", "logout") and len(words) == 1:
            raise EndSession
        if kw(first, "configure", 4):
            if len(words) == 1 or (len(words) == 2 and kw(words[1], "terminal", 1)):
                self.mode = "config"
                return "Enter configuration commands, one per line. End with CNTL/Z.\n"
            return self._invalid(1)
        return self._invalid(0)

    def _terminal(self, words: list[str]) -> str:
        if len(words) < 3:
            return self._incomplete()
        what, value = words[1], words[2]
        if kw(what, "length", 3):
            lo, hi = 0, 511
        elif kw(what, "width", 3):
            lo, hi = 24, 511
        else:
            return self._invalid(1)
        if len(words) > 3:
            return self._invalid(3)
        if not value.isdigit() or not lo <= int(value) <= hi:
            return self._number(2, lo, hi)
        return ""  # NX-OS answers both silently

    def _save(self) -> str:
        if self.switch.faults.current().config_locked:
            return LOCKED + "\n"
        saved = copy.deepcopy(self.config)
        saved.saved_at = time.time()
        self.switch.saved = saved
        return f"{PROGRESS}\nCopy complete, now saving to disk (please wait)...\nCopy complete.\n"

    # -------------------------------------------------------------- configuration

    def _global(self, words: list[str]) -> str | None:
        """A global configuration command, or None when it is not one."""
        neg = words[0].lower() == "no"
        at = 1 if neg else 0
        args = words[at:]
        if not args:
            return self._incomplete()
        head = args[0]
        cfg = self.config
        if kw(head, "interface", 3):
            if neg:  # physical ports cannot be removed
                return self._invalid(0)
            if len(args) == 1:
                return self._incomplete()
            name, err = self._port_arg(args[1:], at + 1)
            if name is None:
                return err
            self.mode, self.interface, self.vlans = "config-if", name, []
            return ""
        if kw(head, "vlan", 2):
            if len(args) == 1:
                return self._incomplete()
            if len(args) > 2:
                return self._invalid(at + 2)
            ids = vlan_list(args[1])
            if ids is None:
                return self._number(at + 1, 1, 4094) if args[1].isdigit() else self._invalid(at + 1)
            if neg:
                if 1 in ids:
                    return "ERROR: default VLAN 1 cannot be deleted\n"
                for v in ids:
                    cfg.vlans.pop(v, None)
                self.mode, self.interface, self.vlans = "config", None, []
            else:
                for v in ids:
                    cfg.vlans.setdefault(v, _default_name(v))
                self.mode, self.interface, self.vlans = "config-vlan", None, sorted(ids)
            self._changed()
            return ""
        if kw(head, "hostname", 3) and not neg:
            if len(args) != 2:
                return self._incomplete() if len(args) == 1 else self._invalid(2)
            cfg.hostname = args[1]
            self.mode, self.interface, self.vlans = "config", None, []
            self._changed()
            return ""
        return None

    def _port_arg(self, args: list[str], at: int) -> tuple[str | None, str]:
        """The port named by ``args`` (``Ethernet1/5``, ``eth1/5``, ``ethernet 1/5``), or None
        and the error NX-OS prints."""
        m = _IFNAME.match("".join(args))
        if m is None:
            return None, self._invalid(at)
        name = "Ethernet" + "/".join(g for g in m.groups() if g is not None)
        if name not in self.config.ports:
            return None, self._no_such_port(at)
        return name, ""

    def _vlan_mode(self, words: list[str]) -> str | None:
        neg = words[0].lower() == "no"
        at = 1 if neg else 0
        args = words[at:]
        if not args or not kw(args[0], "name", 2):
            return None
        cfg = self.config
        if neg:
            for v in self.vlans:
                cfg.vlans[v] = _default_name(v)
        elif len(args) != 2:
            return self._incomplete() if len(args) == 1 else self._invalid(at + 2)
        else:
            for v in self.vlans:
                cfg.vlans[v] = args[1][:32]
        self._changed()
        return ""

    def _interface(self, words: list[str]) -> str | None:
        assert self.interface is not None
        port = self.config.ports[self.interface]
        neg = words[0].lower() == "no"
        at = 1 if neg else 0
        args = words[at:]
        if not args:
            return self._incomplete()
        head = args[0]
        if kw(head, "shutdown", 4):
            if len(args) != 1:
                return self._invalid(at + 1)
            port.shutdown = not neg
        elif kw(head, "mtu", 2):
            out = self._mtu(port, neg, args, at)
            if out:
                return out
        elif kw(head, "description", 3):
            if neg:
                port.description = None
            elif len(args) == 1:
                return self._incomplete()
            else:
                port.description = self._line[self._starts[at + 1] :].rstrip()[:254]
        elif kw(head, "switchport", 2):
            out = self._switchport(port, neg, args[1:], at + 1)
            if out:
                return out
        else:
            return None
        self._changed()
        return ""

    def _mtu(self, port: NxosPort, neg: bool, args: list[str], at: int) -> str:
        if neg:
            port.mtu = MTU_DEFAULT
            return ""
        if len(args) == 1:
            return self._incomplete()
        if len(args) > 2:
            return self._invalid(at + 2)
        lo, hi = MTU_RANGE
        if not args[1].isdigit() or not lo <= int(args[1]) <= hi:
            return self._number(at + 1, lo, hi)
        mtu = int(args[1])
        if port.switchport and mtu not in (MTU_DEFAULT, MTU_JUMBO):
            return (
                f"ERROR: {self.interface}: MTU on L2 interfaces can only be set to default or "
                "system-jumboMTU\n"
            )
        port.mtu = mtu
        return ""

    def _switchport(self, port: NxosPort, neg: bool, args: list[str], at: int) -> str:
        """``[no] switchport ARGS`` (ARGS start at word ``at``); "" when applied."""
        if not args:
            if port.switchport == neg:  # a change of layer: the layer-2 settings go
                port.switchport = not neg
                port.reset_layer2()
            return ""
        if not port.switchport:
            return f"ERROR: {self.interface}: requested config change not allowed\n"
        head = args[0]
        if kw(head, "mode", 2):
            if neg:
                port.mode = "access"
                return ""
            if len(args) != 2:
                return self._incomplete() if len(args) == 1 else self._invalid(at + 2)
            if kw(args[1], "access", 2):
                port.mode = "access"
            elif kw(args[1], "trunk", 2):
                port.mode = "trunk"
            else:
                return self._invalid(at + 1)
            return ""
        if kw(head, "access", 2):
            if len(args) < 2:
                return self._incomplete()
            if not kw(args[1], "vlan", 1):
                return self._invalid(at + 1)
            if neg:
                port.access_vlan = 1
                return ""
            vlan, err = self._one_vlan(args, 2, at)
            if vlan is None:
                return err
            port.access_vlan = vlan  # a VLAN that does not exist leaves the port inactive
            return ""
        if kw(head, "trunk", 2):
            if len(args) < 3:
                return self._incomplete()
            if not kw(args[2], "vlan", 1):
                return self._invalid(at + 2)
            if kw(args[1], "native", 2):
                if neg:
                    port.native_vlan = 1
                    return ""
                vlan, err = self._one_vlan(args, 3, at)
                if vlan is None:
                    return err
                port.native_vlan = vlan
                return ""
            if kw(args[1], "allowed", 2):
                if neg:
                    port.allowed = ALL_VLANS
                    return ""
                result = allowed_after(port.allowed, args[3:])
                if isinstance(result, frozenset):
                    port.allowed = result
                    return ""
                if result == "incomplete":
                    return self._incomplete()
                bad = at + 3 + int(result.partition(":")[2])
                word = args[bad - at] if bad - at < len(args) else ""
                if re.fullmatch(r"[0-9,-]+", word):
                    return self._number(bad, 1, 4094)
                return self._invalid(bad)
            return self._invalid(at + 1)
        return self._invalid(at)

    def _one_vlan(self, args: list[str], index: int, at: int) -> tuple[int | None, str]:
        """The VLAN id at ``args[index]`` (the last word), or None and the error."""
        if len(args) <= index:
            return None, self._incomplete()
        if len(args) > index + 1:
            return None, self._invalid(at + index + 1)
        vlan = vlan_id(args[index])
        if vlan is None:
            return None, self._number(at + index, 1, 4094)
        return vlan, ""

    # -------------------------------------------------------------- show

    def _show(self, words: list[str]) -> str:
        args = words[1:]
        if not args:
            return self._incomplete()
        what = args[0]
        if kw(what, "running-config", 3):
            if len(args) == 1:
                return self._render(self.config, "show running-config", startup=False)
            if not kw(args[1], "interface", 3):
                return self._invalid(2)
            if len(args) == 2:
                return self._render(
                    self.config, "show running-config interface", startup=False, only_ports=True
                )
            name, err = self._port_arg(args[2:], 3)
            if name is None:
                return err
            return self._preamble(f"show running-config interface {name}", self.config) + (
                "\n".join(_port_lines(name, self.config.ports[name])) + "\n\n"
            )
        if kw(what, "startup-config", 3) and len(args) == 1:
            saved: NxosConfig = self.switch.saved
            return self._render(saved, "show startup-config", startup=True)
        if kw(what, "vlan", 2):
            if len(args) == 2 and kw(args[1], "brief", 1):
                return self._vlan_table()
            if len(args) == 1:
                return self._vlan_table() + _vlan_types(self.config)
            return self._invalid(2)
        if kw(what, "version", 3) and len(args) == 1:
            return self._version()
        if kw(what, "hostname", 4) and len(args) == 1:
            return f"{self.config.hostname}\n"
        if kw(what, "lldp", 2):
            return self._show_lldp(args[1:])
        return self._invalid(1)

    def _show_lldp(self, args: list[str]) -> str:
        """``show lldp ARGS``: ``neighbors detail [| json]`` (ARGS start at word 2)."""
        as_json = False
        if "|" in args:
            at = args.index("|")
            if args[at + 1 :] != ["json"]:
                return self._invalid(2 + at + 1) if len(args) > at + 1 else self._incomplete()
            args, as_json = args[:at], True
        if not args:
            return self._incomplete()
        for i, keyword in enumerate(("neighbors", "detail")):
            if i < len(args) and not kw(args[i], keyword, 1):
                return self._invalid(2 + i)
            if i >= len(args):  # `show lldp neighbors` alone: real, but not modelled here
                return self._caret(None) + "% Invalid command at '^' marker.\n"
        if len(args) > 2:
            return self._invalid(4)
        heard = self.switch.lldp_neighbors()
        if as_json:
            return json.dumps(lldp_model(self.switch.port_names, heard)) + "\n"
        return lldp_text(self.switch.port_names, heard)

    @staticmethod
    def _preamble(command: str, cfg: NxosConfig) -> str:
        return (
            f"\n!Command: {command}\n"
            f"!Running configuration last done at: {clock(cfg.changed_at)}\n"
            f"!Time: {clock()}\n\n"
            f"version {VERSION} Bios:version {BIOS} \n\n"
        )

    def _render(
        self, cfg: NxosConfig, command: str, *, startup: bool, only_ports: bool = False
    ) -> str:
        if startup:
            head = (
                f"\n!Command: {command}\n!Startup config saved at: {clock(cfg.saved_at)}\n\n"
                f"version {VERSION} Bios:version {BIOS} \n"
            )
        else:
            head = self._preamble(command, cfg).rstrip("\n") + "\n"
        lines: list[str] = [""] if only_ports else []
        if not only_ports:
            lines += [
                f"hostname {cfg.hostname}",
                "system default switchport",
                "system default switchport shutdown",
                "",
                f"vlan {format_vlan_ranges(cfg.vlans)}",
            ]
            for vid, vname in sorted(cfg.vlans.items()):
                if vname != _default_name(vid):
                    lines += [f"vlan {vid}", f"  name {vname}"]
            lines.append("")
        for pname, port in cfg.ports.items():
            lines += [*_port_lines(pname, port), ""]
        if not only_ports:
            lines += ["interface mgmt0", "  vrf member management", ""]
        return head + "\n".join(lines) + "\n"

    def _vlan_table(self) -> str:
        cfg = self.config
        out = [
            "",
            "VLAN Name                             Status    Ports",
            "---- -------------------------------- --------- -------------------------------",
        ]
        for vid, vname in sorted(cfg.vlans.items()):
            members = [
                pname.replace("Ethernet", "Eth")
                for pname, p in cfg.ports.items()
                if p.switchport
                and (
                    (p.mode == "access" and p.access_vlan == vid)
                    or (p.mode == "trunk" and vid in p.allowed)
                )
            ]
            chunks = _wrap(members, 31) or [""]
            out.append(f"{vid:<4} {vname:<32} {'active':<9} {chunks[0]}".rstrip())
            out += [" " * 48 + c for c in chunks[1:]]
        return "\n".join(out) + "\n"

    def _version(self) -> str:
        return (
            "Cisco Nexus Operating System (NX-OS) Software\n"
            "TAC support: http://www.cisco.com/tac\n"
            "Copyright (C) 2002-2023, Cisco and/or its affiliates.\n"
            "All rights reserved.\n\n"
            "Software\n"
            f"  BIOS: version {BIOS}\n"
            f"  NXOS: version {VERSION}\n"
            "  BIOS compile time:  05/17/2022\n"
            "  NXOS image file is: bootflash:///nxos.9.3.10.bin\n"
            "  NXOS compile time:  12/8/2022 12:00:00 [12/08/2022 20:13:03]\n\n\n"
            "Hardware\n"
            "  cisco Nexus9000 C93180YC-FX Chassis\n"
            "  Intel(R) Xeon(R) CPU D-1528 @ 1.90GHz with 24571632 kB of memory.\n"
            f"  Processor Board ID LAB{self.switch.port}\n\n"
            f"  Device name: {self.config.hostname}\n"
            "  bootflash:   115805356 kB\n"
            "Kernel uptime is 0 day(s), 1 hour(s), 0 minute(s), 0 second(s)\n\n"
            "Last reset\n"
            "  Reason: Unknown\n"
            "  System version:\n"
            "  Service:\n\n"
            "plugin\n"
            "  Core Plugin, Ethernet Plugin\n\n"
            "Active Package(s):\n\n"
        )


def _wrap(items: list[str], width: int) -> list[str]:
    """``items`` joined with ", " into lines of at most ``width`` characters."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + 2 + len(item) <= width:
            lines[-1] += ", " + item
        else:
            lines.append(item)
    return lines


def _vlan_types(cfg: NxosConfig) -> str:
    rows = [f"{vid:<4} enet         CE" for vid in sorted(cfg.vlans)]
    head = "\nVLAN Type         Vlan-mode\n---- -----        ----------\n"
    return head + "\n".join(rows) + "\n\n"


def _allowed_lines(allowed: frozenset[int]) -> list[str]:
    """``switchport trunk allowed vlan`` and its ``add`` continuations, each line at most
    LINE_WIDTH columns with its two-blank indent, as NX-OS wraps long lists."""
    if not allowed:
        return ["switchport trunk allowed vlan none"]
    lines: list[str] = []
    for part in format_vlan_ranges(allowed).split(","):
        if lines and 2 + len(lines[-1]) + 1 + len(part) <= LINE_WIDTH:
            lines[-1] += "," + part
        else:
            lines.append(("switchport trunk allowed vlan add " if lines else _ALLOWED) + part)
    return lines


def _port_lines(name: str, p: NxosPort) -> list[str]:
    body: list[str] = []
    if p.description:
        body.append(f"description {p.description}")
    if not p.switchport:
        if p.mtu != MTU_DEFAULT:
            body.append(f"mtu {p.mtu}")
        body.append("no switchport")
        if p.shutdown:  # routed ports default to enabled
            body.append("shutdown")
        return [f"interface {name}", *("  " + line for line in body)]
    if p.mode == "trunk":
        body.append("switchport mode trunk")
    if p.access_vlan != 1:
        body.append(f"switchport access vlan {p.access_vlan}")
    if p.native_vlan != 1:
        body.append(f"switchport trunk native vlan {p.native_vlan}")
    if p.allowed != ALL_VLANS:
        body += _allowed_lines(p.allowed)
    if p.mtu != MTU_DEFAULT:
        body.append(f"mtu {p.mtu}")
    if not p.shutdown:  # "system default switchport shutdown": layer-2 ports default to shut
        body.append("no shutdown")
    return [f"interface {name}", *("  " + line for line in body)]


# --------------------------------------------------------------------------- LLDP

_ID_TYPES = {"mac": "Mac Address", "ifname": "Interface Name", "local": "Locally Assigned"}
_NOT_SENT = "not advertised"
_LLDP_LEGEND = (
    "Capability codes:\n"
    "  (R) Router, (B) Bridge, (T) Telephone, (C) DOCSIS Cable Device\n"
    "  (W) WLAN Access Point, (P) Repeater, (S) Station, (O) Other\n"
    "Device ID            Local Intf      Hold-time  Capability  Port ID  \n"
)


def _lldp_row(port: str, n: LabNeighbor) -> dict[str, Any]:
    """One neighbour as a row of NX-OS's ``show lldp neighbors detail`` model."""

    def shown(value: str, subtype: str) -> str:
        return mac_notation(value, "dotted") if subtype == "mac" else value

    return {
        "chassis_type": _ID_TYPES.get(n.chassis_id_subtype, _ID_TYPES["local"]),
        "chassis_id": shown(n.chassis_id, n.chassis_id_subtype),
        "port_type": _ID_TYPES.get(n.port_id_subtype, _ID_TYPES["local"]),
        "port_id": shown(n.port_id, n.port_id_subtype),
        "l_port_id": port.replace("Ethernet", "Eth", 1),
        "port_desc": n.port_description if n.port_description is not None else "null",
        "sys_name": n.system_name if n.system_name is not None else "null",
        "sys_desc": "null",
        "ttl": n.ttl,
        "system_capability": _NOT_SENT,
        "enabled_capability": _NOT_SENT,
        "mgmt_addr_type": "Address not advertised",
        "mgmt_addr": _NOT_SENT,
        "mgmt_addr_ipv6_type": "Address not advertised",
        "mgmt_addr_ipv6": _NOT_SENT,
        "vlan_id": _NOT_SENT,
    }


def _lldp_rows(ports: list[str], heard: Mapping[str, list[LabNeighbor]]) -> list[dict[str, Any]]:
    return [_lldp_row(port, n) for port in ports for n in heard.get(port, [])]


def lldp_model(ports: list[str], heard: Mapping[str, list[LabNeighbor]]) -> dict[str, Any]:
    """NX-OS's JSON model of ``show lldp neighbors detail``: the table's row is a list, or the
    row itself when there is one, and there is no table when there is none."""
    rows = _lldp_rows(ports, heard)
    model: dict[str, Any] = {"neigh_hdr": "neigh_hdr"}
    if rows:
        model["TABLE_nbor_detail"] = {"ROW_nbor_detail": rows if len(rows) > 1 else rows[0]}
    model["neigh_count"] = len(rows)
    return model


def lldp_text(ports: list[str], heard: Mapping[str, list[LabNeighbor]]) -> str:
    """``show lldp neighbors detail`` as NX-OS prints it."""
    rows = _lldp_rows(ports, heard)
    blocks = [
        "\n".join(
            [
                f"Chassis id: {r['chassis_id']}",
                f"Port id: {r['port_id']}",
                f"Local Port id: {r['l_port_id']}",
                f"Port Description: {r['port_desc']}",
                f"System Name: {r['sys_name']}",
                f"System Description: {r['sys_desc']}",
                f"Time remaining: {r['ttl']} seconds",
                f"System Capabilities: {r['system_capability']}",
                f"Enabled Capabilities: {r['enabled_capability']}",
                f"Management Address: {r['mgmt_addr']}",
                f"Management Address IPV6: {r['mgmt_addr_ipv6']}",
                f"Vlan ID: {r['vlan_id']}",
            ]
        )
        for r in rows
    ]
    body = "\n\n\n".join(blocks) + "\n\n" if blocks else ""
    return f"{_LLDP_LEGEND}\n{body}Total entries displayed: {len(rows)}\n"
