"""Suggest a pattern from the tree's ``name_value`` folders, and a few presets.

Scans usually write one folder level per parameter, named ``<parameter>_<value>`` (or ``=``/``-``):
``lr_0.01/layers_3/seed_1/roc.png``. For each depth we look at the folder names found there; if they share
a prefix that ends in a separator, that prefix names the parameter, otherwise the level becomes a generic
axis ``level<N>``. The file name becomes an axis only if the leaf folders hold several different files.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from .kinds import KINDS

SEPARATORS = "_=-"
#: How many folder entries the suggestion looks at; it is a hint, the match walks everything.
SAMPLE_ENTRIES = 5000


def _sample(folder: Path, allow_hidden: bool) -> tuple[list[list[str]], list[str]]:
    """Folder names per depth, and relative paths of files (a bounded breadth-first sample)."""
    levels: list[set[str]] = []
    files: list[str] = []
    queue = [(folder, 0, "")]
    seen = 0
    while queue and seen < SAMPLE_ENTRIES:
        directory, depth, prefix = queue.pop(0)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if not allow_hidden and entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                while len(levels) <= depth:
                    levels.append(set())
                levels[depth].add(entry.name)
                queue.append((Path(entry.path), depth + 1, prefix + entry.name + "/"))
            elif entry.is_file():
                files.append(prefix + entry.name)
    return [sorted(level) for level in levels], files


#: A parameter name: words that each start with a letter ("lr", "learning_rate", "conv2d"), so that in
#: "lr_1e-3" the key is "lr", not "lr_1e".
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[_=-][A-Za-z][A-Za-z0-9]*)*")


def _common_key(names: list[str]) -> str | None:
    """'lr_' for ['lr_0.1', 'lr_0.01']: the longest shared prefix that is a parameter name and a separator."""
    prefix = os.path.commonprefix(names)
    keys = [prefix[: i + 1] for i, ch in enumerate(prefix) if ch in SEPARATORS and _KEY.fullmatch(prefix[:i])]
    if not keys or any(len(n) == len(keys[-1]) for n in names):
        return None
    return keys[-1]


def _group_name(key: str, used: set[str]) -> str:
    name = re.sub(r"\W", "_", key.rstrip(SEPARATORS)) or "p"
    if name[0].isdigit():
        name = "p_" + name
    base, n = name, 2
    while name in used:
        name, n = f"{base}{n}", n + 1
    used.add(name)
    return name


def suggest(folder: Path, allow_hidden: bool = False) -> dict:
    levels, files = _sample(folder, allow_hidden)
    # The depth at which most files sit: the folder levels above it are the parameters.
    depths = Counter(f.count("/") for f in files)
    depth = depths.most_common(1)[0][0] if depths else 0
    leaf_files = [f for f in files if f.count("/") == depth]
    exts = Counter(f.rsplit(".", 1)[-1].lower() for f in leaf_files if "." in f.rsplit("/", 1)[-1])
    # Ties go to what the grid shows best: images, then PDFs.
    ext = max(exts, key=lambda e: (exts[e], e in KINDS["image"], e == "pdf")) if exts else None
    used: set[str] = set()
    parts = []
    for d in range(depth):
        names = levels[d] if d < len(levels) else []
        key = _common_key(names) if len(names) > 1 else None
        if key:
            parts.append(f"{re.escape(key)}(?P<{_group_name(key, used)}>[^/]+)")
        else:
            parts.append(f"(?P<{_group_name(f'level{d + 1}', used)}>[^/]+)")
    stems = {f.rsplit("/", 1)[-1] for f in leaf_files if ext and f.lower().endswith("." + ext)}
    if ext is None:
        parts.append(f"(?P<{_group_name('file', used)}>[^/]+)")
    elif len(stems) == 1:
        parts.append(re.escape(next(iter(stems))))
    else:
        parts.append(f"(?P<{_group_name('file', used)}>[^/]+)\\.{re.escape(ext)}")
    suggestion = "/".join(parts)
    if not used:  # files directly in the folder, all with one name: nothing varies
        suggestion = f"(?P<file>[^/]+)\\.{re.escape(ext)}" if ext else "(?P<file>[^/]+)"

    by_level = "/".join(f"(?P<level{d + 1}>[^/]+)" for d in range(depth))
    image_exts = "|".join(sorted(KINDS["image"]))
    presets = [
        {"name": "name_value folders (suggested)", "pattern": suggestion},
        {
            "name": "one axis per folder level, images",
            "pattern": (by_level + "/" if by_level else "") + f"(?P<file>[^/]+)\\.(?:{image_exts})",
        },
        {
            "name": "one axis per folder level, all files",
            "pattern": (by_level + "/" if by_level else "") + "(?P<file>[^/]+)",
        },
        {"name": "PDFs anywhere, by folder", "pattern": r"(?P<folder>.+)/(?P<file>[^/]+)\.pdf"},
    ]
    return {"pattern": suggestion, "depth": depth, "extension": ext, "presets": presets}
