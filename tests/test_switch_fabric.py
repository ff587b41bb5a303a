"""The switch reconciler on a real lab switch (Arista EOS over SSH, driven by netmiko), through
the daemon's own app: enrollment, desired state through the API, passes, read-back, quarantine,
backoff, drift. The switch is checked with an independent netmiko session, not with our own
reads.

Most tests run with the background loop off and drive passes with POST .../apply, so each pass
is the one the test looks at; one test keeps the loop on and only waits for convergence.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from drivers.switch.dialects.arista_eos import AristaEosDialect
from provisiond.api.app import create_app
from provisiond.api.keys import SERVICES
from provisiond.auth import create_token
from provisiond.config import load_settings
from tests.support.daemon import free_port
from tests.support.labswitch import ALL_DIALECTS, LabSwitch, lab_switch

EOS = AristaEosDialect()


@pytest.fixture(scope="module")
def eos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabSwitch]:
    tmp = tmp_path_factory.mktemp("fabric-eos")
    with lab_switch("arista_eos", tmp, "--lldp", str(tmp / "lldp.json")) as sw:
        yield sw


class Fab:
    def __init__(self, client: TestClient, token: str, lab: LabSwitch) -> None:
        self.client = client
        self.token = token
        self.lab = lab

    async def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        resp = await self.client.request(
            method,
            path,
            json=body,
            params=params or None,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        data = await resp.json() if resp.status != 204 else None
        return resp.status, data

    def switch_body(self, name: str = "leaf1", **over: Any) -> dict[str, Any]:
        return {
            "name": name,
            "driver": "arista_eos",
            "address": "127.0.0.1",
            "port": self.lab.port,
            "username": self.lab.username,
            "password": self.lab.password,
            "allowed_vlans": "100-199",
            "provisioning_vlan": 100,
            "quarantine_vlan": 199,
            **over,
        }

    async def enroll(self, name: str = "leaf1", **over: Any) -> dict[str, Any]:
        status, out = await self.call("POST", "/v1/switches", self.switch_body(name, **over))
        assert status in (200, 201), out
        return dict(out)

    async def put(self, port: str, body: dict[str, Any], switch: str = "leaf1") -> Any:
        # port names carry "/" (Ethernet1/3, ge-0/0/3): one path segment, quoted
        seg = urllib.parse.quote(port, safe="")
        return await self.call("PUT", f"/v1/switches/{switch}/ports/{seg}", body)

    async def apply(self, switch: str = "leaf1", **params: Any) -> dict[str, Any]:
        status, out = await self.call("POST", f"/v1/switches/{switch}/apply", **params)
        assert status == 200, out
        return dict(out)

    async def bindings(self, switch: str = "leaf1") -> dict[str, dict[str, Any]]:
        status, out = await self.call("GET", f"/v1/switches/{switch}")
        assert status == 200, out
        return {b["port"]: b for b in out["bindings"]}

    async def events(self, switch: str = "leaf1", kind: str | None = None) -> list[dict[str, Any]]:
        q = {"kind": kind} if kind else {}
        status, out = await self.call("GET", f"/v1/switches/{switch}/events", **q)
        assert status == 200, out
        return list(out["items"])

    def on_switch(self, *ports: str) -> dict[str, Any]:
        """The ports as an independent netmiko session reads them on the lab switch."""
        conn = self.lab.connect()
        try:
            conn.enable()
            out = "\n".join(
                str(conn.send_command(f"show running-config interfaces {p}")) for p in ports
            )
        finally:
            conn.disconnect()
        return {
            p: (s.mode.value if s.mode else None, s.vlan, s.native_vlan, s.allowed_vlans)
            for p, s in EOS.parse_ports(out).items()
        }


async def _fab(
    tmp_path: Path, lab: LabSwitch, *, loop: bool, db_url: str | None = None
) -> AsyncIterator[Fab]:
    settings = load_settings(
        None,
        env={},
        overrides={
            "data_dir": str(tmp_path / "data"),
            "database_url": db_url or f"sqlite:///{tmp_path / 'data' / 'p.db'}",
            "switches": {
                "enabled": loop,
                "interval": 0.2,
                "drift_interval": 3600,
                "backoff_seconds": 0.2,
                "backoff_max_seconds": 1,
            },
            "drivers": {
                "napalm": {"eos_transport": "http", "timeout": 20},
                "netmiko": {
                    "read_timeout": 10,
                    "connect_tries": 1,
                    "save_tries": 2,
                    "save_retry_delay": 0,
                },
            },
        },
    )
    app = create_app(settings)
    async with TestClient(TestServer(app)) as client:
        token, _ = await create_token(app[SERVICES].db, role="admin", name="t-admin")
        lab.set_faults()
        yield Fab(client, token, lab)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str | None:
    """The database URL: SQLite unless a test asks for ``backend`` "postgres" (indirect)."""
    if getattr(request, "param", "sqlite") == "postgres":
        url: str = request.getfixturevalue("pg_database")
        return url
    return None


@pytest.fixture
async def fab(tmp_path: Path, eos: LabSwitch, backend: str | None) -> AsyncIterator[Fab]:
    async for f in _fab(tmp_path, eos, loop=False, db_url=backend):
        yield f


@pytest.fixture
async def live(tmp_path: Path, eos: LabSwitch, backend: str | None) -> AsyncIterator[Fab]:
    async for f in _fab(tmp_path, eos, loop=True, db_url=backend):
        yield f


BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


# --------------------------------------------------------------------------- enrollment & API


async def test_enroll_is_idempotent_and_keeps_the_password_secret(fab: Fab) -> None:
    first = await fab.enroll()
    assert first["created"] is True
    again = await fab.enroll()
    assert again["created"] is False and again["changes"] == []
    changed = await fab.enroll(password="other", repair_drift=True)
    assert sorted(changed["changes"]) == ["password", "repair_drift"]
    _, sw = await fab.call("GET", "/v1/switches/leaf1")
    assert sw["password_set"] is True and "other" not in str(sw) and "password" not in sw


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"driver": "cisco_ios"}, "driver"),
        ({"allowed_vlans": "100-5000"}, "allowed_vlans"),
        ({"quarantine_vlan": 300}, "body"),
        ({"provisioning_vlan": 199}, "body"),
        ({"allowed_ports": "Ethernet(1"}, "allowed_ports"),
        ({"address": "bad host!"}, "address"),
    ],
)
async def test_enroll_refuses_bad_switches(fab: Fab, over: dict[str, Any], field: str) -> None:
    status, out = await fab.call("POST", "/v1/switches", fab.switch_body(**over))
    assert status == 422, out
    assert out["errors"][0]["field"] == field, out
    status, listing = await fab.call("GET", "/v1/switches")
    assert listing["items"] == []


async def test_desired_state_is_checked_before_anything_is_written(fab: Fab) -> None:
    await fab.enroll(allowed_ports=r"Ethernet([1-9]|[1-3][0-9])")
    sessions = fab.lab.log.read_text().count("opened")
    for port, body, where in [
        ("Ethernet1; reload", {"mode": "access", "vlan": 120}, "port"),
        ("Ethernet1", {"mode": "access", "vlan": 300}, "vlan"),
        ("Ethernet45", {"mode": "access", "vlan": 120}, "port"),
        ("Ethernet1", {"mode": "trunk", "allowed_vlans": "120"}, "native_vlan"),
        (
            "Ethernet1",
            {"mode": "trunk", "native_vlan": 120, "allowed_vlans": "250"},
            "allowed_vlans",
        ),
        ("Ethernet1", {"mode": "access"}, "vlan"),
    ]:
        status, out = await fab.put(port, body)
        assert status == 422, (port, body, out)
        assert out["errors"][0]["field"] == where, out
    assert await fab.bindings() == {}
    assert fab.lab.log.read_text().count("opened") == sessions  # nothing reached the switch


# --------------------------------------------------------------------------- passes


@BOTH
async def test_live_loop_applies_put_within_seconds(live: Fab) -> None:
    await live.enroll()
    status, out = await live.put("Ethernet1", {"mode": "access", "vlan": 120})
    assert status == 202 and out["status"] == "pending", out
    status, out = await live.put(
        "Ethernet2", {"mode": "trunk", "native_vlan": 120, "allowed_vlans": "130-131"}
    )
    assert status == 202, out
    for _ in range(150):
        b = await live.bindings()
        if all(x["in_sync"] for x in b.values()):
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail(f"not applied within 30 s: {b}")
    assert live.on_switch("Ethernet1", "Ethernet2") == {
        "Ethernet1": ("access", 120, None, ()),
        "Ethernet2": ("trunk", None, 120, (120, 130, 131)),
    }
    assert b["Ethernet2"]["observed"] == {
        "mode": "trunk",
        "native_vlan": 120,
        "allowed_vlans": [120, 130, 131],
    }
    applied = await live.events(kind="switch.apply")
    # the quarantine VLAN too: a port may have to go there in any pass
    assert applied and set(applied[0]["data"]["vlans_created"]) == {120, 130, 131, 199}


async def test_batch_in_few_sessions_and_refused_ports_isolated(fab: Fab) -> None:
    """One pass: five good ports and one the switch refuses (EOS has no Ethernet60 on a
    48-port switch): the refused one is isolated by bisection, the others applied; it cannot be
    quarantined either (the switch has no such port), so it is failed, and says why."""
    await fab.enroll()
    for n in range(20, 25):
        await fab.put(f"Ethernet{n}", {"mode": "access", "vlan": 140})
    await fab.put("Ethernet60", {"mode": "access", "vlan": 140})
    res = await fab.apply()
    assert sorted(res["applied"]) == [f"Ethernet{n}" for n in range(20, 25)], res
    assert list(res["failed"]) == ["Ethernet60"] and "Invalid input" in res["failed"]["Ethernet60"]
    assert res["error"] is None
    b = await fab.bindings()
    assert b["Ethernet60"]["status"] == "failed" and b["Ethernet60"]["observed"]["missing"]
    on = fab.on_switch(*[f"Ethernet{n}" for n in range(20, 25)])
    assert {v[1] for v in on.values()} == {140}
    # nothing pending any more: the next pass has nothing to do
    assert (await fab.apply())["skipped"] == "nothing pending"
    assert await fab.events(kind="switch.port_failed")


async def test_port_refused_by_a_narrowed_allow_list_goes_to_quarantine(fab: Fab) -> None:
    await fab.enroll()
    await fab.put("Ethernet30", {"mode": "access", "vlan": 150})
    assert (await fab.apply())["applied"] == ["Ethernet30"]
    await fab.put("Ethernet30", {"mode": "access", "vlan": 160})
    # the admin narrows the allow-list before the change went out: 160 is no longer allowed
    await fab.enroll(allowed_vlans="100-150,199")
    res = await fab.apply()
    assert list(res["quarantined"]) == ["Ethernet30"], res
    assert "allow-list" in res["quarantined"]["Ethernet30"]
    assert fab.on_switch("Ethernet30")["Ethernet30"][:2] == ("access", 199)
    b = (await fab.bindings())["Ethernet30"]
    assert b["status"] == "quarantined" and b["observed"] == {"mode": "access", "vlan": 199}
    (ev,) = await fab.events(kind="switch.quarantine")
    assert "Ethernet30" in ev["message"] and "199" in ev["message"]
    # not retried by itself; an operator's retry after widening the list puts it through
    assert (await fab.apply())["skipped"] == "nothing pending"
    await fab.enroll(allowed_vlans="100-199")
    assert (await fab.apply(retry="true"))["applied"] == ["Ethernet30"]
    assert fab.on_switch("Ethernet30")["Ethernet30"][:2] == ("access", 160)


async def test_session_dropped_mid_batch_stays_pending_then_converges(fab: Fab) -> None:
    await fab.enroll()
    ports = [f"Ethernet{n}" for n in range(10, 14)]
    for p in ports:
        await fab.put(p, {"mode": "access", "vlan": 170})
    fab.lab.set_faults(drop_after=5)
    res = await fab.apply()
    assert res["error"] and res["applied"] == [] and sorted(res["pending"]) == ports, res
    _, sw = await fab.call("GET", "/v1/switches/leaf1")
    assert sw["failures"] == 1 and sw["last_error"]
    assert [e["kind"] for e in await fab.events(kind="switch.unreachable")] == [
        "switch.unreachable"
    ]
    fab.lab.set_faults()
    res = await fab.apply()
    assert sorted(res["applied"]) == ports, res
    assert {v[:2] for v in fab.on_switch(*ports).values()} == {("access", 170)}
    _, sw = await fab.call("GET", "/v1/switches/leaf1")
    assert sw["failures"] == 0 and sw["last_error"] is None
    assert await fab.events(kind="switch.recovered")


async def test_locked_configuration_keeps_the_batch_pending(fab: Fab) -> None:
    """The save answers "configuration is locked" (another session holds it): the ports are
    not blamed (no bisection, no quarantine); the batch is sent again once the lock is gone."""
    await fab.enroll()
    await fab.put("Ethernet15", {"mode": "access", "vlan": 175})
    await fab.put("Ethernet16", {"mode": "access", "vlan": 175})
    fab.lab.set_faults(config_locked=True)
    res = await fab.apply()
    assert "locked" in (res["error"] or ""), res
    assert res["quarantined"] == {} and res["failed"] == {} and len(res["pending"]) == 2, res
    assert res["sessions"] <= 2, res  # the VLAN read and one apply: no per-port sessions
    fab.lab.set_faults()
    assert sorted((await fab.apply())["applied"]) == ["Ethernet15", "Ethernet16"]
    conn = fab.lab.connect()
    try:
        conn.enable()
        saved = EOS.parse_ports(str(conn.send_command("show startup-config")))
    finally:
        conn.disconnect()
    assert saved["Ethernet15"].vlan == 175 and saved["Ethernet16"].vlan == 175


async def test_unreachable_switch_is_retried_with_backoff(fab: Fab) -> None:
    await fab.enroll("gone", port=free_port())
    await fab.put("Ethernet1", {"mode": "access", "vlan": 120}, switch="gone")
    res = await fab.apply("gone")
    assert res["error"] and "cannot connect" in res["error"] and res["pending"] == ["Ethernet1"]
    _, sw = await fab.call("GET", "/v1/switches/gone")
    assert sw["failures"] == 1 and sw["next_attempt_at"] is not None
    assert sw["bindings"][0]["status"] == "pending"


async def test_wrong_password_is_a_switch_error_not_a_port_error(fab: Fab) -> None:
    await fab.enroll(password="wrong")
    await fab.put("Ethernet40", {"mode": "access", "vlan": 120})
    await fab.put("Ethernet41", {"mode": "access", "vlan": 120})
    res = await fab.apply()
    assert "login refused" in (res["error"] or ""), res
    assert res["quarantined"] == {} and res["failed"] == {} and len(res["pending"]) == 2
    assert res["sessions"] == 1  # one refused login, not one per port


@BOTH
async def test_drift_is_reported_then_repaired_when_configured(fab: Fab) -> None:
    await fab.enroll()
    await fab.put("Ethernet35", {"mode": "access", "vlan": 120})
    await fab.put("Ethernet36", {"mode": "access", "vlan": 120})
    assert len((await fab.apply())["applied"]) == 2
    conn = fab.lab.connect()  # someone changes a port by hand
    try:
        conn.enable()
        conn.send_config_set(["interface Ethernet35", "switchport access vlan 101"])
    finally:
        conn.disconnect()
    status, drift = await fab.call("POST", "/v1/switches/leaf1/drift")
    assert status == 200 and drift["checked"] == 2 and drift["repairing"] is False
    assert drift["drifted"] == {"Ethernet35": {"expected": "access 120", "observed": "access 101"}}
    b = await fab.bindings()
    assert b["Ethernet35"]["status"] == "drifted" and b["Ethernet36"]["status"] == "applied"
    (ev,) = await fab.events(kind="switch.drift")
    assert "Ethernet35 is access 101, expected access 120" in ev["message"]
    assert (await fab.apply())["skipped"] == "nothing pending"  # reported only
    await fab.enroll(repair_drift=True)
    _, drift = await fab.call("POST", "/v1/switches/leaf1/drift")
    assert drift["repairing"] is True and list(drift["drifted"]) == ["Ethernet35"]
    assert (await fab.apply())["applied"] == ["Ethernet35"]
    assert fab.on_switch("Ethernet35")["Ethernet35"][:2] == ("access", 120)
    _, drift = await fab.call("POST", "/v1/switches/leaf1/drift")
    assert drift["drifted"] == {}


async def test_plan_shows_the_batch_without_sending_it(fab: Fab) -> None:
    await fab.enroll()
    await fab.put("Ethernet44", {"mode": "trunk", "native_vlan": 110, "allowed_vlans": "111"})
    status, plan = await fab.call("GET", "/v1/switches/leaf1/plan")
    assert status == 200 and plan["vlans_to_create"] == [110, 111]
    assert plan["ports"] == [
        {
            "port": "Ethernet44",
            "from": "unknown",
            "to": "trunk native 110 allowed 110-111",
            "status": "pending",
        }
    ]
    assert "switchport trunk allowed vlan 110-111" in plan["commands"]
    assert plan["commands"][-1] == "copy running-config startup-config"
    assert fab.on_switch("Ethernet44")["Ethernet44"][:2] == ("access", 1)  # nothing sent


async def test_node_network_binding_follows_the_switch_system_vlans(fab: Fab) -> None:
    rack = f"""
