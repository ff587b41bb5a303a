"""The TFTP server of the PXE stack: read-only, confined to one root, off the asyncio loop.

It serves the boot loaders (Debian's ipxe package: undionly.kpxe, ipxe.efi, snponly.efi) and
per-node generated files (the ``dynamic`` callable, asked first). Requests are decoded with
tftpy's packet classes; the transfers are our own (tftpy's ``TftpServer.listen`` dies for every
client on one client's exception, and its confinement follows symlinks out of the root).

Threads: I/O threads (2 by default) each own an epoll and their transfers (one connected UDP
socket per transfer, the transfer's own TID as RFC 1350 asks; the first thread also reads the
listener), and a small pool resolves requests (the ``dynamic`` callable, ``realpath`` checks,
reading files) so a slow lookup never stalls the transfers in flight. Options: blksize
(RFC 2348), tsize and timeout (RFC 2349), windowsize (RFC 7440).

It must never: write a file (WRQ is refused), serve a path that resolves outside the root
(``..``, absolute paths, symlinks pointing out), let one transfer's failure reach another, or
loop without a bound (retries, transfer lifetime, table sizes are all capped).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import queue
import select
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tftpy.TftpPacketFactory import TftpPacketFactory  # type: ignore[import-untyped]
from tftpy.TftpPacketTypes import (  # type: ignore[import-untyped]
    TftpPacketOACK,
    TftpPacketRRQ,
    TftpPacketWRQ,
)

log = logging.getLogger("provisiond.pxe.tftp")

Addr = tuple[str, int]
Dynamic = Callable[[str, Addr], bytes | None]
OnSent = Callable[[str, Addr, int], None]

SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux value; Python 3.11 does not export it

OP_RRQ, OP_WRQ, OP_DATA, OP_ACK, OP_ERROR, OP_OACK = 1, 2, 3, 4, 5, 6
ERR_UNDEFINED, ERR_NOT_FOUND, ERR_ACCESS, ERR_ILLEGAL, ERR_OPTIONS = 0, 1, 2, 4, 8

DEFAULT_BLKSIZE = 512
MIN_BLKSIZE, MAX_BLKSIZE = 8, 65464  # RFC 2348
MAX_WINDOWSIZE = 64  # RFC 7440 allows 65535; more than this only floods a lossy boot network
DEFAULT_TIMEOUT_S = 1.0
MAX_RETRIES = 5  # retransmissions of one window before the transfer is given up
MAX_TRANSFER_S = 900.0  # a crawling client is cut off after this, progress or not
MAX_ACTIVE = 2048  # transfers at once (each holds a socket); beyond it requests are refused
MAX_PENDING = 512  # requests being resolved at once; beyond it they are dropped (clients retry)
MAX_JUNK = 200  # stray packets one transfer tolerates before it is abandoned
CACHE_FILE_MAX = 64 << 20  # files up to this size are kept in memory, shared by transfers
CACHE_TOTAL_MAX = 256 << 20
PREBUILD_MAX = 16 << 20  # cached files up to this size keep their DATA packets ready-made
# what PXE ROMs, iPXE, tftp-hpa and atftp ask for (Ethernet MTU 1500 less headers, and less VLAN
# or tunnel overheads); any other size is sent as slices of the file
PREBUILT_BLKSIZES = frozenset({512, 1024, 1408, 1428, 1432, 1456, 1468})
MAX_BLOCKS = 1 << 32  # with block-number rollover; larger files are refused
RESOLVERS = 4
IO_THREADS = min(2, os.cpu_count() or 1)
SCAN_EVERY_S = 0.05  # how often timeouts are checked
THROTTLE_KEYS = 4096

_DATA_HDR = [struct.pack("!HH", OP_DATA, n) for n in range(65536)]


class _Throttle:
    """At most ``burst`` warnings per ``every`` seconds per key (a client and a kind), then one
    line with the count of the ones skipped; the key table is bounded."""

    def __init__(self, every: float = 10.0, burst: int = 5) -> None:
        self.every = every
        self.burst = burst
        self.windows: collections.OrderedDict[str, tuple[float, int]] = collections.OrderedDict()
        self.skipped: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, key: str, msg: str, *args: object, exc_info: bool = False) -> None:
        with self.lock:
            line = self._admit(key, msg)
        if line is not None:
            log.warning(line, *args, exc_info=exc_info)

    def _admit(self, key: str, msg: str) -> str | None:
        now = time.monotonic()
        start, count = self.windows.get(key, (now, 0))
        if now - start >= self.every:
            start, count = now, 0
        if count >= self.burst:
            self.skipped[key] = self.skipped.get(key, 0) + 1
            return None
        skipped = self.skipped.pop(key, 0)
        self.windows[key] = (start, count + 1)
        self.windows.move_to_end(key)
        while len(self.windows) > THROTTLE_KEYS:
            old, _ = self.windows.popitem(last=False)
            self.skipped.pop(old, None)
        return msg + (f" ({skipped} more like it)" if skipped else "")


# ----------------------------------------------------------------------------- pure parts


class Refused(Exception):
    """A request path that may never be served (answered with error 2, Access violation)."""


def normalize_path(raw: str) -> str:
    """The relative path a client asked for, or Refused: '\\' counts as '/', '.' and empty
    parts go; '..', absolute paths, drive letters and control characters are refused."""
    if not raw:
        raise Refused("empty path")
    if any(ord(c) < 0x20 or c == "\x7f" for c in raw):
        raise Refused("control character in path")
    path = raw.replace("\\", "/")
    if path.startswith("/"):
        raise Refused("absolute path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        raise Refused("no file name")
    if ".." in parts:
        raise Refused("'..' in path")
    if ":" in parts[0]:
        raise Refused("drive letter or URL in path")
    return "/".join(parts)


def confine(root: Path, rel: str) -> Path:
    """The real path of ``rel`` under ``root`` (symlinks resolved), or Refused when it resolves
    outside the root. ``root`` must already be a real path."""
    real = Path(os.path.realpath(root / rel))
    if real != root and root not in real.parents:
        raise Refused("resolves outside the root")
    return real


@dataclass(frozen=True)
class Options:
    blksize: int = DEFAULT_BLKSIZE
    windowsize: int = 1
    timeout: float = DEFAULT_TIMEOUT_S
    acked: tuple[tuple[str, str], ...] = ()  # what the OACK answers; empty: no OACK


def negotiate(requested: dict[str, str], size: int) -> Options:
    """The options we accept out of a request's, RFC 2347: unknown or malformed ones are left
    out of the OACK (the client then runs without them), never an error."""
    blksize, window, timeout = DEFAULT_BLKSIZE, 1, DEFAULT_TIMEOUT_S
    acked: list[tuple[str, str]] = []
    for name, value in requested.items():
        try:
            n = int(value)
        except ValueError:
            continue
        if name == "blksize" and n >= MIN_BLKSIZE:
            blksize = min(n, MAX_BLKSIZE)
            acked.append((name, str(blksize)))
        elif name == "tsize" and n == 0:
            acked.append((name, str(size)))
        elif name == "timeout" and 1 <= n <= 255:
            timeout = float(n)
            acked.append((name, str(n)))
        elif name == "windowsize" and n >= 1:
            window = min(n, MAX_WINDOWSIZE)
            acked.append((name, str(window)))
    return Options(blksize, window, timeout, tuple(acked))


def error_packet(code: int, message: str) -> bytes:
    return struct.pack("!HH", OP_ERROR, code) + message.encode("ascii", "replace") + b"\0"


def oack_packet(acked: tuple[tuple[str, str], ...]) -> bytes:
    pkt = TftpPacketOACK()
    pkt.options = dict(acked)
    data: bytes = pkt.encode().buffer
    return data


def netascii(data: bytes) -> bytes:
    return data.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")


# ----------------------------------------------------------------------------- file sources


class _Source:
    """Bytes of one file to send, by block."""

    size: int

    def block(self, index: int, blksize: int) -> bytes | memoryview:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _Memory(_Source):
    """Bytes in memory. A cached file also keeps its DATA packets ready-made for the last
    blksize asked (a rack boots with one client build, so one blksize): no copy per send."""

    def __init__(self, data: bytes, *, shared: bool = False) -> None:
        self.view = memoryview(data)
        self.size = len(data)
        self.shared = shared and self.size <= PREBUILD_MAX
        self._lock = threading.Lock()
        self._packets: tuple[int, list[bytes]] | None = None

    def packets(self, blksize: int) -> list[bytes] | None:
        # only the block sizes real clients ask for get ready-made packets: a client cycling
        # odd sizes would otherwise make every transfer hold a copy of the file of its own
        if not self.shared or blksize not in PREBUILT_BLKSIZES:
            return None
        with self._lock:
            if self._packets is not None and self._packets[0] == blksize:
                return self._packets[1]
            view, hdr = self.view, _DATA_HDR
            built = [
                hdr[(i + 1) & 0xFFFF] + view[i * blksize : (i + 1) * blksize]
                for i in range(self.size // blksize + 1)
            ]
            self._packets = (blksize, built)
            return built

    def block(self, index: int, blksize: int) -> bytes | memoryview:
        start = (index - 1) * blksize
        return self.view[start : start + blksize]


class _FileFd(_Source):
    """A file too large to keep in memory, read with pread at every (re)send."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size

    def block(self, index: int, blksize: int) -> bytes | memoryview:
        return os.pread(self.fd, blksize, (index - 1) * blksize)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class _FileCache:
    """Boot loaders fetched by a whole rack at once are read once: files by (device, inode,
    size, mtime), least recently used dropped beyond CACHE_TOTAL_MAX."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: collections.OrderedDict[tuple[int, int, int, int], _Memory] = (
            collections.OrderedDict()
        )
        self.total = 0

    def get(self, key: tuple[int, int, int, int]) -> _Memory | None:
        with self.lock:
            data = self.items.get(key)
            if data is not None:
                self.items.move_to_end(key)
            return data

    def put(self, key: tuple[int, int, int, int], data: _Memory) -> None:
        with self.lock:
            if key in self.items:
                return
            self.items[key] = data
            self.total += self.cost(data)
            while self.total > CACHE_TOTAL_MAX and self.items:
                _, old = self.items.popitem(last=False)
                self.total -= self.cost(old)

    @staticmethod
    def cost(data: _Memory) -> int:
        return data.size * 2 if data.shared else data.size  # with its ready-made packets


# ----------------------------------------------------------------------------- transfers


@dataclass
class _Request:
    """A read request between the listener and the resolver pool."""

    client: Addr
    local_ip: str
    path: str  # normalized
    raw_path: str
    mode: str
    options: dict[str, str]


@dataclass
class _Resolved:
    request: _Request
    source: _Source | None = None
    error: tuple[int, str] | None = None  # (code, message) answered instead
    refused_why: str | None = None


class _Transfer:
    __slots__ = (
        "acked",
        "blksize",
        "client",
        "deadline",
        "expires",
        "junk",
        "last_block",
        "opts",
        "packets",
        "path",
        "retries",
        "sent_upto",
        "sock",
        "source",
        "timeout",
        "window",
    )

    def __init__(
        self, sock: socket.socket, client: Addr, path: str, source: _Source, opts: Options
    ) -> None:
        self.sock = sock
        self.client = client
        self.path = path
        self.source = source
        self.opts = opts
        self.packets = source.packets(opts.blksize) if isinstance(source, _Memory) else None
        self.blksize = opts.blksize
        self.window = opts.windowsize
        self.timeout = opts.timeout
        # the last block is short (possibly empty): a size that is a multiple of blksize
        # ends with an empty block
        self.last_block = source.size // self.blksize + 1
        self.acked = 0  # highest block acknowledged (absolute count, not the 16-bit number)
        self.sent_upto = 0  # highest block sent
        self.retries = 0
        self.junk = 0
        now = time.monotonic()
        self.deadline = now + self.timeout
        self.expires = now + MAX_TRANSFER_S


class TftpService:
    """A read-only TFTP server on ``host:port`` serving ``root`` and ``dynamic`` files.

    ``dynamic(path, client)`` is asked first for every read request with the normalized relative
    path (already checked for '..' and absolute paths); bytes are served, None falls through to
    ``root``. It runs on a resolver thread, ``on_sent(path, client, nbytes)`` on an I/O thread:
    keep both quick; their exceptions are logged, never raised into the service.

    ``io_threads`` (settable before ``start``) I/O threads share the transfers, a client (address
    and port) always on the same one. Python holds the GIL only between system calls, and the
    kernel's per-packet work is most of the cost, so a second thread helps on 2 CPUs; a fourth
    did not (docs/benchmarks.md, "TFTP storm"). Default: 2, or 1 on a single CPU.
    """

    def __init__(
        self,
        root: Path,
        *,
        host: str = "0.0.0.0",
        port: int = 69,
        dynamic: Dynamic | None = None,
        on_sent: OnSent | None = None,
        interface: str | None = None,
    ) -> None:
        self.root = Path(os.path.realpath(root))
        self.host = host
        self._want_port = port
        self.dynamic = dynamic
        self.on_sent = on_sent
        self.interface = interface
        self.io_threads = IO_THREADS  # may be changed before start()
        self.stats: dict[str, int] = {
            "requests": 0,
            "sent": 0,
            "bytes": 0,
            "failed": 0,
            "aborted": 0,
            "refused": 0,
            "not_found": 0,
            "active": 0,
            "malformed": 0,
        }
        self._stats_lock = threading.Lock()
        self._throttle = _Throttle()
        self._factory = TftpPacketFactory()
        self._cache = _FileCache()
        self._listener: socket.socket | None = None
        self._workers: list[_Worker] = []
        self._pool: ThreadPoolExecutor | None = None
        self._pending: set[Addr] = set()
        self._pending_lock = threading.Lock()
        self._stopping = threading.Event()
        self._port = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> None:
        if self._workers:
            raise RuntimeError("TftpService already started")
        where = f"{self.host}:{self._want_port}"
        if self.interface:
            where += f" on {self.interface}"
        try:
            listener = self._udp_socket()
        except OSError as exc:
            raise OSError(exc.errno, f"TFTP cannot open a socket for {where}: {exc}") from exc
        try:
            listener.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            listener.bind((self.host, self._want_port))
        except OSError as exc:
            listener.close()
            raise OSError(exc.errno, f"TFTP cannot bind {where}: {exc.strerror or exc}") from exc
        self._listener = listener
        self._port = listener.getsockname()[1]
        self._stopping.clear()
        self._pool = ThreadPoolExecutor(RESOLVERS, thread_name_prefix="tftp-resolve")
        self._workers = [_Worker(self, i) for i in range(max(1, min(self.io_threads, 8)))]
        self._workers[0].epoll.register(listener.fileno(), select.EPOLLIN)
        for w in self._workers:
            w.thread.start()
        log.info(
            "tftp: serving %s on %s:%d (%d I/O threads)",
            self.root,
            self.host,
            self._port,
            len(self._workers),
        )

    def stop(self, timeout: float = 5.0) -> None:
        if not self._workers:
            return
        self._stopping.set()
        for w in self._workers:
            w.wake()
        end = time.monotonic() + timeout
        for w in self._workers:
            w.thread.join(max(0.0, end - time.monotonic()))
            if w.thread.is_alive():
                log.error("tftp: I/O thread %s did not stop within %.1f s", w.thread.name, timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        for w in self._workers:
            w.close()
        self._workers = []
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._pending_lock:
            self._pending.clear()
        self.stats["active"] = 0

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def _set_active(self) -> None:
        with self._stats_lock:
            self.stats["active"] = sum(len(w.transfers) for w in self._workers)

    def _udp_socket(self) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setblocking(False)
            if self.interface:
                s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.interface.encode() + b"\0")
        except OSError:
            s.close()
            raise
        return s

    def _worker_for(self, client: Addr) -> _Worker:
        return self._workers[hash(client) % len(self._workers)]

    # ------------------------------------------------------------------ requests (worker 0)

    def _on_listener_readable(self) -> None:
        assert self._listener is not None
        for _ in range(64):  # bounded: the transfers get their turn
            try:
                data, ancdata, _flags, addr = self._listener.recvmsg(65536, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._throttle("listener", "tftp: receive error on the listener: %s", exc)
                return
            local_ip = self.host
            for level, kind, cdata in ancdata:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(cdata) >= 12:
                    local_ip = socket.inet_ntoa(cdata[4:8])  # ipi_spec_dst: where to answer from
            try:
                self._on_request(data, (addr[0], addr[1]), local_ip)
            except Exception:
                self._throttle(
                    f"req-bug:{addr[0]}",
                    "tftp: handling a request from %s failed",
                    addr[0],
                    exc_info=True,
                )

    def _on_request(self, data: bytes, client: Addr, local_ip: str) -> None:
        opcode = int.from_bytes(data[:2], "big") if len(data) >= 2 else 0
        if opcode not in (OP_RRQ, OP_WRQ):
            self._count("malformed")
            self._throttle(
                f"stray:{client[0]}",
                "tftp: %s sent a non-request packet (opcode %d) to the listener; dropped",
                client[0],
                opcode,
            )
            return
        try:
            pkt = self._factory.parse(data)
        except Exception as exc:
            self._count("malformed")
            self._throttle(
                f"malformed:{client[0]}", "tftp: malformed request from %s: %s", client[0], exc
            )
            self._send_error(client, local_ip, ERR_ILLEGAL, "Illegal TFTP operation")
            return
        self._count("requests")
        if isinstance(pkt, TftpPacketWRQ):
            self._count("refused")
            self._throttle(
                f"wrq:{client[0]}",
                "tftp: write request from %s:%d for %r refused",
                client[0],
                client[1],
                pkt.filename,
            )
            self._send_error(client, local_ip, ERR_ACCESS, "Access violation: read-only server")
            return
        assert isinstance(pkt, TftpPacketRRQ)
        raw: str = pkt.filename
        mode: str = pkt.mode
        if mode not in ("octet", "netascii"):
            self._count("malformed")
            self._send_error(client, local_ip, ERR_ILLEGAL, f"Unsupported mode {mode[:20]!r}")
            return
        try:
            path = normalize_path(raw)
        except Refused as why:
            self._refuse(client, local_ip, raw, str(why))
            return
        worker = self._worker_for(client)
        if client in worker.by_client:
            return  # a retransmitted request: the transfer under way answers it
        with self._pending_lock:
            if client in self._pending:
                return  # the same, still being resolved
            if len(self._pending) >= MAX_PENDING:
                self._throttle("busy", "tftp: too many requests being resolved; dropping some")
                return
            self._pending.add(client)
        if self.stats["active"] >= MAX_ACTIVE:
            with self._pending_lock:
                self._pending.discard(client)
            self._throttle("full", "tftp: %d transfers active; refusing more", MAX_ACTIVE)
            self._send_error(client, local_ip, ERR_UNDEFINED, "Server busy, try again")
            return
        options = {str(k).lower(): str(v) for k, v in pkt.options.items()}
        req = _Request(client, local_ip, path, raw, mode, options)
        assert self._pool is not None
        self._pool.submit(self._resolve_job, req, worker)

    def _refuse(self, client: Addr, local_ip: str, raw: str, why: str) -> None:
        self._count("refused")
        self._throttle(
            f"refused:{client[0]}", "tftp: refused %r to %s:%d: %s", raw, client[0], client[1], why
        )
        self._send_error(client, local_ip, ERR_ACCESS, "Access violation")

    def _send_error(self, client: Addr, local_ip: str, code: int, message: str) -> None:
        """An error to a request comes from a fresh port, as a transfer's first packet would."""
        try:
            s = self._udp_socket()
        except OSError:
            return
        with s:
            try:
                s.bind((local_ip, 0))
                s.sendto(error_packet(code, message), client)
            except OSError as exc:
                self._throttle(f"send:{client[0]}", "tftp: cannot answer %s: %s", client[0], exc)

    # ------------------------------------------------------------------ resolving (pool)

    def _resolve_job(self, req: _Request, worker: _Worker) -> None:
        try:
            res = self._resolve(req)
        except Exception:
            log.exception("tftp: resolving %r for %s failed", req.raw_path, req.client[0])
            res = _Resolved(req, error=(ERR_UNDEFINED, "Internal error"))
        worker.resolved.put(res)
        worker.wake()

    def _resolve(self, req: _Request) -> _Resolved:
        if self.dynamic is not None:
            try:
                data = self.dynamic(req.path, req.client)
            except Exception:
                log.exception("tftp: dynamic lookup of %r for %s failed", req.path, req.client[0])
                return _Resolved(req, error=(ERR_UNDEFINED, "Internal error"))
            if data is not None:
                return self._memory_source(req, bytes(data))
        try:
            real = confine(self.root, req.path)
        except Refused as why:
            return _Resolved(req, refused_why=str(why))
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return _Resolved(req, error=(ERR_NOT_FOUND, "File not found"))
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # swapped for a symlink since realpath
                return _Resolved(req, refused_why="symlink")
            if exc.errno in (errno.EACCES, errno.EPERM):
                return _Resolved(req, refused_why="permission denied")
            return _Resolved(req, error=(ERR_NOT_FOUND, "File not found"))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return _Resolved(req, error=(ERR_NOT_FOUND, "File not found"))
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            cached = self._cache.get(key)
            if cached is None and st.st_size <= CACHE_FILE_MAX:
                cached = _Memory(_read_all(fd, st.st_size), shared=True)
                self._cache.put(key, cached)
            if cached is not None:
                if req.mode == "netascii":
                    return self._memory_source(req, bytes(cached.view))
                # builds the ready-made packets here, not on the I/O thread
                cached.packets(negotiate(req.options, cached.size).blksize)
                return _Resolved(req, source=cached)
            if req.mode == "netascii":
                return _Resolved(req, error=(ERR_UNDEFINED, "netascii not offered for large files"))
            src = _FileFd(fd, st.st_size)
            fd = -1  # the transfer owns it now
            return _Resolved(req, source=src)
        finally:
            if fd >= 0:
                os.close(fd)

    @staticmethod
    def _memory_source(req: _Request, data: bytes) -> _Resolved:
        if req.mode == "netascii":
            data = netascii(data)
        return _Resolved(req, source=_Memory(data))


