"""firmware_db.catalog: the shipped example loads; bad catalogs, tried as a new user would write
them, are refused with every problem located by path and line; versions keep their text."""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from firmware_db import model
from firmware_db.catalog import (
    CatalogError,
    catalog_schema,
    check_catalog,
    load_catalog,
    load_catalog_file,
)
from firmware_db.versions import parse
from provisiond.errors import FieldProblem, ValidationError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "firmware_db" / "catalogs" / "example.yaml"
MARK = "#!"  # the line a case's problem must be reported on


def cat(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def marked_line(text: str) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if MARK in line]
    assert len(lines) == 1, "a case marks exactly one line"
    return lines[0]


def problems_of(text: str) -> list[tuple[int | None, str, str]]:
    return [(p.line, p.where, p.message) for p in check_catalog(text)]


# ----------------------------------------------------------------------------- the example


def test_example_loads() -> None:
    assert check_catalog(EXAMPLE.read_text()) == []
    catalog = load_catalog_file(EXAMPLE)
    assert catalog.name == "example-2026.12"
    assert catalog.max_report_age.days == 30
    assert list(catalog.components) == [
        "dell-r760-bios",
        "dell-r760-idrac",
        "hpe-dl380-gen11-rom",
        "hpe-dl380-gen11-ilo",
        "smc-x13-bmc",
        "intel-e810-nvm",
        "nvidia-cx7-hca",
        "nvidia-h100-vbios",
    ]
    counts = {cid: len(c.releases) for cid, c in catalog.components.items()}
    assert counts == {
        "dell-r760-bios": 4,
        "dell-r760-idrac": 3,
        "hpe-dl380-gen11-rom": 3,
        "hpe-dl380-gen11-ilo": 3,
        "smc-x13-bmc": 2,
        "intel-e810-nvm": 3,
        "nvidia-cx7-hca": 3,
        "nvidia-h100-vbios": 2,
    }
    for comp in catalog.components.values():
        versions = [r.version for r in comp.releases]
        assert all(a < b for a, b in itertools.pairwise(versions)), comp.id
        assert comp.line is not None and all(r.line for r in comp.releases)
        assert comp.kind in model.KINDS
    # kinds of entry the example promises
    assert {"bios", "bmc", "nic", "hca", "gpu"} <= {c.kind for c in catalog.components.values()}
    assert [b.name for b in catalog.baselines] == [
        "r760-2024.08",
        "dl380-gen11-2024.06",
        "x13-2024.04",
    ]


def test_example_rules_are_built() -> None:
    catalog = load_catalog_file(EXAMPLE)
    bios = catalog.components["dell-r760-bios"]
    assert bios.format == "dell-bios"
    assert bios.minimum == parse("1.6.6", "dell-bios") and bios.minimum_reason
    assert bios.known_bad[0].covers(parse("2.0.3", "dell-bios"))
    r215 = bios.release(parse("2.1.5", "dell-bios"))
    assert r215 is not None and r215.urgency == "critical" and r215.cves == ("CVE-0000-0001",)
    (req,) = r215.requires
    assert (req.component, req.op, str(req.version), req.hard) == (
        "dell-r760-idrac",
        "ge",
        "7.00.00.171",
        True,
    )
    assert req.version.format == "quad"  # parsed in the format of the component it names
    assert req.line is not None
    assert r215.artifact is not None and len(r215.artifact.sha256) == 64

    rom = catalog.components["hpe-dl380-gen11-rom"]
    latest = rom.latest
    assert latest is not None and str(latest.version) == "2.20"
    assert [(r.component, r.hard) for r in latest.requires] == [("hpe-dl380-gen11-ilo", False)]
    assert str(rom.minimum) == "2.10"  # written unquoted: YAML's float would be 2.1

    idrac = catalog.components["dell-r760-idrac"]
    (bad_range,) = idrac.known_bad
    assert bad_range.covers(parse("7.00.00.100", "quad"))
    assert not bad_range.covers(parse("7.00.00.171", "quad"))
    stepped = idrac.release(parse("7.00.00.171", "quad"))
    assert stepped is not None and [str(v) for v in stepped.upgrade_from] == ["6.10.80.00"]

    hca = catalog.components["nvidia-cx7-hca"]
    assert hca.match.psids == ("MT_0000000834",)
    assert (hca.match.pci_vendor, hca.match.pci_device) == (0x15B3, 0x1021)
    assert {r.activation for r in hca.releases} == {"mlxfwreset"}

    for model_id in ("0x0B0E", "P52534-B21", "X13DEI"):
        assert catalog.baseline_for(model_id) is not None
    base = catalog.baseline_for("P52534-B21")
    assert base is not None and str(base.versions["hpe-dl380-gen11-ilo"]) == "1.59"


