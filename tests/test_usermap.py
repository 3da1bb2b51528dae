"""The hub's side of the pool policy (condorhub.spawner.condor.usermap), as pure logic: what a user's roles become
in the pool's user map, and how the file is rewritten (merge, atomic, owner and mode kept, the schedd told only
when something changed). The schedd's side, with a real pool: tests/test_pool_policy.py."""

from __future__ import annotations

import asyncio
import os
import stat
import sys

import pytest
from pydantic import ValidationError

from condorhub.schema import DEFAULT_MAX_JOBS_PER_USER, CondorProfile, HTCondorSettings
from condorhub.spawner.condor.usermap import LoginHook, UserMapError, UserMapWriter, limits_for, parse, render

PROFILES = [
    CondorProfile(slug="cpu", display_name="CPU", roles=["student", "researcher"], runtime="1d"),
    CondorProfile(slug="gpu-1", display_name="1 GPU", roles=["student", "researcher", "instructor"], runtime="8h",
                  gpus=1),
    CondorProfile(slug="gpu-2", display_name="2 GPUs", roles=["researcher"], runtime="2h", gpus=2),
]
GROUPS = {"student": "group_students", "researcher": "group_researchers", "instructor": "group_instructors"}


def limits(*roles, max_jobs=None):
    return limits_for(roles, PROFILES, GROUPS, max_jobs or {}, DEFAULT_MAX_JOBS_PER_USER)


def test_a_roles_limits_are_the_largest_of_its_condor_profiles():
    student = limits("student")
    assert (student.groups, student.gpus, student.runtime_seconds, student.jobs) == (
        ("group_students",), 1, 86400, DEFAULT_MAX_JOBS_PER_USER)
    researcher = limits("researcher", max_jobs={"researcher": 50, "student": 5})
    assert (researcher.gpus, researcher.runtime_seconds, researcher.jobs) == (2, 86400, 50)
    assert limits("instructor").runtime_seconds == 8 * 3600


def test_several_roles_get_the_most_any_allows_and_all_their_groups_in_the_sites_order():
    both = limits("student", "instructor", max_jobs={"student": 5, "instructor": 20})
    assert both.groups == ("group_students", "group_instructors")
    assert (both.gpus, both.jobs) == (1, 20)


def test_a_role_without_condor_profiles_may_run_nothing_and_does_not_raise_another_roles_limits():
    guest = limits("guest")
    assert not guest.may_run_jobs and guest.roles == ("guest",)
    assert [line[0] for line in guest.lines("dave")] == ["roles", "who"]
    # a guest who is also a student is charged and limited as the student
    assert limits("guest", "student", max_jobs={"guest": 10**6}).jobs == DEFAULT_MAX_JOBS_PER_USER


def test_render_and_parse_round_trip_sorted_and_stable():
    text = render({"bob": limits("researcher"), "alice": limits("student"), "dave": limits("guest")})
    assert text.splitlines()[1:8] == ["roles alice student", "who alice students", "* alice group_students",
                                       "gpus alice 1", "runtime alice 86400", "jobs alice 1000", "roles bob researcher"]
    users = parse(text)
    assert set(users) == {"alice", "bob", "dave"} and users["dave"] == {"roles": "guest", "who": "guests"}
    assert render({"dave": limits("guest"), "alice": limits("student"), "bob": limits("researcher")}) == text


@pytest.mark.parametrize("name", ["Alice", "/.*/", "a b", "", "alice\n", "x" * 70])
def test_a_name_that_is_no_literal_user_name_is_refused(name):
    # A map key in slashes would be a regular expression matching many owners.
    with pytest.raises(UserMapError, match="cannot be a pool user name"):
        render({name: limits("student")})


@pytest.fixture
def map_file(tmp_path):
    path = tmp_path / "pool-users.map"
    path.write_text("")
    os.chmod(path, 0o640)
    return path


def writer_for(path, tmp_path):
    """A writer whose 'reconfig' appends a line to a file (so the test sees each call)."""
    calls = tmp_path / "reconfigs"
    return UserMapWriter(path, [sys.executable, "-c", f"open({str(calls)!r}, 'a').write('x')"]), calls