class _Worker:
    """One I/O thread: its epoll, its transfers (one connected UDP socket each) and the
    retransmission timers. Worker 0 also reads the listener."""

    def __init__(self, svc: TftpService, index: int) -> None:
        self.svc = svc
        self.epoll = select.epoll()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.epoll.register(self.wake_r.fileno(), select.EPOLLIN)
        self.resolved: queue.SimpleQueue[_Resolved] = queue.SimpleQueue()
        self.transfers: dict[int, _Transfer] = {}
        self.by_client: dict[Addr, _Transfer] = {}
        self.now = time.monotonic()  # of the current poll round: timers need no finer clock
        self.thread = threading.Thread(target=self.run, name=f"tftp-io-{index}", daemon=True)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self.wake_w.send(b"\0")

    def close(self) -> None:
        """After the thread ended (or gave up on): every transfer's socket and file closed."""
        for t in list(self.transfers.values()):
            self.end(t)
        self.epoll.close()
        self.wake_r.close()
        self.wake_w.close()

    def run(self) -> None:
        svc, epoll, transfers = self.svc, self.epoll, self.transfers
        listener_fd = svc._listener.fileno() if svc._listener is not None else -1
        wake_fd = self.wake_r.fileno()
        next_scan = time.monotonic() + SCAN_EVERY_S
        while not svc._stopping.is_set():
            try:
                events = epoll.poll(SCAN_EVERY_S, 1024)
                self.now = time.monotonic()
                for fd, _ in events:
                    t = transfers.get(fd)
                    if t is not None:
                        self.on_readable(t)
                    elif fd == listener_fd:
                        svc._on_listener_readable()
                    elif fd == wake_fd:
                        self.drain_wake()
                self.start_resolved()
                now = self.now
                if now >= next_scan:
                    next_scan = now + SCAN_EVERY_S
                    self.scan_timeouts(now)
            except Exception:
                # a bug of ours in one packet's handling must not end the service
                svc._throttle("loop", "tftp: unexpected error in the I/O loop", exc_info=True)
                time.sleep(0.01)

    def drain_wake(self) -> None:
        for _ in range(64):
            try:
                if not self.wake_r.recv(4096):
                    return
            except OSError:
                return

    def start_resolved(self) -> None:
        svc = self.svc
        for _ in range(MAX_PENDING):
            try:
                res = self.resolved.get_nowait()
            except queue.Empty:
                return
            req = res.request
            try:
                self.start_one(res)
            finally:
                # after begin() recorded the transfer: a retransmitted request finds one of them
                with svc._pending_lock:
                    svc._pending.discard(req.client)

    def start_one(self, res: _Resolved) -> None:
        svc, req = self.svc, res.request
        if res.refused_why is not None:
            svc._refuse(req.client, req.local_ip, req.raw_path, res.refused_why)
        elif res.error is not None or res.source is None:
            code, message = res.error or (ERR_UNDEFINED, "Internal error")
            if code == ERR_NOT_FOUND:
                svc._count("not_found")
                log.info("tftp: %s:%d asked for %r: not found", *req.client, req.raw_path)
            else:
                svc._count("failed")
            svc._send_error(req.client, req.local_ip, code, message)
        else:
            self.begin(req, res.source)

    def begin(self, req: _Request, source: _Source) -> None:
        svc = self.svc
        opts = negotiate(req.options, source.size)
        if source.size // opts.blksize + 1 > MAX_BLOCKS:
            source.close()
            svc._count("failed")
            svc._send_error(req.client, req.local_ip, ERR_UNDEFINED, "File too large")
            return
        try:
            sock = svc._udp_socket()
        except OSError as exc:
            source.close()
            svc._count("failed")
            svc._throttle("socket", "tftp: no socket for a transfer: %s", exc)
            return
        try:
            sock.bind((req.local_ip, 0))
            sock.connect(req.client)
        except OSError as exc:
            sock.close()
            source.close()
            svc._count("failed")
            svc._throttle(f"send:{req.client[0]}", "tftp: cannot reach %s: %s", req.client[0], exc)
            return
        t = _Transfer(sock, req.client, req.path, source, opts)
        self.epoll.register(sock.fileno(), select.EPOLLIN)
        self.transfers[sock.fileno()] = t
        self.by_client[req.client] = t
        svc._set_active()
        log.debug("tftp: %s:%d <- %r (%d bytes, %s)", *req.client, req.path, source.size, opts)
        if opts.acked:
            self.send(t, oack_packet(opts.acked))
        else:
            self.send_window(t)

    def send(self, t: _Transfer, packet: bytes) -> None:
        try:
            t.sock.send(packet)
        except (BlockingIOError, InterruptedError):
            pass  # the socket buffer is full: the retransmission timer resends
        except OSError as exc:
            self.fail(t, f"send failed: {exc}")
        t.deadline = self.now + t.timeout

    def send_window(self, t: _Transfer) -> None:
        """Send the blocks after the last acknowledged one, up to the window."""
        end = min(t.acked + t.window, t.last_block)
        block = t.acked + 1
        sock, src, bs, packets = t.sock, t.source, t.blksize, t.packets
        while block <= end:
            try:
                if packets is not None:
                    sock.send(packets[block - 1])
                else:
                    sock.send(_DATA_HDR[block & 0xFFFF] + src.block(block, bs))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self.fail(t, f"send failed: {exc}")
                return
            block += 1
        if block - 1 > t.sent_upto:
            t.sent_upto = block - 1
        t.deadline = self.now + t.timeout

    def on_readable(self, t: _Transfer) -> None:
        # one datagram per readiness event: epoll is level-triggered, so another one waiting
        # comes back at the next poll, and no recv ends in BlockingIOError (costly on the
        # hot path: one ACK per block)
        try:
            data = t.sock.recv(1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # ICMP port unreachable: the client is gone
            self.fail(t, f"client gone ({exc.strerror or exc})", quiet=True)
            return
        if len(data) >= 4 and data[0] == 0:
            if data[1] == OP_ACK:
                self.on_ack(t, (data[2] << 8) | data[3])
                return
            if data[1] == OP_ERROR:
                self.on_client_error(t, (data[2] << 8) | data[3], data[4:])
                return
        self.junk(t, "unexpected packet")

    def on_ack(self, t: _Transfer, number: int) -> None:
        # the ACK's 16-bit number names a block in (acked, sent_upto]; ACK 0 acknowledges the
        # OACK. Duplicates and stale ACKs are ignored (never resent on: Sorcerer's Apprentice).
        if t.sent_upto == 0 and t.acked == 0 and number == 0 and t.opts.acked:
            t.retries = 0
            self.send_window(t)
            return
        delta = (number - t.acked) & 0xFFFF
        if delta == 0 or delta > t.sent_upto - t.acked:
            if (t.acked - number) & 0xFFFF > t.window + 1:
                self.junk(t, f"ACK for block {number} never sent")
            return
        t.acked += delta
        t.retries = 0
        if t.acked >= t.last_block:
            self.complete(t)
            return
        # the next window starts after the acknowledged block; with windowsize > 1 a partial
        # ACK means the rest of the window was lost and is resent (RFC 7440)
        self.send_window(t)

    def on_client_error(self, t: _Transfer, code: int, rest: bytes) -> None:
        message = rest.split(b"\0", 1)[0].decode("ascii", "replace")[:100]
        if t.sent_upto == 0 and code in (ERR_UNDEFINED, ERR_OPTIONS):
            # a PXE ROM asking for tsize only, then aborting: normal, not a failure
            self.svc._count("aborted")
            log.debug("tftp: %s:%d aborted %r after the OACK: %s", *t.client, t.path, message)
            self.end(t)
            return
        self.fail(t, f"client sent error {code} {message!r}", quiet=True)

    def junk(self, t: _Transfer, what: str) -> None:
        t.junk += 1
        self.svc._throttle(f"junk:{t.client[0]}", "tftp: %s:%d sent %s", *t.client, what)
        if t.junk > MAX_JUNK:
            self.fail(t, "too many stray packets")

    def scan_timeouts(self, now: float) -> None:
        for t in list(self.transfers.values()):
            if now >= t.expires:
                self.fail(t, f"still running after {MAX_TRANSFER_S:.0f} s")
            elif now >= t.deadline:
                t.retries += 1
                if t.retries > MAX_RETRIES:
                    self.fail(t, f"no answer after {MAX_RETRIES} retransmissions")
                elif t.sent_upto == 0 and t.opts.acked:
                    self.send(t, oack_packet(t.opts.acked))
                else:
                    self.send_window(t)

    def complete(self, t: _Transfer) -> None:
        svc = self.svc
        size = t.source.size
        with svc._stats_lock:
            svc.stats["sent"] += 1
            svc.stats["bytes"] += size
        self.end(t)
        log.debug("tftp: %s:%d got %r (%d bytes)", *t.client, t.path, size)
        if svc.on_sent is not None:
            try:
                svc.on_sent(t.path, t.client, size)
            except Exception:
                svc._throttle("on_sent", "tftp: the on_sent callback failed", exc_info=True)

    def fail(self, t: _Transfer, why: str, *, quiet: bool = False) -> None:
        if t.sock.fileno() < 0:
            return
        self.svc._count("failed")
        if not quiet:
            with contextlib.suppress(OSError):
                t.sock.send(error_packet(ERR_UNDEFINED, why[:100]))
        self.svc._throttle(
            f"fail:{t.client[0]}",
            "tftp: transfer of %r to %s:%d failed at block %d/%d: %s",
            t.path,
            *t.client,
            t.acked,
            t.last_block,
            why,
        )
        self.end(t)

    def end(self, t: _Transfer) -> None:
        fd = t.sock.fileno()
        if fd < 0:
            return
        with contextlib.suppress(OSError, ValueError):
            self.epoll.unregister(fd)
        self.transfers.pop(fd, None)
        if self.by_client.get(t.client) is t:
            del self.by_client[t.client]
        t.sock.close()
        t.source.close()
        self.svc._set_active()


def _read_all(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left > 0:  # bounded by the size; a file shrinking under us ends it early
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
