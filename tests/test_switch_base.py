"""The switch contract's own rules: VLAN allow-lists, and the check every batch passes before a
byte is sent (ranges, allow-lists, the dialect's port grammar, plain text only)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

import pytest

from drivers.switch.base import (
    ChangeSet,
    Dialect,
    LldpNeighbor,
    Policy,
    PortChange,
    PortMode,
    PortState,
    VlanChange,
    VlanState,
    check,
    format_vlan_ranges,
    parse_vlan_ranges,
)
from provisiond.errors import ValidationError


class Toy(Dialect):
    """A dialect with a strict port grammar, for the contract's checks only."""

    name = "toy"
    netmiko_device_type = "linux"
    port_pattern: ClassVar[re.Pattern[str]] = re.compile(r"swp[0-9]{1,3}")
    error_patterns = (re.compile(r"^Error:"),)

    def render(self, changes: ChangeSet) -> list[str]:
        return []

    def save_commands(self) -> list[str]:
        return []

    def show_ports_command(self, ports: Sequence[str]) -> list[str]:
        return []

    def parse_ports(self, output: str) -> dict[str, PortState]:
        return {}

    def show_vlans_command(self) -> str:
        return ""

    def parse_vlans(self, output: str) -> dict[int, VlanState]:
        return {}

    def show_lldp_command(self) -> list[str]:
        return []

    def parse_lldp(self, output: str) -> list[LldpNeighbor]:
        return []


POLICY = Policy.parse("100-199,300", r"swp([1-9]|[1-3][0-9]|4[0-8])")


def test_vlan_ranges_round_trip_and_errors() -> None:
    assert parse_vlan_ranges("100-102, 300,") == {100, 101, 102, 300}
    assert format_vlan_ranges({300, 100, 101, 102, 5}) == "5,100-102,300"
    for bad, why in (("0-5", "1-4094"), ("200-100", "low to high"), ("10x", "not a VLAN")):
        with pytest.raises(ValueError, match=why):
            parse_vlan_ranges(bad)
    with pytest.raises(ValueError, match="not a regex"):
        Policy.parse("100", "swp(")


def test_a_good_batch_passes() -> None:
    check(
        ChangeSet(
            vlans=(VlanChange(150, "tenant-a"),),
            ports=(
                PortChange("swp1", PortMode.ACCESS, vlan=150, description="r01n01 eno1"),
                PortChange("swp2", PortMode.TRUNK, native_vlan=100, allowed_vlans=(150, 300)),
            ),
        ),
        POLICY,
        Toy(),
    )


@pytest.mark.parametrize(
    ("change", "field", "why"),
    [
        (PortChange("swp1; reboot", PortMode.ACCESS, vlan=150), "ports[0].port", "port name"),
        (PortChange("swp1\nreboot", PortMode.ACCESS, vlan=150), "ports[0].port", "port name"),
        (PortChange("swp1 ", PortMode.ACCESS, vlan=150), "ports[0].port", "port name"),
        (PortChange("swp49", PortMode.ACCESS, vlan=150), "ports[0].port", "allowed ports"),
        (PortChange("swp1", PortMode.ACCESS, vlan=200), "ports[0].vlan", "allow-list"),
        (PortChange("swp1", PortMode.ACCESS, vlan=5000), "ports[0].vlan", "1-4094"),
        (PortChange("swp1", PortMode.ACCESS), "ports[0].vlan", "needs a VLAN"),
        (PortChange("swp1", PortMode.TRUNK), "ports[0].allowed_vlans", "trunk needs"),
        (PortChange("swp1", PortMode.TRUNK, allowed_vlans=(150, 1)), "ports[0].allowed_vlans",
         "allow-list"),
        (PortChange("swp1", mtu=20000), "ports[0].mtu", "576-9216"),
        (PortChange("swp1", description="x\nexit\nreload"), "ports[0].description", "only"),
        (PortChange("swp1", description='a"b'), "ports[0].description", "only"),
    ],
)  # fmt: skip
def test_bad_changes_are_refused_with_where_and_why(
    change: PortChange, field: str, why: str
) -> None:
    with pytest.raises(ValidationError) as err:
        check(ChangeSet(ports=(change,)), POLICY, Toy())
    problems = {p.where: p.message for p in err.value.problems}
    assert field in problems and why in problems[field], problems


def test_every_problem_of_a_batch_is_listed_and_vlan_names_are_plain() -> None:
    with pytest.raises(ValidationError) as err:
        check(
            ChangeSet(
                vlans=(VlanChange(150, "a b; x"), VlanChange(4095)),
                ports=(PortChange("swp1", PortMode.ACCESS, vlan=150),) * 2,
            ),
            POLICY,
            Toy(),
        )
    wheres = sorted(p.where for p in err.value.problems)
    assert wheres == ["ports[1].port", "vlans[0].name", "vlans[1].vlan"], wheres


def test_errors_finds_vendor_error_lines() -> None:
    assert Toy().errors("ok\nError: no such vlan\n  fine") == ["Error: no such vlan"]


def test_every_contract_dialect_is_registered() -> None:
    from drivers.switch.dialects import DIALECTS, dialect

    assert sorted(DIALECTS) == [
        "arista_eos", "cisco_nxos", "comware", "cumulus_nvue", "dell_os10", "junos", "sonic",
    ]  # fmt: skip
    assert dialect("junos").retry_patterns
    with pytest.raises(KeyError, match="known: arista_eos"):
        dialect("ios")
