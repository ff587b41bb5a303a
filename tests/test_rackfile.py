"""Rack files: parsing YAML/JSON/CSV and validating them, with every problem located."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provisiond import rackfile
from provisiond.errors import FieldProblem, ValidationError
from provisiond.rackfile import (
    CSV_COLUMNS,
    RackFile,
    detect_format,
    normalise_guid,
    normalise_mac,
    parse,
    parse_csv,
    parse_json,
    parse_yaml,
    validate,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# Line numbers in the comments are what the tests assert against; edit with care.
BASE = """\
rack: r01
height: 42
nodes:
  - name: n01
    unit: 1
    bmc: {driver: ipmi, address: 10.0.0.1, username: admin, password: s3cret}
    nics:
      - {kind: ethernet, mac: "52:54:00:00:00:01", pxe: true}
      - {kind: infiniband, guid: "0x0002c90300000001"}
  - name: n02
    unit: 2
    bmc: {driver: ipmi, address: 10.0.0.2, username: admin, password: s3cret}
    nics:
      - {kind: ethernet, mac: "52:54:00:00:00:02", pxe: true}
      - {kind: infiniband, guid: "0x0002c90300000002"}
"""
# line:  1 rack, 2 height, 3 nodes, 4 n01, 5 unit, 6 bmc, 7 nics, 8 eth, 9 ib,
#       10 n02, 11 unit, 12 bmc, 13 nics, 14 eth, 15 ib

CSV_HEADER = ",".join(CSV_COLUMNS) + "\n"
CSV_BASE = CSV_HEADER + (
    "r02,n1,1,,redfish,10.0.0.1,443,root,calvin,,,ethernet,52:54:00:00:02:01,,true,leaf2,Eth1\n"
    ",n1,,,,,,,,,,infiniband,,0x0002c90300002001,,,\n"
    "r02,n2,2,,redfish,10.0.0.2,443,root,calvin,,,ethernet,52:54:00:00:02:02,,true,leaf2,Eth2\n"
    ",n2,,,,,,,,,,infiniband,,0x0002c90300002002,,,\n"
)


def edit(text: str, old: str, new: str, count: int = 1) -> str:
    assert text.count(old) >= count, f"{old!r} not in the text"
    return text.replace(old, new, count)


def check(text: str, fmt: str = "yaml", **kw) -> RackFile:
    return validate(parse(text, fmt), **kw)  # type: ignore[arg-type]


def problems(text: str, fmt: str = "yaml", **kw) -> list[FieldProblem]:
    with pytest.raises(ValidationError) as info:
        check(text, fmt, **kw)
    assert info.value.problems, "a ValidationError must say what is wrong"
    return info.value.problems


def one(text: str, fmt: str = "yaml", **kw) -> FieldProblem:
    found = problems(text, fmt, **kw)
    assert len(found) == 1, found
    return found[0]


# ----------------------------------------------------------------------------- valid files


def test_base_file_is_valid():
    rack = check(BASE)
    assert rack.rack == "r01"
    assert rack.height == 42
    assert [n.name for n in rack.nodes] == ["n01", "n02"]
    n01 = rack.nodes[0]
    assert n01.unit == 1 and n01.height == 1
    assert n01.bmc.driver == "ipmi"
    assert n01.bmc.address == "10.0.0.1"
    assert n01.bmc.username == "admin"
    assert n01.bmc.password == "s3cret"
    assert n01.boot_mode == "uefi" and n01.arch == "x86_64"
    assert [(n.kind, n.mac, n.guid, n.pxe) for n in n01.nics] == [
        ("ethernet", "52:54:00:00:00:01", None, True),
        ("infiniband", None, "0x0002c90300000001", False),
    ]


def test_password_is_not_in_the_repr():
    assert "s3cret" not in repr(check(BASE))


def test_example_yaml_validates_cleanly():
    text = (EXAMPLES / "rack-r01.yaml").read_text(encoding="utf-8")
    rack = check(text, rack_name="r01")
    assert rack.rack == "r01"
    assert rack.location == "hall A, row 3"
    assert len(rack.nodes) == 8
    assert [n.unit for n in rack.nodes] == list(range(1, 9))
    assert all(n.bmc.driver == "ipmi" and n.bmc.password for n in rack.nodes)
    assert all(len(n.nics) == 2 and n.nics[0].pxe for n in rack.nodes)
    assert rack.nodes[7].nics[1].guid == "0x0002c90300001008"
    assert rack.nodes[0].nics[0].switch == "leaf1" and rack.nodes[0].nics[0].port == "swp1"
    (leaf,) = rack.switches
    assert (leaf.name, leaf.driver, leaf.quarantine_vlan) == ("leaf1", "cumulus_nvue", 199)


def test_example_csv_validates_cleanly():
    text = (EXAMPLES / "rack-r02.csv").read_text(encoding="utf-8")
    rack = check(text, "csv", rack_name="r02")
    assert rack.rack == "r02"
    assert [n.name for n in rack.nodes] == ["r02n01", "r02n02", "r02n03", "r02n04"]
    for i, node in enumerate(rack.nodes, start=1):
        assert node.unit == i
        assert node.bmc.driver == "redfish"
        assert (node.bmc.address, node.bmc.port) == ("http://127.0.0.1:8000", None)
        assert node.bmc.system_id == f"r02n{i:02d}"
        assert (node.bmc.username, node.bmc.password) == ("root", "calvin")
        eth, ib = node.nics
        assert (eth.kind, eth.mac, eth.pxe, eth.switch, eth.port) == (
            "ethernet",
            f"52:54:00:00:02:{i:02d}",
            True,
            "leaf2",
            f"Ethernet{i}",
        )
        assert (ib.kind, ib.guid, ib.pxe) == ("infiniband", f"0x0002c9030000200{i}", False)


def test_same_rack_as_json_validates_to_the_same_plan():
    as_json = json.dumps(parse_yaml(BASE).data, indent=2)
    assert check(as_json, "json") == check(BASE)


def test_empty_node_list_is_valid():
    assert check("rack: r01\nnodes: []\n").nodes == []


# ----------------------------------------------------------------------------- MACs


@pytest.mark.parametrize(
    "raw",
    [
        "52:54:00:ab:cd:ef",
        "52-54-00-ab-cd-ef",
        "52:54:00:AB:CD:EF",
        "52-54-00-AB-CD-EF",
        "5254.00ab.cdef",  # Cisco dotted form
        "5254.00AB.CDEF",
        "  52:54:00:ab:cd:ef  ",
    ],
)
def test_mac_normalisation(raw: str):
    assert normalise_mac(raw) == "52:54:00:ab:cd:ef"


@pytest.mark.parametrize(
    "raw",
    ["52-54-00-AB-CD-EF", "5254.00ab.cdef", "52:54:00:AB:CD:EF"],
)
def test_mac_is_stored_normalised(raw: str):
    rack = check(edit(BASE, "52:54:00:00:00:01", raw))
    assert rack.nodes[0].nics[0].mac == "52:54:00:ab:cd:ef"


@pytest.mark.parametrize(
    "raw",
    [
        "52:54:00:00:00:0g",  # not hex
        "52:54:00:00:01",  # five pairs
        "52:54:00:00:00:01:02",  # seven pairs
        "52:54-00:00:00:01",  # mixed separators
        "525400000001",  # no separators
        "5254.0000.01",  # short dotted
        "52.54.00.00.00.01",
        "",
    ],
)
def test_malformed_mac(raw: str):
    p = one(edit(BASE, "52:54:00:00:00:01", raw))
    assert p.where == "nodes[0].nics[0].mac"
    assert p.line == 8
    assert p.row == "n01"
    assert "not a MAC address" in p.message
    assert "52:54:00:12:34:56" in p.message  # shows what a MAC looks like
    assert p.value == raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("01:00:5e:00:00:01", "multicast"),  # IPv4 multicast
        ("33:33:00:00:00:01", "multicast"),  # IPv6 multicast
        ("ff:ff:ff:ff:ff:ff", "multicast"),  # broadcast
        ("53:54:00:00:00:01", "multicast"),  # low bit of the first octet
        ("0300.0000.0001", "multicast"),
        ("00:00:00:00:00:00", "all-zero"),
    ],
)
def test_multicast_and_zero_macs_rejected(raw: str, reason: str):
    with pytest.raises(ValueError, match=reason):
        normalise_mac(raw)
    p = one(edit(BASE, "52:54:00:00:00:01", raw))
    assert p.where == "nodes[0].nics[0].mac"
    assert p.line == 8
    assert reason in p.message


def test_unquoted_mac_guid_and_words_keep_their_text():
    # YAML 1.1 would read 52:54:00:00:00:01 as a base-60 integer, 0x... as hex, `no` as False;
    # rack files use YAML 1.2 core scalars so an unquoted MAC or GUID is taken as written.
    text = (
        edit(BASE, '"52:54:00:00:00:01"', "52:54:00:00:00:01")
        .replace('"0x0002c90300000002"', "0x0002c90300000002")
        .replace("name: n01", "name: no")
    )
    rack = rackfile.validate(rackfile.parse(text, "yaml"))
    assert rack.nodes[0].name == "no"
    assert rack.nodes[0].nics[0].mac == "52:54:00:00:00:01"
    assert rack.nodes[1].nics[1].guid == "0x0002c90300000002"


def test_yaml_aliases_are_refused():
    with pytest.raises(ValidationError) as info:
        rackfile.parse("a: &x [1]\nb: *x\n", "yaml")
    assert "aliases" in info.value.problems[0].message
    assert info.value.problems[0].line == 2


def test_one_error_does_not_hide_another_in_the_same_node():
    text = edit(BASE, '"52:54:00:00:00:02"', '"52:54:00:00:00:zz"').replace("unit: 2", "unit: 99")
    found = problems(text)
    where = {p.where for p in found}
    assert {"nodes[1].nics[0].mac", "nodes[1].unit"} <= where


def test_duplicate_mac_across_nodes():
    p = one(edit(BASE, "52:54:00:00:00:02", "52:54:00:00:00:01"))
    assert p.where == "nodes[1].nics[0].mac"
    assert p.line == 14
    assert p.row == "n02"
    assert p.message == "MAC also on node n01"
    assert p.value == "52:54:00:00:00:01"


def test_duplicate_mac_is_found_across_notations():
    p = one(edit(BASE, "52:54:00:00:00:02", "5254.0000.0001"))
    assert p.where == "nodes[1].nics[0].mac"
    assert p.message == "MAC also on node n01"
    assert p.value == "52:54:00:00:00:01"


# ----------------------------------------------------------------------------- GUIDs


@pytest.mark.parametrize(
    "raw",
    [
        "0x0002c90300000001",
        "0x0002C90300000001",
        "0002c90300000001",
        "0002C90300000001",
        "00:02:c9:03:00:00:00:01",
        " 0x0002c90300000001 ",
    ],
)
def test_guid_normalisation(raw: str):
    assert normalise_guid(raw) == "0x0002c90300000001"


def test_guid_is_stored_normalised():
    rack = check(edit(BASE, "0x0002c90300000001", "00:02:C9:03:00:00:00:01"))
    assert rack.nodes[0].nics[1].guid == "0x0002c90300000001"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("0x0002c9030000001", "not an InfiniBand port GUID"),  # 15 digits
        ("0x0002c903000000012", "not an InfiniBand port GUID"),  # 17 digits
        ("0x0002c9030000000g", "not an InfiniBand port GUID"),
        ("52:54:00:00:00:01", "not an InfiniBand port GUID"),  # a MAC in the guid field
        ("0x0000000000000000", "all-zero"),
    ],
)
def test_bad_guid(raw: str, reason: str):
    with pytest.raises(ValueError, match=reason):
        normalise_guid(raw)
    p = one(edit(BASE, "0x0002c90300000001", raw))
    assert p.where == "nodes[0].nics[1].guid"
    assert p.line == 9
    assert reason in p.message
    assert p.value == raw


def test_duplicate_guid_across_nodes():
    p = one(edit(BASE, "0x0002c90300000002", "0x0002C90300000001"))
    assert p.where == "nodes[1].nics[1].guid"
    assert p.line == 15
    assert p.row == "n02"
    assert p.message == "GUID also on node n01"
    assert p.value == "0x0002c90300000001"


# ----------------------------------------------------------------------------- units


def test_unit_outside_the_rack():
    p = one(edit(BASE, "unit: 2", "unit: 43"))
    assert p.where == "nodes[1].unit"
    assert p.line == 11
    assert p.row == "n02"
    assert p.message == "unit 43 does not exist in rack r01, which has units 1-42"
    assert p.value == 43


def test_tall_node_sticking_out_of_the_top_of_the_rack():
    text = edit(BASE, "unit: 2", "unit: 42\n    height: 2")
    p = one(text)
    assert p.where == "nodes[1].unit"
    assert p.line == 11
    assert p.message == "unit 42 (height 2) does not exist in rack r01, which has units 1-42"


def test_unit_outside_a_short_rack():
    p = one(edit(edit(BASE, "height: 42", "height: 4"), "unit: 2", "unit: 5"))
    assert p.where == "nodes[1].unit"
    assert "units 1-4" in p.message


def test_unit_zero():
    p = one(edit(BASE, "unit: 1", "unit: 0"))
    assert p.where == "nodes[0].unit"
    assert p.line == 5
    assert "greater than or equal to 1" in p.message
    assert p.value == 0


def test_two_nodes_in_one_unit():
    p = one(edit(BASE, "unit: 2", "unit: 1"))
    assert p.where == "nodes[1].unit"
    assert p.line == 11
    assert p.row == "n02"
    assert p.message == "unit 1 is already taken by node n01"
    assert p.value == 1


def test_tall_node_overlapping_the_next_one():
    p = one(edit(BASE, "unit: 1", "unit: 1\n    height: 2"))
    assert p.where == "nodes[1].unit"
    assert p.line == 12  # one line further down: the height line was added above
    assert p.message == "unit 2 is already taken by node n01"


def test_tall_nodes_that_fit_are_fine():
    rack = check(edit(BASE, "unit: 2", "unit: 40\n    height: 3"))
    assert rack.nodes[1].height == 3


# ----------------------------------------------------------------------------- BMC


@pytest.mark.parametrize("driver", ["ipmi", "redfish"])
@pytest.mark.parametrize("cred", ["username", "password"])
def test_missing_bmc_credentials(driver: str, cred: str):
    text = edit(BASE, "driver: ipmi", f"driver: {driver}")
    text = edit(
        text,
        "username: admin, password: s3cret}",
        {
            "username": "password: s3cret}",
            "password": "username: admin}",
        }[cred],
    )
    p = one(text)
    assert p.where == f"nodes[0].bmc.{cred}"
    assert p.line == 6
    assert p.row == "n01"
    assert p.message == f"missing: {driver} BMCs need credentials"
    assert p.value is None


def test_missing_both_credentials_reports_both():
    found = problems(edit(BASE, ", username: admin, password: s3cret}", "}"))
    assert [(p.where, p.line) for p in found] == [
        ("nodes[0].bmc.password", 6),
        ("nodes[0].bmc.username", 6),
    ]


def test_driver_without_login_needs_no_credentials():
    text = edit(
        BASE,
        "driver: ipmi, address: 10.0.0.1, username: admin, password: s3cret",
        "driver: fake, address: 10.0.0.1",
    )
    assert check(text).nodes[0].bmc.username is None


def test_missing_bmc():
    text = edit(
        BASE, "    bmc: {driver: ipmi, address: 10.0.0.1, username: admin, password: s3cret}\n", ""
    )
    p = one(text)
    assert p.where == "nodes[0].bmc"
    assert p.line == 4  # the node's own line
    assert p.message == "Field required"


@pytest.mark.parametrize(
    ("address", "stored"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("BMC-01.Example.org", "bmc-01.example.org"),
        ('"fe80:0:0:0:0:0:0:1"', "fe80::1"),
    ],
)
def test_bmc_address_normalised(address: str, stored: str):
    rack = check(edit(BASE, "address: 10.0.0.1", f"address: {address}"))
    assert rack.nodes[0].bmc.address == stored


def test_bad_bmc_address():
    p = one(edit(BASE, "address: 10.0.0.1", "address: bmc_01!"))
    assert p.where == "nodes[0].bmc.address"
    assert p.line == 6
    assert p.message == "not an IP address, host name or http(s) URL"
    assert p.value == "bmc_01!"


def test_same_bmc_on_two_nodes():
    p = one(edit(BASE, "address: 10.0.0.2", "address: 10.0.0.1"))
    assert p.where == "nodes[1].bmc.address"
    assert p.line == 12
    assert p.message == "same BMC as node n01"


def test_bad_bmc_port():
    p = one(edit(BASE, "address: 10.0.0.1,", "address: 10.0.0.1, port: 70000,"))
    assert p.where == "nodes[0].bmc.port"
    assert p.line == 6
    assert "less than or equal to 65535" in p.message
    assert p.value == 70000


# ----------------------------------------------------------------------------- passwords


SECRET = "hunter2-Xq9"


def assert_secret_hidden(err: ValidationError) -> None:
    assert SECRET not in str(err)
    for p in err.problems:
        assert p.value is None or SECRET not in str(p.value)
        assert SECRET not in p.message
        assert SECRET not in str(p)
        assert SECRET not in json.dumps(p.as_dict(), default=str)


def test_password_of_the_wrong_type_is_not_echoed():
    with pytest.raises(ValidationError) as info:
        check(edit(BASE, "password: s3cret}", "password: 123456}"))
    p = info.value.problems[0]
    assert p.where == "nodes[0].bmc.password"
    assert p.line == 6
    assert "valid string" in p.message
    assert p.value is None
    assert "123456" not in str(info.value)


def test_too_long_password_is_not_echoed():
    long = SECRET * 100
    with pytest.raises(ValidationError) as info:
        check(edit(BASE, "password: s3cret}", f"password: {long}}}"))
    (p,) = info.value.problems
    assert p.where == "nodes[0].bmc.password"
    assert "at most 1024" in p.message
    assert p.value is None
    assert_secret_hidden(info.value)


@pytest.mark.parametrize("key", ["passwd", "pass", "Password", "bmc_password"])
def test_misspelt_password_key_is_not_echoed(key: str):
    with pytest.raises(ValidationError) as info:
        check(edit(BASE, "password: s3cret}", f"password: s3cret, {key}: {SECRET}}}"))
    (p,) = info.value.problems
    assert p.where == f"nodes[0].bmc.{key}"
    assert p.message == "Extra inputs are not permitted"
    assert p.value is None
    assert_secret_hidden(info.value)


def test_other_field_values_are_still_echoed():
    p = one(edit(BASE, "unit: 1", 'unit: "one"'))
    assert p.value == "one"


def test_csv_conflicting_passwords_are_not_echoed():
    text = CSV_HEADER + (
        f"r02,n1,1,,ipmi,10.0.0.1,,root,{SECRET},,,ethernet,52:54:00:00:02:01,,true,,\n"
        ",n1,,,,,,,hunter3-other,,,infiniband,,0x0002c90300002001,,,\n"
    )
    with pytest.raises(ValidationError) as info:
        parse_csv(text)
    (p,) = info.value.problems
    assert p.where == "bmc_password"
    assert p.line == 3
    assert p.row == "n1"
    assert "differs from the node's first row" in p.message
    assert p.value is None
    assert "hunter3-other" not in str(info.value)
    assert_secret_hidden(info.value)


# ----------------------------------------------------------------------------- types and shapes


@pytest.mark.parametrize("unit", ['"two"', "two", "1.5", "true", "[1]"])
def test_unit_of_the_wrong_type(unit: str):
    p = one(edit(BASE, "unit: 1", f"unit: {unit}"))
    assert p.where == "nodes[0].unit"
    assert p.line == 5
    assert p.row == "n01"
    assert "valid integer" in p.message


def test_unit_as_a_quoted_number_is_still_a_string():
    # strict: "2" in quotes is text, not a number; the operator should drop the quotes
    p = one(edit(BASE, "unit: 1", 'unit: "1"'))
    assert p.where == "nodes[0].unit"
    assert p.value == "1"


def test_nodes_as_a_string():
    p = one("rack: r01\nheight: 42\nnodes: n01, n02\n")
    assert p.where == "nodes"
    assert p.line == 3
    assert p.message == "must be a list of nodes"


def test_nodes_as_a_mapping():
    p = one("rack: r01\nnodes:\n  n01: {unit: 1}\n")
    assert p.where == "nodes"
    assert p.line == 3
    assert p.message == "must be a list of nodes"


def test_nodes_missing():
    p = one("rack: r01\nheight: 42\n")
    assert p.where == "nodes"
    assert p.line == 1  # nowhere better to point than the top of the file
    assert p.message == "missing"


def test_top_level_is_a_list():
    with pytest.raises(ValidationError) as info:
        check("- name: n01\n  unit: 1\n- name: n02\n  unit: 2\n")
    (p,) = info.value.problems
    assert p.where == "(file)"
    assert p.line == 1
    assert p.message == "top level is a list"
    assert "must be a mapping with 'rack' and 'nodes'" in info.value.message


def test_top_level_is_a_scalar():
    with pytest.raises(ValidationError) as info:
        check("just some text\n")
    assert info.value.problems[0].message == "top level is a str"


def test_node_is_not_a_mapping():
    p = one(edit(BASE, "  - name: n02\n", "  - n02\n  - name: n02\n"))
    assert p.where == "nodes[1]"
    assert p.line == 10
    assert p.row is None


def test_rack_missing():
    p = one(edit(BASE, "rack: r01\n", ""))
    assert p.where == "rack"
    assert p.message == "Field required"


def test_rack_missing_but_given_by_the_caller():
    assert check(edit(BASE, "rack: r01\n", ""), rack_name="r07").rack == "r07"


@pytest.mark.parametrize(
    ("name", "where", "line"),
    [
        ("bad name", "nodes[0].name", 4),
        ("-n01", "nodes[0].name", 4),
        ("x" * 64, "nodes[0].name", 4),
    ],
)
def test_bad_node_name(name: str, where: str, line: int):
    p = one(edit(BASE, "name: n01", f"name: {name}"))
    assert (p.where, p.line) == (where, line)
    assert "should match pattern" in p.message


def test_duplicate_node_name():
    p = one(edit(BASE, "name: n02", "name: n01"))
    assert p.where == "nodes[1].name"
    assert p.line == 10
    assert p.message == "node name also used by nodes[0]"


def test_bad_rack_name_and_height():
    found = problems(edit(edit(BASE, "rack: r01", "rack: r 01"), "height: 42", "height: 65"))
    assert [(p.where, p.line) for p in found] == [("rack", 1), ("height", 2)]
    assert "less than or equal to 64" in found[1].message


@pytest.mark.parametrize(
    ("nic", "message"),
    [
        ("{kind: ethernet, pxe: true}", "an ethernet NIC needs a mac"),
        (
            '{kind: ethernet, mac: "52:54:00:00:00:01", guid: "0x0002c90300000009"}',
            "an ethernet NIC has no guid",
        ),
        ("{kind: infiniband}", "an infiniband NIC needs a guid (the port GUID)"),
        (
            '{kind: infiniband, guid: "0x0002c90300000009", pxe: true}',
            "pxe boot is set on an ethernet NIC, not an infiniband port",
        ),
        (
            '{kind: ethernet, mac: "52:54:00:00:00:01", switch: leaf1}',
            "switch and port go together: give both or neither",
        ),
    ],
)
def test_nic_shape(nic: str, message: str):
    text = edit(BASE, '{kind: ethernet, mac: "52:54:00:00:00:01", pxe: true}', nic)
    p = one(text)
    assert p.where == "nodes[0].nics[0]"
    assert p.line == 8
    assert p.message == message


def test_unknown_nic_kind():
    p = one(edit(BASE, "kind: ethernet", "kind: eth"))
    assert p.where == "nodes[0].nics[0].kind"
    assert p.line == 8
    assert "'ethernet' or 'infiniband'" in p.message
    assert p.value == "eth"


def test_two_pxe_nics():
    text = edit(
        BASE,
        '{kind: infiniband, guid: "0x0002c90300000001"}',
        '{kind: ethernet, mac: "52:54:00:00:00:09", pxe: true}',
    )
    p = one(text)
    assert p.where == "nodes[0]"
    assert p.line == 4
    assert "more than one NIC has pxe: true" in p.message


# ----------------------------------------------------------------------------- unknown fields


@pytest.mark.parametrize(
    ("old", "new", "where", "line"),
    [
        ("height: 42", "height: 42\ncolour: red", "colour", 3),
        ("unit: 1", "unit: 1\n    hostname: n01.example", "nodes[0].hostname", 6),
        ("unit: 1", "unit: 1\n    mac: 52:54:00:00:00:09", "nodes[0].mac", 6),
        ("password: s3cret}", "password: s3cret, protocol: lanplus}", "nodes[0].bmc.protocol", 6),
        ("pxe: true}", "pxe: true, vlan: 5}", "nodes[0].nics[0].vlan", 8),
        ("unit: 1", "units: 1", "nodes[0].units", 5),  # a typo: both unknown and missing
    ],
)
def test_unknown_fields(old: str, new: str, where: str, line: int):
    found = problems(edit(BASE, old, new))
    extra = [p for p in found if p.message == "Extra inputs are not permitted"]
    assert [(p.where, p.line) for p in extra] == [(where, line)]


def test_typo_in_unit_also_reports_the_missing_field():
    found = problems(edit(BASE, "unit: 1", "units: 1"))
    assert {(p.where, p.message) for p in found} == {
        ("nodes[0].units", "Extra inputs are not permitted"),
        ("nodes[0].unit", "Field required"),
    }


# ----------------------------------------------------------------------------- YAML syntax


def test_duplicate_yaml_key_in_a_node():
    text = edit(BASE, "    unit: 2\n", "    unit: 2\n    unit: 3\n")
    with pytest.raises(ValidationError) as info:
        parse_yaml(text)
    assert info.value.message == "rack file has a duplicate key"
    (p,) = info.value.problems
    assert p.where == "nodes[1].unit"
    assert p.line == 12  # the second occurrence
    assert p.message == "key appears twice in one mapping"


def test_duplicate_yaml_key_at_top_level():
    with pytest.raises(ValidationError) as info:
        parse_yaml("rack: r01\nnodes: []\nrack: r02\n")
    (p,) = info.value.problems
    assert (p.where, p.line) == ("rack", 3)


def test_duplicate_yaml_key_in_a_flow_mapping():
    with pytest.raises(ValidationError) as info:
        parse_yaml(edit(BASE, "password: s3cret}", "password: s3cret, driver: redfish}"))
    (p,) = info.value.problems
    assert (p.where, p.line) == ("nodes[0].bmc.driver", 6)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        # an unclosed flow mapping: noticed where the next node starts
        (
            "rack: r1\nnodes:\n  - name: a\n    unit: 1\n    bmc: {driver: ipmi\n  - name: b\n",
            6,
            "expected ',' or '}'",
        ),
        # wrong indentation
        ("rack: r1\nnodes:\n  - name: a\n    unit: 1\n   bmc: 1\n", 5, "expected"),
        # a tab for indentation
        ("rack: r1\nnodes:\n\t- name: a\n", 3, "tab characters cannot indent YAML"),
        # an unterminated quote
        ('rack: r1\nnodes:\n  - name: "a\n', 4, "end of stream"),
    ],
)
def test_invalid_yaml_syntax_reports_the_line(text: str, line: int, message: str):
    with pytest.raises(ValidationError) as info:
        parse_yaml(text)
    assert info.value.message == "rack file is not valid YAML"
    (p,) = info.value.problems
    assert p.where == "(file)"
    assert p.line == line
    assert message in p.message


def test_control_character_reports_the_line():
    with pytest.raises(ValidationError) as info:
        parse_yaml("rack: r01\nlocation: hall A\x07\nnodes: []\n")
    assert info.value.message == "rack file is not valid YAML"
    (p,) = info.value.problems
    assert p.where == "(file)"
    assert p.line == 2
    assert "#x0007" in p.message


def test_yaml_document_without_content():
    p = one("---\n")
    assert (p.where, p.line) == ("(file)", 1)


def test_two_yaml_documents():
    with pytest.raises(ValidationError) as info:
        parse_yaml("rack: r01\nnodes: []\n---\nrack: r02\nnodes: []\n")
    (p,) = info.value.problems
    assert p.line == 3


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_yaml(text: str):
    with pytest.raises(ValidationError) as info:
        parse_yaml(text)
    assert info.value.message == "rack file is empty"


# ----------------------------------------------------------------------------- JSON


def json_rack(**node_changes) -> dict:
    data = parse_yaml(BASE).data
    data["nodes"][1].update(node_changes)
    return data


def line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


def test_json_field_errors_carry_line_numbers():
    data = json_rack(unit="two")
    data["nodes"][0]["nics"][0]["mac"] = "zz:54:00:00:00:01"
    text = json.dumps(data, indent=2)
    found = problems(text, "json")
    assert [(p.where, p.line) for p in found] == [
        ("nodes[0].nics[0].mac", line_of(text, "zz:54")),
        ("nodes[1].unit", line_of(text, '"two"')),
    ]
    assert found[1].row == "n02"


def test_json_cross_check_errors_carry_line_numbers():
    text = json.dumps(json_rack(unit=1), indent=2)
    p = one(text, "json")
    assert p.where == "nodes[1].unit"
    units = [n for n, line in enumerate(text.splitlines(), 1) if '"unit": 1' in line]
    assert p.line == units[1]  # the second node's unit line, not the first's
    assert p.message == "unit 1 is already taken by node n01"


def test_json_missing_field_points_at_the_node():
    data = json_rack()
    del data["nodes"][1]["bmc"]
    text = json.dumps(data, indent=2)
    p = one(text, "json")
    assert p.where == "nodes[1].bmc"
    lines = text.splitlines()
    assert lines[p.line - 1].strip() == "{"  # the node's opening brace
    assert '"name": "n02"' in lines[p.line]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('{"rack": "r01",\n "nodes": [\n  {"name": "a", "unit": 1,}\n]}', 3),  # trailing comma
        ("{'rack': 'r01'}", 1),  # single quotes
        ('{"rack": "r01",\n "nodes": [\n', 3),  # cut short
        ('{"rack": "r01"\n "nodes": []}', 2),  # missing comma
    ],
)
def test_invalid_json_reports_the_line(text: str, line: int):
    with pytest.raises(ValidationError) as info:
        parse_json(text)
    assert info.value.message == "rack file is not valid JSON"
    (p,) = info.value.problems
    assert p.where == "(file)"
    assert p.line == line
    assert p.message


def test_json_duplicate_key():
    with pytest.raises(ValidationError) as info:
        parse_json('{"rack": "r01", "nodes": [], "rack": "r02"}')
    assert "duplicate key 'rack'" in info.value.problems[0].message


def test_json_top_level_list():
    p = one('[{"name": "n01"}]', "json")
    assert (p.where, p.line, p.message) == ("(file)", 1, "top level is a list")


def test_json_with_tabs_still_validates():
    # YAML's composer (used for line numbers) rejects some tab layouts; parsing must not fail.
    text = json.dumps(parse_yaml(BASE).data, indent="\t")
    assert check(text, "json") == check(BASE)


# ----------------------------------------------------------------------------- CSV


def test_csv_continuation_rows_add_nics():
    rack = check(CSV_BASE, "csv")
    assert rack.rack == "r02"
    assert [n.name for n in rack.nodes] == ["n1", "n2"]
    n1 = rack.nodes[0]
    assert (n1.unit, n1.bmc.driver, n1.bmc.port, n1.bmc.username) == (1, "redfish", 443, "root")
    assert [(n.kind, n.mac, n.guid, n.pxe) for n in n1.nics] == [
        ("ethernet", "52:54:00:00:02:01", None, True),
        ("infiniband", None, "0x0002c90300002001", False),
    ]


def test_csv_continuation_rows_may_repeat_node_columns():
    text = edit(CSV_BASE, ",n1,,,,,,,,,,", "r02,n1,1,,redfish,10.0.0.1,443,root,calvin,,,")
    assert check(text, "csv") == check(CSV_BASE, "csv")


def test_csv_rows_of_one_node_need_not_be_adjacent():
    lines = CSV_BASE.splitlines(keepends=True)
    text = lines[0] + lines[1] + lines[3] + lines[2] + lines[4]
    rack = check(text, "csv")
    assert [len(n.nics) for n in rack.nodes] == [2, 2]


def test_csv_blank_rows_are_skipped():
    text = CSV_BASE.replace("\n,n1,", "\n" + "," * (len(CSV_COLUMNS) - 1) + "\n,n1,", 1)
    assert len(check(text, "csv").nodes[0].nics) == 2


def test_csv_node_without_nics():
    text = CSV_HEADER + "r02,n1,1,,fake,10.0.0.1,,,,,,,,,,,\n"
    assert check(text, "csv").nodes[0].nics == []


def test_csv_columns_in_any_order_and_only_the_needed_ones():
    text = "name,unit,bmc_address,bmc_driver,rack\nn1,3,10.0.0.1,fake,r02\n"
    rack = check(text, "csv")
    assert (rack.rack, rack.nodes[0].unit, rack.nodes[0].bmc.address) == ("r02", 3, "10.0.0.1")


def test_csv_header_whitespace_is_ignored():
    text = " name , unit ,bmc_driver,bmc_address\nn1,1,fake,10.0.0.1\n"
    assert check(text, "csv", rack_name="r02").nodes[0].unit == 1


def test_csv_unknown_column():
    text = CSV_HEADER.replace("pxe", "boot_nic").replace(",port", ",colour") + "x\n"
    with pytest.raises(ValidationError) as info:
        parse_csv(text)
    assert info.value.message == "rack CSV header is wrong"
    (p,) = info.value.problems
    assert p.where == "(header)"
    assert p.line == 1
    assert p.message.startswith("unknown column(s) boot_nic, colour; known: rack, name, unit")


def test_csv_missing_name_column():
    with pytest.raises(ValidationError) as info:
        parse_csv("rack,unit\nr02,1\n")
    (p,) = info.value.problems
    assert (p.where, p.line, p.message) == ("(header)", 1, "missing column 'name'")


@pytest.mark.parametrize(
    ("column", "first", "later", "shown"),
    [
        ("unit", "1", "2", "(1)"),
        ("bmc_address", "10.0.0.1", "10.0.0.9", "('10.0.0.1')"),
        ("bmc_username", "root", "admin", "('root')"),
    ],
)
def test_csv_conflicting_node_columns(column: str, first: str, later: str, shown: str):
    idx = CSV_COLUMNS.index(column)
    cells = [""] * len(CSV_COLUMNS)
    cells[CSV_COLUMNS.index("name")] = "n1"
    cells[idx] = later
    cells[CSV_COLUMNS.index("nic_kind")] = "infiniband"
    cells[CSV_COLUMNS.index("guid")] = "0x0002c90300002001"
    text = CSV_HEADER + (
        "r02,n1,1,,ipmi,10.0.0.1,,root,pw,,,ethernet,52:54:00:00:02:01,,true,,\n"
        + ",".join(cells)
        + "\n"
    )
    with pytest.raises(ValidationError) as info:
        parse_csv(text)
    (p,) = info.value.problems
    assert p.where == column
    assert p.line == 3
    assert p.row == "n1"
    assert p.message == f"differs from the node's first row {shown}"
    assert p.value == later
    assert first in p.message


def test_csv_field_errors_carry_row_line_numbers():
    text = edit(CSV_BASE, "0x0002c90300002002", "0x0002c9030000200")
    p = one(text, "csv")
    assert p.where == "nodes[1].nics[1].guid"
    assert p.line == 5
    assert p.row == "n2"


def test_csv_duplicate_mac_reports_the_later_row():
    text = edit(CSV_BASE, "52:54:00:00:02:02", "52-54-00-00-02-01")
    p = one(text, "csv")
    assert p.where == "nodes[1].nics[0].mac"
    assert p.line == 4
    assert p.message == "MAC also on node n1"


def test_csv_unit_clash_reports_the_later_row():
    text = edit(CSV_BASE, "r02,n2,2,", "r02,n2,1,")
    p = one(text, "csv")
    assert (p.where, p.line, p.message) == (
        "nodes[1].unit",
        4,
        "unit 1 is already taken by node n1",
    )


def test_csv_missing_credentials():
    text = edit(CSV_BASE, "443,root,calvin", "443,,calvin")
    p = one(text, "csv")
    assert (p.where, p.line) == ("nodes[0].bmc.username", 2)
    assert p.message == "missing: redfish BMCs need credentials"


def test_csv_unit_not_a_number():
    with pytest.raises(ValidationError) as info:
        parse_csv(edit(CSV_BASE, "r02,n2,2,", "r02,n2,two,"))
    (p,) = info.value.problems
    assert (p.where, p.line, p.row) == ("nodes[1].unit", 4, "n2")
    assert p.message == "must be a whole number"


@pytest.mark.parametrize("value", ["yes", "Y", "1", "TRUE"])
def test_csv_pxe_true_spellings(value: str):
    rack = check(edit(CSV_BASE, ",true,leaf2,Eth1", f",{value},leaf2,Eth1"), "csv")
    assert rack.nodes[0].nics[0].pxe is True


def test_csv_pxe_must_be_a_boolean():
    with pytest.raises(ValidationError) as info:
        parse_csv(edit(CSV_BASE, ",true,leaf2,Eth1", ",maybe,leaf2,Eth1"))
    (p,) = info.value.problems
    assert (p.where, p.line, p.row, p.value) == ("pxe", 2, "n1", "maybe")
    assert p.message == "must be true or false"


def test_csv_too_many_cells():
    with pytest.raises(ValidationError) as info:
        parse_csv(CSV_BASE + "r02,n3,3" + "," * len(CSV_COLUMNS) + "extra\n")
    (p,) = info.value.problems
    assert (p.where, p.line, p.message) == ("(row)", 6, "more cells than columns")


def test_csv_empty_node_name():
    with pytest.raises(ValidationError) as info:
        parse_csv(edit(CSV_BASE, ",n1,,", ",,,"))
    (p,) = info.value.problems
    assert (p.where, p.line, p.message) == ("name", 3, "empty node name")


def test_csv_more_than_one_rack():
    with pytest.raises(ValidationError) as info:
        parse_csv(edit(CSV_BASE, "r02,n2,", "r03,n2,"))
    (p,) = info.value.problems
    assert p.where == "rack"
    assert p.message == "one rack per file; found r02, r03"


def test_csv_without_rack_column_takes_the_rack_from_the_caller():
    text = "name,unit,bmc_driver,bmc_address\nn1,1,fake,10.0.0.1\n"
    assert check(text, "csv", rack_name="r09").rack == "r09"
    p = one(text, "csv")
    assert (p.where, p.message) == ("rack", "Field required")


def test_csv_quoted_cells():
    text = '"name","unit","bmc_driver","bmc_address"\n"n1","1","fake","10.0.0.1"\n'
    assert check(text, "csv", rack_name="r02").nodes[0].name == "n1"


# ----------------------------------------------------------------------------- rack name


def test_rack_name_mismatch():
    p = one(BASE, rack_name="r02")
    assert p.where == "rack"
    assert p.line == 1
    assert p.value == "r01"
    assert p.message == "file describes rack 'r01' but was sent to rack 'r02'"


def test_rack_name_mismatch_in_csv():
    p = one(CSV_BASE, "csv", rack_name="r01")
    assert (p.where, p.line, p.value) == ("rack", 2, "r02")
    assert "'r02'" in p.message and "'r01'" in p.message


def test_matching_rack_name_is_fine():
    assert check(BASE, rack_name="r01").rack == "r01"


# ----------------------------------------------------------------------------- reporting


def test_every_problem_is_reported_sorted_by_line():
    text = edit(BASE, "unit: 2", "unit: 99")
    text = edit(text, "52:54:00:00:00:01", "nope")
    text = edit(text, "10.0.0.2, username: admin, password: s3cret}", "10.0.0.2, username: admin}")
    with pytest.raises(ValidationError) as info:
        check(text)
    found = info.value.problems
    assert info.value.message == "rack file has 3 error(s)"
    assert [(p.where, p.line) for p in found] == [
        ("nodes[0].nics[0].mac", 8),
        ("nodes[1].unit", 11),
        ("nodes[1].bmc.password", 12),
    ]
    assert [p.line for p in found] == sorted(p.line for p in found)


def test_problem_text_names_line_node_field_and_value():
    p = one(edit(BASE, "unit: 2", "unit: 43"))
    assert str(p) == (
        "line 11: nodes[1].unit (node n02): "
        "unit 43 does not exist in rack r01, which has units 1-42 (got 43)"
    )
    assert p.as_dict() == {
        "field": "nodes[1].unit",
        "message": "unit 43 does not exist in rack r01, which has units 1-42",
        "line": 11,
        "row": "n02",
        "value": 43,
    }


def test_validation_error_text_lists_every_problem():
    with pytest.raises(ValidationError) as info:
        check(edit(BASE, "unit: 2", "unit: 1"))
    text = str(info.value)
    assert text.splitlines()[0] == "rack file has 1 error(s)"
    assert "line 11: nodes[1].unit (node n02)" in text


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("filename", "content_type", "fmt"),
    [
        (None, "application/json", "json"),
        (None, "application/json; charset=utf-8", "json"),
        (None, "text/csv", "csv"),
        (None, "application/csv", "csv"),
        (None, "application/yaml", "yaml"),
        (None, "text/x-yaml", "yaml"),
        ("rack.JSON", None, "json"),
        ("rack.csv", "application/octet-stream", "csv"),
        ("rack.yaml", None, "yaml"),
        ("rack.yml", None, "yaml"),
        (None, None, "yaml"),
        ("rack.csv", "application/json", "json"),  # the content type wins
    ],
)
def test_detect_format(filename: str | None, content_type: str | None, fmt: str):
    assert detect_format(filename, content_type) == fmt


def test_parse_dispatches_on_format():
    assert parse(BASE, "yaml").data["rack"] == "r01"
    assert parse('{"rack": "r01"}', "json").data == {"rack": "r01"}
    assert parse(CSV_BASE, "csv").data["rack"] == "r02"


# ----------------------------------------------------------------------------- switches

SWITCHES = """\
rack: r05
switches:
  - name: leaf5
    driver: arista_eos
    address: 10.0.0.5
    username: provisiond
    password: s3cret
    allowed_vlans: "100-149,199"
    quarantine_vlan: 199
