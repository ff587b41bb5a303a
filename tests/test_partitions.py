"""InfiniBand partitions without a subnet manager: the partitions.conf grammar (render, strict
parse, round trip), plan checks, the OpenSM driver's file handling (atomic swap, backup, roll
back, kill -9 in the middle) with a reload command standing in for OpenSM, and the API/reconciler
flow. The same flows against a real OpenSM over ibsim are in test_partitions_opensm.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.fabric import partitions_conf as pc
from drivers.fabric.base import (
    FabricError,
    Partition,
    PlanError,
    check_plan,
    diff_partitions,
    normalize_guid,
)
from drivers.fabric.opensm import BACKUP_SUFFIX, OpenSmDriver
from provisiond.api.app import create_app
from provisiond.api.keys import SERVICES
from provisiond.auth import create_token
from provisiond.config import load_settings
from provisiond.errors import ConfigError
from provisiond.lab.ufm import LabUfm

G = [f"0x0002c903000010{i:02x}" for i in range(1, 33)]


def part(name: str, pkey: int, *guids: str, membership: str = "full", **kw: Any) -> Partition:
    return Partition(name, pkey, {g: membership for g in guids}, **kw)


# --------------------------------------------------------------------------- grammar


def test_render_is_canonical_and_parses_back() -> None:
    a = part("tenant_a", 0x101, G[1], G[0], ipoib=True, mtu=5)
    b = part("tenant_b", 0x102, G[2], membership="limited", rate=7, sl=1)
    c = part("empty", 0x103)
    text = pc.render([c, b, a])
    assert text == pc.render([a, b, c])  # order of the plan does not matter
    assert "tenant_a=0x0101,ipoib,indx0,mtu=5 :\n" in text
    assert f"  {G[0]}=full,\n  {G[1]}=full ;\n" in text  # one GUID per line, sorted
    assert "empty=0x0103,indx0 : NONE ;" in text
    assert text.count("Default=0x7fff,ipoib : ALL=limited, SELF=full ;") == 1
    parsed = pc.parse(text)
    assert parsed.problems == ()
    assert parsed.partitions == (a, b, c)
    assert parsed.default is not None and ("ALL", "limited") in parsed.default.members


guids = st.integers(1, 2**64 - 1).map(lambda n: f"0x{n:016x}")
partitions_st = st.lists(
    st.builds(
        lambda pkey, name, members, ipoib, mtu, index0: Partition(
            f"p{name}", pkey, members, ipoib=ipoib, mtu=mtu, index0=index0
        ),
        st.integers(1, 0x7FFE),
        st.integers(0, 10**6),
        st.dictionaries(guids, st.sampled_from(["full", "limited"]), max_size=6),
        st.booleans(),
        st.none() | st.integers(1, 5),
        st.booleans(),
    ),
    max_size=8,
    unique_by=(lambda p: p.pkey, lambda p: p.name),
)


@settings(max_examples=150, deadline=None)
@given(partitions_st)
def test_any_valid_plan_round_trips(parts: list[Partition]) -> None:
    assert check_plan(parts) == []
    text = pc.render(parts)
    parsed = pc.parse(text)
    assert parsed.problems == ()
    assert parsed.partitions == tuple(sorted(parts, key=lambda p: p.pkey))
    assert pc.render(list(parsed.partitions)) == text


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (f"t=0x0101 : {G[0]}=Full ;", "exactly 'full' or 'limited'"),
        (f"t=0x0101 : {G[0]}=FULL ;", "exactly 'full' or 'limited'"),
        (f"t=0x0101 : {G[0]}= ;", "exactly 'full' or 'limited'"),  # OpenSM: empty = full
        (f"t=0x0101 : {G[0]} ;", "no membership word"),
        (f"t=0x0101,m=5 : {G[0]}=full ;", "flag 'm=5'"),  # OpenSM: prefix of mtu
        (f"t=0x0101,defmember=full : {G[0]} ;", "defmember"),
        (f"t=0101 : {G[0]}=full ;", "not a 0x-hex"),  # strtoul(.., 0): octal 65
        (f"t=257 : {G[0]}=full ;", "not a 0x-hex"),
        (f"t : {G[0]}=full ;", "no P_Key"),
        (f"t=0x0101 : {G[0]}=full", "not terminated"),
        (f"t=0x0101 {G[0]}=full ;", "no ':'"),
        ("t=0x0101 : ALL=full ;", "makes ports members"),
        (f"t=0x0101 : {G[0]}=full, {G[0]}=limited ;", "listed twice"),
        (f"a=0x0101 : {G[0]}=full ;\nb=0x0101 : {G[1]}=full ;", "merges both"),
        (f"t=0x8101 : {G[0]}=full ;", "membership bit"),
        ("t=0x0101 : 0xzz=full ;", "not a 0x-hex port GUID"),
        ("t=0x0101 : " + ", ".join(f"0x{i:016x}=full" for i in range(1, 300)) + " ;", "longer"),
        (f"t=0x0101 : {G[0]}=full ;\r", "U+000D"),  # a CRLF file: OpenSM reads 'full\r'
        (f"t=0x0101 :\u00a0{G[0]}=full ;", "U+00A0"),
    ],
)
def test_parse_reports_what_opensm_would_misread(text: str, needle: str) -> None:
    problems = pc.parse(pc.DEFAULT_LINE + "\n" + text + "\n").problems
    assert any(needle in str(p) for p in problems), problems


def test_parse_names_the_line_of_each_problem() -> None:
    text = "\n".join(
        [pc.DEFAULT_LINE, "# comment", "t=0x0101,ipoib :", f"  {G[0]}=full,", f"  {G[1]}=Full ;"]
    )
    (problem,) = pc.parse(text + "\n").problems
    assert problem.line == 5 and G[1] in problem.message


def test_default_line_may_never_make_every_port_full() -> None:
    assert pc.check_default_line(pc.DEFAULT_LINE) == []
    assert pc.check_default_line("Default=0x7fff : ALL=full ;")
    assert pc.check_default_line("Default=0x7fff : ALL_CAS=full, SELF=full ;")
    assert pc.check_default_line("Default=0x7fff : ALL=Full ;")
    assert pc.check_default_line("tenant=0x0101 : ALL=limited ;")


# --------------------------------------------------------------------------- plan checks


def test_check_plan_refuses_unsafe_sets() -> None:
    def wheres(parts: list[Partition], **kw: Any) -> str:
        return " | ".join(f"{p.where}: {p.message}" for p in check_plan(parts, **kw))

    assert "default partition" in wheres([part("d", 0x7FFF, G[0])])
    assert "outside 0x0001-0x7ffe" in wheres([part("z", 0, G[0])])
    assert "already used by 'a'" in wheres([part("a", 0x101, G[0]), part("b", 0x101, G[1])])
    assert "name already used" in wheres([part("a", 0x101), part("a", 0x102)])
    assert "exactly 'full' or 'limited'" in wheres([part("a", 0x101, G[0], membership="Full")])
    assert "fabric's range" in wheres([part("a", 0x300)], pkey_range=(0x100, 0x1FF))
    assert "lowercase hex" in wheres([Partition("a", 0x101, {"0x0002C903000010AA": "full"})])
    assert "mtu" in wheres([part("a", 0x101, mtu=6)])
    # a port in three partitions holds four keys with the default one
    three = [part(f"t{i}", 0x101 + i, G[0]) for i in range(3)]
    assert wheres(three, port_key_limit=4) == ""
    assert "would hold 4 P_Keys" in wheres(three, port_key_limit=3)


def test_normalize_guid_forms() -> None:
    want = "0x0002c90300001003"
    for form in (
        "0x0002c90300001003",
        "0002c90300001003",
        "0002:c903:0000:1003",
        "0x2C90300001003",
    ):
        assert normalize_guid(form) == want
    for bad in ("0x0", "xyz", "0x1234567890abcdef0", ""):
        with pytest.raises(ValueError):
            normalize_guid(bad)


def test_diff_lines() -> None:
    a = part("a", 0x101, G[0], G[1])
    a2 = Partition("a", 0x101, {G[0]: "limited", G[2]: "full"})
    b = part("b", 0x102, G[3])
    assert diff_partitions([a, b], [a2]) == (
        f"~ 0x0101 a: +{G[2]}=full, -{G[1]}, {G[0]} full->limited",
        f"- 0x0102 b: {G[3]}=full",
    )
    assert diff_partitions([a], [a]) == ()


# --------------------------------------------------------------------------- OpenSM driver


class FakeSm:
    """Stands in for OpenSM's side of a reload: a command that logs each call (and, when told,
    fails or logs the fall-back line as OpenSM does)."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "sm"
        self.dir.mkdir(exist_ok=True)
        self.file = self.dir / "partitions.conf"
        self.log = self.dir / "opensm.log"
        self.calls = self.dir / "calls"
        self.mode = self.dir / "mode"
        self.mode.write_text("ok")
        script = self.dir / "reload.sh"
        script.write_text(
            "#!/bin/sh\n"
            f'echo "$PROVISIOND_PARTITIONS_FILE" >> {self.calls}\n'
            f'case "$(cat {self.mode})" in\n'
            f"  fail) echo 'ssh: connect to host sm01 port 22: Connection refused'; exit 255;;\n"
            # what OpenSM 3.3 logs (log_flags 0x03, force_log_flush TRUE)
            f"  fallback) echo '0x01 -> parse_part_conf: PARSE ERROR: line 3: bad PortGUID\n"
            f"0x01 -> osm_prtn_make_partitions: Partition configuration in error; retrying "
            f"with default config\n0x02 -> SUBNET UP' >> {self.log};;\n"
            f"  *) echo '0x02 -> SUBNET UP' >> {self.log};;\n"
            "esac\n"
        )
        script.chmod(0o755)
        self.script = script

    def driver(self, **over: Any) -> OpenSmDriver:
        settings: dict[str, Any] = {
            "partitions_file": str(self.file),
            "reload_command": [str(self.script)],
            "log_file": str(self.log),
            "reload_timeout": 5,
            **over,
        }
        return OpenSmDriver({k: v for k, v in settings.items() if v is not None})

    def reloads(self) -> int:
        return len(self.calls.read_text().splitlines()) if self.calls.exists() else 0


