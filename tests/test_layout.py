"""The installed product is only the product: the wheel's package list matches the product folders, no
product module imports the dev machinery (devstack/) or the tests' helpers, the ``condorhub`` command
has no dev commands, and devstack runs from the checkout (``python -m devstack``, what ``./setup.sh
demo`` runs)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

from condorhub.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
#: Folders of the labextension that hold no Python of the product (npm, build output).
NOT_PYTHON = {"node_modules", "_built", "lib", "src", "style", "__pycache__"}


def _package_dirs() -> dict[str, Path]:
    """Each package of the wheel -> the folder setuptools takes it from (package-dir mapping)."""
    mapping = SETUPTOOLS["package-dir"]
    dirs = {}
    for package in SETUPTOOLS["packages"]:
        parent = max((p for p in mapping if package == p or package.startswith(p + ".")), key=len)
        rest = package[len(parent) :].lstrip(".")
        dirs[package] = REPO / mapping[parent] / Path(*rest.split(".")) if rest else REPO / mapping[parent]
    return dirs


def _product_packages_on_disk() -> set[Path]:
    found = set()
    for root in (REPO / folder for folder in SETUPTOOLS["package-dir"].values()):
        for init in root.rglob("__init__.py"):
            if not NOT_PYTHON & set(init.relative_to(root).parts[:-1]):
                found.add(init.parent)
    return found


def test_the_wheel_lists_exactly_the_product_packages():
    dirs = _package_dirs()
    assert not [p for p in dirs if p == "condorhub.demo" or p.startswith("condorhub.demo.")]
    missing = {p: d for p, d in dirs.items() if not (d / "__init__.py").is_file()}
    assert not missing, f"packages listed in pyproject.toml without a folder: {missing}"
    # A subpackage left out of the list would be missing from every install (the editable one still has it).
    unlisted = _product_packages_on_disk() - set(dirs.values())
    assert not unlisted, f"add these to [tool.setuptools] packages in pyproject.toml: {sorted(map(str, unlisted))}"


def test_the_wheels_server_config_files_exist_and_enable_importable_extensions():
    import importlib

    for target, sources in SETUPTOOLS["data-files"].items():
        for source in sources:
            if "*" in source or not target.startswith("etc/jupyter/"):
                continue
            config = json.loads((REPO / source).read_text())
            for module in config["ServerApp"]["jpserver_extensions"]:
                assert hasattr(importlib.import_module(module), "_jupyter_server_extension_points"), module


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_product_module_imports_the_dev_machinery_or_the_tests():
    offenders = []
    for package_dir in _package_dirs().values():
        for path in package_dir.glob("*.py"):
            bad = {n for n in _imports(path) if n.split(".")[0] in ("devstack", "tests") or n.startswith("condorhub.demo")}
            if bad:
                offenders.append(f"{path.relative_to(REPO)}: {sorted(bad)}")
    assert not offenders, offenders


def test_the_condorhub_command_has_only_product_commands():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert set(sub.choices) == {"config", "hub"}
    help_text = subprocess.run(
        [sys.executable, "-m", "condorhub.cli", "--help"], capture_output=True, text=True, check=True, cwd="/"
    ).stdout
    assert "demo" not in help_text


def test_devstack_runs_from_the_checkout_only():
    here = subprocess.run(
        [sys.executable, "-m", "devstack", "--help"], capture_output=True, text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin"}
    )
    assert here.returncode == 0, here.stderr
    assert "{up,down,status}" in here.stdout
    # ... and is no part of the installed product: outside the checkout there is no such module.
    elsewhere = subprocess.run(
        [sys.executable, "-c", "import devstack"], capture_output=True, text=True, cwd="/", env={"PATH": "/usr/bin:/bin"}
    )
    assert elsewhere.returncode != 0 and "No module named 'devstack'" in elsewhere.stderr
