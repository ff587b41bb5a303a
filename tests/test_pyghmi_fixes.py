"""drivers/bmc/pyghmi_fixes.py: each check fails on unpatched pyghmi 1.6.19.

pyghmi keeps process-global state (its I/O thread, session tables, patched module functions), so
everything that needs pyghmi before and after ``apply()``, or a pyghmi client, runs in a fresh
interpreter (``isolated``); the lab's server runs in its own process as always.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from drivers.bmc import pyghmi_fixes
from drivers.bmc.base import BmcTarget, PowerState
from drivers.bmc.ipmi import IpmiDriver
from tests.support.labbmc import ROOT, Lab, lab_bmc

STRESS_BMCS = 10
CLIENT_PORT = STRESS_BMCS  # index of the BMC the pyghmi client test logs into
DRIVER_PORT = STRESS_BMCS + 1
STRESS_FIRST = STRESS_BMCS + 2  # 50 BMCs from here
LAB_COUNT = STRESS_FIRST + 50


def isolated(code: str, *args: str, timeout: float = 30) -> Any:
    """Run ``code`` in a fresh interpreter (repo on sys.path); it prints one JSON line last."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, f"isolated check failed:\n{result.stderr}\n{result.stdout}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab_bmc(LAB_COUNT, tmp=tmp_path_factory.mktemp("labbmc")) as running:
        yield running


# fix 1 -------------------------------------------------------------------------------------------

SENDTO_CHECK = """
    import json, os, socket
    import pyghmi.ipmi.private.session as session

    def blocking_after(sendto):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        sendto(s, b"x", s.getsockname())  # to itself: nothing leaves 127.0.0.1
        blocking = s.getblocking()
        s.settimeout(5)
        out = {"blocking": blocking, "received": s.recvfrom(16)[0] == b"x"}
        s.close()
        return out

    original = session._io_sendto
    unpatched = blocking_after(original)
    from drivers.bmc import pyghmi_fixes
    pyghmi_fixes.apply()
    print(json.dumps({
        "unpatched": unpatched,
        "patched": blocking_after(session._io_sendto),
        "replaced": session._io_sendto is pyghmi_fixes._sendto is not original,
    }), flush=True)
    os._exit(0)
"""


def test_fix1_sendto_leaves_a_nonblocking_socket_nonblocking() -> None:
    got = isolated(SENDTO_CHECK)
    # the defect is real in the pinned release: the test would catch it
    assert got["unpatched"]["received"] is True
    assert got["unpatched"]["blocking"] is True
    # fixed: the shared socket stays non-blocking, and the packet still goes out
    assert got["replaced"] is True
    assert got["patched"] == {"blocking": False, "received": True}


class _FullSocket:
    """A socket whose send buffer is always full; select() sees the real socket as writable."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.sends = 0

    def fileno(self) -> int:
        return self.real.fileno()

    def sendto(self, packet: bytes, addr: Any) -> int:
        self.sends += 1
        raise BlockingIOError("send buffer full")

    def setblocking(self, flag: bool) -> None:  # pragma: no cover - must not be called
        raise AssertionError("the fixed _io_sendto must not change blocking mode")


def test_fix1_full_send_buffer_waits_bounded_and_gives_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as real:
        real.setblocking(False)
        full = _FullSocket(real)
        pyghmi_fixes._sendto(full, b"x", ("127.0.0.1", 9))
        assert full.sends == 2  # one try, a bounded wait for room, one more try
        assert select.select((), (real,), (), 0)[1]  # the fake never touched the real socket
        assert real.getblocking() is False


# fix 2 (and fix 4 as a client sees it) ---------------------------------------------------------

CLIENT_CHECK = """
    import json, os, sys
    from drivers.bmc import pyghmi_fixes
    pyghmi_fixes.apply()
    from pyghmi.exceptions import IpmiException
    from pyghmi.ipmi.command import Command

    port = int(sys.argv[1])
    cmd = Command(bmc="127.0.0.1", userid="admin", password="password", port=port, keepalive=False)
    s = cmd.ipmi_session
    out = {
        "hash": s.currhashlib().name,
        "icv_len": s.currhashlen,
        "integrity": s.integrityalgo,
        "power": cmd.get_power()["powerstate"],
    }
    try:
        Command(bmc="127.0.0.1", userid="nobody", password="password", port=port, keepalive=False)
        out["unknown_user"] = "logged in"
    except IpmiException as exc:
        out["unknown_user"] = str(exc)
    print(json.dumps(out), flush=True)
    os._exit(0)
"""


def test_fix2_pyghmi_client_negotiates_sha256_with_the_lab(lab: Lab) -> None:
    """pyghmi's client proposes cipher suite 17 first; the unpatched server answered suite 3 and
    the client's SHA-256 RAKP check then failed as 'Incorrect password'."""
    got = isolated(CLIENT_CHECK, str(lab.ports[CLIENT_PORT]))
    assert got["hash"] == "sha256"
    assert got["icv_len"] == 16
    assert got["integrity"] == 256
    assert got["power"] == "off"
    # fix 4: the server says "unauthorized name" (RAKP 2 status 0x0D) instead of going silent
    assert "Unauthorized name" in got["unknown_user"]


