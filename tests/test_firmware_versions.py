"""firmware_db.versions: fwupd-style formats round-trip, order like their raw integers, refuse
what does not match, and never compare across families."""

from __future__ import annotations

import functools
import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_db import versions
from firmware_db.versions import (
    FORMATS,
    Version,
    VersionError,
    compare,
    from_raw,
    known_formats,
    parse,
    register,
    sort_key,
)

U32 = st.integers(0, 0xFFFFFFFF)
_BCD_BYTE = st.integers(0, 99).map(lambda n: (n // 10) << 4 | n % 10)
# raws each integer format can render (the layouts are the test's own, from fwupd)
RAWS: dict[str, st.SearchStrategy[int]] = {
    "number": U32,
    "pair": U32,
    "triplet": U32,
    "quad": U32,
    "hex": U32,
    "intel-me": U32,
    "intel-me2": U32,
    "surface": U32,
    "surface-legacy": U32,
    "bcd": st.tuples(_BCD_BYTE, _BCD_BYTE, _BCD_BYTE, _BCD_BYTE).map(
        lambda b: b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]
    ),
    "dell-bios": st.integers(0, 0xFFFFFF),
    "dell-bios-msb": st.integers(0, 0xFFFFFF).map(lambda x: x << 8),
}
INTEGER_FORMATS = sorted(RAWS)
# the text shape of each integer format, written independently of the module
SHAPES = {name: r"[0-9]+(\.[0-9]+)" + f"{{{n}}}" for name, n in (
    ("number", 0), ("pair", 1), ("triplet", 2), ("quad", 3), ("bcd", 3), ("intel-me", 3),
    ("intel-me2", 3), ("dell-bios", 2), ("dell-bios-msb", 2), ("surface", 2),
    ("surface-legacy", 2),
)} | {"hex": r"0x[0-9a-fA-F]{1,8}"}  # fmt: skip


def sign(n: int) -> int:
    return (n > 0) - (n < 0)


def test_known_formats() -> None:
    assert set(INTEGER_FORMATS) | {"plain", "dotted"} == set(known_formats())
    assert known_formats() == sorted(FORMATS)
    assert all(FORMATS[f].integer for f in INTEGER_FORMATS)
    assert not FORMATS["plain"].integer and not FORMATS["dotted"].integer


@pytest.mark.parametrize(
    ("raw", "fmt", "text"),
    [  # fwupd's own fu_version_from_uint32 vectors (libfwupdplugin self tests)
        (0xFF000100, "quad", "255.0.1.0"),
        (0xFF01, "triplet", "0.0.65281"),
        (0xFF000100, "triplet", "255.0.256"),
        (0xFF000100, "number", "4278190336"),
        (0x0, "intel-me", "11.0.0.0"),
        (0xFFFFFFFF, "intel-me", "18.31.255.65535"),
        (0x0B32057A, "intel-me", "11.11.50.1402"),
        (0xB8320D84, "intel-me2", "11.8.50.3460"),
        (0x226A4B00, "surface-legacy", "137.2706.768"),
        (0x6001988, "surface", "6.25.136"),
        (0x00FF0001, "dell-bios", "255.0.1"),
        (0xC8, "hex", "0x000000c8"),
        (0x00010203, "pair", "1.515"),
        (0x01100999, "bcd", "1.10.9.99"),
        (0x01020300, "dell-bios-msb", "1.2.3"),
    ],
)
def test_fwupd_renderings(raw: int, fmt: str, text: str) -> None:
    v = from_raw(raw, fmt)
    assert (v.text, v.format, v.raw, v.key) == (text, fmt, raw, (raw,))
    assert parse(text, fmt).raw == raw


@pytest.mark.parametrize(
    ("text", "fmt", "raw"),
    [
        ("28.39.1002", "triplet", 28 << 24 | 39 << 16 | 1002),  # ConnectX
        ("2.78", "pair", 2 << 16 | 78),  # HPE iLO
        ("01.01.07", "triplet", 1 << 24 | 1 << 16 | 7),  # Supermicro BMC
        ("2.19.1", "dell-bios", 2 << 16 | 19 << 8 | 1),  # Dell BIOS
        ("7.10.30.00", "quad", 7 << 24 | 10 << 16 | 30 << 8),  # BMC
        ("16.1.25.2124", "intel-me", (16 - 11) << 29 | 1 << 24 | 25 << 16 | 2124),  # CSME 16
        ("0x2", "hex", 2),
        ("  1.2.3\n", "triplet", 1 << 24 | 2 << 16 | 3),  # surrounding whitespace is stripped
    ],
)
def test_real_world(text: str, fmt: str, raw: int) -> None:
    v = parse(text, fmt)
    assert v.raw == raw and v.text == text.strip() and v.format == fmt
    assert v == from_raw(raw, fmt) and hash(v) == hash(from_raw(raw, fmt))


def test_leading_zeros_keep_the_text() -> None:
    v = parse("01.01.07", "triplet")
    assert v.text == "01.01.07" and str(v) == "01.01.07"
    assert v == parse("1.1.7", "triplet") and from_raw(v.raw or 0, "triplet").text == "1.1.7"
    assert parse("0x00000002", "hex") == parse("0x2", "hex")  # as fwupd's vercmp test


@pytest.mark.parametrize(
    ("text", "fmt", "why"),
    [
        ("1.2", "triplet", "2 field(s), not 3"),
        ("1.2.3.4", "triplet", "4 field(s)"),
        ("256.0.0", "triplet", "outside 0..255"),
        ("0.0.65536", "triplet", "outside 0..65535"),
        ("65536.0", "pair", "outside"),
        ("1.2.3.256", "quad", "outside"),
        ("4294967296", "number", "outside"),
        ("0x100000000", "hex", "hex digits"),
        ("0X10", "hex", "hex digits"),
        ("10", "hex", "hex digits"),
        ("10.0.0.0", "intel-me", "outside 11..18"),
        ("19.0.0.0", "intel-me", "outside 11..18"),
        ("16.0.0.0", "intel-me2", "outside 0..15"),
        ("0.0.0.100", "bcd", "outside 0..99"),
        ("256.0.0", "dell-bios", "outside"),
        ("+1.2.3", "triplet", "not decimal digits"),
        ("-1", "number", "not decimal digits"),
        ("1..3", "triplet", "not decimal digits"),
        ("1.2.3.", "quad", "not decimal digits"),
        ("1. 2.3", "triplet", "not decimal digits"),
        ("1_000", "number", "not decimal digits"),
        ("\u0661.2.3", "triplet", "not decimal digits"),  # an Arabic-Indic digit
        ("", "number", "not decimal digits"),
        ("", "triplet", "1 field(s), not 3"),
        ("1" + "0" * 5000, "number", "outside"),
        ("", "plain", "plain"),
        ("a\tb", "plain", "plain"),
        ("", "dotted", "empty"),
        ("1..2", "dotted", "empty section"),
        (".1", "dotted", "empty section"),
        ("1.", "dotted", "empty section"),
        ("1.-2", "dotted", "empty section"),
        ("1 2", "dotted", "whitespace"),
    ],
)
def test_refused(text: str, fmt: str, why: str) -> None:
    with pytest.raises(VersionError, match=re.escape(why)) as caught:
        parse(text, fmt)
    assert f"{text.strip()!r}" in str(caught.value) or repr(text) in str(caught.value)
    assert f"is not a {fmt} version" in str(caught.value)


def test_error_message_names_text_and_format() -> None:
    with pytest.raises(VersionError) as caught:
        parse("1.2", "triplet")
    assert str(caught.value).startswith("'1.2' is not a triplet version (N.N.N, 8.8.16 bits)")


def test_not_text_is_refused() -> None:
    with pytest.raises(VersionError, match="float"):
        parse(2.78, "pair")  # type: ignore[arg-type]  # YAML's unquoted 2.78


@pytest.mark.parametrize(
    ("raw", "fmt"),
    [
        (-1, "triplet"),
        (1 << 32, "quad"),
        (True, "number"),
        (0x01000000, "dell-bios"),  # fwupd would drop the top byte: not reversible
        (0x01, "dell-bios-msb"),  # ... and dell-bios-msb the low one
        (0x0A, "bcd"),  # not BCD (fwupd renders 0x0a and 0x10 both as 10)
        (1, "plain"),
        (1, "dotted"),
    ],
)
def test_from_raw_refused(raw: int, fmt: str) -> None:
    with pytest.raises(VersionError):
        from_raw(raw, fmt)


def test_unknown_format() -> None:
    with pytest.raises(VersionError, match=r"unknown version format 'semver' \(known: .*triplet"):
        parse("1.2.3", "semver")
    with pytest.raises(VersionError, match="unknown version format"):
        from_raw(1, "semver")


def test_cross_family_comparison_raises() -> None:
    t, d, p = parse("1.2.3", "triplet"), parse("1.2.3", "dotted"), parse("1.2.3", "plain")
    for a, b in [(t, d), (d, p), (p, t)]:
        with pytest.raises(VersionError, match="cannot compare"):
            compare(a, b)
        with pytest.raises(VersionError):
            _ = a < b
        with pytest.raises(VersionError):
            _ = a >= b
        assert a != b  # equality never raises: different families are simply not equal
    assert {t.family, d.family, p.family} == {"integer", "dotted", "plain"}
    assert len({t, d, p}) == 3


def test_integer_family_spans_formats() -> None:
    raw = 0x01020003
    same = [from_raw(raw, f) for f in ("number", "hex", "triplet", "quad", "pair", "intel-me2")]
    assert [v.text for v in same[:4]] == ["16908291", "0x01020003", "1.2.3", "1.2.0.3"]
    assert len(set(same)) == 1 and all(compare(same[0], v) == 0 for v in same)
    assert parse("1.2.3", "triplet") < parse("1.2.1.0", "quad")


def test_dotted_order() -> None:
    ascending = [
        "A01",  # a leading text sorts before any leading number
        "A02",
        "A10",
        "1.A",  # text sorts before a number in the same place
        "1.0~rc1",
        "1.0",
        "1.0.1",
        "1.0.23",
        "1.0.23-rc1",
        "1.0.23-rc9",
        "1.0.23-rc10",
        "1.0a",
        "1.0b",
        "1.1",
        "2.14.1",
        "2.14.1a",
        "22.39.1002",
    ]
    got = [parse(t, "dotted") for t in ascending]
    for a, b in itertools.pairwise(got):
        assert a < b, (a.text, b.text)
    assert sorted(reversed(got), key=sort_key) == got
    assert parse("001.002.003", "dotted") == parse("1.2.3", "dotted")  # as fwupd
    assert parse("1.0-1", "dotted") == parse("1.0_1", "dotted") == parse("1.0.1", "dotted")
    assert parse("alpha", "dotted") < parse("beta", "dotted")


def test_plain_order() -> None:
    assert parse("B", "plain") < parse("a", "plain")  # plain string order, case-sensitive
    assert parse("A01", "plain") != parse("a01", "plain")
    assert parse(" v 1 ", "plain").text == "v 1"


class _Byte:
    """A small integer format of the test's own: one byte, in decimal."""

    name = "test-byte"
    integer = True

    def parse(self, text: str) -> Version:
        if not re.fullmatch(r"[0-9]{1,3}", text) or int(text) > 255:
            raise VersionError(f"{text!r} is not a {self.name} version (N, 8 bits)")
        return Version(text, self.name, (int(text),), int(text))

    def from_raw(self, value: int) -> Version:
        return self.parse(str(value))


def test_register() -> None:
    try:
        register(_Byte())
        assert "test-byte" in known_formats() and "test-byte" in FORMATS
        assert parse("5", "test-byte") == parse("5", "number") < from_raw(6, "test-byte")
        with pytest.raises(VersionError, match="already registered"):
            register(_Byte())
    finally:
        versions._REGISTRY.pop("test-byte", None)
    with pytest.raises(VersionError, match="already registered"):
        register(FORMATS["triplet"])
    with pytest.raises(TypeError):
        register(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        FORMATS["x"] = FORMATS["plain"]  # type: ignore[index]


# --- properties -----------------------------------------------------------------------------

fmts = st.sampled_from(INTEGER_FORMATS)


@given(st.data())
def test_round_trip(data: st.DataObject) -> None:
    fmt = data.draw(fmts)
    raw = data.draw(RAWS[fmt])
    v = from_raw(raw, fmt)
    assert re.fullmatch(SHAPES[fmt], v.text)
    back = parse(v.text, fmt)
    assert (back.raw, back.text, back.format) == (raw, v.text, fmt)
    assert back == v and hash(back) == hash(v)


@given(st.data())
def test_order_follows_raw(data: st.DataObject) -> None:
    fmt = data.draw(fmts)
    x, y = data.draw(RAWS[fmt]), data.draw(RAWS[fmt])
    a, b = parse(from_raw(x, fmt).text, fmt), parse(from_raw(y, fmt).text, fmt)
    assert compare(a, b) == sign(x - y) == -compare(b, a)
    assert (a < b, a == b, a > b) == (x < y, x == y, x > y)
    assert (sort_key(a) < sort_key(b)) == (x < y)


@given(U32, U32)
def test_triplet_and_quad_are_one_family(x: int, y: int) -> None:
    assert from_raw(x, "triplet") == from_raw(x, "quad")
    assert hash(from_raw(x, "triplet")) == hash(from_raw(x, "quad"))
    assert compare(from_raw(x, "triplet"), from_raw(y, "quad")) == sign(x - y)
    assert compare(parse(from_raw(x, "triplet").text, "triplet"), from_raw(y, "hex")) == sign(x - y)


DOTTED = st.from_regex(r"[0-9a-zA-Z~]{1,4}([._-][0-9a-zA-Z~]{1,4}){0,4}", fullmatch=True)
PLAIN = st.text(min_size=1, max_size=12).filter(lambda s: s == s.strip() and s.isprintable())
INTS = st.sampled_from(INTEGER_FORMATS).flatmap(
    lambda f: RAWS[f].map(lambda raw: parse(from_raw(raw, f).text, f))
)


def _family_sample(fmt: str) -> st.SearchStrategy[Version]:
    if fmt == "integer":
        return INTS
    return (DOTTED if fmt == "dotted" else PLAIN).map(lambda t: parse(t, fmt))


@pytest.mark.parametrize("family", ["integer", "dotted", "plain"])
@given(data=st.data())
def test_order_is_total_and_consistent(family: str, data: st.DataObject) -> None:
    a, b, c = (data.draw(_family_sample(family)) for _ in range(3))
    for x, y in [(a, b), (b, c), (a, c)]:
        assert compare(x, y) == -compare(y, x)
        assert (compare(x, y) == 0) == (x == y) == (sort_key(x) == sort_key(y))
        assert (x < y) == (sort_key(x) < sort_key(y))
        if x == y:
            assert hash(x) == hash(y)
    if a <= b and b <= c:
        assert a <= c
    if a < b and b < c:
        assert a < c
    trio = [a, b, c]
    assert sorted(trio, key=sort_key) == sorted(trio, key=functools.cmp_to_key(compare))


def _mutate(text: str, which: int, at: int) -> str:
    """An edit that makes any valid integer-format text invalid (at: where, for the positional)."""
    inner = 1 + at % (len(text) - 1) if len(text) > 1 else 0
    anywhere = at % (len(text) + 1)
    edits = [
        text[:inner] + " " + text[inner:] if inner else text + " " + text,  # whitespace inside
        "+" + text,
        "-" + text,
        text + ".0",  # a field too many
        text + ".",
        "." + text,
        text.replace(".", "..", 1) if "." in text else text + "z",
        text[:anywhere] + "z" + text[anywhere:],
        text.rsplit(".", 1)[0] if "." in text else "",  # a field too few
        text.replace(text[-1], "\u0661", 1),  # a non-ASCII digit
    ]
    return edits[which]


@given(st.data(), st.integers(0, 9), st.integers(0, 64))
def test_wrong_shapes_raise(data: st.DataObject, which: int, at: int) -> None:
    fmt = data.draw(fmts)
    text = from_raw(data.draw(RAWS[fmt]), fmt).text
    bad = _mutate(text, which, at)
    with pytest.raises(VersionError):
        parse(bad, fmt)


@given(st.data(), st.text(max_size=20))
def test_random_text_is_a_version_or_an_error(data: st.DataObject, text: str) -> None:
    fmt = data.draw(st.sampled_from([*INTEGER_FORMATS, "dotted"]))
    try:
        v = parse(text, fmt)
    except VersionError:
        return
    assert v.text == text.strip()
    if fmt == "dotted":
        assert v.text and not any(ch.isspace() for ch in v.text)
        return
    assert re.fullmatch(SHAPES[fmt], v.text, re.ASCII)
    assert v.raw is not None and parse(from_raw(v.raw, fmt).text, fmt) == v


@given(st.text(alphabet="0123456789.x+- a", max_size=12))
def test_integer_parse_matches_the_shape(text: str) -> None:
    for fmt in INTEGER_FORMATS:
        shaped = re.fullmatch(SHAPES[fmt], text.strip()) is not None
        try:
            parse(text, fmt)
        except VersionError:
            continue
        assert shaped, (text, fmt)
