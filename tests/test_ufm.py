"""The UFM fabric driver against the lab UFM (provisiond/lab/ufm.py) over real HTTP on
127.0.0.1, the lab UFM against independent clients (curl, aiohttp), a scripted UFM for answers
the lab never gives, and the driver's pure planning.

The lab runs in the test's own event loop (``LabUfm.start``), so ``lab.state`` is what it holds
and ``lab.state.requests`` every request that reached it. Faults go through its control file, as
an operator would set them. No test asserts wall-clock times.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from drivers.fabric.base import FabricError, Partition, PlanError, diff_partitions
from drivers.fabric.ufm import (
    UfmDriver,
    comparable,
    effective,
    parse_holdings,
    plan_requests,
)
from provisiond.errors import ConfigError
from provisiond.lab.ufm import MANAGEMENT_PKEY, LabUfm, parse_fault_flags
from tests.support.daemon import free_port

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "lab-token-0123456789"
G1, G2, G3, G4 = (f"0x0002c9030000100{i}" for i in range(1, 5))
CURL_TIMEOUT = 20.0
ADMIN = {"Authorization": aiohttp.encode_basic_auth("admin", "123456")}


def part(name: str, pkey: int, members: Mapping[str, str], **options: Any) -> Partition:
    return Partition(name=name, pkey=pkey, members=dict(members), **options)


A = part("tenant_a", 0x0101, {G1: "full", G2: "full"}, ipoib=True, mtu=5)
B = part("tenant_b", 0x0102, {G3: "full", G4: "limited"})


class Lab:
    """The lab UFM of one test and its control file."""

    def __init__(self, ufm: LabUfm, control: Path) -> None:
        self.ufm = ufm
        self.control = control
        self._mtime_ns = 0

    @property
    def state(self) -> Any:
        return self.ufm.state

    def set_faults(self, **faults: Any) -> None:
        """Replace the control file; the lab reads it at its next request."""
        tmp = self.control.with_name(self.control.name + ".tmp")
        tmp.write_text(json.dumps(faults))
        self._mtime_ns = max(time.time_ns(), self._mtime_ns + 10_000_000)
        os.utime(tmp, ns=(self._mtime_ns, self._mtime_ns))
        os.replace(tmp, self.control)

    def driver(self, *, limit: int = 128, **settings: Any) -> UfmDriver:
        """A driver for this lab (basic auth unless ``settings`` say otherwise; a None value
        drops that setting)."""
        base = {"url": self.ufm.url, "username": "admin", "password": "123456"}
        merged = {k: v for k, v in {**base, **settings}.items() if v is not None}
        return UfmDriver(merged, port_key_limit=limit)

    def snapshot(self) -> dict[int, Any]:
        return {
            pkey: (held.name, held.ip_over_ib, held.mtu_limit, self.state.memberships(pkey))
            for pkey, held in self.state.pkeys.items()
        }


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    control = tmp_path / "ufm-faults.json"
    ufm = LabUfm(token=TOKEN, control=control)
    await ufm.start(0)
    try:
        yield Lab(ufm, control)
    finally:
        await ufm.stop()


@pytest.fixture
async def driver(lab: Lab) -> AsyncIterator[UfmDriver]:
    drv = lab.driver()
    try:
        yield drv
    finally:
        await drv.close()


# --------------------------------------------------------------------------- apply


async def test_apply_creates_keys_and_members(lab: Lab, driver: UfmDriver) -> None:
    result = await driver.apply([A, B])
    assert lab.state.memberships(0x0101) == {G1: "full", G2: "full"}
    assert lab.state.memberships(0x0102) == {G3: "full", G4: "limited"}
    held = lab.state.pkeys[0x0101]
    assert (held.name, held.ip_over_ib, held.mtu_limit, held.rate_limit) == (
        "tenant_a",
        True,
        4,  # IBTA mtu 5 = 4096 bytes = UFM mtu_limit 4
        10.0,  # no rate asked: OpenSM's default, rate 3 = 10 Gb/s
    )
    assert all(m.index0 for m in held.members.values())
    assert result.requests[:2] == (
        "POST /ufmRest/resources/pkeys/add 0x0101",
        "POST /ufmRest/resources/pkeys/add 0x0102",
    )
    assert sorted(result.requests[2:]) == [
        "POST /ufmRest/resources/pkeys 0x0101",
        "POST /ufmRest/resources/pkeys 0x0102",
        "POST /ufmRest/resources/pkeys 0x0102",
    ]
    assert [line[:8] for line in result.diff] == ["+ 0x0101", "+ 0x0102"]
    # what the reconciler checks: the read-back says the plan, in the plan's own terms
    assert diff_partitions([A, B], result.observed.partitions) == ()
    assert result.observed.partitions == (A, B)
    assert result.observed.problems == ()
    assert (await driver.read()).partitions == (A, B)
    assert MANAGEMENT_PKEY in lab.state.pkeys
    assert not any("7fff" in r for r in lab.state.requests)


async def test_second_apply_sends_nothing(lab: Lab, driver: UfmDriver) -> None:
    await driver.apply([A, B])
    before = len(lab.state.mutations())
    again = await driver.apply([A, B])
    assert again.requests == ()
    assert again.diff == ()
    assert len(lab.state.mutations()) == before
    assert again.observed.partitions == (A, B)
    plan = await driver.validate([A, B])
    assert plan.requests == () and plan.diff == ()


async def test_move_guid_between_keys_removes_before_adding(lab: Lab, driver: UfmDriver) -> None:
    await driver.apply([A, B])
    moved_a = part("tenant_a", 0x0101, {G1: "full"}, ipoib=True, mtu=5)
    moved_b = part("tenant_b", 0x0102, {G2: "full", G3: "full", G4: "limited"})
    result = await driver.apply([moved_a, moved_b])
    assert result.requests == (
        "DELETE /ufmRest/resources/pkeys/0x101/guids/0002c90300001002 0x0101",
        "POST /ufmRest/resources/pkeys 0x0102",
    )
    assert lab.state.memberships(0x0101) == {G1: "full"}
    assert lab.state.memberships(0x0102) == {G2: "full", G3: "full", G4: "limited"}
    assert result.diff == (f"~ 0x0101 tenant_a: -{G2}", f"~ 0x0102 tenant_b: +{G2}=full")


async def test_membership_change_is_one_post(lab: Lab, driver: UfmDriver) -> None:
    await driver.apply([A])
    limited = part("tenant_a", 0x0101, {G1: "full", G2: "limited"}, ipoib=True, mtu=5)
    result = await driver.apply([limited])
    assert result.requests == ("POST /ufmRest/resources/pkeys 0x0101",)
    assert lab.state.memberships(0x0101) == {G1: "full", G2: "limited"}


async def test_removing_a_key_deletes_it_and_spares_the_default(
    lab: Lab, driver: UfmDriver
) -> None:
    await driver.apply([A, B])
    result = await driver.apply([A])
    assert result.requests == ("DELETE /ufmRest/resources/pkeys/0x102 0x0102",)
    assert set(lab.state.pkeys) == {0x0101, MANAGEMENT_PKEY}
    result = await driver.apply([])
    assert result.requests == ("DELETE /ufmRest/resources/pkeys/0x101 0x0101",)
    assert set(lab.state.pkeys) == {MANAGEMENT_PKEY}
    assert (await driver.read()).partitions == ()


async def test_keys_nobody_asked_for_are_removed(lab: Lab, driver: UfmDriver) -> None:
    """The desired set is the whole truth: a key made by hand in UFM goes."""
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        r = await http.post(f"{lab.ufm.url}/ufmRest/resources/pkeys/add", json={"pkey": "0x0200"})
        assert r.status == 200
    result = await driver.apply([A])
    assert "DELETE /ufmRest/resources/pkeys/0x200 0x0200" in result.requests
    assert set(lab.state.pkeys) == {0x0101, MANAGEMENT_PKEY}


async def test_option_changes(lab: Lab, driver: UfmDriver) -> None:
    await driver.apply([A, B])
    # ip_over_ib is the key's, index0 each member's: one PUT sets both with the member list
    a2 = part("tenant_a", 0x0101, A.members, ipoib=False, mtu=5, index0=False)
    # MTU and SL are QoS: one PUT to qos_conf
    b2 = part("tenant_b", 0x0102, B.members, mtu=4, sl=3)
    result = await driver.apply([a2, b2])
    assert result.requests == (
        "PUT /ufmRest/resources/pkeys 0x0101",
        "PUT /ufmRest/resources/pkeys/qos_conf 0x0102",
    )
    held_a, held_b = lab.state.pkeys[0x0101], lab.state.pkeys[0x0102]
    assert held_a.ip_over_ib is False
    assert not any(m.index0 for m in held_a.members.values())
    assert (held_b.mtu_limit, held_b.service_level) == (2, 3)
    assert lab.state.memberships(0x0102) == {G3: "full", G4: "limited"}
    assert (await driver.apply([a2, b2])).requests == ()


async def test_rename_and_empty_keys(lab: Lab, driver: UfmDriver) -> None:
    empty = part("spare", 0x0103, {}, index0=False)
    await driver.apply([A, empty])
    # UFM reports no index0 for a key without members: it compares as desired
    assert (await driver.apply([A, empty])).requests == ()
    renamed = part("tenant_a2", 0x0101, A.members, ipoib=True, mtu=5)
    empty_ipoib = part("spare", 0x0103, {}, ipoib=True, index0=False)
    result = await driver.apply([renamed, empty_ipoib])
    assert result.requests == (
        "DELETE /ufmRest/resources/pkeys/0x103 0x0103",
        "POST /ufmRest/resources/pkeys/add 0x0103",
        "PUT /ufmRest/resources/pkeys 0x0101",
    )
    assert lab.state.pkeys[0x0101].name == "tenant_a2"
    assert lab.state.pkeys[0x0103].ip_over_ib is True


async def test_explicit_defaults_read_back_in_the_plans_terms(lab: Lab, driver: UfmDriver) -> None:
    """UFM cannot tell an explicit default from none: apply answers in the plan's terms,
    read in the driver's (None for a default)."""
    explicit = part("tenant_a", 0x0101, A.members, mtu=4, rate=3, sl=0)
    implicit = part("tenant_a", 0x0101, A.members)
    result = await driver.apply([explicit])
    assert result.observed.partitions == (explicit,)
    assert (await driver.read()).partitions == (implicit,)
    assert (await driver.apply([implicit])).requests == ()
    held = lab.state.pkeys[0x0101]
    assert (held.mtu_limit, held.rate_limit, held.service_level) == (2, 10, 0)


