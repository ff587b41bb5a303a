"""Lab Cumulus Linux 5 with NVUE (``provisiond lab switch --dialect cumulus_nvue``): a bash-like
shell ``cumulus@lab-nvue:mgmt:~$`` (``sudo -s`` asks the login password and gives a root shell,
which is how netmiko's ``linux`` driver enters "config mode"); ``nv set`` / ``nv unset`` for the
paths drivers/switch/dialects/cumulus_nvue.py renders stage a pending revision; ``nv config apply
[--assume-yes]`` makes it the applied one (refusing a port with both ``access`` and
``untagged``/``vlan``), ``nv config save`` the startup one; ``nv config show [-r
applied|pending|startup] [-o json]``, ``nv config detach``, ``nv show bridge domain br_default vlan
[-o json]``. Unknown ``nv`` commands: ``Error: ...``; unknown shell commands: bash's ``command not
found``.

LLDP: lldpd's client (lldpd.py) answers ``lldpctl [-f plain|json|json0] [IF...]`` and ``lldpcli
show neighbors ...`` with the neighbours of ``--lldp FILE``. As on the switch, lldpd's control
socket is for root (and the _lldpd group) only: run by ``cumulus`` they print lldpd's ``unable to
connect to socket /run/lldpd.socket: Permission denied``. The lab's sudoers is what
docs/lab.md asks of a switch provisiond reads LLDP from: ``cumulus ALL=(root) NOPASSWD:
/usr/sbin/lldpctl, /usr/sbin/lldpcli``; any other ``sudo COMMAND`` asks the login password
(``sudo -n``: ``sudo: a password is required``), except ``sudo nv ...``, which the lab lets
through as before. Unverified against a switch: whether Cumulus's lldpd was built with
``--enable-json0`` (then its ``-f json`` prints the ``json0`` shape; the lab prints lldpd's
default, cleaned ``json``).
"""

from __future__ import annotations

import copy
import hmac
import json
import shlex
import time
from typing import Any

import yaml

from drivers.switch.base import VLAN_MAX, VLAN_MIN, format_vlan_ranges, parse_vlan_ranges
from provisiond.lab.switch import DialectCli, EndSession, LabSwitch, Terminal
from provisiond.lab.switches import lldpd

BRIDGE = "br_default"
_NVUE_MTU = (552, 9216)
_NVUE_LOCKED = "Error: Config is locked: another apply is in progress. Try again later."
_NVUE_VLAN_DETAIL: dict[str, Any] = {
    "multicast": {"snooping": {"querier": {"source-ip": "0.0.0.0"}}},
    "ptp": {"enable": "off"},
    "vni": {},
}
# the lab's /etc/sudoers.d: password-less lldpd client for the login (docs/lab.md)
_NO_PASSWORD = frozenset({"lldpctl", "lldpcli"})
_COMMANDS = _NO_PASSWORD | {"nv", "whoami", "hostname", "echo", "pwd", "true"}


class NvueError(Exception):
    pass


def _node(tree: dict[str, Any], *keys: str) -> dict[str, Any]:
    for key in keys:
        child = tree.get(key)
        if not isinstance(child, dict):
            child = tree[key] = {}
        tree = child
    return tree


def _tree_vlans(value: Any) -> set[int]:
    if isinstance(value, dict):
        return set(parse_vlan_ranges(",".join(str(k) for k in value)))
    if isinstance(value, (int, str)):
        return set(parse_vlan_ranges(str(value)))
    return set()


def _vlan_tree(vlans: set[int]) -> dict[str, Any]:
    return {k: {} for k in format_vlan_ranges(vlans).split(",")} if vlans else {}


def _ranged(name: str, value: str, lo: int, hi: int) -> int:
    if not value.isdigit() or not lo <= int(value) <= hi:
        raise NvueError(f"Error: Invalid value for '{name}': {value} is not in the range {lo}-{hi}")
    return int(value)