def test_update_merges_one_user_keeps_mode_and_tells_the_schedd_only_on_a_change(map_file, tmp_path):
    writer, calls = writer_for(map_file, tmp_path)
    assert writer.update("alice", limits("student")) is True
    assert writer.update("bob", limits("researcher")) is True
    text = map_file.read_text()
    assert "* alice group_students" in text and "* bob group_researchers" in text
    assert stat.S_IMODE(map_file.stat().st_mode) == 0o640
    assert calls.read_text() == "xx"
    # the same login again: nothing written, nobody told
    mtime = map_file.stat().st_mtime_ns
    assert writer.update("alice", limits("student")) is False
    assert map_file.stat().st_mtime_ns == mtime and calls.read_text() == "xx"
    # alice moves to the researchers: only her lines change
    assert writer.update("alice", limits("researcher")) is True
    users = parse(map_file.read_text())
    assert users["alice"]["*"] == "group_researchers" and users["bob"]["*"] == "group_researchers"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pool-users.map.")]  # no temp file left


def test_each_rewrite_moves_the_whole_second_mtime_the_schedd_compares(map_file, tmp_path):
    """HTCondor reloads a map at reconfig only if st_mtime (whole seconds) changed since it read it."""
    writer, _ = writer_for(map_file, tmp_path)
    stamps = []
    for roles in (("student",), ("researcher",), ("instructor",)):  # three rewrites within one second
        writer.update("alice", limits(*roles))
        stamps.append(int(map_file.stat().st_mtime))
    assert stamps[0] < stamps[1] < stamps[2], stamps


def test_a_missing_map_or_a_failing_reconfig_is_an_error_that_says_what(tmp_path, map_file):
    with pytest.raises(UserMapError, match="does not exist; the htcondor role creates it"):
        UserMapWriter(tmp_path / "nope.map", ["true"]).update("alice", limits("student"))
    failing = UserMapWriter(map_file, [sys.executable, "-c", "import sys; sys.exit('schedd unreachable')"])
    with pytest.raises(UserMapError, match="exited 1: schedd unreachable"):
        failing.update("alice", limits("student"))


def test_the_login_hook_writes_the_users_roles_and_never_fails_the_login(map_file, tmp_path, caplog):
    writer, _ = writer_for(map_file, tmp_path)
    hook = LoginHook(writer, PROFILES, GROUPS, {}, DEFAULT_MAX_JOBS_PER_USER)
    authentication = {"name": "alice", "auth_state": {"roles": ["student"]}}
    assert asyncio.run(hook(None, None, authentication)) is authentication
    assert parse(map_file.read_text())["alice"]["gpus"] == "1"
    broken = LoginHook(UserMapWriter(tmp_path / "gone.map", ["true"]), PROFILES, GROUPS, {}, 1000)
    assert asyncio.run(broken(None, None, authentication)) is authentication
    assert "pool user map: alice not updated" in caplog.text


def test_the_site_file_needs_groups_for_a_user_map_and_bounds_jobs_per_user():
    with pytest.raises(ValidationError, match="set `accounting_groups`"):
        HTCondorSettings(user_map={"file": "/etc/condorhub/pool-users.map"})
    with pytest.raises(ValidationError):
        HTCondorSettings(accounting_groups=GROUPS, max_jobs_per_user={"student": 0})
    with pytest.raises(ValidationError):
        HTCondorSettings(accounting_groups=GROUPS, max_jobs_per_user={"students": 5})
    ok = HTCondorSettings(accounting_groups=GROUPS, user_map={"file": "/x.map"}, max_jobs_per_user={"student": 5})
    assert ok.user_map.reconfig_command == ["condor_reconfig", "-schedd"]


def test_the_hub_writes_the_map_where_the_htcondor_role_has_the_schedd_read_it():
    """One path, restated once per role (each role's defaults stand alone): the same literal, and the site file
    the jupyterhub role renders names it; the example site file shows the schema's reconfig default."""
    import re
    from pathlib import Path

    roles = Path(__file__).resolve().parents[1] / "ansible/roles"
    literal = re.compile(r"condorhub_condor_user_map_file \| default\('([^']+)'\)")
    htcondor = literal.findall((roles / "htcondor/defaults/main.yml").read_text())
    jupyterhub = literal.findall((roles / "jupyterhub/defaults/main.yml").read_text())
    assert htcondor == jupyterhub == ["/etc/condorhub/pool-users.map"]
    assert "'user_map': {'file': jupyterhub_condor_user_map_file}" in (
        roles / "jupyterhub/templates/site.yaml.j2").read_text()
    assert "CLASSAD_USER_MAPFILE_Condorhub = {{ htcondor_user_map_file }}" in (
        roles / "htcondor/templates/condorhub.config.j2").read_text()
