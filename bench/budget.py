"""Shared by the benchmarks in this folder (run as ``python bench/NAME.py``, so this folder is
on sys.path)."""

from __future__ import annotations

import os
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Budget:
    """A wall-clock budget for the whole run: every loop checks it as well as its count."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def check(self, what: str) -> None:
        if self.left() <= 0:
            raise TimeoutError(f"time budget exhausted during {what}")


def proc_cpu(pid: int) -> float:
    """user + system CPU seconds of one live process (0 if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)
