"""Firmware in the daemon: catalogs imported (the shipped example; bad ones refused whole, every
problem with its line), inventories posted, node and fleet verdicts, and the lifecycle gate: a
blocked node is refused by `provide` (409 naming the component and rule), then accepted after an
admin's override with a reason, both recorded as events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from firmware_db.catalog import check_catalog
from provisiond.models import Operation
from tests.conftest import Api, rack_yaml
from tests.test_engine import act, node, wait_op

EXAMPLE = Path(__file__).resolve().parents[1] / "firmware_db" / "catalogs" / "example.yaml"
R760 = "0x0B0E"


async def import_catalog(api: Api, text: str, expect: int = 201) -> dict[str, Any]:
    r = await api.req(
        "POST",
        "/v1/firmware/catalogs",
        params={"filename": "site.yaml"},
        data=text.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    out: dict[str, Any] = await r.json()
    assert r.status == expect, out
    return out


async def report(api: Api, name: str, body: dict[str, Any], expect: int = 201) -> Any:
    r = await api.req("POST", f"/v1/nodes/{name}/firmware", json=body)
    out = await r.json()
    assert r.status == expect, out
    return out


def r760(bios: str, idrac: str, *, redfish_bios: str | None = None) -> dict[str, Any]:
    comps: list[dict[str, Any]] = [
        {"slot": "bios", "kind": "bios", "version": bios, "channel": "inband"},
        {"slot": "bmc", "kind": "bmc", "version": idrac, "channel": "redfish"},
    ]
    if redfish_bios is not None:
        comps.append(
            {"slot": "bios", "kind": "bios", "version": redfish_bios, "channel": "redfish"}
        )
    return {"system_model": R760, "components": comps}


async def events(api: Api, name: str, kind: str) -> list[dict[str, Any]]:
    r = await api.req("GET", f"/v1/nodes/{name}/events", params={"kind": kind})
    items: list[dict[str, Any]] = (await r.json())["items"]
    return items


async def test_blocked_node_is_refused_by_provide_until_an_admin_overrides(api: Api) -> None:
    r = await api.enroll(rack_yaml(n=3))
    assert r.status == 201, await r.text()
    out = await import_catalog(api, EXAMPLE.read_text())
    assert out["name"] == "example-2026.12" and out["active"] is True
    # r01n01: BIOS 2.0.3 is known bad; r01n02: at the baseline
    await report(api, "r01n01", r760("2.0.3", "7.10.30.00"))
    await report(api, "r01n02", r760("2.2.7", "7.10.30.00"))
    for name in ("r01n01", "r01n02"):
        assert (await wait_op(api, (await act(api, name, "manage"))["id"]))["state"] == "succeeded"

    r = await api.req("GET", "/v1/nodes/r01n01/firmware")
    verdict = await r.json()
    assert verdict["verdict"] == "blocked", verdict
    bios = next(c for c in verdict["components"] if c["slot"] == "bios")
    assert bios["component"] == "dell-r760-bios" and bios["verdict"] == "known-bad"
    assert any("withdrawn by the vendor" in reason for reason in bios["reasons"])
    assert [s["to"] for s in verdict["plan"] if s["slot"] == "bios"] == ["2.2.7"]

    refused = await act(api, "r01n01", "provide", expect=409)
    assert refused["type"].endswith("firmware-blocked")
    assert "bios" in refused["detail"] and "dell-r760-bios" in refused["detail"]
    assert refused["blocking"][0]["component"] == "dell-r760-bios"
    assert (await node(api, "r01n01"))["state"] == "manageable"
    # only an admin may override, and with a reason
    r = await api.req(
        "POST",
        "/v1/nodes/r01n01/actions/provide",
        role="operator",
        json={"firmware_override": "vendor hotfix applied by hand, ticket 4711"},
    )
    assert r.status == 403 and "only an admin" in (await r.json())["detail"]
    # an operator cannot lift the gate by reporting either: not for the agent's channel...
    spoof = {"components": [{"slot": "bios", "kind": "bios", "version": "2.2.7",
                             "channel": "inband"}]}  # fmt: skip
    r = await api.req("POST", "/v1/nodes/r01n01/firmware", role="operator", json=spoof)
    assert r.status == 403, await r.text()
    # ...nor by renaming the slot as its own channel: the channels then disagree on what it is
    rename = {"components": [{"slot": "bios", "kind": "disk", "version": "1.0",
                              "channel": "operator"}]}  # fmt: skip
    r = await api.req("POST", "/v1/nodes/r01n01/firmware", role="operator", json=rename)
    assert r.status == 201, await r.text()
    gated = await act(api, "r01n01", "provide", expect=409)
    assert gated["blocking"][0]["verdict"] == "channels-disagree", gated
    assert "kind bios (inband), disk (operator)" in gated["blocking"][0]["reason"]
    ok = await act(api, "r01n01", "provide", firmware_override="vendor hotfix, ticket 4711")
    assert ok["state"] in ("pending", "running", "succeeded")
    assert (await wait_op(api, ok["id"]))["state"] == "succeeded"
    refusals = await events(api, "r01n01", "firmware.blocked")
    # the admin's plain provide, the operator's override attempt, the provide after the rename
    assert [e["data"]["override_refused"] for e in refusals] == [False, True, False]
    assert refusals[0]["data"]["blocking"][0]["component"] == "dell-r760-bios"
    async with api.services.db.read() as s:
        params = await s.scalar(select(Operation.params).where(Operation.id == ok["id"]))
    assert params == {"firmware_override": "vendor hotfix, ticket 4711"}
    overrides = await events(api, "r01n01", "firmware.override")
    assert len(overrides) == 1 and overrides[0]["data"]["reason"] == "vendor hotfix, ticket 4711"
    assert overrides[0]["data"]["blocking"][0]["verdict"] == "channels-disagree"
    assert overrides[0]["actor"] == "t-admin"
    # the compliant node needs no override
    done = await wait_op(api, (await act(api, "r01n02", "provide"))["id"])
    assert done["state"] == "succeeded"
    assert await events(api, "r01n02", "firmware.override") == []


async def test_channels_that_disagree_are_shown_not_resolved(api: Api) -> None:
    r = await api.enroll(rack_yaml(n=1))
    assert r.status == 201
    await import_catalog(api, EXAMPLE.read_text())
    # Redfish shows the staged 2.2.7 as running; the agent reads 2.1.5 in band
    await report(api, "r01n01", r760("2.1.5", "7.10.30.00", redfish_bios="2.2.7"))
    verdict = await (await api.req("GET", "/v1/nodes/r01n01/firmware")).json()
    bios = next(c for c in verdict["components"] if c["slot"] == "bios")
    assert bios["verdict"] == "channels-disagree" and bios["version"] is None
    assert {(x["channel"], x["version"]) for x in bios["readings"]} == {
        ("inband", "2.1.5"),
        ("redfish", "2.2.7"),
    }
    assert verdict["verdict"] == "warn"


async def test_fleet_report_counts(api: Api) -> None:
    r = await api.enroll(rack_yaml(n=3))
    assert r.status == 201
    report_before = await (await api.req("GET", "/v1/firmware/report")).json()
    assert report_before["catalog"] is None and report_before["by_verdict"] == {"compliant": 3}
    await import_catalog(api, EXAMPLE.read_text())
    await report(api, "r01n01", r760("2.0.3", "7.10.30.00"))
    await report(api, "r01n02", r760("2.2.7", "7.10.30.00"))
    await report(api, "r01n03", {"components": [
        {"slot": "gpu0", "kind": "gpu", "version": "96.00.74.00.01",
         "ids": {"pci_vendor": "0x10de", "pci_device": "0x9999"}},
    ]})  # fmt: skip
    fleet = await (await api.req("GET", "/v1/firmware/report", params={"rack": "r01"})).json()
    assert fleet["by_verdict"] == {"blocked": 1, "compliant": 1, "warn": 1}, fleet
    assert fleet["by_model"][R760] == {"blocked": 1, "compliant": 1}
    assert fleet["by_component"]["dell-r760-bios"] == {"known-bad": 1, "ok": 1}
    assert fleet["by_component"]["(gpu: unknown)"] == {"unknown-component": 1}


async def test_bad_reports_are_refused_with_the_field(api: Api) -> None:
    r = await api.enroll(rack_yaml(n=1))
    assert r.status == 201
    bad = {
        "components": [
            {"slot": "bios", "kind": "firmware", "version": "1", "channel": "telepathy"},
            {"slot": "nic0", "kind": "nic", "version": " 2", "ids": {"pci_vendor": "0x1ffff"}},
        ]
    }
    out = await report(api, "r01n01", bad, expect=422)
    fields = {e["field"] for e in out["errors"]}
    assert {"components[0].kind", "components[0].channel", "components[1].version",
            "components[1].ids.pci_vendor"} <= fields, fields  # fmt: skip
    future = {"components": [{"slot": "bios", "kind": "bios", "version": "1",
                              "reported_at": "2999-01-01T00:00:00+00:00"}]}  # fmt: skip
    out = await report(api, "r01n01", future, expect=422)
    assert out["errors"][0]["field"] == "components[0].reported_at"
    r = await api.req("GET", "/v1/nodes/r01n01/events", params={"kind": "firmware.reported"})
    assert (await r.json())["items"] == []


BAD_CATALOG = """\
catalog: broken
components:
  - id: a-bios
    kind: bios
    format: triplet
    match: {system_models: ["X"]}
    releases:
      - version: 1.0.0
        requires: [{component: b-bmc, op: ge, version: 1.0.0}]
      - version: 1.0.0
  - id: b-bmc
    kind: bmc
    format: triplet
    match: {system_models: ["X"]}
    releases:
      - version: 1.0.0
        requires: [{component: a-bios, op: ge, version: 1.0.0}]
  - id: c-nic
    kind: nic
    format: triplet
    match: {pci: {vendor: "0x8086", device: "xyz"}}
  - id: d-gpu
    kind: gpu
    format: sextuple
    match: {pci: {vendor: "0x10de", device: "0x2330"}}
"""


async def test_a_bad_catalog_is_refused_whole_with_every_line(api: Api) -> None:
    problems = check_catalog(BAD_CATALOG, source="site.yaml")
    out = await import_catalog(api, BAD_CATALOG, expect=422)
    assert len(out["errors"]) == len(problems) >= 4, problems
    text = json.dumps(out["errors"])
    for needle in ("listed twice", "sextuple", "cycle", "xyz"):
        assert needle in text, (needle, text)
    assert all(e.get("line") for e in out["errors"]), out["errors"]
    listing = await (await api.req("GET", "/v1/firmware/catalogs")).json()
    assert listing["items"] == []  # nothing imported