async def test_without_partition_names(lab: Lab) -> None:
    """An older UFM names API keys itself: with partition_names = false the driver neither
    sends nor compares names."""
    drv = lab.driver(partition_names=False)
    try:
        await drv.apply([A])
        assert lab.state.pkeys[0x0101].name == "api_pkey_0x101"
        assert (await drv.apply([A])).requests == ()
        assert (await drv.read()).partitions[0].name == "api_pkey_0x101"
    finally:
        await drv.close()


async def test_validate_touches_nothing(lab: Lab, driver: UfmDriver) -> None:
    plan = await driver.validate([A, B])
    assert plan.requests[0] == "POST /ufmRest/resources/pkeys/add 0x0101"
    assert plan.partitions == (A, B)
    assert lab.state.mutations() == []
    assert set(lab.state.pkeys) == {MANAGEMENT_PKEY}


# --------------------------------------------------------------------------- auth


async def test_token_auth(lab: Lab) -> None:
    drv = lab.driver(auth="token", token=TOKEN, username=None, password=None)
    try:
        result = await drv.apply([A])
        assert result.requests[0] == "POST /ufmRestV3/resources/pkeys/add 0x0101"
        assert lab.state.memberships(0x0101) == dict(A.members)
        assert all(r.split()[1].startswith("/ufmRestV3/") for r in lab.state.requests)
    finally:
        await drv.close()


