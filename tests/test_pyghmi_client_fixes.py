"""pyghmi fixes 5 and 6 (drivers/bmc/pyghmi_fixes.py), checked deterministically in-process.

Both defects were found by bench/power_sweep.py: a lost wake-up that made warm calls wait out a
0.5-1 s retry timer with their answer already queued (fix 5), and a lock-order deadlock between
KEEPALIVE_SESSIONS and WAITING_SESSIONS that froze whole worker processes (fix 6). Each test fails
against unpatched pyghmi 1.6.19.
"""

from __future__ import annotations

import collections
import threading
from types import SimpleNamespace
from typing import Any

import pyghmi.ipmi.private.session as ipmisession
import pytest

from drivers.bmc import pyghmi_fixes


@pytest.fixture(autouse=True)
def _applied() -> None:
    pyghmi_fixes.apply()


def test_fix6_transmit_runs_without_the_keepalive_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    def fake_xmit(self: Any, *args: Any, **kwargs: Any) -> str:
        # another thread must be able to take KEEPALIVE_SESSIONS while we transmit
        got = threading.Event()

        def other() -> None:
            if ipmisession.KEEPALIVE_SESSIONS.acquire(timeout=5):
                ipmisession.KEEPALIVE_SESSIONS.release()
                got.set()

        t = threading.Thread(target=other)
        t.start()
        t.join(10)
        seen.append(got.is_set())
        return "sent"

    monkeypatch.setattr(pyghmi_fixes, "_original_xmit", fake_xmit)
    lock = ipmisession.KEEPALIVE_SESSIONS
    with lock, lock:  # held twice, as nested pyghmi code may
        assert ipmisession.Session._xmit_packet(object(), True) == "sent"
        assert lock._is_owned()  # restored, with its recursion depth
    assert seen == [True]
    assert not lock._is_owned()


def test_fix6_is_installed_on_the_session_class() -> None:
    assert ipmisession.Session._xmit_packet is pyghmi_fixes._xmit_packet


def test_fix5_an_answer_already_queued_is_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ipmisession, "ioqueue", collections.deque())
    monkeypatch.setattr(ipmisession, "selectdeadline", 0)  # no I/O thread to nudge
    session = SimpleNamespace(sockaddr=("127.0.0.1", 623), pktqueue=collections.deque([b"answer"]))
    done = threading.Event()

    def wait() -> None:
        pyghmi_fixes._wait_for_answer(session, 30.0)
        done.set()

    t = threading.Thread(target=wait, daemon=True)
    t.start()
    t.join(10)
    # unpatched pyghmi (_io_wait) would sleep the full 30 s: nothing wakes it for this packet
    assert done.is_set()
    assert len(ipmisession.ioqueue) == 1  # the wake-up was registered before the check


def test_fix5_waits_when_nothing_is_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ipmisession, "ioqueue", collections.deque())
    monkeypatch.setattr(ipmisession, "selectdeadline", 0)
    session = SimpleNamespace(sockaddr=("127.0.0.1", 623), pktqueue=collections.deque())
    done = threading.Event()
    t = threading.Thread(
        target=lambda: (pyghmi_fixes._wait_for_answer(session, 30.0), done.set()), daemon=True
    )
    t.start()
    t.join(0.5)
    assert not done.is_set()  # still waiting: the I/O thread's wake-up is what ends it
    _, evt, addr = ipmisession.ioqueue[0]
    assert addr == ("127.0.0.1", 623)
    evt.set()
    t.join(10)
    assert done.is_set()


def test_fix5_is_installed_on_the_session_class() -> None:
    assert ipmisession.Session.awaitresponse is pyghmi_fixes._awaitresponse
