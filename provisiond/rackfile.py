"""Rack files: YAML, JSON or CSV in, one validated RackPlan out, with every problem located.

Pure: parses and validates text only; the database checks and the write are in
workflows/enroll.py. Problems carry the file line and the field path so an operator can fix the
file at 3 AM without guessing.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from provisiond.errors import FieldProblem, ValidationError

Path_ = tuple[str | int, ...]
DEFAULT_RACK_HEIGHT = 42
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
_MAC_SEPARATED = re.compile(r"^[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}$")
_MAC_DOTTED = re.compile(r"^[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}$")
_GUID = re.compile(r"^(0x)?[0-9a-fA-F]{16}$")
_URL = re.compile(
    r"^(?P<scheme>[Hh][Tt][Tt][Pp][Ss]?)://(?P<host>\[[0-9A-Fa-f:.]+\]|[^/:\[\]]+)"
    r"(?::(?P<port>[0-9]{1,5}))?/?$"
)
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
# Protocols that log in; a node without credentials for them cannot be managed.
_NEEDS_CREDENTIALS = {"ipmi", "redfish"}


def normalise_mac(value: str) -> str:
    v = value.strip()
    if _MAC_SEPARATED.match(v):
        hexs = re.sub(r"[:-]", "", v)
    elif _MAC_DOTTED.match(v):
        hexs = v.replace(".", "")
    else:
        raise ValueError("not a MAC address (expected six hex pairs like 52:54:00:12:34:56)")
    mac = ":".join(hexs[i : i + 2] for i in range(0, 12, 2)).lower()
    first = int(hexs[:2], 16)
    if first & 1:
        raise ValueError("a multicast MAC cannot be a NIC's address")
    if mac == "00:00:00:00:00:00":
        raise ValueError("the all-zero MAC is not a NIC's address")
    return mac


def normalise_guid(value: str) -> str:
    v = value.strip().replace(":", "")
    if not _GUID.match(v):
        raise ValueError("not an InfiniBand port GUID (expected 0x and 16 hex digits)")
    v = v.lower().removeprefix("0x")
    if int(v, 16) == 0:
        raise ValueError("the all-zero GUID is not a port GUID")
    return "0x" + v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _no_control_characters(v: str | None) -> str | None:
    if v is not None and any(ord(c) < 32 or ord(c) == 127 for c in v):
        raise ValueError("control characters (NUL, newline, ...) are not allowed")
    return v


def host_address(v: str) -> str:
    """An IP address (normalised) or a host name (lowercased); ValueError otherwise."""
    try:
        return str(ipaddress.ip_address(v.strip("[]")))
    except ValueError:
        if not _HOSTNAME.match(v):
            raise ValueError("not an IP address or host name") from None
        return v.lower()


class BmcSpec(_Strict):
    driver: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    # IP address or host name; for Redfish also a URL (http[s]://host[:port]), see docs
    address: str = Field(max_length=255)
    port: int | None = Field(None, ge=1, le=65535)
    username: str | None = Field(None, min_length=1, max_length=255)
    password: str | None = Field(None, min_length=1, max_length=1024, repr=False)
    # Redfish: the ComputerSystem id behind the service (omit when it fronts one system)
    system_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$")

    _plain = field_validator("username", "password")(_no_control_characters)

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        url = _URL.match(v)
        host = url.group("host") if url else v
        try:
            norm = str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            if not _HOSTNAME.match(host):
                raise ValueError("not an IP address, host name or http(s) URL") from None
            norm = host.lower()
        if url is None:
            return norm
        if ":" in norm:
            norm = f"[{norm}]"
        port = url.group("port")
        return f"{url.group('scheme').lower()}://{norm}" + (f":{int(port)}" if port else "")

    @model_validator(mode="after")
    def _per_driver(self) -> BmcSpec:
        is_url = "://" in self.address
        if is_url and self.driver != "redfish":
            raise ValueError(
                f"address: a URL is only meaningful for the redfish driver, not {self.driver!r}"
            )
        if is_url and self.port is not None:
            raise ValueError("port: give the port inside the URL, not both")
        if self.system_id is not None and self.driver != "redfish":
            raise ValueError(f"system_id: only the redfish driver has systems, not {self.driver!r}")
        return self


class NicSpec(_Strict):
    kind: Literal["ethernet", "infiniband"]
    mac: str | None = None
    guid: str | None = None
    pxe: bool = False
    switch: str | None = Field(None, pattern=NAME_RE)
    port: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9/:._-]{0,63}$")
    # authoritative DHCP: the address reserved for this NIC on the boot network
    ip: str | None = None

    @field_validator("ip")
    @classmethod
    def _ip(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return str(ipaddress.IPv4Address(v.strip()))
        except ValueError:
            raise ValueError(f"not an IPv4 address: {v!r}") from None

    @field_validator("mac")
    @classmethod
    def _mac(cls, v: str | None) -> str | None:
        return None if v is None else normalise_mac(v)

    @field_validator("guid")
    @classmethod
    def _guid(cls, v: str | None) -> str | None:
        return None if v is None else normalise_guid(v)

    @model_validator(mode="after")
    def _shape(self) -> NicSpec:
        if self.kind == "ethernet":
            if self.mac is None:
                raise ValueError("an ethernet NIC needs a mac")
            if self.guid is not None:
                raise ValueError("an ethernet NIC has no guid")
        else:
            if self.guid is None:
                raise ValueError("an infiniband NIC needs a guid (the port GUID)")
            if self.mac is not None:
                raise ValueError(
                    "an infiniband NIC has no mac (IPoIB addresses are derived from the GUID)"
                )
            if self.pxe:
                raise ValueError("pxe boot is set on an ethernet NIC, not an infiniband port")
            if self.ip is not None:
                raise ValueError("ip: DHCP reservations are for ethernet NICs")
        if (self.switch is None) != (self.port is None):
            raise ValueError("switch and port go together: give both or neither")
        return self


class NodeSpec(_Strict):
    name: str = Field(pattern=NAME_RE)
    unit: int = Field(ge=1)
    height: int = Field(1, ge=1, le=16)
    bmc: BmcSpec
    nics: list[NicSpec] = Field(default_factory=list)
    boot_mode: Literal["uefi", "bios"] = "uefi"
    # a boot loader of its own, a file in the TFTP root (snponly.efi for NICs whose iPXE driver
    # fails, e.g. some ConnectX); default: by the client's architecture
    boot_loader: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    arch: Literal["x86_64", "aarch64"] = "x86_64"

    @model_validator(mode="after")
    def _one_pxe(self) -> NodeSpec:
        if sum(1 for n in self.nics if n.pxe) > 1:
            raise ValueError("more than one NIC has pxe: true; mark the one the node boots from")
        return self


class SwitchSpec(_Strict):
    """A switch provisiond may configure (rack file ``switches:`` or ``POST /v1/switches``)."""

    name: str = Field(pattern=NAME_RE)
    # a dialect (arista_eos, cumulus_nvue, sonic, cisco_nxos, dell_os10, junos, comware) or a
    # napalm driver (napalm_eos, napalm_junos, napalm_nxos_ssh)
    driver: str
    address: str = Field(max_length=255)
    # SSH port (eAPI port for napalm_eos); None: the protocol's default
    port: int | None = Field(None, ge=1, le=65535)
    username: str | None = Field(None, min_length=1, max_length=255)
    password: str | None = Field(None, min_length=1, max_length=1024, repr=False)
    # the VLANs provisiond may use on this switch: "100-199,300"
    allowed_vlans: str = Field(min_length=1, max_length=4096)
    # a regular expression the whole port name must match; None: every port of the dialect
    allowed_ports: str | None = Field(None, min_length=1, max_length=1024)
    provisioning_vlan: int | None = Field(None, ge=1, le=4094)
    # where a port goes when its change fails or its state is in doubt: required
    quarantine_vlan: int = Field(ge=1, le=4094)
    repair_drift: bool = False

    _plain = field_validator("username", "password", "allowed_ports")(_no_control_characters)

    @field_validator("driver")
    @classmethod
    def _driver(cls, v: str) -> str:
        from drivers.switch.registry import switch_driver_names

        known = switch_driver_names()
        if v not in known:
            raise ValueError(f"unknown switch driver; known: {', '.join(sorted(known))}")
        return v

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        return host_address(v)

    @field_validator("allowed_vlans")
    @classmethod
    def _vlans(cls, v: str) -> str:
        from drivers.switch.base import format_vlan_ranges, parse_vlan_ranges

        vlans = parse_vlan_ranges(v)
        if not vlans:
            raise ValueError("no VLAN in the list")
        return format_vlan_ranges(vlans)

    @field_validator("allowed_ports")
    @classmethod
    def _ports(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except (re.error, OverflowError, RecursionError) as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _system_vlans(self) -> SwitchSpec:
        from drivers.switch.base import parse_vlan_ranges

        allowed = parse_vlan_ranges(self.allowed_vlans)
        for key in ("provisioning_vlan", "quarantine_vlan"):
            vlan = getattr(self, key)
            if vlan is not None and vlan not in allowed:
                raise ValueError(f"{key} {vlan} is outside allowed_vlans ({self.allowed_vlans})")
        if self.provisioning_vlan == self.quarantine_vlan:
            raise ValueError(
                "provisioning_vlan and quarantine_vlan must differ (quarantine isolates)"
            )
        if self.quarantine_vlan == 1:
            raise ValueError("quarantine_vlan 1 is the default VLAN, shared by every unused port")
        return self


class RackHeader(_Strict):
    rack: str = Field(pattern=NAME_RE)
    # None: not given. A new rack gets DEFAULT_RACK_HEIGHT; an enrolled rack keeps its own.
    height: int | None = Field(None, ge=1, le=64)
    location: str | None = Field(None, max_length=255)

    _plain = field_validator("location")(_no_control_characters)


class RackFile(RackHeader):
    nodes: list[NodeSpec] = Field(max_length=100000)
    # the rack's switches (YAML/JSON only; CSV files describe nodes)
    switches: list[SwitchSpec] = Field(default_factory=list, max_length=1000)


@dataclass
class ParsedFile:
    """Parsed data, and where each value came from. For JSON the line map is built only when
    asked for (that is, when there is an error to locate): it costs a second parse."""

    data: Any
    known_lines: Mapping[Path_, int] | None = None
    json_text: str | None = field(default=None, repr=False)

    @functools.cached_property
    def lines(self) -> Mapping[Path_, int]:
        if self.known_lines is not None:
            return self.known_lines
        lines: dict[Path_, int] = {}
        if self.json_text is not None:
            try:  # JSON is YAML: borrow the YAML composer for line numbers
                root = yaml.compose(self.json_text, Loader=RackLoader)
                if root is not None:
                    _yaml_lines(root, (), lines)
            except (yaml.YAMLError, ValidationError):
                lines = {}
        return lines


# ----------------------------------------------------------------------------- parsing


_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RackLoader(_BaseLoader):  # type: ignore[valid-type, misc]
    """SafeLoader with YAML 1.2 core-schema scalars and no aliases.

    YAML 1.1 reads an unquoted MAC such as 52:54:00:00:00:01 as a base-60 integer, 0x0002c9...
    GUIDs as hex integers, 0123 as octal and yes/no/on/off as booleans: in a rack file every one
    of those silently corrupts a value. Anchors and aliases are refused: a rack file has no use
    for them, and they allow self-referencing and exponentially expanding documents.
    """


RackLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT, _BOOL)]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
RackLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
RackLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
RackLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?$"),
    list("-+.0123456789"),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    assert isinstance(node, yaml.ScalarNode)
    return int(loader.construct_scalar(node))


RackLoader.add_constructor(_INT, _construct_int)


def _yaml_lines(
    node: yaml.Node,
    path: Path_,
    out: dict[Path_, int],
    seen: set[int] | None = None,
    used_at: int | None = None,
) -> None:
    """Map each path to its line; refuse duplicate keys and aliases (a node met twice)."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        raise ValidationError(
            "rack file is not valid YAML",
            [
                FieldProblem(
                    where_of(path),
                    "anchors and aliases (*name) are not allowed in rack files",
                    line=used_at or node.start_mark.line + 1,
                )
            ],
        )
    seen.add(id(node))
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ValidationError(
                    "rack file has a key that is not a plain word",
                    [
                        FieldProblem(
                            where_of(path),
                            "mapping keys must be plain words, not lists or mappings",
                            line=key_node.start_mark.line + 1,
                        )
                    ],
                )
            key = key_node.value
            if key in keys:
                raise ValidationError(
                    "rack file has a duplicate key",
                    [
                        FieldProblem(
                            where_of((*path, key)),
                            "key appears twice in one mapping",
                            line=key_node.start_mark.line + 1,
                        )
                    ],
                )
            keys.add(key)
            _yaml_lines(value_node, (*path, key), out, seen, key_node.start_mark.line + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _yaml_lines(item, (*path, i), out, seen)


def parse_yaml(text: str) -> ParsedFile:
    try:
        loader = RackLoader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                raise ValidationError("rack file is empty", [FieldProblem("(file)", "empty")])
            lines: dict[Path_, int] = {}
            _yaml_lines(root, (), lines)
            data = loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        message = str(exc.problem or exc)
        text_lines = text.split("\n")
        bad_line = text_lines[line - 1] if line and line <= len(text_lines) else ""
        if "\t" in bad_line:
            message += "; tab characters cannot indent YAML: use spaces"
        raise ValidationError(
            "rack file is not valid YAML", [FieldProblem("(file)", message, line=line)]
        ) from exc
    except RecursionError:
        raise ValidationError(
            "rack file is nested too deeply", [FieldProblem("(file)", "nesting too deep")]
        ) from None
    except yaml.reader.ReaderError as exc:  # a control character: not marked, but has a position
        line = text.count("\n", 0, exc.position) + 1
        raise ValidationError(
            "rack file is not valid YAML",
            [FieldProblem("(file)", f"unacceptable character #x{exc.character:04x}", line=line)],
        ) from exc
    return ParsedFile(data, known_lines=lines)


def parse_json(text: str) -> ParsedFile:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise ValueError(f"duplicate key {k!r}")
            out[k] = v
        return out

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            "rack file is not valid JSON", [FieldProblem("(file)", exc.msg, line=exc.lineno)]
        ) from exc
    except RecursionError:
        raise ValidationError(
            "rack file is nested too deeply", [FieldProblem("(file)", "nesting too deep")]
        ) from None
    except ValueError as exc:
        raise ValidationError(
            "rack file is not valid JSON", [FieldProblem("(file)", str(exc))]
        ) from exc
    return ParsedFile(data, json_text=text)