@pytest.mark.parametrize(
    "settings",
    [
        {"password": "wrong"},
        {"auth": "token", "token": "not-the-token"},
    ],
    ids=["password", "token"],
)
async def test_refused_credentials(lab: Lab, settings: dict[str, Any]) -> None:
    drv = lab.driver(**settings)
    try:
        with pytest.raises(FabricError) as err:
            await drv.apply([A])
    finally:
        await drv.close()
    assert not err.value.transient
    assert "refused the credentials" in str(err.value)
    assert "HTTP 401" in str(err.value) and lab.ufm.url in str(err.value)
    assert lab.state.mutations() == []


async def test_auth_fault_refuses_good_credentials(lab: Lab, driver: UfmDriver) -> None:
    lab.set_faults(auth_fail=True)
    with pytest.raises(FabricError, match="refused the credentials") as err:
        await driver.read()
    assert not err.value.transient
    lab.set_faults()
    assert (await driver.read()).partitions == ()


# --------------------------------------------------------------------------- faults


async def test_500_fault_is_transient_and_changes_nothing(lab: Lab, driver: UfmDriver) -> None:
    await driver.apply([A])
    before = lab.snapshot()
    lab.set_faults(error_500=True)
    with pytest.raises(FabricError) as err:
        await driver.apply([A, B])
    assert err.value.transient
    assert "HTTP 500" in str(err.value) and lab.ufm.url in str(err.value)
    assert lab.snapshot() == before


