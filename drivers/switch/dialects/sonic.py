"""SONiC (community sonic-utilities CLI: ``config`` / ``show``), driven as shell commands.

Every command is one shell line run on its own (netmiko device type ``linux``, as
networking-generic-switch does). ``config`` needs root: commands carry ``sudo`` (the login needs
password-less sudo for ``config`` and ``sonic-db-cli``, or the transport must answer the sudo
prompt). SONiC applies each ``config`` command immediately; ``sudo config save -y`` persists.

VLAN membership: SONiC has no "access VLAN of a port" to overwrite; a port is an untagged (``-u``)
and/or tagged member of VLANs, and ``config vlan member add`` adds, it does not move. A
``PortChange`` does not say which VLANs the port is in now, so every mode change first renders a
*membership sweep*: one shell line that lists the port's current memberships from CONFIG_DB
(``sonic-db-cli CONFIG_DB KEYS 'VLAN_MEMBER|Vlan*|<port>'``) and removes each with ``config vlan
member del``. It removes exactly what is there (nothing when the port is in no VLAN, so no
"is not a member" error to ignore) and stays a pure rendering of the change. The port name in it
has passed ``port_pattern`` (``EthernetN`` only), so it cannot carry shell syntax. Cost: a port
already in the target VLAN leaves it for a moment (send only changes that change something).

Access or trunk: by membership alone, a port that is only an untagged member of one VLAN is both
an access port and a trunk carrying nothing but its native VLAN. SONiC 202405 added a switchport
mode (``config switchport mode access|trunk|routed PORT``: CONFIG_DB ``PORT|<port>`` field
``mode``; ``config vlan member add`` then refuses tagged members on an access port). The dialect
writes it only where membership does not say it, so releases without it keep working: an access
port whose mode is ``trunk`` or ``routed`` is switched to ``access``; a trunk whose mode is
``access`` or ``routed`` is switched to ``trunk``, and so is a trunk carrying only its native VLAN
(or nothing) whose mode is unset -- the one change older releases cannot express, refused there
(``No such command "switchport"``). Each is guarded by the current value (``sonic-db-cli CONFIG_DB
HGET 'PORT|<port>' mode``), as ``config switchport mode`` refuses a port already in that mode.
Reading back, the ``mode`` field (``show runningconfiguration ports``: CONFIG_DB's PORT table as
JSON) decides where it is set; without it, membership does (tagged VLANs: trunk; one untagged
VLAN only: access).

Idempotence: ``config vlan add`` refuses a VLAN that exists (``Error: VlanN already exists.``) and
``config vlan del`` one that does not, so a batch run again after a session dropped midway would
fail on what it had already done. Both are *guarded* the same way as the sweep: ``for v in
$(sonic-db-cli CONFIG_DB EXISTS 'VLAN|VlanN' | sed -n 's/^0$/N/p'); do sudo config vlan add "$v";
done`` runs the command only when CONFIG_DB says the VLAN is absent (``^1$`` for a deletion: only
when present); the command itself still does SONiC's own checks.

Descriptions: community SONiC has no ``config interface description`` (click answers ``No such
command "description".``); the description is the ``description`` field of CONFIG_DB's ``PORT``
entry, which portmgrd copies to APPL_DB where ``show interfaces description`` reads it. It is set
with ``sonic-db-cli CONFIG_DB HSET``, guarded by ``EXISTS 'PORT|<port>'`` so that a port the
switch does not have never gets a stray ``PORT`` entry (which ``config save`` would persist and
the next reload trip on): for such a port nothing is written (the read-back shows no such port).
An empty description is written as ``""`` (``show`` prints an empty cell, read as None).

Order: VLAN creations, then ports, then VLAN deletions (SONiC refuses to delete a VLAN that still
has members, and every command is live at once).

Reading back: ``show_ports_command`` gives ``show vlan brief`` (grid table: membership and
tagging), ``show interfaces status`` (MTU, admin state), ``show interfaces description``
(descriptions; ``N/A``, printed for a port without one, reads as None) and ``show
runningconfiguration ports`` (the ``mode`` field, above). The transport concatenates their
outputs; ``parse_ports`` finds each table by its header and the JSON by its ``{``, so order and
extra blank lines do not matter.

LLDP: lldpd runs in the ``lldp`` container; the host's ``/usr/bin/lldpctl`` is sonic-buildimage's
wrapper ``docker exec -i[t] lldp lldpctl "$@"`` (dockers/docker-lldp/base_image_files), and
SONiC's /etc/sudoers lets every user run it password-less (``ALL ALL=NOPASSWD: READ_ONLY_CMDS``,
which lists ``/usr/bin/lldpctl`` and ``/usr/local/bin/lldpshow``). Without sudo it needs the
``docker`` group (the default ``admin`` has it; a provisioning login need not). ``show lldp
table`` (``sudo lldpshow``) leaves out the chassis id, and ``show lldp neighbors`` (``sudo
lldpshow -d``) is lldpctl's text, so the read is ``sudo -n lldpctl -f json0`` (lldpd's regular
JSON, read by dialects/lldpd.py; ``-n``: fail with ``sudo: a password is required`` rather than
wait at a prompt on a switch whose sudoers differ). Interfaces are the kernel's names
(``Ethernet8``, ``eth0``). Unverified: multi-ASIC switches, where lldpd runs once per ASIC
(``lldp0``...) and the wrapper asks only the host's instance.

Errors: click's ``Usage:`` / ``Error: ...`` (every ``config`` refusal), ``Root privileges are
required for this operation`` (``config`` without sudo), portconfig's ``Invalid port X`` (``config
interface mtu``), bash's ``-bash: ...``, sudo's ``sudo: ...``, Redis errors through sonic-db-cli
(``ERR ...``), click's ``Aborted!``; ``Failed to acquire lock on ...`` (another config reload holds
/etc/sonic/reload.lock) is also a ``retry_pattern``. Patterns are anchored at the start of a line
so that a port description quoting one of them does not make a ``show`` look refused.
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
)
from drivers.switch.dialects.lldpd import ERROR_PATTERNS, parse_lldpctl_json

SUDO = "sudo "


def _if_vlan(vid: int, *, exists: bool, verb: str) -> str:
    """``config vlan VERB`` run only when VLAN ``vid`` is present (``exists``) or absent."""
    state = "1" if exists else "0"
    return (
        f"for v in $(sonic-db-cli CONFIG_DB EXISTS 'VLAN|Vlan{vid}'"
        f" | sed -n 's/^{state}$/{vid}/p');"
        f' do {SUDO}config vlan {verb} "$v"; done'
    )


def _describe(port: str, text: str) -> str:
    """Set ``port``'s description in CONFIG_DB, if the switch has that port."""
    return (
        f"for p in $(sonic-db-cli CONFIG_DB EXISTS 'PORT|{port}' | sed -n 's/^1$/{port}/p');"
        f' do {SUDO}sonic-db-cli CONFIG_DB HSET "PORT|$p" description {shlex.quote(text)}; done'
    )


