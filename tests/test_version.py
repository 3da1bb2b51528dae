"""The version has one owner, pyproject.toml; everything else that states it must agree."""

import json
import tomllib
from pathlib import Path

import condorhub

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_package_version_is_pyprojects():
    # condorhub.__version__ comes from the installed metadata; an editable install made from an older
    # pyproject would disagree here (re-run `pip install -e .`).
    assert condorhub.__version__ == _pyproject_version()


def test_lab_extension_version_is_pyprojects():
    # npm needs its own copy in package.json; it must follow pyproject's.
    package = json.loads((ROOT / "labextension" / "package.json").read_text())
    assert package["version"] == _pyproject_version(), (
        "labextension/package.json version differs from pyproject.toml's; set it to "
        f"{_pyproject_version()!r} (npm version --no-git-tag-version {_pyproject_version()})"
    )


def test_changelog_names_the_version():
    assert f"## [{_pyproject_version()}]" in (ROOT / "CHANGELOG.md").read_text()