async def test_500_on_n_requests_then_converges(lab: Lab, driver: UfmDriver) -> None:
    await driver.apply([A])
    lab.set_faults(error_500=1)
    with pytest.raises(FabricError) as err:
        await driver.apply([B])
    assert err.value.transient
    result = await driver.apply([B])
    assert set(lab.state.pkeys) == {0x0102, MANAGEMENT_PKEY}
    assert result.observed.partitions == (B,)


async def test_failure_midway_is_rolled_back(lab: Lab, driver: UfmDriver) -> None:
    await driver.apply([A])
    before = lab.snapshot()
    # requests of the next apply: GET, GET, DELETE 0x101, POST add 0x102 (the 4th: refused)
    lab.set_faults(error_500=[4])
    with pytest.raises(FabricError) as err:
        await driver.apply([B])
    assert err.value.transient
    assert "2 of 4 request(s) tried" in str(err.value) and "rolled back" in str(err.value)
    assert lab.snapshot() == before
    assert (await driver.apply([A])).requests == ()


async def test_failed_roll_back_leaves_a_state_the_next_apply_completes(
    lab: Lab, driver: UfmDriver
) -> None:
    await driver.apply([A])
    lab.set_faults(error_500=[4, 5])  # the POST, then the roll-back's first read
    with pytest.raises(FabricError, match="the roll-back failed too") as err:
        await driver.apply([B])
    assert err.value.transient
    assert set(lab.state.pkeys) == {MANAGEMENT_PKEY}  # 0x0101 went, 0x0102 never came
    result = await driver.apply([B])
    assert result.requests[0] == "POST /ufmRest/resources/pkeys/add 0x0102"
    assert result.observed.partitions == (B,)


async def test_fault_flags_in_the_constructor() -> None:
    ufm = LabUfm(faults=parse_fault_flags(["500:2"]))
    await ufm.start(0)
    drv = UfmDriver({"url": ufm.url, "username": "admin", "password": "123456"})
    try:
        with pytest.raises(FabricError):  # the 1st GET
            await drv.read()
        with pytest.raises(FabricError):  # the 2nd
            await drv.read()
        assert (await drv.read()).partitions == ()
    finally:
        await drv.close()
        await ufm.stop()


async def test_slow_ufm_times_out_transiently(lab: Lab) -> None:
    lab.set_faults(slow=30)
    drv = lab.driver(timeout=0.2)
    try:
        with pytest.raises(FabricError, match="timed out") as err:
            await drv.apply([A])
    finally:
        await drv.close()
    assert err.value.transient
    assert lab.state.mutations() == []


async def test_unreachable_ufm_is_transient() -> None:
    port = free_port()  # nothing listens there
    drv = UfmDriver(
        {"url": f"http://127.0.0.1:{port}", "username": "admin", "password": "x", "timeout": 5}
    )
    try:
        with pytest.raises(FabricError, match="unreachable") as err:
            await drv.read()
    finally:
        await drv.close()
    assert err.value.transient and f"127.0.0.1:{port}" in str(err.value)


