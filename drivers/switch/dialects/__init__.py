"""One module per switch CLI dialect: pure command rendering and output parsing.

``DIALECTS`` maps the driver names a switch record may carry to their dialect classes."""

from __future__ import annotations

from drivers.switch.base import Dialect
from drivers.switch.dialects.arista_eos import AristaEosDialect
from drivers.switch.dialects.cisco_nxos import CiscoNxosDialect
from drivers.switch.dialects.comware import ComwareDialect
from drivers.switch.dialects.cumulus_nvue import CumulusNvueDialect
from drivers.switch.dialects.dell_os10 import DellOs10Dialect
from drivers.switch.dialects.junos import JunosDialect
from drivers.switch.dialects.sonic import SonicDialect

DIALECTS: dict[str, type[Dialect]] = {
    d.name: d
    for d in (
        CumulusNvueDialect,
        SonicDialect,
        AristaEosDialect,
        CiscoNxosDialect,
        DellOs10Dialect,
        JunosDialect,
        ComwareDialect,
    )
}


def dialect(name: str) -> Dialect:
    """The dialect of a switch driver name; KeyError names the known ones."""
    try:
        return DIALECTS[name]()
    except KeyError:
        raise KeyError(
            f"no switch dialect {name!r}; known: {', '.join(sorted(DIALECTS))}"
        ) from None
