"""The TFTP server of the PXE stack: read-only, confined to one root, off the asyncio loop.

It serves the boot loaders (Debian's ipxe package: undionly.kpxe, ipxe.efi, snponly.efi) and
per-node generated files (the ``dynamic`` callable, asked first). Requests are decoded with
tftpy's packet classes; the transfers are our own (tftpy's ``TftpServer.listen`` dies for every
client on one client's exception, and its confinement follows symlinks out of the root).

Threads: one I/O thread owns every socket (the listener and one connected UDP socket per
transfer, the transfer's own TID as RFC 1350 asks) and a small pool resolves requests (the
``dynamic`` callable, ``realpath`` checks, reading files) so a slow lookup never stalls the
transfers in flight. Options: blksize (RFC 2348), tsize and timeout (RFC 2349), windowsize
(RFC 7440).

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
import selectors
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
ERR_UNDEFINED, ERR_NOT_FOUND, ERR_ACCESS, ERR_ILLEGAL, ERR_UNKNOWN_TID, ERR_OPTIONS = 0, 1, 2, 4, 5, 8

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
MAX_BLOCKS = 1 << 32  # with block-number rollover; larger files are refused
RESOLVERS = 4
SCAN_EVERY_S = 0.05  # how often timeouts are checked
THROTTLE_KEYS = 4096

_DATA_HDR = [struct.pack("!HH", OP_DATA, n) for n in range(65536)]
_ACK = struct.Struct("!HH")


class _Throttle:
    """At most one warning per ``every`` seconds per key (client and kind), with the count of the
    ones skipped; the key table is bounded."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.last: collections.OrderedDict[str, float] = collections.OrderedDict()
        self.skipped: dict[str, int] = {}

    def __call__(self, key: str, msg: str, *args: object, exc_info: bool = False) -> None:
        now = time.monotonic()
        last = self.last.get(key)
        if last is not None and now - last < self.every:
            self.skipped[key] = self.skipped.get(key, 0) + 1
            return
        skipped = self.skipped.pop(key, 0)
        more = f" ({skipped} more like it)" if skipped else ""
        log.warning(msg + more, *args, exc_info=exc_info)
        self.last[key] = now
        self.last.move_to_end(key)
        while len(self.last) > THROTTLE_KEYS:
            old, _ = self.last.popitem(last=False)
            self.skipped.pop(old, None)


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
    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.size = len(data)

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
        self.items: collections.OrderedDict[tuple[int, int, int, int], bytes] = (
            collections.OrderedDict()
        )
        self.total = 0

    def get(self, key: tuple[int, int, int, int]) -> bytes | None:
        with self.lock:
            data = self.items.get(key)
            if data is not None:
                self.items.move_to_end(key)
            return data

    def put(self, key: tuple[int, int, int, int], data: bytes) -> None:
        with self.lock:
            if key in self.items:
                return
            self.items[key] = data
            self.total += len(data)
            while self.total > CACHE_TOTAL_MAX and self.items:
                _, old = self.items.popitem(last=False)
                self.total -= len(old)


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

    def fileno(self) -> int:
        return self.sock.fileno()


