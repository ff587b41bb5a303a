"""Benchmark: applying a partition change for 1,000 GUIDs across 200 tenants with the OpenSM
driver, beside OpenSM's own resweep on a simulated fabric (ibsim).

A real OpenSM runs on an ibsim fabric of ``--hosts`` HCAs (default 1,000: every GUID of the plan
is a real port). Each round applies a new plan in which every GUID changes tenant (200 tenants,
``--hosts / 200`` GUIDs each, rotated by one tenant per round), measuring:

- **ours**: ``OpenSmDriver.apply`` without waiting for OpenSM (no ``log_file``): validate the
  plan, render partitions.conf, parse it back strictly, write a temporary file, fsync, keep the
  backup, rename, fsync the directory, SIGHUP, read the file back. Goal: < 1 s.
- **OpenSM's resweep**: from that SIGHUP to OpenSM's ``-> SUBNET UP`` (the new P_Key tables are
  on every port); the peer figure. Ratio = resweep / ours.
- **end to end**: the same apply with ``log_file`` set, so the driver itself waits for the
  sweep and checks OpenSM did not fall back to its default configuration.

Every round is checked on the fabric: one moved port's P_Key table is read back (smpquery).
Not a test: prints a table, exits 0 even when a goal is missed (1 only on errors).
Usage: python bench/pkey_apply.py [--hosts 1000] [--tenants 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.fabric.base import Partition  # noqa: E402
from drivers.fabric.opensm import OpenSmDriver  # noqa: E402
from tests.support import ibsim  # noqa: E402


def plan(guids: list[str], tenants: int, shift: int) -> list[Partition]:
    per = len(guids) // tenants
    out = []
    for t in range(tenants):
        members = guids[((t + shift) % tenants) * per : ((t + shift) % tenants + 1) * per]
        out.append(Partition(f"tenant{t:03d}", 0x100 + t, {g: "full" for g in members}, ipoib=True))
    return out


async def run(args: argparse.Namespace) -> int:
    why = ibsim.available()
    if why is not None:
        print(f"pkey_apply: {why}", file=sys.stderr)
        return 1
    switches = max(1, -(-args.hosts // 128))
    with tempfile.TemporaryDirectory(prefix="pkey-bench-") as tmp:
        started = time.perf_counter()
        with ibsim.ibsim_subnet(Path(tmp), hosts=args.hosts, switches=switches,
                                start_timeout=120) as sm:  # fmt: skip
            boot = time.perf_counter() - started
            guids = [sm.guids[h] for h in ibsim.host_names(args.hosts) if h != ibsim.SM_HOST]
            common = {"partitions_file": str(sm.partitions_file), "pid_file": str(sm.pid_file)}
            fast = OpenSmDriver(common)
            full = OpenSmDriver({**common, "log_file": str(sm.log_file), "reload_timeout": 60})
            await full.apply(plan(guids, args.tenants, 0))
            ours: list[float] = []
            sweep: list[float] = []
            e2e: list[float] = []
            for r in range(1, args.rounds + 1):
                # ours, then the resweep that SIGHUP started
                sweeps = sm.sweeps()
                t0 = time.perf_counter()
                await fast.apply(plan(guids, args.tenants, 2 * r - 1))
                t1 = time.perf_counter()
                sm.wait_sweeps(sweeps + 1, timeout=120)
                t2 = time.perf_counter()
                ours.append(t1 - t0)
                sweep.append(t2 - t1)
                # end to end: the driver waits for the sweep itself
                t3 = time.perf_counter()
                await full.apply(plan(guids, args.tenants, 2 * r))
                e2e.append(time.perf_counter() - t3)
                moved = plan(guids, args.tenants, 2 * r)[0]
                probe = next(iter(moved.members))
                keys = sm.pkeys(probe)
                if 0x8000 | moved.pkey not in keys:
                    print(f"round {r}: {probe} lacks 0x{moved.pkey:04x}: {keys}", file=sys.stderr)
                    return 1
            size = sm.partitions_file.stat().st_size
    med = statistics.median
    print(f"machine: {platform.machine()}, {platform.python_implementation()} "
          f"{platform.python_version()}; fabric: {args.hosts} HCAs, {switches} switches "
          f"(ibsim + OpenSM up in {boot:.2f} s)")  # fmt: skip
    print(
        f"plan: {args.tenants} tenants, {len(guids)} GUIDs, every GUID changes tenant each "
        f"round; partitions.conf {size / 1024:.0f} KiB; {args.rounds} rounds (median, min-max)"
    )
    rows = [
        ("ours: validate+render+parse+write+fsync+rename+SIGHUP", ours),
        ("OpenSM resweep: SIGHUP -> SUBNET UP (peer)", sweep),
        ("end to end: apply waiting for SUBNET UP", e2e),
    ]
    for label, values in rows:
        print(f"  {label:<56} {med(values) * 1000:8.1f} ms  "
              f"({min(values) * 1000:.1f}-{max(values) * 1000:.1f})")  # fmt: skip
    print(f"ratio OpenSM resweep / ours: {med(sweep) / med(ours):.1f}x; goal ours < 1 s: "
          f"{'met' if med(ours) < 1 else 'MISSED'}")  # fmt: skip
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--tenants", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    return asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
