"""Stopping child processes that run in a session of their own (``start_new_session=True``):
the lab's servers, daemons started by tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any


def stop_group(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM to ``proc``'s process group (its pid: it leads its own session), SIGKILL to the
    group if it is still there after ``grace`` seconds; the process is reaped either way. Never
    signals anything but that group; a process that already ended is only reaped."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
