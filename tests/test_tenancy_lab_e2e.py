"""Tenancy end to end on the lab with real components only: a real daemon (`provisiond serve`),
real IPMI to lab BMCs whose hosts PXE-boot over HTTP from the daemon and call back when their
image is up, the lab Arista EOS switch over SSH and the lab NVIDIA UFM over its REST API.

Two tenants get a VLAN and a P_Key; each allocates two nodes. Every state change comes from the
daemon's engine and the lab hosts' call-backs. What the switch and the UFM hold is read from
them directly (SSH, REST), never from the daemon: ports in their tenant's VLAN, GUIDs full
members of their tenant's partition and of no other. The isolation audit proves it, catches a
port moved by hand over SSH, and the release brings every port back to the provisioning VLAN
and every GUID out of the tenants' partitions before the nodes leave their tenants."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.switch.dialects.arista_eos import AristaEosDialect
from tests.support.daemon import Daemon
from tests.support.labbmc import Lab, lab_bmc
from tests.support.labswitch import LabSwitch, lab_switch
from tests.support.labufm import LabUfmProc, lab_ufm

NODES = [f"tn{i:02d}" for i in range(1, 5)]
GUID = {n: 0x0002C903000C0000 + i for i, n in enumerate(NODES, 1)}
PROVISIONING_VLAN, QUARANTINE_VLAN = 100, 199
UFM_TOKEN = "lab-ufm-e2e-token"
HTTP_TIMEOUT = 60.0  # the audit, drift and apply calls talk to the switch over SSH


def _rack(bmc_base: int, eos: LabSwitch) -> str:
    """Rack tn: the lab EOS switch and four nodes, each with its PXE NIC on one of its ports
    and one InfiniBand port. The same file tells the lab BMCs which hosts they front."""
    lines = [
        "rack: tn",
        "switches:",
        "  - name: leaf1",
        "    driver: arista_eos",
        "    address: 127.0.0.1",
        f"    port: {eos.port}",
        f"    username: {eos.username}",
        f"    password: {eos.password}",
        '    allowed_vlans: "100-199"',
        f"    provisioning_vlan: {PROVISIONING_VLAN}",
        f"    quarantine_vlan: {QUARANTINE_VLAN}",
        "nodes:",
    ]
    for i, name in enumerate(NODES):
        lines += [
            f"  - name: {name}",
            f"    unit: {i + 1}",
            f"    bmc: {{driver: ipmi, address: 127.0.0.1, port: {bmc_base + i}, "
            "username: admin, password: password}",
            "    nics:",
            f'      - {{mac: "52:54:00:0c:00:{i + 1:02x}", kind: ethernet, pxe: true, '
            f"switch: leaf1, port: {eos.port_name(i + 1)}}}",
            f'      - {{guid: "0x{GUID[name]:016x}", kind: infiniband}}',
        ]
    return "\n".join(lines) + "\n"


def _api(d: Daemon, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
    """One API call with a generous timeout; asserts the status, returns the JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        d.url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {d.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    out = json.loads(raw) if raw else None
    assert status == expect, (method, path, status, out)
    return out


def _until(check: Callable[[], tuple[bool, Any]], timeout: float, what: str, tails: Any) -> Any:
    """Poll ``check`` (bounded in time and count) until it says done; its detail of the last
    look is in the failure message."""
    deadline = time.monotonic() + timeout
    detail: Any = None
    for _ in range(int(timeout / 0.3) + 1):
        done, detail = check()
        if done:
            return detail
        if time.monotonic() >= deadline:
            break
        time.sleep(0.3)
    raise AssertionError(f"not reached in {timeout:g}s: {what}; last seen: {detail}\n{tails()}")


def _switch_vlans(eos: LabSwitch) -> dict[str, int | None]:
    """Node -> the access VLAN of its port, read from the lab switch over SSH."""
    ports = {n: eos.port_name(i) for i, n in enumerate(NODES, 1)}
    conn = eos.connect()
    try:
        conn.enable()
        out = "\n".join(
            str(conn.send_command(f"show running-config interfaces {p}")) for p in ports.values()
        )
    finally:
        conn.disconnect()
    parsed = AristaEosDialect().parse_ports(out)
    return {n: parsed[p].vlan if p in parsed else None for n, p in ports.items()}


def _ufm_placement(ufm: LabUfmProc) -> dict[str, set[int]]:
    """Node -> the P_Keys the UFM holds its GUID in (read over the UFM's REST API)."""
    held = ufm.members()
    return {n: {pkey for pkey, members in held.items() if GUID[n] in members} for n in NODES}


def _wait_op(d: Daemon, op_id: str, what: str, tails: Any, timeout: float = 60) -> None:
    def check() -> tuple[bool, Any]:
        op = _api(d, "GET", f"/v1/operations/{op_id}")
        return op["state"] in ("succeeded", "failed"), op

    op = _until(check, timeout, what, tails)
    assert op["state"] == "succeeded", (what, op, tails())


def test_tenants_on_the_lab(tmp_path: Path, daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(f"sqlite:///{tmp_path / 'p.db'}")
    d.config.write_text(
        d.config.read_text()
        + "[drivers.ipmi]\nmin_interval = 0\n"
        + "[drivers.netmiko]\nread_timeout = 10\n"
        + "[switches]\ninterval = 0.2\n"
        + "[fabrics]\ninterval = 0.2\n"
    )
    assets = tmp_path / "data" / "assets"
    (assets / "img").mkdir(parents=True, exist_ok=True)
    (assets / "img" / "vmlinuz").write_bytes(b"stand-in img/vmlinuz")
    d.start()
    d.make_token()
    lab_file = tmp_path / "lab-rack.yaml"

    with (
        lab_switch("arista_eos", tmp_path) as eos,
        lab_ufm(tmp_path / "ufm", UFM_TOKEN) as ufm,
    ):

        def lab_args(base: int) -> list[str]:
            lab_file.write_text(_rack(base, eos))
            return ["--rack", str(lab_file), "--boot-url", d.url, "--post-delay", "0.2"]

        with lab_bmc(len(NODES), tmp=tmp_path / "lab", extra_args=lab_args) as lab:
            _scenario(d, eos, ufm, lab, tmp_path)


def _scenario(d: Daemon, eos: LabSwitch, ufm: LabUfmProc, lab: Lab, tmp_path: Path) -> None:
    def tails() -> str:
        daemon_log = (tmp_path / "daemon.log").read_text(errors="replace")
        return (
            f"--- daemon.log\n{daemon_log[-3000:]}\n--- lab bmc\n{lab.log_text()[-1500:]}\n"
            f"--- lab ufm\n{ufm.log_text()[-1000:]}\n--- lab switch\n"
            f"{eos.log.read_text(errors='replace')[-1000:]}"
        )

    # 1. the rack (its switch with it), the fabric, managed and provided for real over IPMI
    status, out = d.call("POST", "/v1/racks/tn/enroll", _rack(lab.base_port, eos).encode(),
                         "text/yaml")  # fmt: skip
    assert status == 201, out
    _api(d, "POST", "/v1/fabrics", {
        "name": "ufm0", "driver": "ufm", "pkey_range": "0x0100-0x01ff",
        "settings": {"url": ufm.url, "auth": "token", "token": UFM_TOKEN},
    }, expect=201)  # fmt: skip
    managed = {n: _api(d, "POST", f"/v1/nodes/{n}/actions/manage", {}, 202)["id"] for n in NODES}
    for n, op_id in managed.items():
        _wait_op(d, op_id, f"{n} managed", tails)
    provided = {n: _api(d, "POST", f"/v1/nodes/{n}/actions/provide", {}, 202)["id"] for n in NODES}
    for n, op_id in provided.items():
        _wait_op(d, op_id, f"{n} available", tails)
    for n in NODES:
        node = _api(d, "GET", f"/v1/nodes/{n}")
        assert node["state"] == "available" and node["tenant"] is None, node
    sha = hashlib.sha256(b"stand-in img/vmlinuz").hexdigest()
    _api(d, "POST", "/v1/images", {"name": "img", "kernel": "img/vmlinuz",
                                   "kernel_sha256": sha, "cmdline": "ro"}, expect=201)  # fmt: skip

    # 2. two tenants: a VLAN each (the same on every switch) and a P_Key each on the fabric
    acme = _api(d, "POST", "/v1/tenants", {"name": "acme"}, expect=201)
    globex = _api(d, "POST", "/v1/tenants", {"name": "globex"}, expect=201)
    vlan = {"acme": acme["vlan"], "globex": globex["vlan"]}
    assert len(set(vlan.values())) == 2, vlan
    assert all(101 <= v <= 198 for v in vlan.values()), vlan
    pkey: dict[str, int] = {}
    for t in (acme, globex):
        assert [k["fabric"] for k in t["pkeys"]] == ["ufm0"], t
        pkey[t["name"]] = int(t["pkeys"][0]["pkey"], 16)
    assert len(set(pkey.values())) == 2 and all(0x100 <= k <= 0x1FF for k in pkey.values())

    def keys_on_ufm() -> tuple[bool, Any]:
        held = ufm.members()
        return all(held.get(k) == set() for k in pkey.values()), held

    _until(keys_on_ufm, 30, "both tenants' keys created (empty) on the UFM", tails)

    # 3. two nodes each: deployed for real (the lab hosts boot the image and call back)
    a = _api(d, "POST", "/v1/tenants/acme/allocations", {"count": 2, "image": "img"}, 201)
    g = _api(d, "POST", "/v1/tenants/globex/allocations", {"count": 2, "image": "img"}, 201)
    for alloc in (a, g):
        assert not alloc["errors"] and len(alloc["operations"]) == 2, alloc
    owner = {n["name"]: t for t, alloc in (("acme", a), ("globex", g)) for n in alloc["nodes"]}
    assert sorted(owner) == NODES, owner

    def in_tenants() -> tuple[bool, Any]:
        nodes = {n: _api(d, "GET", f"/v1/nodes/{n}") for n in NODES}
        states = {n: (v["state"], v["tenant"], v["power_state"]) for n, v in nodes.items()}
        if states != {n: ("active", owner[n], "on") for n in NODES}:
            return False, states
        placed = _ufm_placement(ufm)
        if placed != {n: {pkey[owner[n]]} for n in NODES}:
            return False, {"ufm": placed}
        seen = _switch_vlans(eos)
        return seen == {n: vlan[owner[n]] for n in NODES}, {"switch": seen}

    _until(in_tenants, 90, "nodes active, ports in their tenant's VLAN, GUIDs in its key", tails)
    held = ufm.members()
    for t in ("acme", "globex"):
        # the UFM's own view: each tenant's key holds exactly that tenant's GUIDs
        assert held[pkey[t]] == {GUID[n] for n in NODES if owner[n] == t}, held
    for op_id in (*a["operations"].values(), *g["operations"].values()):
        _wait_op(d, op_id, "deploy operation", tails)

    # 4. the audit, reading the switch and the UFM, proves isolation
    report = _api(d, "GET", "/v1/fabric/audit")
    assert report["ok"], report["violations"]
    assert report["checked"]["ports"] == 4 and report["checked"]["guids"] == 4, report

    # 5. a port of globex moved by hand (SSH) into acme's VLAN: the audit names exactly it
    victim = next(n for n in NODES if owner[n] == "globex")
    victim_port = eos.port_name(NODES.index(victim) + 1)
    conn = eos.connect()
    try:
        conn.enable()
        conn.send_config_set([f"interface {victim_port}", f"switchport access vlan {vlan['acme']}"])
    finally:
        conn.disconnect()
    assert _switch_vlans(eos)[victim] == vlan["acme"]
    caught = _api(d, "GET", "/v1/fabric/audit")
    assert not caught["ok"], caught
    assert {v["where"] for v in caught["violations"]} == {f"switch leaf1 port {victim_port}"}
    assert any(v["kind"] == "outsider" and f"node {victim}" in v["detail"]
               for v in caught["violations"]), caught["violations"]  # fmt: skip
    _api(d, "POST", "/v1/switches/leaf1/drift")
    _api(d, "POST", "/v1/switches/leaf1/apply?retry=true")

    def repaired() -> tuple[bool, Any]:
        seen = _switch_vlans(eos)
        return seen == {n: vlan[owner[n]] for n in NODES}, seen

    _until(repaired, 30, f"{victim_port} back in globex's VLAN", tails)
    again = _api(d, "GET", "/v1/fabric/audit")
    assert again["ok"], again["violations"]

    # 6. release both: power off and cleaning (IPMI), ports and GUIDs out of the tenants'
    # networks, and only then the nodes leave their tenants
    for alloc in (a, g):
        out = _api(d, "DELETE", f"/v1/allocations/{alloc['id']}", expect=202)
        assert not out["errors"] and len(out["operations"]) == 2, out

    def released() -> tuple[bool, Any]:
        nodes = {n: _api(d, "GET", f"/v1/nodes/{n}") for n in NODES}
        states = {n: (v["state"], v["tenant"], v["power_state"]) for n, v in nodes.items()}
        if states != {n: ("available", None, "off") for n in NODES}:
            return False, states
        placed = _ufm_placement(ufm)
        if any(placed.values()):
            return False, {"ufm": placed}
        seen = _switch_vlans(eos)
        return set(seen.values()) == {PROVISIONING_VLAN}, {"switch": seen}

    _until(released, 90, "nodes out of their tenants, ports on provisioning, keys empty", tails)
    held = ufm.members()
    assert all(held[k] == set() for k in pkey.values()), held
    for alloc in (a, g):
        done = _api(d, "GET", f"/v1/allocations/{alloc['id']}")
        assert done["state"] == "released" and done["nodes"] == [], done
    for t in ("acme", "globex"):
        assert _api(d, "GET", f"/v1/tenants/{t}")["nodes"] == 0
    final = _api(d, "GET", "/v1/fabric/audit")
    assert final["ok"], final["violations"]
    assert final["checked"]["ports"] == 4 and final["checked"]["guids"] == 0, final