def _set_mode(port: str, mode: str, *, when: tuple[str, ...]) -> str:
    """``config switchport mode MODE PORT``, run only when the port's current mode (CONFIG_DB;
    ``""`` when unset) is one of ``when``."""
    current = "\\|".join(when)
    return (
        f"for m in $(sonic-db-cli CONFIG_DB HGET 'PORT|{port}' mode"
        f" | sed -n 's/^\\({current}\\)$/{mode}/p');"
        f' do {SUDO}config switchport mode "$m" {port}; done'
    )


def _sweep(port: str) -> str:
    """One shell line removing ``port`` from every VLAN it is a member of (CONFIG_DB)."""
    return (
        f"for v in $(sonic-db-cli CONFIG_DB KEYS 'VLAN_MEMBER|Vlan*|{port}'"
        " | sed -n 's/^VLAN_MEMBER|Vlan\\([0-9]*\\)|.*$/\\1/p');"
        f' do {SUDO}config vlan member del "$v" {port}; done'
    )


# --------------------------------------------------------------------------- table reading

_DASHES = re.compile(r"^\s*-+(?:\s+-+)*\s*$")
_GRID_RULE = re.compile(r"^\s*\+[-=+]+\+\s*$")


def _simple_tables(output: str) -> list[list[dict[str, str]]]:
    """Every tabulate "simple" table (header line, dashes line, rows until a blank line)."""
    lines = output.splitlines()
    tables: list[list[dict[str, str]]] = []
    i = 0
    while i + 1 < len(lines):
        if lines[i].strip() and _DASHES.match(lines[i + 1]):
            spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[i + 1])]
            # a column's text may start a little left of its dashes (right-aligned headers)
            cuts = [0] + [s for s, _ in spans[1:]] + [10**6]

            def cells(line: str, cuts: list[int] = cuts) -> list[str]:
                return [line[cuts[k] : cuts[k + 1]].strip() for k in range(len(cuts) - 1)]

            header = cells(lines[i])
            rows: list[dict[str, str]] = []
            j = i + 2
            while j < len(lines) and lines[j].strip() and not _GRID_RULE.match(lines[j]):
                if j + 1 < len(lines) and _DASHES.match(lines[j + 1]):
                    break  # the next table's header
                rows.append(dict(zip(header, cells(lines[j]), strict=False)))
                j += 1
            tables.append(rows)
            i = j
        else:
            i += 1
    return tables