class NvueCli(DialectCli):
    name = "cumulus_nvue"
    hostname = "lab-nvue"
    default_username = "cumulus"
    default_password = "cumulus"

    def __init__(self, switch: LabSwitch, term: Terminal, username: str) -> None:
        super().__init__(switch, term, username)
        self.root = False
        self.started = time.monotonic()  # lldpd's neighbour ages count from here

    @staticmethod
    def port_names(count: int) -> list[str]:
        return [f"swp{i}" for i in range(1, count + 1)]

    @classmethod
    def initial_config(cls, ports: list[str]) -> dict[str, Any]:
        interfaces: dict[str, Any] = {
            "eth0": {"ip": {"address": {"dhcp": {}}}, "type": "eth", "ip-vrf": "mgmt"},
            "lo": {"type": "loopback"},
        }
        for p in ports:
            interfaces[p] = {
                "bridge": {"domain": {BRIDGE: {"access": 1}}},
                "link": {"state": {"up": {}}},
                "type": "swp",
            }
        return {
            "bridge": {"domain": {BRIDGE: {"untagged": 1, "vlan": {"1": {}}}}},
            "interface": interfaces,
            "system": {"hostname": cls.hostname},
        }

    def banner(self) -> str:
        return (
            "\nWelcome to NVIDIA Cumulus (R) Linux (R) 5.8.0 (provisiond lab: config auto-save "
            "off)\n\n"
        )

    def prompt(self) -> str:
        host = str(_node(self.switch.running, "system").get("hostname", self.hostname))
        if self.root:
            return f"root@{host}:mgmt:/home/{self.username}# "
        return f"{self.username}@{host}:mgmt:~$ "

    def is_config_command(self, line: str) -> bool:
        words = self._words(line)
        return bool(words) and (
            (len(words) >= 2 and words[0] == "nv" and words[1] in ("set", "unset"))
            or words[:3] in (["nv", "config", "apply"], ["nv", "config", "save"])
        )

    @staticmethod
    def _words(line: str) -> list[str]:
        try:
            words = shlex.split(line)
        except ValueError:
            return []
        if len(words) >= 2 and words[0] == "sudo" and words[1] == "nv":
            words = words[1:]
        return words

    async def execute(self, line: str) -> None:
        if not line.strip():
            return
        try:
            words = shlex.split(line)
        except ValueError:
            self.term.writeln("-bash: syntax error: unexpected end of file")
            return
        try:
            if words[0] == "sudo":
                await self._sudo_command(words[1:])
            else:
                await self._command(words, root=self.root)
        except NvueError as exc:
            self.term.writeln(str(exc))

    async def _command(self, words: list[str], *, root: bool) -> None:
        cmd = words[0]
        if cmd == "nv":
            await self._nv(words[1:])
        elif cmd in ("exit", "logout"):
            if self.root:
                self.root = False
                self.term.writeln("exit")
            else:
                raise EndSession
        elif cmd in ("lldpctl", "lldpcli"):
            res = lldpd.run(
                cmd,
                words[1:],
                self.switch.lldp_neighbors(),
                self.switch.port_names,
                privileged=root,
                seconds=time.monotonic() - self.started,
                tty=self.term.process.get_terminal_type() is not None,
            )
            self.term.write(res.stderr + res.stdout)
        elif cmd == "whoami":
            self.term.writeln("root" if root else self.username)
        elif cmd == "hostname":
            self.term.writeln(str(_node(self.switch.running, "system")["hostname"]))
        elif cmd == "echo":
            self.term.writeln(" ".join(words[1:]))
        elif cmd == "pwd":
            self.term.writeln(f"/home/{self.username}")
        elif cmd == "true":
            pass
        else:
            self.term.writeln(f"-bash: {cmd}: command not found")

    async def _sudo_command(self, args: list[str]) -> None:
        """``sudo [-n] COMMAND`` / ``sudo -s``: the lab's sudoers (``_NO_PASSWORD``); ``sudo
        nv`` is let through as the lab always has."""
        interactive = True
        while args[:1] == ["-n"]:
            interactive, args = False, args[1:]
        if not args:
            self.term.writeln("usage: sudo -h | -K | -k | -V")
            return
        if args in (["-s"], ["-i"], ["su"], ["-su"]):
            if not interactive and not self.root:
                self.term.writeln("sudo: a password is required")
                return
            await self._sudo()
            return
        if args[0].startswith("-"):
            self.term.writeln(f"sudo: the provisiond lab does not emulate sudo option {args[0]}")
            return
        if args[0] not in _COMMANDS:
            self.term.writeln(f"sudo: {args[0]}: command not found")
            return
        if not (self.root or args[0] in _NO_PASSWORD or args[0] == "nv"):
            if not interactive:
                self.term.writeln("sudo: a password is required")
                return
            if not await self._sudo_password():
                return
        await self._command(args, root=True)

    async def _sudo(self) -> None:
        if self.root:
            return
        if await self._sudo_password():
            self.root = True

    async def _sudo_password(self) -> bool:
        self.term.write(f"[sudo] password for {self.username}: ")
        answer = await self.term.readline(echo=False)
        if answer is None:
            raise EndSession
        if hmac.compare_digest(answer.encode(), self.switch.password.encode()):
            return True
        self.term.writeln("sudo: 1 incorrect password attempt")
        return False

    # -------------------------------------------------------------- nv

    async def _nv(self, args: list[str]) -> None:
        if not args:
            raise NvueError("Error: Missing command.")
        verb, rest = args[0], args[1:]
        if verb in ("set", "unset"):
            self._set(rest, unset=verb == "unset")
        elif verb == "config":
            await self._config(rest)
        elif verb == "show":
            self._show(rest)
        else:
            raise NvueError(f"Error: No such command '{verb}'.")

    def _set(self, path: list[str], *, unset: bool) -> None:
        verb = "unset" if unset else "set"
        pending: dict[str, Any] = copy.deepcopy(self.switch.pending)
        if not path:
            raise NvueError(f"Error: Missing command: nv {verb} requires a path.")
        if path[0] == "bridge":
            if path[1:3] != ["domain", BRIDGE]:
                raise NvueError(f"Error: Invalid path: 'bridge {' '.join(path[1:3])}'")
            self._bridge_attr(_node(pending, "bridge", "domain", BRIDGE), path[3:], unset, True)
        elif path[0] == "interface":
            self._interface(pending, path[1:], unset)
        elif path[0] == "system" and len(path) >= 2 and path[1] == "hostname":
            system = _node(pending, "system")
            if unset:
                system["hostname"] = "cumulus"
            elif len(path) != 3:
                raise NvueError("Error: Missing argument 'hostname'.")
            else:
                system["hostname"] = path[2]
        else:
            raise NvueError(f"Error: '{path[0]}' is not a valid path for 'nv {verb}'.")
        self.switch.pending = pending

    def _interface(self, pending: dict[str, Any], path: list[str], unset: bool) -> None:
        if not path:
            raise NvueError("Error: Missing argument 'interface-id'.")
        name, rest = path[0], path[1:]
        if name not in self.switch.port_names:
            raise NvueError(f"Error: Invalid config: {name} is not a physical interface")
        iface = _node(pending, "interface", name)
        iface.setdefault("type", "swp")
        if not rest:
            if unset:
                pending["interface"][name] = {"type": "swp"}
            return
        attr = rest[0]
        if attr == "bridge":
            if rest[1:3] != ["domain", BRIDGE]:
                raise NvueError(f"Error: Invalid path: 'bridge {' '.join(rest[1:3])}'")
            if len(rest) == 3:
                if unset:
                    iface.pop("bridge", None)
                else:
                    _node(iface, "bridge", "domain", BRIDGE)
                return
            bd = _node(iface, "bridge", "domain", BRIDGE)
            self._bridge_attr(bd, rest[3:], unset, False)
        elif attr == "link" and len(rest) >= 2 and rest[1] in ("mtu", "state"):
            link = _node(iface, "link")
            if unset:
                link.pop(rest[1], None)
                if rest[1] == "state":
                    link["state"] = {"up": {}}
            elif len(rest) != 3:
                raise NvueError(f"Error: Missing argument '{rest[1]}'.")
            elif rest[1] == "mtu":
                link["mtu"] = _ranged("mtu", rest[2], *_NVUE_MTU)
            elif rest[2] in ("up", "down"):
                link["state"] = {rest[2]: {}}
            else:
                raise NvueError(
                    f"Error: Invalid value for 'state': '{rest[2]}' is not one of ['down', 'up']"
                )
        elif attr == "description":
            if unset:
                iface.pop("description", None)
            elif len(rest) < 2:
                raise NvueError("Error: Missing argument 'description'.")
            else:
                iface["description"] = " ".join(rest[1:])
        else:
            raise NvueError(f"Error: '{attr}' is not a valid attribute of interface {name}.")

    @staticmethod
    def _bridge_attr(bd: dict[str, Any], rest: list[str], unset: bool, is_bridge: bool) -> None:
        if not rest:
            if unset:
                raise NvueError(f"Error: {BRIDGE} cannot be removed.")
            return
        attr, values = rest[0], rest[1:]
        allowed = ("vlan", "untagged") if is_bridge else ("vlan", "untagged", "access")
        if attr not in allowed:
            raise NvueError(f"Error: '{attr}' is not a valid attribute here.")
        if len(values) > 1:
            raise NvueError(f"Error: Got unexpected extra argument ({values[1]})")
        value = values[0] if values else None
        if attr == "vlan":
            if value is None:
                if not unset:
                    raise NvueError("Error: Missing argument 'vid'.")
                bd.pop("vlan", None)
                return
            try:
                ids = set(parse_vlan_ranges(value))
            except ValueError:
                raise NvueError(
                    f"Error: Invalid value for 'vlan': '{value}' is not a VLAN id or range "
                    f"({VLAN_MIN}-{VLAN_MAX})"
                ) from None
            current = _tree_vlans(bd.get("vlan"))
            new = current - ids if unset else current | ids
            if new:
                bd["vlan"] = _vlan_tree(new)
            else:
                bd.pop("vlan", None)
            return
        if unset:
            bd.pop(attr, None)
            return
        if value is None:
            raise NvueError(f"Error: Missing argument '{attr}'.")
        if attr == "untagged" and value == "none":
            bd[attr] = "none"
            return
        bd[attr] = _ranged(attr, value, VLAN_MIN, VLAN_MAX)

    async def _config(self, args: list[str]) -> None:
        sub, opts = (args[0], args[1:]) if args else ("", [])
        sw = self.switch
        if sub == "apply":
            yes = any(o in ("-y", "--y", "--assume-yes") for o in opts)
            unknown = [o for o in opts if o not in ("-y", "--y", "--assume-yes", "--assume-no")]
            if unknown:
                raise NvueError(f"Error: No such option: {unknown[0]}")
            if sw.faults.current().config_locked:
                raise NvueError(_NVUE_LOCKED)
            problems = self._validate(sw.pending)
            if problems:
                self.term.writeln(f"Invalid config [rev_id: {sw.rev + 1}]")
                for p in problems:
                    self.term.writeln(f"  Config invalid at {p}")
                return
            if not yes:
                if "--assume-no" in opts:
                    self.term.writeln("Aborted by user.")
                    return
                self.term.write("Are you sure? [y/N] ")
                answer = await self.term.readline(echo=True)
                if answer is None:
                    raise EndSession
                if answer.strip().lower() not in ("y", "yes"):
                    self.term.writeln("Aborted by user.")
                    return
            sw.rev += 1
            sw.running = copy.deepcopy(sw.pending)
            self.term.writeln(f"applied [rev_id: {sw.rev}]")
        elif sub == "save" and not opts:
            if sw.faults.current().config_locked:
                raise NvueError(_NVUE_LOCKED)
            sw.saved = copy.deepcopy(sw.running)
            self.term.writeln(f"saved [rev_id: {sw.rev}]")
        elif sub == "detach" and not opts:
            sw.pending = copy.deepcopy(sw.running)
        elif sub == "show":
            rev, fmt, extra = self._options(opts)
            if extra:
                raise NvueError(f"Error: Got unexpected extra argument ({extra[0]})")
            tree = {"applied": sw.running, "startup": sw.saved, "pending": sw.pending}.get(rev)
            if tree is None:
                raise NvueError(f"Error: Invalid revision '{rev}': use applied, pending or startup")
            doc = [
                {
                    "header": {
                        "model": "VX",
                        "nvue-api-version": "nvue_v1",
                        "rev-id": float(sw.rev),
                        "version": "Cumulus Linux 5.8.0",
                    }
                },
                {"set": tree},
            ]
            self._emit(doc, fmt)
        else:
            raise NvueError(f"Error: No such command '{' '.join(args) or 'config'}'.")

    @staticmethod
    def _validate(tree: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        for name, iface in sorted(_node(tree, "interface").items()):
            bd = _node(iface, "bridge", "domain", BRIDGE) if "bridge" in iface else {}
            if "access" in bd:
                for other in ("untagged", "vlan"):
                    if other in bd:
                        problems.append(
                            f"interface.{name}.bridge.domain.{BRIDGE}: access and {other} "
                            "cannot both be set"
                        )
        return problems

    def _show(self, args: list[str]) -> None:
        _, fmt, words = self._options(args)
        if words == ["bridge", "domain", BRIDGE, "vlan"]:
            bridge = _node(self.switch.running, "bridge", "domain", BRIDGE)
            vlans = sorted(_tree_vlans(bridge.get("vlan")))
            self._emit({str(v): copy.deepcopy(_NVUE_VLAN_DETAIL) for v in vlans}, fmt)
            return
        raise NvueError(f"Error: Unsupported show path in the lab: '{' '.join(words)}'")

    @staticmethod
    def _options(opts: list[str]) -> tuple[str, str, list[str]]:
        """``-r/--rev REV`` and ``-o/--output FORMAT`` out of ``opts``; the rest: the path."""
        rev, fmt = "applied", "auto"
        words: list[str] = []
        i = 0
        while i < len(opts):
            opt = opts[i]
            if opt in ("-r", "--rev", "-o", "--output") and i + 1 < len(opts):
                if opt in ("-r", "--rev"):
                    rev = opts[i + 1]
                else:
                    fmt = opts[i + 1]
                i += 2
                continue
            if opt.startswith("--rev="):
                rev = opt.split("=", 1)[1]
            elif opt.startswith("--output="):
                fmt = opt.split("=", 1)[1]
            elif opt.startswith("-"):
                raise NvueError(f"Error: No such option: {opt}")
            else:
                words.append(opt)
            i += 1
        if fmt not in ("auto", "json", "yaml"):
            raise NvueError(f"Error: Invalid value for '-o': '{fmt}' is not one of json, yaml")
        return rev, fmt, words

    def _emit(self, data: Any, fmt: str) -> None:
        if fmt == "json":
            self.term.writeln(json.dumps(data, indent=2))
        else:
            self.term.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