async def test_opensm_apply_writes_signals_reads_back_and_is_idempotent(tmp_path: Path) -> None:
    sm = FakeSm(tmp_path)
    drv = sm.driver()
    a = part("tenant_a", 0x101, G[0], G[1], ipoib=True)
    res = await drv.apply([a])
    assert res.diff == (f"+ 0x0101 tenant_a: {G[0]}=full, {G[1]}=full",)
    assert res.observed.partitions == (a,) and res.observed.problems == ()
    assert sm.file.read_text() == pc.render([a]) and sm.reloads() == 1
    assert not sm.file.with_name(sm.file.name + BACKUP_SUFFIX).exists()  # nothing to keep
    again = await drv.apply([a])
    assert again.diff == () and sm.reloads() == 1  # same bytes: no write, no signal
    b = part("tenant_b", 0x102, G[2])
    await drv.apply([a, b])
    backup = sm.file.with_name(sm.file.name + BACKUP_SUFFIX)
    assert backup.read_text() == pc.render([a]) and sm.reloads() == 2
    assert [p.name for p in sm.dir.iterdir() if ".provisiond-tmp-" in p.name] == []


async def test_opensm_refuses_an_unsafe_plan_before_writing(tmp_path: Path) -> None:
    sm = FakeSm(tmp_path)
    drv = sm.driver()
    a = part("tenant_a", 0x101, G[0])
    await drv.apply([a])
    before = sm.file.read_bytes()
    for bad in (
        [a, part("x", 0x102, G[1], membership="Full")],
        [a, part("x", 0x7FFF, G[1])],
        [a, part("has space", 0x102, G[1])],
    ):
        with pytest.raises(PlanError):
            await drv.apply(bad)
    limited = OpenSmDriver({**drv.settings}, port_key_limit=2)
    with pytest.raises(PlanError, match="refused"):
        await limited.apply([a, part("b", 0x102, G[0])])
    assert sm.file.read_bytes() == before and sm.reloads() == 1