def _grid_rows(output: str) -> list[dict[str, str]]:
    """Rows of the tabulate "grid" table of ``show vlan brief`` (continuation rows kept)."""
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    for line in output.splitlines():
        s = line.strip()
        if not s.startswith("|"):
            if header is not None and s and not _GRID_RULE.match(s):
                break  # past the table
            continue
        cells = [c.strip() for c in s.strip("|").split("|")]
        if header is None:
            if "VLAN ID" in cells:
                header = cells
            continue
        rows.append(dict(zip(header, cells, strict=False)))
    return rows


def _port_table(output: str) -> dict[str, Any]:
    """CONFIG_DB's PORT table from ``show runningconfiguration ports`` (a JSON object whose
    ``{`` starts a line); {} when the output has none."""
    m = re.search(r"(?m)^\{", output)
    if m is None:
        return {}
    try:
        table, _ = json.JSONDecoder().raw_decode(output, m.start())
    except ValueError:
        return {}
    return table if isinstance(table, dict) else {}


def _vlan_members(output: str) -> list[tuple[int, str, str]]:
    """(vlan, port, "tagged"/"untagged") from ``show vlan brief``; VLANs without members as
    (vlan, "", "")."""
    out: list[tuple[int, str, str]] = []
    current: int | None = None
    for row in _grid_rows(output):
        vid = row.get("VLAN ID", "")
        if vid.isdigit():
            current = int(vid)
        if current is None:
            continue
        port = row.get("Ports", "")
        out.append((current, port, row.get("Port Tagging", "")))
    return out


