"""IPMI over LAN (RMCP+) on pyghmi, hang-proof: pyghmi runs in supervised worker processes.

Why processes: pyghmi 1.6.19 can wedge its one I/O thread, and with it every BMC session of the
process (drivers/bmc/pyghmi_fixes.py, fix 1). A thread cannot be killed; a process can. BMCs are
sharded across ``workers`` processes by address, so a wedge costs one shard at most one deadline:
every request carries a deadline, a request still unanswered ``stall_grace`` seconds after it is
treated as a wedged worker, which is killed (SIGKILL), its requests failed as transient, and a new
worker started. A worker that dies is replaced the same way. The event loop only ever waits on
futures; reader threads move answers from the pipes onto it.

Per-BMC serialization and the minimum interval between commands live in the gateway
(provisiond.bmc); this driver sets ``min_interval`` from ``[drivers.ipmi]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from drivers.bmc import ipmi_worker
from drivers.bmc.base import (
    AuthError,
    BmcDriver,
    BmcIdentity,
    BmcTarget,
    BootDevice,
    BootSetting,
    PowerAction,
    PowerState,
    SystemInventory,
    Unsupported,
)
from provisiond.errors import BmcError, DeadlineExceeded

log = logging.getLogger("provisiond.drivers.ipmi")

DEFAULT_PORT = 623
# IANA enterprise numbers of common BMC vendors (for BmcIdentity.manufacturer)
IANA_VENDORS: Mapping[int, str] = {
    2: "IBM",
    11: "HPE",
    343: "Intel",
    674: "Dell",
    2011: "Huawei",
    4413: "Broadcom",
    5703: "NVIDIA",  # Mellanox
    7154: "Inspur",
    10876: "Supermicro",
    15370: "Gigabyte",
    19046: "Lenovo",
    20301: "IBM",
    28458: "Quanta",
    40092: "Wiwynn",
    42385: "Ampere",
    47196: "Inventec",
    49769: "Ampere",
}
_DEFAULTS: dict[str, Any] = {
    "workers": 4,
    "threads_per_worker": 64,
    "stall_grace": 5.0,
    "stuck_after": 90.0,
    "min_interval": 1.0,
    "command_timeout": 8.0,
    "power_poll": 1.0,
}


_STOP_WRITER = object()


@dataclass
class _Pending:
    future: asyncio.Future[Any]
    deadline: float  # monotonic; past it (+ grace) the worker is wedged
    what: str


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    conn: Connection
    pending: dict[int, _Pending] = field(default_factory=dict)
    dead: bool = False
    started: float = field(default_factory=time.monotonic)
    probe_id: int | None = None  # health probe in flight
    probe_sent: float = 0.0
    # the event loop never writes to the pipe itself: a worker that stops reading would fill
    # the socket buffer and block the loop (and with it the supervisor that would kill it)
    outbox: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)

    def send(self, msg: Any) -> None:
        if self.dead:
            raise OSError(f"IPMI worker {self.index} is gone")
        self.outbox.put(msg)

    def write_loop(self) -> None:
        """Writer thread: drains the outbox into the pipe until the worker is lost."""
        while True:
            msg = self.outbox.get()
            if msg is _STOP_WRITER:
                return
            try:
                self.conn.send(msg)
            except (OSError, ValueError):
                return


class WorkerPool:
    """Worker processes, one shard of BMCs each, supervised from the event loop."""

    def __init__(
        self,
        *,
        workers: int,
        threads: int,
        command_timeout: float,
        grace: float,
        stuck_after: float = 90.0,
    ) -> None:
        # a call inside pyghmi this long past its caller's deadline is stuck for good (pyghmi
        # gives up on a dead BMC well within it): its worker is replaced
        self.stuck_after = stuck_after
        self.size = workers
        self.threads = threads
        self.command_timeout = command_timeout
        self.grace = grace
        self._ids = itertools.count(1)
        self._workers: list[_Worker | None] = [None] * workers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self.restarts = 0
        self._closed = False
        self._spawned: list[subprocess.Popen[bytes]] = []

    def shard(self, key: str) -> int:
        return zlib.crc32(key.encode()) % self.size

    def _spawn(self, index: int) -> _Worker:
        # a plain child interpreter on one end of a socketpair: no multiprocessing bootstrap, so
        # nothing depends on how the daemon's own __main__ was started
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    ipmi_worker.__name__,
                    str(theirs.fileno()),
                    str(self.threads),
                    str(self.command_timeout),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            theirs.close()
        self._spawned = [p for p in self._spawned if p.poll() is None]  # reaped ones drop out
        self._spawned.append(proc)
        w = _Worker(index=index, proc=proc, conn=Connection(ours.detach()))
        threading.Thread(
            target=self._read, args=(w,), name=f"ipmi-reader-{index}", daemon=True
        ).start()
        threading.Thread(target=w.write_loop, name=f"ipmi-writer-{index}", daemon=True).start()
        return w

    def _read(self, w: _Worker) -> None:
        """Reader thread: answers from one worker's pipe onto the loop."""
        loop = self._loop
        assert loop is not None
        while True:
            try:
                msg = w.conn.recv()
            except (EOFError, OSError):
                with contextlib.suppress(RuntimeError):  # loop closed at shutdown
                    loop.call_soon_threadsafe(self._lost, w, "exited")
                return
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._answer, w, msg)

    def _answer(self, w: _Worker, msg: tuple[Any, ...]) -> None:
        if msg[0] == w.probe_id:
            w.probe_id = None
            io_idle, overdue, bmc = float(msg[2][0]), float(msg[2][1]), str(msg[2][2])
            if io_idle > self.grace:
                self._lost(w, f"stalled (pyghmi I/O made no progress for {io_idle:.1f}s)")
            elif overdue > self.stuck_after:
                # pyghmi gives up on a dead BMC within its own timeouts: a call still inside it
                # this long after its deadline is stuck for good, and would keep its BMC refused
                self._lost(w, f"stuck (a call to BMC {bmc} is {overdue:.0f}s past its deadline)")
            return
        p = w.pending.pop(msg[0], None)
        if p is None or p.future.done():
            return  # its caller gave up at the deadline; the late answer is dropped
        if msg[1] == "ok":
            p.future.set_result(msg[2])
        else:
            _, _, kind, message, transient = msg
            p.future.set_exception(_error(kind, message, transient))

    def _lost(self, w: _Worker, why: str) -> None:
        """A worker died or wedged: fail what it held, replace it."""
        if w.dead:
            return
        w.dead = True
        w.outbox.put(_STOP_WRITER)
        with contextlib.suppress(OSError, ValueError):
            w.proc.kill()
        # reap it (no zombie), off the loop: a SIGKILLed process exits at once
        threading.Thread(target=w.proc.wait, name=f"ipmi-reap-{w.index}", daemon=True).start()
        with contextlib.suppress(OSError):
            w.conn.close()
        for p in w.pending.values():
            if not p.future.done():
                p.future.set_exception(
                    BmcError(
                        f"IPMI worker {w.index} {why} during {p.what}; worker replaced, retry",
                        transient=True,
                    )
                )
        w.pending.clear()
        if self._workers[w.index] is w:
            self._workers[w.index] = None
        if not self._closed:
            self.restarts += 1
            log.warning(
                "IPMI worker %d %s; replacing it (restart #%d)", w.index, why, self.restarts
            )

    async def _ensure(self, index: int) -> _Worker:
        w = self._workers[index]
        if w is not None and not w.dead:
            return w
        async with self._start_lock:
            w = self._workers[index]
            if w is None or w.dead:
                self._loop = asyncio.get_running_loop()
                # spawning imports pyghmi in the child; do it off the loop
                w = await asyncio.to_thread(self._spawn, index)
                self._workers[index] = w
            if self._supervisor is None:
                self._supervisor = asyncio.create_task(self._supervise(), name="ipmi-supervisor")
            return w

    async def _supervise(self) -> None:
        """Every 0.25 s: a worker that exited is replaced; a worker whose pyghmi I/O loop has not
        turned for ``grace`` seconds, or that does not answer a health probe within ``grace``, is
        wedged: killed and replaced. A slow BMC is not a wedge (its own call just times out)."""
        while not self._closed:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for w in list(self._workers):
                if w is None or w.dead:
                    continue
                if w.proc.poll() is not None:
                    self._lost(w, f"died (exit code {w.proc.returncode})")
                    continue
                if w.probe_id is not None:
                    if now - w.probe_sent > self.grace + 1.0:
                        self._lost(w, f"stalled (no answer to a health probe in {self.grace:g}s)")
                    continue
                w.probe_id = next(self._ids)
                w.probe_sent = now
                try:
                    w.send((w.probe_id, "health", {}, {}))
                except (OSError, ValueError) as exc:
                    self._lost(w, f"pipe broke ({exc})")

    async def call(
        self, target: BmcTarget, op: str, args: dict[str, Any], *, seconds: float, what: str
    ) -> Any:
        w = await self._ensure(self.shard(target.key))
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        deadline = time.monotonic() + seconds
        w.pending[req_id] = _Pending(fut, deadline, what)
        t = {
            "address": target.address,
            "port": target.port or DEFAULT_PORT,
            "username": target.username,
            "password": target.password,
        }
        try:
            w.send((req_id, op, t, {**args, "_deadline": deadline}))
        except (OSError, ValueError) as exc:
            w.pending.pop(req_id, None)
            self._lost(w, f"pipe broke ({exc})")
            raise BmcError(f"IPMI worker {w.index} unavailable; retry", transient=True) from None
        try:
            async with asyncio.timeout(seconds):
                return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # the caller went away (the gateway's deadline, shutdown): nobody reads the answer
            fut.add_done_callback(_consume)
            w.pending.pop(req_id, None)
            raise
        except TimeoutError:
            # a late answer (or the worker's loss) completes the future with nobody listening
            fut.add_done_callback(_consume)
            w.pending.pop(req_id, None)
            raise DeadlineExceeded(
                f"BMC {target.key} (ipmi) {what}: no answer within {seconds:g}s"
            ) from None

    def worker_pid(self, key: str) -> int | None:
        w = self._workers[self.shard(key)]
        return w.proc.pid if w is not None and not w.dead else None

    async def close(self) -> None:
        self._closed = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        # a snapshot: the reader threads may mark a worker lost (and clear its slot) meanwhile
        current = [w for w in self._workers if w is not None]
        for w in current:
            if w.dead:
                continue
            with contextlib.suppress(OSError, ValueError):
                w.send(None)
        for w in current:
            # a worker exits at once on None; one that does not within 2 s is killed
            try:
                await asyncio.to_thread(w.proc.wait, 2.0)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    await asyncio.to_thread(w.proc.wait, 1.0)
            w.dead = True
            w.outbox.put(_STOP_WRITER)
            with contextlib.suppress(OSError):
                w.conn.close()
        for proc in self._spawned:  # replaced workers too: none left behind, not even a zombie
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    await asyncio.to_thread(proc.wait, 1.0)
        self._spawned.clear()


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _error(kind: str, message: str, transient: bool) -> BmcError:
    if kind == "bmc-auth":
        return AuthError(message)
    return BmcError(message, transient=transient)


