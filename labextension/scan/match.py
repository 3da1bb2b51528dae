"""A scan: walk the folder, match every relative path against the pattern, build axes, page the files."""

from __future__ import annotations

from pathlib import Path

from .axes import build_axes
from .kinds import kind_of
from .pattern import Deadline, fullmatch
from .walk import walk


def scan(
    real_root: Path,
    folder: Path,
    rel_folder: str,
    compiled,
    *,
    max_files: int,
    regex_timeout: float,
    offset: int = 0,
    limit: int,
    allow_hidden: bool = False,
) -> dict:
    """The JSON answer of POST /condorhub/api/scan/match (see handlers.MatchHandler)."""
    walked = walk(folder, real_root, max_files=max_files, allow_hidden=allow_hidden)
    deadline = Deadline(regex_timeout)
    names = list(sorted(compiled.groupindex, key=compiled.groupindex.get))
    matched = []
    for rel, size in walked.files:
        m = fullmatch(compiled, rel, deadline)
        if m is not None:
            matched.append((rel, size, {n: m.group(n) for n in names}))
    page = matched[offset : offset + limit]
    prefix = f"{rel_folder}/" if rel_folder else ""
    messages = []
    if walked.truncated:
        messages.append(
            f"the folder has more than {max_files} files; only the first {max_files} were matched — "
            "open a sub-folder to see all of its files"
        )
    if offset + limit < len(matched):
        messages.append(
            f"showing matches {offset + 1}–{offset + len(page)} of {len(matched)}; ask with offset for more"
        )
    return {
        "path": rel_folder,
        "pattern": compiled.pattern,
        "axes": build_axes(names, [params for _, _, params in matched]),
        "files": [
            {"path": prefix + rel, "relative": rel, "params": params, "kind": kind_of(rel), "size": size}
            for rel, size, params in page
        ],
        "total_files": len(walked.files),
        "total_matches": len(matched),
        "offset": offset,
        "truncated": walked.truncated or offset + limit < len(matched),
        "message": "; ".join(messages) or None,
    }
