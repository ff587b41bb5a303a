"""The DHCP server: asyncio UDP on port 67 (and 4011 in proxy mode), bound to one interface.

It decodes (pxe.dhcp_codec), asks the inventory about the MAC (an async ``lookup``), decides
(pxe.dhcp_policy) and sends. A malformed packet is dropped with a throttled log line; nothing a
client sends can raise out of the receive path. Broadcast replies leave through the bound
interface (SO_BINDTODEVICE), so several boot networks never see each other's answers.

``python -m pxe.dhcp_server --interface IF --server-address IP --mode authoritative|proxy
--reserve MAC=IP ...`` runs it standalone (tests and debugging; the daemon will embed it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pxe.dhcp_codec import Malformed, parse
from pxe.dhcp_policy import Ignore, NodeBoot, Offer, PolicyConfig, decide

log = logging.getLogger("provisiond.pxe.dhcp")

Lookup = Callable[[str], Awaitable[NodeBoot | None]]
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
RECV_BUFFER = 4 * 1024 * 1024
# answers being worked on at once; beyond it a datagram is dropped (clients retransmit)
MAX_IN_FLIGHT = 4096


class _Throttle:
    """At most one log line per ``every`` seconds per key, with the count of the ones skipped."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.last: dict[str, float] = {}
        self.skipped: dict[str, int] = {}

    def __call__(self, key: str, msg: str, *args: object, exc_info: bool = False) -> None:
        now = time.monotonic()
        if now - self.last.get(key, -1e9) >= self.every:
            skipped = self.skipped.pop(key, 0)
            more = f" ({skipped} more like it)" if skipped else ""
            log.warning(msg + more, *args, exc_info=exc_info)
            self.last[key] = now
        else:
            self.skipped[key] = self.skipped.get(key, 0) + 1


def open_socket(interface: str | None, port: int, address: str = "0.0.0.0") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    # a rack powering on sends ~1,000 DISCOVERs at once; the default buffer holds ~200
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECV_BUFFER)  # root: beyond rmem_max
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
    if interface:
        s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode() + b"\0")
    s.bind((address, port))
    s.setblocking(False)
    return s


class LoaderMemory:
    """Per-MAC boot stage: which exchange (xid) of a MAC was offered our loader, and when.

    An iPXE request from that MAC with another xid, within ``window`` seconds, comes from the
    loader we served: it gets its script URL. The same xid is the same exchange (DISCOVER, then
    REQUEST) and gets the same answer. Once the script is fetched the stage is forgotten, so the
    next boot starts again from the loader. Bounded: the oldest entries go beyond ``limit``."""

    def __init__(self, window: float = 300.0, limit: int = 100_000) -> None:
        self.window = window
        self.limit = limit
        self._seen: dict[str, tuple[int, float]] = {}

    def chained(self, mac: str, xid: int, now: float | None = None) -> bool:
        rec = self._seen.get(mac)
        if rec is None:
            return False
        now = time.monotonic() if now is None else now
        return rec[0] != xid and now - rec[1] < self.window

    def loader_offered(self, mac: str, xid: int, now: float | None = None) -> None:
        self._seen.pop(mac, None)  # re-insert: dict order is age order
        self._seen[mac] = (xid, time.monotonic() if now is None else now)
        while len(self._seen) > self.limit:
            self._seen.pop(next(iter(self._seen)))

    def forget(self, mac: str) -> None:
        self._seen.pop(mac, None)


Notify = Callable[[str, str], Awaitable[None]]