async def test_opensm_rolls_back_when_the_reload_fails(tmp_path: Path) -> None:
    sm = FakeSm(tmp_path)
    drv = sm.driver()
    a = part("tenant_a", 0x101, G[0])
    await drv.apply([a])
    sm.mode.write_text("fail")
    with pytest.raises(FabricError, match=r"Connection refused.*previous file was put back"):
        await drv.apply([a, part("tenant_b", 0x102, G[1])])
    # the reload of the rollback failed too (the SM host is down), but the file is the old one
    assert sm.file.read_text() == pc.render([a])
    sm.mode.write_text("fallback")
    with pytest.raises(FabricError, match=r"fell back to its default configuration.*put back"):
        await drv.apply([a, part("tenant_b", 0x102, G[1])])
    assert sm.file.read_text() == pc.render([a])
    read = await drv.read()
    assert any("fell back" in p for p in read.problems)


async def test_opensm_never_rolls_back_onto_a_file_it_would_not_write(tmp_path: Path) -> None:
    sm = FakeSm(tmp_path)
    drv = sm.driver()
    a = part("tenant_a", 0x101, G[0])
    await drv.apply([a])
    backup = sm.file.with_name(sm.file.name + BACKUP_SUFFIX)
    broken = sm.file.read_text().replace(" ;\n", "\n")  # a hand edit OpenSM would refuse
    sm.file.write_text(broken)
    sm.mode.write_text("fail")  # the reload of the repair fails (after OpenSM got the HUP?)
    with pytest.raises(FabricError, match="previous file was not valid: the new"):
        await drv.apply([a])
    assert sm.file.read_text() == pc.render([a])  # the broken file never comes back
    assert not backup.exists()  # nor is it kept as a backup to restore by hand


