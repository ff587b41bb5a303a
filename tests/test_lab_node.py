"""Lab nodes end to end: a real daemon, real lab IPMI BMCs, and behind each BMC a lab host that,
powered on with a PXE override, fetches its iPXE script over HTTP, downloads kernel and initrd,
runs the real agent against a fixture tree and posts the report. Inspect and deploy complete
without a VM; a cabling error (the enrolled rack file disagrees with where the cable really is)
is reported from LLDP."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.daemon import Daemon, wait_for
from tests.support.labbmc import lab_bmc


def _rack(base: int, ports: dict[int, str]) -> str:
    lines = ["rack: lb", "nodes:"]
    for i in range(3):
        lines += [
            f"  - name: lb{i + 1:02d}",
            f"    unit: {i + 1}",
            f"    bmc: {{driver: ipmi, address: 127.0.0.1, port: {base + i}, "
            "username: admin, password: password}",
            "    nics:",
            f'      - {{mac: "52:54:00:0b:00:{i + 1:02x}", kind: ethernet, pxe: true, '
            f"switch: leaf9, port: {ports.get(i, f'swp{i + 1}')}}}",
            f'      - {{guid: "0x0002c903000b00{i + 1:02x}", kind: infiniband}}',
        ]
    return "\n".join(lines) + "\n"


def _op_done(d: Daemon, op_id: str) -> Any:
    status, body = d.call("GET", f"/v1/operations/{op_id}")
    assert status == 200, body
    return body if body["state"] in ("succeeded", "failed") else None


def _act(d: Daemon, node: str, action: str, **body: Any) -> str:
    import json

    status, out = d.call("POST", f"/v1/nodes/{node}/actions/{action}", json.dumps(body).encode())
    assert status == 202, out
    return str(out["id"])


def test_lab_nodes_inspect_and_deploy(
    tmp_path: Path, daemon_factory: Callable[..., Daemon]
) -> None:
    d = daemon_factory(f"sqlite:///{tmp_path / 'p.db'}")
    d.config.write_text(d.config.read_text() + "[drivers.ipmi]\nmin_interval = 0\n")
    assets = tmp_path / "data" / "assets"
    for rel in ("inspect/vmlinuz", "inspect/initrd.img", "img/vmlinuz"):
        (assets / rel).parent.mkdir(parents=True, exist_ok=True)
        (assets / rel).write_bytes(f"stand-in {rel}".encode())
    d.start()
    d.make_token()
    lab_file = tmp_path / "lab-rack.yaml"

    def lab_args(base: int) -> list[str]:
        # the cable of lb02 is really in swp7, not where the enrolled file says (swp2)
        lab_file.write_text(_rack(base, {1: "swp7"}))
        return ["--rack", str(lab_file), "--boot-url", d.url, "--post-delay", "0.2"]

    with lab_bmc(3, tmp=tmp_path / "lab", extra_args=lab_args) as lab:
        status, body = d.call(
            "POST", "/v1/racks/lb/enroll", _rack(lab.base_port, {}).encode(), "text/yaml"
        )
        assert status == 201, body
        names = ["lb01", "lb02", "lb03"]
        managed = {n: _act(d, n, "manage") for n in names}
        for n, op_id in managed.items():
            op = wait_for(lambda op_id=op_id: _op_done(d, op_id), 60, f"{n} managed")
            assert op["state"] == "succeeded", op
        ops = {n: _act(d, n, "inspect") for n in ("lb01", "lb02")}
        for n, op_id in ops.items():
            op = wait_for(lambda op_id=op_id: _op_done(d, op_id), 120, f"{n} inspected")
            assert op["state"] == "succeeded", (op, lab.log_text()[-2000:])
        _, node = d.call("GET", "/v1/nodes/lb02")
        found = node["facts"]["inspection"]
        assert node["state"] == "manageable" and node["power_state"] == "off"
        assert found["boot_mac"] == "52:54:00:0b:00:02"
        assert {"component": "nic:eno1", "version": "4.40 0x8001c967 1.3534.0",
                "source": "ethtool"} in found["firmware"]  # fmt: skip
        assert [i["port_guid"] for i in found["infiniband"]] == ["0x0002c903000b0002"]
        # the cabling error is reported; the inventory (what switch automation configures)
        # is not moved by a report, which a host on the boot network could forge
        eth = next(n for n in node["nics"] if n["kind"] == "ethernet")
        assert (eth["switch"], eth["port"]) == ("leaf9", "swp2")
        _, events = d.call("GET", "/v1/nodes/lb02/events?kind=inspect")
        assert any(
            "is at leaf9 swp7 per LLDP, the inventory says leaf9 swp2" in e["message"]
            for e in events["items"]
        ), events
        _, events = d.call("GET", "/v1/nodes/lb01/events?kind=pxe")
        assert any("inspection ramdisk" in e["message"] for e in events["items"]), events

        sha = hashlib.sha256(b"stand-in img/vmlinuz").hexdigest()
        status, body = d.call(
            "POST",
            "/v1/images",
            b'{"name": "img", "kernel": "img/vmlinuz", "kernel_sha256": "%s", "cmdline": "ro"}'
            % sha.encode(),
        )
        assert status == 201, body
        provide = _act(d, "lb03", "provide")
        op = wait_for(lambda: _op_done(d, provide), 60, "lb03 available")
        assert op["state"] == "succeeded", op
        op_id = _act(d, "lb03", "deploy", image="img")
        op = wait_for(lambda: _op_done(d, op_id), 120, "lb03 deployed")
        assert op["state"] == "succeeded", (op, lab.log_text()[-2000:])
        _, node = d.call("GET", "/v1/nodes/lb03")
        assert node["state"] == "active" and node["power_state"] == "on"
