"""The site file: the shipped example is valid, and mistakes are reported by key with a fix."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from condorhub.site import SiteConfigError, load_site_file, validate_site_data

EXAMPLE = Path(__file__).parent.parent / "hub_config" / "site.example.yaml"


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def problems(data) -> list[str]:
    with pytest.raises(SiteConfigError) as err:
        validate_site_data(data, "site.yaml")
    return err.value.problems


def test_the_shipped_example_is_valid_and_fills_defaults():
    site = load_site_file(EXAMPLE)
    assert site.ldap.tls.strategy == "before_bind"  # TLS unless a site says otherwise
    assert site.ldap.connect_timeout == 5
    assert [p.slug for p in site.profiles] == ["login-node"]


def test_a_typo_names_the_key_and_suggests_the_fix():
    data = example()
    data["ldap"]["server_adress"] = data["ldap"].pop("server_address")
    found = problems(data)
    assert any("`ldap.server_adress`: unknown key; did you mean `ldap.server_address`?" in p for p in found)
    assert any("`ldap.server_address`: required key is missing" in p for p in found)


def test_a_wrong_type_names_key_and_value():
    data = example()
    data["ldap"]["connect_timeout"] = "soon"
    data["profiles"][0]["roles"] = ["studnt"]
    found = problems(data)
    assert any(p.startswith("`ldap.connect_timeout`") and "'soon'" in p for p in found)
    assert any(p.startswith("`profiles[0].roles[0]`") and "'student'" in p and "'studnt'" in p for p in found)


def test_unknown_top_level_section_lists_the_allowed_ones():
    data = example()
    data["proflies"] = []
    (found,) = problems(data)
    assert "`proflies`: unknown key; did you mean `profiles`?" in found
    assert "hub, ldap, login_throttle, metrics, profiles, roles" in found


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["profiles"].append(dict(d["profiles"][0])), "used twice"),
        (lambda d: d["profiles"][0].update(memory="lots"), "`profiles[0].memory`"),
        (lambda d: d["profiles"][0].update(cpus=-1), "`profiles[0].cpus`"),
        (lambda d: d["ldap"].update(valid_username_regex="(["), "not a valid regular expression"),
        (lambda d: d["ldap"].pop("bind_dn_template"), "either `bind_dn_template` or `lookup`"),
        (lambda d: d["profiles"][0].update(roles=["student"]), "may start no profile"),
        (lambda d: d["ldap"].update(tls={"strategy": "sometimes"}), "`ldap.tls.strategy`"),
        (
            lambda d: d.update(courses=[{"slug": "c", "title": "C", "students_group": "s", "instructors_group": "i", "target": "../x"}]),
            "`courses[0].target`: must be a relative path inside the home directory",
        ),
        (
            lambda d: d.update(courses=[{"slug": "c", "title": "C", "students_group": "s", "instructors_group": "i"}] * 2),
            "course slug(s) c used twice",
        ),
    ],
)
def test_invalid_values_are_refused_with_the_reason(mutate, expected):
    data = example()
    mutate(data)
    assert any(expected in p for p in problems(data))


def test_missing_and_non_yaml_files_say_what_to_do(tmp_path):
    with pytest.raises(SiteConfigError, match="condorhub config example"):
        load_site_file(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("ldap: [unclosed\n")
    with pytest.raises(SiteConfigError, match="not valid YAML"):
        load_site_file(bad)


def test_cli_check_fails_with_the_key_and_show_prints_defaults(tmp_path):
    data = example()
    data["hub"]["bind_ur1"] = "http://0.0.0.0:8000"
    broken = tmp_path / "site.yaml"
    broken.write_text(yaml.safe_dump(data))
    cli = [sys.executable, "-m", "condorhub.cli", "config"]
    check = subprocess.run([*cli, "check", "--site", str(broken)], capture_output=True, text=True)
    assert check.returncode == 2
    assert "`hub.bind_ur1`: unknown key; did you mean `hub.bind_url`?" in check.stderr
    show = subprocess.run([*cli, "show", "--site", str(EXAMPLE)], capture_output=True, text=True, check=True)
    shown = yaml.safe_load(show.stdout)
    assert shown["login_throttle"]["max_delay"] == 60
    assert shown["ldap"]["receive_timeout"] == 10
