"""Every dialect, end to end through the netmiko transport on its lab switch: VLAN creation,
access moves, back to quarantine, trunks, read-back equal to what was asked, a session dropped
mid-batch that converges on retry with no port left in a wrong VLAN, and injection refused
before a byte is sent. The lab switches are checked against netmiko's own drivers in
tests/test_lab_switch*.py; this file checks our render/parse/transport against the lab."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from drivers.switch.base import (
    ChangeSet,
    LldpNeighbor,
    Policy,
    PortChange,
    PortMode,
    PortState,
    SwitchError,
    SwitchTarget,
    VlanChange,
)
from drivers.switch.netmiko_driver import NetmikoDriver
from provisiond.errors import ValidationError
from tests.support.labswitch import ALL_DIALECTS, LabSwitch, lab_switch
from tests.support.listener import Listener

POLICY = Policy.parse("100-199")
QUARANTINE = 199


@pytest.fixture(scope="module", params=ALL_DIALECTS)
def lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabSwitch]:
    tmp = tmp_path_factory.mktemp(request.param)
    with lab_switch(request.param, tmp, "--lldp", str(tmp / "lldp.json")) as sw:
        yield sw


@pytest.fixture
async def driver() -> object:
    drv = NetmikoDriver({"read_timeout": 10, "connect_tries": 2})
    yield drv
    await drv.close()


def _vlan_of(state: PortState) -> int | None:
    return state.vlan if state.mode is PortMode.ACCESS else None


async def test_create_move_trunk_quarantine_read_back(
    lab: LabSwitch, driver: NetmikoDriver
) -> None:
    lab.set_faults()
    target = lab.target()
    p1, p2, p3 = lab.port_name(1), lab.port_name(2), lab.port_name(3)
    res = await driver.apply(
        target,
        ChangeSet(
            vlans=(VlanChange(150, "tenant-a"), VlanChange(160), VlanChange(QUARANTINE)),
            ports=(
                PortChange(p1, PortMode.ACCESS, vlan=150),
                PortChange(p2, PortMode.ACCESS, vlan=150),
                PortChange(p3, PortMode.TRUNK, native_vlan=150, allowed_vlans=(150, 160)),
            ),
        ),
        POLICY,
        read_back=[p1, p2, p3],
    )
    got = await driver.read_ports(target, [p1, p2, p3])
    assert res.ports == got  # read in the apply's own session, after the save
    assert (got[p1].mode, got[p1].vlan) == (PortMode.ACCESS, 150), got[p1]
    assert (got[p2].mode, got[p2].vlan) == (PortMode.ACCESS, 150), got[p2]
    assert got[p3].mode is PortMode.TRUNK, got[p3]
    assert got[p3].native_vlan == 150 and set(got[p3].allowed_vlans) == {150, 160}, got[p3]
    vlans = await driver.read_vlans(target)
    assert {150, 160, QUARANTINE} <= set(vlans), vlans

    # back to quarantine: the trunk becomes an access port carrying nothing else
    await driver.apply(
        target,
        ChangeSet(
            ports=(
                PortChange(p1, PortMode.ACCESS, vlan=QUARANTINE),
                PortChange(p3, PortMode.ACCESS, vlan=QUARANTINE),
            )
        ),
        POLICY,
    )
    got = await driver.read_ports(target, [p1, p2, p3])
    assert _vlan_of(got[p1]) == QUARANTINE and _vlan_of(got[p3]) == QUARANTINE, got
    assert got[p3].allowed_vlans in ((), (QUARANTINE,)), got[p3]
    assert _vlan_of(got[p2]) == 150, got[p2]

    # a trunk that shrinks drops what it no longer allows (lists are replaced, never appended)
    await driver.apply(
        target,
        ChangeSet(ports=(PortChange(p2, PortMode.TRUNK, native_vlan=150, allowed_vlans=(160,)),)),
        POLICY,
    )
    await driver.apply(
        target,
        ChangeSet(ports=(PortChange(p2, PortMode.TRUNK, native_vlan=160, allowed_vlans=()),)),
        POLICY,
    )
    got = await driver.read_ports(target, [p2])
    assert got[p2].mode is PortMode.TRUNK and got[p2].native_vlan == 160, got[p2]
    assert set(got[p2].allowed_vlans) == {160}, got[p2]


async def test_session_dropped_mid_batch_converges_on_retry(
    lab: LabSwitch, driver: NetmikoDriver
) -> None:
    target = lab.target()
    ports = [lab.port_name(n) for n in range(10, 14)]
    await driver.apply(target, ChangeSet(vlans=(VlanChange(170), VlanChange(QUARANTINE))), POLICY)
    batch = ChangeSet(ports=tuple(PortChange(p, PortMode.ACCESS, vlan=170) for p in ports))
    lab.set_faults(drop_after=3)
    try:
        with pytest.raises(SwitchError) as err:
            await driver.apply(target, batch, POLICY)
        assert err.value.transient, err.value
    finally:
        lab.set_faults()
    await driver.apply(target, batch, POLICY)  # the same batch again: idempotent
    got = await driver.read_ports(target, ports)
    assert {p: _vlan_of(s) for p, s in got.items()} == dict.fromkeys(ports, 170), got


@pytest.mark.parametrize("bad", ["{p}; reload", "{p}\nreload", "{p} ", "{p}$(reboot)", "{p}|x"])
async def test_injection_refused_before_any_byte(
    lab: LabSwitch, bad: str, listener: Listener
) -> None:
    # the switch's address is a listener that counts connections: nothing may reach it
    target = SwitchTarget("sw", lab.dialect, "127.0.0.1", listener.port, "admin", "not-used")
    drv = NetmikoDriver({"connect_tries": 1})
    try:
        with pytest.raises(ValidationError) as err:
            await drv.apply(
                target,
                ChangeSet(
                    ports=(PortChange(bad.format(p=lab.port_name(1)), PortMode.ACCESS, vlan=150),)
                ),
                POLICY,
            )
        assert err.value.problems[0].where == "ports[0].port"
    finally:
        await drv.close()
    assert listener.accepted == 0


async def test_lldp_neighbours_read_back(lab: LabSwitch, driver: NetmikoDriver) -> None:
    """What the switch hears: two cabled hosts (lldpd defaults: MAC chassis id, MAC port id)
    and a switch uplink (ifname port id, a port description)."""
    p5, p6, p7 = lab.port_name(5), lab.port_name(6), lab.port_name(7)
    (lab.log.parent / "lldp.json").write_text(
        json.dumps(
            {
                "*": {
                    p5: {"chassis_id": "52:54:00:00:05:01", "port_id": "52:54:00:00:05:01",
                         "system_name": "r05n01"},
                    p6: {"chassis_id": "52:54:00:00:06:01", "port_id": "52:54:00:00:06:02",
                         "system_name": "r05n02"},
                    p7: {"chassis_id": "02:1c:73:aa:bb:cc", "port_id": "Ethernet49/1",
                         "port_id_subtype": "ifname", "system_name": "spine1",
                         "port_description": "to leaf"},
                }
            }
        )
    )  # fmt: skip
    got = sorted(await driver.lldp_neighbors(lab.target()), key=lambda n: n.local_port)
    want = [
        LldpNeighbor(p5, "52:54:00:00:05:01", "52:54:00:00:05:01", "r05n01"),
        LldpNeighbor(p6, "52:54:00:00:06:01", "52:54:00:00:06:02", "r05n02"),
        LldpNeighbor(p7, "02:1c:73:aa:bb:cc", "Ethernet49/1", "spine1", "to leaf"),
    ]
    # MACs come back in the platform's own notation: normalised by the dialect to colon form
    assert got == sorted(want, key=lambda n: n.local_port), got


def test_wrong_password_and_auth_fail_refuse_the_login(lab: LabSwitch) -> None:
    """netmiko's own driver: a wrong password is refused, so is every login under auth-fail,
    and the right one works again once the fault is gone."""
    from netmiko.exceptions import NetmikoAuthenticationException

    with pytest.raises(NetmikoAuthenticationException):
        lab.connect(password="not-the-password")
    lab.set_faults(auth_fail=True)
    try:
        with pytest.raises(NetmikoAuthenticationException):
            lab.connect()
    finally:
        lab.set_faults()
    lab.connect().disconnect()
