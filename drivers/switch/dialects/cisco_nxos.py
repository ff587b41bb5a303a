"""Cisco NX-OS (Nexus): the ``switchport`` grammar shared with EOS (arista_eos.py), with:

* ``switchport`` first in every block that sets a mode (Nexus 9000 ports may default to routed,
  and ``switchport mode ...`` is refused on a routed port); harmless on a port that is already
  layer 2.
* ``exit`` after every VLAN and interface block (as networking-generic-switch does).
* Rendered access move: ``interface P`` / ``switchport`` / ``switchport mode access`` /
  ``switchport access vlan N`` / ``no switchport trunk allowed vlan`` /
  ``no switchport trunk native vlan`` / ``exit``.

Reading ports: one ``show running-config interface PORT`` per port; each output carries a
``!Command:``/``!Time:``/``version`` preamble and then its ``interface PORT`` block, so the
outputs concatenated are delimited by the ``interface`` header lines (everything else at column
0 is ignored). NX-OS wraps long allowed lists into ``switchport trunk allowed vlan add ...``
continuation lines; they are accumulated. An absent ``shutdown``/``no shutdown`` line gives
``shutdown=None``: the default depends on ``system default switchport shutdown``. L2 MTU on
Nexus 9000 is 1500 or 9216 only (anything else is refused by the switch, and errors() sees it).

Reading VLANs: ``show vlan brief``.

Reading LLDP: ``show lldp neighbors detail | json`` (the command is SwitchportDialect's). NX-OS's
model: ``TABLE_nbor_detail`` / ``ROW_nbor_detail``, the row a list of neighbours, or one object
when there is a single one (NX-OS's usual table shape; the table itself may also come as a
list). Per row: ``l_port_id`` (the local port, abbreviated: ``Eth1/5``, expanded to
``Ethernet1/5``; ``mgmt0`` kept as is), ``chassis_type``/``chassis_id`` (a MAC in dotted
notation, ``5254.0000.0501``), ``port_type``/``port_id`` (``Interface Name``, ``Mac Address``,
...), ``port_desc`` and ``sys_name``; a TLV the neighbour did not send reads ``null`` or ``not
advertised``: ``None``. ``ttl`` and the counters are numbers on recent releases and strings on
older ones (not read). Recorded outputs (Nexus 9000, 9.3 and 10.3) show these keys; what NX-OS
prints for the command when nothing is heard at all is not known here: no output gives no
neighbours, and a model without the table too.

Errors: NX-OS puts a caret line under the offending word, then ``% Invalid command at '^'
marker.`` (or ``Incomplete``, ``Invalid number, range is (LO:HI)``); a port that does not exist
answers ``Invalid range at '^' marker.`` without the ``%``; refused settings start with
``ERROR:``. A save that meets another configuration change answers ``Configuration update
aborted: another request for config change is already in progress``: retried, then reported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from drivers.switch.base import LldpNeighbor, lldp_id
from drivers.switch.dialects.arista_eos import SwitchportDialect, json_output, lldp_text

# "Eth1/5", "Eth101/1/10" (FEX), "Ethernet1/5": the local port as NX-OS's LLDP tables print it
_LLDP_LOCAL = re.compile(r"^Eth(?:ernet)?(\d+(?:/\d+){1,2})$", re.IGNORECASE)


class CiscoNxosDialect(SwitchportDialect):
    name = "cisco_nxos"
    netmiko_device_type = "cisco_nxos"
    # Ethernet1/1, Ethernet1/1/1 (breakout), Ethernet101/1/1 (FEX)
    port_pattern = re.compile(r"Ethernet[1-9][0-9]{0,2}/[1-9][0-9]{0,2}(?:/[1-9][0-9]{0,2})?")
    enable_switchport = True
    shutdown_default = None

    error_patterns = (
        re.compile(r"^\s*% ?Invalid (?:command|input|parameter|number|range|value|interface)"),
        re.compile(r"^\s*% ?Incomplete command"),
        re.compile(r"^\s*% ?Ambiguous command"),
        re.compile(r"^\s*% ?Permission denied"),
        re.compile(r"^\s*% ?Error"),
        re.compile(r"^\s*% ?VLAN .*(?:not found|does not exist)"),
        re.compile(r"^\s*ERROR:"),
        re.compile(r"^\s*Invalid range at '\^' marker"),
        # after the progress bar on the same line: "[####...]  99%Configuration update aborted"
        re.compile(r"Configuration update aborted"),
    )
    # another session is changing the configuration: the save is retried a bounded number of times
    retry_patterns = (re.compile(r"(?i)another request for config change is already in progress"),)

    def show_ports_command(self, ports: Sequence[str]) -> list[str]:
        return [f"show running-config interface {p}" for p in ports]

    def show_vlans_command(self) -> str:
        return "show vlan brief"

    def parse_lldp(self, output: str) -> list[LldpNeighbor]:
        found: list[LldpNeighbor] = []
        for row in _rows(json_output(output), "TABLE_nbor_detail", "ROW_nbor_detail"):
            local = lldp_text(row.get("l_port_id"))
            if local is None:
                continue
            m = _LLDP_LOCAL.match(local)
            found.append(
                LldpNeighbor(
                    f"Ethernet{m.group(1)}" if m else local,
                    lldp_id(lldp_text(row.get("chassis_id"))),
                    lldp_id(lldp_text(row.get("port_id"))),
                    lldp_text(row.get("sys_name")),
                    lldp_text(row.get("port_desc")),
                )
            )
        return found


def _rows(doc: dict[str, Any], table: str, row: str) -> list[dict[str, Any]]:
    """The rows of an NX-OS JSON table: ``{TABLE: {ROW: [..] | {..}}}``, the table possibly a
    list of such objects; anything else contributes nothing."""
    tables = doc.get(table)
    out: list[dict[str, Any]] = []
    for t in tables if isinstance(tables, list) else [tables]:
        rows = t.get(row) if isinstance(t, dict) else None
        for r in rows if isinstance(rows, list) else [rows]:
            if isinstance(r, dict):
                out.append(r)
    return out