def test_schema_is_valid_and_matches_the_model() -> None:
    schema = dict(catalog_schema())
    Draft202012Validator.check_schema(schema)
    defs = schema["$defs"]
    assert tuple(defs["component"]["properties"]["kind"]["enum"]) == model.KINDS
    assert tuple(defs["requirement"]["properties"]["op"]["enum"]) == model.OPS
    assert tuple(defs["release"]["properties"]["urgency"]["enum"]) == model.URGENCIES
    assert tuple(defs["release"]["properties"]["activation"]["enum"]) == model.ACTIVATIONS


def test_every_combinator_in_the_schema_has_its_own_message() -> None:
    """jsonschema's own text for oneOf/not/... dumps the whole instance; ours says what to do."""

    def walk(node: Any, where: str) -> list[str]:
        missing: list[str] = []
        if isinstance(node, dict):
            for keyword in ("oneOf", "anyOf", "not", "dependentRequired", "minProperties"):
                if keyword in node and keyword not in node.get("x-messages", {}):
                    missing.append(f"{where}/{keyword}")
            for key, value in node.items():
                if key not in ("x-messages", "not", "oneOf", "anyOf"):
                    missing += walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                missing += walk(value, f"{where}/{i}")
        return missing

    assert walk(json.loads(json.dumps(dict(catalog_schema()))), "#") == []


# ----------------------------------------------------------------------------- a valid base

BASE = cat(
    """
    catalog: test
    components:
      - id: bios
        kind: bios
        format: triplet
        match: {system_models: ["M1"]}
        releases:
          - {version: 1.0.0}
          - {version: 1.1.0}
      - id: bmc
        kind: bmc
        format: quad
        match: {system_models: ["M1"]}
        releases:
          - {version: 1.0.0.0}
    """
)


def test_base_is_valid() -> None:
    assert check_catalog(BASE) == []


def test_releases_sorted_whatever_the_file_order_and_floats_keep_their_text() -> None:
    text = cat(
        """
        catalog: t
        components:
          - id: rom
            kind: bios
            format: dotted
            match: {system_models: ["M1"]}
            minimum: {version: 2.10, reason: first qualified}
            releases:
              - {version: 2.10}
              - {version: 2.9}
              - {version: 2.100}
              - {version: 20}
              - {version: 2.1}
        baselines:
          - name: b
            system_models: ["M1"]
            versions: {rom: 2.10}
        """
    )
    catalog = load_catalog(text)
    rom = catalog.components["rom"]
    assert [str(r.version) for r in rom.releases] == ["2.1", "2.9", "2.10", "2.100", "20"]
    assert str(rom.minimum) == "2.10"
    assert str(catalog.baselines[0].versions["rom"]) == "2.10"
    # lines are those of the file, not of the sorted order
    assert [r.line for r in rom.releases] == [13, 10, 9, 11, 12]


def test_unquoted_hex_identifiers_keep_their_text() -> None:
    text = cat(
        """
        catalog: t
        components:
          - id: nic
            kind: nic
            format: dotted
            match:
              pci: {vendor: 0x15b3, device: 1021, subvendor: 0x15b3, subdevice: 0041}
              system_models: [0x0B0E]
            releases: [{version: 1.0}]
        """
    )
    match = load_catalog(text).components["nic"].match
    assert (match.pci_vendor, match.pci_device) == (0x15B3, 0x1021)
    assert (match.pci_subvendor, match.pci_subdevice) == (0x15B3, 0x0041)
    assert match.system_models == ("0x0B0E",)


# ----------------------------------------------------------------------------- bad catalogs

