"""Builds the JupyterLab extension before packaging; the rest of the build is configured in pyproject.toml.

The condorhub wheel ships the prebuilt JupyterLab extension (labextension/_built/). The build goes through
JupyterLab's standard builder, hatch-jupyter-builder: its ``npm_builder`` runs ``npm install`` and
``npm run build:prod`` (labextension/build.sh) in labextension/, as the extension template's hatch hook does.

Why setuptools calls it, and not hatchling with the jupyter-builder hook: the wheel must keep exactly its
files (tests/test_layout.py; hatchling writes other metadata files, e.g. no top_level.txt), and an
editable install must keep mapping the nested folders (labextension/ -> condorhub.lab, spawner/ ->
condorhub.spawner, ...). setuptools' editable finder maps a package-dir of subpackages; hatchling's
editable wheels only add folders to sys.path (or map top-level names), which cannot express those.

When it builds (the template's skip-if-exists and ensured-targets, with a stamp instead of mere presence so
that an edited source rebuilds):
- labextension/_built/ is complete and its stamp matches the sources' hash: nothing to do, nothing needed.
- else, with npm on PATH: build. Only then does the build ask for jupyterlab and hatch-jupyter-builder
  (setup_requires: PEP 517's get_requires_for_build_*), so an install of a built checkout needs neither.
- else (no node, or HATCH_JUPYTER_BUILDER_SKIP_NPM=1, as setup.sh sets after building with
  labextension/build.sh): a complete but stale _built/ is used with a warning; a missing one stops the
  build with the fix, rather than making a wheel whose Lab silently lacks the scan browser and TensorBoard.
"""

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
LAB = HERE / "labextension"
BUILT = LAB / "_built"
STAMP = BUILT / ".sources-sha256"
# What the wheel's data files need (pyproject's [tool.setuptools.data-files]); the template's ensured-targets.
ENSURED = ["package.json", "install.json", "static/style.js", "static/remoteEntry.*.js"]
# setup.py's own runs that only read metadata (pip's get_requires_for_build_* and prepare_metadata_*).
METADATA_ONLY = {"egg_info", "dist_info", "--version", "--name"}


def _missing_targets() -> list[str]:
    return [pattern for pattern in ENSURED if not list(BUILT.glob(pattern))]


def _is_current() -> bool:
    if _missing_targets() or not STAMP.is_file():
        return False
    # The stamp is "<sources hash> jupyterlab-<version>"; any JupyterLab of the requirement will do here.
    sources = subprocess.run(
        ["bash", str(LAB / "build.sh"), "--sources-hash"], check=False, capture_output=True, text=True
    )
    return sources.returncode == 0 and STAMP.read_text().split()[:1] == sources.stdout.split()


def _build_requires() -> list[str]:
    """The builder, and the JupyterLab that the extension is built against (the wheel's own requirement)."""
    dependencies = tomllib.loads((HERE / "pyproject.toml").read_text())["project"]["dependencies"]
    return ["hatch-jupyter-builder>=0.9,<1", next(d for d in dependencies if d.startswith("jupyterlab"))]


def _build() -> None:
    from hatch_jupyter_builder import npm_builder

    # build.sh needs an interpreter that has jupyterlab: this one (pip's build environment has it).
    os.environ["CONDORHUB_LAB_PYTHON"] = sys.executable
    editable = "editable_wheel" in sys.argv
    npm_builder(
        "wheel",
        "editable" if editable else "standard",
        path=str(LAB),
        build_cmd="build:prod",
        npm=["npm", "--no-audit", "--no-fund"],
    )


def _stop(problem: str) -> None:
    sys.exit(
        f"condorhub: {problem}\n"
        "Build it before installing condorhub: put Node.js >= 18 and npm on PATH and re-run pip (it builds the\n"
        "extension), or by hand: labextension/build.sh /path/to/venv/bin/python   # an environment with jupyterlab"
    )


skip_npm = os.environ.get("HATCH_JUPYTER_BUILDER_SKIP_NPM") == "1" or not shutil.which("npm")
needs_build = not _is_current()
metadata_only = bool(METADATA_ONLY & set(sys.argv[1:]))
if needs_build and not skip_npm and not metadata_only:
    _build()
    if _missing_targets():
        _stop(f"the extension build left no {', '.join(_missing_targets())} in {BUILT}.")
elif needs_build and not metadata_only:
    if _missing_targets():
        _stop(f"the JupyterLab extension is not built ({BUILT} lacks {', '.join(_missing_targets())}).")
    print(f"condorhub: warning: {BUILT} is older than labextension/'s sources; packaging it as it is", file=sys.stderr)

# setup_requires only in egg_info, the run behind get_requires_for_build_*: pip installs them into the build
# environment before the build; in any other run setuptools would try to fetch them itself.
asks_requires = needs_build and not skip_npm and "egg_info" in sys.argv[1:]
setup(setup_requires=_build_requires() if asks_requires else [])