class IpmiDriver(BmcDriver):
    name = "ipmi"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        o = {**_DEFAULTS, **self.options}
        self.min_interval = float(o["min_interval"])
        self.command_timeout = float(o["command_timeout"])
        self.power_poll = float(o["power_poll"])
        self.pool = WorkerPool(
            workers=int(o["workers"]),
            threads=int(o["threads_per_worker"]),
            command_timeout=self.command_timeout,
            grace=float(o["stall_grace"]),
            stuck_after=float(o["stuck_after"]),
        )

    def _budget(self, extra: float = 0.0) -> float:
        # a login (pyghmi gives up after ~5 s) plus one command, plus any power wait
        return 2 * self.command_timeout + extra

    async def _call(
        self, target: BmcTarget, op: str, what: str, extra: float = 0.0, **args: Any
    ) -> Any:
        return await self.pool.call(target, op, args, seconds=self._budget(extra), what=what)

    async def validate(self, target: BmcTarget) -> BmcIdentity:
        d = await self._call(target, "validate", "get device id")
        mfg = int(d["manufacturer_id"])
        return BmcIdentity(
            manufacturer=IANA_VENDORS.get(mfg, f"IANA {mfg}"),
            product=f"0x{int(d['product_id']):04x}",
            firmware=str(d["firmware"]),
            manufacturer_id=mfg,
            product_id=int(d["product_id"]),
            device_id=int(d["device_id"]),
        )

    async def get_power(self, target: BmcTarget) -> PowerState:
        return PowerState(await self._call(target, "get_power", "get power"))

    async def set_power(self, target: BmcTarget, *, action: PowerAction, wait: float = 0) -> None:
        await self._call(
            target,
            "set_power",
            f"power {action.value}",
            extra=wait,
            action=action.value,
            wait=wait,
            poll=self.power_poll,
        )

    async def set_boot_device(
        self, target: BmcTarget, *, device: BootDevice, persistent: bool = False, uefi: bool = True
    ) -> None:
        await self._call(
            target,
            "set_boot",
            f"set boot device {device.value}",
            device=device.value,
            persistent=persistent,
            uefi=uefi,
        )

    async def get_boot_device(self, target: BmcTarget) -> BootSetting:
        d = await self._call(target, "get_boot", "get boot device")
        return BootSetting(
            device=BootDevice(d["device"]),
            persistent=bool(d["persistent"]),
            uefi=bool(d["uefi"]),
            valid=bool(d["valid"]),
        )

    async def get_inventory(self, target: BmcTarget) -> SystemInventory:
        try:
            info: dict[str, str] = await self._call(target, "inventory", "read FRU")
        except BmcError as exc:
            if not exc.transient and "not present" in str(exc).lower():
                raise Unsupported(f"BMC {target.key}: no FRU 0 ({exc})") from None
            raise
        main = {
            "Manufacturer": "manufacturer",
            "Product name": "product",
            "Serial Number": "serial",
            "Model": "part_number",
        }
        return SystemInventory(
            manufacturer=info.get("Manufacturer", info.get("Board manufacturer", "")),
            product=info.get("Product name", info.get("Board product name", "")),
            serial=info.get("Serial Number", info.get("Board serial number", "")),
            part_number=info.get("Model", info.get("Board model", "")),
            extra={k: v for k, v in info.items() if k not in main},
        )

    async def close(self) -> None:
        await self.pool.close()
