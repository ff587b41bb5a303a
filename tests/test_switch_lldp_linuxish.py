"""LLDP reading of the lldpd-based dialects (Cumulus NVUE, SONiC): the command each sends, lldpd's
JSON in both its shapes (``-f json0`` and the cleaned ``-f json``: one neighbour an object,
several a list, a chassis keyed by its system name or not), and the error lines of the read.

The fixtures are lldpd's output format (src/client/json_writer.c, display.c's tag order) with
neighbours taken from NVIDIA's and SONiC's documented examples plus hosts, BMCs and a
locally-assigned chassis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drivers.switch.base import LldpNeighbor, SwitchError
from drivers.switch.dialects.cumulus_nvue import CumulusNvueDialect
from drivers.switch.dialects.lldpd import parse_lldpctl_json
from drivers.switch.dialects.sonic import SonicDialect

FIXTURES = Path(__file__).parent / "fixtures" / "switch"
NVUE = CumulusNvueDialect()
SONIC = SonicDialect()


def fixture(dialect: str, name: str) -> str:
    return (FIXTURES / dialect / name).read_text()


CUMULUS_NEIGHBOURS = [
    LldpNeighbor("eth0", "48:b0:2d:00:00:01", "swp10", "oob-mgmt-switch", "swp10"),
    LldpNeighbor("swp1", "48:b0:2d:76:ee:8e", "48:b0:2d:76:ee:8e", "r05n01.example.net", "eno1"),
    # the BMC sharing the host's port: no system name, no port description
    LldpNeighbor("swp1", "48:b0:2d:76:ee:90", "48:b0:2d:76:ee:90", None, None),
    LldpNeighbor("swp2", "r05n02", "enp65s0f0", "r05n02", "enp65s0f0"),  # chassis id "local"
    LldpNeighbor("swp51", "44:38:39:22:01:82", "swp1", "spine01", "swp1"),
]

SONIC_NEIGHBOURS = [
    LldpNeighbor("eth0", "00:01:e8:81:e3:45", "GigabitEthernet 0/2", "swtor-b2lab2-1610"),
    LldpNeighbor("Ethernet0", "5c:25:73:10:0a:01", "5c:25:73:10:0a:02", "r07n01", "ens2f0np0"),
    LldpNeighbor("Ethernet0", "bmc-r07n01", "1", None, None),  # a BMC: locally assigned ids
    LldpNeighbor(
        "Ethernet112", "4c:76:25:e5:e6:c0", "hundredGigE1/2", "T1-1", "T0-2:hundredGigE1/29"
    ),
    LldpNeighbor(
        "Ethernet116", "4c:76:25:e7:f0:c0", "hundredGigE1/2", "T1-2", "T0-2:hundredGigE1/30"
    ),
]


def test_commands() -> None:
    # lldpd's regular JSON, through sudo that fails instead of prompting
    assert NVUE.show_lldp_command() == ["sudo -n lldpctl -f json0"]
    assert SONIC.show_lldp_command() == ["sudo -n lldpctl -f json0"]


def test_cumulus_json0() -> None:
    out = fixture("cumulus_nvue", "lldpctl_json0.txt")
    assert NVUE.errors(out) == []
    assert NVUE.parse_lldp(out) == CUMULUS_NEIGHBOURS


def test_sonic_json0_and_json_read_alike() -> None:
    json0 = fixture("sonic", "lldpctl_json0.txt")
    cleaned = fixture("sonic", "lldpctl_json.txt")
    assert isinstance(json.loads(json0)["lldp"], list)
    assert isinstance(json.loads(cleaned)["lldp"]["interface"], list)  # one-key objects
    for out in (json0, cleaned):
        assert SONIC.errors(out) == []
        assert SONIC.parse_lldp(out) == SONIC_NEIGHBOURS


def test_json_one_neighbour_is_an_object() -> None:
    out = fixture("sonic", "lldpctl_json_one.txt")
    assert isinstance(json.loads(out)["lldp"]["interface"], dict)
    assert SONIC.parse_lldp(out) == [SONIC_NEIGHBOURS[3]]


def test_no_neighbours() -> None:
    assert SONIC.parse_lldp(fixture("sonic", "lldpctl_json_none.txt")) == []
    assert NVUE.parse_lldp('{\n  "lldp": [\n    {\n      \n    }\n  ]\n}\n\n') == []


def test_json0_across_a_stray_line_and_crlf() -> None:
    """What a session may leave around the document (a PTY's CRLF, a line before it)."""
    lines = fixture("cumulus_nvue", "lldpctl_json0.txt").split("\n")
    out = "\r\n".join(["Last login: never", *lines])
    assert NVUE.parse_lldp(out) == CUMULUS_NEIGHBOURS


def test_mac_notations_normalised() -> None:
    """Ids are compared in one notation: a MAC an id carries in another one (a neighbour sending
    a locally-assigned id that is a MAC, uppercase) comes back lowercase with colons."""
    doc = {
        "lldp": {
            "interface": {
                "swp3": {
                    "chassis": {"id": {"type": "local", "value": "5254.0000.0301"}},
                    "port": {"id": {"type": "local", "value": "52-54-00-00-03-02"}},
                }
            }
        }
    }
    assert parse_lldpctl_json(json.dumps(doc)) == [
        LldpNeighbor("swp3", "52:54:00:00:03:01", "52:54:00:00:03:02", None, None)
    ]


def test_a_system_name_of_two_words_and_missing_parts() -> None:
    """json: a chassis keyed by a name with spaces; an entry without port or chassis parts
    gives None for them rather than failing the read."""
    chassis = {"core sw 1": {"id": {"type": "mac", "value": "02:00:00:00:00:04"}}}
    doc = {"lldp": {"interface": [{"swp4": {"chassis": chassis}}, {"swp5": {"via": "LLDP"}}]}}
    assert parse_lldpctl_json(json.dumps(doc)) == [
        LldpNeighbor("swp4", "02:00:00:00:00:04", None, "core sw 1", None),
        LldpNeighbor("swp5", None, None, None, None),
    ]


@pytest.mark.parametrize("out", ["", "\n", "lldpctl: command output mangled", '{"other": 1}', "[]"])
def test_unreadable_output_is_an_error(out: str) -> None:
    """Output that is not lldpctl's JSON is not "no neighbours"."""
    for d in (NVUE, SONIC):
        with pytest.raises(SwitchError):
            d.parse_lldp(out)


@pytest.mark.parametrize(
    "line",
    [
        # lldpctl without access to lldpd's control socket (src/log.c; colour on a terminal)
        "2025-03-01T10:00:00 [WARN/control] unable to connect to socket /run/lldpd.socket: "
        "Permission denied",
        "2025-03-01T10:00:00 \x1b[1;33m[WARN/control]\x1b[0m unable to connect to socket "
        "/run/lldpd.socket: Permission denied",
        '2025-03-01T10:00:00 [WARN/lldpctl] unknown output format "jsn"',
        "sudo: a password is required",
        "sudo: lldpctl: command not found",
    ],
)
def test_read_errors_both(line: str) -> None:
    for d in (NVUE, SONIC):
        assert d.errors(f"{line}\n") == [line.strip()], (d.name, line)


@pytest.mark.parametrize(
    "line",
    [
        # SONiC's lldpctl is `docker exec lldp lldpctl`: a login without the docker group, a
        # switch whose lldp container is not running
        "permission denied while trying to connect to the Docker daemon socket at "
        'unix:///var/run/docker.sock: Post "http://%2Fvar%2Frun%2Fdocker.sock/v1.43/containers/'
        'lldp/exec": dial unix /var/run/docker.sock: connect: permission denied',
        "Got permission denied while trying to connect to the Docker daemon socket at "
        "unix:///var/run/docker.sock: ...",
        "Error response from daemon: Container 3f0c1e0e is not running",
        "Error response from daemon: No such container: lldp",
    ],
)
def test_read_errors_sonic_docker(line: str) -> None:
    assert SONIC.errors(f"{line}\n") == [line.strip()]


def test_neighbour_texts_quoting_errors_are_not_errors() -> None:
    """A neighbour's system description or port description may say anything: inside the JSON
    it is never at the start of a line."""
    hostile = [
        "Error: x",
        "Invalid cable",
        "Usage: y",
        "-bash: z",
        "sudo: w",
        "[WARN/control] v",
        "permission denied while trying to connect to the Docker daemon",
        "bad: command not found",
    ]
    for d, dialect in ((NVUE, "cumulus_nvue"), (SONIC, "sonic")):
        out = fixture(dialect, "lldpctl_json0.txt")
        for text in hostile:
            doctored = out.replace('"value": "eno1"', f'"value": {json.dumps(text)}').replace(
                '"value": "ens2f0np0"', f'"value": {json.dumps(text)}'
            )
            assert doctored != out
            assert d.errors(doctored) == [], (d.name, text)


def test_nvue_configuration_descriptions_are_not_errors() -> None:
    """The same for NVUE's configuration read back (``nv config show -o json``)."""
    out = fixture("cumulus_nvue", "config_show.txt")
    assert NVUE.errors(out) == []
    for text in ("Invalid cable", "Error: see ticket", "Config invalid at rack 5"):
        doc = json.loads(out)
        doc[1]["set"]["interface"]["swp1"]["description"] = text
        assert NVUE.errors(json.dumps(doc, indent=2)) == [], text
