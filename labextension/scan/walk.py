"""Walk a scan folder: every file below it, as a POSIX path relative to it, up to a cap.

Symbolic links: a linked file is listed only if its target is inside the server root; linked folders are
not entered (that avoids cycles, and a link out of the root must not widen what the API can list).
Hidden files and folders (names starting with '.') are skipped unless the server allows hidden files,
like the Lab's file browser.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import is_inside


@dataclass
class Walk:
    files: list[tuple[str, int]] = field(default_factory=list)  # (relative path, size in bytes)
    truncated: bool = False  # stopped at the cap
    skipped_links: int = 0  # links out of the root, or to folders


def walk(folder: Path, real_root: Path, *, max_files: int, allow_hidden: bool = False) -> Walk:
    """Files below ``folder`` (already resolved and checked to be inside ``real_root``), sorted by path."""
    out = Walk()
    stack = [(folder, "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue  # unreadable folder: list what we can
        for entry in entries:
            if not allow_hidden and entry.name.startswith("."):
                continue
            rel = prefix + entry.name
            try:
                if entry.is_symlink():
                    target = Path(entry.path).resolve()
                    if entry.is_dir() or not is_inside(real_root, target) or not target.is_file():
                        out.skipped_links += 1
                        continue
                    out.files.append((rel, target.stat().st_size))
                elif entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), rel + "/"))
                    continue
                elif entry.is_file(follow_symlinks=False):
                    out.files.append((rel, entry.stat(follow_symlinks=False).st_size))
                else:
                    continue
            except OSError:
                continue
            if len(out.files) >= max_files:
                out.truncated = True
                out.files.sort()
                return out
    out.files.sort()
    return out
