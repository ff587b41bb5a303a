"""The ibsim harness against the real OpenSM: partitions.conf in, P_Key tables and SA path
records out, and a SIGHUP applying a rewritten file. Needs the Debian packages ibsim-utils,
opensm, infiniband-diags and libumad2sim0: skipped locally without them, failed under CI."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.support import ibsim
from tests.support.ibsim import Subnet, ibsim_subnet
from tests.support.peers import missing

FULL = 0x8000
GUIDS = ibsim.host_guids(6)


def partitions(groups: Mapping[int, Mapping[str, str]]) -> str:
    """partitions.conf: the default partition, then one line per P_Key with {host: membership}."""
    lines = ["Default=0x7fff,ipoib : ALL=limited, SELF=full ;"]
    for pkey, members in groups.items():
        ports = ", ".join(f"{GUIDS[host]}={kind}" for host, kind in members.items())
        lines.append(f"p{pkey:04x}=0x{pkey:04x} : {ports} ;")
    return "\n".join(lines) + "\n"


SPLIT_12_34 = partitions(
    {
        0x0101: {"h1": "full", "h2": "full", "h5": "limited"},
        0x0102: {"h3": "full", "h4": "full"},
    }
)
SPLIT_13_24 = partitions(
    {
        0x0101: {"h1": "full", "h3": "full"},
        0x0102: {"h2": "full", "h4": "full"},
    }
)


@pytest.fixture
def subnet(tmp_path: Path) -> Iterator[Subnet]:
    why = ibsim.available()
    if why is not None:
        missing(why)
    with ibsim_subnet(tmp_path, hosts=6, partitions=SPLIT_12_34) as fabric:
        yield fabric


def test_available_names_the_debian_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ibsim, "tool", lambda name: None)
    monkeypatch.setattr(ibsim, "umad2sim_library", lambda: None)
    why = ibsim.available()
    assert why is not None
    for package in ("ibsim-utils", "opensm", "infiniband-diags", "libumad2sim0"):
        assert package in why


def test_topology_has_known_guids() -> None:
    assert GUIDS["sm"] == "0x0002c90300010001"
    assert GUIDS["h1"] == "0x0002c90300010101"
    assert GUIDS["h6"] == "0x0002c90300010601"
    text = ibsim.topology(6, switches=2)
    assert "caguid=0x0002c90300010100" in text  # node GUID of h1; its port 1 is +1
    assert '"sw2"' in text


def test_partitions_reach_the_port_tables(subnet: Subnet) -> None:
    lids = subnet.lids()
    assert lids["sm"] == 1
    assert set(lids) == set(GUIDS)
    h1 = subnet.pkeys(GUIDS["h1"])
    assert 0x0101 | FULL in h1
    assert 0x0102 | FULL not in h1 and 0x0102 not in h1
    assert 0x7FFF in h1  # limited member of the default partition
    assert subnet.pkeys(GUIDS["h3"]) == {0x7FFF, 0x0102 | FULL}
    assert subnet.pkeys(GUIDS["h5"]) == {0x7FFF, 0x0101}  # limited: no 0x8000 bit
    assert subnet.pkeys(GUIDS["h6"]) == {0x7FFF}
    assert subnet.pkeys(GUIDS["sm"]) == {0x7FFF | FULL}  # SELF=full


def test_path_records_prove_isolation(subnet: Subnet) -> None:
    assert subnet.path_pkeys(GUIDS["h1"], GUIDS["h2"]) == {0x0101 | FULL}
    assert not subnet.path_exists(GUIDS["h1"], GUIDS["h3"])
    assert subnet.path_exists(GUIDS["h3"], GUIDS["h4"])
    # a limited member reaches the full members of its partition, never another limited one
    assert subnet.path_exists(GUIDS["h5"], GUIDS["h1"])
    assert not subnet.path_exists(GUIDS["h5"], GUIDS["h6"])
    # the SA answers only a requester sharing a partition with both ends
    assert not subnet.path_exists(GUIDS["h3"], GUIDS["h4"], requester="h1")
    assert subnet.path_exists(GUIDS["h3"], GUIDS["h4"], requester="sm")


def test_sighup_applies_a_rewritten_file(subnet: Subnet) -> None:
    assert subnet.opensm is not None
    assert subnet.pid_file.read_text().strip() == str(subnet.opensm.pid)
    subnet.write_partitions(SPLIT_13_24)
    seconds = subnet.resweep(timeout=5.0)
    assert seconds < 5.0
    assert subnet.sweeps() == 2
    # SUBNET UP of the heavy sweep comes after the tables are written: no polling needed
    assert subnet.pkeys(GUIDS["h1"]) == {0x7FFF, 0x0101 | FULL}
    assert subnet.pkeys(GUIDS["h2"]) == {0x7FFF, 0x0102 | FULL}
    assert subnet.wait_pkeys(GUIDS["h3"], lambda keys: 0x0101 | FULL in keys, timeout=2.0) == {
        0x7FFF,
        0x0101 | FULL,
    }
    assert subnet.pkeys(GUIDS["h5"]) == {0x7FFF}  # dropped from 0x0101
    assert subnet.path_exists(GUIDS["h1"], GUIDS["h3"])
    assert not subnet.path_exists(GUIDS["h1"], GUIDS["h2"])
    assert subnet.path_exists(GUIDS["h2"], GUIDS["h4"])
    assert "SUBNET UP" in subnet.log_text()
