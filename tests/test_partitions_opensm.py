"""The OpenSM driver and the partition reconciler against a REAL OpenSM on a simulated fabric
(ibsim, tests/support/ibsim.py). Isolation is read from the ports themselves: each port's P_Key
table (smpquery) and the SA's path records (saquery: no path = the ports share no partition).

Needs the Debian packages ibsim-utils, opensm, infiniband-diags and libumad2sim0 (the Makefile
installs them): skipped locally without them, failed under CI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from drivers.fabric import partitions_conf as pc
from drivers.fabric.base import Partition, PlanError
from drivers.fabric.opensm import OpenSmDriver
from provisiond.api.app import create_app
from provisiond.api.keys import SERVICES
from provisiond.auth import create_token
from provisiond.config import load_settings
from tests.support import ibsim
from tests.support.ibsim import Subnet, ibsim_subnet
from tests.support.peers import missing

FULL = 0x8000
ROOT = Path(__file__).resolve().parents[1]
H = ibsim.host_guids(6)  # {"h1": "0x0002c90300010101", ...}
A, B = 0x0101, 0x0102


@pytest.fixture(scope="module")
def subnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Subnet]:
    """One fabric per module (ibsim leaks a client slot per killed client: a fresh one here)."""
    why = ibsim.available()
    if why is not None:
        missing(why)
    with ibsim_subnet(tmp_path_factory.mktemp("ib"), hosts=6) as fabric:
        yield fabric


@pytest.fixture
def sm(subnet: Subnet) -> Iterator[Subnet]:
    """The module's subnet, back to the default partition only after each test."""
    yield subnet
    subnet.write_partitions(ibsim.DEFAULT_PARTITIONS)
    subnet.resweep()


def driver(subnet: Subnet, **over: Any) -> OpenSmDriver:
    return OpenSmDriver(
        {
            "partitions_file": str(subnet.partitions_file),
            "pid_file": str(subnet.pid_file),
            "log_file": str(subnet.log_file),
            "reload_timeout": 10,
            **over,
        }
    )


def tenant(name: str, pkey: int, *hosts: str) -> Partition:
    return Partition(name, pkey, {H[h]: "full" for h in hosts}, ipoib=True)


def keys(subnet: Subnet, host: str) -> set[int]:
    return subnet.pkeys(H[host])


async def test_each_tenants_ports_are_full_members_of_its_key_only(sm: Subnet) -> None:
    drv = driver(sm)
    res = await drv.apply([tenant("tenant_a", A, "h1", "h2"), tenant("tenant_b", B, "h3", "h4")])
    assert res.observed.problems == ()
    for host in ("h1", "h2"):
        assert FULL | A in keys(sm, host) and not keys(sm, host) & {B, FULL | B}
    for host in ("h3", "h4"):
        assert FULL | B in keys(sm, host) and not keys(sm, host) & {A, FULL | A}
    assert keys(sm, "h5") == {0x7FFF}  # limited member of the default partition only
    assert sm.path_exists(H["h1"], H["h2"]) and sm.path_exists(H["h3"], H["h4"])
    assert not sm.path_exists(H["h1"], H["h3"]) and not sm.path_exists(H["h2"], H["h4"])
    assert not sm.path_exists(H["h5"], H["h1"])


async def test_moving_a_node_moves_its_key_and_removing_a_tenant_removes_its_key(
    sm: Subnet,
) -> None:
    drv = driver(sm)
    await drv.apply([tenant("tenant_a", A, "h1", "h2"), tenant("tenant_b", B, "h3", "h4")])
    # h2 moves from tenant A to tenant B
    res = await drv.apply([tenant("tenant_a", A, "h1"), tenant("tenant_b", B, "h2", "h3", "h4")])
    assert res.diff == (f"~ 0x0101 tenant_a: -{H['h2']}", f"~ 0x0102 tenant_b: +{H['h2']}=full")
    assert FULL | B in keys(sm, "h2") and not keys(sm, "h2") & {A, FULL | A}
    assert sm.path_exists(H["h2"], H["h3"]) and not sm.path_exists(H["h1"], H["h2"])
    # tenant B goes away
    await drv.apply([tenant("tenant_a", A, "h1")])
    for host in ("h2", "h3", "h4"):
        assert not keys(sm, host) & {B, FULL | B}, host
    assert not sm.path_exists(H["h3"], H["h4"])
    assert FULL | A in keys(sm, "h1")


