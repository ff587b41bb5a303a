"""Benchmark: power-status sweep of N lab BMCs through our IPMI driver vs ``ipmitool`` per BMC.

In one run, against one ``provisiond lab bmc`` subprocess (N virtual IPMI BMCs on 127.0.0.1):

1. ipmitool: ``ipmitool -I lanplus ... power status`` run once per BMC, --parallel-ipmitool at a
   time (a bounded pool of subprocesses: what Ironic's ipmitool driver does per node);
2. ours: drivers.bmc.ipmi.IpmiDriver called directly (no gateway), every BMC at once bounded by
   an asyncio.Semaphore(--concurrency). The cold sweep is the first one of a fresh driver (it
   includes starting the worker processes and one RMCP+ login per BMC); warm sweeps reuse the
   sessions the workers keep (median of --repeat);
3. hung: --hung-percent of the BMCs are made to answer nothing (the lab's control file), and the
   warm driver sweeps again with a per-call budget of --deadline seconds. It must end within one
   deadline of the warm healthy figure and fail exactly the hung BMCs.

CPU seconds of the lab process, our process, the IPMI workers and the ipmitool children are read
from /proc around every sweep: on a small machine the lab (one Python process) is part of the
cost of every figure.

Not a test: it prints a table and exits 0 even when a goal is missed (1 only on errors).
Usage: python bench/power_sweep.py [--count 500] [--parallel-ipmitool 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from budget import CLK_TCK, Budget, proc_cpu

from drivers.bmc.base import BmcTarget
from drivers.bmc.ipmi import IpmiDriver
from provisiond.errors import BmcError, DeadlineExceeded
from provisiond.procs import stop_group

HOST = "127.0.0.1"
USER = "admin"
PASSWORD = "password"
RATIO_GOAL = 10.0  # ours at least 10x faster than ipmitool
SWEEP_GOAL_S = 5.0  # 500 BMCs within 5 s
LAB_START_TIMEOUT_S = 60.0
FAULTS_APPLY_TIMEOUT_S = 10.0
IPMITOOL_CALL_TIMEOUT_S = 30.0
# a warm call slower than this waited out one of pyghmi's retry timers (0.5-1.0 s)
SLOW_CALL_S = 0.4


# ----------------------------------------------------------------------------- helpers


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    total = sum(parts[:8])  # guest time is already in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


def find_base_port(count: int) -> int:
    """The first block of ``count`` free UDP ports on 127.0.0.1 from 21000 up, 1000 apart."""
    for base in range(21000, 65535 - count, 1000):
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((HOST, port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OSError(f"no block of {count} free UDP ports on {HOST}")


@dataclass
class Cpu:
    """CPU seconds used during one measured stretch, by party."""

    wall: float = 0.0
    lab: float = 0.0
    bench: float = 0.0  # this process: the event loop and the driver's reader threads
    workers: float = 0.0  # IPMI worker processes
    children: float = 0.0  # reaped children: the ipmitool processes
    machine_busy: float = 0.0
    machine_total: float = 0.0

    def describe(self) -> str:
        busy = 100 * self.machine_busy / self.machine_total if self.machine_total else 0.0
        parts = [f"lab {self.lab:.2f}"]
        if self.workers:
            parts.append(f"workers {self.workers:.2f}")
        if self.children:
            parts.append(f"ipmitool {self.children:.2f}")
        parts.append(f"bench {self.bench:.2f}")
        return f"CPU s: {', '.join(parts)}; machine {busy:.0f}% busy"


class CpuMeter:
    def __init__(self, lab_pid: int, worker_pids: list[int], *, children: bool = False) -> None:
        self.lab_pid = lab_pid
        self.worker_pids = worker_pids
        self.children = children  # count reaped children (ipmitool) too

    def __enter__(self) -> CpuMeter:
        self.result = Cpu()
        self._t = time.perf_counter()
        self._lab = proc_cpu(self.lab_pid)
        self._workers = {p: proc_cpu(p) for p in self.worker_pids}
        self._self = resource.getrusage(resource.RUSAGE_SELF)
        self._children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._machine = machine_busy()
        return self

    def __exit__(self, *exc: object) -> None:
        r = self.result
        r.wall = time.perf_counter() - self._t
        r.lab = proc_cpu(self.lab_pid) - self._lab
        r.workers = sum(proc_cpu(p) - self._workers.get(p, 0.0) for p in self.worker_pids)
        me = resource.getrusage(resource.RUSAGE_SELF)
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        r.bench = me.ru_utime + me.ru_stime - self._self.ru_utime - self._self.ru_stime
        if self.children:
            r.children = (
                ch.ru_utime + ch.ru_stime - self._children.ru_utime - self._children.ru_stime
            )
        busy, total = machine_busy()
        r.machine_busy = busy - self._machine[0]
        r.machine_total = total - self._machine[1]


# ----------------------------------------------------------------------------- the lab


class LabProcess:
    """``provisiond lab bmc`` in its own session (process group), killed as a group."""

    def __init__(self, count: int, base_port: int, workdir: Path) -> None:
        self.count = count
        self.base_port = base_port
        self.control = workdir / "faults.json"
        self.control.write_text("{}")
        self.log_path = workdir / "lab.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "provisiond.cli",
                "lab",
                "bmc",
                "--count",
                str(count),
                "--base-port",
                str(base_port),
                "--address",
                HOST,
                "--username",
                USER,
                "--password",
                PASSWORD,
                "--control",
                str(self.control),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(line.endswith("ready") for line in self.log().splitlines()):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"lab exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise TimeoutError(f"lab not ready within {timeout:g}s:\n{self.log()}")

    def set_faults(self, faults: dict[str, dict[str, Any]], timeout: float) -> None:
        """Rewrite the control file and wait until the lab logs that it applied it."""
        marker = "faults from"
        before = self.log().count(marker)
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps(faults))
        os.replace(tmp, self.control)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.log()
            if text.count(marker) > before:
                if "faults unchanged" in text.split(marker)[-1]:
                    raise RuntimeError(f"lab refused the control file:\n{text}")
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"lab exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise TimeoutError(f"lab did not apply {self.control} within {timeout:g}s")

    def stop(self) -> None:
        """SIGTERM to the lab's process group, SIGKILL if it lingers."""
        stop_group(self.proc, grace=5)
        self._log.close()


