"""Benchmark: allocate and release N lab nodes across T tenants, end to end, and how the wall time
compares with each component doing its own share of the work alone.

Everything is real and on loopback: ``provisiond serve`` (SQLite), N lab IPMI BMCs with the lab
hosts behind them (powered on with PXE set they fetch their iPXE script, kernel and initrd from
the daemon and call back ``deployed``), R lab Arista EOS switches over SSH (one per rack, a port
per node) and a lab NVIDIA UFM (one P_Key per tenant). The daemon runs on its defaults
(``[drivers.ipmi] min_interval`` 1 s, switch and fabric passes every 2 s).

1. full: racks enrolled with their switch ports and IB GUIDs, nodes managed and provided, T
   tenants (a VLAN and a P_Key each). Measured: T allocation requests of N/T nodes at once, until
   every node is active, every port is in its tenant's VLAN (read back by the daemon) and every
   GUID is in its tenant's partition on the UFM; then every allocation released at once, until
   all are ``released`` (nodes available, ports on provisioning, GUIDs out). When each component
   finished its part is printed too.
2. alone, on a fresh daemon and freshly started lab switches and UFM, each component doing only
   its share of the same work:
   - BMC: the same allocations and releases of nodes enrolled without switch ports or GUIDs
     (engine, IPMI, lab boots, call-backs);
   - switch: the same port moves through the switch API (allocate: provisioning VLAN, then the
     tenant's; release: provisioning), each wave until every port is read back in sync;
   - fabric: the same partition memberships through the fabric API (allocate: N/T GUIDs into
     each tenant's partition; release: out), until applied and confirmed.
The ratio printed is full / slowest alone, per phase; goal: at most 2 (the engine overlaps BMC,
switch and fabric work instead of running them one after another).

Not a test: prints a table and exits 0 even when the goal is missed (1 only on errors).
Usage: python bench/alloc_release.py [--nodes 500] [--tenants 10] [--racks 10]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budget import Budget, proc_cpu
from power_sweep import find_base_port

from provisiond.procs import stop_group

HOST = "127.0.0.1"
SW_USER, SW_PASSWORD = "admin", "bench-eos"
UFM_TOKEN = "bench-ufm-token"
PROV_VLAN, QUAR_VLAN = 100, 199
PKEY_MIN = 0x0100
RATIO_GOAL = 2.0
SETUP_TRIES = 3
POLL_S = 0.5
HTTP_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 60.0
ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "provisiond.cli"]


# ----------------------------------------------------------------------------- the site


@dataclass(frozen=True)
class Site:
    nodes: int
    tenants: int
    racks: int

    @property
    def per_rack(self) -> int:
        return -(-self.nodes // self.racks)

    def node_names(self) -> list[str]:
        return [f"b{r:02d}n{i:03d}" for r, i in self.placement()]

    def placement(self) -> list[tuple[int, int]]:
        """(rack, index in rack) of every node, in order."""
        out = []
        for k in range(self.nodes):
            out.append((k // self.per_rack, k % self.per_rack + 1))
        return out

    def rack_yaml(self, rack: int, bmc_base: int, sw_base: int, *, cabled: bool) -> str:
        """Rack ``rack``'s file: its leaf (when ``cabled``) and nodes, each with a PXE NIC on
        the leaf's port of its index and an IB GUID (when ``cabled``)."""
        lines = [f"rack: b{rack:02d}", f"height: {max(42, self.per_rack)}"]
        if cabled:
            lines += [
                "switches:",
                f"  - name: leaf{rack:02d}",
                "    driver: arista_eos",
                f"    address: {HOST}",
                f"    port: {sw_base + rack}",
                f"    username: {SW_USER}",
                f"    password: {SW_PASSWORD}",
                '    allowed_vlans: "100-199"',
                f"    provisioning_vlan: {PROV_VLAN}",
                f"    quarantine_vlan: {QUAR_VLAN}",
            ]
        lines.append("nodes:")
        for k, (r, i) in enumerate(self.placement()):
            if r != rack:
                continue
            nic = f'{{mac: "{mac(k)}", kind: ethernet, pxe: true'
            nic += f", switch: leaf{rack:02d}, port: Ethernet{i}}}" if cabled else "}"
            lines += [
                f"  - name: b{r:02d}n{i:03d}",
                f"    unit: {i}",
                f"    bmc: {{driver: ipmi, address: {HOST}, port: {bmc_base + k}, "
                "username: admin, password: password}",
                "    nics:",
                f"      - {nic}",
            ]
            if cabled:
                lines.append(f'      - {{guid: "{guid(k)}", kind: infiniband}}')
        return "\n".join(lines) + "\n"