async def test_a_plan_opensm_would_misread_is_refused_before_it_is_written(sm: Subnet) -> None:
    drv = driver(sm)
    await drv.apply([tenant("tenant_a", A, "h1", "h2")])
    before = sm.partitions_file.read_bytes()
    sweeps = sm.sweeps()
    bad = Partition("tenant_a", A, {H["h1"]: "Full", H["h2"]: "Full"}, ipoib=True)
    with pytest.raises(PlanError, match="refused"):
        await drv.apply([bad])
    assert sm.partitions_file.read_bytes() == before and sm.sweeps() == sweeps
    # what the refusal prevented: OpenSM itself reads 'Full' as limited, and two limited
    # members cannot talk (written here by hand, bypassing the driver)
    sm.write_partitions(before.decode().replace("=full", "=Full"))
    sm.resweep()
    assert A in keys(sm, "h1") and FULL | A not in keys(sm, "h1")
    assert not sm.path_exists(H["h1"], H["h2"])
    read = await drv.read()
    assert any("exactly 'full' or 'limited'" in p for p in read.problems)


async def test_opensm_fallback_is_seen_in_its_log_and_repaired(sm: Subnet) -> None:
    drv = driver(sm)
    good = [tenant("tenant_a", A, "h1", "h2"), tenant("tenant_b", B, "h3", "h4")]
    await drv.apply(good)
    # a hand edit with a syntax error: OpenSM falls back, every port full member of 0x7fff
    sm.write_partitions(sm.partitions_file.read_text().replace(" ;\n\ntenant_b", "\n\ntenant_b"))
    sm.resweep()
    assert keys(sm, "h1") == {0xFFFF} and sm.path_exists(H["h1"], H["h3"])  # isolation gone
    read = await drv.read()
    assert any("fell back to its default configuration" in p for p in read.problems), read
    res = await drv.apply(good)
    assert res.observed.problems == ()
    assert FULL | A in keys(sm, "h1") and not sm.path_exists(H["h1"], H["h3"])


CRASH_CHILD = """
import asyncio, sys
from drivers.fabric.base import Partition
from drivers.fabric.opensm import OpenSmDriver
guids = sys.argv[4].split(",")
drv = OpenSmDriver({"partitions_file": sys.argv[1], "pid_file": sys.argv[2],
                    "log_file": sys.argv[3]})
# two plans that give h1 different keys; plus filler partitions so a write takes a while
filler = [Partition(f"f{i}", 0x200 + i, {f"0x{0x77000000 + i * 64 + j:016x}": "full"
                                          for j in range(1, 30)}) for i in range(1, 100)]
plans = [[Partition("tenant_a", 0x0101, {guids[0]: "full", guids[1]: "full"})] + filler,
         [Partition("tenant_b", 0x0102, {guids[0]: "full", guids[2]: "full"})] + filler]
async def main():
    print("ready", flush=True)
    for k in range(100000):
        await drv.apply(plans[k % 2])
asyncio.run(main())
"""