# (name, catalog with the problem's line marked "#!", path, part of the message)
BAD: list[tuple[str, str, str, str]] = [
    (
        "a string where a list is due",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases: "1.0.0"  #!
        """,
        "components[bios].releases",
        "must be a list, not a string ('1.0.0')",
    ),
    (
        "an int id",
        """
        catalog: t
        components:
          - id: 5  #!
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
        """,
        "components[0].id",
        "must be a string, not a whole number (5): put it in quotes",
    ),
    (
        "an unknown kind",
        """
        catalog: t
        components:
          - id: bios
            kind: BIOS  #!
            format: triplet
            match: {system_models: ["M1"]}
        """,
        "components[bios].kind",
        "'BIOS' is not one of: bios, bmc",
    ),
    (
        "an unknown key",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            release:  #!
              - {version: 1.0.0}
        """,
        "components[bios].release",
        "unknown key 'release'; did you mean 'releases'?",
    ),
    (
        "an unknown format",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: tripplet  #!
            match: {system_models: ["M1"]}
            releases: [{version: 1.0.0}]
        """,
        "components[bios].format",
        "unknown version format 'tripplet'; did you mean 'triplet'?",
    ),
    (
        "an empty match",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {}  #!
        """,
        "components[bios].match",
        "match needs at least one stable identifier",
    ),
    (
        "a PCI id that is not 16-bit hex",
        """
        catalog: t
        components:
          - id: nic
            kind: nic
            format: dotted
            match:
              pci: {vendor: "0x15b3", device: "0x10213"}  #!
        """,
        "components[nic].match.pci.device",
        "'0x10213' is not a 16-bit PCI id",
    ),
    (
        "a bad PSID",
        """
        catalog: t
        components:
          - id: hca
            kind: hca
            format: triplet
            match:
              psids:
                - MT_834  #!
        """,
        "components[hca].match.psids[0]",
        "'MT_834' is not an NVIDIA PSID",
    ),
    (
        "a bad CVE id",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - version: 1.0.0
                cves: [CVE-2024-12]  #!
        """,
        "components[bios].releases[1.0.0].cves[0]",
        "'CVE-2024-12' is not a CVE id",
    ),
    (
        "a version that does not parse in its format",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - {version: 1.0.0}
              - {version: 1.0}  #!
        """,
        "components[bios].releases[1.0].version",
        "'1.0' is not a triplet version",
    ),
    (
        "a requirement's version in the wrong format for the component it names",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - version: 1.0.0
                requires:
                  - {component: bmc, op: ge, version: 1.0.0}  #!
          - id: bmc
            kind: bmc
            format: quad
            match: {system_models: ["M1"]}
        """,
        "components[bios].releases[1.0.0].requires[0].version",
        "'1.0.0' is not a quad version",
    ),
    (
        "duplicate component ids",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
          - id: bios  #!
            kind: bios
            format: triplet
            match: {system_models: ["M2"]}
        """,
        "components[1].id",
        "component id 'bios' is already used at line 3",
    ),
    (
        "duplicate releases written differently",
        """
        catalog: t
        components:
          - id: bmc
            kind: bmc
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - {version: 1.1.7}
              - {version: 01.01.07}  #!
        """,
        "components[bmc].releases[01.01.07].version",
        "release '01.01.07' is listed twice: it equals '1.1.7' at line 8",
    ),
    (
        "a duplicate YAML key",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            kind: bmc  #!
        """,
        "components[bios].kind",
        "key 'kind' appears twice in this mapping: first at line 4, again at line 7",
    ),
    (
        "an unknown required component",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - version: 1.0.0
                requires:
                  - {component: bmcc, op: ge, version: 1.0.0.0}  #!
          - id: bmc
            kind: bmc
            format: quad
            match: {system_models: ["M1"]}
        """,
        "components[bios].releases[1.0.0].requires[0].component",
        "requires 'bmcc', which is not a component of this catalog; did you mean 'bmc'?",
    ),
    (
        "an unknown parent",
        """
        catalog: t
        components:
          - id: nic
            kind: nic
            format: dotted
            parent: sytem  #!
            match: {pci: {vendor: "0x8086", device: "0x1592"}}
        """,
        "components[nic].parent",
        "parent 'sytem' is not a component of this catalog",
    ),
    (
        "a parent requirement without a parent",
        """
        catalog: t
        components:
          - id: nic
            kind: nic
            format: dotted
            match: {pci: {vendor: "0x8086", device: "0x1592"}}
            releases:
              - version: "4.40"
                requires: [{component: parent, op: ge, version: 1.0.0}]  #!
        """,
        "components[nic].releases[4.40].requires[0].component",
        "requires 'parent' but the component has no parent",
    ),
    (
        "a release requiring its own component by id",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - {version: 1.0.0}
              - version: 1.1.0
                requires:
                  - {component: bios, op: ge, version: 1.0.0}  #!
        """,
        "components[bios].releases[1.1.0].requires[0].component",
        "release 1.1.0 requires its own component 'bios': a release cannot require itself",
    ),
    (
        "a release requiring itself through self",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - {version: 1.0.0}
              - version: 1.1.0
                requires:
                  - {component: self, op: ge, version: 1.1.0}  #!
        """,
        "components[bios].releases[1.1.0].requires[0]",
        "release 1.1.0 requires itself: no version older than 1.1.0 meets self ge 1.1.0",
    ),
    (
        "self conditions that no upgrade_from version meets",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - {version: 1.0.0}
              - {version: 1.1.0}
              - version: 1.2.0
                upgrade_from: [1.0.0]
                requires:
                  - {component: self, op: ge, version: 1.1.0}  #!
        """,
        "components[bios].releases[1.2.0].requires[0]",
        "no version in upgrade_from (1.0.0) meets self ge 1.1.0",
    ),
    (
        "upgrade_from naming a version that is not a release",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - {version: 1.0.0}
              - version: 1.2.0
                upgrade_from:
                  - 1.1.0  #!
        """,
        "components[bios].releases[1.2.0].upgrade_from[0]",
        "1.1.0 is not a release of bios",
    ),
    (
        "a minimum above the newest release",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            minimum: {version: 2.0.0, reason: policy}  #!
            releases: [{version: 1.0.0}]
        """,
        "components[bios].minimum.version",
        "minimum 2.0.0 is above the newest release 1.0.0",
    ),
    (
        "an empty known-bad range",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            known_bad:
              - range: {ge: 1.7.0, lt: 1.5.0}  #!
                reason: broken
        """,
        "components[bios].known_bad[0].range",
        "the range 1.7.0 <= v < 1.5.0 contains no version",
    ),
    (
        "a baseline with a known-bad version",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            known_bad: [{version: 1.0.0, reason: bricks the board}]
            releases: [{version: 1.0.0}, {version: 1.1.0}]
        baselines:
          - name: m1
            system_models: ["M1"]
            versions:
              bios: 1.0.0  #!
        """,
        "baselines[m1].versions[bios]",
        "1.0.0 is known-bad for bios: bricks the board",
    ),
    (
        "a baseline version that is not a release",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases: [{version: 1.0.0}, {version: 1.1.0}]
        baselines:
          - name: m1
            system_models: ["M1"]
            versions: {bios: 1.0.5}  #!
        """,
        "baselines[m1].versions[bios]",
        "1.0.5 is not a release of bios (releases: 1.0.0, 1.1.0)",
    ),
    (
        "a baseline naming an unknown component",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases: [{version: 1.0.0}]
        baselines:
          - name: m1
            system_models: ["M1"]
            versions:
              bois: 1.0.0  #!
        """,
        "baselines[m1].versions[bois]",
        "'bois' is not a component of this catalog; did you mean 'bios'?",
    ),
    (
        "a baseline breaking its own hard requirement",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - version: 1.0.0
                requires: [{component: bmc, op: ge, version: 2.0.0.0}]
          - id: bmc
            kind: bmc
            format: quad
            match: {system_models: ["M1"]}
            releases: [{version: 1.0.0.0}, {version: 2.0.0.0}]
        baselines:
          - name: m1
            system_models: ["M1"]
            versions:
              bios: 1.0.0  #!
              bmc: 1.0.0.0
        """,
        "baselines[m1].versions[bios]",
        "bios 1.0.0 requires bmc ge 2.0.0.0 (line 9), but this baseline has bmc 1.0.0.0",
    ),
    (
        "mlxfwreset on a BIOS",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - version: 1.0.0
                activation: mlxfwreset  #!
        """,
        "components[bios].releases[1.0.0].activation",
        "mlxfwreset activates NVIDIA NIC/HCA firmware, not a bios component's",
    ),
    (
        "an alias",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: &m {system_models: ["M1"]}
          - id: bmc
            kind: bmc
            format: quad
            match: *m  #!
        """,
        "components[bmc].match",
        "aliases (*name) are not supported",
    ),
    (
        "a YAML syntax error",
        """
        catalog: t
        components:
          - id: bios
            kind: bios
           format: triplet  #!
        """,
        "(file)",
        "not valid YAML: did not find expected '-' indicator",
    ),
    (
        "a tab",
        """
        catalog: t
        components:
          - id: bios
        \tkind: bios  #!
        """,
        "(file)",
        "YAML cannot be indented with tabs",
    ),
]


