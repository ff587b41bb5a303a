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

Order: VLAN creations, then ports, then VLAN deletions (SONiC refuses to delete a VLAN that still
has members, and every command is live at once).

Reading back: ``show_ports_command`` gives ``show vlan brief`` (grid table: membership and
tagging), ``show interfaces status`` (MTU, admin state) and ``show interfaces description``
(descriptions). The transport concatenates their outputs; ``parse_ports`` finds each table by its
header, so order and extra blank lines do not matter.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import ClassVar

from drivers.switch.base import ChangeSet, Dialect, PortChange, PortMode, PortState, VlanState

SUDO = "sudo "


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
        re.compile(r"Error:"),
        re.compile(r"Usage:"),
        re.compile(r"VLAN[0-9]+ doesn't exist"),
        re.compile(r"Invalid Vlan Id"),
        re.compile(r"Interface name is invalid"),
        re.compile(r"No such command"),
        re.compile(r"command not found"),
        re.compile(r"^sudo: "),
        re.compile(r"Traceback \(most recent call last\)"),
    )

    # ------------------------------------------------------------------ render

    def render(
        self, changes: ChangeSet, current: Mapping[str, PortState] | None = None
    ) -> list[str]:
        cmds: list[str] = []
        for v in changes.vlans:
            if not v.delete:
                # SONiC names VLANs itself (VlanN): VlanChange.name is not rendered
                cmds.append(f"{SUDO}config vlan add {v.vlan}")
        for p in changes.ports:
            cmds.extend(self._port(p))
        for v in changes.vlans:
            if v.delete:
                cmds.append(f"{SUDO}config vlan del {v.vlan}")
        return cmds

    def _port(self, p: PortChange) -> list[str]:
        out: list[str] = []
        member = f"{SUDO}config vlan member"
        if p.mode is PortMode.ACCESS and p.vlan is not None:
            out += [_sweep(p.port), f"{member} add -u {p.vlan} {p.port}"]
        elif p.mode is PortMode.TRUNK:
            out.append(_sweep(p.port))
            if p.native_vlan is not None:
                out.append(f"{member} add -u {p.native_vlan} {p.port}")
            for vid in sorted(set(p.allowed_vlans) - {p.native_vlan}):
                out.append(f"{member} add {vid} {p.port}")
        if p.mtu is not None:
            out.append(f"{SUDO}config interface mtu {p.port} {p.mtu}")
        if p.description is not None:
            out.append(f"{SUDO}config interface description {p.port} {shlex.quote(p.description)}")
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
        return ["show vlan brief", "show interfaces status", "show interfaces description"]

    def parse_ports(self, output: str) -> dict[str, PortState]:
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
                    desc[port] = row["Description"] or None
        states: dict[str, PortState] = {}
        for port in sorted({*untagged, *tagged, *mtu, *admin, *desc}):
            if not self.port_pattern.fullmatch(port):
                continue  # PortChannel, Vlan, Loopback, eth0
            u, t = untagged.get(port, []), tagged.get(port, [])
            mode: PortMode | None = None
            vlan = native = None
            allowed: tuple[int, ...] = ()
            if t:
                mode = PortMode.TRUNK
                native = u[0] if u else None
                allowed = tuple(sorted({*t, *u}))
            elif u:
                mode, vlan = PortMode.ACCESS, u[0]
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
