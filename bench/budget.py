"""Shared by the benchmarks in this folder (run as ``python bench/NAME.py``, so this folder is
on sys.path)."""

from __future__ import annotations

import time


class Budget:
    """A wall-clock budget for the whole run: every loop checks it as well as its count."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def check(self, what: str) -> None:
        if self.left() <= 0:
            raise TimeoutError(f"time budget exhausted during {what}")
