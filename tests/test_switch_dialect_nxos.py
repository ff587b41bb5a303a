"""Cisco NX-OS error and retry patterns beyond the shared ones in
test_switch_dialects_ios_like.py: the save refused while another change is in progress, and
the caret error NX-OS prints without a ``%`` for a port that does not exist."""

from __future__ import annotations

from drivers.switch.dialects.cisco_nxos import CiscoNxosDialect

NXOS = CiscoNxosDialect()
LOCKED = "Configuration update aborted: another request for config change is already in progress"


def test_save_aborted_is_an_error_and_retried() -> None:
    assert NXOS.errors(f"{LOCKED}\n") == [LOCKED]
    assert any(p.search(LOCKED) for p in NXOS.retry_patterns)
    # a save that timed out is an error, but not one a retry fixes
    timed_out = "[####################]  99%Configuration update aborted: timed out"
    assert NXOS.errors(timed_out) == [timed_out]
    assert not any(p.search(timed_out) for p in NXOS.retry_patterns)
    done = (
        "[########################################] 100%\n"
        "Copy complete, now saving to disk (please wait)...\nCopy complete.\n"
    )
    assert NXOS.errors(done) == []


def test_port_that_does_not_exist_is_an_error() -> None:
    output = (
        "lab-nxos(config)# interface Ethernet1/99\n"
        "                   ^\n"
        "Invalid range at '^' marker.\n"
    )
    assert NXOS.errors(output) == ["Invalid range at '^' marker."]
