"""A PXE boot network inside a network namespace, for end-to-end tests with a real PXE client.

``pxe_namespace()`` makes a namespace with a bridge ``br0`` (198.51.100.1/24, a documentation
range with no route out) and a tap ``tap0`` enslaved to it for QEMU. Inside it run:

- ``RouterAdvertiser``: IPv6 router advertisements with router lifetime 0 every 0.5 s on br0.
  iPXE configures IPv6 beside DHCPv4 and waits ~13 s at each stage for a router that never
  comes; an RA saying "no default router here" ends that wait at once.
- ``PacketLog``: an AF_PACKET observer on br0 writing one JSON line per DHCP packet and TFTP
  packet it sees (both directions), so a test can assert what happened on the wire whichever
  server (standalone, in.tftpd, the daemon) produced it.
- ``HttpRecorder``: a small stdlib HTTP server that answers ``/boot/ipxe`` with a given iPXE
  script, serves files (kernel, initrd) and records every request, POST bodies included.
- ``Qemu``: ``qemu-system-x86_64 -boot n`` on tap0 with a given MAC, serial console to a file.

Every helper is a subprocess started in the namespace in a new session and ended by its pid's
process group; every loop in them is bounded in count and time (``--max-seconds``). The namespace
is deleted on exit, after every process started through it is killed, also on failure.

``python -m tests.support.pxenet ra|sniff|http ...`` is how the helpers run in the namespace.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from provisiond.procs import stop_group

ROOT = Path(__file__).resolve().parents[2]
SERVER_IP = "198.51.100.1"
PREFIX = 24
BRIDGE = "br0"
TAP = "tap0"
# upper bound of any helper's life: a test that forgets to stop one cannot leave it running long
HELPER_MAX_SECONDS = 1800


def _run(*cmd: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout)


class NsProcess:
    """A process started in the namespace in its own session; stopped by its process group."""

    def __init__(self, argv: list[str], log: Path, *, cwd: Path = ROOT) -> None:
        self.argv = argv
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        stop_group(self.proc, grace=grace)

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@dataclass
class PxeNet:
    ns: str
    workdir: Path
    server_ip: str = SERVER_IP
    bridge: str = BRIDGE
    tap: str = TAP
    processes: list[NsProcess] = field(default_factory=list)

    def argv(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *cmd]

    def spawn(self, name: str, *cmd: str) -> NsProcess:
        """Start ``cmd`` in the namespace, output to ``workdir/name.log``; killed on exit."""
        proc = NsProcess(self.argv(*cmd), self.workdir / f"{name}.log")
        self.processes.append(proc)
        return proc

    def helper(self, name: str, *args: str) -> NsProcess:
        return self.spawn(name, sys.executable, "-m", "tests.support.pxenet", *args)

    def run(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*cmd), capture_output=True, text=True, timeout=timeout)


def need_root_and_ip() -> str | None:
    """Why a namespace cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root for network namespaces (ip netns)"
    if shutil.which("ip") is None:
        return "apt-get install iproute2"
    return None


