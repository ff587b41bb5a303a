"""A lab device's control file: a JSON object (faults, LLDP neighbours) re-read whenever it
changes, so a test or an operator can change a running lab device's behaviour."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class WatchedJson:
    """``changed()`` answers the file's JSON object when the file changed (size, mtime or inode)
    since the last call, ``{}`` when it disappeared, None when it did not change (or there is
    no file to watch). Content that is not a JSON object raises ValueError (and counts as
    seen: the caller keeps what it had until the file changes again)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None

    def changed(self) -> dict[str, Any] | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
            key: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            key = None
        if key == self._seen:
            return None
        self._seen = key
        if key is None:
            return {}
        data = json.loads(self.path.read_text())
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data
