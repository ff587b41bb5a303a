"""The inside of an IPMI worker process: pyghmi (with our fixes) behind a pipe.

The daemon (drivers.bmc.ipmi) starts a few of these and shards BMCs across them. Each request is
``(req_id, op, target, args)``; each answer ``(req_id, "ok", value)`` or
``(req_id, "err", kind, message, transient)``. A worker keeps one logged-in pyghmi session per
BMC and a thread that pumps pyghmi's keepalives. If pyghmi wedges, the daemon kills this whole
process and starts another: nothing here has to be hang-proof, only honest.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

TEST_HOOKS_ENV = "PROVISIOND_IPMI_TEST_HOOKS"

# a session nobody used for this long is logged out: BMCs have few session slots (often 4-16)
SESSION_IDLE_SECONDS = 600.0
# IPMI completion codes worth a retry (IPMI 2.0 table 5-2)
_TRANSIENT_CODES = {0xC0: "node busy", 0xC3: "timeout", 0xFF: "unspecified error"}
_BOOT_DEVICES = {"none": 0x0, "pxe": 0x1, "disk": 0x2, "bios": 0x6}
_BOOT_NAMES = {v: k for k, v in _BOOT_DEVICES.items()}
_CHASSIS = {"off": 0, "on": 1, "cycle": 2, "reset": 3, "soft-off": 5}


# how long a login waits for another one in progress on this worker before going ahead anyway
# (see Worker._session): logins on loopback take milliseconds, a dead BMC's takes its timeout
LOGIN_SERIAL_WAIT = 0.5

class OpError(Exception):
    def __init__(self, kind: str, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.kind = kind
        self.transient = transient


class Worker:
    def __init__(self, conn: Connection, *, threads: int, command_timeout: float) -> None:
        from drivers.bmc import pyghmi_fixes

        pyghmi_fixes.apply()
        import pyghmi.exceptions
        import pyghmi.ipmi.command
        import pyghmi.ipmi.fru
        import pyghmi.ipmi.private.session as ipmisession

        self._exc = pyghmi.exceptions.IpmiException
        self._command_cls = pyghmi.ipmi.command.Command
        self._fru_cls = pyghmi.ipmi.fru.FRU
        self._session_mod = ipmisession
        self.conn = conn
        self.command_timeout = command_timeout
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ipmi")
        self.send_lock = threading.Lock()
        self.cache_lock = threading.Lock()
        self.sessions: dict[tuple[str, int, str, str], Any] = {}
        self.used: dict[tuple[str, int, str, str], float] = {}
        # One call at a time per BMC inside pyghmi. A caller that gave up at its deadline leaves
        # its call running here (pyghmi cannot be interrupted): a later call to that BMC is
        # refused at once instead of stacking threads on a hung BMC; a call to a BMC whose
        # current call is still within its budget waits for it (bounded by its own budget).
        self.bmc_locks: dict[tuple[str, int], threading.Lock] = {}
        self.busy_until: dict[tuple[str, int], float] = {}
        self.busy_lock = threading.Lock()
        self.login_lock = threading.Lock()  # see _session
        self.hooks = os.environ.get(TEST_HOOKS_ENV) == "1"
        self.io_beat = time.monotonic()  # last turn of pyghmi's I/O loop seen by the pump

    # plumbing --------------------------------------------------------------------------------
    def reply(self, msg: tuple[Any, ...]) -> None:
        with self.send_lock:
            self.conn.send(msg)

    def serve(self) -> None:
        threading.Thread(target=self._pump, name="ipmi-keepalive", daemon=True).start()
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                return
            if msg is None:
                self._logout_all()
                return
            if msg[1] == "health":  # answered here, never queued behind BMC calls
                now = time.monotonic()
                with self.busy_lock:
                    late = [(now - until, f"{b[0]}:{b[1]}") for b, until in self.busy_until.items()]
                overdue, bmc = max(late, default=(0.0, ""))
                self.reply((msg[0], "ok", (now - self.io_beat, overdue, bmc)))
                continue
            self.pool.submit(self._handle, msg)

    def _pump(self) -> None:
        """Let pyghmi send its keepalives (about every 30 s per session) and expire retries;
        log out of sessions idle for SESSION_IDLE_SECONDS."""
        next_sweep = time.monotonic() + 30
        while True:
            try:
                # returns within ~1 s unless pyghmi's I/O thread is wedged: that is the signal
                self._session_mod.Session.wait_for_rsp(timeout=1.0)
            except Exception:  # a keepalive failure marks that session broken
                time.sleep(0.1)
            self.io_beat = time.monotonic()
            if self.io_beat >= next_sweep:
                next_sweep = self.io_beat + 30
                with self.cache_lock:
                    idle = [
                        k for k, t in self.used.items() if self.io_beat - t > SESSION_IDLE_SECONDS
                    ]
                for key in idle:
                    self.pool.submit(self._logout_idle, key)
            time.sleep(0.05)

    def _logout_idle(self, key: tuple[str, int, str, str]) -> None:
        """Log out of an idle session unless a call to that BMC runs right now."""
        with self.busy_lock:
            lock = self.bmc_locks.setdefault((key[0], key[1]), threading.Lock())
        if not lock.acquire(blocking=False):
            return  # in use after all: not idle
        try:
            self._logout(key)
        finally:
            lock.release()

    def _logout(self, key: tuple[str, int, str, str]) -> None:
        with self.cache_lock:
            cmd = self.sessions.pop(key, None)
            self.used.pop(key, None)
        if cmd is not None:
            with contextlib.suppress(Exception):
                cmd.ipmi_session.logout()

    def _logout_all(self) -> None:
        """At shutdown: free the BMCs' session slots, bounded to 2 s in all."""
        with self.cache_lock:
            keys = list(self.sessions)
        done = threading.Event()

        def run() -> None:
            for key in keys:
                self._logout(key)
            done.set()

        threading.Thread(target=run, daemon=True).start()
        done.wait(2.0)

    def _handle(self, msg: tuple[Any, ...]) -> None:
        req_id, op, target, args = msg
        bmc = (str(target.get("address")), int(target.get("port") or 0))
        # absolute CLOCK_MONOTONIC deadline of the caller (the clock is system-wide on Linux):
        # time spent queued here counts, and a call its caller gave up on never starts
        deadline = float(args.pop("_deadline", time.monotonic() + 60.0))
        if op == "stall":
            self._run(req_id, op, target, args)
            return
        with self.busy_lock:
            lock = self.bmc_locks.setdefault(bmc, threading.Lock())
            abandoned = self.busy_until.get(bmc, deadline) < time.monotonic()
        acquired = False
        if not abandoned:
            acquired = lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        if not acquired or time.monotonic() >= deadline:
            if acquired:
                lock.release()
            why = (
                "an earlier call is still waiting for this BMC inside the IPMI library (it does "
                "not answer); not queuing another"
                if abandoned or not acquired
                else "the caller's deadline passed before the call could start"
            )
            self.reply((req_id, "err", "bmc", f"BMC {bmc[0]}:{bmc[1]}: {why}", True))
            return
        try:
            with self.busy_lock:
                self.busy_until[bmc] = deadline
            self._run(req_id, op, target, args)
        finally:
            with self.busy_lock:
                self.busy_until.pop(bmc, None)
            lock.release()

    def _run(self, req_id: int, op: str, target: dict[str, Any], args: dict[str, Any]) -> None:
        try:
            fn: Callable[[dict[str, Any], dict[str, Any]], Any] = getattr(self, f"op_{op}")
            value = fn(target, args)
            self.reply((req_id, "ok", value))
        except OpError as exc:
            self.reply((req_id, "err", exc.kind, str(exc), exc.transient))
        except Exception as exc:  # everything goes back to the daemon, named
            where = f"{target.get('address')}:{target.get('port')}"
            self.reply(
                (
                    req_id,
                    "err",
                    "bmc",
                    f"BMC {where}: unexpected {type(exc).__name__}: {exc}",
                    False,
                )
            )

    # sessions --------------------------------------------------------------------------------
    def _where(self, t: dict[str, Any]) -> str:
        return f"{t['address']}:{t['port']}"

    def _translate(self, t: dict[str, Any], exc: BaseException, what: str) -> OpError:
        where = self._where(t)
        text = str(exc.args[0]) if exc.args and exc.args[0] is not None else ""
        code = getattr(exc, "ipmicode", None)
        if not text or text.lower() in ("timeout", "none"):
            # pyghmi raises IpmiException(None) when the BMC never answers
            return OpError(
                "unreachable",
                f"BMC {where}: no answer to IPMI ({what}) within ~{self.command_timeout:g}s: "
                "unreachable, hung, or UDP dropped",
                transient=True,
            )
        low = text.lower()
        if "incorrect password" in low or "unauthorized name" in low or "privilege" in low:
            return OpError(
                "bmc-auth",
                f"BMC {where}: login refused for user {t.get('username')!r} ({text}); "
                "check the node's bmc username and password",
                transient=False,
            )
        if code in _TRANSIENT_CODES:
            return OpError(
                "bmc", f"BMC {where}: {what}: {_TRANSIENT_CODES[code]} ({text})", transient=True
            )
        if "session no longer connected" in low or "timeout" in low:
            return OpError("bmc", f"BMC {where}: {what}: {text}", transient=True)
        return OpError("bmc", f"BMC {where}: {what}: {text}", transient=False)

    def _session(self, t: dict[str, Any]) -> tuple[Any, bool]:
        key = (t["address"], int(t["port"]), t.get("username") or "", t.get("password") or "")
        with self.cache_lock:
            cmd = self.sessions.get(key)
            self.used[key] = time.monotonic()
        if cmd is not None and not getattr(cmd.ipmi_session, "broken", False):
            return cmd, True
        # logins one at a time in this worker, as far as possible: pyghmi hands a received
        # packet to whichever thread polls next, so one login's RAKP 4 continuation (which sends
        # and awaits the privilege-level command) could run on the thread of another login in
        # progress, and now and then both waited on each other until their deadlines (the stress
        # test in tests/test_pyghmi_fixes.py, about 1 run in 8). The wait is bounded: a login
        # that hangs (a dead BMC) must not hold up the others for more than LOGIN_SERIAL_WAIT.
        serial = self.login_lock.acquire(timeout=LOGIN_SERIAL_WAIT)
        try:
            cmd = self._command_cls(
                bmc=t["address"],
                userid=key[2],
                password=key[3],
                port=key[1],
                keepalive=True,
            )
        except self._exc as exc:
            raise self._translate(t, exc, "login") from None
        except OSError as exc:
            raise OpError("unreachable", f"BMC {self._where(t)}: {exc}", transient=True) from None
        finally:
            if serial:
                self.login_lock.release()
        with self.cache_lock:
            self.sessions[key] = cmd
        return cmd, False

    def _drop(self, t: dict[str, Any]) -> None:
        self._logout(
            (t["address"], int(t["port"]), t.get("username") or "", t.get("password") or "")
        )

    def raw(self, t: dict[str, Any], netfn: int, command: int, data: bytes, what: str) -> bytes:
        """One IPMI command; a cached session that went stale gets one fresh login."""
        for attempt in (0, 1):
            cmd, cached = self._session(t)
            try:
                rsp = cmd.raw_command(
                    netfn=netfn, command=command, data=data, retry=True, timeout=None
                )
            except self._exc as exc:
                err = self._translate(t, exc, what)
                self._drop(t)
                if cached and attempt == 0 and err.transient:
                    continue
                raise err from None
            if "error" in rsp:
                code = rsp.get("code")
                if code == 0xFFFF or str(rsp["error"]).lower() == "timeout":
                    # pyghmi's timeout on a logged-in session comes back as a response, not an
                    # exception: the session is stale or the BMC stopped answering
                    self._drop(t)
                    if cached and attempt == 0:
                        continue
                    raise OpError(
                        "unreachable",
                        f"BMC {self._where(t)}: no answer to IPMI ({what}) within "
                        f"~{self.command_timeout:g}s: unreachable, hung, or UDP dropped",
                        transient=True,
                    )
                if code in _TRANSIENT_CODES:
                    raise OpError(
                        "bmc", f"BMC {self._where(t)}: {what}: {rsp['error']}", transient=True
                    )
                raise OpError(
                    "bmc", f"BMC {self._where(t)}: {what}: {rsp['error']}", transient=False
                )
            return bytes(rsp.get("data", b""))
        raise AssertionError("unreachable")

    # operations ------------------------------------------------------------------------------
    def op_validate(self, t: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        d = self.raw(t, 0x06, 0x01, b"", "get device id")
        if len(d) < 11:
            raise OpError(
                "bmc",
                f"BMC {self._where(t)}: Get Device ID answer too short ({len(d)} bytes)",
                transient=False,
            )
        mfg = d[6] | d[7] << 8 | d[8] << 16
        return {
            "device_id": d[0],
            "firmware": f"{d[2] & 0x7F}.{d[3]:02x}",
            "manufacturer_id": mfg,
            "product_id": d[9] | d[10] << 8,
        }

    def _power(self, t: dict[str, Any]) -> str:
        d = self.raw(t, 0x00, 0x01, b"", "get chassis status")
        if not d:
            raise OpError("bmc", f"BMC {self._where(t)}: empty chassis status", transient=True)
        return "on" if d[0] & 1 else "off"

    def op_get_power(self, t: dict[str, Any], args: dict[str, Any]) -> str:
        return self._power(t)

    def op_set_power(self, t: dict[str, Any], args: dict[str, Any]) -> str:
        action = args["action"]
        expected = "off" if action in ("off", "soft-off") else "on"
        if action == "on" and self._power(t) == "on":
            return "on"  # already there: power on is not a reset
        if action == "cycle" and self._power(t) == "off":
            action = "on"  # many BMCs refuse a cycle while off (0xD5)
        self.raw(t, 0x00, 0x02, bytes([_CHASSIS[action]]), f"chassis control {action}")
        wait = float(args.get("wait", 0))
        if wait <= 0:
            return expected
        deadline = time.monotonic() + wait
        poll = float(args.get("poll", 1.0))
        state = self._power(t)
        while state != expected:
            if time.monotonic() + poll > deadline:
                raise OpError(
                    "bmc",
                    f"BMC {self._where(t)}: power {action} accepted but the node did not reach "
                    f"{expected} within {wait:g}s (still {state})",
                    transient=True,
                )
            time.sleep(poll)
            state = self._power(t)
        return state

    def op_set_boot(self, t: dict[str, Any], args: dict[str, Any]) -> None:
        device = _BOOT_DEVICES[args["device"]]
        flags = (
            0x00
            if device == 0
            else (0x80 | (0x40 if args["persistent"] else 0) | (0x20 if args["uefi"] else 0))
        )
        self.raw(t, 0x00, 0x08, bytes([0x05, flags, device << 2, 0, 0, 0]), "set boot flags")

    def op_get_boot(self, t: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        d = self.raw(t, 0x00, 0x09, bytes([0x05, 0, 0]), "get boot flags")
        if len(d) < 4:
            raise OpError(
                "bmc", f"BMC {self._where(t)}: boot flags answer too short", transient=False
            )
        b1, b2 = d[2], d[3]
        return {
            "device": _BOOT_NAMES.get((b2 >> 2) & 0xF, "none"),
            "persistent": bool(b1 & 0x40),
            "uefi": bool(b1 & 0x20),
            "valid": bool(b1 & 0x80),
        }

    def op_inventory(self, t: dict[str, Any], args: dict[str, Any]) -> dict[str, str]:
        # Get FRU Inventory Area Info first: a BMC without FRU 0 says so cleanly
        self.raw(t, 0x0A, 0x10, b"\x00", "get FRU inventory area info")
        cmd, _ = self._session(t)
        try:
            info = self._fru_cls(ipmicmd=cmd, fruid=0).info or {}
        except self._exc as exc:
            raise self._translate(t, exc, "read FRU") from None
        return {k: str(v) for k, v in info.items() if isinstance(v, (str, int)) and v != ""}

    def op_stall(self, t: dict[str, Any], args: dict[str, Any]) -> str:
        """Test hook: wedge pyghmi's I/O thread in recvfrom, as the blocking-socket defect did
        (pyghmi_fixes fix 1), so every session of this worker stops answering."""
        if not self.hooks:
            raise OpError("bmc", "test hooks are off in this worker", transient=False)
        blocker = threading.Event()

        def wedged_recvfrom(*_: Any) -> None:
            blocker.wait()

        self._session_mod._io_recvfrom = wedged_recvfrom
        return "stalled"

    def op_ping(self, t: dict[str, Any], args: dict[str, Any]) -> int:
        return os.getpid()


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphan workers after a kill -9


def main(argv: list[str]) -> None:
    """``python -m drivers.bmc.ipmi_worker FD THREADS COMMAND_TIMEOUT``: FD is this end of the
    daemon's socketpair."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    fd, threads, command_timeout = int(argv[0]), int(argv[1]), float(argv[2])
    Worker(Connection(fd), threads=threads, command_timeout=command_timeout).serve()
    os._exit(0)  # pyghmi's threads are daemonic, but do not wait on a wedged one


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])


__all__ = ["TEST_HOOKS_ENV", "main"]
