"""SLURM hostlist expressions, as `scontrol show hostnames` reads them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisiond.hostlist import HostlistError, compress, expand


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("node01", ["node01"]),
        ("node[01-03]", ["node01", "node02", "node03"]),
        ("node[01-02,20],gpu[1-2]", ["node01", "node02", "node20", "gpu1", "gpu2"]),
        ("n[8-11]", ["n8", "n9", "n10", "n11"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("a,b,a", ["a", "b"]),
        ("node[098-101]", ["node098", "node099", "node100", "node101"]),
        ("[1-2]x", ["1x", "2x"]),
    ],
)
def test_expand(text: str, names: list[str]) -> None:
    assert expand(text) == names


@pytest.mark.parametrize(
    ("text", "message", "at"),
    [
        ("", "empty hostlist", 1),
        ("node[1-3", "'[' not closed", 5),
        ("node1-3]", "']' without '['", 8),
        ("node[[1]]", "nested '['", 6),
        ("node[3-1]", "runs backwards", 6),
        ("node[a-b]", "not a number", 6),
        ("node[1-2],,x", "empty name", 11),
        ("no de", "white space", 3),
        ("node$1", "not a host name part", 1),
        ("node[1-200000]", "more than 100000 hosts", 6),
    ],
)
def test_bad_expressions_say_what_and_where(text: str, message: str, at: int) -> None:
    with pytest.raises(HostlistError) as info:
        expand(text)
    assert message in str(info.value)
    assert info.value.position + 1 == at, str(info.value)


def test_the_limit_bounds_products_too() -> None:
    with pytest.raises(HostlistError, match="more than 1000 hosts"):
        expand("a[1-100]b[1-100]", limit=1000)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["node", "gpu", "r1n", "x-"]),
            st.integers(0, 300),
            st.sampled_from([0, 2, 3]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_compress_then_expand_gives_the_same_hosts(items: list[tuple[str, int, int]]) -> None:
    names = [f"{p}{str(n).zfill(w)}" for p, n, w in items]
    assert set(expand(compress(names))) == set(names)
