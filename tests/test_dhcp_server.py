"""The DHCP server for real: a network namespace this test creates (veth pair srv0 <-> cli0,
198.51.100.0/24, a documentation range with no route out), our server bound to srv0, and Debian's
busybox udhcpc as the independent client on cli0. Proxy mode is checked with a PXE DISCOVER
broadcast from inside the namespace. Namespaces and processes are removed by name and pid.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisiond.procs import stop_group
from tests.support.peers import missing
from tests.test_dhcp import options_of, pxe_discover

ROOT = Path(__file__).resolve().parents[1]
SERVER_IP = "198.51.100.1"


def _need(cond: bool, why: str) -> None:
    if not cond:
        missing(why)


@dataclass
class Net:
    ns: str  # the server's namespace (srv0)
    client_ns: str  # the client's (cli0): a host of its own, as on a real boot network
    client_mac: str

    def run(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run in the client's namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.client_ns, *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture
def net() -> Iterator[Net]:
    _need(os.geteuid() == 0, "needs root for network namespaces (ip netns)")
    _need(shutil.which("ip") is not None, "apt-get install iproute2")
    _need(shutil.which("busybox") is not None, "apt-get install busybox (for udhcpc)")
    ns, cns = f"pvd-dhcp-{os.getpid()}", f"pvd-dhcpc-{os.getpid()}"
    for n in (ns, cns):
        subprocess.run(["ip", "netns", "del", n], capture_output=True)
    cmds = [
        ["ip", "netns", "add", ns],
        ["ip", "netns", "add", cns],
        [
            "ip",
            "-n",
            ns,
            "link",
            "add",
            "srv0",
            "type",
            "veth",
            "peer",
            "name",
            "cli0",
            "netns",
            cns,
        ],
        ["ip", "-n", ns, "addr", "add", f"{SERVER_IP}/24", "dev", "srv0"],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
        ["ip", "-n", ns, "link", "set", "srv0", "up"],
        ["ip", "-n", cns, "link", "set", "lo", "up"],
        ["ip", "-n", cns, "link", "set", "cli0", "up"],
    ]
    try:
        for cmd in cmds:
            subprocess.run(cmd, check=True, capture_output=True, timeout=10)
        out = subprocess.run(
            ["ip", "-n", cns, "-o", "link", "show", "cli0"], capture_output=True, text=True
        ).stdout
        mac = out.split("link/ether", 1)[1].split()[0]
        yield Net(ns, cns, mac)
    finally:
        for n in (ns, cns):
            subprocess.run(["ip", "netns", "del", n], capture_output=True, timeout=10)


@pytest.fixture
def server(
    net: Net, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[subprocess.Popen[str]]:
    args: list[str] = getattr(request, "param", [])
    cmd = [
        "ip", "netns", "exec", net.ns, sys.executable, "-m", "pxe.dhcp_server",
        "--interface", "srv0", "--server-address", SERVER_IP,
        *[a.replace("{mac}", net.client_mac) for a in args],
    ]  # fmt: skip
    log = tmp_path / "dhcp-server.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            cwd=ROOT,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "dhcp server ready", or "" when it exited
        assert "ready" in line, log.read_text()
        yield proc
    finally:
        stop_group(proc)


def udhcpc(net: Net) -> subprocess.CompletedProcess[str]:
    return net.run(
        "busybox", "udhcpc", "-f", "-q", "-n", "-t", "3", "-T", "2", "-i", "cli0", "-s", "/bin/true"
    )


@pytest.mark.parametrize(
    "server", [["--mode", "authoritative", "--reserve", "{mac}=198.51.100.11"]], indirect=True
)
def test_udhcpc_gets_its_reservation(net: Net, server: subprocess.Popen[str]) -> None:
    res = udhcpc(net)
    assert "lease of 198.51.100.11 obtained from 198.51.100.1" in res.stdout + res.stderr, (
        res.stdout + res.stderr
    )


@pytest.mark.parametrize("server", [["--mode", "authoritative"]], indirect=True)
def test_udhcpc_without_reservation_gets_nothing(net: Net, server: subprocess.Popen[str]) -> None:
    res = udhcpc(net)
    assert res.returncode != 0
    assert "no lease" in res.stdout + res.stderr


PROBE = r"""
import socket, struct, sys
pkt = bytes.fromhex(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, 25, b"cli0\0")
s.bind(("0.0.0.0", 68))
s.settimeout(5)
for junk in (b"", b"\x01" * 10, b"\x00" * 300):  # malformed first: the server must survive them
    s.sendto(junk, ("255.255.255.255", 67))
s.sendto(pkt, ("255.255.255.255", 67))
data, addr = s.recvfrom(4096)
print(data.hex())
"""


@pytest.mark.parametrize(
    "server", [["--mode", "proxy", "--http-base-url", "http://198.51.100.1:8750"]], indirect=True
)
def test_proxy_mode_answers_a_pxe_discover_with_boot_options(
    net: Net, server: subprocess.Popen[str]
) -> None:
    mac = bytes.fromhex(net.client_mac.replace(":", ""))
    # a plain UDP socket needs an address to send from (udhcpc uses a packet socket instead);
    # the probe's address does not enter the DHCP payload (ciaddr stays 0.0.0.0)
    net.run("ip", "addr", "add", "198.51.100.50/24", "dev", "cli0")
    res = net.run(sys.executable, "-c", PROBE, pxe_discover(0, mac=mac).hex(), timeout=20)
    assert res.returncode == 0, res.stderr
    reply = bytes.fromhex(res.stdout.strip())
    opts = options_of(reply)
    assert reply[16:20] == bytes(4)  # proxy: no address
    assert reply[108:121] == b"undionly.kpxe"
    assert opts[60] == b"PXEClient"
    assert opts[54] == socket.inet_aton(SERVER_IP)
    assert opts[43] == bytes((6, 1, 8, 255))
    assert reply[4:8] == struct.pack("!I", 0xDEADBEEF)


@pytest.mark.parametrize(
    "server", [["--mode", "proxy", "--http-base-url", "http://198.51.100.1:8750"]], indirect=True
)
def test_proxy_mode_stays_silent_for_a_plain_dhcp_client(
    net: Net, server: subprocess.Popen[str]
) -> None:
    res = udhcpc(net)
    assert "no lease" in res.stdout + res.stderr
    time.sleep(0.2)
    assert server.poll() is None
