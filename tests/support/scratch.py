"""Scratch folders other Unix users (the demo users, the servers they run) can traverse."""

from __future__ import annotations

import tempfile
from pathlib import Path


def scratch_dir(prefix: str) -> Path:
    """A world-traversable folder under /var/tmp (pytest's tmp is 0700 and its paths are too
    long for a unix socket); the caller removes it."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(0o755)
    return path