# ----------------------------------------------------------------------------- ipmitool


class IpmitoolPool:
    """Runs ``ipmitool ... power status`` once per BMC, ``parallel`` processes at a time."""

    def __init__(self, exe: str, parallel: int) -> None:
        self.exe = exe
        self.parallel = parallel
        self._live: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._stopping = False

    def _one(self, port: int) -> tuple[bool, str]:
        argv = [
            self.exe,
            "-I",
            "lanplus",
            "-H",
            HOST,
            "-p",
            str(port),
            "-U",
            USER,
            "-P",
            PASSWORD,
            "power",
            "status",
        ]
        with self._lock:
            if self._stopping:
                return False, "stopped"
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            self._live.add(proc)
        try:
            out, err = proc.communicate(timeout=IPMITOOL_CALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return False, "timeout"
        finally:
            with self._lock:
                self._live.discard(proc)
        text = out.decode(errors="replace").strip()
        ok = proc.returncode == 0 and text.startswith("Chassis Power is ")
        return ok, text if ok else (err.decode(errors="replace").strip() or text)

    def sweep(self, ports: list[int]) -> tuple[float, dict[int, tuple[bool, str]]]:
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="ipmitool") as ex:
            t0 = time.perf_counter()
            results = dict(zip(ports, ex.map(self._one, ports), strict=True))
            return time.perf_counter() - t0, results

    def kill_all(self) -> None:
        with self._lock:
            self._stopping = True
            for proc in self._live:
                with contextlib.suppress(OSError):
                    proc.kill()


