"""Confine user-supplied paths to the Jupyter server's root directory.

Every path the REST API accepts is relative to ``ServerApp.root_dir`` (the folder the Lab file browser
shows). A request must not reach anything else: not with ``..``, not with an absolute path, and not
through a symbolic link that points out of the root. The checks are lexical first (cheap, clear message)
and then on the resolved path (catches symlinks, whose target only the file system knows).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath


class PathRefused(ValueError):
    """The path is malformed or leaves the root; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def clean_relative(path: str | None) -> str:
    """Normalise an API path ('' is the root) or refuse it; no file-system access."""
    path = (path or "").strip()
    if "\0" in path:
        raise PathRefused("the path contains a NUL character")
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        raise PathRefused(
            f"absolute paths are not accepted ({path!r}): give the folder relative to the Lab's root, "
            "as the file browser shows it"
        )
    parts = [p for p in PurePosixPath(path.replace("\\", "/")).parts if p not in ("", ".")]
    if ".." in parts:
        raise PathRefused(f"'..' is not allowed in paths ({path!r}): give the folder relative to the Lab's root")
    return "/".join(parts)


def resolve_inside(root: str | Path, path: str | None, *, must_exist: bool = True) -> tuple[Path, str]:
    """The real path of ``path`` under ``root`` and its cleaned relative form.

    Raises PathRefused: 400 for malformed paths, 403 when a symlink leads out of the root, 404 when it
    does not exist (and ``must_exist``).
    """
    rel = clean_relative(path)
    real_root = Path(root).resolve()
    candidate = real_root / rel
    try:
        real = candidate.resolve(strict=must_exist)
    except FileNotFoundError:
        raise PathRefused(f"no such file or folder: {rel or '.'!r}", status=404) from None
    except (OSError, RuntimeError) as err:  # RuntimeError: symlink loop on older Pythons
        raise PathRefused(f"cannot open {rel!r}: {err}", status=400) from None
    if not is_inside(real_root, real):
        raise PathRefused(f"{rel!r} points outside the Lab's root folder (a symbolic link?); refused", status=403)
    return real, rel


def is_inside(real_root: Path, real: Path) -> bool:
    """Whether resolved ``real`` is ``real_root`` or below it (both already resolved)."""
    return real == real_root or real_root in real.parents
