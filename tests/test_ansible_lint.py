"""ansible/ is clean under ``ansible-lint --profile production`` (the strictest profile: FQCNs, names,
no risky shell use, role argument specs, ...), and every role has what the issue asks of a role."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.ansible]

ANSIBLE = Path(__file__).resolve().parents[1] / "ansible"
ROLES = sorted(p.name for p in (ANSIBLE / "roles").iterdir() if p.is_dir())


def test_ansible_lint_production_profile_is_clean(tmp_path):
    bin_dir = Path(sys.executable).parent
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "ANSIBLE_HOME": str(tmp_path / ".ansible"), "NO_COLOR": "1"}
    # --offline: no Galaxy here; the collections it needs come with the `ansible` package.
    proc = subprocess.run([str(bin_dir / "ansible-lint"), "--offline", "--profile", "production", "--nocolor"],
                          cwd=ANSIBLE, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"ansible-lint found problems:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"


@pytest.mark.parametrize("role", ROLES)
def test_role_has_documented_defaults_argument_specs_and_handlers(role):
    path = ANSIBLE / "roles" / role
    specs = yaml.safe_load((path / "meta/argument_specs.yml").read_text())["argument_specs"]
    assert {"main", "validate"} <= set(specs), f"{role}: argument specs need the main and validate entry points"
    options = specs["main"]["options"]
    defaults = yaml.safe_load((path / "defaults/main.yml").read_text()) or {}
    # Every default is a documented option, every option has a description.
    assert set(defaults) <= set(options), f"{role}: undocumented defaults {set(defaults) - set(options)}"
    for name, option in options.items():
        assert option.get("description"), f"{role}: option {name} has no description"
        assert name.startswith(f"{role}_"), f"{role}: option {name} is not prefixed with the role's name"
    assert (path / "handlers/main.yml").is_file(), f"{role} has no handlers"