async def test_fix2_driver_worker_logs_in_and_works(lab: Lab) -> None:
    driver = IpmiDriver({"workers": 1, "threads_per_worker": 4, "min_interval": 0})
    try:
        target = BmcTarget("ipmi", "127.0.0.1", lab.ports[DRIVER_PORT], "admin", "password")
        ident = await driver.validate(target)
        assert ident.manufacturer_id == 10876
        assert await driver.get_power(target) in (PowerState.ON, PowerState.OFF)
    finally:
        await driver.close()


SERVER_UNITS = """
    import collections, hashlib, json, os, uuid
    import pyghmi.ipmi.private.serversession as ss
    import pyghmi.ipmi.private.session as session
    from pyghmi.ipmi.private import constants

    CLIENT_SID = bytearray(b"\\x01\\x02\\x03\\x04")
    MANAGED_SID = bytearray(b"\\x05\\x06\\x07\\x08")
    RAKP2, RAKP4 = constants.payload_types["rakp2"], constants.payload_types["rakp4"]

    def stub():
        s = object.__new__(ss.ServerSession)
        s.sent = []
        s.send_payload = lambda payload, ptype, retry=True: s.sent.append([list(payload), ptype])
        s.authdata = {"admin": "password"}
        s.uuid = uuid.UUID(int=1)
        s.clientsessionid = bytearray(CLIENT_SID)
        s.managedsessionid = bytearray(MANAGED_SID)
        s.kg = None
        s.currhashlib, s.currhashlen = hashlib.sha1, 12
        return s

    def open_request(auth, integrity, conf):
        return bytes([9, 0, 0, 0]) + bytes(CLIENT_SID) + bytes(
            [0, 0, 0, 8, auth, 0, 0, 0, 1, 0, 0, 8, integrity, 0, 0, 0, 2, 0, 0, 8, conf, 0, 0, 0])

    def rakp1(user):
        return (bytearray([7, 0, 0, 0]) + MANAGED_SID + bytearray(range(16))
                + bytearray([0x14, 0, 0, len(user)]) + user)

    def run(cls):
        out = {}
        s = stub()
        r = cls.create_open_session_response(s, open_request(3, 4, 1))  # suite 17
        out["open17"] = {"status": r[1], "algs": [r[16], r[24], r[32]] if len(r) > 32 else None}
        s = stub()
        r = cls.create_open_session_response(s, open_request(1, 0, 0))  # suite 1
        out["open1"] = {"status": r[1]}
        s = stub()
        cls._got_rakp1(s, rakp1(b"nobody"))
        out["rakp1_unknown"] = s.sent
        s = stub()
        cls._got_rakp1(s, rakp1(b"admin"))
        s.sent.clear()
        cls._got_rakp3(s, bytearray([8, 0, 0, 0]) + MANAGED_SID + bytearray(20))  # bad HMAC
        out["rakp3_bad"] = s.sent
        # fix 3: a queued packet from a client without a session entry, on a served socket
        class Bmc:
            got = []
            def sessionless_data(self, data, sockaddr):
                self.got.append([list(data[:4]), list(sockaddr)])
        s = stub()
        s.bmc = Bmc()
        sock = object()
        session.Session.bmc_handlers[sock] = {}
        s.pktqueue = collections.deque(
            [(bytes([6, 0, 0xFF, 7]) + bytes(20), ("127.0.0.1", 40001), sock, False)])
        out["has_sessionless_data"] = hasattr(cls, "sessionless_data")
        try:
            s.process_pktqueue()
            out["pktqueue"] = list(s.bmc.got)
        except AttributeError as exc:
            out["pktqueue"] = "AttributeError: " + str(exc)
        del session.Session.bmc_handlers[sock]
        if hasattr(cls, "sessionless_data"):
            s.bmc.got.clear()
            s.sessionless_data(b"\\x06\\x00\\xff\\x07", ("127.0.0.1", 40002))
            out["direct"] = s.bmc.got
        return out

    unpatched = run(ss.ServerSession)
    from drivers.bmc import pyghmi_fixes
    pyghmi_fixes.apply()
    print(json.dumps({"unpatched": unpatched, "patched": run(ss.ServerSession),
                      "rakp2": RAKP2, "rakp4": RAKP4}), flush=True)
    os._exit(0)
"""


@pytest.fixture(scope="module")
def server_units() -> dict[str, Any]:
    got: dict[str, Any] = isolated(SERVER_UNITS)
    return got


def test_fix2_open_session_answers_the_proposed_suite(server_units: dict[str, Any]) -> None:
    before, after = server_units["unpatched"], server_units["patched"]
    assert before["open17"] == {"status": 0, "algs": [1, 1, 1]}  # the defect: always suite 3
    assert after["open17"] == {"status": 0, "algs": [3, 4, 1]}  # RAKP-HMAC-SHA256, SHA256-128


def test_fix2_unknown_suite_gets_no_cipher_suite_match(server_units: dict[str, Any]) -> None:
    assert server_units["unpatched"]["open1"]["status"] == 0
    assert server_units["patched"]["open1"]["status"] == 0x11


