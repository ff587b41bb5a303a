"""The DHCP server beside independent peers, on a LAN this test builds out of network namespaces.

Topology (198.51.100.0/24, a documentation range with no route out; nothing leaves the
namespaces): a namespace ``lan`` holds a bridge ``br0``; three more namespaces are hosts on it,
each through a veth pair whose other end is a bridge port:

- ``srv``: provisiond's DHCP server (``python -m pxe.dhcp_server``) on ``srv0``, 198.51.100.1;
- ``site``: the site's DHCP server, Debian's dnsmasq, on ``site0``, 198.51.100.2 (addresses only,
  no PXE options: what a site that does not know about us runs);
- ``cli``: the client on ``cli0``, no address until it gets one: Debian's ISC ``dhclient``,
  busybox ``udhcpc``, or a Python probe sending PXE packets (from 0.0.0.0, like a PXE ROM).

The site server is a host of its own because that is what it usually is, and because on one host
both answers would name the same server identifier (dnsmasq and ours *can* share a host:
both bind 0.0.0.0:67 on the interface with SO_REUSEADDR and both get the broadcasts; checked by
hand, not here).

Every process is started in its own session and killed by its pid (and dnsmasq's / dhclient's
pid files) before the namespaces are deleted, pass or fail. Every wait is bounded in count and
time; no assertion is about elapsed time.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from provisiond.procs import stop_group
from tests.support.peers import missing
from tests.test_dhcp import options_of, packet, pxe_discover

ROOT = Path(__file__).resolve().parents[1]
OURS = "198.51.100.1"
SITE = "198.51.100.2"
SITE_RANGE = ("198.51.100.100", "198.51.100.150")
RESERVED = "198.51.100.11"
XID = struct.pack("!I", 0xDEADBEEF)  # tests.test_dhcp.packet's xid
OFFER, ACK = 2, 5


def _need(cond: bool, why: str) -> None:
    if not cond:
        missing(why)


def _kill(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    stop_group(proc)


def _kill_pid_file(path: Path, name: str) -> None:
    """Kill the process a pid file names, if it is still the program we started."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text().split()[0])
        if Path(f"/proc/{pid}/comm").read_text().strip() == name:
            os.kill(pid, signal.SIGTERM)