async def test_opensm_signals_again_when_it_cannot_know_opensm_read_the_file(
    tmp_path: Path,
) -> None:
    sm = FakeSm(tmp_path)
    drv = sm.driver()
    a, b = part("tenant_a", 0x101, G[0]), part("tenant_b", 0x102, G[1])
    await drv.apply([a])
    assert sm.reloads() == 1
    # killed after the rename, before the signal: the new file is on disk, OpenSM never told
    drv._swap_in(pc.render([a, b]).encode(), True)
    res = await drv.apply([a, b])
    assert res.diff == () and sm.reloads() == 2
    await drv.apply([a, b])
    assert sm.reloads() == 2  # confirmed now: nothing to do
    # OpenSM fell back on a sweep someone else started, our file intact: signal again
    with sm.log.open("a") as log:
        log.write("0x01 -> osm_prtn_make_partitions: Partition configuration in error; "
                  "retrying with default config\n0x02 -> SUBNET UP\n")  # fmt: skip
    assert any("fell back" in p for p in (await drv.read()).problems)
    res = await drv.apply([a, b])
    assert sm.reloads() == 3 and res.observed.problems == ()
    await drv.apply([a, b], force=True)
    assert sm.reloads() == 4


async def test_opensm_read_reports_a_hand_edit_and_a_missing_file(tmp_path: Path) -> None:
    sm = FakeSm(tmp_path)
    drv = sm.driver(log_file=None)
    assert "missing" in (await drv.read()).problems[0]
    await drv.apply([part("tenant_a", 0x101, G[0])])
    sm.file.write_text(sm.file.read_text().replace("=full ;", "=Full ;"))
    read = await drv.read()
    assert any("exactly 'full' or 'limited'" in p for p in read.problems)


def test_opensm_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="partitions_file"):
        OpenSmDriver({"pid_file": "/run/opensm.pid"})
    with pytest.raises(ConfigError, match="exactly one"):
        OpenSmDriver({"partitions_file": "/etc/opensm/partitions.conf"})
    with pytest.raises(ConfigError, match="absolute"):
        OpenSmDriver({"partitions_file": "partitions.conf", "pid_file": "/run/opensm.pid"})
    with pytest.raises(ConfigError, match="every tenant"):
        OpenSmDriver(
            {
                "partitions_file": "/etc/opensm/partitions.conf",
                "pid_file": "/run/opensm.pid",
                "default_line": "Default=0x7fff : ALL=full ;",
            }
        )
    with pytest.raises(ConfigError, match="unknown OpenSM setting"):
        OpenSmDriver({"partitions_file": "/x", "pid_file": "/y", "url": "http://sm"})