nodes:
  - name: r05n01
    unit: 1
    bmc: {driver: ipmi, address: 10.1.0.1, username: a, password: b}
    nics:
      - {mac: "52:54:00:05:00:01", kind: ethernet, switch: leaf5, port: Ethernet7}
"""


def test_switches_in_a_rack_file():
    (sw,) = check(SWITCHES).switches
    assert (sw.name, sw.driver, sw.allowed_vlans, sw.quarantine_vlan) == (
        "leaf5",
        "arista_eos",
        "100-149,199",
        199,
    )
    assert sw.provisioning_vlan is None and sw.repair_drift is False
    assert "s3cret" not in repr(sw)


def test_switch_problems_are_located():
    bad = edit(SWITCHES, "quarantine_vlan: 199", "quarantine_vlan: 150")
    p = one(bad)
    assert p.where == "switches[0]" and "outside allowed_vlans" in p.message and p.line == 3
    p = one(edit(SWITCHES, "driver: arista_eos", "driver: cisco_ios"))
    assert p.where == "switches[0].driver" and p.line == 4 and "known:" in p.message
    p = one(edit(SWITCHES, 'allowed_vlans: "100-149,199"', 'allowed_vlans: "100-5000"'))
    assert p.where == "switches[0].allowed_vlans" and p.line == 8
    p = one(edit(SWITCHES, "quarantine_vlan: 199", "provisioning_vlan: 100"))
    assert p.where == "switches[0].quarantine_vlan" and "Field required" in p.message


def test_nic_port_must_fit_the_switch_dialect():
    p = one(edit(SWITCHES, "port: Ethernet7}", "port: swp7}"))
    assert p.where == "nodes[0].nics[0].port" and p.line == 15 and p.row == "r05n01"
    assert "not a arista_eos port name (switch leaf5)" in p.message
    # a switch the file does not describe is not checked here (it may be enrolled already)
    check(edit(SWITCHES, "switch: leaf5, port: Ethernet7}", "switch: leaf9, port: swp7}"))


def test_switch_named_twice():
    twice = SWITCHES.replace(
        "nodes:",
        "  - {name: leaf5, driver: sonic, address: 10.0.0.6, allowed_vlans: '100',"
        " quarantine_vlan: 100}\nnodes:",
    )
    p = one(twice)
    assert p.where == "switches[1].name" and "twice" in p.message