rack: r09
switches:
  - name: leaf9
    driver: arista_eos
    address: 127.0.0.1
    port: {fab.lab.port}
    username: {fab.lab.username}
    password: {fab.lab.password}
    allowed_vlans: "100-199"
    provisioning_vlan: 100
    quarantine_vlan: 199
nodes:
  - name: r09n01
    unit: 1
    bmc: {{driver: ipmi, address: 127.0.0.1, port: 6999, username: a, password: b}}
    nics:
      - {{mac: "52:54:00:09:00:01", kind: ethernet, pxe: true, switch: leaf9, port: Ethernet46}}
      - {{mac: "52:54:00:09:00:02", kind: ethernet}}
"""
    resp = await fab.client.post(
        "/v1/racks/r09/enroll",
        data=rack.encode(),
        headers={"Authorization": f"Bearer {fab.token}", "Content-Type": "application/yaml"},
    )
    out = await resp.json()
    assert resp.status == 201 and out["switches"] == [
        {"name": "leaf9", "created": True, "changes": []}
    ], out
    status, bound = await fab.call("PUT", "/v1/nodes/r09n01/network", {"network": "provisioning"})
    assert status == 202, bound
    assert [(p["switch"], p["port"], p["desired"]) for p in bound["ports"]] == [
        ("leaf9", "Ethernet46", {"mode": "access", "vlan": 100})
    ]
    assert bound["skipped"] == [{"mac": "52:54:00:09:00:02", "reason": "no switch port known "
                                 "(rack file or LLDP)"}]  # fmt: skip
    assert (await fab.apply("leaf9"))["applied"] == ["Ethernet46"]
    assert fab.on_switch("Ethernet46")["Ethernet46"][:2] == ("access", 100)
    # the switch's provisioning VLAN changes: the bound port follows
    await fab.enroll("leaf9", provisioning_vlan=101)
    assert (await fab.apply("leaf9"))["applied"] == ["Ethernet46"]
    assert fab.on_switch("Ethernet46")["Ethernet46"][:2] == ("access", 101)
    status, bound = await fab.call("PUT", "/v1/nodes/r09n01/network", {"network": "quarantine"})
    assert (await fab.apply("leaf9"))["applied"] == ["Ethernet46"]
    assert fab.on_switch("Ethernet46")["Ethernet46"][:2] == ("access", 199)
    status, net = await fab.call("GET", "/v1/nodes/r09n01/network")
    assert net["ports"][0]["network"] == "quarantine" and net["ports"][0]["in_sync"]
    # many nodes in one transaction (the follower): a refused one does not stop the others,
    # and leaves nothing half-written
    from provisiond.switches import bind_nodes

    db = fab.client.server.app[SERVICES].db
    refused = await bind_nodes(db, [("nope", "provisioning", None), ("r09n01", None, 150)], "t")
    assert list(refused) == ["nope"], refused
    status, net = await fab.call("GET", "/v1/nodes/r09n01/network")
    assert net["ports"][0]["desired"] == {"mode": "access", "vlan": 150}, net
    refused = await bind_nodes(db, [("r09n01", None, 300)], "t")
    assert refused["r09n01"].startswith("node r09n01: cannot bind its ports; "), refused
    assert "VLAN outside this switch's allow-list" in refused["r09n01"], refused
    status, net = await fab.call("GET", "/v1/nodes/r09n01/network")
    assert net["ports"][0]["desired"] == {"mode": "access", "vlan": 150}, net
    # a switch that manages ports cannot be removed
    status, out = await fab.call("DELETE", "/v1/switches/leaf9")
    assert status == 409 and "Ethernet46" in out["detail"]


@BOTH
async def test_one_daemon_per_switch(fab: Fab) -> None:
    """A second daemon (another owner) leaves a switch alone while the first holds it."""
    from provisiond.fabric import Reconciler

    await fab.enroll()
    await fab.put("Ethernet47", {"mode": "access", "vlan": 120})
    services = fab.client.server.app[SERVICES]
    mine = services.switches
    assert mine is not None
    other = Reconciler(services.db, services.box, mine.settings, mine.drivers, owner="other:1")
    async with mine._held(1) as record:
        assert record is not None
        res = await other.reconcile("leaf1")
        assert res.skipped == "another daemon is working on this switch"
    res = await other.reconcile("leaf1")
    assert res.applied == ["Ethernet47"]


def test_lab_sessions_counted(eos: LabSwitch) -> None:
    """Sanity of the log the tests above read: every session is logged as opened."""
    before = eos.log.read_text().count("opened")
    eos.connect().disconnect()
    for _ in range(50):
        if eos.log.read_text().count("opened") > before:
            return
        time.sleep(0.1)
    pytest.fail("the lab did not log the session")


async def test_napalm_eos_switch_records_the_diff(tmp_path: Path) -> None:
    """A napalm_eos switch (eAPI) through the same reconciler: the switch's own session diff is
    recorded in the apply event; the change is visible over SSH."""
    eapi = free_port()
    with lab_switch("arista_eos", tmp_path, "--eapi-port", str(eapi)) as lab:
        async for f in _fab(tmp_path, lab, loop=False):
            await f.enroll("leaf-api", driver="napalm_eos", port=eapi)
            await f.put("Ethernet5", {"mode": "access", "vlan": 125}, switch="leaf-api")
            res = await f.apply("leaf-api")
            assert res["applied"] == ["Ethernet5"], res
            assert "+   switchport access vlan 125" in (res["diff"] or ""), res["diff"]
            (ev,) = await f.events("leaf-api", kind="switch.apply")
            assert "switchport access vlan 125" in ev["data"]["diff"]
            assert f.on_switch("Ethernet5")["Ethernet5"][:2] == ("access", 125)


async def test_lldp_cabling_check(fab: Fab) -> None:
    """The switch's LLDP neighbours against the rack file's cabling: a NIC where the inventory
    says, one heard on another port (recabled), a host nobody enrolled, a cabled NIC not heard."""
    rack = f"""
