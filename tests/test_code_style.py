"""Product code is ruff-clean (lint and format) and mypy-clean, with the settings in pyproject.toml."""

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