@pytest.mark.parametrize(("name", "text", "where", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_catalog(name: str, text: str, where: str, message: str) -> None:
    text = cat(text)
    found = problems_of(text)
    assert found, f"{name}: accepted"
    # one mistake, one problem: no cascade of follow-on noise
    assert len(found) == 1, found
    line, got_where, got_message = found[0]
    assert (line, got_where) == (marked_line(text), where), found
    assert message in got_message
    with pytest.raises(CatalogError) as info:
        load_catalog(text, source="site.yaml")
    assert info.value.problems == check_catalog(text)


@pytest.mark.parametrize("length", [2, 3])
def test_a_cycle_of_hard_requirements_is_refused(length: int) -> None:
    ids = ["a", "b", "c"][:length]
    blocks = []
    for i, cid in enumerate(ids):
        nxt = ids[(i + 1) % length]
        blocks.append(
            f"""
              - id: {cid}
                kind: bios
                format: triplet
                match: {{system_models: ["M1"]}}
                releases:
                  - version: 1.0.0
                    requires:
                      - {{component: {nxt}, op: ge, version: 1.0.0}}{"  " + MARK if i == 0 else ""}
            """
        )
    text = "catalog: t\ncomponents:\n" + "".join(
        textwrap.dedent(b).strip("\n") + "\n" for b in blocks
    )
    found = problems_of(text)
    assert len(found) == 1, found
    line, where, message = found[0]
    assert (line, where) == (marked_line(text), "components[a].releases[1.0.0].requires[0]")
    assert " -> ".join([*ids, "a"]) in message
    assert "no install order" in message


def test_soft_requirements_and_self_make_no_cycle() -> None:
    text = cat(
        """
        catalog: t
        components:
          - id: a
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - {version: 1.0.0}
              - version: 1.1.0
                requires:
                  - {component: b, op: ge, version: 1.0.0}
                  - {component: self, op: ge, version: 1.0.0}
          - id: b
            kind: bmc
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - version: 1.0.0
                requires: [{component: a, op: ge, version: 1.0.0, hard: false}]
        """
    )
    assert check_catalog(text) == []


def test_parent_requirements_resolve_and_count_in_cycles() -> None:
    text = cat(
        """
        catalog: t
        components:
          - id: sys
            kind: system
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - version: 1.0.0
                requires: [{component: nic, op: ge, version: "4.40"}]
          - id: nic
            kind: nic
            format: dotted
            parent: sys
            match: {pci: {vendor: "0x8086", device: "0x1592"}}
            releases:
              - version: "4.40"
                requires: [{component: parent, op: ge, version: 1.0.0}]
        """
    )
    (problem,) = check_catalog(text)
    assert "nic -> sys -> nic" in problem.message  # a cycle is told from its smallest id
    # made soft, the same catalog loads and the requirement is kept as written
    catalog = load_catalog(text.replace("version: 1.0.0}]", "version: 1.0.0, hard: false}]"))
    (req,) = catalog.components["nic"].releases[0].requires
    assert (req.component, req.version.format, req.hard) == ("parent", "triplet", False)


def test_every_mistake_is_listed_at_once() -> None:
    text = cat(
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - {version: 1.0.0}
              - {version: 1.0.0}
              - version: 1.1.0
                requires: [{component: bmc, op: ge, version: 1.0.0.0}]
          - id: bmc
            kind: bmc
            format: quad
            match: {pci: {vendor: "0x15b3", device: "0x1g21"}}
            releases:
              - version: 1.0.0.0
                requires: [{component: bios, op: ge, version: 1.0.0}]
              - {version: 1.0.0}
          - id: nic
            kind: nick
            format: dotted
            match:
              psids: "MT_0000000834"
          - id: 7
            kind: gpu
            format: dotted
            match: {system_models: ["M1"]}
        baselines:
          - name: m1
            system_models: ["M1"]
            versions: {bios: 1.0.5, gpu: 1}
        """
    )
    expected = {
        (9, "components[bios].releases[1].version", "release '1.0.0' is listed twice"),
        # (no cycle bios -> bmc -> bios: bmc's only release is itself unreadable, so nothing
        # can be said of what installs it)
        (15, "components[bmc].match.pci.device", "'0x1g21' is not a 16-bit PCI id"),
        (19, "components[bmc].releases[1.0.0].version", "'1.0.0' is not a quad version"),
        (21, "components[nic].kind", "'nick' is not one of"),
        (24, "components[nic].match.psids", "must be a list, not a string"),
        (25, "components[3].id", "must be a string, not a whole number (7)"),
        (32, "baselines[m1].versions[bios]", "1.0.5 is not a release of bios"),
        (32, "baselines[m1].versions[gpu]", "'gpu' is not a component of this catalog"),
    }
    found = problems_of(text)
    for line, where, message in expected:
        assert any(
            (got_line, got_where) == (line, where) and message in got_message
            for got_line, got_where, got_message in found
        ), (line, where, message, found)
    assert len(found) == len(expected), found
    with pytest.raises(CatalogError) as info:
        load_catalog(text, source="site/fw.yaml")
    err = info.value
    assert isinstance(err, ValidationError) and err.kind == "catalog"
    assert err.source == "site/fw.yaml"
    lines = str(err).splitlines()
    assert lines[0] == f"catalog site/fw.yaml has {len(expected)} problems"
    assert "site/fw.yaml:21: components[nic].kind: 'nick' is not one of" in str(err)
    assert all(line.startswith("site/fw.yaml:") for line in lines[1:])


def test_duplicate_release_labels_fall_back_to_indexes() -> None:
    # a path must point at one entry: two releases written alike are told apart by index
    text = BASE.replace("- {version: 1.1.0}", "- {version: 1.0.0}")
    (problem,) = check_catalog(text)
    assert problem == FieldProblem(
        "components[bios].releases[1].version",
        "release '1.0.0' is listed twice: it equals '1.0.0' at line 8",
        line=9,
    )


def test_file_errors() -> None:
    with pytest.raises(CatalogError) as info:
        load_catalog_file("/nonexistent/catalog.yaml")
    assert info.value.problems[0].where == "(file)"
    assert str(info.value).startswith("catalog /nonexistent/catalog.yaml cannot be read")


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "fw.yaml"
    path.write_bytes(b"catalog: t\ncomponents:\n  - id: \xff\n")
    with pytest.raises(CatalogError) as info:
        load_catalog_file(path)
    assert [(p.where, p.line) for p in info.value.problems] == [("(file)", 3)]
    assert f"{path}:3: (file): not UTF-8 text" in str(info.value)


def test_empty_and_non_mapping_files() -> None:
    assert problems_of("") == [(1, "(file)", "the catalog is empty")]
    assert problems_of("- a\n") == [(1, "(file)", "must be a mapping, not a list")]


def test_mutual_requirements_that_an_order_satisfies_are_accepted() -> None:
    """BMC 2.0.0 needs nothing, BIOS 1.7.0 needs BMC >= 2.0.0, BMC 2.5.0 needs BIOS >= 1.0.0:
    a cycle between components, but BMC 2.0.0 -> BIOS 1.7.0 -> BMC 2.5.0 installs them."""
    text = cat(
        """
        catalog: t
        components:
          - id: bios
            kind: bios
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - version: 1.0.0
              - version: 1.7.0
                requires: [{component: bmc, op: ge, version: 2.0.0}]
          - id: bmc
            kind: bmc
            format: triplet
            match: {system_models: ["M1"]}
            releases:
              - version: 2.0.0
              - version: 2.5.0
                requires: [{component: bios, op: ge, version: 1.0.0}]
        """
    )
    assert problems_of(text) == []


def test_a_whole_number_of_days_written_as_a_float_is_days() -> None:
    text = cat(
        """
        catalog: t
        max_report_age_days: 30.0
        components:
          - {id: a, kind: bios, format: triplet, match: {system_models: [M]},
             releases: [{version: 1.0.0}]}
        """
    )
    assert check_catalog(text) == [] and load_catalog(text).max_report_age.days == 30