CRASH_CHILD = """
import asyncio, sys
from drivers.fabric.base import Partition
from drivers.fabric.opensm import OpenSmDriver
path, n = sys.argv[1], int(sys.argv[2])
drv = OpenSmDriver({"partitions_file": path, "reload_command": ["true"]})
plans = [
    [Partition(f"t{i}", 0x100 + i, {f"0x{(i * 997 + j):016x}": "full" for j in range(1, 40)})
     for i in range(1, 60)],
    [Partition(f"u{i}", 0x200 + i, {f"0x{(i * 991 + j):016x}": "limited" for j in range(1, 25)})
     for i in range(1, 90)],
]
async def main():
    print("ready", flush=True)
    for k in range(n):
        await drv.apply(plans[k % 2])
asyncio.run(main())
"""


def test_kill_9_during_apply_never_leaves_opensm_without_a_valid_file(tmp_path: Path) -> None:
    """A process applying two large plans in turn, killed with SIGKILL at varied moments: the
    live file is always complete and one of the two plans, never missing, never partial."""
    path = tmp_path / "partitions.conf"
    script = tmp_path / "child.py"
    script.write_text(CRASH_CHILD)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    seen: set[str] = set()
    for round_ in range(12):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path), "100000"],
            stdout=subprocess.PIPE,
            env=env,
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
            time.sleep(0.05 + 0.037 * round_)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        if round_ == 0 and not path.exists():
            continue  # killed before the first rename: no file yet, as before it started
        parsed = pc.parse(path.read_text())
        assert parsed.problems == (), parsed.problems[:3]
        names = {p.name[0] for p in parsed.partitions}
        assert names in ({"t"}, {"u"}), names
        seen |= names
    assert seen == {"t", "u"}, "the kills never landed between two applies of different plans"


# --------------------------------------------------------------------------- API and reconciler


class Ib:
    def __init__(self, client: TestClient, token: str, sm: FakeSm) -> None:
        self.client, self.token, self.sm = client, token, sm

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        resp = await self.client.request(
            method, path, headers={"Authorization": f"Bearer {self.token}"}, json=body
        )
        text = await resp.text()
        return resp.status, (json.loads(text) if text else None)

    async def add_fabric(self, name: str = "ib0", **over: Any) -> dict[str, Any]:
        body = {
            "name": name,
            "driver": "opensm",
            "settings": {
                "partitions_file": str(self.sm.file),
                "reload_command": [str(self.sm.script)],
                "log_file": str(self.sm.log),
            },
            **over,
        }
        status, out = await self.call("POST", "/v1/fabrics", body)
        assert status == 201, out
        return dict(out)

    async def view(self, name: str = "ib0") -> dict[str, Any]:
        status, out = await self.call("GET", f"/v1/fabrics/{name}/partitions")
        assert status == 200, out
        return dict(out)

    async def settled(self, name: str = "ib0", timeout: float = 15) -> dict[str, Any]:
        """The partitions view once nothing is pending and nothing is being removed."""
        deadline = time.monotonic() + timeout
        while True:
            view = await self.view(name)
            if not view["pending"] and not view["removing"] and view["status"] == "applied":
                return view
            assert time.monotonic() < deadline, view
            await asyncio.sleep(0.05)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str | None:
    """The database URL: SQLite unless a test asks for ``backend`` "postgres" (indirect)."""
    if getattr(request, "param", "sqlite") == "postgres":
        url: str = request.getfixturevalue("pg_database")
        return url
    return None


@pytest.fixture
async def ib(tmp_path: Path, backend: str | None) -> AsyncIterator[Ib]:
    sm = FakeSm(tmp_path)
    settings = load_settings(
        None,
        env={},
        overrides={
            "data_dir": str(tmp_path / "data"),
            "database_url": backend or f"sqlite:///{tmp_path / 'data' / 'p.db'}",
            "switches": {"enabled": False},
            "fabrics": {
                "interval": 0.1,
                "drift_interval": 3600,
                "backoff_seconds": 0.1,
                "opensm_dirs": [str(sm.dir)],
                "reload_commands": [[str(sm.script)]],
            },
        },
    )
    app = create_app(settings)
    async with TestClient(TestServer(app)) as client:
        token, _ = await create_token(app[SERVICES].db, role="admin", name="t-admin")
        yield Ib(client, token, sm)