CSV_NODE_COLUMNS = (
    "unit",
    "height",
    "bmc_driver",
    "bmc_address",
    "bmc_port",
    "bmc_username",
    "bmc_password",
    "bmc_system_id",
    "boot_mode",
    "arch",
    "boot_loader",
)
CSV_NIC_COLUMNS = ("nic_kind", "mac", "guid", "pxe", "switch", "port", "ip")
# bmc_system_id and ip came later; they are listed last so the documented column order stays
CSV_COLUMNS = (
    "rack",
    "name",
    *(c for c in CSV_NODE_COLUMNS if c not in ("bmc_system_id", "boot_loader")),
    *(c for c in CSV_NIC_COLUMNS if c != "ip"),
    "bmc_system_id",
    "ip",
    "boot_loader",
)
_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n", ""}


def parse_csv(text: str) -> ParsedFile:
    """One row per NIC; a node's columns are given on its first row and may repeat or be blank on
    its later rows."""
    try:
        return _parse_csv(text)
    except csv.Error as exc:
        raise ValidationError("rack CSV is malformed", [FieldProblem("(file)", str(exc))]) from exc


def _parse_csv(text: str) -> ParsedFile:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    problems: list[FieldProblem] = []
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        problems.append(
            FieldProblem(
                "(header)",
                f"unknown column(s) {', '.join(unknown)}; known: {', '.join(CSV_COLUMNS)}",
                line=1,
            )
        )
    if "name" not in header:
        problems.append(FieldProblem("(header)", "missing column 'name'", line=1))
    if problems:
        raise ValidationError("rack CSV header is wrong", problems)
    reader.fieldnames = header
    lines: dict[Path_, int] = {}
    racks: set[str] = set()
    nodes: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for row in reader:
        line = reader.line_num
        if None in row:
            problems.append(FieldProblem("(row)", "more cells than columns", line=line))
            continue
        cells = {k: (v or "").strip() for k, v in row.items()}
        if not any(cells.values()):
            continue
        name = cells.get("name", "")
        if not name:
            problems.append(FieldProblem("name", "empty node name", line=line))
            continue
        if cells.get("rack"):
            racks.add(cells["rack"])
            lines.setdefault(("rack",), line)
        if name not in nodes:
            idx = len(order)
            order.append(name)
            node: dict[str, Any] = {"name": name, "bmc": {}, "nics": []}
            nodes[name] = node
            base: Path_ = ("nodes", idx)
            lines[base] = lines[(*base, "name")] = line
            lines[(*base, "bmc")] = line
            for col in CSV_NODE_COLUMNS:
                raw = cells.get(col, "")
                if raw == "":
                    continue
                key, path = _csv_node_key(col, base)
                lines[path] = line
                try:
                    value: Any = int(raw) if col in ("unit", "height", "bmc_port") else raw
                except ValueError:
                    problems.append(
                        FieldProblem(where_of(path), "must be a whole number", line=line, row=name)
                    )
                    continue
                if key[0] == "bmc":
                    node["bmc"][key[1]] = value
                else:
                    node[key[0]] = value
        else:
            idx = order.index(name)
            first = nodes[name]
            for col in CSV_NODE_COLUMNS:
                raw = cells.get(col, "")
                key, _ = _csv_node_key(col, ("nodes", idx))
                have = first["bmc"].get(key[1]) if key[0] == "bmc" else first.get(key[0])
                if raw and str(have) != raw:
                    secret = col == "bmc_password"  # never echo a password, either one
                    problems.append(
                        FieldProblem(
                            col,
                            "differs from the node's first row"
                            + ("" if secret else f" ({have!r})"),
                            line=line,
                            row=name,
                            value=None if secret else raw,
                        )
                    )
        if any(cells.get(c) for c in CSV_NIC_COLUMNS):
            node = nodes[name]
            nic_path: Path_ = ("nodes", order.index(name), "nics", len(node["nics"]))
            lines[nic_path] = line
            nic: dict[str, Any] = {}
            for col in CSV_NIC_COLUMNS:
                raw = cells.get(col, "")
                key_name = "kind" if col == "nic_kind" else col
                lines[(*nic_path, key_name)] = line
                if col == "pxe":
                    low = raw.lower()
                    if low not in _TRUE | _FALSE:
                        problems.append(
                            FieldProblem(
                                "pxe", "must be true or false", line=line, row=name, value=raw
                            )
                        )
                    nic["pxe"] = low in _TRUE
                elif raw:
                    nic[key_name] = raw
            node["nics"].append(nic)
    if problems:
        raise ValidationError("rack CSV has errors", problems)
    data: dict[str, Any] = {"nodes": [nodes[n] for n in order]}
    if len(racks) > 1:
        raise ValidationError(
            "rack CSV names more than one rack",
            [FieldProblem("rack", f"one rack per file; found {', '.join(sorted(racks))}")],
        )
    if racks:
        data["rack"] = racks.pop()
    return ParsedFile(data, known_lines=lines)