def mac(k: int) -> str:
    return f"52:54:00:b0:{k >> 8:02x}:{k & 0xFF:02x}"


def guid(k: int) -> str:
    return f"0x0002c90300b0{k:04x}"


def free_tcp_block(count: int, start: int = 31000) -> int:
    for base in range(start, 65000 - count, 100):
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind((HOST, port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OSError(f"no block of {count} free TCP ports on {HOST}")


# ----------------------------------------------------------------------------- processes


class Proc:
    """A child in its own session, stopped as a group; ready once its log says so."""

    def __init__(self, name: str, cmd: list[str], workdir: Path, ready: str) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=ROOT,
            )  # fmt: skip
        end = time.monotonic() + READY_TIMEOUT_S
        while ready not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                raise RuntimeError(f"{name} did not start: {self.log()[-2000:]}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def stop(self) -> None:
        stop_group(self.proc)


class Daemon:
    def __init__(self, workdir: Path, port: int) -> None:
        self.dir = workdir
        self.url = f"http://{HOST}:{port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "provisiond.toml"
        config.write_text(
            f'data_dir = "{self.dir / "data"}"\nlisten = "{HOST}:{port}"\n'
            f'database_url = "sqlite:///{self.dir / "p.db"}"\n'
        )
        assets = self.dir / "data" / "assets" / "bench"
        assets.mkdir(parents=True, exist_ok=True)
        self.kernel_sha = {}
        for name in ("vmlinuz", "initrd.img"):
            blob = f"provisiond bench stand-in {name}\n".encode()
            (assets / name).write_bytes(blob)
            self.kernel_sha[name] = hashlib.sha256(blob).hexdigest()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIOND_")}
        self.env |= {"PROVISIOND_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
        self.proc = Proc("daemon", [*CLI, "serve", "--config", str(config)], self.dir,
                         "")  # fmt: skip
        end = time.monotonic() + READY_TIMEOUT_S
        while not self.healthy():
            if self.proc.proc.poll() is not None or time.monotonic() > end:
                self.proc.stop()
                raise RuntimeError(f"daemon did not start: {self.proc.log()[-2000:]}")
            time.sleep(0.1)
        out = subprocess.run(
            [*CLI, "token", "create", "--role", "admin", "--name", "bench"],
            env=self.env, capture_output=True, text=True, timeout=60, check=True, cwd=ROOT,
        )  # fmt: skip
        self.token = out.stdout.strip()

    def healthy(self) -> bool:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(self.url + "/healthz", timeout=1) as r,
        ):
            return bool(r.status == 200)
        return False

    def call(self, method: str, path: str, body: Any = None, ctype: str = "") -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else None
        if body is not None and data is None:
            data = json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": ctype or "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw else None

    def ok(self, method: str, path: str, body: Any = None, ctype: str = "") -> Any:
        status, out = self.call(method, path, body, ctype)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {out}")
        return out

    def nodes(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(100):
            page = self.ok("GET", f"/v1/nodes?limit=1000{cursor}")
            items += page["items"]
            if not page.get("next_cursor"):
                return items
            cursor = f"&cursor={page['next_cursor']}"
        raise RuntimeError("more than 100 pages of nodes")

    def stop(self) -> None:
        self.proc.stop()


def wait(what: str, check: Callable[[], bool], budget: Budget) -> float:
    """Poll ``check`` until true; the seconds it took."""
    t0 = time.perf_counter()
    while not check():
        budget.check(what)
        time.sleep(POLL_S)
    return time.perf_counter() - t0


def pool_map(fn: Callable[[Any], Any], items: list[Any], workers: int = 16) -> list[Any]:
    with ThreadPoolExecutor(workers) as ex:
        return list(ex.map(fn, items))


# ----------------------------------------------------------------------------- set-up


@dataclass
class Lab:
    site: Site
    workdir: Path
    bmc_base: int
    sw_base: int
    ufm_port: int
    daemon_port: int
    procs: dict[str, Proc] = field(default_factory=dict)

    def start(self) -> None:
        racks = []
        for r in range(self.site.racks):
            path = self.workdir / f"rack-b{r:02d}.yaml"
            path.write_text(self.site.rack_yaml(r, self.bmc_base, self.sw_base, cabled=True))
            racks += ["--rack", str(path)]
        self.procs["bmc"] = Proc("lab-bmc", [
            *CLI, "lab", "bmc", "--count", str(self.site.nodes), "--base-port",
            str(self.bmc_base), *racks, "--boot-url", f"http://{HOST}:{self.daemon_port}",
            "--post-delay", "0.5"], self.workdir, "ready")  # fmt: skip
        self.start_network()

    def start_network(self) -> None:
        """(Re)start the lab switches and the UFM: factory state."""
        for name in ("switch", "ufm"):
            if name in self.procs:
                self.procs.pop(name).stop()
        self.procs["switch"] = Proc("lab-switch", [
            *CLI, "lab", "switch", "--dialect", "arista_eos", "--port", str(self.sw_base),
            "--count", str(self.site.racks), "--ports", str(self.site.per_rack),
            "--username", SW_USER, "--password", SW_PASSWORD], self.workdir,
            " ready")  # fmt: skip
        self.procs["ufm"] = Proc("lab-ufm", [
            *CLI, "lab", "ufm", "--port", str(self.ufm_port), "--token", UFM_TOKEN],
            self.workdir, "ready")  # fmt: skip

    def cpu(self) -> dict[str, float]:
        return {name: p.cpu() for name, p in self.procs.items()}

    def stop(self) -> None:
        for p in self.procs.values():
            p.stop()


def enroll(d: Daemon, lab: Lab, *, cabled: bool, budget: Budget) -> None:
    site = lab.site
    for r in range(site.racks):
        text = site.rack_yaml(r, lab.bmc_base, lab.sw_base, cabled=cabled)
        d.ok("POST", f"/v1/racks/b{r:02d}/enroll", text.encode(), "text/yaml")
    d.ok("POST", "/v1/images", {
        "name": "bench", "kernel": "bench/vmlinuz", "kernel_sha256": d.kernel_sha["vmlinuz"],
        "initrd": "bench/initrd.img", "initrd_sha256": d.kernel_sha["initrd.img"],
        "cmdline": "ro"})  # fmt: skip
    names = site.node_names()
    for action, state in (("manage", "manageable"), ("provide", "available")):
        todo = names
        for attempt in range(1, SETUP_TRIES + 1):

            def act(node: str, action: str = action) -> Any:
                return d.ok("POST", f"/v1/nodes/{node}/actions/{action}", {})

            pool_map(act, todo)

            def settled(todo: list[str] = todo, state: str = state) -> bool:
                now = {n["name"]: n["state"] for n in d.nodes()}
                return all(now[n] == state or now[n].endswith("-failed") for n in todo)

            wait(f"{len(todo)} nodes {state}", settled, budget)
            now = {n["name"]: n["state"] for n in d.nodes()}
            todo = [n for n in todo if now[n] != state]
            if not todo:
                break
            # set-up, not measured: a node the lab's load made fail gets its action again
            print(f"(set-up: {action} failed on {len(todo)} node(s), attempt {attempt}: "
                  f"{', '.join(todo[:5])}; again)", flush=True)  # fmt: skip
        else:
            raise RuntimeError(f"{action}: {len(todo)} node(s) failed {SETUP_TRIES} times")


def add_fabric(d: Daemon, lab: Lab) -> None:
    d.ok("POST", "/v1/fabrics", {
        "name": "ufm0", "driver": "ufm",
        "settings": {"url": f"http://{HOST}:{lab.ufm_port}", "auth": "token", "token": UFM_TOKEN},
        "pkey_range": f"0x{PKEY_MIN:04x}-0x{PKEY_MIN + 0xFF:04x}"})  # fmt: skip


def tenant_names(site: Site) -> list[str]:
    return [f"t{t:02d}" for t in range(site.tenants)]


def create_tenants(d: Daemon, site: Site) -> dict[str, dict[str, Any]]:
    return {t: d.ok("POST", "/v1/tenants", {"name": t}) for t in tenant_names(site)}


def shares(site: Site) -> list[int]:
    base, extra = divmod(site.nodes, site.tenants)
    return [base + (1 if t < extra else 0) for t in range(site.tenants)]


# ----------------------------------------------------------------------------- measures


@dataclass
class Phase:
    wall: float = 0.0
    marks: dict[str, float] = field(default_factory=dict)  # component -> when it was done


def allocate_all(d: Daemon, site: Site) -> list[dict[str, Any]]:
    def one(pair: tuple[str, int]) -> dict[str, Any]:
        t, count = pair
        out: dict[str, Any] = d.ok("POST", f"/v1/tenants/{t}/allocations",
                                   {"count": count, "image": "bench"})  # fmt: skip
        if out.get("errors"):
            raise RuntimeError(f"allocation for {t}: {out['errors']}")
        return out

    return pool_map(one, list(zip(tenant_names(site), shares(site), strict=True)), site.tenants)


def release_all(d: Daemon, allocs: list[dict[str, Any]]) -> None:
    pool_map(lambda a: d.ok("DELETE", f"/v1/allocations/{a['id']}"), allocs, len(allocs))


def ports_as(d: Daemon, site: Site, want: Callable[[str], int | None]) -> bool:
    """Every node's port managed, read back in sync, at the VLAN ``want(node)``."""
    seen = 0
    for r in range(site.racks):
        sw = d.ok("GET", f"/v1/switches/leaf{r:02d}")
        for b in sw["bindings"]:
            node = f"b{r:02d}n{int(b['port'].removeprefix('Ethernet')):03d}"
            if not b["in_sync"] or b["desired"].get("vlan") != want(node):
                return False
            seen += 1
    return seen == site.nodes


def fabric_as(d: Daemon, members: dict[str, int]) -> bool:
    """The fabric applied (the UFM confirmed it): each partition (by name) with that many
    members."""
    view = d.ok("GET", "/v1/fabrics/ufm0/partitions")
    if view["pending"] or view["status"] != "applied":
        return False
    seen = {p["name"]: len(p.get("members") or {}) for p in view["applied"]}
    return all(seen.get(name, 0) == n for name, n in members.items())


def all_in(d: Daemon, names: set[str], state: str) -> bool:
    """Every node of ``names`` in ``state``, read from the allocations (cheaper for the daemon
    than listing every node, so the polling weighs little on what is measured); a node freed
    from its allocation counts as available. A failed node ends the run (it never would)."""
    now = {
        n["name"]: n["state"]
        for a in d.ok("GET", "/v1/allocations?all=true")["items"]
        for n in a["nodes"]
    }
    failed = sorted(n for n, st in now.items() if n in names and st.endswith("-failed"))
    if failed:
        raise RuntimeError(f"{len(failed)} node(s) failed: {', '.join(failed[:10])}")
    return all(now.get(n, "available") == state for n in names)


def timed(conditions: dict[str, Callable[[], bool]], what: str, budget: Budget, t0: float) -> Phase:
    """Poll every condition until all hold; when each first held (seconds since ``t0``)."""
    phase = Phase()
    while len(phase.marks) < len(conditions):
        for name, check in conditions.items():
            if name not in phase.marks and check():
                phase.marks[name] = time.perf_counter() - t0
        budget.check(what)
        if len(phase.marks) < len(conditions):
            time.sleep(POLL_S)
    phase.wall = time.perf_counter() - t0
    return phase


def run_full(lab: Lab, budget: Budget) -> tuple[Phase, Phase, dict[str, float]]:
    site = lab.site
    d = Daemon(lab.workdir / "full", lab.daemon_port)
    try:
        enroll(d, lab, cabled=True, budget=budget)
        add_fabric(d, lab)
        tenants = create_tenants(d, site)
        vlan = {t: info["vlan"] for t, info in tenants.items()}
        print(f"full: {site.nodes} nodes available, tenants' VLANs {sorted(vlan.values())}",
              flush=True)  # fmt: skip
        cpu0 = lab.cpu() | {"daemon": d.proc.cpu()}
        t0 = time.perf_counter()
        allocs = allocate_all(d, site)
        t_asked = time.perf_counter()
        owner = {n["name"]: a["tenant"] for a in allocs for n in a["nodes"]}
        names = set(owner)
        allocated: dict[str, Callable[[], bool]] = {
            "BMC": lambda: all_in(d, names, "active"),
            "switch": lambda: ports_as(d, site, lambda n: vlan[owner[n]]),
            "fabric": lambda: fabric_as(
                d, {f"tenant_{t}": c for t, c in zip(tenant_names(site), shares(site),
                                                      strict=True)}),
        }  # fmt: skip
        alloc = timed(allocated, "full allocate", budget, t0)
        alloc.marks["requests"] = t_asked - t0
        t1 = time.perf_counter()
        release_all(d, allocs)
        t_asked = time.perf_counter()
        released: dict[str, Callable[[], bool]] = {
            "BMC": lambda: all_in(d, names, "available"),
            "switch": lambda: ports_as(d, site, lambda n: PROV_VLAN),
            "fabric": lambda: fabric_as(d, dict.fromkeys(
                (f"tenant_{t}" for t in tenant_names(site)), 0)),
            "released": lambda: all(
                d.ok("GET", f"/v1/allocations/{a['id']}")["state"] == "released"
                for a in allocs),
        }  # fmt: skip
        release = timed(released, "full release", budget, t1)
        release.marks["requests"] = t_asked - t1
        cpu1 = lab.cpu() | {"daemon": d.proc.cpu()}
        audit = d.ok("GET", "/v1/fabric/audit")
        if not audit["ok"]:
            print(f"(audit after release: {audit['violations'][:3]})")
        return alloc, release, {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1}
    finally:
        d.stop()


def run_alone(lab: Lab, budget: Budget) -> dict[str, tuple[float, float]]:
    """Each component's own time for its share: (allocate, release) seconds."""
    site = lab.site
    lab.start_network()
    d = Daemon(lab.workdir / "alone", lab.daemon_port)
    out: dict[str, tuple[float, float]] = {}
    try:
        enroll(d, lab, cabled=False, budget=budget)
        create_tenants(d, site)
        names = set(site.node_names())
        t0 = time.perf_counter()
        allocs = allocate_all(d, site)
        wait("BMC alone: active", lambda: all_in(d, names, "active"), budget)
        a = time.perf_counter() - t0
        t0 = time.perf_counter()
        release_all(d, allocs)
        wait("BMC alone: released", lambda: all(
            d.ok("GET", f"/v1/allocations/{x['id']}")["state"] == "released" for x in allocs),
            budget)  # fmt: skip
        out["BMC"] = (a, time.perf_counter() - t0)
        print(f"alone: BMC {out['BMC'][0]:.1f} s + {out['BMC'][1]:.1f} s", flush=True)

        # the switches: the same ports, the same moves, through the switch API
        for r in range(site.racks):
            d.ok("POST", "/v1/switches", {
                "name": f"leaf{r:02d}", "driver": "arista_eos", "address": HOST,
                "port": lab.sw_base + r, "username": SW_USER, "password": SW_PASSWORD,
                "allowed_vlans": "100-199", "provisioning_vlan": PROV_VLAN,
                "quarantine_vlan": QUAR_VLAN})  # fmt: skip
        tenant_of = {}
        k = 0
        for t, count in enumerate(shares(site)):
            for _ in range(count):
                tenant_of[k] = t
                k += 1
        placement = site.placement()

        def wave(vlan_of: Callable[[int], int]) -> float:
            t0 = time.perf_counter()
            pool_map(lambda k: d.ok(
                "PUT", f"/v1/switches/leaf{placement[k][0]:02d}/ports/Ethernet{placement[k][1]}",
                {"mode": "access", "vlan": vlan_of(k)}), list(range(site.nodes)))  # fmt: skip

            def synced() -> bool:
                want = {f"b{r:02d}n{i:03d}": vlan_of(k) for k, (r, i) in enumerate(placement)}
                return ports_as(d, site, lambda n: want[n])

            wait("switch alone", synced, budget)
            return time.perf_counter() - t0

        # tenant t's VLAN as the full run's tenants got them: the lowest free, 101 upwards
        out["switch"] = (wave(lambda k: PROV_VLAN) + wave(lambda k: 101 + tenant_of[k]),
                         wave(lambda k: PROV_VLAN))  # fmt: skip
        print(f"alone: switch {out['switch'][0]:.1f} s + {out['switch'][1]:.1f} s", flush=True)

        # the fabric: the same memberships, through the fabric API
        add_fabric(d, lab)

        def memberships(full: bool) -> float:
            t0 = time.perf_counter()
            for t in range(site.tenants):
                members = {guid(k): "full" for k in range(site.nodes) if tenant_of[k] == t}
                d.ok("PUT", f"/v1/fabrics/ufm0/partitions/0x{PKEY_MIN + t:04x}", {
                    "name": f"tenant_t{t:02d}", "members": members if full else {}})  # fmt: skip
            want = {f"tenant_t{t:02d}": c if full else 0 for t, c in enumerate(shares(site))}
            wait("fabric alone", lambda: fabric_as(d, want), budget)
            return time.perf_counter() - t0

        out["fabric"] = (memberships(True), memberships(False))
        print(f"alone: fabric {out['fabric'][0]:.1f} s + {out['fabric'][1]:.1f} s", flush=True)
        return out
    finally:
        d.stop()


# ----------------------------------------------------------------------------- main


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: children stopped


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=500)
    ap.add_argument("--tenants", type=int, default=10)
    ap.add_argument("--racks", type=int, default=10)
    ap.add_argument("--budget", type=float, default=1800, help="seconds for the whole run")
    ap.add_argument("--full-only", action="store_true",
                    help="the full run only (no ratio): for profiling the daemon")  # fmt: skip
    args = ap.parse_args()
    site = Site(args.nodes, args.tenants, args.racks)
    if not 1 <= site.per_rack <= 256 or not 1 <= site.tenants <= 90:
        ap.error("at most 256 nodes per rack (lab switch ports) and 90 tenants (VLANs 101-190)")
    budget = Budget(args.budget)
    print(f"# alloc_release: {site.nodes} lab nodes in {site.racks} racks, {site.tenants} "
          f"tenants; {dt.date.today()}, {platform.node()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-alloc-") as tmp:
        lab = Lab(site, Path(tmp), find_base_port(site.nodes), free_tcp_block(site.racks),
                  free_tcp_block(1, 32000), free_tcp_block(1, 33000))  # fmt: skip
        try:
            lab.start()
            alloc, release, cpu = run_full(lab, budget)
            print(f"full: allocate {alloc.wall:.1f} s {fmt(alloc.marks)}; release "
                  f"{release.wall:.1f} s {fmt(release.marks)}", flush=True)  # fmt: skip
            if args.full_only:
                return 0
            alone = run_alone(lab, budget)
        except (RuntimeError, TimeoutError, OSError) as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            for p in lab.procs.values():
                print(f"--- {p.name} log tail:\n{p.log()[-1500:]}", file=sys.stderr)
            return 1
        finally:
            lab.stop()
    report(alloc, release, alone, cpu)
    return 0


def fmt(marks: dict[str, float]) -> str:
    return "(" + ", ".join(f"{k} done at {v:.1f} s" for k, v in marks.items()) + ")"


def report(
    alloc: Phase, release: Phase, alone: dict[str, tuple[float, float]], cpu: dict[str, float]
) -> None:
    print()
    print(f"{'phase':<10}{'full':>9}{'BMC':>9}{'switch':>9}{'fabric':>9}{'full/slowest':>14}")
    rows = [("allocate", alloc.wall, 0), ("release", release.wall, 1),
            ("total", alloc.wall + release.wall, None)]  # fmt: skip
    for name, full, i in rows:
        own = {c: (v[i] if i is not None else v[0] + v[1]) for c, v in alone.items()}
        slowest = max(own.values())
        ratio = full / slowest if slowest else float("inf")
        flag = "ok" if ratio <= RATIO_GOAL else f"MISSED (goal <= {RATIO_GOAL:g})"
        print(f"{name:<10}{full:>8.1f}s" + "".join(f"{own[c]:>8.1f}s" for c in
              ("BMC", "switch", "fabric")) + f"{ratio:>10.2f}x  {flag}")  # fmt: skip
    print("BMC/switch/fabric: each alone doing only its share (see the docstring); full: all")
    print("CPU s during the full run: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))


if __name__ == "__main__":
    sys.exit(main())
