"""Defects found in review, each pinned by a test: lease ownership proofs, inputs that used to
give a 500, concurrent enrollments, names shaped like ids, a shrinking rack, a lost key file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from provisiond import rackfile
from provisiond.api.app import open_services
from provisiond.engine import Owner
from provisiond.errors import ConfigError, ValidationError
from tests.conftest import Api, make_settings, rack_yaml


def test_lease_holder_is_proven_dead_only_on_this_host_and_namespace() -> None:
    me = Owner("h1", "boot1", "ns1", 100, "a")
    # another boot id may be another machine with the same host name: wait for expiry
    assert not me.proves_dead(Owner("h1", "boot0", "ns1", 100, "b"))
    assert not me.proves_dead(Owner("h2", "boot0", "ns1", 100, "b"))  # another host
    assert not me.proves_dead(Owner("h1", "boot1", "ns2", 999999, "b"))  # another container
    assert me.proves_dead(Owner("h1", "boot1", "ns1", 999999, "b"))  # pid gone
    assert not me.proves_dead(Owner("h1", "boot1", "ns1", 1, "b"))  # pid 1 is alive
    assert Owner.parse("legacy:1:x") is None
    text = str(me)
    assert Owner.parse(text) == me


@pytest.mark.parametrize(
    ("text", "fmt", "words"),
    [
        (
            "rack: r1\nnodes:\n  - name: a\n    unit: 1\n    bmc: {driver: fake, address: h}\n"
            '    nics:\n      - {kind: infiniband, guid: "0x0002c90300000001", '
            'mac: "52:54:00:00:00:01"}\n',
            "yaml",
            "has no mac",
        ),
        ("rack: r1\n? [a, b]\n: c\n", "yaml", "plain words"),
        ("[" * 100000 + "]" * 100000, "json", "nesting too deep"),
        ("name,unit\na," + "x" * 200000 + "\n", "csv", "field larger than field limit"),
        (
            json.dumps(
                {
                    "rack": "r1",
                    "location": "hall\u0000A",
                    "nodes": [],
                }
            ),
            "json",
            "control characters",
        ),
    ],
)
def test_inputs_that_used_to_crash_are_located_errors(text: str, fmt: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        rackfile.validate(rackfile.parse(text, fmt))
    assert any(words in p.message for p in info.value.problems), info.value.problems


async def test_request_inputs_that_used_to_give_500(api: Api) -> None:
    r = await api.req("GET", "/v1/events", params={"after": str(10**30)})
    assert r.status == 422
    r = await api.req("GET", "/v1/nodes", params={"rack": "a\x00b"})
    assert r.status == 400
    body = "[" * 100000 + "]" * 100000
    r = await api.req(
        "POST",
        "/v1/nodes/x/actions/manage",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status == 400


async def test_concurrent_enrollments_sharing_a_mac_give_one_clear_error(api: Api) -> None:
    a = rack_yaml(rack="ra", n=20, port0=7000, mac_block=1)
    b = rack_yaml(rack="rb", n=20, port0=7100, mac_block=1)  # same MACs and GUIDs as ra
    ra, rb = await asyncio.gather(api.enroll(a, rack="ra"), api.enroll(b, rack="rb"))
    assert sorted([ra.status, rb.status]) == [201, 422]
    loser = ra if ra.status == 422 else rb
    body = await loser.json()
    assert "already belongs to node" in body["errors"][0]["message"]


async def test_a_node_named_like_an_id_can_be_found_by_name(api: Api) -> None:
    name = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    assert (await api.enroll(rack_yaml(n=1).replace("r01n01", name))).status == 201
    r = await api.req("GET", f"/v1/nodes/{name}")
    assert r.status == 200 and (await r.json())["name"] == name


async def test_rack_cannot_shrink_below_nodes_the_file_does_not_mention(api: Api) -> None:
    assert (await api.enroll(rack_yaml(n=4))).status == 201
    two = "rack: r01\nheight: 2\n" + rack_yaml(n=2).split("\n", 1)[1]
    r = await api.enroll(two)
    body = await r.json()
    assert r.status == 422, body
    assert any(e["field"] == "height" and "r01n03" in e["message"] for e in body["errors"])


async def test_a_new_key_file_over_stored_secrets_refuses_to_start(
    tmp_path: Path, db_url: str
) -> None:
    settings = make_settings(tmp_path, db_url)
    services = await open_services(settings)
    try:
        from provisiond.workflows.enroll import enroll

        await enroll(services.db, services.box, rackfile.parse(rack_yaml(n=1), "yaml"))
    finally:
        await services.db.close()
    settings.key_file.unlink()  # lost, or a second daemon without the first one's key
    with pytest.raises(ConfigError, match="copy the key file"):
        await open_services(settings)
    assert not settings.key_file.exists()


def test_demo_refuses_to_wipe_a_directory_that_is_not_its_own(tmp_path: Path) -> None:
    from provisiond.lab.demo import run_demo

    (tmp_path / "precious").write_text("keep me")
    assert run_demo(oneshot=True, data_dir=tmp_path) == 2
    assert (tmp_path / "precious").read_text() == "keep me"


async def test_rack_height_and_location_are_kept_unless_the_file_gives_them(api: Api) -> None:
    tall = "rack: r01\nheight: 48\nlocation: hall B\n" + rack_yaml(n=2).split("\n", 1)[1]
    assert (await api.enroll(tall)).status == 201
    # a file without height/location (every CSV) keeps the rack's, and may use unit 45
    body = rack_yaml(n=2).replace("unit: 2\n", "unit: 45\n")
    r = await api.enroll(body)
    assert r.status == 201, await r.json()
    rack = await (await api.req("GET", "/v1/racks/r01")).json()
    assert (rack["height"], rack["location"]) == (48, "hall B")
    # a new rack without a height has 42 units, checked against the inventory
    r = await api.enroll(
        rack_yaml(rack="r02", n=1, port0=7100, mac_block=2).replace("unit: 1\n", "unit: 43\n"),
        rack="r02",
    )
    p = await r.json()
    assert r.status == 422
    assert p["errors"][0]["field"] == "nodes[0].unit" and "units 1-42" in p["errors"][0]["message"]


def test_valid_json_rack_file_is_parsed_once() -> None:
    """The JSON line map costs a second (YAML) parse: it is built only to locate an error."""
    text = json.dumps(rackfile.parse(rack_yaml(n=40), "yaml").data)
    parsed = rackfile.parse(text, "json")
    rackfile.validate(parsed)
    assert "lines" not in vars(parsed)
    bad = rackfile.parse(text.replace("52:54:00:01:00:02", "52:54:00:01:00:01"), "json")
    with pytest.raises(ValidationError) as info:
        rackfile.validate(bad)
    assert info.value.problems[0].line is not None
    assert "lines" in vars(bad)