class SonicDialect(Dialect):
    name: ClassVar[str] = "sonic"
    netmiko_device_type: ClassVar[str] = "linux"
    # Ethernet0..Ethernet508 (front-panel lanes, breakouts included)
    port_pattern: ClassVar[re.Pattern[str]] = re.compile(
        r"\AEthernet(?:[0-9]|[1-9][0-9]|[1-4][0-9]{2}|50[0-8])\Z"
    )

    error_patterns: ClassVar[tuple[re.Pattern[str], ...]] = (
        *(
            re.compile(r"^\s*" + p)
            for p in (
                r"Error:",  # click: every `config` refusal (after its Usage: lines)
                r"Usage:",
                r"Root privileges are required",  # `config` without sudo
                r"Failed to acquire lock",  # another config reload holds /etc/sonic/reload.lock
                r"Invalid port ",  # portconfig (`config interface mtu`)
                r"Aborted!",  # a click confirmation answered no
                r"-?bash: ",  # bash itself: command not found, syntax errors
                r"sudo: ",
                r"Sorry, try again\.",  # sudo asked a password after all
                r"(?:ERR|WRONGTYPE) ",  # Redis, through sonic-db-cli
                r"Invalid database name",
                r"Traceback \(most recent call last\)",
                # networking-generic-switch's patterns, for older releases
                r"VLAN[0-9]+ doesn't exist",
                r"Invalid Vlan Id",
                r"Interface name is invalid",
                r"No such command",
                # docker, through the lldpctl wrapper: no docker group, no lldp container
                r"(?:Got )?permission denied while trying to connect to the Docker daemon",
                r"Error response from daemon:",
            )
        ),
        *ERROR_PATTERNS,  # lldpctl's own
    )
    retry_patterns: ClassVar[tuple[re.Pattern[str], ...]] = (re.compile(r"Failed to acquire lock"),)

    # ------------------------------------------------------------------ render

    def render(
        self, changes: ChangeSet, current: Mapping[str, PortState] | None = None
    ) -> list[str]:
        cmds: list[str] = []
        for v in changes.vlans:
            if not v.delete:
                # SONiC names VLANs itself (VlanN): VlanChange.name is not rendered
                cmds.append(_if_vlan(v.vlan, exists=False, verb="add"))
        for p in changes.ports:
            cmds.extend(self._port(p))
        for v in changes.vlans:
            if v.delete:
                cmds.append(_if_vlan(v.vlan, exists=True, verb="del"))
        return cmds

    def _port(self, p: PortChange) -> list[str]:
        out: list[str] = []
        member = f"{SUDO}config vlan member"
        if p.mode is PortMode.ACCESS and p.vlan is not None:
            out += [
                _sweep(p.port),
                _set_mode(p.port, "access", when=("trunk", "routed")),
                f"{member} add -u {p.vlan} {p.port}",
            ]
        elif p.mode is PortMode.TRUNK:
            out.append(_sweep(p.port))
            # only the native VLAN (or none): membership alone would read as an access port
            native_only = set(p.allowed_vlans) <= {p.native_vlan}
            out.append(_set_mode(p.port, "trunk", when=("access", "routed", *([""] * native_only))))
            if p.native_vlan is not None:
                out.append(f"{member} add -u {p.native_vlan} {p.port}")
            for vid in sorted(set(p.allowed_vlans) - {p.native_vlan}):
                out.append(f"{member} add {vid} {p.port}")
        if p.mtu is not None:
            out.append(f"{SUDO}config interface mtu {p.port} {p.mtu}")
        if p.description is not None:
            out.append(_describe(p.port, p.description))
        if p.shutdown is not None:
            verb = "shutdown" if p.shutdown else "startup"
            out.append(f"{SUDO}config interface {verb} {p.port}")
        return out

    def save_commands(self) -> list[str]:
        return [f"{SUDO}config save -y"]

    # ------------------------------------------------------------------ read back

    def show_ports_command(self, ports: Sequence[str]) -> list[str]:
        for port in ports:
            if not self.port_pattern.fullmatch(port):
                raise ValueError(f"not a {self.name} port name: {port!r}")
        return [
            "show vlan brief",
            "show interfaces status",
            "show interfaces description",
            "show runningconfiguration ports",
        ]

    def parse_ports(self, output: str) -> dict[str, PortState]:
        modes = {
            port: entry.get("mode")
            for port, entry in _port_table(output).items()
            if isinstance(entry, dict)
        }
        untagged: dict[str, list[int]] = {}
        tagged: dict[str, list[int]] = {}
        for vid, port, tagging in _vlan_members(output):
            if not port:
                continue
            (untagged if tagging == "untagged" else tagged).setdefault(port, []).append(vid)
        mtu: dict[str, int] = {}
        admin: dict[str, bool] = {}
        desc: dict[str, str | None] = {}
        for rows in _simple_tables(output):
            for row in rows:
                port = row.get("Interface", "")
                if not port:
                    continue
                if "MTU" in row and row["MTU"].isdigit():
                    mtu[port] = int(row["MTU"])
                if row.get("Admin") in ("up", "down"):
                    admin[port] = row["Admin"] == "down"
                if "Description" in row:
                    text = row["Description"]
                    desc[port] = None if text in ("", "N/A") else text
        states: dict[str, PortState] = {}
        for port in sorted({*untagged, *tagged, *mtu, *admin, *desc}):
            if not self.port_pattern.fullmatch(port):
                continue  # PortChannel, Vlan, Loopback, eth0
            u, t = untagged.get(port, []), tagged.get(port, [])
            declared = modes.get(port)  # None: unset (before 202405, always)
            mode: PortMode | None = None
            vlan = native = None
            allowed: tuple[int, ...] = ()
            if t or declared == "trunk":
                mode = PortMode.TRUNK
                native = u[0] if u else None
                allowed = tuple(sorted({*t, *u}))
            elif u or declared == "access":
                mode, vlan = PortMode.ACCESS, (u[0] if u else None)
            states[port] = PortState(
                port=port,
                mode=mode,
                vlan=vlan,
                native_vlan=native,
                allowed_vlans=allowed,
                shutdown=admin.get(port),
                mtu=mtu.get(port),
                description=desc.get(port),
            )
        return states

    def show_vlans_command(self) -> str:
        return "show vlan brief"

    def parse_vlans(self, output: str) -> dict[int, VlanState]:
        # SONiC's VLAN name is always VlanN: no name to report beyond the id
        return {vid: VlanState(vid) for vid, _, _ in _vlan_members(output)}

    def show_lldp_command(self) -> list[str]:
        return [f"{SUDO}-n lldpctl -f json0"]

    def parse_lldp(self, output: str) -> list[LldpNeighbor]:
        return parse_lldpctl_json(output)
