"""Benchmark: judging 10,000 nodes x 20 firmware components against a 5,000-release catalog.

A synthetic catalog (``--components`` components x ``--releases`` releases: BIOS and BMC per
system model, NICs and HCAs by PCI ids and PSIDs, GPUs by PCI ids; minimums, known-bad versions
and ranges, BIOS-requires-BMC rules, stepping) is written as YAML and loaded with the real loader
(firmware_db.catalog), then ``--nodes`` inventories of ``--per-node`` components (two channels
for the BIOS, disagreeing on 2% of nodes; 3% of readings stale) are judged with
firmware_db.rules.Evaluator, the code the daemon runs:

- **verdicts**: every node's component and node verdicts (what `GET /v1/firmware/report`
  computes). Goal: < 2 s.
- **with plans**: the same plus each node's ordered upgrade plan.

Reported: load time, both figures, nodes per second, the verdict counts (a sanity check that
the catalog's rules fire). No peer program does this; the figure stands against the goal.
Not a test: exits 0 even when the goal is missed (1 only on errors).
Usage: python bench/firmware_eval.py [--nodes 10000] [--per-node 20] [--components 250]
       [--releases 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware_db.catalog import load_catalog  # noqa: E402
from firmware_db.model import Identifiers, InventoryComponent, Reading  # noqa: E402
from firmware_db.rules import Evaluator  # noqa: E402


def triplet(i: int, j: int) -> str:
    return f"{1 + i % 7}.{j}.{(i * 37 + j * 11) % 1000}"


def build_yaml(components: int, releases: int, models: int) -> tuple[str, list[dict[str, object]]]:
    """The catalog text and, per component, what an inventory needs to report it."""
    lines = ["catalog: bench", "max_report_age_days: 30", "components:"]
    specs: list[dict[str, object]] = []
    for c in range(components):
        model = f"0x{0x0A00 + c % models:04X}"
        if c < models:
            kind, match = "bios", f'system_models: ["{model}"]'
        elif c < 2 * models:
            kind, match = "bmc", f'system_models: ["0x{0x0A00 + c - models:04X}"]'
        else:
            kind = ("nic", "hca", "gpu", "nvme")[c % 4]
            match = f'pci: {{vendor: "0x{0x1000 + c % 16:04x}", device: "0x{0x2000 + c:04x}"}}'
        cid = f"c{c:04d}"
        versions = [triplet(c, j) for j in range(releases)]
        versions.sort(key=lambda t: tuple(int(x) for x in t.split(".")))
        lines += [
            f"  - id: {cid}",
            f"    kind: {kind}",
            "    format: triplet",
            f"    match: {{{match}}}",
            f"    minimum: {{version: {versions[2]}, reason: security floor}}",
            "    known_bad:",
            f"      - {{version: {versions[5]}, reason: corrupts NVRAM}}",
            f"      - {{range: {{ge: {versions[8]}, lt: {versions[10]}}}, reason: link flaps}}",
            "    releases:",
        ]
        for j, v in enumerate(versions):
            lines.append(f"      - version: {v}")
            if kind == "bios" and j >= releases // 2:  # newer BIOSes need a newer BMC
                need = _sorted_versions(c + models, releases)[3]
                lines.append(f"        requires: [{{component: c{c + models:04d}, op: ge, "
                             f"version: {need}}}]")  # fmt: skip
            if j == releases - 1:
                lines.append(f"        upgrade_from: [{versions[-2]}, {versions[-3]}]")
        specs.append({"id": cid, "kind": kind, "model": model, "versions": versions, "c": c})
    return "\n".join(lines) + "\n", specs


def _sorted_versions(c: int, releases: int) -> list[str]:
    vs = [triplet(c, j) for j in range(releases)]
    return sorted(vs, key=lambda t: tuple(int(x) for x in t.split(".")))


def inventories(
    specs: list[dict[str, object]], nodes: int, per_node: int, models: int, seed: int
) -> list[tuple[str, list[InventoryComponent]]]:
    rng = random.Random(seed)
    now = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    pci = [s for s in specs if s["kind"] not in ("bios", "bmc")]
    out = []
    for n in range(nodes):
        m = n % models
        model = f"0x{0x0A00 + m:04X}"
        chosen = [specs[m], specs[models + m], *rng.sample(pci, per_node - 2)]
        comps = []
        for k, s in enumerate(chosen):
            versions = s["versions"]
            assert isinstance(versions, list)
            v = versions[rng.randrange(len(versions))] if rng.random() < 0.3 else versions[-1]
            age = dt.timedelta(days=45 if rng.random() < 0.03 else 1)
            readings = [Reading(v, "inband", now - age)]
            if s["kind"] == "bios":
                other = versions[-2] if rng.random() < 0.02 else v
                readings.append(Reading(other, "redfish", now - age))
            c = int(str(s["c"]))
            if s["kind"] in ("bios", "bmc"):
                ids = Identifiers(kind=str(s["kind"]), system_model=model)
            else:
                ids = Identifiers(kind=str(s["kind"]), pci_vendor=0x1000 + c % 16,
                                  pci_device=0x2000 + c)  # fmt: skip
            comps.append(InventoryComponent(f"slot{k}", ids, tuple(readings)))
        out.append((model, comps))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=10_000)
    p.add_argument("--per-node", type=int, default=20)
    p.add_argument("--components", type=int, default=250)
    p.add_argument("--releases", type=int, default=20)
    p.add_argument("--models", type=int, default=25)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    text, specs = build_yaml(args.components, args.releases, args.models)
    t0 = time.perf_counter()
    catalog = load_catalog(text, source="bench")
    t_load = time.perf_counter() - t0
    invs = inventories(specs, args.nodes, args.per_node, args.models, args.seed)
    now = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    results: dict[str, float] = {}
    counts: dict[str, int] = {}
    for label, with_plan in (("verdicts", False), ("with plans", True)):
        ev = Evaluator(catalog)  # fresh caches each time
        t0 = time.perf_counter()
        tally: dict[str, int] = {}
        for model, comps in invs:
            v = ev.evaluate(comps, now=now, system_model=model, plan=with_plan)
            tally[v.verdict] = tally.get(v.verdict, 0) + 1
        results[label] = time.perf_counter() - t0
        counts = tally
    releases = sum(len(c.releases) for c in catalog.components.values())
    print(f"machine: {platform.machine()}, {platform.python_implementation()} "
          f"{platform.python_version()}")  # fmt: skip
    print(f"catalog: {len(catalog.components)} components, {releases} releases, "
          f"{len(text) / 1024:.0f} KiB YAML, loaded in {t_load:.2f} s")  # fmt: skip
    print(f"fleet: {args.nodes} nodes x {args.per_node} components")
    for label, secs in results.items():
        print(f"  {label:<12} {secs:6.2f} s   {args.nodes / secs:8.0f} nodes/s")
    print(f"node verdicts: {dict(sorted(counts.items()))}")
    goal = results["verdicts"] < 2.0
    print(f"goal verdicts < 2 s: {'met' if goal else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
