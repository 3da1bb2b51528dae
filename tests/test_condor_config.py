"""The `htcondor` section and `condor` profiles: validation with errors naming the key, and the
JupyterHub traits they become (pure logic; the real pool is in test_condor_e2e.py)."""

from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

from condorhub.schema import CondorProfile, parse_duration
from condorhub.site import SiteConfigError, validate_site_data
from condorhub.traits import apply_site

EXAMPLE = Path(__file__).parent.parent / "hub_config" / "site.example.yaml"


def uncommented_example() -> dict:
    """The example site file with its commented-out HTCondor blocks switched on."""
    out, inside = [], False
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith("# BEGIN "):
            inside = True
            continue
        if line.startswith("# END "):
            inside = False
            continue
        out.append(line[2:] if inside and line.startswith("# ") else line)
    return yaml.safe_load("\n".join(out))


def problems(data) -> list[str]:
    with pytest.raises(SiteConfigError) as err:
        validate_site_data(data, "site.yaml")
    return err.value.problems


GPU1 = {
    "slug": "gpu-1",
    "kind": "condor",
    "display_name": "1 GPU",
    "roles": ["student"],
    "gpus": 1,
}


def condor_site(**htcondor) -> dict:
    data = uncommented_example()
    data["htcondor"] = {"accounting_groups": {"student": "group_students"}, **htcondor}
    data["profiles"] = [data["profiles"][0], dict(GPU1)]
    return data


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90m", 5400),
        ("8h", 28800),
        ("1d12h", 129600),
        ("02:30:00", 9000),
        ("5400", 5400),
        (5400, 5400),
        ("1h30m", 5400),
        ("90s", 90),
        ("2.5", 2.5),
        (0.5, 0.5),
        ("0", 0),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "1x", "h", True])
def test_bad_durations_say_how_to_write_one(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_the_example_with_its_htcondor_blocks_switched_on_is_valid():
    site = validate_site_data(uncommented_example())
    assert [p.slug for p in site.profiles] == ["login-node", "cpu", "gpu-1", "gpu-2"]
    gpu2 = site.profiles[3]
    # Units are normalised once, by the schema: sizes in bytes, durations in seconds.
    assert (gpu2.kind, gpu2.gpus, gpu2.runtime, gpu2.memory) == ("condor", 2, 2 * 86400, 32 * 1024**3)
    assert gpu2.roles == ["researcher", "admin"]
    assert site.htcondor.accounting_groups["student"] == "group_students"
    assert (site.htcondor.queue_timeout, site.htcondor.poll_interval) == (3600, 5)


def test_condor_profiles_without_an_htcondor_section_are_refused():
    data = uncommented_example()
    del data["htcondor"]
    (found,) = problems(data)
    assert "profile(s) cpu, gpu-1, gpu-2 run on HTCondor, but the site file has no `htcondor` section" in found
    assert "(got" not in found  # the whole file is not echoed back


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda p: p.update(gpuz=2), "`profiles[1].gpuz`: unknown key; did you mean `profiles[1].gpus`?"),
        (lambda p: p.update(gpus=-1), "`profiles[1].gpus`"),
        (lambda p: p.update(gpus=64), "`profiles[1].gpus`"),
        (lambda p: p.update(memory="-1G"), "`profiles[1].memory`"),
        (lambda p: p.update(cpus=0.5), "`profiles[1].cpus`"),
        (lambda p: p.update(runtime="soon"), "'soon' is not a duration"),
        (lambda p: p.update(runtime="90d"), "longer than 31 days"),
        (lambda p: p.update(gpus=0, gpus_minimum_capability=7.0), "set `gpus` to 1 or more"),
        (lambda p: p.update(roles=["student", "researcher"]), "role(s) researcher have no `htcondor.accounting_groups`"),
    ],
)
def test_bad_condor_profiles_name_the_key(mutate, expected):
    data = condor_site()
    mutate(data["profiles"][1])
    assert any(expected in p for p in problems(data)), problems(data)


@pytest.mark.parametrize(
    "htcondor, expected",
    [
        ({"queue_timeout": "soon"}, "`htcondor.queue_timeout`: 'soon' is not a duration"),
        ({"queue_timeout": 0}, "`htcondor.queue_timeout`: Input should be greater than 0"),
        ({"poll_interval": "10m"}, "`htcondor.poll_interval`: Input should be less than or equal to 300"),
        ({"worker_env": "/opt/venv"}, "`htcondor.worker_env` was renamed to `htcondor.server_venv`"),
        ({"startup_timeout": "5m"}, "`htcondor.startup_timeout` was renamed to `htcondor.server_start_timeout`"),
        ({"accounting_groups": {"student": "group students"}}, "not a valid HTCondor group name"),
        ({"accounting_groups": {"studnt": "g"}}, "`htcondor.accounting_groups.studnt"),
        ({"poll_interval": 0}, "`htcondor.poll_interval`"),
        ({"collector": "cm example org"}, "`htcondor.collector`"),
        ({"condor_cofig": "/etc/condor"}, "did you mean `htcondor.condor_config`?"),
    ],
)
def test_bad_htcondor_settings_name_the_key(htcondor, expected):
    data = condor_site()
    data["htcondor"].update(htcondor)
    assert any(expected in p for p in problems(data)), problems(data)


def test_htcondor_section_becomes_queue_and_spawner_traits(tmp_path):
    data = condor_site(
        queue_timeout="2h",
        server_start_timeout="3m",
        poll_interval=2,
        unknown_grace="1m",
        token_file="/etc/condorhub/hub.token",
        condor_config="/etc/condorhub/condor_config",
    )
    data["hub"]["state_dir"] = str(tmp_path / "state")
    c = Config()
    apply_site(c, validate_site_data(data))
    queue, spawner = c.HTCondorQueue, c.HTCondorSpawner
    assert queue.condor_config == "/etc/condorhub/condor_config"
    assert queue.token_file == "/etc/condorhub/hub.token"
    assert queue.private_dir == str(tmp_path / "state" / "htcondor")
    assert queue.hub_id.endswith(f":{tmp_path / 'state'}")
    assert (queue.poll_interval, queue.unknown_grace) == (2, 60)
    assert (spawner.queue_timeout, spawner.server_start_timeout) == (7200, 180)
    # JupyterHub's own start timeout must never cut a job that is still allowed to wait or start.
    assert spawner.start_timeout > 7200 + 180
    assert spawner.http_timeout == 180
    assert spawner.accounting_groups == {"student": "group_students"}
    # Jobs from a login-node Lab run with the execute nodes' environment, not the hub machine's.
    assert c.LoginNodeSpawner.environment["CONDORHUB_JOB_PYTHON"] == "/opt/condorhub/worker-venv/bin/python"
    # The profiles reach the spawner as the schema's objects.
    assert isinstance(c.ProfileSpawner.profiles[1], CondorProfile) and c.ProfileSpawner.profiles[1].gpus == 1


def test_without_a_pool_nothing_of_htcondor_is_configured(tmp_path):
    data = yaml.safe_load(EXAMPLE.read_text())
    data["hub"]["state_dir"] = str(tmp_path / "state")
    c = Config()
    apply_site(c, validate_site_data(data))
    assert "HTCondorQueue" not in c and "HTCondorSpawner" not in c
    assert [p.kind for p in c.ProfileSpawner.profiles] == ["login_node"]