NS_PREFIX = "pvd-pxe-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_namespaces() -> None:
    """Namespaces of ours whose test process died without cleaning up (SIGKILL, power loss):
    their processes are killed by pid (``ip netns pids``) and the namespace deleted."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=15)
    for line in listing.stdout.splitlines()[:200]:
        name = line.split()[0] if line.split() else ""
        owner = name.removeprefix(NS_PREFIX)
        if not name.startswith(NS_PREFIX) or not owner.isdigit() or _pid_alive(int(owner)):
            continue
        pids = subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True, timeout=15
        ).stdout.split()
        for pid in pids[:1000]:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=15)


@contextlib.contextmanager
def pxe_namespace(workdir: Path, name: str | None = None) -> Iterator[PxeNet]:
    """A namespace with br0 (SERVER_IP/24) and tap0 enslaved to it, loopback up.

    IPv6 DAD is off on br0 so its link-local address can send RAs at once. On exit every process
    started with ``spawn``/``helper`` is killed (by pid) and the namespace deleted.
    """
    _remove_stale_namespaces()
    ns = name or f"{NS_PREFIX}{os.getpid()}"
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=15)
    net = PxeNet(ns=ns, workdir=workdir)
    try:
        _run("ip", "netns", "add", ns)
        n = ("ip", "-n", ns)
        _run(*n, "link", "set", "lo", "up")
        _run(*n, "link", "add", BRIDGE, "type", "bridge")
        # forward at once: no STP listening/learning delay before the VM's first DISCOVER
        _run(*n, "link", "set", BRIDGE, "type", "bridge", "forward_delay", "0", "stp_state", "0")
        _run(*n, "tuntap", "add", "dev", TAP, "mode", "tap")
        _run(*n, "link", "set", TAP, "master", BRIDGE)
        net.run("sh", "-c", f"echo 0 > /proc/sys/net/ipv6/conf/{BRIDGE}/accept_dad")
        _run(*n, "addr", "add", f"{SERVER_IP}/{PREFIX}", "dev", BRIDGE)
        _run(*n, "link", "set", TAP, "up")
        _run(*n, "link", "set", BRIDGE, "up")
        yield net
    finally:
        for proc in reversed(net.processes):
            with contextlib.suppress(Exception):
                proc.stop()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=15)


class _Helper:
    proc: NsProcess

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.proc.stop()


class RouterAdvertiser(_Helper):
    """RAs with router lifetime 0 every ``every`` seconds on the bridge (``ra`` subcommand)."""

    def __init__(self, net: PxeNet, every: float = 0.5) -> None:
        self.proc = net.helper(
            "ra", "ra", "--interface", net.bridge, "--every", str(every),
            "--max-seconds", str(HELPER_MAX_SECONDS),
        )  # fmt: skip


class PacketLog(_Helper):
    """DHCP and TFTP packets seen on the bridge, as JSON lines (``sniff`` subcommand)."""

    def __init__(self, net: PxeNet) -> None:
        self.path = net.workdir / "packets.jsonl"
        self.path.touch()
        self.proc = net.helper(
            "sniff", "sniff", "--interface", net.bridge, "--out", str(self.path),
            "--max-seconds", str(HELPER_MAX_SECONDS),
        )  # fmt: skip
        _wait_for(lambda: "sniffing" in self.proc.output(), 15, self.proc, "packet log")

    def events(self) -> list[dict[str, Any]]:
        return _read_jsonl(self.path)


class HttpRecorder(_Helper):
    """An HTTP server on ``SERVER_IP:port`` in the namespace (``http`` subcommand).

    ``GET /boot/ipxe?...`` answers the contents of ``script`` (the test writes it, before or
    during the test); other GETs serve files under ``root``; ``POST`` bodies are recorded and
    answered ``{"ok": true}``. Every request is one JSON line in ``requests.jsonl``.
    """

    def __init__(self, net: PxeNet, port: int, root: Path) -> None:
        self.port = port
        self.base_url = f"http://{net.server_ip}:{port}"
        self.script = net.workdir / "boot.ipxe"
        self.path = net.workdir / "requests.jsonl"
        self.path.touch()
        self.proc = net.helper(
            "http", "http", "--bind", net.server_ip, "--port", str(port), "--root", str(root),
            "--script", str(self.script), "--log", str(self.path),
            "--max-seconds", str(HELPER_MAX_SECONDS),
        )  # fmt: skip
        _wait_for(lambda: "serving" in self.proc.output(), 15, self.proc, "http recorder")

    def requests(self) -> list[dict[str, Any]]:
        return _read_jsonl(self.path)


class TftpServer(_Helper):
    """TFTP on ``SERVER_IP:69`` in the namespace serving ``root`` (``tftp`` subcommand).

    It runs our ``pxe.tftp.TftpService`` and logs each file it finished sending. When that module
    is missing or does not import it falls back to Debian's ``in.tftpd`` (tftpd-hpa); the packet
    log is what tests assert on, so either serves.
    """

    def __init__(self, net: PxeNet, root: Path) -> None:
        self.proc = net.helper(
            "tftp", "tftp", "--bind", net.server_ip, "--interface", net.bridge, "--root", str(root),
            "--max-seconds", str(HELPER_MAX_SECONDS),
        )  # fmt: skip
        _wait_for(lambda: "tftp ready" in self.proc.output(), 15, self.proc, "tftp server")
        self.implementation = "in.tftpd" if "in.tftpd" in self.proc.output() else "pxe.tftp"


class Qemu(_Helper):
    """The PXE client: QEMU (TCG here) with a virtio NIC on tap0 and its iPXE option ROM.

    The VM never stops by itself while it retries the network boot: ``stop`` (and the
    namespace's exit) kill it by pid. ``-no-reboot`` turns a reboot or poweroff into an exit.
    """

    def __init__(
        self,
        net: PxeNet,
        mac: str,
        *,
        memory_mb: int = 256,
        firmware: Sequence[str] = (),
        nic_options: str = "",
    ) -> None:
        """``firmware``: extra QEMU arguments before the NIC (e.g. OVMF's ``-drive
        if=pflash,...``); ``nic_options``: appended to the ``-device virtio-net-pci,...`` value
        (e.g. ``,bootindex=1,romfile=``). The defaults give the SeaBIOS + iPXE ROM VM."""
        self.mac = mac
        self.serial = net.workdir / "serial.log"
        self.serial.touch()
        self.started = time.monotonic()
        self.proc = net.spawn(
            # coreutils timeout: a VM outlives no test run, even one killed before its cleanup
            "qemu", "timeout", "-s", "KILL", str(HELPER_MAX_SECONDS),
            "qemu-system-x86_64", "-nodefaults", "-display", "none", "-monitor", "none",
            "-serial", f"file:{self.serial}", "-m", str(memory_mb), "-boot", "n", "-no-reboot",
            *firmware,
            "-netdev", f"tap,id=n0,ifname={net.tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={mac}{nic_options}",
        )  # fmt: skip

    def console(self) -> str:
        return self.serial.read_text(errors="replace")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line being written
            out.append(json.loads(line))
    return out


def _wait_for(cond: Callable[[], bool], seconds: float, proc: NsProcess, what: str) -> None:
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / 0.05) + 1):
        if cond():
            return
        if not proc.alive() or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start: {proc.output()[-2000:]}")


def poll(
    cond: Callable[[], Any], seconds: float, *, every: float = 0.25, alive: NsProcess | None = None
) -> Any:
    """``cond()``'s first truthy value within ``seconds`` (bounded loop), else None.

    Stops early when ``alive`` (e.g. QEMU) has exited, after one last look.
    """
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / every) + 2):
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        if alive is not None and not alive.alive():
            return cond() or None
        time.sleep(every)
    return None


# --------------------------------------------------------------------------------------------
# the helpers' own code, run inside the namespace


def router_advertisement(mac: bytes) -> bytes:
    """ICMPv6 type 134, router lifetime 0 (not a default router), source link-layer option.

    The checksum is left 0: the kernel fills it in for raw ICMPv6 sockets.
    """
    hdr = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0)
    return hdr + struct.pack("!BB6s", 1, 1, mac)


def _ra_main(a: argparse.Namespace) -> int:
    mac = bytes.fromhex(Path(f"/sys/class/net/{a.interface}/address").read_text().strip()
                        .replace(":", ""))  # fmt: skip
    index = socket.if_nametoindex(a.interface)
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
    packet = router_advertisement(mac)
    print(f"ra: every {a.every}s on {a.interface}", flush=True)
    sent = errors = 0
    deadline = time.monotonic() + a.max_seconds
    for _ in range(int(a.max_seconds / a.every) + 1):
        if time.monotonic() > deadline:
            break
        try:
            s.sendto(packet, ("ff02::1", 0, 0, index))
            sent += 1
            if sent == 1:
                print("ra: first advertisement sent", flush=True)
        except OSError as exc:  # no carrier / no link-local yet: try again next round
            errors += 1
            if errors <= 3:
                print(f"ra: {exc}", flush=True)
        time.sleep(a.every)
    print(f"ra: stopped after {sent} sent", flush=True)
    return 0


TFTP_OPS = {1: "RRQ", 2: "WRQ", 3: "DATA", 4: "ACK", 5: "ERROR", 6: "OACK"}
DHCP_TYPES = {
    1: "DISCOVER",
    2: "OFFER",
    3: "REQUEST",
    4: "DECLINE",
    5: "ACK",
    6: "NAK",
    8: "INFORM",
}


def _dhcp_event(payload: bytes) -> dict[str, Any] | None:
    if len(payload) < 240 or payload[236:240] != b"\x63\x82\x53\x63":
        return None
    opts: dict[int, bytes] = {}
    i = 240
    while i < len(payload):
        code = payload[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        if i + 1 >= len(payload):
            break
        ln = payload[i + 1]
        opts[code] = opts.get(code, b"") + payload[i + 2 : i + 2 + ln]
        i += 2 + ln
    user_class = opts.get(77, b"")
    return {
        "kind": "dhcp",
        "op": payload[0],
        "type": DHCP_TYPES.get(opts.get(53, b"\0")[0], "?"),
        "xid": payload[4:8].hex(),
        "mac": ":".join(f"{b:02x}" for b in payload[28:34]),
        "yiaddr": socket.inet_ntoa(payload[16:20]),
        "ipxe": b"iPXE" in user_class or 175 in opts,
        "vendor_class": opts.get(60, b"").decode("latin-1"),
        # option 93 (RFC 4578 client architecture), first entry; None when absent
        "arch": int.from_bytes(opts[93][:2], "big") if len(opts.get(93, b"")) >= 2 else None,
        "file": (opts.get(67) or payload[108:236].split(b"\0", 1)[0]).decode("latin-1"),
    }


def _tftp_event(payload: bytes, sport: int, dport: int) -> dict[str, Any] | None:
    if len(payload) < 4:
        return None
    op = struct.unpack("!H", payload[:2])[0]
    name = TFTP_OPS.get(op)
    if name is None:
        return None
    ev: dict[str, Any] = {"kind": "tftp", "op": name, "sport": sport, "dport": dport}
    if name == "RRQ":
        parts = payload[2:].split(b"\0")
        ev["file"] = parts[0].decode("latin-1")
        ev["options"] = [p.decode("latin-1") for p in parts[2:] if p]
    elif name in ("DATA", "ACK"):
        ev["block"] = struct.unpack("!H", payload[2:4])[0]
        if name == "DATA":
            ev["len"] = len(payload) - 4
    elif name == "ERROR":
        ev["message"] = payload[4:].split(b"\0", 1)[0].decode("latin-1")
    return ev


def _sniff_main(a: argparse.Namespace) -> int:
    # ETH_P_ALL: only taps of every protocol see the frames the host itself sends (our servers')
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((a.interface, 0))
    s.settimeout(0.5)
    tftp_ports: set[int] = {69}  # the server's transfer ports, learnt from RRQs' replies
    clients: set[int] = set()
    deadline = time.monotonic() + a.max_seconds
    print(f"sniffing on {a.interface}", flush=True)
    with open(a.out, "a") as out:
        # each round reads at most one frame or waits 0.5 s: bounded by the deadline
        while time.monotonic() < deadline:
            try:
                frame = s.recv(65535)
            except TimeoutError:
                continue
            if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":  # IPv4 only
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != 17:  # UDP
                continue
            udp = ip[ihl:]
            sport, dport = struct.unpack("!HH", udp[:4])
            payload = udp[8:]
            ev: dict[str, Any] | None = None
            if {sport, dport} & {67, 68}:
                ev = _dhcp_event(payload)
            elif dport in tftp_ports or sport in clients or dport in clients:
                ev = _tftp_event(payload, sport, dport)
                if ev and ev["op"] == "RRQ":
                    clients.add(sport)
            if ev is None:
                continue
            ev["t"] = time.monotonic()
            ev["src"] = socket.inet_ntoa(ip[12:16])
            ev["dst"] = socket.inet_ntoa(ip[16:20])
            out.write(json.dumps(ev) + "\n")
            out.flush()
    return 0


def _http_main(a: argparse.Namespace) -> int:
    root = Path(a.root).resolve()
    script = Path(a.script)
    log_lock = threading.Lock()

    def record(entry: dict[str, Any]) -> None:
        entry["t"] = time.monotonic()
        with log_lock, open(a.log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            sys.stdout.write(f"http: {self.address_string()} {format % args}\n")
            sys.stdout.flush()

        def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            entry: dict[str, Any] = {
                "method": "GET", "path": url.path, "query": parse_qs(url.query),
                "client": self.client_address[0], "user_agent": self.headers.get("User-Agent"),
            }  # fmt: skip
            if url.path == "/boot/ipxe":
                body = script.read_bytes() if script.exists() else b""
                entry["status"] = 200 if body else 404
                record(entry)
                self._send(entry["status"], body or b"no script yet\n")
                return
            # confined by the URL path (no ".."); symlinks the test put in root are followed
            rel = os.path.normpath(url.path).lstrip("/")
            target = root / rel
            if rel.startswith("..") or not target.is_file():
                entry["status"] = 404
                record(entry)
                self._send(404, b"not found\n")
                return
            size = target.stat().st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            sent = 0
            with open(target, "rb") as f:
                while chunk := f.read(1 << 16):
                    self.wfile.write(chunk)
                    sent += len(chunk)
            entry.update(status=200, bytes=sent, size=size)
            record(entry)

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(min(length, 16 << 20))
            body: Any
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            record({
                "method": "POST", "path": url.path, "query": parse_qs(url.query),
                "client": self.client_address[0], "body": body,
                "authorization": self.headers.get("Authorization"),
            })  # fmt: skip
            self._send(200, b'{"ok": true}\n', "application/json")

    server = ThreadingHTTPServer((a.bind, a.port), Handler)
    server.daemon_threads = True
    print(f"serving on {a.bind}:{a.port}", flush=True)
    stopper = threading.Timer(a.max_seconds, server.shutdown)
    stopper.daemon = True
    stopper.start()
    server.serve_forever(poll_interval=0.5)
    return 0


def _tftp_main(a: argparse.Namespace) -> int:
    try:
        from pxe.tftp import TftpService
    except Exception as exc:  # not built yet, or broken: Debian's server keeps the test going
        print(f"tftp: pxe.tftp unavailable ({exc!r}); using in.tftpd", flush=True)
        print("tftp ready (in.tftpd)", flush=True)
        os.execvp("in.tftpd", ["in.tftpd", "-L", "-s", "-a", f"{a.bind}:69", a.root])
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    def on_sent(path: str, client: tuple[str, int], nbytes: int) -> None:
        print(f"tftp: sent {path} to {client[0]}:{client[1]} ({nbytes} bytes)", flush=True)

    service = TftpService(Path(a.root), host=a.bind, port=69, on_sent=on_sent,
                          interface=a.interface)  # fmt: skip
    service.start()
    print("tftp ready (pxe.tftp)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait(a.max_seconds)
    service.stop()
    return 0


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.support.pxenet")
    sub = p.add_subparsers(dest="cmd", required=True)
    ra = sub.add_parser("ra")
    ra.add_argument("--interface", required=True)
    ra.add_argument("--every", type=float, default=0.5)
    ra.add_argument("--max-seconds", type=float, default=HELPER_MAX_SECONDS)
    sn = sub.add_parser("sniff")
    sn.add_argument("--interface", required=True)
    sn.add_argument("--out", required=True)
    sn.add_argument("--max-seconds", type=float, default=HELPER_MAX_SECONDS)
    ht = sub.add_parser("http")
    ht.add_argument("--bind", required=True)
    ht.add_argument("--port", type=int, required=True)
    ht.add_argument("--root", required=True)
    ht.add_argument("--script", required=True)
    ht.add_argument("--log", required=True)
    ht.add_argument("--max-seconds", type=float, default=HELPER_MAX_SECONDS)
    tf = sub.add_parser("tftp")
    tf.add_argument("--bind", required=True)
    tf.add_argument("--interface")
    tf.add_argument("--root", required=True)
    tf.add_argument("--max-seconds", type=float, default=HELPER_MAX_SECONDS)
    a = p.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        if a.cmd == "tftp":  # its own SIGTERM handling: stops the service cleanly
            return _tftp_main(a)
        main: Callable[[argparse.Namespace], int]
        main = {"ra": _ra_main, "sniff": _sniff_main, "http": _http_main}[a.cmd]
        return main(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())


__all__ = [
    "HttpRecorder",
    "NsProcess",
    "PacketLog",
    "PxeNet",
    "Qemu",
    "RouterAdvertiser",
    "TftpServer",
    "poll",
    "pxe_namespace",
]
