"""The daemon's own boot network, for real: `provisiond serve` with [pxe] mode authoritative in a
network namespace this test creates, bound to its veth end; a second namespace is the node.
Debian's busybox udhcpc gets the address reserved in the rack file (looked up in the inventory),
Debian's tftp-hpa client fetches undionly.kpxe from our TFTP, the node's script comes over
HTTP, and each stage shows up in the node's events."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nsdaemon import NsDaemon
from tests.support.peers import missing
from tests.test_dhcp_server import SERVER_IP, Net, net, udhcpc

__all__ = ["net"]  # the namespace fixture, shared with test_dhcp_server
NODE_IP = "198.51.100.50"


@pytest.fixture
def daemon(net: Net, tmp_path: Path) -> Iterator[NsDaemon]:
    if shutil.which("tftp") is None:
        missing("apt-get install tftp-hpa (the TFTP client)")
    if not Path("/usr/lib/ipxe/undionly.kpxe").is_file():
        missing("apt-get install ipxe (the boot loaders)")
    d = NsDaemon(
        net.ns,
        SERVER_IP,
        tmp_path,
        pxe=f'mode = "authoritative"\ninterface = "srv0"\nserver_address = "{SERVER_IP}"\n'
        f'tftp_listen = "{SERVER_IP}:69"',
    )
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
    assert (
        res.returncode == 0 and out.read_bytes() == Path("/usr/lib/ipxe/undionly.kpxe").read_bytes()
    ), (res, daemon.log())
    # the same script is a per-node file over TFTP (for DHCP servers that can only say TFTP);
    # iPXE's ${net0/mac:hexhyp} form: a colon would read as HOST:FILE to TFTP clients
    got = tmp_path / "script.ipxe"
    dashed = net.client_mac.replace(":", "-")
    res = net.run("tftp", "-m", "binary", SERVER_IP, "-c", "get", f"ipxe/{dashed}", str(got))
    assert res.returncode == 0 and got.read_text().startswith("#!ipxe"), (res, daemon.log())
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