async def test_partitions_are_applied_by_the_reconciler_and_shown_three_ways(ib: Ib) -> None:
    fabric = await ib.add_fabric()
    assert fabric["status"] == "applied" and not ib.sm.file.exists()  # nothing written yet
    status, out = await ib.call(
        "PUT", "/v1/fabrics/ib0/partitions/0x0101",
        {"name": "tenant_a", "members": {G[0]: "full", "0002:c903:0000:1002": "full"},
         "ipoib": True},
    )  # fmt: skip
    assert status == 201, out
    assert out["members"] == {G[0]: "full", G[1]: "full"}  # normalised
    view = await ib.settled()
    assert [p["pkey"] for p in view["desired"]] == ["0x0101"]
    assert view["applied"] == view["observed"] and len(view["applied"]) == 1
    assert pc.parse(ib.sm.file.read_text()).partitions[0].members == {G[0]: "full", G[1]: "full"}
    status, events = await ib.call("GET", "/v1/events?kind=fabric.applied")
    assert status == 200
    assert any(f"+ 0x0101 tenant_a: {G[0]}=full" in " ".join(e["data"].get("diff", []))
               for e in events["items"])  # fmt: skip


async def test_bad_partitions_are_refused_with_the_field(ib: Ib) -> None:
    await ib.add_fabric(port_key_limit=3, pkey_range="0x0100-0x01ff")
    cases = [
        ("0x0101", {"name": "a", "members": {G[0]: "Full"}}, "members["),
        ("0x0101", {"name": "a", "members": {"0xnothex": "full"}}, "members[0xnothex]"),
        ("0x0300", {"name": "a"}, "partitions[0x0300]"),
        ("0x7fff", {"name": "a"}, "partitions[0x7fff]"),
        ("zz", {"name": "a"}, "pkey"),
        ("0x0101", {"name": "a b"}, "name"),
    ]
    for pkey, body, field in cases:
        status, out = await ib.call("PUT", f"/v1/fabrics/ib0/partitions/{pkey}", body)
        assert status == 422, out
        assert any(field in p["field"] for p in out["errors"]), out
    for i in range(2):
        status, _ = await ib.call(
            "PUT", f"/v1/fabrics/ib0/partitions/0x010{i + 1}",
            {"name": f"t{i}", "members": {G[0]: "full"}},
        )  # fmt: skip
        assert status == 201
    # a third key on G[0]: 4 with the default one, over the limit of 3
    status, out = await ib.call(
        "PUT", "/v1/fabrics/ib0/partitions/0x0103", {"name": "t3", "members": {G[0]: "full"}}
    )
    assert status == 422 and "would hold 4 P_Keys" in json.dumps(out)
    status, out = await ib.call(
        "PUT", "/v1/fabrics/ib0/partitions/0x0104", {"name": "t0", "members": {}}
    )
    assert status == 409 and "0x0101" in out["detail"]
    status, out = await ib.call(
        "POST", "/v1/fabrics", {"name": "ib1", "driver": "opensm", "settings": {"pid_file": "x"}}
    )
    assert status == 422 and "settings" in json.dumps(out)


