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


@pytest.mark.parametrize("queued", [True, False])
def test_fix5_no_wait_outlasts_the_poll_bound(
    monkeypatch: pytest.MonkeyPatch, queued: bool
) -> None:
    waits: list[tuple[float, Any]] = []
    monkeypatch.setattr(
        ipmisession, "_io_wait", lambda t, addr=None, evq=None: waits.append((t, addr))
    )
    pktqueue = collections.deque([b"answer"] if queued else [])
    session = SimpleNamespace(sockaddr=("127.0.0.1", 623), pktqueue=pktqueue)
    pyghmi_fixes._wait_for_answer(session, 30.0)
    # unpatched pyghmi waits the whole 30 s (its retry timer) even with the answer queued
    assert waits == [(0.0 if queued else pyghmi_fixes.ANSWER_POLL_SECONDS, ("127.0.0.1", 623))]


def test_fix5_awaitresponse_polls_its_queue_until_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The patched awaitresponse loop: wakes within the poll bound, processes its queue, stops
    once the response matches."""
    waits: list[float] = []
    monkeypatch.setattr(ipmisession, "_io_wait", lambda t, addr=None, evq=None: waits.append(t))

    class FakeSession:
        lastresponse: dict[str, int] | None = None
        logging = False
        logged = True
        onlogpayload = None
        iterwaiters: list[Any] = []
        waiting_sessions: dict[Any, Any] = {}
        sockaddr = ("127.0.0.1", 623)
        pktqueue: collections.deque[bytes] = collections.deque()

        def __init__(self) -> None:
            self.expiration = ipmisession._monotonic_time() + 30
            self.polls = 0

        def _getmaxtimeout(self) -> float:
            return 30.0

        def process_pktqueue(self) -> None:
            self.polls += 1
            if self.polls == 3:  # the answer is found on the third look
                self.lastresponse = {"netfn": 7, "command": 1}

    fake = FakeSession()
    pyghmi_fixes._awaitresponse(fake, True, 7, 1)
    assert fake.polls == 3
    assert all(t <= pyghmi_fixes.ANSWER_POLL_SECONDS for t in waits) and len(waits) == 3


def test_fix5_is_installed_on_the_session_class() -> None:
    assert ipmisession.Session.awaitresponse is pyghmi_fixes._awaitresponse
