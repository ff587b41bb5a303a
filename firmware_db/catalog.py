"""Firmware catalogs: YAML text in, one checked, frozen ``model.Catalog`` out, or every problem.

Owns the catalog format (described, with its semantics, in catalog.schema.json next to this
file) and its loading: YAML syntax, duplicate keys, the JSON Schema, then the contradictions a
schema cannot see (unknown formats, versions that do not parse, duplicates, unknown references,
releases that require themselves, requirement cycles, bad baselines). Each problem carries the
path (``components[dell-r760-bios].releases[2.1.0].requires[0]``) and the 1-based file line, and
all of them are reported at once, never only the first.

Pure: reads text (``load_catalog_file`` reads one file) and never writes, imports into a
database or judges a node's inventory (that is rules.py). It must never guess at a version: the
scalar's source text is parsed in the component's declared format, never YAML's typed value.
"""

from __future__ import annotations

import collections
import datetime as dt
import difflib
import functools
import importlib.resources
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from firmware_db.model import (
    Artifact,
    Baseline,
    Catalog,
    Component,
    KnownBad,
    Match,
    Release,
    Requirement,
)
from firmware_db.versions import Version, VersionError, known_formats, parse
from provisiond.errors import FieldProblem, ValidationError

__all__ = [
    "SCHEMA_RESOURCE",
    "CatalogError",
    "catalog_schema",
    "check_catalog",
    "load_catalog",
    "load_catalog_file",
]

SCHEMA_RESOURCE = "catalog.schema.json"
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_RESERVED = ("self", "parent")  # words of requires, never ids
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_DEPTH = 32  # a catalog is about 8 levels deep; deeper is a mistake or an attack
_SHOWN = 8  # how many known values a message lists before "..."

Path_ = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP = (
    _TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")
)
_MAP, _SEQ, _MERGE = _TAG + "map", _TAG + "seq", _TAG + "merge"

# Where a scalar's source text is the value (versions, dates, hardware identifiers), whatever
# YAML would type it as: "*" is any index or key, a tuple any of its names.
_Pattern = tuple[str | tuple[str, ...], ...]
_C = ("components", "*")
_TEXT_PATHS: tuple[_Pattern, ...] = (
    (*_C, "match", "system_models", "*"),
    (*_C, "match", "pci", ("vendor", "device", "subvendor", "subdevice")),
    (*_C, "match", "psids", "*"),
    (*_C, "match", "software_ids", "*"),
    (*_C, "minimum", "version"),
    (*_C, "known_bad", "*", "version"),
    (*_C, "known_bad", "*", "range", ("ge", "gt", "le", "lt")),
    (*_C, "releases", "*", "version"),
    (*_C, "releases", "*", "date"),
    (*_C, "releases", "*", "upgrade_from", "*"),
    (*_C, "releases", "*", "requires", "*", "version"),
    ("baselines", "*", "system_models", "*"),
    ("baselines", "*", "versions", "*"),
)

_JSON_TYPES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}


class CatalogError(ValidationError):
    """A catalog that cannot be loaded; ``problems`` lists every problem, ``source`` the file."""

    kind = "catalog"

    def __init__(
        self, message: str, problems: list[FieldProblem] | None = None, *, source: str
    ) -> None:
        super().__init__(message, problems)
        self.source = source

    def __str__(self) -> str:
        return "\n".join([self.message, *(format_problem(self.source, p) for p in self.problems)])


def format_problem(source: str, p: FieldProblem) -> str:
    """``FILE:LINE: PATH: MESSAGE``, as compilers print, so editors can jump to the line."""
    at = f"{source}:{p.line}" if p.line is not None else source
    return f"{at}: {p.where}: {p.message}"


@functools.cache
def catalog_schema() -> Mapping[str, Any]:
    """The catalog's JSON Schema (draft 2020-12), shipped as package data."""
    text = importlib.resources.files("firmware_db").joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return MappingProxyType(schema)


@functools.cache
def _validator() -> Any:
    # the same schema with its $refs written out: resolving 20,000 references costs more than
    # the validation itself on a 5,000-release catalog
    return Draft202012Validator(_inline(dict(catalog_schema()), catalog_schema()["$defs"], 0))


def _inline(node: Any, defs: Mapping[str, Any], depth: int) -> Any:
    """``node`` with each local ``{"$ref": "#/$defs/x", ...}`` replaced by ``x`` (and the
    siblings). The catalog schema is not recursive; the depth bound keeps it that way."""
    if depth > _MAX_DEPTH:
        raise ValueError("catalog schema: $refs nested too deeply (a recursive $defs entry?)")
    if isinstance(node, list):
        return [_inline(item, defs, depth + 1) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _inline(v, defs, depth + 1) for k, v in node.items() if k not in ("$ref", "$defs")}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = _inline(defs[ref.removeprefix("#/$defs/")], defs, depth + 1)
        return {**target, **out}
    if ref is not None:
        out["$ref"] = ref
    return out


def load_catalog(text: str, *, source: str = "<catalog>") -> Catalog:
    """The catalog in ``text``; CatalogError listing every problem if there is any."""
    catalog, problems = _load(text)
    if problems or catalog is None:
        n = len(problems)
        raise CatalogError(
            f"catalog {source} has {n} problem{'s' if n != 1 else ''}", problems, source=source
        )
    return catalog


