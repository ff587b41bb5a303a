"""The netmiko transport. Injection attempts are refused before any connection is made (a TCP
listener counts connection attempts); the rest runs against the lab switches (tests of the lab
itself, with netmiko's drivers, are in tests/test_lab_switch.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivers.switch.base import (
    ChangeSet,
    Policy,
    PortChange,
    PortMode,
    SwitchError,
    SwitchTarget,
    VlanChange,
)
from drivers.switch.netmiko_driver import NetmikoDriver
from provisiond.errors import ValidationError
from tests.support.labswitch import lab_switch
from tests.support.listener import Listener

EOS, NVUE = "arista_eos", "cumulus_nvue"


@pytest.mark.parametrize(
    ("driver", "port"),
    [
        ("arista_eos", "Ethernet1; reload"),
        ("arista_eos", "Ethernet1\nreload"),
        ("cumulus_nvue", "swp1 && reboot"),
        ("junos", "ge-0/0/1\ncommit"),
        ("sonic", "Ethernet0$(reboot)"),
    ],
)
async def test_injection_is_refused_before_any_connection(
    listener: Listener, driver: str, port: str
) -> None:
    target = SwitchTarget("sw1", driver, "127.0.0.1", listener.port, "admin", "admin")
    drv = NetmikoDriver({"connect_tries": 1})
    try:
        with pytest.raises(ValidationError) as err:
            await drv.apply(
                target,
                ChangeSet(ports=(PortChange(port, PortMode.ACCESS, vlan=100),)),
                Policy.parse("100-199"),
            )
        assert err.value.problems[0].where == "ports[0].port"
        with pytest.raises(ValidationError):  # outside the allow-list: refused the same way
            await drv.apply(
                target,
                ChangeSet(ports=(PortChange("Ethernet1", PortMode.ACCESS, vlan=300),)),
                Policy.parse("100-199"),
            )
    finally:
        await drv.close()
    assert listener.accepted == 0


# --------------------------------------------------------------------------- on the lab switches


def _target(sw: Any) -> SwitchTarget:
    return SwitchTarget("sw", sw.dialect, "127.0.0.1", sw.port, sw.username, sw.password)


@pytest.mark.parametrize("name", [EOS, NVUE])
async def test_batch_applied_in_one_session_reads_back_as_desired(
    name: str, tmp_path: Path
) -> None:
    prefix = "Ethernet" if name == EOS else "swp"
    with lab_switch(name, tmp_path) as sw:
        drv = NetmikoDriver({"read_timeout": 20})
        try:
            target = _target(sw)
            changes = ChangeSet(
                vlans=(VlanChange(150, "tenant-a"),),
                ports=(
                    PortChange(f"{prefix}1", PortMode.ACCESS, vlan=150),
                    PortChange(f"{prefix}2", PortMode.ACCESS, vlan=150),
                    PortChange(f"{prefix}3", PortMode.TRUNK, native_vlan=150,
                               allowed_vlans=(150, 160)),
                ),
            )  # fmt: skip
            await drv.apply(target, ChangeSet(vlans=(VlanChange(160),)), Policy.parse("100-199"))
            await drv.apply(target, changes, Policy.parse("100-199"))
            got = await drv.read_ports(target, [f"{prefix}1", f"{prefix}2", f"{prefix}3"])
            assert got[f"{prefix}1"].mode is PortMode.ACCESS and got[f"{prefix}1"].vlan == 150
            assert got[f"{prefix}2"].vlan == 150
            assert got[f"{prefix}3"].mode is PortMode.TRUNK
            assert got[f"{prefix}3"].native_vlan == 150
            assert set(got[f"{prefix}3"].allowed_vlans) == {150, 160}
            # back to quarantine
            await drv.apply(
                target,
                ChangeSet(ports=(PortChange(f"{prefix}1", PortMode.ACCESS, vlan=199),)),
                Policy.parse("100-199"),
            )
            assert (await drv.read_ports(target, [f"{prefix}1"]))[f"{prefix}1"].vlan == 199
            assert 150 in await drv.read_vlans(target)
        finally:
            await drv.close()


async def test_refused_command_is_named_and_wrong_login_is_not_retried(tmp_path: Path) -> None:
    with lab_switch(EOS, tmp_path) as sw:
        drv = NetmikoDriver({"read_timeout": 20, "connect_tries": 3})
        try:
            target = _target(sw)
            with pytest.raises(SwitchError) as err:  # EOS L2 MTU tops out at 9214
                await drv.apply(target, ChangeSet(ports=(PortChange("Ethernet5", mtu=9216),)))
            assert err.value.command == "mtu 9216" and not err.value.transient
            bad = SwitchTarget("sw", EOS, "127.0.0.1", sw.port, sw.username, "wrong")
            with pytest.raises(SwitchError, match="login refused") as err:
                await drv.apply(bad, ChangeSet(ports=(PortChange("Ethernet5", mtu=9000),)))
            assert not err.value.transient
        finally:
            await drv.close()


async def test_session_dropped_mid_batch_converges_on_retry(tmp_path: Path) -> None:
    with lab_switch(EOS, tmp_path) as sw:
        drv = NetmikoDriver({"read_timeout": 3})
        try:
            target = _target(sw)
            batch = ChangeSet(
                vlans=(VlanChange(170),),
                ports=tuple(
                    PortChange(f"Ethernet{i}", PortMode.ACCESS, vlan=170) for i in range(10, 14)
                ),
            )
            sw.set_faults(drop_after=3)
            with pytest.raises(SwitchError) as err:
                await drv.apply(target, batch)
            assert err.value.transient  # the engine/reconciler retries it
            sw.set_faults()
            await drv.apply(target, batch)  # the same batch again: idempotent
            got = await drv.read_ports(target, [f"Ethernet{i}" for i in range(10, 14)])
            assert {p.vlan for p in got.values()} == {170}, got
        finally:
            await drv.close()


async def test_locked_configuration_fails_the_save_transient(tmp_path: Path) -> None:
    with lab_switch(NVUE, tmp_path) as sw:
        drv = NetmikoDriver({"read_timeout": 20, "save_tries": 2, "save_retry_delay": 0})
        try:
            sw.set_faults(config_locked=True)
            with pytest.raises(SwitchError) as err:
                await drv.apply(
                    _target(sw), ChangeSet(ports=(PortChange("swp7", PortMode.ACCESS, vlan=1),))
                )
            assert err.value.command is not None and "nv config" in err.value.command
            assert "locked" in err.value.message and err.value.transient
            sw.set_faults()
            await drv.apply(  # unlocked: the same change goes through
                _target(sw), ChangeSet(ports=(PortChange("swp7", PortMode.ACCESS, vlan=1),))
            )
        finally:
            await drv.close()
