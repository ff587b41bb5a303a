"""SwitchSessions: one session per switch, even when a caller gave up on a session whose
thread goes on; a library's own exception becomes a transient SwitchError."""

from __future__ import annotations

import threading
import time

import pytest

from drivers.switch.base import SwitchError, SwitchTarget
from drivers.switch.sessions import SwitchSessions

SW = SwitchTarget("sw1", "arista_eos", "127.0.0.1", 22)


async def test_an_abandoned_session_keeps_the_switch_until_its_thread_ends() -> None:
    sessions = SwitchSessions(workers=4, timeout=0.2, name="t")
    running = threading.Event()
    log: list[str] = []

    def slow(target: SwitchTarget) -> str:
        running.set()
        time.sleep(0.8)
        log.append("slow done")
        return "slow"

    def next_one(target: SwitchTarget) -> str:
        log.append("next started")
        return "next"

    try:
        with pytest.raises(SwitchError) as err:
            await sessions.run(SW, "apply", slow)
        assert err.value.transient and "no answer within 0.2s" in err.value.message
        assert await sessions.run(SW, "read", next_one) == "next"
        assert log == ["slow done", "next started"]  # never both at once
        # another switch is not held up meanwhile
        other = SwitchTarget("sw2", "arista_eos", "127.0.0.2", 22)
        assert await sessions.run(other, "read", lambda t: t.name) == "sw2"
    finally:
        sessions.close()


async def test_library_exceptions_become_transient_switch_errors() -> None:
    sessions = SwitchSessions(workers=2, timeout=5, name="t")

    def prompt_not_found(target: SwitchTarget) -> None:
        raise ValueError("Router prompt not found")

    def refused(target: SwitchTarget) -> None:
        raise SwitchError("switch sw1 refused 'mtu 9216': % Invalid input", command="mtu 9216")

    try:
        with pytest.raises(SwitchError) as err:
            await sessions.run(SW, "apply", prompt_not_found)
        assert err.value.transient and "ValueError: Router prompt not found" in err.value.message
        with pytest.raises(SwitchError) as err:  # ours pass through as they are
            await sessions.run(SW, "apply", refused)
        assert not err.value.transient and err.value.command == "mtu 9216"
    finally:
        sessions.close()