def _kill_mid_apply(script: Path, args: list[str], delay: float) -> None:
    """Run the applying child, SIGKILL it ``delay`` seconds after it is ready."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


async def test_kill_9_during_apply_never_leaves_opensm_without_a_valid_file(
    sm: Subnet, tmp_path: Path
) -> None:
    """Our process applying against the real OpenSM, SIGKILLed at varied moments. Each time:
    the file is complete and valid, OpenSM re-reads it without falling back (its own sweep, as
    after an OpenSM restart), and the next apply of what the file holds brings OpenSM to it,
    signalling again when the killed process may have renamed without signalling."""
    script = tmp_path / "child.py"
    script.write_text(CRASH_CHILD)
    args = [str(sm.partitions_file), str(sm.pid_file), str(sm.log_file)]
    args.append(",".join((H["h1"], H["h2"], H["h3"])))
    drv = driver(sm)
    seen: set[int] = set()
    for round_ in range(8):
        await asyncio.to_thread(_kill_mid_apply, script, args, 0.1 + 0.043 * round_)
        parsed = pc.parse(sm.partitions_file.read_text())
        assert parsed.problems == ()
        # what the file holds becomes what OpenSM holds, through our next apply alone
        res = await drv.apply(list(parsed.partitions))
        assert res.observed.problems == ()
        want = FULL | parsed.partitions[0].pkey  # tenant_a (0x0101) or tenant_b (0x0102)
        h1 = keys(sm, "h1")
        assert h1 & {FULL | A, FULL | B} == {want}, sorted(hex(k) for k in h1)
        assert 0xFFFF not in h1
        sweeps = sm.sweeps()
        sm.resweep()  # and OpenSM re-reading it on its own never falls back
        assert "Partition configuration in error" not in sm.log_text().split("-> SUBNET UP")[sweeps]
        seen.add(want)
    assert seen == {FULL | A, FULL | B}, "the kills never landed between two applies"


# --------------------------------------------------------------------------- through the daemon


@pytest.fixture
async def daemon(sm: Subnet, tmp_path: Path) -> AsyncIterator[tuple[TestClient, str]]:
    settings = load_settings(
        None,
        env={},
        overrides={
            "data_dir": str(tmp_path / "data"),
            "database_url": f"sqlite:///{tmp_path / 'data' / 'p.db'}",
            "switches": {"enabled": False},
            "fabrics": {
                "interval": 0.1,
                "drift_interval": 0.5,
                "backoff_seconds": 0.1,
                "opensm_dirs": [str(sm.workdir)],
            },
        },
    )
    app = create_app(settings)
    async with TestClient(TestServer(app)) as client:
        token, _ = await create_token(app[SERVICES].db, role="admin", name="t-admin")
        yield client, token


async def test_the_daemon_applies_put_partitions_to_opensm_and_repairs_a_hand_edit(
    sm: Subnet, daemon: tuple[TestClient, str]
) -> None:
    client, token = daemon

    async def call(method: str, path: str, body: Any = None) -> Any:
        resp = await client.request(
            method, path, headers={"Authorization": f"Bearer {token}"}, json=body
        )
        text = await resp.text()
        assert resp.status < 300, text
        return json.loads(text) if text else None

    async def until(check: Any, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(check):
            assert time.monotonic() < deadline, "not reached in time"
            await asyncio.sleep(0.1)

    await call("POST", "/v1/fabrics", {
        "name": "ib0", "driver": "opensm", "pkey_range": "0x0100-0x01ff",
        "settings": {"partitions_file": str(sm.partitions_file), "pid_file": str(sm.pid_file),
                     "log_file": str(sm.log_file)},
    })  # fmt: skip
    await call("PUT", "/v1/fabrics/ib0/partitions/0x0101",
               {"name": "tenant_a", "members": {H["h1"]: "full", H["h2"]: "full"}})  # fmt: skip
    await call("PUT", "/v1/fabrics/ib0/partitions/0x0102",
               {"name": "tenant_b", "members": {H["h3"]: "full"}})  # fmt: skip
    await until(lambda: FULL | B in keys(sm, "h3") and FULL | A in keys(sm, "h2"))
    assert not sm.path_exists(H["h2"], H["h3"])
    # h2 moves to tenant B through the API
    await call("PUT", "/v1/fabrics/ib0/partitions/0x0101",
               {"name": "tenant_a", "members": {H["h1"]: "full"}})  # fmt: skip
    await call("PUT", "/v1/fabrics/ib0/partitions/0x0102",
               {"name": "tenant_b", "members": {H["h2"]: "full", H["h3"]: "full"}})  # fmt: skip
    await until(lambda: sm.path_exists(H["h2"], H["h3"]) and not sm.path_exists(H["h1"], H["h2"]))
    view = await call("GET", "/v1/fabrics/ib0/partitions")
    assert [p["pkey"] for p in view["observed"]] == ["0x0101", "0x0102"]
    # someone edits the file by hand and HUPs OpenSM: h4 joins tenant A
    sm.write_partitions(
        sm.partitions_file.read_text().replace(
            f"  {H['h1']}=full ;", f"  {H['h1']}=full,\n  {H['h4']}=full ;"
        )
    )
    sm.resweep()
    assert sm.path_exists(H["h1"], H["h4"])
    # the drift check (every 0.5 s here) sees it and the next pass takes it back out
    await until(lambda: not sm.path_exists(H["h1"], H["h4"]))
    events = await call("GET", "/v1/events?kind=fabric.drift")
    assert any(H["h4"] in json.dumps(e["data"]) for e in events["items"])
    # removing tenant B takes its key off the ports, then frees it
    await call("DELETE", "/v1/fabrics/ib0/partitions/0x0102")
    await until(lambda: not keys(sm, "h3") & {B, FULL | B})

    async def freed() -> bool:
        view = await call("GET", "/v1/fabrics/ib0/partitions")
        return not view["removing"] and not view["pending"]

    deadline = time.monotonic() + 10
    while not await freed():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