rack: r08
switches:
  - {{name: leaf8, driver: arista_eos, address: 127.0.0.1, port: {fab.lab.port},
      username: {fab.lab.username}, password: {fab.lab.password}, allowed_vlans: "100-199",
      quarantine_vlan: 199}}
nodes:
  - name: r08n01
    unit: 1
    bmc: {{driver: ipmi, address: 127.0.0.1, port: 6901, username: a, password: b}}
    nics: [{{mac: "52:54:00:08:00:01", kind: ethernet, switch: leaf8, port: Ethernet21}}]
  - name: r08n02
    unit: 2
    bmc: {{driver: ipmi, address: 127.0.0.1, port: 6902, username: a, password: b}}
    nics: [{{mac: "52:54:00:08:00:02", kind: ethernet, switch: leaf8, port: Ethernet22}}]
  - name: r08n03
    unit: 3
    bmc: {{driver: ipmi, address: 127.0.0.1, port: 6903, username: a, password: b}}
    nics: [{{mac: "52:54:00:08:00:03", kind: ethernet, switch: leaf8, port: Ethernet23}}]
"""
    resp = await fab.client.post(
        "/v1/racks/r08/enroll",
        data=rack.encode(),
        headers={"Authorization": f"Bearer {fab.token}", "Content-Type": "application/yaml"},
    )
    assert resp.status == 201, await resp.text()

    def host(mac: str, name: str) -> dict[str, str]:
        return {"chassis_id": mac, "port_id": mac, "system_name": name}

    (fab.lab.log.parent / "lldp.json").write_text(
        json.dumps(
            {
                "*": {
                    "Ethernet21": host("52:54:00:08:00:01", "r08n01"),
                    "Ethernet25": host("52:54:00:08:00:02", "r08n02"),  # recabled
                    "Ethernet26": host("52:54:00:99:99:99", "stranger"),
                }
            }
        )
    )
    status, out = await fab.call("GET", "/v1/switches/leaf8/lldp")
    assert status == 200, out
    got = {(r["port"], r["node"], r["recorded"], r["status"]) for r in out["cabling"]}
    assert got == {
        ("Ethernet21", "r08n01", "leaf8 Ethernet21", "match"),
        ("Ethernet25", "r08n02", "leaf8 Ethernet22", "moved"),
        ("Ethernet26", None, None, "unknown"),
        ("Ethernet22", "r08n02", "leaf8 Ethernet22", "silent"),
        ("Ethernet23", "r08n03", "leaf8 Ethernet23", "silent"),
    }, out
    assert out["counts"] == {"match": 1, "moved": 1, "unknown": 1, "silent": 2}


# --------------------------------------------------------------------------- review findings


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
async def test_quarantine_on_every_dialect_creates_the_vlan(tmp_path: Path, dialect: str) -> None:
    """A port whose new VLAN the narrowed allow-list forbids goes to quarantine on every
    dialect, on a switch that has never had the quarantine VLAN (Junos refuses a member VLAN
    that is not defined; SONiC a member of a VLAN that does not exist)."""
    with lab_switch(dialect, tmp_path) as lab:
        async for f in _fab(tmp_path, lab, loop=False):
            await f.enroll(driver=dialect, quarantine_vlan=198, allowed_vlans="100-198")
            p = lab.port_name(3)
            status, _ = await f.put(p, {"mode": "access", "vlan": 150})
            assert status == 202
            res = await f.apply()
            assert res["applied"] == [p], res
            await f.put(p, {"mode": "access", "vlan": 160})
            await f.enroll(driver=dialect, quarantine_vlan=198, allowed_vlans="100-150,198")
            res = await f.apply()
            assert list(res["quarantined"]) == [p], res
            b = (await f.bindings())[p]
            assert b["status"] == "quarantined" and b["observed"] == {"mode": "access", "vlan": 198}


async def test_release_goes_through_quarantine(fab: Fab) -> None:
    await fab.enroll()
    await fab.put("Ethernet17", {"mode": "access", "vlan": 130})
    assert (await fab.apply())["applied"] == ["Ethernet17"]
    status, out = await fab.call("DELETE", "/v1/switches/leaf1/ports/Ethernet17")
    assert status == 202 and out["desired"] == {"mode": "access", "vlan": 199}, out
    assert (await fab.apply())["applied"] == ["Ethernet17"]
    assert fab.on_switch("Ethernet17")["Ethernet17"][:2] == ("access", 199)
    assert "Ethernet17" not in await fab.bindings()  # no longer managed
    await fab.put("Ethernet18", {"mode": "access", "vlan": 130})
    status, _ = await fab.call("DELETE", "/v1/switches/leaf1/ports/Ethernet18", leave="true")
    assert status == 204 and "Ethernet18" not in await fab.bindings()


async def test_quarantine_not_confirmed_is_retried(fab: Fab) -> None:
    """The session carrying a quarantine drops: the port's state is in doubt, it is owed to
    quarantine and the next pass (after the backoff) moves it there without an operator."""
    await fab.enroll()
    await fab.put("Ethernet19", {"mode": "access", "vlan": 150})
    assert (await fab.apply())["applied"] == ["Ethernet19"]
    await fab.put("Ethernet19", {"mode": "access", "vlan": 160})
    await fab.enroll(allowed_vlans="100-150,199")
    fab.lab.set_faults(drop_after=1)
    res = await fab.apply()
    assert list(res["owed"]) == ["Ethernet19"] and res["error"], res
    b = (await fab.bindings())["Ethernet19"]
    assert b["status"] == "failed" and "quarantine not confirmed" in b["last_error"], b
    fab.lab.set_faults()
    res = await fab.apply()  # no --retry: owed ports are the reconciler's own business
    assert list(res["quarantined"]) == ["Ethernet19"], res
    assert fab.on_switch("Ethernet19")["Ethernet19"][:2] == ("access", 199)


async def test_quarantined_port_moved_by_hand_is_caught(fab: Fab) -> None:
    await fab.enroll(repair_drift=True)
    await fab.put("Ethernet27", {"mode": "access", "vlan": 150})
    assert (await fab.apply())["applied"] == ["Ethernet27"]
    await fab.put("Ethernet27", {"mode": "access", "vlan": 160})
    await fab.enroll(allowed_vlans="100-150,199", repair_drift=True)
    assert list((await fab.apply())["quarantined"]) == ["Ethernet27"]
    conn = fab.lab.connect()
    try:
        conn.enable()
        conn.send_config_set(["interface Ethernet27", "switchport access vlan 150"])
    finally:
        conn.disconnect()
    _, drift = await fab.call("POST", "/v1/switches/leaf1/drift")
    assert drift["drifted"] == {"Ethernet27": {"expected": "access 199", "observed": "access 150"}}
    assert list((await fab.apply())["quarantined"]) == ["Ethernet27"]
    assert fab.on_switch("Ethernet27")["Ethernet27"][:2] == ("access", 199)


async def test_re_enrolled_at_a_new_address_everything_is_applied_again(tmp_path: Path) -> None:
    """A replaced switch (new address) has none of what was applied: every port is pending
    again and goes to the new one."""
    with lab_switch("arista_eos", tmp_path, count=2) as lab:
        async for f in _fab(tmp_path, lab, loop=False):
            await f.enroll()
            await f.put("Ethernet3", {"mode": "access", "vlan": 140})
            assert (await f.apply())["applied"] == ["Ethernet3"]
            await f.enroll(port=lab.port + 1)
            assert (await f.bindings())["Ethernet3"]["status"] == "pending"
            assert (await f.apply())["applied"] == ["Ethernet3"]
            conn = lab.connect(index=1)
            try:
                conn.enable()
                out = str(conn.send_command("show running-config interfaces Ethernet3"))
            finally:
                conn.disconnect()
            assert EOS.parse_ports(out)["Ethernet3"].vlan == 140