# --------------------------------------------------------------------------- plans refused


@pytest.mark.parametrize(
    ("partitions", "limit", "where"),
    [
        ([part("t", 0x0101, {G1: "Full"})], 128, "members[0x0002c90300001001]"),
        (
            [part(f"t{i}", 0x0101 + i, {G1: "full"}) for i in range(3)],
            3,
            "members[0x0002c90300001001]",
        ),
        ([part("t", 0x0101, {G1: "full"}, mtu=3)], 128, "partitions[0x0101].mtu"),
        ([part("t", 0x0101, {G1: "full"}, rate=21)], 128, "partitions[0x0101].rate"),
        ([part("t", 0x7FFF, {G1: "full"})], 128, "partitions[0x7fff]"),
    ],
    ids=["membership-Full", "too-many-keys-per-port", "mtu-1024", "rate-400g", "default-key"],
)
async def test_plan_refused_before_any_request(
    lab: Lab, partitions: list[Partition], limit: int, where: str
) -> None:
    drv = lab.driver(limit=limit)
    try:
        with pytest.raises(PlanError) as err:
            await drv.apply(partitions)
        with pytest.raises(PlanError):
            await drv.validate(partitions)
    finally:
        await drv.close()
    assert any(where in p.where for p in err.value.problems), err.value.problems
    assert lab.state.requests == []


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({}, "settings.url"),
        ({"url": "ftp://ufm"}, "settings.url"),
        ({"url": "https://ufm/ufmRest"}, "settings.url"),
        ({"url": "https://ufm", "password": "x"}, "settings.username"),
        ({"url": "https://ufm", "username": "admin"}, "settings.password"),
        ({"url": "https://ufm", "auth": "token"}, "settings.token"),
        ({"url": "https://ufm", "auth": "kerberos"}, "settings.auth"),
        ({"url": "https://ufm", "token": "t", "timeout": 0}, "settings.timeout"),
        ({"url": "https://ufm", "token": "t", "verify_tls": "no"}, "settings.verify_tls"),
        ({"url": "https://ufm", "token": "t", "passwd": "x"}, "settings.passwd"),
    ],
)
def test_settings_are_checked(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        UfmDriver(settings)
    assert err.value.extra["key"] == key
    assert key in str(err.value)


def test_the_registry_builds_it() -> None:
    from drivers.fabric.registry import fabric_driver

    drv = fabric_driver("ufm", {"url": "https://ufm.example", "token": "t0k"}, port_key_limit=8)
    assert isinstance(drv, UfmDriver) and drv.port_key_limit == 8


def test_settings_defaults() -> None:
    drv = UfmDriver({"url": "https://ufm.example/", "token": "t0k"})
    assert (drv.url, drv.prefix, drv.auth, drv.timeout, drv.verify_tls) == (
        "https://ufm.example",
        "/ufmRestV3",
        "token",
        10.0,
        True,
    )


# --------------------------------------------------------------------------- UFM answers


async def _curl(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), CURL_TIMEOUT)
    assert proc.returncode == 0, err.decode()
    body, _, code = out.decode().rpartition("\n")
    return int(code), body