# ----------------------------------------------------------------------------- our driver


@dataclass
class Sweep:
    seconds: float
    ok: dict[int, str] = field(default_factory=dict)  # port -> power state
    failed: dict[int, str] = field(default_factory=dict)  # port -> error kind: message
    latencies: list[float] = field(default_factory=list)
    cpu: Cpu = field(default_factory=Cpu)


async def driver_sweep(driver: IpmiDriver, ports: list[int], concurrency: int) -> Sweep:
    sem = asyncio.Semaphore(concurrency)
    out = Sweep(0.0)

    async def one(port: int) -> None:
        target = BmcTarget("ipmi", HOST, port, USER, PASSWORD)
        async with sem:
            t = time.perf_counter()
            try:
                out.ok[port] = (await driver.get_power(target)).value
            except DeadlineExceeded as exc:
                out.failed[port] = f"deadline: {exc}"
            except BmcError as exc:
                out.failed[port] = f"{'transient' if exc.transient else 'error'}: {exc}"
            out.latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(p) for p in ports))
    out.seconds = time.perf_counter() - t0
    return out


def worker_pids(driver: IpmiDriver) -> list[int]:
    # read-only look at the pool's workers, for CPU accounting
    return [w.proc.pid for w in driver.pool._workers if w is not None and not w.dead]


# ----------------------------------------------------------------------------- the run


@dataclass
class Results:
    args: dict[str, Any]
    machine: dict[str, Any]
    base_port: int = 0
    ipmitool_s: float = 0.0
    ipmitool_ok: int = 0
    ipmitool_cpu: Cpu = field(default_factory=Cpu)
    ipmitool_errors: list[str] = field(default_factory=list)
    cold: Sweep | None = None
    warm: list[Sweep] = field(default_factory=list)
    hung: list[Sweep] = field(default_factory=list)
    hung_ports: list[int] = field(default_factory=list)
    restarts: int = 0

    @property
    def warm_s(self) -> float:
        return statistics.median(s.seconds for s in self.warm)


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def run_driver(
    args: argparse.Namespace, lab: LabProcess, res: Results, budget: Budget
) -> None:
    ports = list(range(lab.base_port, lab.base_port + lab.count))
    driver = IpmiDriver(
        options={
            "workers": args.workers,
            "threads_per_worker": args.threads,
            # the driver's per-call budget is 2 x command_timeout (a login plus one command)
            "command_timeout": args.deadline / 2,
            "stall_grace": args.stall_grace,
            "min_interval": 0,
        }
    )
    try:
        # cold: a fresh driver; worker processes start on the first call to their shard
        meter = CpuMeter(lab.pid, [])
        with meter:
            res.cold = await driver_sweep(driver, ports, args.concurrency)
        pids = worker_pids(driver)
        # the workers did not exist at the start: their whole CPU time so far is the cold cost
        meter.result.workers = sum(proc_cpu(p) for p in pids)
        res.cold.cpu = meter.result
        report_sweep("ours, cold", res.cold, len(ports))
        for i in range(args.repeat):
            budget.check("warm sweeps")
            with CpuMeter(lab.pid, pids) as meter:
                s = await driver_sweep(driver, ports, args.concurrency)
            s.cpu = meter.result
            res.warm.append(s)
            report_sweep(f"ours, warm #{i + 1}", s, len(ports))

        budget.check("hung sweep")
        n_hung = round(len(ports) * args.hung_percent / 100)
        res.hung_ports = sorted(random.Random(args.seed).sample(ports, n_hung))
        lab.set_faults({str(p): {"hung": True} for p in res.hung_ports}, FAULTS_APPLY_TIMEOUT_S)
        for i in range(args.hung_sweeps):
            budget.check("hung sweeps")
            with CpuMeter(lab.pid, worker_pids(driver)) as meter:
                s = await driver_sweep(driver, ports, args.concurrency)
            s.cpu = meter.result
            res.hung.append(s)
            report_sweep(f"ours, hung #{i + 1}", s, len(ports))
        res.restarts = driver.pool.restarts
    finally:
        # calls abandoned by an interrupt are failed by close(); nobody awaits them any more
        asyncio.get_running_loop().set_exception_handler(_quiet_abandoned)
        await driver.close()


