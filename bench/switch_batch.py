"""Benchmark: moving switch ports to a tenant VLAN, batched vs one session per port, and a fleet
of switches reconciled at once.

1. One lab switch (``provisiond lab switch``, default Arista EOS, 48 ports): all 48 ports moved
   to a VLAN with our netmiko driver
   - batched: one ``apply`` of one ChangeSet with the 48 port changes (one SSH session, one
     save), what provisiond's reconciler sends;
   - per port: 48 ``apply`` calls of one port each, one after the other (a session and a save
     per port: networking-generic-switch's behaviour without its batching);
   both in the same run, against the same lab process, alternating VLANs so that every run
   changes every port. The ratio is per-port time / batched time (goal >= 10x).
2. The fleet: ``--switches`` lab switches (one ``lab switch --count N`` process) of 48 ports
   each, enrolled in a daemon (the real app, in this process, on SQLite), a desired VLAN set on
   every port through the API, and the wall time until the reconciler reports every port
   applied (read back from the switches). The lab's own CPU time is printed too: on a small
   machine the lab is part of every figure.

Not a test: prints a table, exits 0 even when a goal is missed (1 only on errors).
Usage: python bench/switch_batch.py [--dialect arista_eos] [--switches 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from budget import Budget, proc_cpu

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.switch.base import (  # noqa: E402
    ChangeSet,
    Policy,
    PortChange,
    PortMode,
    SwitchTarget,
    VlanChange,
)
from drivers.switch.netmiko_driver import NetmikoDriver  # noqa: E402
from provisiond.lab.switch import cli_class  # noqa: E402
from provisiond.procs import stop_group  # noqa: E402
from tests.support.labswitch import free_port_range  # noqa: E402

PASSWORD = "bench-secret"
RATIO_GOAL = 10.0
POLICY = Policy.parse("100-199")


def start_lab(
    dialect: str, count: int, tmp: Path, budget: Budget
) -> tuple[subprocess.Popen[bytes], int]:
    base = free_port_range(count)
    log = tmp / f"lab-{dialect}-{count}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "provisiond.cli",
                "lab",
                "switch",
                "--dialect",
                dialect,
                "--port",
                str(base),
                "--count",
                str(count),
                "--password",
                PASSWORD,
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    for _ in range(1200):
        budget.check("lab start")
        if " ready" in log.read_text(errors="replace"):
            return proc, base
        if proc.poll() is not None:
            raise RuntimeError(f"lab exited: {log.read_text()}")
        time.sleep(0.05)
    stop_group(proc)
    raise RuntimeError("lab not ready in 60 s")


def target(dialect: str, port: int, name: str = "bench") -> SwitchTarget:
    return SwitchTarget(
        name, dialect, "127.0.0.1", port, cli_class(dialect).default_username, PASSWORD
    )


async def batch_vs_per_port(
    dialect: str, rounds: int, budget: Budget, tmp: Path
) -> list[dict[str, float]]:
    proc, port = start_lab(dialect, 1, tmp, budget)
    drv = NetmikoDriver({"read_timeout": 30, "connect_tries": 2})
    ports = cli_class(dialect).port_names(48)
    t = target(dialect, port)
    out = []
    try:
        await drv.apply(t, ChangeSet(vlans=tuple(VlanChange(v) for v in (120, 121, 199))), POLICY)
        for r in range(rounds):
            budget.check("rounds")
            cpu0 = proc_cpu(proc.pid)
            start = time.perf_counter()
            await drv.apply(
                t,
                ChangeSet(ports=tuple(PortChange(p, PortMode.ACCESS, vlan=120) for p in ports)),
                POLICY,
            )
            batched = time.perf_counter() - start
            cpu1 = proc_cpu(proc.pid)
            got = await drv.read_ports(t, ports)
            assert all(s.vlan == 120 for s in got.values()) and len(got) == 48, got
            start = time.perf_counter()
            for p in ports:
                budget.check("per-port")
                await drv.apply(
                    t, ChangeSet(ports=(PortChange(p, PortMode.ACCESS, vlan=121),)), POLICY
                )
            per_port = time.perf_counter() - start
            cpu2 = proc_cpu(proc.pid)
            got = await drv.read_ports(t, ports)
            assert all(s.vlan == 121 for s in got.values()) and len(got) == 48, got
            out.append(
                {
                    "batched": batched,
                    "per_port": per_port,
                    "lab_cpu_batched": cpu1 - cpu0,
                    "lab_cpu_per_port": cpu2 - cpu1,
                }
            )
            print(
                f"  round {r + 1}: batched {batched:.2f} s, per port {per_port:.2f} s, "
                f"{per_port / batched:.1f}x",
                flush=True,
            )
    finally:
        await drv.close()
        stop_group(proc)
    return out


async def fleet(dialect: str, switches: int, budget: Budget, tmp: Path) -> dict[str, Any]:
    from aiohttp.test_utils import TestClient, TestServer

    from provisiond.api.app import create_app
    from provisiond.api.keys import SERVICES
    from provisiond.auth import create_token
    from provisiond.config import load_settings

    proc, base = start_lab(dialect, switches, tmp, budget)
    ports = cli_class(dialect).port_names(48)
    settings = load_settings(
        None,
        env={},
        overrides={
            "data_dir": str(tmp / "data"),
            "database_url": f"sqlite:///{tmp / 'data' / 'bench.db'}",
            "switches": {"interval": 0.2, "drift_interval": 3600, "concurrency": switches},
            "drivers": {
                "netmiko": {"sessions": switches, "read_timeout": 120, "session_timeout": 600}
            },
        },
    )
    app = create_app(settings)
    try:
        async with TestClient(TestServer(app)) as client:
            token, _ = await create_token(app[SERVICES].db, role="admin", name="bench")
            h = {"Authorization": f"Bearer {token}"}
            reconciler = app[SERVICES].switches
            assert reconciler is not None
            await reconciler.stop()  # the loop is started again once every port is set
            for i in range(switches):
                resp = await client.post(
                    "/v1/switches",
                    headers=h,
                    json={
                        "name": f"leaf{i:02d}",
                        "driver": dialect,
                        "address": "127.0.0.1",
                        "port": base + i,
                        "username": cli_class(dialect).default_username,
                        "password": PASSWORD,
                        "allowed_vlans": "100-199",
                        "provisioning_vlan": 100,
                        "quarantine_vlan": 199,
                    },
                )
                assert resp.status == 201, await resp.text()
            for i in range(switches):
                for p in ports:
                    resp = await client.put(
                        f"/v1/switches/leaf{i:02d}/ports/{p}",
                        headers=h,
                        json={"mode": "access", "vlan": 130},
                    )
                    assert resp.status == 202, await resp.text()
            cpu0, start = proc_cpu(proc.pid), time.perf_counter()
            await reconciler.tick()  # one pass per switch, all at once
            total = switches * 48
            while True:
                budget.check("fleet")
                resp = await client.get("/v1/switches", headers=h)
                items = (await resp.json())["items"]
                applied = sum(sw["ports"].get("applied", 0) for sw in items)
                failed = sum(
                    sw["ports"].get(k, 0) for sw in items for k in ("failed", "quarantined")
                )
                if applied + failed >= total and not reconciler._running:
                    break
                await asyncio.sleep(0.2)
            wall = time.perf_counter() - start
            errors = [sw["last_error"] for sw in items if sw["last_error"]]
            return {
                "switches": switches,
                "ports": total,
                "applied": applied,
                "failed": failed,
                "wall": wall,
                "lab_cpu": proc_cpu(proc.pid) - cpu0,
                "errors": errors[:3],
            }
    finally:
        stop_group(proc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dialect", default="arista_eos")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--switches", type=int, default=40)
    ap.add_argument("--time-budget", type=float, default=1800)
    args = ap.parse_args()
    budget = Budget(args.time_budget)
    print(
        f"switch_batch: {args.dialect}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="switch-bench-") as d:
        tmp = Path(d)
        print("1. 48 ports to a tenant VLAN: one batched session vs one session per port")
        rounds = asyncio.run(batch_vs_per_port(args.dialect, args.rounds, budget, tmp))
        b = statistics.median(r["batched"] for r in rounds)
        pp = statistics.median(r["per_port"] for r in rounds)
        print(
            f"   median: batched {b:.2f} s, per port {pp:.2f} s -> {pp / b:.1f}x "
            f"(goal >= {RATIO_GOAL:.0f}x: {'met' if pp / b >= RATIO_GOAL else 'MISSED'}); "
            f"lab CPU {statistics.median(r['lab_cpu_batched'] for r in rounds):.2f} s vs "
            f"{statistics.median(r['lab_cpu_per_port'] for r in rounds):.2f} s"
        )
        if args.switches:
            print(f"2. {args.switches} switches x 48 ports reconciled at once (daemon on SQLite)")
            f = asyncio.run(fleet(args.dialect, args.switches, budget, tmp))
            print(
                f"   {f['applied']}/{f['ports']} ports applied ({f['failed']} failed) in "
                f"{f['wall']:.1f} s wall; lab CPU {f['lab_cpu']:.1f} s"
                + (f"; errors: {f['errors']}" if f["errors"] else "")
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