def test_fix3_server_session_forwards_sessionless_packets_to_its_bmc(
    server_units: dict[str, Any],
) -> None:
    before, after = server_units["unpatched"], server_units["patched"]
    assert before["has_sessionless_data"] is False
    assert str(before["pktqueue"]).startswith("AttributeError")  # what killed the listen loop
    assert after["has_sessionless_data"] is True
    assert after["pktqueue"] == [[[6, 0, 0xFF, 7], ["127.0.0.1", 40001]]]
    assert after["direct"] == [[[6, 0, 0xFF, 7], ["127.0.0.1", 40002]]]


def test_fix4_unknown_user_gets_rakp2_unauthorized_name(server_units: dict[str, Any]) -> None:
    assert server_units["unpatched"]["rakp1_unknown"] == []  # silently dropped
    sent = server_units["patched"]["rakp1_unknown"]
    assert len(sent) == 1
    payload, ptype = sent[0]
    assert ptype == server_units["rakp2"]
    assert payload == [7, 0x0D, 0, 0, 1, 2, 3, 4]  # tag, status, reserved, client session id


def test_fix4_bad_rakp3_gets_rakp4_invalid_integrity_check(server_units: dict[str, Any]) -> None:
    assert server_units["unpatched"]["rakp3_bad"] == []  # silently dropped
    sent = server_units["patched"]["rakp3_bad"]
    assert len(sent) == 1
    payload, ptype = sent[0]
    assert ptype == server_units["rakp4"]
    assert payload == [8, 0x0F, 0, 0, 1, 2, 3, 4]


# the version pin --------------------------------------------------------------------------------


def test_apply_refuses_another_pyghmi_release(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    import pyghmi.ipmi.private.session as ipmisession

    monkeypatch.setattr(pyghmi_fixes, "_applied", False)
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.6.20")
    sendto_before = ipmisession._io_sendto
    with pytest.raises(RuntimeError) as err:
        pyghmi_fixes.apply()
    assert "1.6.19" in str(err.value) and "1.6.20" in str(err.value)
    assert ipmisession._io_sendto is sendto_before  # nothing was patched
    assert pyghmi_fixes._applied is False


def test_pin_matches_the_installed_pyghmi() -> None:
    import importlib.metadata

    assert importlib.metadata.version("pyghmi") == pyghmi_fixes.PYGHMI_VERSION


# stress -----------------------------------------------------------------------------------------


def stress_driver() -> IpmiDriver:
    return IpmiDriver(
        {
            "workers": 1,
            "threads_per_worker": 50,
            "stall_grace": 3,
            "min_interval": 0,
            "command_timeout": 2,
        }
    )


async def test_stress_50_concurrent_get_power_on_one_worker(lab: Lab) -> None:
    """50 concurrent calls through one worker with 50 threads, 5 rounds (the first one all
    logins): the blocking-socket defect (fix 1) hung about a third of such sweeps. One call in
    flight per BMC, as the gateway guarantees in the daemon."""
    targets = [
        BmcTarget("ipmi", "127.0.0.1", port, "admin", "password")
        for port in lab.ports[STRESS_FIRST : STRESS_FIRST + 50]
    ]
    driver = stress_driver()
    try:
        for rnd in range(5):
            results = await asyncio.gather(
                *(driver.get_power(t) for t in targets), return_exceptions=True
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            assert not errors, f"round {rnd}: {len(errors)} of 50 failed, e.g. {errors[:3]}"
            assert all(r in (PowerState.ON, PowerState.OFF) for r in results)
        assert driver.pool.restarts == 0
    finally:
        await driver.close()


async def test_stress_50_concurrent_calls_on_10_bmcs(lab: Lab) -> None:
    """50 concurrent get_power through one worker with 50 threads against 10 BMCs (5 at once per
    BMC), 5 rounds, each on a fresh worker (so 5 concurrent first logins per BMC): all succeed,
    no worker restarts. Besides fix 1, this guards the worker against pyghmi 1.6.19's
    Session.__new__/__init__ race: with concurrent Command()s for one BMC a caller can join a
    session nobody is logging in and spin in Session.wait_for_rsp forever, leaving that BMC dead
    in the worker with no restart (the worker at c91cba0 failed this every time)."""
    targets = [
        BmcTarget("ipmi", "127.0.0.1", port, "admin", "password")
        for port in lab.ports[:STRESS_BMCS]
    ]
    for rnd in range(5):
        driver = stress_driver()
        try:
            results = await asyncio.gather(
                *(driver.get_power(targets[i % STRESS_BMCS]) for i in range(50)),
                return_exceptions=True,
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            assert not errors, f"round {rnd}: {len(errors)} of 50 failed, e.g. {errors[:3]}"
            assert all(r in (PowerState.ON, PowerState.OFF) for r in results)
            for t in targets:  # and every BMC still answers on this worker
                assert await driver.get_power(t) in (PowerState.ON, PowerState.OFF), rnd
            assert driver.pool.restarts == 0
        finally:
            await driver.close()