def load_catalog_file(path: str | Path) -> Catalog:
    """The catalog in the UTF-8 file ``path``; CatalogError if it cannot be read or loaded."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        problem = FieldProblem("(file)", f"cannot read the catalog: {exc.strerror or exc}")
        raise CatalogError(f"catalog {source} cannot be read", [problem], source=source) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problem = FieldProblem("(file)", f"not UTF-8 text: byte {data[exc.start]:#04x}", line=line)
        raise CatalogError(f"catalog {source} is not UTF-8", [problem], source=source) from exc
    return load_catalog(text, source=source)


def check_catalog(text: str, *, source: str = "<catalog>") -> list[FieldProblem]:
    """Every problem of the catalog in ``text``, in file order; empty when it loads. ``source``
    is accepted for symmetry with load_catalog: problems carry lines, not the file name."""
    del source
    return _load(text)[1]


def _load(text: str) -> tuple[Catalog | None, list[FieldProblem]]:
    doc = _Document()
    root = doc.compose(text)
    if root is not None:
        doc.instance = doc.convert(root, (), None, 0)
        doc.label()
        doc.validate_schema()
    catalog = _Builder(doc).build() if root is not None else None
    # paths are rendered last, once list items have their labels (ids, versions, names)
    problems = sorted(
        {FieldProblem(doc.where(path), message, line=line) for path, message, line in doc.problems},
        key=lambda p: (p.line or 0, p.where, p.message),
    )
    return (catalog if not problems else None), problems


# ------------------------------------------------------------------------------ YAML and schema


def _is_text_path(path: Path_) -> bool:
    for pattern in _TEXT_PATHS:
        if len(pattern) != len(path):
            continue
        if all(
            want == "*" or (isinstance(want, tuple) and got in want) or got == want
            for want, got in zip(pattern, path, strict=True)
        ):
            return True
    return False


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    for types, name in (
        (dict, "a mapping"),
        (list, "a list"),
        (str, "a string"),
        (int, "a whole number"),
        (float, "a number"),
    ):
        if isinstance(value, types):
            return name
    return "empty" if value is None else type(value).__name__


def _show(value: Any) -> str:
    """A scalar as the message shows it ('abc', 5, true); "" for a list or mapping."""
    if isinstance(value, dict | list):
        return ""
    text = repr(value) if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _listing(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(names[:_SHOWN])
    return shown + (", ..." if len(names) > _SHOWN else "")


@dataclass
class _Document:
    """The YAML text as JSON-like data, with each path's line, and the problems found so far."""

    instance: Any = None
    lines: dict[Path_, int] = field(default_factory=dict)
    problems: list[tuple[Path_, str, int | None]] = field(default_factory=list)
    # labels for list items: components by id, releases by version, baselines by name
    labels: dict[Path_, str] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)  # ids of the nodes converted: an alias repeats one
    refused: set[Path_] = field(default_factory=set)  # reported while converting: schema is quiet
    constructor: yaml.constructor.SafeConstructor = field(
        default_factory=yaml.constructor.SafeConstructor
    )

    # -------- helpers

    def where(self, path: Path_) -> str:
        if not path:
            return "(file)"
        out = ""
        for i, part in enumerate(path):
            if isinstance(part, int):
                out += f"[{self.labels.get(path[: i + 1], part)}]"
            elif _PLAIN_KEY.match(part) and (i == 0 or path[i - 1] != "versions"):
                out += f".{part}" if out else part
            else:
                out += f"[{part}]"
        return out

    def line(self, path: Path_) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def problem(self, path: Path_, message: str, line: int | None = None) -> None:
        self.problems.append((path, message, line or self.line(path)))

    def get(self, path: Path_) -> Any:
        """The value at ``path``, or None when any step is missing or of the wrong type."""
        value = self.instance
        for part in path:
            if isinstance(part, int) and isinstance(value, list) and 0 <= part < len(value):
                value = value[part]
            elif isinstance(part, str) and isinstance(value, dict):
                value = value.get(part)
            else:
                return None
        return value

    # -------- YAML

    def compose(self, text: str) -> yaml.Node | None:
        loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            root = yaml.compose(text, Loader=loader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            message = f"not valid YAML: {exc.problem or exc}"
            if exc.context:
                started = exc.context_mark
                at = ""
                if started is not None and (mark is None or started.line != mark.line):
                    at = f" at line {started.line + 1}"
                message += f" ({exc.context}{at})"
            text_lines = text.split("\n")
            if line is not None and line <= len(text_lines) and "\t" in text_lines[line - 1]:
                message += "; YAML cannot be indented with tabs: use spaces"
            self.problems.append(((), message, line))
            return None
        except yaml.reader.ReaderError as exc:
            line = text.count("\n", 0, exc.position) + 1
            message = f"not valid YAML: unacceptable character #x{exc.character:04x}"
            self.problems.append(((), message, line))
            return None
        except RecursionError:
            self.problems.append(((), "not valid YAML: nested too deeply", None))
            return None
        if root is None:
            self.problems.append(((), "the catalog is empty", 1))
        return root

    def convert(self, node: yaml.Node, path: Path_, key_line: int | None, depth: int) -> Any:
        """``node`` as JSON-like data, recording lines; versions and identifiers keep their
        source text. Aliases, merge keys, exotic tags and duplicate keys are problems."""
        line = node.start_mark.line + 1
        self.lines[path] = key_line or line
        if depth > _MAX_DEPTH:
            self.problem(path, f"nested more than {_MAX_DEPTH} levels deep")
            self.refused.add(path)
            return None
        if id(node) in self.seen:  # the tree is alive while converting: ids are stable
            self.problem(path, "aliases (*name) are not supported in catalogs: write it out")
            self.refused.add(path)
            return None
        self.seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                self.problem(path, f"YAML tag {node.tag} is not supported here")
                self.refused.add(path)
                return None
            return [
                self.convert(item, (*path, i), None, depth + 1) for i, item in enumerate(node.value)
            ]
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path_, depth: int) -> Any:
        if node.tag != _MAP:
            self.problem(path, f"YAML tag {node.tag} is not supported here")
            self.refused.add(path)
            return None
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(path, "a key must be a plain word, not a list or mapping", key_line)
                continue
            if key_node.tag == _MERGE:
                self.problem(
                    path, "merge keys (<<) are not supported: write the keys out", key_line
                )
                continue
            key = key_node.value
            if key in first_line:
                self.problem(
                    (*path, key),
                    f"key {key!r} appears twice in this mapping: first at line {first_line[key]}"
                    f", again at line {key_line} (YAML would silently keep only the last)",
                    key_line,
                )
                continue
            first_line[key] = key_line
            out[key] = self.convert(value_node, (*path, key), key_line, depth + 1)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        tag = node.tag
        if tag in (_STR, _TIMESTAMP) or (tag in (_INT, _FLOAT) and _is_text_path(path)):
            # a date or a version is kept as written: 2.10 stays "2.10", 2024-01-10 a string
            return node.value
        if tag in (_INT, _FLOAT, _BOOL, _NULL):
            try:
                return self.constructor.construct_object(node)
            except (ValueError, yaml.YAMLError):
                return node.value
        self.problem(path, f"YAML tag {tag} is not supported here")
        self.refused.add(path)
        return None

    # -------- labels and the schema

    def label(self) -> None:
        """Name list items by id / version / name where that is unique, for readable paths."""

        def unique(items: Any, key: str, base: Path_) -> None:
            if not isinstance(items, list):
                return
            values = [it.get(key) if isinstance(it, dict) else None for it in items]
            counts = collections.Counter(v for v in values if isinstance(v, str))
            for i, v in enumerate(values):
                if isinstance(v, str) and v and counts[v] == 1 and "]" not in v:
                    self.labels[(*base, i)] = v

        data = self.instance if isinstance(self.instance, dict) else {}
        unique(data.get("components"), "id", ("components",))
        unique(data.get("baselines"), "name", ("baselines",))
        comps = data.get("components")
        for i, comp in enumerate(comps if isinstance(comps, list) else []):
            if isinstance(comp, dict):
                unique(comp.get("releases"), "version", ("components", i, "releases"))

    def validate_schema(self) -> None:
        for error in _validator().iter_errors(self.instance):
            self._schema_problem(error)

    def _schema_problem(self, error: Any) -> None:
        path: Path_ = tuple(error.absolute_path)
        if path in self.refused:
            return
        keyword: str = error.validator
        schema: Mapping[str, Any] = error.schema if isinstance(error.schema, dict) else {}
        custom: Mapping[str, str] = schema.get("x-messages", {})
        instance = error.instance
        if "propertyNames" in error.schema_path:  # jsonschema gives the mapping's path
            path = (*path, str(instance))
        if keyword == "additionalProperties" and isinstance(instance, dict):
            known = list(schema.get("properties", {}))
            for key in instance:
                if key not in known:
                    close = difflib.get_close_matches(key, known, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    allowed = f" (allowed here: {_listing(known)})" if known and not close else ""
                    self.problem((*path, key), f"unknown key {key!r}{hint}{allowed}")
            return
        if keyword == "required" and isinstance(instance, dict):
            for key in error.validator_value:
                if key not in instance:
                    self.problem(path, f"missing required key {key!r}")
            return
        if keyword in custom:
            shown = _show(instance) if keyword == "pattern" else ""
            message = f"{shown} {custom[keyword]}" if shown else custom[keyword]
        elif keyword == "type":
            wanted = error.validator_value
            wanted = [wanted] if isinstance(wanted, str) else list(wanted)
            # "number" is accepted beside "string" only for YAML's sake (see the schema)
            names = " or ".join(_JSON_TYPES[w] for w in wanted if w != "number" or len(wanted) == 1)
            shown = _show(instance)
            message = f"must be {names}, not {_describe(instance)}" + (
                f" ({shown})" if shown else ""
            )
            if "string" in wanted and isinstance(instance, int | float):
                message += ": put it in quotes"
        elif keyword == "enum":
            allowed = ", ".join(map(str, error.validator_value))
            close = difflib.get_close_matches(str(instance), map(str, error.validator_value), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            message = f"{instance!r} is not one of: {allowed}{hint}"
        elif keyword == "minItems" and error.validator_value == 1:
            message = "must not be empty"
        elif keyword == "uniqueItems":
            seen: set[str] = set()
            twice: list[str] = []
            for item in instance:
                text = json.dumps(item, sort_keys=True)
                if text in seen:
                    twice.append(_show(item) or text)
                seen.add(text)
            message = f"lists {_listing(twice)} more than once"
        elif keyword == "minLength" and error.validator_value == 1:
            message = "must not be empty"
        else:
            message = error.message
        self.problem(path, message)


# ------------------------------------------------------------------------------ semantic pass


def _holds(v: Version, op: str, x: Version) -> bool:
    if op == "eq":
        return v == x
    if op == "ne":
        return v != x
    if op == "lt":
        return v < x
    if op == "le":
        return v <= x
    if op == "gt":
        return v > x
    return v >= x  # ge


@dataclass
class _Comp:
    """What the semantic pass knows of one component entry."""

    index: int
    id: str | None
    fmt: str | None  # None: missing or unknown
    raw: dict[str, Any]
    parent: str | None = None
    releases: list[tuple[Version, int]] = field(default_factory=list)  # version, index
    by_index: dict[int, Version] = field(default_factory=dict)  # the releases, by file index
    versions: set[Version] = field(default_factory=set)  # the releases' versions
    built_releases: dict[int, Release] = field(default_factory=dict)
    minimum: Version | None = None
    known_bad: list[KnownBad] = field(default_factory=list)

    @property
    def path(self) -> Path_:
        return ("components", self.index)

    def release(self, v: Version) -> Release | None:
        return next((r for r in self.built_releases.values() if r.version == v), None)


class _Builder:
    """The checks a schema cannot express, and the model objects; problems go to the document.
    Works on whatever is well-formed, so one bad entry does not hide the others' problems."""

    def __init__(self, doc: _Document) -> None:
        self.doc = doc
        self.formats = set(known_formats())
        self.comps: list[_Comp] = []
        self.by_id: dict[str, _Comp] = {}
        # hard-requirement edges between components: (from, to) -> path of the first requirement
        self.edges: dict[tuple[str, str], Path_] = {}

    def problem(self, path: Path_, message: str) -> None:
        self.doc.problem(path, message)

    def text(self, path: Path_) -> str | None:
        value = self.doc.get(path)
        return value if isinstance(value, str) and value else None

    def version(self, path: Path_, fmt: str | None) -> Version | None:
        """The version at ``path`` in ``fmt``; a problem if it does not parse. None when it is
        missing, mistyped (the schema said so) or the format is unknown (reported once)."""
        text = self.text(path)
        if text is None or fmt is None:
            return None
        try:
            return parse(text, fmt)
        except VersionError as exc:
            self.problem(path, str(exc))
            return None

    def build(self) -> Catalog | None:
        data = self.doc.instance
        if not isinstance(data, dict):
            return None
        comps = data.get("components")
        for i, raw in enumerate(comps if isinstance(comps, list) else []):
            if isinstance(raw, dict):
                self._register(i, raw)
        for comp in self.comps:
            self._component(comp)
        self._parents()
        self._cycles()
        baselines = self._baselines(data.get("baselines"))
        name = data.get("catalog")
        days = data.get("max_report_age_days", 30)
        if isinstance(days, float) and days.is_integer():
            days = int(days)  # JSON Schema calls 30.0 an integer too (anything else it refuses)
        if self.doc.problems or not isinstance(name, str) or not isinstance(days, int):
            return None
        components = {c.id: self._model(c) for c in self.comps if c.id is not None}
        return Catalog(
            name=name,
            components=MappingProxyType(components),
            baselines=tuple(baselines),
            max_report_age=dt.timedelta(days=days),
        )

    # -------- components

    def _register(self, i: int, raw: dict[str, Any]) -> None:
        cid = raw.get("id")
        cid = cid if isinstance(cid, str) and _ID.match(cid) and cid not in _RESERVED else None
        fmt = raw.get("format")
        comp = _Comp(i, cid, fmt if isinstance(fmt, str) and fmt in self.formats else None, raw)
        if isinstance(fmt, str) and fmt and fmt not in self.formats:
            close = difflib.get_close_matches(fmt, self.formats, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            self.problem(
                (*comp.path, "format"),
                f"unknown version format {fmt!r}; {hint}known: {', '.join(sorted(self.formats))}",
            )
        parent = raw.get("parent")
        comp.parent = parent if isinstance(parent, str) and _ID.match(parent) else None
        self.comps.append(comp)
        if cid is None:
            return
        first = self.by_id.get(cid)
        if first is not None:
            self.problem(
                (*comp.path, "id"),
                f"component id {cid!r} is already used at line {self.doc.line(first.path)}",
            )
            return
        self.by_id[cid] = comp

    def _component(self, comp: _Comp) -> None:
        raw, path = comp.raw, comp.path
        if comp.parent is not None:
            if comp.parent == comp.id:
                self.problem((*path, "parent"), "a component cannot be its own parent")
            elif comp.parent not in self.by_id:
                self.problem(
                    (*path, "parent"),
                    f"parent {comp.parent!r} is not a component of this catalog"
                    + self._suggest(comp.parent),
                )
        self._pci(comp)
        self._activation(comp)
        minimum = raw.get("minimum")
        if isinstance(minimum, dict):
            comp.minimum = self.version((*path, "minimum", "version"), comp.fmt)
        known_bad = raw.get("known_bad")
        for k, entry in enumerate(known_bad if isinstance(known_bad, list) else []):
            if isinstance(entry, dict):
                self._known_bad(comp, k, entry)
        releases = raw.get("releases")
        for r, entry in enumerate(releases if isinstance(releases, list) else []):
            if isinstance(entry, dict):
                v = self.version((*path, "releases", r, "version"), comp.fmt)
                if v is not None:
                    comp.releases.append((v, r))
        self._duplicate_releases(comp)
        for r, entry in enumerate(releases if isinstance(releases, list) else []):
            if isinstance(entry, dict):
                self._release(comp, r, entry)
        self._minimum(comp)

    def _suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self.by_id), n=1)
        return f"; did you mean {close[0]!r}?" if close else ""

    def _pci(self, comp: _Comp) -> None:
        vendor = self.text((*comp.path, "match", "pci", "vendor"))
        if vendor is not None and vendor.lower().removeprefix("0x") == "ffff":
            self.problem(
                (*comp.path, "match", "pci", "vendor"),
                "0xffff is not a PCI vendor: it is what reading an absent device returns",
            )

    def _activation(self, comp: _Comp) -> None:
        releases = comp.raw.get("releases")
        kind = comp.raw.get("kind")
        if not isinstance(kind, str) or kind in ("nic", "hca"):
            return
        for r, entry in enumerate(releases if isinstance(releases, list) else []):
            if isinstance(entry, dict) and entry.get("activation") == "mlxfwreset":
                self.problem(
                    (*comp.path, "releases", r, "activation"),
                    f"mlxfwreset activates NVIDIA NIC/HCA firmware, not a {kind} component's",
                )

    def _known_bad(self, comp: _Comp, k: int, entry: dict[str, Any]) -> None:
        path = (*comp.path, "known_bad", k)
        reason = entry.get("reason")
        reason = reason if isinstance(reason, str) else ""
        line = self.doc.line(path)
        if "version" in entry and "range" not in entry:
            v = self.version((*path, "version"), comp.fmt)
            if v is not None:
                comp.known_bad.append(KnownBad(reason, version=v, line=line))
            return
        rng = entry.get("range")
        if "version" in entry or not isinstance(rng, dict):
            return
        bounds = {b: self.version((*path, "range", b), comp.fmt) for b in ("ge", "gt", "le", "lt")}
        if any(b in rng and bounds[b] is None for b in bounds):
            return
        lower, upper = bounds["ge"] or bounds["gt"], bounds["le"] or bounds["lt"]
        if lower is None and upper is None:
            return
        bad = KnownBad(
            reason,
            lower=lower,
            lower_inclusive=bounds["gt"] is None,
            upper=upper,
            upper_inclusive=bounds["le"] is not None,
            line=line,
        )
        if (
            lower is not None
            and upper is not None
            and (
                lower > upper
                or (lower == upper and not (bad.lower_inclusive and bad.upper_inclusive))
            )
        ):
            self.problem((*path, "range"), f"the range {_range_text(bad)} contains no version")
            return
        comp.known_bad.append(bad)

    def _duplicate_releases(self, comp: _Comp) -> None:
        ordered = sorted(comp.releases, key=lambda vr: (vr[0], vr[1]))
        for (prev, pi), (cur, ci) in itertools.pairwise(ordered):
            if prev == cur:
                first, second = sorted((pi, ci))
                fpath = (*comp.path, "releases", first, "version")
                spath = (*comp.path, "releases", second, "version")
                was = self.text(fpath)
                self.problem(
                    spath,
                    f"release {self.text(spath)!r} is listed twice: it equals {was!r} "
                    f"at line {self.doc.line(fpath)}",
                )
        seen: set[Version] = set()
        unique: list[tuple[Version, int]] = []
        for v, r in comp.releases:
            if v not in seen:
                seen.add(v)
                unique.append((v, r))
        comp.releases = unique
        comp.by_index = {r: v for v, r in unique}
        comp.versions = set(comp.by_index.values())

    def _release(self, comp: _Comp, r: int, entry: dict[str, Any]) -> None:
        path = (*comp.path, "releases", r)
        own = comp.by_index.get(r)
        if own is None:  # bad or duplicate version: reported already
            return
        date = None
        date_text = self.text((*path, "date"))
        if date_text is not None and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", date_text):
            try:
                date = dt.date.fromisoformat(date_text)
            except ValueError as exc:
                self.problem((*path, "date"), f"{date_text!r} is not a date: {exc}")
        upgrade_from = self._upgrade_from(comp, path, own, entry.get("upgrade_from"))
        requires = self._requires(comp, path, own, entry.get("requires"), upgrade_from)
        art = entry.get("artifact")
        artifact = None
        if isinstance(art, dict) and isinstance(art.get("url"), str):
            sha = art.get("sha256")
            if isinstance(sha, str):
                artifact = Artifact(art["url"], sha.lower())
        cves = entry.get("cves")
        comp.built_releases[r] = Release(
            version=own,
            date=date,
            urgency=str(entry.get("urgency", "medium")),
            cves=tuple(str(c) for c in cves) if isinstance(cves, list) else (),
            artifact=artifact,
            activation=str(entry.get("activation", "reboot")),
            requires=tuple(requires),
            upgrade_from=tuple(upgrade_from),
            line=self.doc.line(path),
        )

    def _upgrade_from(self, comp: _Comp, path: Path_, own: Version, raw: Any) -> list[Version]:
        out: list[Version] = []
        if not isinstance(raw, list) or not raw:
            return out
        for u in range(len(raw)):
            upath = (*path, "upgrade_from", u)
            v = self.version(upath, comp.fmt)
            if v is None:
                continue
            if v >= own:
                self.problem(
                    upath, f"{v} is not older than the release {own}: nothing to step from"
                )
            elif v not in comp.versions:
                self.problem(
                    upath,
                    f"{v} is not a release of {comp.id or 'this component'}: list it as a release "
                    "(an artifact is optional) so the upgrade path can be planned",
                )
            elif v in out:
                self.problem(upath, f"{v} is listed twice")
            else:
                out.append(v)
        return out

    def _requires(
        self, comp: _Comp, path: Path_, own: Version, raw: Any, upgrade_from: list[Version]
    ) -> list[Requirement]:
        out: list[Requirement] = []
        own_conditions: list[tuple[str, Version, Path_]] = []
        for q, req in enumerate(raw if isinstance(raw, list) else []):
            qpath = (*path, "requires", q)
            if not isinstance(req, dict):
                continue
            target, op = req.get("component"), req.get("op")
            hard = req.get("hard", True)
            if not isinstance(target, str) or not isinstance(hard, bool):
                continue
            if target == comp.id:
                self.problem(
                    (*qpath, "component"),
                    f"release {own} requires its own component {target!r}: a release cannot "
                    "require itself; use 'self' for the version installed before the update",
                )
                continue
            fmt = self._target_format(comp, qpath, target)
            v = self.version((*qpath, "version"), fmt)
            if v is None or op not in ("eq", "ne", "lt", "le", "gt", "ge"):
                continue
            out.append(Requirement(target, op, v, hard, self.doc.line(qpath)))
            if target == "self" and hard:
                own_conditions.append((op, v, qpath))
            elif hard and comp.id is not None:
                to = comp.parent if target == "parent" else target
                if to is not None and to in self.by_id:
                    self.edges.setdefault((comp.id, to), qpath)
        self._self_conditions(own, own_conditions, upgrade_from)
        return out

    def _target_format(self, comp: _Comp, qpath: Path_, target: str) -> str | None:
        """The format a requirement's version is written in: that of the component it names.
        None when that component is unknown (reported here; an unknown parent is reported with
        the parent key) or its format is (reported with that component)."""
        if target == "self":
            return comp.fmt
        if target == "parent":
            if comp.raw.get("parent") is None:
                self.problem(
                    (*qpath, "component"),
                    "requires 'parent' but the component has no parent: add parent: <id>",
                )
                return None
            found = self.by_id.get(comp.parent or "")
            return found.fmt if found is not None else None
        found = self.by_id.get(target)
        if found is None:
            self.problem(
                (*qpath, "component"),
                f"requires {target!r}, which is not a component of this catalog"
                + self._suggest(target),
            )
            return None
        return found.fmt

    def _self_conditions(
        self,
        own: Version,
        conditions: list[tuple[str, Version, Path_]],
        upgrade_from: list[Version],
    ) -> None:
        """The release requires itself if no version older than it meets its hard ``self``
        conditions: it could never be installed as an update."""
        if not conditions:
            return
        lower: tuple[Version, bool] | None = None  # (bound, inclusive)
        upper: tuple[Version, bool] = (own, False)  # only older versions update to this one
        excluded: list[Version] = []
        for op, v, _ in conditions:
            if op in ("ge", "gt", "eq"):
                cand = (v, op != "gt")
                if lower is None or v > lower[0] or (v == lower[0] and not cand[1]):
                    lower = cand
            if op in ("le", "lt", "eq"):
                cand = (v, op != "lt")
                if v < upper[0] or (v == upper[0] and not cand[1]):
                    upper = cand
            if op == "ne":
                excluded.append(v)
        empty = False
        if lower is not None:
            lo, up = lower[0], upper[0]
            empty = lo > up or (lo == up and not (lower[1] and upper[1] and lo not in excluded))
        where = conditions[0][2]
        wanted = " and ".join(f"self {op} {v}" for op, v, _ in conditions)
        if empty:
            self.problem(
                where,
                f"release {own} requires itself: no version older than {own} meets "
                f"{wanted} ('self' is the version installed before the update), so it could "
                "never be installed",
            )
        elif upgrade_from and not any(
            all(_holds(u, op, v) for op, v, _ in conditions) for u in upgrade_from
        ):
            self.problem(
                where,
                f"no version in upgrade_from ({', '.join(map(str, upgrade_from))}) meets "
                f"{wanted}: release {own} could never be installed",
            )

    def _minimum(self, comp: _Comp) -> None:
        if comp.minimum is None or not comp.releases:
            return
        mpath = (*comp.path, "minimum", "version")
        newest = max(v for v, _ in comp.releases)
        if comp.minimum > newest:
            self.problem(
                mpath,
                f"minimum {comp.minimum} is above the newest release {newest}: "
                "no release could ever satisfy it",
            )
            return
        usable = [
            v
            for v, _ in comp.releases
            if v >= comp.minimum and not any(b.covers(v) for b in comp.known_bad)
        ]
        if not usable:
            self.problem(
                mpath,
                f"every release at or above the minimum {comp.minimum} is known-bad: "
                "there is nothing to install",
            )

    def _parents(self) -> None:
        reported: set[frozenset[str]] = set()
        for comp in self.comps:
            if comp.id is None or comp.id not in self.by_id or self.by_id[comp.id] is not comp:
                continue
            chain = [comp.id]
            cur = comp.parent
            for _ in range(len(self.comps) + 1):
                if cur is None or cur not in self.by_id or cur == chain[-1]:
                    break
                if cur in chain:
                    loop = chain[chain.index(cur) :]
                    if frozenset(loop) not in reported and comp.id == cur:
                        reported.add(frozenset(loop))
                        self.problem(
                            (*comp.path, "parent"),
                            f"parents form a loop: {' -> '.join([*loop, cur])}",
                        )
                    break
                chain.append(cur)
                cur = self.by_id[cur].parent

    def _cycles(self) -> None:
        """Hard requirements between components may form a cycle and still be installable
        (BMC 2.0 needs nothing, BIOS 1.7 needs BMC >= 2.0, BMC 2.5 needs BIOS >= 1.0). So
        releases, not components, are judged: a release is installable once each of its hard
        requirements on another component is met by an installable release of that one (a
        fixpoint). A release that never becomes so, although some release of the component it
        needs would meet the condition, is held by a cycle: reported, with the cycle."""
        todo: dict[tuple[str, int], tuple[_Comp, Release]] = {}
        for comp in self.comps:
            if comp.id is not None:
                for idx, rel in comp.built_releases.items():
                    todo[(comp.id, idx)] = (comp, rel)
        ok: set[tuple[str, int]] = set()
        for _ in range(len(todo) + 1):
            grew = False
            for key, (comp, rel) in todo.items():
                if key not in ok and all(self._met(comp, req, ok) for req in rel.requires):
                    ok.add(key)
                    grew = True
            if not grew:
                break
        graph: dict[str, list[str]] = {}
        for x, y in self.edges:
            graph.setdefault(x, []).append(y)
        # one problem per cycle, at its first stuck release, naming every release it holds
        groups: dict[frozenset[str], list[tuple[_Comp, Release, int, int]]] = {}
        for key, (comp, rel) in sorted(todo.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            if key in ok:
                continue
            j = next(n for n, r in enumerate(rel.requires) if not self._met(comp, r, ok))
            assert comp.id is not None
            cycle = _cycle_through(comp.id, graph, sorted(graph)) if comp.id in graph else []
            groups.setdefault(frozenset(cycle or [comp.id]), []).append((comp, rel, key[1], j))
        for members, stuck in groups.items():
            start = min(members)
            comp, rel, idx, j = min(stuck, key=lambda t: (t[0].id != start, t[0].index, t[2]))
            req = rel.requires[j]
            to = comp.parent if req.component == "parent" else req.component
            assert comp.id is not None
            cycle = _cycle_through(comp.id, graph, sorted(graph)) if comp.id in graph else []
            via = f" (the cycle {' -> '.join(cycle)})" if len(cycle) > 2 else ""
            held = ", ".join(f"{c.id} {r.version.text}" for c, r, _, _ in stuck)
            self.problem(
                (*comp.path, "releases", idx, "requires", j),
                f"hard requirements form a cycle, so no install order satisfies them{via}: "
                f"{comp.id} {rel.version.text} needs {to} {req.op} {req.version.text}, and "
                f"every release of {to} that meets it needs something nothing provides; "
                f"releases that can never be installed: {held} (make one requirement soft: "
                "hard: false)",
            )

    def _met(self, comp: _Comp, req: Requirement, ok: set[tuple[str, int]]) -> bool:
        if not req.hard or req.component == "self":
            return True
        to = comp.parent if req.component == "parent" else req.component
        other = self.by_id.get(to) if to else None
        if other is None or other.id is None:
            return True  # an unknown component is reported elsewhere
        meeting = [
            i
            for i, v in other.by_index.items()
            if v.family == req.version.family and _holds(v, req.op, req.version)
        ]
        if not meeting:
            # only versions outside the catalog meet it (a factory version): not a cycle
            return True
        return any((other.id, i) in ok for i in meeting)

    # -------- baselines

    def _baselines(self, raw: Any) -> list[Baseline]:
        out: list[Baseline] = []
        names: dict[str, int] = {}
        models: dict[str, str] = {}
        for n, entry in enumerate(raw if isinstance(raw, list) else []):
            if not isinstance(entry, dict):
                continue
            path: Path_ = ("baselines", n)
            name = entry.get("name")
            if isinstance(name, str):
                if name in names:
                    self.problem(
                        (*path, "name"),
                        f"baseline {name!r} is already defined at line {names[name]}",
                    )
                else:
                    names[name] = self.doc.line(path) or 0
            sms = entry.get("system_models")
            system_models = [m for m in sms if isinstance(m, str)] if isinstance(sms, list) else []
            for m, model in enumerate(sms if isinstance(sms, list) else []):
                if not isinstance(model, str):
                    continue
                if model in models and models[model] != name:
                    self.problem(
                        (*path, "system_models", m),
                        f"system model {model!r} is already in baseline {models[model]!r}: "
                        "a model has one baseline",
                    )
                else:
                    models.setdefault(model, str(name))
            versions = self._baseline_versions(path, entry.get("versions"), system_models)
            if isinstance(name, str):
                out.append(
                    Baseline(
                        name,
                        tuple(system_models),
                        MappingProxyType(versions),
                        self.doc.line(path),
                    )
                )
        return out

    def _baseline_versions(
        self, path: Path_, raw: Any, system_models: Sequence[str]
    ) -> dict[str, Version]:
        versions: dict[str, Version] = {}
        for cid in raw if isinstance(raw, dict) else {}:
            vpath = (*path, "versions", cid)
            comp = self.by_id.get(cid)
            if comp is None:
                if _ID.match(cid):
                    self.problem(
                        vpath, f"{cid!r} is not a component of this catalog" + self._suggest(cid)
                    )
                continue
            v = self.version(vpath, comp.fmt)
            if v is None:
                continue
            versions[cid] = v
            self._baseline_entry(vpath, comp, v, system_models)
        self._baseline_requirements(path, versions)
        return versions

    def _baseline_entry(
        self, vpath: Path_, comp: _Comp, v: Version, system_models: Sequence[str]
    ) -> None:
        cid = comp.id
        if comp.release(v) is None:
            known = ", ".join(
                str(r.version) for r in sorted(comp.built_releases.values(), key=_by_version)
            )
            self.problem(
                vpath,
                f"{v} is not a release of {cid}" + (f" (releases: {known})" if known else ""),
            )
        bad = next((b for b in comp.known_bad if b.covers(v)), None)
        if bad is not None:
            self.problem(
                vpath, f"{v} is known-bad for {cid}" + (f": {bad.reason}" if bad.reason else "")
            )
        if comp.minimum is not None and v < comp.minimum:
            reason = comp.raw.get("minimum", {}).get("reason")
            why = f": {reason}" if isinstance(reason, str) and reason else ""
            self.problem(vpath, f"{v} is below the minimum {comp.minimum} of {cid}{why}")
        match = comp.raw.get("match")
        comp_models = match.get("system_models") if isinstance(match, dict) else None
        if (
            isinstance(comp_models, list)
            and comp_models
            and system_models
            and not set(system_models) & {m for m in comp_models if isinstance(m, str)}
        ):
            self.problem(
                vpath,
                f"{cid} is for system models {_listing(map(str, comp_models))}, none of "
                f"this baseline's ({_listing(system_models)})",
            )

    def _baseline_requirements(self, path: Path_, versions: Mapping[str, Version]) -> None:
        """A tested set must meet its own hard requirements."""
        for cid, v in versions.items():
            comp = self.by_id[cid]
            release = comp.release(v)
            for req in release.requires if release is not None else ():
                if not req.hard or req.component == "self":
                    continue
                other = comp.parent if req.component == "parent" else req.component
                if other is None or other not in versions:
                    continue
                if not _holds(versions[other], req.op, req.version):
                    self.problem(
                        (*path, "versions", cid),
                        f"{cid} {v} requires {other} {req.op} {req.version} (line {req.line}), "
                        f"but this baseline has {other} {versions[other]}",
                    )

    # -------- the model

    def _model(self, comp: _Comp) -> Component:
        raw = comp.raw
        match = raw.get("match") if isinstance(raw.get("match"), dict) else {}
        assert isinstance(match, dict)
        pci = match.get("pci") if isinstance(match.get("pci"), dict) else {}
        assert isinstance(pci, dict)

        def hex16(key: str) -> int | None:
            value = pci.get(key)
            return int(value, 16) if isinstance(value, str) else None

        def strings(key: str) -> tuple[str, ...]:
            value = match.get(key)
            return tuple(str(x) for x in value) if isinstance(value, list) else ()

        minimum = raw.get("minimum")
        assert comp.id is not None and comp.fmt is not None
        return Component(
            id=comp.id,
            kind=str(raw["kind"]),
            format=comp.fmt,
            match=Match(
                system_models=strings("system_models"),
                pci_vendor=hex16("vendor"),
                pci_device=hex16("device"),
                pci_subvendor=hex16("subvendor"),
                pci_subdevice=hex16("subdevice"),
                psids=strings("psids"),
                software_ids=strings("software_ids"),
            ),
            name=str(raw.get("name", "")),
            releases=tuple(sorted(comp.built_releases.values(), key=_by_version)),
            minimum=comp.minimum,
            minimum_reason=str(minimum.get("reason", "")) if isinstance(minimum, dict) else "",
            known_bad=tuple(comp.known_bad),
            parent=comp.parent,
            line=self.doc.line(comp.path),
        )


def _by_version(r: Release) -> Version:
    return r.version


def _range_text(b: KnownBad) -> str:
    lo = f"{b.lower} {'<=' if b.lower_inclusive else '<'} " if b.lower is not None else ""
    up = f" {'<=' if b.upper_inclusive else '<'} {b.upper}" if b.upper is not None else ""
    return f"{lo}v{up}"


def _cycle_through(
    start: str, graph: Mapping[str, Sequence[str]], group: Sequence[str]
) -> list[str]:
    """A shortest cycle from ``start`` back to it inside ``group`` (breadth first)."""
    members = set(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    for _ in range(len(members)):
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    path = [start]
                    cur = node
                    for _ in range(len(members)):
                        if cur == start:
                            break
                        path.append(cur)
                        cur = came_from[cur]
                    return [start, *reversed(path[1:]), start]
                if nxt in members and nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start, start]  # unreachable for a strongly connected group
