"""firmware_db.rules: one test per finding, the node verdict, lie detection and the upgrade plan,
on catalogs built from firmware_db.model values (the YAML loader is tested on its own)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from firmware_db.model import (
    Baseline,
    Catalog,
    Component,
    Identifiers,
    InventoryComponent,
    KnownBad,
    Match,
    Reading,
    Release,
    Requirement,
)
from firmware_db.rules import Evaluator, NodeVerdict
from firmware_db.versions import parse

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
MODEL = "0x0B0E"


def t(text: str) -> Any:
    return parse(text, "triplet")


def rel(version: str, *requires: Requirement, upgrade_from: tuple[str, ...] = ()) -> Release:
    return Release(t(version), requires=requires, upgrade_from=tuple(map(t, upgrade_from)))


def need(component: str, op: str, version: str, hard: bool = True) -> Requirement:
    return Requirement(component, op, t(version), hard)


BMC = Component(
    "r760-bmc", "bmc", "triplet", Match(system_models=(MODEL,)),
    releases=(rel("6.0.0"), rel("7.0.0"), rel("7.1.0")),
)  # fmt: skip
BIOS = Component(
    "r760-bios", "bios", "triplet", Match(system_models=(MODEL,)),
    releases=(
        rel("1.9.0"), rel("2.0.0"), rel("2.0.1"),
        rel("2.1.0", need("r760-bmc", "ge", "7.0.0"), upgrade_from=("2.0.0",)),
        rel("2.2.0", need("r760-bmc", "ge", "7.1.0", hard=False), upgrade_from=("2.1.0",)),
    ),
    minimum=t("1.9.0"), minimum_reason="Spectre microcode",
    known_bad=(KnownBad("corrupts NVRAM", version=t("2.0.1")),),
    line=10,
)  # fmt: skip
HCA = Component(
    "cx7", "hca", "triplet", Match(psids=("MT_0000000834",)),
    releases=(rel("28.38.1000"), rel("28.39.1002")),
    known_bad=(KnownBad("link flaps", lower=t("28.36.0"), upper=t("28.38.0")),),
    parent="r760-bios",
)  # fmt: skip
NIC = Component(
    "e810", "nic", "triplet",
    Match(pci_vendor=0x8086, pci_device=0x1592),
    releases=(rel("4.4.0", need("parent", "ge", "2.0.0")),),
    parent="r760-bios",
)  # fmt: skip
CATALOG = Catalog("test", {c.id: c for c in (BMC, BIOS, HCA, NIC)})


def comp(slot: str, kind: str, *readings: Reading, **ids: Any) -> InventoryComponent:
    return InventoryComponent(slot, Identifiers(kind=kind, **ids), tuple(readings))


def now(version: str, channel: str = "inband", days: int = 0, staged: bool = False) -> Reading:
    return Reading(version, channel, NOW - dt.timedelta(days=days), staged)


def judge(*components: InventoryComponent, catalog: Catalog = CATALOG) -> NodeVerdict:
    return Evaluator(catalog).evaluate(list(components), now=NOW, system_model=MODEL)


def by_slot(v: NodeVerdict) -> dict[str, Any]:
    return {c.slot: c for c in v.components}


def test_a_node_at_the_newest_releases_is_compliant() -> None:
    v = judge(comp("bios", "bios", now("2.2.0")), comp("bmc", "bmc", now("7.1.0")))
    assert v.verdict == "compliant" and v.plan == ()
    assert [c.verdict for c in v.components] == ["ok", "ok"]


@pytest.mark.parametrize(
    ("version", "verdict", "severity", "needle"),
    [
        ("2.0.1", "known-bad", "blocked", "corrupts NVRAM"),
        ("1.8.0", "below-minimum", "blocked", "below the minimum 1.9.0: Spectre microcode"),
        ("2.0.0", "outdated", "warn", "2.0.0 is below 2.2.0 (newest release)"),
    ],
)
def test_version_rules(version: str, verdict: str, severity: str, needle: str) -> None:
    v = judge(comp("bios", "bios", now(version)), comp("bmc", "bmc", now("7.1.0")))
    bios = by_slot(v)["bios"]
    assert (bios.verdict, bios.severity, v.verdict) == (verdict, severity, severity)
    assert any(needle in f.reason for f in bios.findings), bios.findings


def test_known_bad_range_and_its_rule_location() -> None:
    v = judge(comp("hca", "hca", now("28.37.5"), psid="MT_0000000834"))
    (hca,) = v.components
    assert hca.verdict == "known-bad" and "link flaps" in hca.findings[0].reason
    assert v.verdict == "blocked" and v.blocking()[0][1].rule == "cx7"
    upper = judge(comp("hca", "hca", now("28.38.0"), psid="MT_0000000834"))
    assert upper.components[0].verdict == "outdated"  # the range's upper bound is exclusive


def test_hard_and_soft_requirements() -> None:
    hard = judge(comp("bios", "bios", now("2.1.0")), comp("bmc", "bmc", now("6.0.0")))
    bios = by_slot(hard)["bios"]
    assert bios.verdict == "unmet-requirement" and hard.verdict == "blocked"
    assert "requires r760-bmc >= 7.0.0 (hard); bmc has 6.0.0" in bios.findings[0].reason
    soft = judge(comp("bios", "bios", now("2.2.0")), comp("bmc", "bmc", now("7.0.0")))
    assert by_slot(soft)["bios"].verdict == "unmet-requirement" and soft.verdict == "warn"
    missing = judge(comp("bios", "bios", now("2.1.0")))
    assert "which this node does not report" in by_slot(missing)["bios"].findings[0].reason


def test_parent_requirement() -> None:
    nic = comp("nic0", "nic", now("4.4.0"), pci_vendor=0x8086, pci_device=0x1592)
    v = judge(nic, comp("bios", "bios", now("1.9.0")), comp("bmc", "bmc", now("7.1.0")))
    assert by_slot(v)["nic0"].verdict == "unmet-requirement"
    assert "requires r760-bios >= 2.0.0" in by_slot(v)["nic0"].findings[0].reason


def test_components_are_matched_by_identifiers_never_names() -> None:
    other_pci = comp("nic1", "nic", now("4.4.0"), pci_vendor=0x8086, pci_device=0x1593)
    wrong_kind = comp("x", "gpu", now("4.4.0"), pci_vendor=0x8086, pci_device=0x1592)
    no_psid = comp("hca", "hca", now("28.39.1002"))
    v = judge(other_pci, wrong_kind, no_psid)
    assert {c.slot: c.verdict for c in v.components} == {
        "nic1": "unknown-component",
        "x": "unknown-component",
        "hca": "unknown-component",
    }
    assert "pci 8086:1593" in by_slot(v)["nic1"].findings[0].reason
    assert v.verdict == "warn"


def test_an_ambiguous_match_is_unknown_not_a_guess() -> None:
    twin = Component(
        "twin", "bmc", "triplet", Match(system_models=(MODEL,)), releases=(rel("7.1.0"),)
    )
    catalog = Catalog("t", {c.id: c for c in (BMC, twin)})
    (bmc,) = judge(comp("bmc", "bmc", now("7.1.0")), catalog=catalog).components
    assert bmc.verdict == "unknown-component"


def test_channels_disagree_shows_both_and_judges_both() -> None:
    """Redfish reports the staged image as running; the agent reads the running one."""
    v = judge(
        comp("bios", "bios", now("2.2.0", "redfish"), now("2.0.1", "inband", days=1)),
        comp("bmc", "bmc", now("7.1.0")),
    )
    bios = by_slot(v)["bios"]
    assert bios.verdict == "known-bad"  # the worst wins, but both findings are kept
    names = [f.verdict for f in bios.findings]
    assert "channels-disagree" in names and v.verdict == "blocked"
    disagree = next(f for f in bios.findings if f.verdict == "channels-disagree")
    assert "redfish says 2.2.0 (2026-12-03 12:00)" in disagree.reason
    assert "inband says 2.0.1 (2026-12-02 12:00)" in disagree.reason
    assert bios.version is None  # never silently one of them
    assert {r.channel for r in bios.readings} == {"redfish", "inband"}
    harmless = judge(
        comp("bios", "bios", now("2.2.0", "redfish"), now("2.0.0", "inband")),
        comp("bmc", "bmc", now("7.1.0")),
    )
    assert by_slot(harmless)["bios"].verdict == "channels-disagree"
    assert harmless.verdict == "warn" and "channels disagree" in harmless.plan_problems[0]


def test_a_staged_image_is_not_the_running_version_but_is_judged() -> None:
    """A staged known-bad BIOS runs after the next reboot (provide's cleaning reboots): the
    node is blocked now; the running version is still the one running."""
    v = judge(
        comp("bios", "bios", now("2.2.0"), now("2.0.1", "redfish", staged=True)),
        comp("bmc", "bmc", now("7.1.0")),
    )
    bios = by_slot(v)["bios"]
    assert bios.version == "2.2.0" and bios.verdict == "known-bad" and v.verdict == "blocked"
    assert bios.findings[0].reason.startswith("staged image (runs after the next activation)")
    fine = judge(
        comp("bios", "bios", now("2.1.0"), now("2.2.0", "redfish", staged=True)),
        comp("bmc", "bmc", now("7.1.0")),
    )
    assert by_slot(fine)["bios"].version == "2.1.0"
    only_staged = judge(comp("bmc", "bmc", now("7.1.0", staged=True)))
    assert by_slot(only_staged)["bmc"].verdict == "unreadable-version"


def test_two_instances_of_one_component_are_judged_each() -> None:
    """Eight HCAs of one model are eight components, not one."""
    v = judge(
        comp("hca0", "hca", now("28.38.1000"), psid="MT_0000000834"),
        comp("hca1", "hca", now("28.39.1002"), psid="MT_0000000834"),
        comp("hca2", "hca", now("28.37.0"), psid="MT_0000000834"),
    )
    got = {c.slot: (c.version, c.verdict) for c in v.components}
    assert got == {
        "hca0": ("28.38.1000", "outdated"),
        "hca1": ("28.39.1002", "ok"),
        "hca2": ("28.37.0", "known-bad"),
    }
    assert {(s.slot, s.to_version) for s in v.plan} == {
        ("hca0", "28.39.1002"),
        ("hca2", "28.39.1002"),
    }


def test_an_unreadable_channel_is_a_disagreement_not_a_vote() -> None:
    v = judge(
        comp("bios", "bios", now("2.1.0"), now("v2", "ipmi")), comp("bmc", "bmc", now("7.1.0"))
    )
    bios = by_slot(v)["bios"]
    assert bios.version is None and "channels disagree" in v.plan_problems[0]


def test_a_slot_the_channels_name_differently_is_blocked() -> None:
    odd = InventoryComponent(
        "bios",
        Identifiers(kind="bios"),
        (now("2.2.0"),),
        conflict="kind: bios (inband), disk (operator)",
    )
    v = judge(odd, comp("bmc", "bmc", now("7.1.0")))
    assert v.verdict == "blocked" and "channels disagree on what this is" in v.reasons[0]


def test_the_target_is_never_a_known_bad_release() -> None:
    bad_newest = Component(
        "nvme", "nvme", "triplet", Match(pci_vendor=0x144D, pci_device=0xA80A),
        releases=(rel("1.0.0"), rel("1.1.0"), rel("2.0.0")),
        known_bad=(KnownBad("bricks drives", version=t("2.0.0")),),
    )  # fmt: skip
    v = judge(
        comp("nvme0", "nvme", now("1.0.0"), pci_vendor=0x144D, pci_device=0xA80A),
        catalog=Catalog("t", {"nvme": bad_newest}),
    )
    assert v.components[0].target == "1.1.0"
    assert [s.to_version for s in v.plan] == ["1.1.0"]


def test_cached_findings_carry_each_nodes_own_text() -> None:
    ev = Evaluator(CATALOG)
    for text in ("2.0.1", "02.00.01"):
        v = ev.evaluate([comp("bios", "bios", now(text))], now=NOW, system_model=MODEL)
        assert f"r760-bios {text} is known bad" in v.components[0].findings[0].reason


def test_stale_and_unreadable() -> None:
    v = judge(
        comp("bios", "bios", now("2.2.0", days=40)),
        comp("bmc", "bmc", now("7.1.0"), now("v7", "ipmi")),
    )
    assert by_slot(v)["bios"].verdict == "stale"
    bmc = by_slot(v)["bmc"]
    assert bmc.verdict == "unreadable-version" and "'v7' is not a triplet" in bmc.findings[0].reason


def test_baseline_sets_the_target() -> None:
    base = Baseline("r760-2026.06", (MODEL,), {"r760-bios": t("2.1.0"), "r760-bmc": t("7.0.0")})
    catalog = Catalog("t", CATALOG.components, (base,))
    v = judge(comp("bios", "bios", now("2.1.0")), comp("bmc", "bmc", now("7.0.0")),
              catalog=catalog)  # fmt: skip
    assert v.verdict == "compliant" and by_slot(v)["bios"].target == "2.1.0"


def test_plan_orders_requirements_and_respects_stepping() -> None:
    # BIOS 1.9.0 -> 2.2.0: 2.1.0 installs only over 2.0.0 (stepping), 2.0.1 is known bad (never
    # a stepping stone); 2.1.0 needs BMC >= 7.0.0, so the BMC goes first
    v = judge(comp("bios", "bios", now("1.9.0")), comp("bmc", "bmc", now("6.0.0")))
    steps = [(s.component, s.from_version, s.to_version) for s in v.plan]
    assert steps.index(("r760-bmc", "6.0.0", "7.1.0")) < steps.index(
        ("r760-bios", "2.0.0", "2.1.0")
    )
    bios_steps = [s for s in steps if s[0] == "r760-bios"]
    assert bios_steps == [
        ("r760-bios", "1.9.0", "2.0.0"),
        ("r760-bios", "2.0.0", "2.1.0"),
        ("r760-bios", "2.1.0", "2.2.0"),
    ]
    assert v.plan_problems == ()


def test_plan_reports_what_it_cannot_do() -> None:
    stuck = Component(
        "stuck", "bios", "triplet", Match(system_models=(MODEL,)),
        releases=(rel("1.0.0"), rel("2.0.0", upgrade_from=("1.5.0",))),
    )  # fmt: skip
    v = judge(comp("bios", "bios", now("1.0.0")), catalog=Catalog("t", {"stuck": stuck}))
    assert v.plan == () and "no upgrade path from 1.0.0 to 2.0.0" in v.plan_problems[0]