async def test_curl_reads_the_lab_with_basic_auth(lab: Lab, driver: UfmDriver) -> None:
    await driver.apply([A])
    url = f"{lab.ufm.url}/ufmRest/resources/pkeys"
    code, body = await _curl("-u", "admin:123456", f"{url}?guids_data=true")
    assert code == 200
    data = json.loads(body)
    assert set(data) == {"0x101", "0x7fff"}
    assert data["0x101"] == {
        "partition": "tenant_a",
        "ip_over_ib": True,
        "guids": [
            {"guid": "0002c90300001001", "membership": "full", "index0": True},
            {"guid": "0002c90300001002", "membership": "full", "index0": True},
        ],
    }
    assert data["0x7fff"]["partition"] == "management"
    code, body = await _curl("-u", "admin:123456", url)
    assert (code, json.loads(body)) == (200, ["0x101", "0x7fff"])
    code, body = await _curl("-u", "admin:123456", f"{url}/0x101?qos_conf=true")
    assert json.loads(body)["qos_conf"] == {"mtu_limit": 4, "service_level": 0, "rate_limit": 10}
    code, body = await _curl("-u", "admin:123456", f"{url}/0x555")
    assert (code, json.loads(body)) == (200, {})  # UFM's "not found"
    code, _ = await _curl("-u", "admin:nope", url)
    assert code == 401
    code, body = await _curl(
        "-H", f"Authorization: Basic {TOKEN}", f"{lab.ufm.url}/ufmRestV3/resources/pkeys"
    )
    assert (code, json.loads(body)) == (200, ["0x101", "0x7fff"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/pkeys/add", {"pkey": "0x8000"}, 400, "Invalid pkey"),
        ("POST", "/pkeys/add", {"pkey": "12"}, 400, "Invalid pkey"),
        ("POST", "/pkeys/add", {"pkey": "0x7fff"}, 400, "Invalid pkey"),
        ("POST", "/pkeys/add", {"pkey": "0x12", "mtu_limit": 5}, 400, "mtu_limit"),
        ("POST", "/pkeys/add", {"pkey": "0x12", "rate_limit": 7}, 400, "rate_limit"),
        ("POST", "/pkeys", {"pkey": "0x12", "guids": ["0x12"]}, 400, "Invalid GUID"),
        ("POST", "/pkeys", {"pkey": "0x12", "guids": []}, 400, "'guids' is mandatory"),
        (
            "POST",
            "/pkeys",
            {"pkey": "0x12", "guids": ["0002c90300001001"], "membership": "Full"},
            400,
            "Invalid membership",
        ),
        (
            "POST",
            "/pkeys",
            {"pkey": "0x12", "guids": ["0002c90300001001"], "memberships": ["full", "full"]},
            400,
            "memberships",
        ),
        (
            "POST",
            "/pkeys",
            {"pkey": "0x12", "guids": ["0002c90300001001"], "index0": 1},
            400,
            "index0",
        ),
        ("DELETE", "/pkeys/0x7fff", None, 400, "cannot be deleted"),
        ("DELETE", "/pkeys/0x12", None, 404, "not found"),
        ("PUT", "/pkeys/qos_conf", {"pkey": "0x12", "mtu_limit": 4}, 404, "not found"),
        ("GET", "/pkeys/banana", None, 400, "Invalid pkey"),
    ],
)
async def test_lab_validates_like_ufm(
    lab: Lab, method: str, path: str, body: Any, status: int, message: str
) -> None:
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        url = f"{lab.ufm.url}/ufmRest/resources{path}"
        async with http.request(method, url, json=body) as resp:
            assert resp.status == status
            answer = await resp.json()
    assert message in answer["error"]
    assert set(lab.state.pkeys) == {MANAGEMENT_PKEY}


async def test_lab_adds_then_sets_members(lab: Lab) -> None:
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        url = f"{lab.ufm.url}/ufmRest/resources/pkeys/"
        g = ["0x0002c90300001001", "0002C90300001002"]
        r = await http.post(
            url, json={"pkey": "0x12", "guids": g, "memberships": ["full", "limited"]}
        )
        assert r.status == 200
        assert lab.state.memberships(0x12) == {G1: "full", G2: "limited"}
        assert lab.state.pkeys[0x12].name == "api_pkey_0x12"
        r = await http.put(url, json={"pkey": "0x12", "guids": [g[1]], "membership": "full"})
        assert r.status == 200
        assert lab.state.memberships(0x12) == {G2: "full"}
        r = await http.delete(f"{url}0x12/guids/0002c90300001009")  # not a member: a no-op
        assert r.status == 200 and lab.state.memberships(0x12) == {G2: "full"}


async def _scripted(status: int, body: str, content_type: str) -> TestServer:
    """A UFM that answers every GET with valid empty data and everything else with ``status``."""

    async def get(request: web.Request) -> web.Response:
        return web.json_response({})

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    app = web.Application()
    app.router.add_get("/ufmRest/resources/pkeys", get)
    app.router.add_route("*", "/ufmRest/resources/pkeys/add", refuse)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_a_4xx_names_the_request_and_ufms_message() -> None:
    server = await _scripted(400, '{"error": "PKey 0x101 is reserved"}', "application/json")
    drv = UfmDriver({"url": str(server.make_url("")), "username": "admin", "password": "x"})
    try:
        with pytest.raises(FabricError) as err:
            await drv.apply([A])
    finally:
        await drv.close()
        await server.close()
    text = str(err.value)
    assert not err.value.transient
    assert "POST /ufmRest/resources/pkeys/add (0x0101)" in text
    assert "HTTP 400: PKey 0x101 is reserved" in text


