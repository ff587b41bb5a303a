"""The rule behind every peer check: under CI a missing peer fails the test; only a local run
may skip (tests/support/peers.py). `.ci/run` sets CI."""

from __future__ import annotations

import pytest

from tests.support import peers


def test_missing_peer_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="missing test peer under CI: apt-get x"):
        peers.missing("apt-get x")


def test_missing_peer_skips_only_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="apt-get x"):
        peers.missing("apt-get x")


def test_ci_run_sets_ci() -> None:
    from pathlib import Path

    run = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert 'export CI="${CI:-true}"' in run