class TftpService:
    """A read-only TFTP server on ``host:port`` serving ``root`` and ``dynamic`` files.

    ``dynamic(path, client)`` is asked first for every read request with the normalized relative
    path (already checked for '..' and absolute paths); bytes are served, None falls through to
    ``root``. It and ``on_sent(path, client, nbytes)`` run on the service's threads (a resolver
    and the I/O thread): keep them quick; their exceptions are logged, never raised into the
    service.
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
        self._throttle = _Throttle()
        self._factory = TftpPacketFactory()
        self._cache = _FileCache()
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._resolved: queue.SimpleQueue[_Resolved] = queue.SimpleQueue()
        self._pending: set[Addr] = set()
        self._transfers: dict[int, _Transfer] = {}
        self._by_client: dict[Addr, _Transfer] = {}
        self._stopping = threading.Event()
        self._port = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> None:
        if self._thread is not None:
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
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stopping.clear()
        self._pool = ThreadPoolExecutor(RESOLVERS, thread_name_prefix="tftp-resolve")
        self._thread = threading.Thread(target=self._run, name="tftp-io", daemon=True)
        self._thread.start()
        log.info("tftp: serving %s on %s:%d", self.root, self.host, self._port)

    def stop(self, timeout: float = 5.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._wake()
        thread.join(timeout)
        if thread.is_alive():
            log.error("tftp: the I/O thread did not stop within %.1f s", timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        for t in list(self._transfers.values()):
            self._end(t)
        for s in (self._listener, self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        if self._selector is not None:
            self._selector.close()
        self._listener = self._wake_r = self._wake_w = None
        self._selector = None
        self._thread = None
        self.stats["active"] = 0

    def _wake(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"\0")

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

    # ------------------------------------------------------------------ the I/O thread

    def _run(self) -> None:
        assert self._selector is not None
        next_scan = time.monotonic() + SCAN_EVERY_S
        while not self._stopping.is_set():
            try:
                events = self._selector.select(SCAN_EVERY_S)
                for key, _ in events:
                    obj = key.fileobj
                    if isinstance(obj, _Transfer):
                        self._on_transfer_readable(obj)
                    elif obj is self._listener:
                        self._on_listener_readable()
                    elif obj is self._wake_r:
                        self._drain_wake()
                self._start_resolved()
                now = time.monotonic()
                if now >= next_scan:
                    next_scan = now + SCAN_EVERY_S
                    self._scan_timeouts(now)
            except Exception:
                # a bug of ours in one packet's handling must not end the service
                self._throttle("loop", "tftp: unexpected error in the I/O loop", exc_info=True)
                time.sleep(0.01)

    def _drain_wake(self) -> None:
        assert self._wake_r is not None
        for _ in range(64):
            try:
                if not self._wake_r.recv(4096):
                    return
            except OSError:
                return

    def _on_listener_readable(self) -> None:
        assert self._listener is not None
        for _ in range(64):  # bounded: the transfers get their turn
            try:
                data, ancdata, _flags, addr = self._listener.recvmsg(
                    65536, socket.CMSG_SPACE(12)
                )
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
                    f"req-bug:{addr[0]}", "tftp: handling a request from %s failed", addr[0],
                    exc_info=True,
                )

    def _on_request(self, data: bytes, client: Addr, local_ip: str) -> None:
        opcode = int.from_bytes(data[:2], "big") if len(data) >= 2 else 0
        if opcode not in (OP_RRQ, OP_WRQ):
            self.stats["malformed"] += 1
            self._throttle(
                f"stray:{client[0]}", "tftp: %s sent a non-request packet (opcode %d) to the "
                "listener; dropped", client[0], opcode,
            )
            return
        try:
            pkt = self._factory.parse(data)
        except Exception as exc:
            self.stats["malformed"] += 1
            self._throttle(
                f"malformed:{client[0]}", "tftp: malformed request from %s: %s", client[0], exc
            )
            self._send_error(client, local_ip, ERR_ILLEGAL, "Illegal TFTP operation")
            return
        self.stats["requests"] += 1
        if isinstance(pkt, TftpPacketWRQ):
            self.stats["refused"] += 1
            self._throttle(
                f"wrq:{client[0]}", "tftp: write request from %s:%d for %r refused",
                client[0], client[1], pkt.filename,
            )
            self._send_error(client, local_ip, ERR_ACCESS, "Access violation: read-only server")
            return
        assert isinstance(pkt, TftpPacketRRQ)
        raw: str = pkt.filename
        mode: str = pkt.mode
        if mode not in ("octet", "netascii"):
            self.stats["malformed"] += 1
            self._send_error(client, local_ip, ERR_ILLEGAL, f"Unsupported mode {mode[:20]!r}")
            return
        try:
            path = normalize_path(raw)
        except Refused as why:
            self._refuse(client, local_ip, raw, str(why))
            return
        if client in self._pending or client in self._by_client:
            return  # a retransmitted request: the transfer under way answers it
        if len(self._pending) >= MAX_PENDING:
            self._throttle("busy", "tftp: too many requests being resolved; dropping some")
            return
        if len(self._transfers) >= MAX_ACTIVE:
            self._throttle("full", "tftp: %d transfers active; refusing more", MAX_ACTIVE)
            self._send_error(client, local_ip, ERR_UNDEFINED, "Server busy, try again")
            return
        options = {str(k).lower(): str(v) for k, v in pkt.options.items()}
        req = _Request(client, local_ip, path, raw, mode, options)
        self._pending.add(client)
        assert self._pool is not None
        self._pool.submit(self._resolve_job, req)

    def _refuse(self, client: Addr, local_ip: str, raw: str, why: str) -> None:
        self.stats["refused"] += 1
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

    def _resolve_job(self, req: _Request) -> None:
        try:
            res = self._resolve(req)
        except Exception:
            log.exception("tftp: resolving %r for %s failed", req.raw_path, req.client[0])
            res = _Resolved(req, error=(ERR_UNDEFINED, "Internal error"))
        self._resolved.put(res)
        self._wake()

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
            data = self._cache.get(key)
            if data is None and st.st_size <= CACHE_FILE_MAX:
                data = _read_all(fd, st.st_size)
                self._cache.put(key, data)
            if data is not None:
                return self._memory_source(req, data)
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

    # ------------------------------------------------------------------ transfers (I/O thread)

    def _start_resolved(self) -> None:
        for _ in range(MAX_PENDING):
            try:
                res = self._resolved.get_nowait()
            except queue.Empty:
                return
            req = res.request
            self._pending.discard(req.client)
            if res.refused_why is not None:
                self._refuse(req.client, req.local_ip, req.raw_path, res.refused_why)
            elif res.error is not None or res.source is None:
                code, message = res.error or (ERR_UNDEFINED, "Internal error")
                if code == ERR_NOT_FOUND:
                    self.stats["not_found"] += 1
                    log.info("tftp: %s:%d asked for %r: not found", *req.client, req.raw_path)
                else:
                    self.stats["failed"] += 1
                self._send_error(req.client, req.local_ip, code, message)
            else:
                self._begin(req, res.source)

    def _begin(self, req: _Request, source: _Source) -> None:
        opts = negotiate(req.options, source.size)
        if source.size // opts.blksize + 1 > MAX_BLOCKS:
            source.close()
            self.stats["failed"] += 1
            self._send_error(req.client, req.local_ip, ERR_UNDEFINED, "File too large")
            return
        try:
            sock = self._udp_socket()
        except OSError as exc:
            source.close()
            self.stats["failed"] += 1
            self._throttle("socket", "tftp: no socket for a transfer: %s", exc)
            return
        try:
            sock.bind((req.local_ip, 0))
            sock.connect(req.client)
        except OSError as exc:
            sock.close()
            source.close()
            self.stats["failed"] += 1
            self._throttle(f"send:{req.client[0]}", "tftp: cannot reach %s: %s", req.client[0], exc)
            return
        t = _Transfer(sock, req.client, req.path, source, opts)
        assert self._selector is not None
        self._selector.register(t, selectors.EVENT_READ, None)
        self._transfers[sock.fileno()] = t
        self._by_client[req.client] = t
        self.stats["active"] = len(self._transfers)
        log.debug("tftp: %s:%d <- %r (%d bytes, %s)", *req.client, req.path, source.size, opts)
        if opts.acked:
            self._send(t, oack_packet(opts.acked))
        else:
            self._send_window(t)

    def _send(self, t: _Transfer, packet: bytes | memoryview) -> bool:
        try:
            t.sock.send(packet)
            return True
        except (BlockingIOError, InterruptedError):
            return True  # the socket buffer is full: the retransmission timer resends
        except OSError as exc:
            self._fail(t, f"send failed: {exc}")
            return False

    def _send_window(self, t: _Transfer) -> None:
        """Send the blocks after the last acknowledged one, up to the window."""
        end = min(t.acked + t.window, t.last_block)
        block = t.acked + 1
        sock, src, bs = t.sock, t.source, t.blksize
        while block <= end:
            try:
                sock.send(_DATA_HDR[block & 0xFFFF] + src.block(block, bs))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._fail(t, f"send failed: {exc}")
                return
            block += 1
        t.sent_upto = max(t.sent_upto, block - 1)
        t.deadline = time.monotonic() + t.timeout

    def _on_transfer_readable(self, t: _Transfer) -> None:
        for _ in range(16):
            try:
                data = t.sock.recv(1024)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP port unreachable: the client is gone
                self._fail(t, f"client gone ({exc.strerror or exc})", quiet=True)
                return
            if len(data) >= 4:
                opcode, number = _ACK.unpack_from(data)
                if opcode == OP_ACK:
                    self._on_ack(t, number)
                    if t.sock.fileno() < 0:
                        return
                    continue
                if opcode == OP_ERROR:
                    self._on_client_error(t, number, data[4:])
                    return
            self._junk(t, "unexpected packet")
            if t.sock.fileno() < 0:
                return

    def _on_ack(self, t: _Transfer, number: int) -> None:
        # the ACK's 16-bit number names a block in (acked, sent_upto]; ACK 0 acknowledges the
        # OACK. Duplicates and stale ACKs are ignored (never resent on: Sorcerer's Apprentice).
        if t.sent_upto == 0 and t.acked == 0:
            if number == 0 and t.opts.acked:
                t.retries = 0
                self._send_window(t)
                return
        delta = (number - t.acked) & 0xFFFF
        if delta == 0 or delta > t.sent_upto - t.acked:
            if (t.acked - number) & 0xFFFF > t.window + 1:
                self._junk(t, f"ACK for block {number} never sent")
            return
        t.acked += delta
        t.retries = 0
        if t.acked >= t.last_block:
            self._complete(t)
            return
        if t.acked >= t.sent_upto or t.window == 1:
            self._send_window(t)
        else:
            # windowed: a partial ACK means the rest of the window was lost; RFC 7440 restarts
            # the window from the block after the acknowledged one
            self._send_window(t)

    def _on_client_error(self, t: _Transfer, code: int, rest: bytes) -> None:
        message = rest.split(b"\0", 1)[0].decode("ascii", "replace")[:100]
        if t.sent_upto == 0 and code in (ERR_UNDEFINED, ERR_OPTIONS):
            # a PXE ROM asking for tsize only, then aborting: normal, not a failure
            self.stats["aborted"] += 1
            log.debug("tftp: %s:%d aborted %r after the OACK: %s", *t.client, t.path, message)
            self._end(t)
            return
        self._fail(t, f"client sent error {code} {message!r}")

    def _junk(self, t: _Transfer, what: str) -> None:
        t.junk += 1
        self._throttle(f"junk:{t.client[0]}", "tftp: %s:%d sent %s", *t.client, what)
        if t.junk > MAX_JUNK:
            self._fail(t, "too many stray packets")

    def _scan_timeouts(self, now: float) -> None:
        for t in list(self._transfers.values()):
            if now >= t.expires:
                self._fail(t, f"still running after {MAX_TRANSFER_S:.0f} s")
            elif now >= t.deadline:
                t.retries += 1
                if t.retries > MAX_RETRIES:
                    self._fail(t, f"no answer after {MAX_RETRIES} retransmissions")
                elif t.sent_upto == 0 and t.opts.acked:
                    self._send(t, oack_packet(t.opts.acked))
                    t.deadline = now + t.timeout
                else:
                    self._send_window(t)

    def _complete(self, t: _Transfer) -> None:
        size = t.source.size
        self.stats["sent"] += 1
        self.stats["bytes"] += size
        self._end(t)
        log.debug("tftp: %s:%d got %r (%d bytes)", *t.client, t.path, size)
        if self.on_sent is not None:
            try:
                self.on_sent(t.path, t.client, size)
            except Exception:
                self._throttle("on_sent", "tftp: the on_sent callback failed", exc_info=True)

    def _fail(self, t: _Transfer, why: str, *, quiet: bool = False) -> None:
        if t.sock.fileno() < 0:
            return
        self.stats["failed"] += 1
        if not quiet:
            with contextlib.suppress(OSError):
                t.sock.send(error_packet(ERR_UNDEFINED, why[:100]))
        self._throttle(
            f"fail:{t.client[0]}", "tftp: transfer of %r to %s:%d failed at block %d/%d: %s",
            t.path, *t.client, t.acked, t.last_block, why,
        )
        self._end(t)

    def _end(self, t: _Transfer) -> None:
        fd = t.sock.fileno()
        if fd < 0:
            return
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(t)
        self._transfers.pop(fd, None)
        if self._by_client.get(t.client) is t:
            del self._by_client[t.client]
        t.sock.close()
        t.source.close()
        self.stats["active"] = len(self._transfers)


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
