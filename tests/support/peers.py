"""One rule for a test whose peer (PostgreSQL, ipmitool, busybox, sushy-tools, root for network
namespaces) is missing: under CI it fails; locally it skips with what to install.

CI is recognised by the environment variable CI (``.ci/run`` sets it), so a CI machine that lacks
a peer can never turn tests into silent skips.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(why: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"missing test peer under CI: {why}")
    pytest.skip(why)
