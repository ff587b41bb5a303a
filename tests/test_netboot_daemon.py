"""The daemon's own boot network, for real: `provisiond serve` with [pxe] mode authoritative in a
network namespace this test creates, bound to its veth end; a second namespace is the node.
Debian's busybox udhcpc gets the address reserved in the rack file (looked up in the inventory),
Debian's tftp-hpa client fetches undionly.kpxe from our TFTP, the node's script comes over
HTTP, and each stage shows up in the node's events."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import ROOT, free_port
from tests.support.peers import missing
from tests.test_dhcp_server import SERVER_IP, Net, net, udhcpc

__all__ = ["net"]  # the namespace fixture, shared with test_dhcp_server
NODE_IP = "198.51.100.50"


class NsDaemon:
    def __init__(self, net: Net, tmp: Path) -> None:
        self.net = net
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://{SERVER_IP}:{self.port}"
        self.config = tmp / "provisiond.toml"
        self.config.write_text(
            "\n".join(
                [
                    f'data_dir = "{tmp / "data"}"',
                    f'listen = "0.0.0.0:{self.port}"',
                    "[engine]",
                    "poll_seconds = 0.2",
                    "[power_sync]",
                    "enabled = false",
                    "[drivers.bmc]",
                    'fake = "tests.support.fakebmc:FakeBmc"',
                    "[pxe]",
                    'mode = "authoritative"',
                    'interface = "srv0"',
                    f'server_address = "{SERVER_IP}"',
                    f'tftp_listen = "{SERVER_IP}:69"',
                ]
            )
            + "\n"
        )
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""

    def start(self) -> None:
        with open(self.tmp / "daemon.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.net.ns, sys.executable, "-m", "provisiond.cli",
                 "serve", "--config", str(self.config)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp,
                start_new_session=True,
            )  # fmt: skip
        end = time.monotonic() + 40
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.log()
            if self.http("GET", "/healthz", auth=False)[0] == 200:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"daemon not healthy in 40 s:\n{self.log()}")
        out = subprocess.run(
            [sys.executable, "-m", "provisiond.cli", "token", "create", "--role", "admin",
             "--name", "t", "--config", str(self.config)],
            env=self.env, capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        self.token = out.stdout.strip()

    def log(self) -> str:
        return (self.tmp / "daemon.log").read_text(errors="replace")[-3000:]

    def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: bool = True,
        ns: str | None = None,
        ctype: str = "application/json",
    ) -> tuple[int, str]:
        """An HTTP request made from inside a namespace (the server's by default)."""
        code = (
            "import json,sys,urllib.request,urllib.error\n"
            "a=json.loads(sys.argv[1])\n"
            "r=urllib.request.Request(a['url'],data=a['body'] and a['body'].encode(),"
            "method=a['method'],headers=a['headers'])\n"
            "try:\n"
            "  resp=urllib.request.urlopen(r,timeout=10); print(resp.status); "
            "print(resp.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "  print(e.code); print(e.read().decode())\n"
            "except OSError as e:\n"
            "  print(0); print(e)\n"
        )
        headers = {"Content-Type": ctype}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        arg = json.dumps(
            {
                "url": self.url + path,
                "method": method,
                "headers": headers,
                "body": body if isinstance(body, str) or body is None else json.dumps(body),
            }
        )
        res = subprocess.run(
            ["ip", "netns", "exec", ns or self.net.ns, sys.executable, "-c", code, arg],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        status, _, text = res.stdout.partition("\n")
        return int(status or 0), text

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


@pytest.fixture
def daemon(net: Net, tmp_path: Path) -> Iterator[NsDaemon]:
    if shutil.which("tftp") is None:
        missing("apt-get install tftp-hpa (the TFTP client)")
    if not Path("/usr/lib/ipxe/undionly.kpxe").is_file():
        missing("apt-get install ipxe (the boot loaders)")
    d = NsDaemon(net, tmp_path)
    try:
        d.start()
        yield d
    finally:
        d.stop()


def test_daemon_serves_dhcp_tftp_and_script_from_the_inventory(
    daemon: NsDaemon, net: Net, tmp_path: Path
) -> None:
    rack = (
        "rack: nb\nnodes:\n  - name: nb01\n    unit: 1\n"
        "    bmc: {driver: fake, address: 127.0.0.1, port: 7001, username: a, password: b}\n"
        f'    nics:\n      - {{mac: "{net.client_mac}", kind: ethernet, pxe: true, '
        f"ip: {NODE_IP}}}\n"
    )
    status, text = daemon.http("POST", "/v1/racks/nb/enroll", rack, ctype="application/yaml")
    assert status == 201, text
    # DHCP: the reservation comes from the rack file, through the inventory
    res = udhcpc(net)
    assert f"lease of {NODE_IP} obtained" in res.stdout + res.stderr, (res, daemon.log())
    # TFTP: the loader, byte for byte, from the daemon's own root
    net.run("ip", "addr", "add", f"{NODE_IP}/24", "dev", "cli0")
    out = tmp_path / "undionly.kpxe"
    res = net.run("tftp", "-m", "binary", SERVER_IP, "-c", "get", "undionly.kpxe", str(out))
    assert res.returncode == 0 and out.read_bytes() == Path(
        "/usr/lib/ipxe/undionly.kpxe"
    ).read_bytes(), (res, daemon.log())
    # HTTP from the node's namespace: its script (enrolled, no operation: local disk)
    status, text = daemon.http(
        "GET", f"/boot/ipxe?mac={net.client_mac}", auth=False, ns=net.client_ns
    )
    assert status == 200 and text.startswith("#!ipxe") and "exit" in text, text
    # each stage is an event of the node
    for _ in range(50):
        status, text = daemon.http("GET", "/v1/nodes/nb01/events?kind=pxe")
        msgs = [e["message"] for e in json.loads(text)["items"]]
        if any(m.startswith("TFTP: sent undionly.kpxe") for m in msgs):
            break
        time.sleep(0.2)
    assert any(m.startswith("DHCP: authoritative") for m in msgs), msgs
    assert any(m.startswith("TFTP: sent undionly.kpxe") for m in msgs), msgs
    assert any(m.startswith("iPXE script: local disk") for m in msgs), msgs