def _csv_node_key(col: str, base: Path_) -> tuple[tuple[str, ...], Path_]:
    if col.startswith("bmc_"):
        key = ("bmc", col[4:])
        return key, (*base, "bmc", col[4:])
    return (col,), (*base, col)


def detect_format(filename: str | None, content_type: str | None) -> Literal["yaml", "json", "csv"]:
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct in ("application/json",):
        return "json"
    if ct in ("text/csv", "application/csv"):
        return "csv"
    if ct in ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"):
        return "yaml"
    name = (filename or "").lower()
    if name.endswith(".json"):
        return "json"
    if name.endswith(".csv"):
        return "csv"
    return "yaml"


def parse(text: str, fmt: Literal["yaml", "json", "csv"]) -> ParsedFile:
    return {"yaml": parse_yaml, "json": parse_json, "csv": parse_csv}[fmt](text)


# ----------------------------------------------------------------------------- validation


def line_for(lines: Mapping[Path_, int], path: Path_) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _row_name(data: Any, path: Path_) -> str | None:
    if len(path) >= 2 and path[0] == "nodes" and isinstance(path[1], int):
        try:
            name = data["nodes"][path[1]]["name"]
        except (KeyError, IndexError, TypeError):
            return None
        return name if isinstance(name, str) else None
    return None