@dataclass
class Lan:
    ns: dict[str, str]  # role (lan, srv, site, cli) -> namespace name
    client_mac: str
    tmp: Path
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    pid_files: list[tuple[Path, str]] = field(default_factory=list)
    ours: subprocess.Popen[str] | None = None

    def run(self, role: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.ns[role], *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )

    def popen(self, role: str, *cmd: str, log: Path, **kw: object) -> subprocess.Popen[str]:
        """A background process in ``role``'s namespace, killed by the fixture (own session)."""
        with open(log, "wb") as out:
            proc: subprocess.Popen[str] = subprocess.Popen(  # type: ignore[call-overload]
                ["ip", "netns", "exec", self.ns[role], *cmd],
                stderr=out,
                text=True,
                cwd=ROOT,
                start_new_session=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                **{"stdout": out, **kw},
            )
        self.procs.append(proc)
        return proc


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[Lan]:
    _need(os.geteuid() == 0, "needs root for network namespaces (ip netns)")
    _need(shutil.which("ip") is not None, "apt-get install iproute2")
    pid = os.getpid()
    ns = {role: f"pvd-ix-{role}-{pid}" for role in ("lan", "srv", "site", "cli")}
    hosts = {"srv": ("srv0", OURS), "site": ("site0", SITE), "cli": ("cli0", None)}
    for n in ns.values():
        subprocess.run(["ip", "netns", "del", n], capture_output=True, timeout=10)
    cmds = [["ip", "netns", "add", n] for n in ns.values()]
    cmds += [
        ["ip", "-n", ns["lan"], "link", "add", "br0", "type", "bridge", "forward_delay", "0"],
        ["ip", "-n", ns["lan"], "link", "set", "br0", "up"],
    ]
    for role, (ifname, address) in hosts.items():
        port = f"lan-{role}"
        cmds += [
            ["ip", "-n", ns["lan"], "link", "add", port, "type", "veth", "peer", "name", ifname,
             "netns", ns[role]],
            ["ip", "-n", ns["lan"], "link", "set", port, "master", "br0"],
            ["ip", "-n", ns["lan"], "link", "set", port, "up"],
            ["ip", "-n", ns[role], "link", "set", "lo", "up"],
            ["ip", "-n", ns[role], "link", "set", ifname, "up"],
        ]  # fmt: skip
        if address:
            cmds.append(["ip", "-n", ns[role], "addr", "add", f"{address}/24", "dev", ifname])
    lan = Lan(ns, "", tmp_path)
    try:
        for cmd in cmds:
            subprocess.run(cmd, check=True, capture_output=True, timeout=10)
        out = subprocess.run(
            ["ip", "-n", ns["cli"], "-o", "link", "show", "cli0"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        lan.client_mac = out.split("link/ether", 1)[1].split()[0]
        yield lan
    finally:
        for proc in lan.procs:
            _kill(proc)
        for path, name in lan.pid_files:
            _kill_pid_file(path, name)
        for n in ns.values():
            subprocess.run(["ip", "netns", "del", n], capture_output=True, timeout=10)


def start_ours(lan: Lan, *args: str) -> Path:
    """provisiond's DHCP server on srv0 (lan.ours); returns its log (one INFO line per answer)."""
    log = lan.tmp / "ours.log"
    proc = lan.popen(
        "srv", sys.executable, "-m", "pxe.dhcp_server", "--interface", "srv0",
        "--server-address", OURS, *args, log=log, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""  # "dhcp server ready", or "" when it exited
    assert "ready" in line, log.read_text()
    lan.ours = proc
    return log


def start_dnsmasq(lan: Lan) -> Path:
    """The site's DHCP server: addresses from a range, nothing about PXE."""
    _need(shutil.which("dnsmasq") is not None, "apt-get install dnsmasq-base")
    log, pid_file = lan.tmp / "dnsmasq.log", lan.tmp / "dnsmasq.pid"
    lan.pid_files.append((pid_file, "dnsmasq"))
    proc = lan.popen(
        "site", "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
        "--interface=site0", "--bind-interfaces", "--log-facility=-", "--log-dhcp",
        f"--dhcp-range={SITE_RANGE[0]},{SITE_RANGE[1]},255.255.255.0,1h",
        f"--dhcp-leasefile={lan.tmp / 'dnsmasq.leases'}", f"--pid-file={pid_file}",
        log=log,
    )  # fmt: skip
    for _ in range(100):  # up to 10 s
        if proc.poll() is not None or "DHCP, IP range" in log.read_text(errors="replace"):
            break
        time.sleep(0.1)
    assert proc.poll() is None and "DHCP, IP range" in log.read_text(), log.read_text()
    return log


# --- what the client sees ---------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    src: str
    sport: int
    raw: bytes

    @property
    def opts(self) -> dict[int, bytes]:
        return options_of(self.raw)

    @property
    def mtype(self) -> int:
        return self.opts[53][0]

    @property
    def yiaddr(self) -> str:
        return socket.inet_ntoa(self.raw[16:20])

    @property
    def siaddr(self) -> str:
        return socket.inet_ntoa(self.raw[20:24])

    @property
    def giaddr(self) -> str:
        return socket.inet_ntoa(self.raw[24:28])

    @property
    def file(self) -> bytes:
        return self.raw[108:236].split(b"\0", 1)[0]


# One UDP socket on cli0 (SO_BINDTODEVICE = 25): send one datagram, print every BOOTREPLY with
# our xid that arrives within the window as a JSON line; once `want` arrived, wait `grace` more
# for extras. Bounded in count and time.
PROBE = r"""
import json, socket, sys, time
cfg = json.loads(sys.argv[1])
pkt = bytes.fromhex(cfg["send"])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, 25, cfg["device"].encode() + b"\0")
s.bind((cfg["bind"][0], cfg["bind"][1]))
s.sendto(pkt, (cfg["to"][0], cfg["to"][1]))
deadline, got = time.monotonic() + cfg["window"], 0
for _ in range(32):
    left = deadline - time.monotonic()
    if left <= 0:
        break
    s.settimeout(left)
    try:
        data, addr = s.recvfrom(4096)
    except socket.timeout:
        break
    if len(data) < 240 or data[0] != 2 or data[4:8] != pkt[4:8]:
        continue  # not a reply to this probe
    print(json.dumps({"src": addr[0], "sport": addr[1], "hex": data.hex()}), flush=True)
    got += 1
    if got == cfg["want"]:
        deadline = min(deadline, time.monotonic() + cfg["grace"])
"""

# A capture on cli0 (AF_PACKET): every UDP datagram to port 68 on the wire, whoever it is for,
# as JSON lines, until stdin closes or the window ends.
SNIFF = r"""
import json, select, socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((sys.argv[1], 0))
print("ready", flush=True)
def show(frame):
    ip = frame[14:]
    if len(ip) < 28 or ip[9] != 17:
        return
    udp = ip[(ip[0] & 15) * 4:]
    sport, dport = struct.unpack("!HH", udp[:4])
    if dport == 68:
        src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        seen = {"src": src, "dst": dst, "sport": sport, "hex": udp[8:].hex()}
        print(json.dumps(seen), flush=True)
deadline = time.monotonic() + float(sys.argv[2])
for _ in range(10000):
    left = deadline - time.monotonic()
    if left <= 0:
        break
    ready, _, _ = select.select([s, sys.stdin], [], [], left)
    if s in ready:
        show(s.recv(65535))
    if sys.stdin in ready and not sys.stdin.readline():
        break
s.setblocking(False)
for _ in range(1000):
    try:
        show(s.recv(65535))
    except BlockingIOError:
        break
"""


def probe(
    lan: Lan,
    pkt: bytes,
    *,
    to: tuple[str, int] = ("255.255.255.255", 67),
    bind: tuple[str, int] = ("0.0.0.0", 68),
    want: int = 1,
    window: float = 10.0,
    grace: float = 1.0,
) -> list[Reply]:
    cfg = {"send": pkt.hex(), "to": to, "bind": bind, "device": "cli0", "want": want,
           "window": window, "grace": grace}  # fmt: skip
    res = lan.run("cli", sys.executable, "-c", PROBE, json.dumps(cfg), timeout=window + 20)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
    return [Reply(x["src"], x["sport"], bytes.fromhex(x["hex"])) for x in lines]


def by_source(replies: list[Reply], source: str) -> list[Reply]:
    return [r for r in replies if r.src == source]


def in_site_range(address: str) -> bool:
    a = ipaddress.IPv4Address(address)
    return ipaddress.IPv4Address(SITE_RANGE[0]) <= a <= ipaddress.IPv4Address(SITE_RANGE[1])


# --- the peers as clients ---------------------------------------------------------------------

DHCLIENT_SCRIPT = """#!/bin/sh
env > "{dir}/dhclient-$reason.env"
"""


def dhclient(lan: Lan) -> dict[str, str]:
    """Debian's ISC dhclient on cli0, once (-1), foreground, with a script that records its
    environment and changes nothing. Returns the BOUND environment ({} when none); the lease
    file is lan.tmp / "dhclient.leases". Killed afterwards by its pid and its pid file."""
    _need(shutil.which("dhclient") is not None, "apt-get install isc-dhcp-client")
    script, conf = lan.tmp / "dhclient-script", lan.tmp / "dhclient.conf"
    leases, pid_file = lan.tmp / "dhclient.leases", lan.tmp / "dhclient.pid"
    script.write_text(DHCLIENT_SCRIPT.format(dir=lan.tmp))
    script.chmod(0o755)
    conf.write_text("timeout 20;\nretry 1;\ninitial-interval 1;\nselect-timeout 2;\n")
    lan.pid_files.append((pid_file, "dhclient"))
    bound = lan.tmp / "dhclient-BOUND.env"
    proc = lan.popen(
        "cli", "dhclient", "-d", "-1", "-v", "-cf", str(conf), "-sf", str(script),
        "-lf", str(leases), "-pf", str(pid_file), "cli0", log=lan.tmp / "dhclient.log",
    )  # fmt: skip
    try:
        for _ in range(300):  # up to 30 s; dhclient -1 gives up after its 20 s timeout
            if proc.poll() is not None:
                break
            if bound.exists() and "fixed-address" in leases.read_text(errors="replace"):
                break
            time.sleep(0.1)
    finally:
        _kill(proc)
        _kill_pid_file(pid_file, "dhclient")
    if not bound.exists():
        return {}
    env = {}
    for line in bound.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key] = value.strip("'")
    return env


def udhcpc(lan: Lan) -> str:
    _need(shutil.which("busybox") is not None, "apt-get install busybox (for udhcpc)")
    res = lan.run(
        "cli", "busybox", "udhcpc", "-f", "-q", "-n", "-t", "3", "-T", "2", "-i", "cli0",
        "-s", "/bin/true",
    )  # fmt: skip
    return res.stdout + res.stderr


# --- a. authoritative, ISC dhclient -----------------------------------------------------------


def test_dhclient_gets_its_reservation_in_authoritative_mode(lan: Lan) -> None:
    start_ours(lan, "--mode", "authoritative", "--reserve", f"{lan.client_mac}={RESERVED}")
    env = dhclient(lan)
    assert env, (lan.tmp / "dhclient.log").read_text() + (lan.tmp / "ours.log").read_text()
    assert env["new_ip_address"] == RESERVED
    assert env["new_dhcp_server_identifier"] == OURS
    assert env["new_subnet_mask"] == "255.255.255.0"
    assert env["new_dhcp_lease_time"] == "3600"
    lease = (lan.tmp / "dhclient.leases").read_text()
    assert f"fixed-address {RESERVED};" in lease
    assert f"option dhcp-server-identifier {OURS};" in lease
    assert "filename" not in lease  # a plain client gets no boot file


# --- b. proxy mode beside the site's dnsmasq --------------------------------------------------


def test_pxe_client_gets_both_offers_then_its_boot_file_on_4011(lan: Lan) -> None:
    start_dnsmasq(lan)
    ours_log = start_ours(lan, "--mode", "proxy", "--http-base-url", f"http://{OURS}:8750")
    mac = bytes.fromhex(lan.client_mac.replace(":", ""))

    # 1. DISCOVER from 0.0.0.0, broadcast, as a PXE ROM sends it: two offers
    offers = probe(lan, pxe_discover(7, mac=mac), want=2)
    site, ours = by_source(offers, SITE), by_source(offers, OURS)
    assert len(site) == 1 and len(ours) == 1, offers
    (s,), (o,) = site, ours
    assert s.mtype == OFFER and in_site_range(s.yiaddr)
    assert s.file == b"" and 67 not in s.opts and 60 not in s.opts  # no PXE from the site
    assert o.mtype == OFFER and o.yiaddr == "0.0.0.0"
    assert o.opts[60] == b"PXEClient" and o.opts[43] == bytes((6, 1, 8, 255))
    assert o.file == b"ipxe.efi" and o.opts[67] == b"ipxe.efi"
    assert o.siaddr == OURS and o.opts[54] == socket.inet_aton(OURS)

    # 2. the client takes the site's address (REQUEST naming the site server): the site ACKs
    address = s.yiaddr
    request = packet(
        (53, b"\x03"),
        (60, b"PXEClient:Arch:00007:UNDI:003016"),
        (93, struct.pack("!H", 7)),
        (54, socket.inet_aton(SITE)),
        (50, socket.inet_aton(address)),
        mac=mac,
    )
    acks = by_source(probe(lan, request, want=1), SITE)
    assert len(acks) == 1 and acks[0].mtype == ACK and acks[0].yiaddr == address

    # 3. with that address, the boot-server request to us on 4011: an ACK with the boot file,
    # unicast back to where it came from (a socket bound to the address gets no broadcasts)
    assert lan.run("cli", "ip", "addr", "add", f"{address}/24", "dev", "cli0").returncode == 0
    boot_request = packet(
        (53, b"\x03"),
        (60, b"PXEClient:Arch:00007:UNDI:003016"),
        (93, struct.pack("!H", 7)),
        (94, b"\x01\x03\x10"),
        mac=mac,
        ciaddr=address,
        flags=0,
    )
    boot = probe(
        lan,
        boot_request,
        to=(OURS, 4011),
        bind=(address, 68),
        want=1,
    )
    assert len(boot) == 1, boot
    (b,) = boot
    assert (b.src, b.sport) == (OURS, 4011)
    assert b.mtype == ACK and b.yiaddr == "0.0.0.0" and b.raw[4:8] == XID
    assert b.file == b"ipxe.efi" and b.opts[60] == b"PXEClient"
    assert b.opts[54] == socket.inet_aton(OURS)
    log = ours_log.read_text()
    assert f"proxy offer ipxe.efi to {lan.client_mac}" in log
    assert f"proxy ack ipxe.efi to {lan.client_mac}" in log


def test_proxy_mode_stays_silent_when_the_client_requests_the_site_servers_address(
    lan: Lan,
) -> None:
    start_dnsmasq(lan)
    start_ours(lan, "--mode", "proxy", "--http-base-url", f"http://{OURS}:8750")
    mac = bytes.fromhex(lan.client_mac.replace(":", ""))
    offers = probe(lan, pxe_discover(7, mac=mac), want=2)
    (s,) = by_source(offers, SITE)
    request = packet(
        (53, b"\x03"),
        (60, b"PXEClient:Arch:00007:UNDI:003016"),
        (93, struct.pack("!H", 7)),
        (54, socket.inet_aton(SITE)),
        (50, socket.inet_aton(s.yiaddr)),
        mac=mac,
    )
    replies = probe(lan, request, want=2, window=5, grace=1.0)
    assert len(by_source(replies, SITE)) == 1
    assert by_source(replies, OURS) == []  # RFC 2131 4.3.2: not our server id, not ours


@pytest.mark.parametrize("client", ["udhcpc", "dhclient"])
def test_plain_client_gets_its_address_from_the_site_and_we_stay_silent(
    lan: Lan, client: str
) -> None:
    start_dnsmasq(lan)
    ours_log = start_ours(lan, "--mode", "proxy", "--http-base-url", f"http://{OURS}:8750")
    sniffer = lan.popen(
        "cli", sys.executable, "-c", SNIFF, "cli0", "60", log=lan.tmp / "sniff.log",
        stdout=subprocess.PIPE, stdin=subprocess.PIPE,
    )  # fmt: skip
    assert sniffer.stdout is not None and sniffer.stdin is not None
    ready, _, _ = select.select([sniffer.stdout], [], [], 30)
    assert ready and sniffer.stdout.readline().strip() == "ready", (
        lan.tmp / "sniff.log"
    ).read_text()
    if client == "udhcpc":
        out = udhcpc(lan)
        assert f"obtained from {SITE}" in out, out
    else:
        env = dhclient(lan)
        assert env, (lan.tmp / "dhclient.log").read_text()
        assert env["new_dhcp_server_identifier"] == SITE
        assert in_site_range(env["new_ip_address"])
    captured, _ = sniffer.communicate(input="", timeout=30)  # stdin closed: the capture stops
    seen = [json.loads(x) for x in captured.splitlines() if x.strip()]
    assert any(x["src"] == SITE for x in seen), seen  # the capture works: the site's answers
    assert [x for x in seen if x["src"] == OURS] == []  # and nothing from us on the wire
    assert lan.client_mac not in ours_log.read_text()
    assert lan.ours is not None and lan.ours.poll() is None  # our server is still up


# --- c. relay ---------------------------------------------------------------------------------

RELAY = "198.51.100.50"
REMOTE_MAC = "52:54:00:00:01:99"  # a client behind the relay, on another segment


@pytest.mark.parametrize("mode", ["authoritative", "proxy"])
def test_relayed_discover_is_answered_to_the_relay(lan: Lan, mode: str) -> None:
    args = ["--mode", mode, "--reserve", f"{REMOTE_MAC}=198.51.100.77"]
    start_ours(lan, *args, "--http-base-url", f"http://{OURS}:8750")
    # the client namespace plays the relay agent (ip helper-address): an address, port 67,
    # the client's DISCOVER forwarded by unicast with giaddr set and the hop count raised
    assert lan.run("cli", "ip", "addr", "add", f"{RELAY}/24", "dev", "cli0").returncode == 0
    relayed = bytearray(
        pxe_discover(0, mac=bytes.fromhex(REMOTE_MAC.replace(":", "")), giaddr=RELAY, flags=0)
    )
    relayed[3] = 1  # hops
    replies = probe(lan, bytes(relayed), to=(OURS, 67), bind=(RELAY, 67), want=1, grace=0.5)
    assert len(replies) == 1, replies
    (r,) = replies
    assert (r.src, r.sport) == (OURS, 67)  # unicast to giaddr:67, from the server port
    assert r.mtype == OFFER and r.giaddr == RELAY and r.raw[4:8] == XID
    assert r.raw[28:34] == bytes.fromhex(REMOTE_MAC.replace(":", ""))
    assert r.yiaddr == ("198.51.100.77" if mode == "authoritative" else "0.0.0.0")
    assert r.file == b"undionly.kpxe"
