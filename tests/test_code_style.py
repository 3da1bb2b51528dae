"""Product code is ruff-clean (lint and format) and mypy-clean, with the settings in pyproject.toml."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The folders that make up the condorhub package (pyproject's package-dir), plus the docs renderer.
PRODUCT = ["hub_config", "spawner", "labextension", "notebooks/condorhub_data", "docs"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_check():
    result = _run("ruff", "check", "--no-cache", *PRODUCT)
    assert result.returncode == 0, (
        f"ruff check found problems (fix them, or `ruff check --fix`):\n{result.stdout}{result.stderr}"
    )


def test_ruff_format():
    result = _run("ruff", "format", "--check", "--no-cache", *PRODUCT)
    assert result.returncode == 0, (
        f"not formatted (run `ruff format {' '.join(PRODUCT)}`):\n{result.stdout}{result.stderr}"
    )


def test_pre_commit_config_is_valid():
    result = _run("pre_commit", "validate-config", ".pre-commit-config.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def _package_tree(root: Path) -> Path:
    """The condorhub package as one folder tree of links (pyproject's package-dir), which mypy can walk."""
    package = root / "condorhub"
    package.mkdir(parents=True)
    for entry in (ROOT / "hub_config").iterdir():
        if entry.name not in ("__pycache__", "demo"):
            (package / entry.name).symlink_to(entry)
    for name, folder in (("spawner", "spawner"), ("lab", "labextension"), ("data", "notebooks/condorhub_data")):
        (package / name).symlink_to(ROOT / folder)
    return root


def test_mypy(tmp_path):
    # mypy's own settings are pyproject's [tool.mypy]; its cache stays out of the checkout.
    tree = _package_tree(tmp_path / "tree")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir",
         str(tmp_path / "cache"), "--python-executable", sys.executable, "-p", "condorhub"],
        check=False, cwd=tree, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"mypy found type errors:\n{result.stdout}{result.stderr}"


# The JupyterLab extension's TypeScript: prettier and eslint as labextension/package.json's scripts run them
# (settings: labextension/.prettierrc.json, labextension/eslint.config.mjs). They come with the extension's
# npm dependencies, which labextension/build.sh installs (setup.sh runs it) from the npm cache, no network.
LABEXTENSION = ROOT / "labextension"


def _npm_script(script: str) -> subprocess.CompletedProcess:
    npm = shutil.which("npm")
    assert npm, "npm is not on PATH: install node (setup.sh does: apt nodejs npm)"
    assert (LABEXTENSION / "node_modules" / ".bin" / "eslint").exists(), (
        "labextension/node_modules has no eslint: run `labextension/build.sh PYTHON` (or `npm ci` in labextension/)"
    )
    return subprocess.run(
        [npm, "run", "--silent", script], check=False, cwd=LABEXTENSION, capture_output=True, text=True, timeout=300
    )


def test_labextension_prettier():
    result = _npm_script("prettier:check")
    assert result.returncode == 0, (
        f"labextension sources not formatted (run `npm run prettier` in labextension/):\n{result.stdout}{result.stderr}"
    )


def test_labextension_eslint():
    result = _npm_script("eslint:check")
    assert result.returncode == 0, (
        f"eslint found problems in labextension/src (fix them, or `npm run eslint` in labextension/):\n"
        f"{result.stdout}{result.stderr}"
    )