def where_of(path: Iterable[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(file)"


def _clean_msg(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def _pydantic_problems(
    exc: PydanticValidationError, prefix: Path_, data: Any, lines: Mapping[Path_, int]
) -> list[FieldProblem]:
    out = []
    for err in exc.errors():
        path: Path_ = (*prefix, *err["loc"])
        value = err.get("input")
        shown = None if isinstance(value, (dict, list)) else value
        if any("pass" in str(p).lower() for p in path):
            shown = None  # never echo a secret back, even a malformed or misspelt one
        out.append(
            FieldProblem(
                where_of(path),
                _clean_msg(err["msg"]),
                line=line_for(lines, path),
                value=shown,
                row=_row_name(data, path),
            )
        )
    return out


def validate(parsed: ParsedFile, *, rack_name: str | None = None) -> RackFile:
    """Field checks on every node, then checks across nodes; raises with every problem found."""
    data = parsed.data
    if isinstance(data, dict) and rack_name is not None and "rack" not in data:
        data = {"rack": rack_name, **data}
    if not isinstance(data, dict):
        raise ValidationError(
            "rack file must be a mapping with 'rack' and 'nodes'",
            [FieldProblem("(file)", f"top level is a {type(data).__name__}", line=1)],
        )
    problems: list[FieldProblem] = []
    header: RackHeader | None = None
    try:
        header = RackHeader.model_validate(
            {k: v for k, v in data.items() if k not in ("nodes", "switches")}
        )
    except PydanticValidationError as exc:
        problems += _pydantic_problems(exc, (), data, parsed.lines)
    raw_nodes = data.get("nodes")
    nodes: list[tuple[int, NodeSpec]] = []
    views: list[tuple[int, _View]] = []
    if not isinstance(raw_nodes, list):
        problems.append(
            FieldProblem(
                "nodes",
                "must be a list of nodes" if raw_nodes is not None else "missing",
                line=line_for(parsed.lines, ("nodes",)),
            )
        )
    else:
        for i, raw in enumerate(raw_nodes):
            try:
                spec = NodeSpec.model_validate(raw)
            except PydanticValidationError as exc:
                problems += _pydantic_problems(exc, ("nodes", i), data, parsed.lines)
                # keep checking what is valid of this node, so one error does not hide others
                partial = _View.from_raw(raw)
                if partial is not None:
                    views.append((i, partial))
            else:
                nodes.append((i, spec))
                views.append((i, _View.from_spec(spec)))
    switches: list[SwitchSpec] = []
    raw_switches = data.get("switches", [])
    if not isinstance(raw_switches, list):
        problems.append(
            FieldProblem(
                "switches", "must be a list of switches", line=line_for(parsed.lines, ("switches",))
            )
        )
    else:
        for i, raw in enumerate(raw_switches):
            try:
                switches.append(SwitchSpec.model_validate(raw))
            except PydanticValidationError as exc:
                problems += _pydantic_problems(exc, ("switches", i), data, parsed.lines)
        problems += _switch_checks(switches, views, parsed)
    if header is not None and rack_name is not None and header.rack != rack_name:
        problems.append(
            FieldProblem(
                "rack",
                f"file describes rack {header.rack!r} but was sent to rack {rack_name!r}",
                line=line_for(parsed.lines, ("rack",)),
                value=header.rack,
            )
        )
    header_ok = isinstance(data.get("rack"), str)
    height = data.get("height")
    problems.extend(
        cross_check(
            data["rack"] if header_ok else "?",
            height if type(height) is int and height >= 1 else None,
            views,
            parsed,
        )
    )
    if problems or header is None:
        problems.sort(key=lambda p: (p.line or 0, p.where))
        raise ValidationError(f"rack file has {len(problems)} error(s)", problems)
    return RackFile(**header.model_dump(), nodes=[n for _, n in nodes], switches=switches)


def _switch_checks(
    switches: list[SwitchSpec], views: list[tuple[int, _View]], parsed: ParsedFile
) -> list[FieldProblem]:
    """Switch names are unique; a NIC cabled to a switch of this file names a port that the
    switch's dialect (and allowed ports) accept."""
    from drivers.switch.registry import dialect_for

    problems: list[FieldProblem] = []
    by_name: dict[str, SwitchSpec] = {}
    for i, sw in enumerate(switches):
        if sw.name in by_name:
            path: Path_ = ("switches", i, "name")
            problems.append(
                FieldProblem(
                    where_of(path),
                    "switch name used twice in this file",
                    line=line_for(parsed.lines, path),
                    value=sw.name,
                )
            )
        by_name.setdefault(sw.name, sw)
    for i, node in views:
        for j, nic in node.nics:
            cabled = by_name.get(nic.switch or "")
            if cabled is None or nic.port is None:
                continue
            dialect = dialect_for(cabled.driver)
            bad = not dialect.port_pattern.fullmatch(nic.port)
            outside = cabled.allowed_ports is not None and not re.fullmatch(
                cabled.allowed_ports, nic.port
            )
            if bad or outside:
                path = ("nodes", i, "nics", j, "port")
                problems.append(
                    FieldProblem(
                        where_of(path),
                        f"not a {dialect.name} port name (switch {cabled.name})"
                        if bad
                        else f"outside switch {cabled.name}'s allowed_ports",
                        line=line_for(parsed.lines, path),
                        value=nic.port,
                        row=node.name,
                    )
                )
    return problems


@dataclass(frozen=True)
class _View:
    """What cross-node checks need of a node; built from the valid parts of an invalid one."""

    name: str
    unit: int | None
    height: int
    bmc: BmcSpec | None
    nics: tuple[tuple[int, NicSpec], ...]

    @classmethod
    def from_spec(cls, n: NodeSpec) -> _View:
        return cls(n.name, n.unit, n.height, n.bmc, tuple(enumerate(n.nics)))

    @classmethod
    def from_raw(cls, raw: Any) -> _View | None:
        if not isinstance(raw, dict):
            return None
        name = raw.get("name")
        if not isinstance(name, str) or not re.match(NAME_RE, name):
            return None
        unit = raw.get("unit")
        height = raw.get("height", 1)
        bmc = None
        with contextlib.suppress(PydanticValidationError):
            bmc = BmcSpec.model_validate(raw.get("bmc"))
        nics: list[tuple[int, NicSpec]] = []
        raw_nics = raw.get("nics")
        for j, raw_nic in enumerate(raw_nics if isinstance(raw_nics, list) else []):
            with contextlib.suppress(PydanticValidationError):
                nics.append((j, NicSpec.model_validate(raw_nic)))
        return cls(
            name,
            unit if type(unit) is int and unit >= 1 else None,
            height if type(height) is int and 1 <= height <= 16 else 1,
            bmc,
            tuple(nics),
        )


def cross_check(
    rack: str,
    rack_height: int | None,
    nodes: list[tuple[int, _View]],
    parsed: ParsedFile,
) -> list[FieldProblem]:
    """Checks across nodes. Line numbers are looked up only for problems found: for JSON the
    line map costs a second parse."""
    problems: list[FieldProblem] = []
    names: dict[str, int] = {}
    units: dict[int, str] = {}
    macs: dict[str, str] = {}
    guids: dict[str, str] = {}
    ips: dict[str, str] = {}
    bmcs: dict[tuple[str, int | None, str | None], str] = {}
    for i, node in nodes:
        at: Path_ = ("nodes", i)

        def add(path: Path_, msg: str, value: Any = None, node: _View = node) -> None:
            problems.append(
                FieldProblem(
                    where_of(path),
                    msg,
                    line=line_for(parsed.lines, path),
                    value=value,
                    row=node.name,
                )
            )

        if node.name in names:
            add((*at, "name"), f"node name also used by nodes[{names[node.name]}]", node.name)
        names.setdefault(node.name, i)
        if node.unit is not None:
            top = node.unit + node.height - 1
            limit = rack_height if rack_height is not None else top
            if top > limit:
                add(
                    (*at, "unit"),
                    f"unit {node.unit}"
                    + (f" (height {node.height})" if node.height > 1 else "")
                    + f" does not exist in rack {rack}, which has units 1-{limit}",
                    node.unit,
                )
            for u in range(node.unit, min(top, limit) + 1):
                if u in units and units[u] != node.name:
                    add((*at, "unit"), f"unit {u} is already taken by node {units[u]}", node.unit)
                    break
                units[u] = node.name
        if node.bmc is not None:
            if node.bmc.driver in _NEEDS_CREDENTIALS:
                for cred in ("username", "password"):
                    if getattr(node.bmc, cred) is None:
                        add(
                            (*at, "bmc", cred),
                            f"missing: {node.bmc.driver} BMCs need credentials",
                        )
            # one Redfish service may front several systems: the system id is part of the BMC
            bmc_key = (node.bmc.address, node.bmc.port, node.bmc.system_id)
            if bmc_key in bmcs:
                add((*at, "bmc", "address"), f"same BMC as node {bmcs[bmc_key]}", node.bmc.address)
            bmcs.setdefault(bmc_key, node.name)
        for j, nic in node.nics:
            if nic.mac is not None:
                if nic.mac in macs:
                    add((*at, "nics", j, "mac"), f"MAC also on node {macs[nic.mac]}", nic.mac)
                macs.setdefault(nic.mac, node.name)
            if nic.guid is not None:
                if nic.guid in guids:
                    add((*at, "nics", j, "guid"), f"GUID also on node {guids[nic.guid]}", nic.guid)
                guids.setdefault(nic.guid, node.name)
            if nic.ip is not None:
                if nic.ip in ips:
                    add((*at, "nics", j, "ip"), f"address also on node {ips[nic.ip]}", nic.ip)
                ips.setdefault(nic.ip, node.name)
    return problems