async def test_a_removed_key_is_not_reused_until_the_subnet_manager_dropped_it(ib: Ib) -> None:
    await ib.add_fabric(pkey_range="0x0100-0x0103")
    keys = []
    for i in range(3):
        status, out = await ib.call(
            "POST", "/v1/fabrics/ib0/partitions", {"name": f"t{i}", "members": {G[i]: "full"}}
        )
        assert status == 201, out
        keys.append(out["pkey"])
    assert keys == ["0x0100", "0x0101", "0x0102"]
    await ib.settled()
    # the SM is down: the removal cannot be confirmed, so 0x0100 stays reserved
    ib.sm.mode.write_text("fail")
    status, out = await ib.call("DELETE", "/v1/fabrics/ib0/partitions/0x0100")
    assert status == 202 and out["state"] == "removing"
    status, out = await ib.call("POST", "/v1/fabrics/ib0/partitions", {"name": "t3"})
    assert status == 201 and out["pkey"] == "0x0103"
    status, out = await ib.call("POST", "/v1/fabrics/ib0/partitions", {"name": "t4"})
    assert status == 409 and "no free P_Key" in out["detail"]
    status, out = await ib.call(
        "PUT", "/v1/fabrics/ib0/partitions/0x0100", {"name": "intruder", "members": {G[9]: "full"}}
    )
    assert status == 409 and "being removed" in out["detail"], out
    ib.sm.mode.write_text("ok")
    view = await ib.settled()
    assert [p["pkey"] for p in view["applied"]] == ["0x0101", "0x0102", "0x0103"]
    status, out = await ib.call("POST", "/v1/fabrics/ib0/partitions", {"name": "t4"})
    assert status == 201 and out["pkey"] == "0x0100"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_concurrent_allocations_never_share_a_key(ib: Ib) -> None:
    """40 partitions asked for at once (real concurrent HTTP requests) get 40 distinct keys;
    one tenant asking twice gets one key and a 409."""
    await ib.add_fabric(pkey_range="0x0100-0x01ff")
    async with aiohttp.ClientSession() as http:

        async def one(i: int) -> tuple[int, Any]:
            resp = await http.post(
                str(ib.client.make_url("/v1/fabrics/ib0/partitions")),
                headers={"Authorization": f"Bearer {ib.token}"},
                json={"name": f"t{i:02d}", "members": {G[i % 32]: "full"}},
            )
            return resp.status, await resp.json()

        results = await asyncio.gather(*(one(i) for i in range(40)))
    assert [status for status, _ in results] == [201] * 40, results
    keys = [out["pkey"] for _, out in results]
    assert len(set(keys)) == 40 and min(keys) == "0x0100" and max(keys) == "0x0127"
    view = await ib.settled()
    assert sorted(p["pkey"] for p in view["applied"]) == sorted(keys)


async def test_plan_is_a_dry_run(ib: Ib) -> None:
    await ib.add_fabric()
    ib.sm.mode.write_text("fail")  # keep the reconciler from applying
    await ib.call("PUT", "/v1/fabrics/ib0/partitions/0x0101",
                  {"name": "tenant_a", "members": {G[0]: "full"}})  # fmt: skip
    status, plan = await ib.call("POST", "/v1/fabrics/ib0/plan")
    assert status == 200 and plan["ok"], plan
    assert plan["diff"] == [f"+ 0x0101 tenant_a: {G[0]}=full"]
    assert f"  {G[0]}=full ;" in plan["rendered"]


async def test_a_hand_edit_is_reported_and_put_back(ib: Ib) -> None:
    await ib.add_fabric()
    await ib.call("PUT", "/v1/fabrics/ib0/partitions/0x0101",
                  {"name": "tenant_a", "members": {G[0]: "full"}})  # fmt: skip
    await ib.settled()
    good = ib.sm.file.read_text()
    ib.sm.file.write_text(good.replace(f"{G[0]}=full ;", f"{G[0]}=full,\n  {G[5]}=full ;"))
    status, drift = await ib.call("POST", "/v1/fabrics/ib0/drift")
    assert status == 200 and drift["drift"] == [f"~ 0x0101 tenant_a: +{G[5]}=full"], drift
    await ib.settled()
    assert ib.sm.file.read_text() == good
    status, events = await ib.call("GET", "/v1/events?kind=fabric.drift")
    assert events["items"] and G[5] in json.dumps(events["items"][0]["data"])


# --------------------------------------------------------------------------- UFM through the daemon