def _quiet_abandoned(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if isinstance(context.get("exception"), BmcError) and "never retrieved" in str(
        context.get("message")
    ):
        return
    loop.default_exception_handler(context)


def slow_calls(s: Sweep) -> int:
    return sum(x > SLOW_CALL_S for x in s.latencies)


def report_sweep(name: str, s: Sweep, n: int) -> None:
    print(
        f"  {name:<16} {s.seconds:7.3f} s  ok {len(s.ok)}/{n}  "
        f"call p50 {_p(s.latencies, 0.5) * 1000:.0f} ms max {max(s.latencies) * 1000:.0f} ms "
        f"(>{SLOW_CALL_S:g} s: {slow_calls(s)})  {s.cpu.describe()}",
        flush=True,
    )


def run(args: argparse.Namespace) -> Results:
    budget = Budget(args.time_budget)
    res = Results(
        args=vars(args).copy(),
        machine={
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "pyghmi": version("pyghmi"),
            "ipmitool": subprocess.run(
                [args.ipmitool, "-V"], capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip(),
            "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        },
    )
    print(
        f"machine: {res.machine['nproc']} cores, Python {res.machine['python']}, "
        f"pyghmi {res.machine['pyghmi']}, {res.machine['ipmitool']}, "
        f"load {res.machine['loadavg']}",
        flush=True,
    )
    base = args.base_port or find_base_port(args.count)
    res.base_port = base
    pool = IpmitoolPool(args.ipmitool, args.parallel_ipmitool)
    with tempfile.TemporaryDirectory(prefix="power-sweep-") as tmp:
        lab = LabProcess(args.count, base, Path(tmp))
        try:
            lab.wait_ready(LAB_START_TIMEOUT_S)
            print(f"lab: {args.count} BMCs on {HOST}:{base}-{base + args.count - 1}, pid {lab.pid}")
            ports = list(range(base, base + args.count))

            # 1. ipmitool, once per BMC, N at a time
            budget.check("ipmitool sweep")
            with CpuMeter(lab.pid, [], children=True) as meter:
                res.ipmitool_s, results = pool.sweep(ports)
            res.ipmitool_cpu = meter.result
            res.ipmitool_ok = sum(ok for ok, _ in results.values())
            res.ipmitool_errors = [f"{p}: {msg}" for p, (ok, msg) in results.items() if not ok]
            print(
                f"  {'ipmitool':<16} {res.ipmitool_s:7.3f} s  ok {res.ipmitool_ok}/{args.count}"
                f"  {meter.result.describe()}",
                flush=True,
            )
            for line in res.ipmitool_errors[:5]:
                print(f"    ipmitool failed: {line}")

            # 2. and 3. our driver: cold, warm, hung
            asyncio.run(run_driver(args, lab, res, budget))
        finally:
            pool.kill_all()
            lab.stop()
    return res


# ----------------------------------------------------------------------------- the report


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_report(res: Results, args: argparse.Namespace) -> dict[str, Any]:
    assert res.cold is not None and res.hung
    n = args.count
    ipm = res.ipmitool_s
    warm = res.warm_s
    cold = res.cold.seconds
    goal_s = SWEEP_GOAL_S * n / 500  # the goal is 5 s for 500
    warm_range = f"{min(s.seconds for s in res.warm):.3f}-{max(s.seconds for s in res.warm):.3f}"
    hung_set = set(res.hung_ports)
    healthy_ok = len(res.cold.ok) == n and all(len(s.ok) == n for s in res.warm)

    rows = [
        ("ipmitool, once per BMC", f"{ipm:.3f}", "1.0x", f"{res.ipmitool_ok}/{n} ok", ""),
        (
            "ours, cold (1st sweep)",
            f"{cold:.3f}",
            f"{ipm / cold:.1f}x",
            f"{len(res.cold.ok)}/{n} ok",
            f">=10x {verdict(ipm / cold >= RATIO_GOAL)}; <={goal_s:g} s {verdict(cold <= goal_s)}",
        ),
        (
            f"ours, warm (median of {len(res.warm)}: {warm_range})",
            f"{warm:.3f}",
            f"{ipm / warm:.1f}x",
            f"{min(len(s.ok) for s in res.warm)}/{n} ok",
            f">=10x {verdict(ipm / warm >= RATIO_GOAL)}; <={goal_s:g} s {verdict(warm <= goal_s)}",
        ),
    ]
    hung_json = []
    hung_goals = True
    for i, h in enumerate(res.hung):
        failed_set = set(h.failed)
        exact = failed_set == hung_set and len(h.ok) == n - len(hung_set)
        within = h.seconds <= warm + args.deadline
        hung_goals = hung_goals and exact and within
        rows.append(
            (
                f"ours, {len(hung_set)} hung, sweep {i + 1} (deadline {args.deadline:g} s)",
                f"{h.seconds:.3f}",
                f"{ipm / h.seconds:.1f}x",
                f"{len(h.failed)} failed",
                f"<= warm + deadline ({warm + args.deadline:.2f} s) {verdict(within)}; "
                f"exactly the hung ones {verdict(exact)}",
            )
        )
        kinds: dict[str, int] = {}
        for msg in h.failed.values():
            kind = msg.split(":", 1)[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        hung_json.append(
            {
                **sweep_json(h),
                "exact": exact,
                "within_one_deadline": within,
                "failures_by_kind": kinds,
                "missed_hung": sorted(hung_set - failed_set),
                "healthy_failed": {str(p): h.failed[p] for p in sorted(failed_set - hung_set)},
                "healthy_states": sorted(set(h.ok.values())),
            }
        )

    head = ("figure", "seconds", "ipmitool/ours", "result", "goals")
    w = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    print()
    print(
        f"power-status sweep of {n} lab BMCs; ipmitool {args.parallel_ipmitool} in parallel; "
        f"ours: IpmiDriver called directly, workers={args.workers} "
        f"threads_per_worker={args.threads}, asyncio.Semaphore({args.concurrency}), "
        f"per-call budget {args.deadline:g} s"
    )
    for r in [head, *rows]:
        print("  ".join([*(c.ljust(w[i]) for i, c in enumerate(r[:4])), r[4]]).rstrip())
    for i, hj in enumerate(hung_json):
        print(
            f"hung sweep {i + 1}: failures by kind {hj['failures_by_kind']}; healthy BMCs read "
            f"{hj['healthy_states']}; hung BMCs not reported: {hj['missed_hung'] or 'none'}; "
            f"healthy BMCs reported failed: {len(hj['healthy_failed'])}"
        )
        for p, msg in list(hj["healthy_failed"].items())[:5]:
            print(f"  {p}: {msg}")
    print(f"IPMI worker restarts during the run: {res.restarts}")
    if res.restarts:
        print(
            "  a restart fails every call in flight on that worker's shard, healthy BMCs too "
            "(docs/benchmarks.md: the pyghmi lock-order deadlock)"
        )
    if not healthy_ok:
        print("WARNING: a healthy sweep of ours had failures; see the per-sweep lines above")
    print(
        f"lab CPU: ipmitool sweep {res.ipmitool_cpu.lab:.2f} s in {ipm:.2f} s; "
        f"cold {res.cold.cpu.lab:.2f} s in {cold:.2f} s; "
        f"warm {statistics.median(s.cpu.lab for s in res.warm):.2f} s in {warm:.2f} s "
        "(the lab is one Python process: 1 CPU second per second at most)"
    )
    slow = [slow_calls(s) for s in res.warm]
    print(
        f"warm calls slower than {SLOW_CALL_S:g} s per sweep: {slow} "
        "(each waited out a pyghmi retry timer; the slowest call sets the sweep time)"
    )
    goals_met = ipm / warm >= RATIO_GOAL and warm <= goal_s and hung_goals
    print("ALL GOALS MET (warm figure)" if goals_met else "GOALS MISSED (see MISSED above)")

    return {
        "machine": res.machine,
        "args": res.args,
        "base_port": res.base_port,
        "ipmitool": {
            "seconds": ipm,
            "ok": res.ipmitool_ok,
            "errors": res.ipmitool_errors[:20],
            "cpu": vars(res.ipmitool_cpu),
        },
        "cold": sweep_json(res.cold),
        "warm": [sweep_json(s) for s in res.warm],
        "warm_median_s": warm,
        "hung_ports": res.hung_ports,
        "hung": hung_json,
        "worker_restarts": res.restarts,
        "goals": {
            "ratio_warm": ipm / warm,
            "ratio_cold": ipm / cold,
            "hung_goals": hung_goals,
            "all_met": goals_met,
        },
    }


def sweep_json(s: Sweep) -> dict[str, Any]:
    return {
        "seconds": s.seconds,
        "ok": len(s.ok),
        "failed": sorted(s.failed),
        "p50_ms": _p(s.latencies, 0.5) * 1000,
        "max_ms": max(s.latencies) * 1000,
        "slow_calls": slow_calls(s),
        "cpu": vars(s.cpu),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--count", type=int, default=500, help="lab BMCs (default 500)")
    p.add_argument("--parallel-ipmitool", type=int, default=10, help="ipmitool processes at once")
    p.add_argument("--workers", type=int, default=2, help="IPMI worker processes (default 2)")
    p.add_argument("--threads", type=int, default=128, help="threads per worker (default 128)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=500,
        help="calls of ours in flight at once (asyncio.Semaphore; default 500)",
    )
    p.add_argument("--hung-percent", type=float, default=10.0, help="hung BMCs in the hung run")
    p.add_argument(
        "--deadline",
        type=float,
        default=6.0,
        help="per-call budget of our driver, seconds (its command_timeout is half of it)",
    )
    p.add_argument("--stall-grace", type=float, default=5.0, help="driver's stall_grace")
    p.add_argument("--repeat", type=int, default=3, help="warm sweeps (the median is reported)")
    p.add_argument(
        "--hung-sweeps", type=int, default=2, help="sweeps with the hung BMCs (default 2)"
    )
    p.add_argument("--base-port", type=int, default=0, help="first lab port (default: a free one)")
    p.add_argument("--seed", type=int, default=20261125, help="picks the hung BMCs")
    p.add_argument("--ipmitool", default="/usr/bin/ipmitool")
    p.add_argument("--time-budget", type=float, default=600.0, help="seconds for the whole run")
    p.add_argument("--json", dest="json_out", help="also write the results as JSON here")
    args = p.parse_args(argv)
    if not 1 <= args.count <= 1000:
        p.error("--count must be 1..1000 (the lab's limit)")
    if min(args.repeat, args.hung_sweeps, args.parallel_ipmitool, args.concurrency) < 1:
        p.error("--repeat, --hung-sweeps, --parallel-ipmitool and --concurrency must be >= 1")
    if not 0 <= args.hung_percent < 100 or args.deadline <= 0:
        p.error("--hung-percent must be 0..99 and --deadline > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt  # unwinds through the finally blocks that stop the lab

    signal.signal(signal.SIGTERM, on_term)
    # also when started in the background by a shell that ignores SIGINT
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        res = run(args)
    except KeyboardInterrupt:
        print("interrupted; lab and workers stopped", file=sys.stderr)
        return 130
    except (OSError, RuntimeError, TimeoutError) as exc:
        print(f"power_sweep: {exc}", file=sys.stderr)
        return 1
    report = print_report(res, args)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
