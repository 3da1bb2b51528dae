"""The file-system side of a submit: the file to run and the output folder, confined to the server root,
and the folders made for it (taken away again when the submit fails: nothing half-done)."""

from __future__ import annotations

import os
from pathlib import Path

from ..paths import PathRefused, clean_relative, resolve_inside
from .describe import Grid, Plan, Refused, Request, default_folder, point_folders, safe_stem
from .profiles import Profile


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/") if part)


def resolve_file(root: Path, path: str, *, allow_hidden: bool) -> tuple[Path, str]:
    """The real path of the file to run: inside the root (no ``..``, no absolute path, no link out of
    it), not hidden, a regular file, and a shell script only when it is executable."""
    real, rel = resolve_inside(root, path)
    if not allow_hidden and _hidden(rel):
        raise PathRefused(f"{rel!r} is hidden; the server does not run hidden files: move it to a visible folder", 403)
    if not real.is_file():
        raise PathRefused(f"{rel!r} is not a file: pick a .py, .sh or .ipynb file", 400)
    if real.suffix not in (".py", ".sh", ".ipynb"):
        raise PathRefused(f"{rel!r} leads to {real.name!r}, which is not a .py, .sh or .ipynb file", 400)
    if real.suffix == ".sh" and not os.access(real, os.X_OK):
        raise PathRefused(f"{rel!r} is not executable: make it so with `chmod +x {rel}` (a terminal) and submit again")
    if not os.access(real, os.R_OK):
        raise PathRefused(f"{rel!r} cannot be read; check its permissions", 403)
    return real, rel


def resolve_folder(root: Path, folder: str, *, allow_hidden: bool) -> tuple[Path, str]:
    """The job's output folder (it need not exist yet): inside the root, not hidden, not a file."""
    rel = clean_relative(folder)
    if not rel:
        raise PathRefused("the output folder cannot be the Lab's root itself; name a folder, e.g. jobs/train-1")
    if not allow_hidden and _hidden(rel):
        raise PathRefused(f"the output folder {rel!r} is hidden; choose a visible folder", 403)
    real, rel = resolve_inside(root, rel, must_exist=False)
    if real.exists() and not real.is_dir():
        raise PathRefused(f"{rel!r} is a file, not a folder; choose another output folder")
    return real, rel


def make_plan(
    root: Path,
    request: Request,
    profile: Profile,
    *,
    python: str,
    home: str,
    allow_hidden: bool,
    grid: Grid | None = None,
) -> Plan:
    root = root.resolve()
    script, rel_file = resolve_file(root, request.path, allow_hidden=allow_hidden)
    wanted = request.folder or _free_default(root, rel_file)
    folder, rel_folder = resolve_folder(root, wanted, allow_hidden=allow_hidden)
    if script.suffix == ".ipynb":
        # papermill writes the executed notebook as <folder>/<stem>.ipynb (in each point's folder).
        outputs = (
            [folder / p / f"{safe_stem(rel_file)}.ipynb" for p in point_folders_of(grid)]
            if grid
            else [folder / f"{safe_stem(rel_file)}.ipynb"]
        )
        if script in outputs:
            raise Refused(
                f"the executed notebook would overwrite {rel_file!r}: choose an output folder other than the "
                "notebook's own"
            )
    if grid and set(grid.names) & set(request.parameters):
        both = ", ".join(sorted(set(grid.names) & set(request.parameters)))
        raise Refused(f"{both} is both a fixed parameter and a scanned one; keep it in one place")
    return Plan(
        request=request,
        profile=profile,
        python=python,
        script=str(script),
        rel_file=rel_file,
        folder=str(folder),
        rel_folder=rel_folder,
        home=home,
        grid=grid,
    )


def _free_default(root: Path, rel_file: str) -> str:
    """``jobs/<stem>-<time>``, with ``-2``, ``-3``, ... when two submits fall into the same second."""
    base = default_folder(rel_file)
    candidate, n = base, 1
    while (root / candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def point_folders_of(grid: Grid) -> list[str]:
    return [grid.point_folder(p) for p in grid.points()]


def create_folders(plan: Plan) -> list[Path]:
    """Make the job folder (and every scan point's folder) before the submit: HTCondor opens job.out in
    them but does not create folders. Returns the folders made, deepest last."""
    made: list[Path] = []
    targets = [Path(plan.folder) / p for p in point_folders(plan)] or [Path(plan.folder)]
    try:
        for target in targets:
            missing = []
            probe = target
            while not probe.exists():
                missing.append(probe)
                probe = probe.parent
            for path in reversed(missing):
                path.mkdir()
                made.append(path)
    except OSError as err:
        remove_folders(made)
        raise PathRefused(f"cannot create the output folder {plan.rel_folder!r}: {err.strerror}", 403) from None
    return made


def remove_folders(made: list[Path]) -> None:
    """Undo :func:`create_folders` (only folders still empty: never anything a job or the user wrote)."""
    for path in reversed(made):
        try:
            path.rmdir()
        except OSError:
            pass