class DhcpServer:
    def __init__(
        self,
        config: PolicyConfig,
        lookup: Lookup,
        *,
        interface: str | None,
        memory: LoaderMemory | None = None,
        notify: Notify | None = None,
    ) -> None:
        self.config = config
        self.lookup = lookup
        self.interface = interface
        self.memory = memory or LoaderMemory()
        # called with (mac, what was offered) after an answer to a KNOWN node (events)
        self.notify = notify
        self.throttle = _Throttle()
        self.stats = {"received": 0, "malformed": 0, "ignored": 0, "answered": 0, "dropped": 0}
        self._transports: list[asyncio.DatagramTransport] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, ports: tuple[int, ...] | None = None) -> None:
        loop = asyncio.get_running_loop()
        wanted = ports or ((67, 4011) if self.config.mode == "proxy" else (67,))
        for port in wanted:
            sock = open_socket(self.interface, port)
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_Protocol, self, port), sock=sock
            )
            self._transports.append(transport)
        log.info("dhcp: %s mode on %s, ports %s", self.config.mode, self.interface or "all", wanted)

    def received(
        self, data: bytes, addr: tuple[str, int], transport: Any, local_port: int = 67
    ) -> None:
        self.stats["received"] += 1
        try:
            req = parse(data)
        except Malformed as exc:
            self.stats["malformed"] += 1
            self.throttle(
                "malformed", "dhcp: dropped a malformed packet from %s:%d: %s", *addr, exc
            )
            return
        if len(self._tasks) >= MAX_IN_FLIGHT:  # a storm beyond what lookups keep up with
            self.stats["dropped"] += 1
            self.throttle(
                "busy", "dhcp: %d answers in flight; dropped one from %s", MAX_IN_FLIGHT, req.mac
            )
            return
        task = asyncio.create_task(self._answer(req, addr, transport, local_port))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(
        self, req: Any, addr: tuple[str, int], transport: Any, local_port: int
    ) -> None:
        try:
            node = await self.lookup(req.mac)
            chained = self.memory.chained(req.mac, req.xid)
            decision = decide(req, node, self.config, chained=chained)
            if isinstance(decision, Ignore):
                self.stats["ignored"] += 1
                log.debug("dhcp: %s ignored: %s", req.mac, decision.reason)
                return
            assert isinstance(decision, Offer)
            dest = decision.destination
            if local_port == 4011:  # PXE boot-server request: answer where it came from
                dest = addr
            if decision.gives_loader and req.is_netboot:
                self.memory.loader_offered(req.mac, req.xid)
            transport.sendto(decision.reply.encode(), dest)
            self.stats["answered"] += 1
            log.info("dhcp: %s", decision.reason)
            if self.notify is not None and node is not None:
                await self.notify(req.mac, decision.reason)
        except Exception:  # one client's trouble never stops the server
            self.throttle("error", "dhcp: answering %s failed", req.mac, exc_info=True)

    async def close(self) -> None:
        for t in self._transports:
            t.close()
        for task in list(self._tasks):
            task.cancel()
        self._transports.clear()


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: DhcpServer, port: int) -> None:
        self.server = server
        self.port = port
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.server.received(data, (str(addr[0]), int(addr[1])), self.transport, self.port)

    def error_received(self, exc: Exception) -> None:
        self.server.throttle("socket", "dhcp: socket error: %s", exc)


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pxe.dhcp_server")
    p.add_argument("--interface", required=True)
    p.add_argument("--server-address", required=True)
    p.add_argument("--mode", choices=("proxy", "authoritative"), default="authoritative")
    p.add_argument("--http-base-url", default="")
    p.add_argument("--reserve", action="append", default=[], metavar="MAC=IP")
    p.add_argument("--pool", default="", help="comma-separated discovery addresses")
    p.add_argument("--router")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    reservations: dict[str, NodeBoot] = {}
    for spec in a.reserve:
        mac, _, ip = spec.partition("=")
        reservations[mac.lower()] = NodeBoot(name=mac.lower(), ip=ip or None)
    config = PolicyConfig(
        mode=a.mode,
        server_address=a.server_address,
        http_base_url=a.http_base_url or f"http://{a.server_address}:8750",
        router=a.router,
        discovery_pool=tuple(x for x in a.pool.split(",") if x),
    )

    async def lookup(mac: str) -> NodeBoot | None:
        return reservations.get(mac)

    async def run() -> None:
        server = DhcpServer(config, lookup, interface=a.interface)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("dhcp server ready", flush=True)
        await stop.wait()
        await server.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
