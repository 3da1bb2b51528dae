"""Saved scan patterns, per folder, in one JSON file in the user's Jupyter data directory.

Not in the scan folder itself: scans are often shared read-only between group members, and a person's
saved views should follow them, not the data. Keys are folder paths relative to the server root.
"""

from __future__ import annotations

import builtins  # the method `list` below shadows the builtin in the class body
import json
import os
import tempfile
import threading
import time
from pathlib import Path

MAX_PER_FOLDER = 50
MAX_NAME = 100


class StoreError(ValueError):
    """A request the store refuses (HTTP 400)."""


class PatternStore:
    def __init__(self, file: str | Path):
        self.file = Path(file)
        self._lock = threading.Lock()  # handlers run in one loop, but be safe with executor threads

    def _read(self) -> dict[str, list[dict]]:
        try:
            data = json.loads(self.file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # A damaged file must not lock the user out of the browser; it is replaced on the next save.
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a crash mid-write leaves the old file, never half a file.
        fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=".scan-patterns-")
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(tmp, self.file)

    def list(self, folder: str) -> list[dict]:
        return list(self._read().get(folder, []))

    def save(self, folder: str, name: object, pattern: str) -> builtins.list[dict]:
        if not isinstance(name, str) or not name.strip():
            raise StoreError("give the saved pattern a name")
        name = name.strip()
        if len(name) > MAX_NAME:
            raise StoreError(f"the name is longer than {MAX_NAME} characters")
        with self._lock:
            data = self._read()
            entries = [e for e in data.get(folder, []) if e.get("name") != name]
            if len(entries) >= MAX_PER_FOLDER:
                raise StoreError(f"this folder already has {MAX_PER_FOLDER} saved patterns; delete one first")
            entries.append({"name": name, "pattern": pattern, "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            data[folder] = entries
            self._write(data)
            return entries

    def delete(self, folder: str, name: str) -> bool:
        with self._lock:
            data = self._read()
            entries = data.get(folder, [])
            kept = [e for e in entries if e.get("name") != name]
            if len(kept) == len(entries):
                return False
            if kept:
                data[folder] = kept
            else:
                data.pop(folder, None)
            self._write(data)
            return True