async def test_a_login_page_instead_of_json_is_an_error() -> None:
    async def login(request: web.Request) -> web.Response:
        return web.Response(text="<html>UFM login</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/ufmRest/resources/pkeys", login)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    drv = UfmDriver({"url": str(server.make_url("")), "username": "admin", "password": "x"})
    try:
        with pytest.raises(FabricError, match="no JSON"):
            await drv.read()
    finally:
        await drv.close()
        await server.close()


# --------------------------------------------------------------------------- pure parts


def test_parse_holdings_reads_recorded_shapes() -> None:
    """Shapes as UFM 6.19 answers them (the default key's own membership and index0 included)."""
    guids = {
        "0x2fb": {
            "guids": [{"guid": "946dae03005975c8", "index0": True, "membership": "full"}],
            "ip_over_ib": True,
            "partition": "api_pkey_0x2fb",
        },
        "0x7fff": {
            "guids": [],
            "index0": False,
            "ip_over_ib": True,
            "membership": "limited",
            "partition": "management",
        },
        "0x300": {"guids": [], "ip_over_ib": False, "partition": "empty"},
    }
    qos = {
        "0x2fb": {
            "ip_over_ib": True,
            "partition": "api_pkey_0x2fb",
            "qos_conf": {"mtu_limit": 4, "rate_limit": 200, "service_level": 0},
        },
        "0x7fff": {
            "ip_over_ib": True,
            "partition": "management",
            "qos_conf": {"mtu_limit": 2, "rate_limit": 2.5, "service_level": 0},
        },
    }
    held = parse_holdings(guids, qos)
    assert [p.pkey for p in held.partitions] == [0x2FB, 0x300]
    first = held.partitions[0]
    assert (first.members, first.mtu, first.rate, first.sl, first.index0) == (
        {"0x946dae03005975c8": "full"},
        5,
        17,
        0,
        True,
    )
    assert held.index0_unknown == frozenset({0x300})
    assert held.problems == ("0x0300: UFM reported no qos_conf",)


def test_plan_keeps_isolation_order() -> None:
    """Removals, then new keys, then changes, then grants: a port moving between tenants is
    never in both keys."""
    old = [effective(A), effective(B)]
    new = [
        effective(part("tenant_b", 0x0102, {G1: "full", G3: "full", G4: "limited"})),
        effective(part("tenant_c", 0x0103, {G2: "full"})),
    ]
    current = comparable(parse_holdings({}, {}), new)  # empty UFM: nothing to compare
    assert current == ()
    reqs = plan_requests(old, new)
    assert [(r.method, r.path) for r in reqs] == [
        ("DELETE", "/resources/pkeys/0x101"),
        ("POST", "/resources/pkeys/add"),
        ("POST", "/resources/pkeys"),
        ("POST", "/resources/pkeys"),
    ]
    assert reqs[2].body is not None and reqs[2].body["guids"] == ["0002c90300001001"]


# --------------------------------------------------------------------------- the CLI


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "lab-ufm.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "provisiond.cli", "lab", "ufm", "--port", str(port),
             "--user", "ops", "--password", "s3cret", "--fault", "500:1"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        for _ in range(400):  # x 0.05 s
            if " ready" in log.read_text(errors="replace"):
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        else:
            pytest.fail(f"lab ufm not ready: {log.read_text()}")
        url = f"http://127.0.0.1:{port}/ufmRest/resources/pkeys"
        codes = []
        for _ in range(2):
            done = subprocess.run(
                ["curl", "-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                 "-u", "ops:s3cret", url],
                capture_output=True, text=True, timeout=CURL_TIMEOUT, check=True,
            )  # fmt: skip
            codes.append(done.stdout)
        assert codes == ["500", "200"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
