"""Dell OS10's render with the ports' current state (``needs_current``): OS10 only adds to or
removes from a trunk's tagged list, so replacing it, or turning a trunk back into an access
port, needs what the port carries now. The current state here comes from parse_ports on
recorded-format ``show running-configuration interface`` text, as the transport gets it."""

from __future__ import annotations

from drivers.switch.base import ChangeSet, PortChange, PortMode, PortState
from drivers.switch.dialects.dell_os10 import DellOs10Dialect

OS10 = DellOs10Dialect()
P = "ethernet1/1/7"

# the port as `show running-configuration interface ethernet 1/1/7` prints it: a trunk whose
# untagged VLAN is 10 and whose tagged VLANs are 20, 21, 30
TRUNK_TEXT = """!
interface ethernet1/1/7
 no shutdown
 switchport mode trunk
 switchport access vlan 10
 switchport trunk allowed vlan 20-21,30
 flowcontrol receive on
"""
ACCESS_TEXT = """!
interface ethernet1/1/7
 no shutdown
 switchport access vlan 10
 flowcontrol receive on
"""


def trunk_now() -> dict[str, PortState]:
    now = OS10.parse_ports(TRUNK_TEXT)
    assert now[P] == PortState(
        P, PortMode.TRUNK, native_vlan=10, allowed_vlans=(10, 20, 21, 30), shutdown=False
    )
    return now


def render(change: PortChange, current: dict[str, PortState] | None) -> list[str]:
    return OS10.render(ChangeSet(ports=(change,)), current)


def test_os10_declares_it_needs_the_current_ports() -> None:
    assert OS10.needs_current is True


def test_trunk_list_is_replaced_extras_removed_first() -> None:
    change = PortChange(P, PortMode.TRUNK, native_vlan=10, allowed_vlans=(20, 22))
    assert render(change, trunk_now()) == [
        f"interface {P}",
        "switchport mode trunk",
        "no switchport trunk allowed vlan 21,30",
        "switchport access vlan 10",
        "switchport trunk allowed vlan 20,22",
        "exit",
    ]


def test_a_tagged_vlan_becoming_untagged_is_removed_before_the_untagged_change() -> None:
    # 20 was tagged and becomes the untagged VLAN; 10 was untagged and becomes tagged
    change = PortChange(P, PortMode.TRUNK, native_vlan=20, allowed_vlans=(10,))
    assert render(change, trunk_now()) == [
        f"interface {P}",
        "switchport mode trunk",
        "no switchport trunk allowed vlan 20-21,30",
        "switchport access vlan 20",
        "switchport trunk allowed vlan 10",
        "exit",
    ]


def test_trunk_shrinks_to_its_untagged_vlan_only() -> None:
    change = PortChange(P, PortMode.TRUNK, native_vlan=10)
    assert render(change, trunk_now()) == [
        f"interface {P}",
        "switchport mode trunk",
        "no switchport trunk allowed vlan 20-21,30",
        "switchport access vlan 10",
        "exit",
    ]


def test_allowed_list_alone_keeps_the_untagged_vlan_untagged() -> None:
    # no mode and no native given: the list is still replaced, and the port's untagged VLAN
    # (10, read from the switch) is not sent as a tagged one
    change = PortChange(P, allowed_vlans=(10, 30, 40))
    assert render(change, trunk_now()) == [
        f"interface {P}",
        "no switchport trunk allowed vlan 20-21",
        "switchport trunk allowed vlan 30,40",
        "exit",
    ]


def test_trunk_back_to_access_drops_every_tagged_vlan_before_the_mode_change() -> None:
    change = PortChange(P, PortMode.ACCESS, vlan=199)
    assert render(change, trunk_now()) == [
        f"interface {P}",
        "no switchport trunk allowed vlan 20-21,30",
        "switchport mode access",
        "switchport access vlan 199",
        "exit",
    ]


def test_access_port_needs_no_cleanup() -> None:
    now = OS10.parse_ports(ACCESS_TEXT)
    assert now[P] == PortState(P, PortMode.ACCESS, vlan=10, shutdown=False)
    change = PortChange(P, PortMode.ACCESS, vlan=199)
    assert (
        render(change, now)
        == render(change, None)
        == [
            f"interface {P}",
            "switchport mode access",
            "switchport access vlan 199",
            "exit",
        ]
    )
    # an access port turning into a trunk has nothing tagged to remove
    trunk = PortChange(P, PortMode.TRUNK, native_vlan=10, allowed_vlans=(20,))
    assert render(trunk, now) == [
        f"interface {P}",
        "switchport mode trunk",
        "switchport access vlan 10",
        "switchport trunk allowed vlan 20",
        "exit",
    ]


def test_without_current_the_render_only_adds() -> None:
    """The fallback when the state is unknown (current None, or a port the read did not return):
    what OS10 can do without knowing the list, which leaves extras for the read-back to show."""
    change = PortChange(P, PortMode.TRUNK, native_vlan=10, allowed_vlans=(20, 22))
    expected = [
        f"interface {P}",
        "switchport mode trunk",
        "switchport access vlan 10",
        "switchport trunk allowed vlan 20,22",
        "exit",
    ]
    assert render(change, None) == expected
    assert render(change, {}) == expected
    access = PortChange(P, PortMode.ACCESS, vlan=199)
    assert "no switchport trunk allowed vlan" not in " ".join(render(access, None))


def test_other_settings_unchanged_by_current() -> None:
    change = PortChange(P, shutdown=False, mtu=9216, description="node-017 eth0")
    assert render(change, trunk_now()) == [
        f"interface {P}",
        "no shutdown",
        "mtu 9216",
        'description "node-017 eth0"',
        "exit",
    ]
    assert render(PortChange(P, description="uplink"), None)[1] == "description uplink"
    assert render(PortChange(P, description=""), None)[1] == "no description"


def test_quoted_description_reads_back_unquoted() -> None:
    text = '!\ninterface ethernet1/1/7\n description "node-017 eth0"\n no shutdown\n'
    assert OS10.parse_ports(text)[P].description == "node-017 eth0"


def test_locked_save_is_an_error_and_retried() -> None:
    out = "% Error: Configuration is locked by another session.\n"
    assert OS10.errors(out) == ["% Error: Configuration is locked by another session."]
    assert any(p.search(out) for p in OS10.retry_patterns)
    assert not any(p.search("% Error: Illegal parameter.") for p in OS10.retry_patterns)