async def test_a_ufm_fabric_is_reconciled_and_its_drift_repaired(ib: Ib) -> None:
    """The same flow on the lab UFM (over HTTP): explicit defaults and an empty key read back
    without false drift; a member added in UFM behind provisiond's back is taken out again."""
    ufm = LabUfm(token="lab-token")
    await ufm.start(0)
    try:
        async with aiohttp.ClientSession() as http:  # someone else's key, outside our range
            resp = await http.post(
                f"{ufm.url}/ufmRest/resources/pkeys",
                json={"pkey": "0x500", "guids": [G[8][2:]], "membership": "full"},
                headers={"Authorization": aiohttp.encode_basic_auth("admin", "123456")},
            )
            assert resp.status == 200, await resp.text()
        status, out = await ib.call("POST", "/v1/fabrics", {
            "name": "ufm0", "driver": "ufm", "pkey_range": "0x0100-0x01ff",
            "settings": {"url": ufm.url, "auth": "token", "token": "lab-token"},
        })  # fmt: skip
        assert status == 201, out
        assert out["settings"]["token"] == "(set)"
        await ib.call("PUT", "/v1/fabrics/ufm0/partitions/0x0101",
                      {"name": "tenant_a", "members": {G[0]: "full", G[1]: "full"},
                       "ipoib": True, "mtu": 4})  # fmt: skip
        await ib.call("PUT", "/v1/fabrics/ufm0/partitions/0x0102",
                      {"name": "tenant_b", "index0": False})  # fmt: skip
        status, out = await ib.call("PUT", "/v1/fabrics/ufm0/partitions/0x0103",
                                    {"name": "tenant_c", "mtu": 3})  # fmt: skip
        assert status == 422 and "mtu" in json.dumps(out["errors"]), out  # UFM: 2k or 4k only
        await ib.settled("ufm0")
        assert ufm.state.memberships(0x101) == {G[0]: "full", G[1]: "full"}
        assert 0x500 in ufm.state.pkeys  # outside the fabric's range: not provisiond's
        status, drift = await ib.call("POST", "/v1/fabrics/ufm0/drift")
        assert drift == {"fabric": "ufm0", "drift": [], "problems": [], "error": None}, drift
        # someone adds a GUID to tenant_a in UFM
        async with aiohttp.ClientSession() as http:
            resp = await http.post(
                f"{ufm.url}/ufmRest/resources/pkeys",
                json={
                    "pkey": "0x101",
                    "guids": [G[7][2:]],
                    "membership": "full",
                    "index0": True,
                    "ip_over_ib": True,
                },
                headers={"Authorization": aiohttp.encode_basic_auth("admin", "123456")},
            )
            assert resp.status == 200, await resp.text()
        status, drift = await ib.call("POST", "/v1/fabrics/ufm0/drift")
        assert drift["drift"] == [f"~ 0x0101 tenant_a: +{G[7]}=full"], drift
        await ib.settled("ufm0")
        assert G[7] not in ufm.state.memberships(0x101)
    finally:
        await ufm.stop()


async def test_report_only_drift_is_reported_once_and_left_alone(ib: Ib) -> None:
    await ib.add_fabric(repair_drift=False)
    await ib.call("PUT", "/v1/fabrics/ib0/partitions/0x0101",
                  {"name": "tenant_a", "members": {G[0]: "full"}})  # fmt: skip
    await ib.settled()
    edited = ib.sm.file.read_text().replace(f"{G[0]}=full ;", f"{G[0]}=full,\n  {G[5]}=full ;")
    ib.sm.file.write_text(edited)
    for _ in range(3):
        _, drift = await ib.call("POST", "/v1/fabrics/ib0/drift")
        assert drift["drift"] == [f"~ 0x0101 tenant_a: +{G[5]}=full"], drift
    _, events = await ib.call("GET", "/v1/events?kind=fabric.drift")
    assert len(events["items"]) == 1 and "putting it back" not in events["items"][0]["message"]
    _, fabric = await ib.call("GET", "/v1/fabrics/ib0")
    assert fabric["status"] == "drifted" and not fabric["pending"]
    await asyncio.sleep(0.5)  # the reconciler leaves it alone
    assert ib.sm.file.read_text() == edited


async def test_the_daemon_policy_limits_what_an_api_fabric_may_do(ib: Ib, tmp_path: Path) -> None:
    """An API token is not a shell: partitions files only in [fabrics] opensm_dirs, reload
    commands only from [fabrics] reload_commands."""
    for fabric_settings, field in (
        ({"partitions_file": "/etc/passwd", "reload_command": [str(ib.sm.script)]},
         "settings.partitions_file"),
        ({"partitions_file": str(ib.sm.file), "reload_command": ["rm", "-rf", "/"]},
         "settings.reload_command"),
        ({"partitions_file": str(ib.sm.dir / ".." / "x.conf"), "reload_command": "true"},
         "settings.partitions_file"),
    ):  # fmt: skip
        status, out = await ib.call(
            "POST",
            "/v1/fabrics",
            {"name": "ibx", "driver": "opensm", "settings": fabric_settings},
        )
        assert status == 422 and field in [p["field"] for p in out["errors"]], out
