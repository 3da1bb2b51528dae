"""Idle culling and the runtime limit's warnings, the pure logic: which server is idle past its profile's
timeout, what the culler service is started with, what users read afterwards, and when the Lab warns.
The real culler against a real pool and hub: tests/test_condor_culling.py."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from condorhub.culler import HubArbiter
from condorhub.culling import (
    CULL_SCOPE,
    CULLER_SCOPES,
    SERVICE_NAME,
    activity_interval,
    apply_culling,
    culler_command,
    decide,
    idle_message,
    profile_timeouts,
)
from condorhub.lab.limits.activity import SETTING, BusyKernelActivity, busy_kernels, check_interval
from condorhub.lab.limits.deadline import Limits, parse_warnings
from condorhub.schema import SiteConfig
from condorhub.spawner.condor.spawner import HTCondorSpawner
from condorhub.spawner.profiles import ProfileSpawner, as_profile
from condorhub.spawner.server_status import server_entry
from traitlets.config import Config

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def site(**culling) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "ldap": {"server_address": "ldap.example.org", "bind_dn_template": ["uid={username},ou=people,dc=x"],
                     "user_search_base": "ou=people,dc=x"},
            "htcondor": {},
            "profiles": [
                {"slug": "login", "kind": "login_node", "display_name": "Login node", "roles": ["student"]},
                {"slug": "cpu", "kind": "condor", "display_name": "CPU batch", "roles": ["student"], "runtime": "8h",
                 "idle_timeout": "2h"},
                {"slug": "gpu-1", "kind": "condor", "display_name": "1 GPU", "roles": ["student"], "gpus": 1,
                 "runtime": "8h", "idle_timeout": "30m"},
            ],
            "culling": culling,
        }
    )


def server(slug: str, idle: timedelta | None, ready: bool = True, pending: str | None = None, started=None):
    profile = SimpleNamespace(slug=slug, display_name=slug, idle_timeout=None)
    last = None if idle is None else (NOW - idle).replace(tzinfo=None)  # JupyterHub's db: naive UTC
    return SimpleNamespace(ready=ready, pending=pending, profile=profile,
                           orm_spawner=SimpleNamespace(last_activity=last, started=started))


def test_a_gpu_server_is_culled_sooner_than_a_cpu_one_idle_as_long():
    timeouts = profile_timeouts(site())
    assert timeouts == {"login": 7200.0, "cpu": 7200.0, "gpu-1": 1800.0}  # login: culling.idle_timeout (2h)
    gpu = decide(server("gpu-1", timedelta(minutes=31)), timeouts, 7200, now=NOW)
    cpu = decide(server("cpu", timedelta(minutes=31)), timeouts, 7200, now=NOW)
    assert (gpu.cull, gpu.idle_timeout, gpu.profile) == (True, 1800.0, "gpu-1")
    assert round(gpu.inactive) == 31 * 60
    assert (cpu.cull, cpu.idle_timeout) == (False, 7200.0)
    assert not decide(server("gpu-1", timedelta(minutes=29)), timeouts, 7200, now=NOW).cull


def test_servers_starting_stopping_or_without_any_time_are_never_culled():
    timeouts = {"gpu-1": 60.0}
    long_ago = timedelta(days=1)
    assert not decide(server("gpu-1", long_ago, ready=False, pending="spawn"), timeouts, 60, now=NOW).cull
    assert not decide(server("gpu-1", long_ago, pending="stop"), timeouts, 60, now=NOW).cull
    assert not decide(server("gpu-1", None), timeouts, 60, now=NOW).cull
    # No activity reported yet: its start counts.
    started = (NOW - timedelta(minutes=2)).replace(tzinfo=None)
    assert decide(server("gpu-1", None, started=started), timeouts, 60, now=NOW).cull
    # A profile the site no longer has: the site's default.
    assert not decide(server("gone", timedelta(seconds=90)), timeouts, 120, now=NOW).cull


def test_the_culler_runs_with_the_shortest_timeout_and_servers_report_activity_well_within_it():
    config = site(check_interval="30s")
    command = culler_command(config)
    assert command[1:3] == ["-m", "condorhub.culler"]
    assert "--timeout=1800" in command and "--cull-every=30" in command and "--cull-users=False" in command
    assert activity_interval(config) == 300  # JupyterHub's default is the most
    short = site(idle_timeout="12s")
    assert "--timeout=12" in culler_command(short) and activity_interval(short) == 4


def test_the_hub_config_has_the_service_with_only_the_scopes_it_needs_and_nothing_when_disabled():
    c = Config()
    apply_culling(c, site())
    (service,) = c.JupyterHub.services
    assert service["name"] == SERVICE_NAME and service["command"][2] == "condorhub.culler"
    (role,) = c.JupyterHub.load_roles
    assert role["services"] == [SERVICE_NAME]
    assert set(role["scopes"]) == set(CULLER_SCOPES) == {"list:users", "read:users:activity", "read:servers",
                                                          "delete:servers", CULL_SCOPE}
    assert CULL_SCOPE in c.JupyterHub.custom_scopes
    assert c.JupyterHub.extra_handlers[0][0] == r"/api/condorhub/culling/([^/]+)/?([^/]*)"
    assert c.ProfileSpawner.activity_interval == 300
    off = Config()
    apply_culling(off, site(enabled=False))
    assert "services" not in off.JupyterHub and "activity_interval" not in off.ProfileSpawner


def test_the_culler_asks_the_hub_only_about_servers_idle_past_the_shortest_timeout():
    arbiter = HubArbiter("http://127.0.0.1:9/hub/api/", "t", log=SimpleNamespace(warning=print, debug=print))
    assert arbiter.decide_url("alice/") == "http://127.0.0.1:9/hub/api/condorhub/culling/alice/"
    assert arbiter.decide_url("bob/my run") == "http://127.0.0.1:9/hub/api/condorhub/culling/bob/my%20run"
    model = {"full_name": "alice/"}
    # Idle for less than --timeout: no request at all (nothing listens on port 9: a request would fail slowly).
    assert asyncio.run(arbiter(inactive=timedelta(seconds=5), inactive_limit=10, server=model)) is False
    # The hub does not answer: the server is kept.
    assert asyncio.run(arbiter(inactive=timedelta(seconds=50), inactive_limit=10, server=model)) is False


def test_a_stop_announced_by_the_culler_is_the_reason_users_read_and_an_old_announcement_is_forgotten():
    message = idle_message(1800, "1 GPU")
    assert message.startswith("Your server was stopped after 30 min without activity (idle timeout of the 1 GPU "
                              "profile).")
    spawner = ProfileSpawner()
    spawner.expect_stop(message)
    asyncio.run(spawner.stop())
    assert spawner.last_stop_reason == message and spawner.get_state()["last_stop_reason"] == message
    # An admin's stop later says nothing of idleness.
    spawner.last_stop_reason = ""
    asyncio.run(spawner.stop())
    assert spawner.last_stop_reason == ""
    spawner.expected_stop_lifetime = 0
    spawner.expect_stop(message)
    asyncio.run(spawner.stop())
    assert spawner.last_stop_reason == ""


def test_the_home_page_says_why_a_stopped_server_stopped():
    stopped = SimpleNamespace(active=False, last_stop_reason=idle_message(600, "1 GPU"))
    entry = server_entry("", stopped, "hub")
    assert entry == {"name": "", "stopped": True, "stop_reason": stopped.last_stop_reason}
    assert "after 10 min without activity (idle timeout of the 1 GPU profile)" in entry["stop_reason"]


def test_a_job_that_ends_at_its_runtime_limit_says_so(monkeypatch):
    spawner = HTCondorSpawner(profile=as_profile({"kind": "condor", "slug": "gpu-1", "display_name": "1 GPU",
                                                  "roles": ["student"], "gpus": 1, "runtime": "1h"}))
    spawner.job_id, spawner.run_started = "12.0", 1_000_000
    monkeypatch.setattr("time.time", lambda: 1_000_000 + 1800)
    assert spawner._runtime_limit_reason() == ""  # ended early: HTCondor's own reason stands
    monkeypatch.setattr("time.time", lambda: 1_000_000 + 3601)
    assert spawner._runtime_limit_reason().startswith("Your server was stopped by its runtime limit of 1 h (the 1 GPU "
                                                      "profile), counted from the start of its job 12.0.")


def test_the_spawner_tells_the_server_its_runtime_and_when_to_warn():
    spawner = ProfileSpawner(limit_warning=900, limit_last_warning=300, activity_interval=20)
    spawner.profile = as_profile({"kind": "condor", "slug": "gpu-1", "display_name": "1 GPU", "roles": ["student"],
                                  "runtime": "8h"})
    assert spawner._limits_env() == {"JUPYTERHUB_ACTIVITY_INTERVAL": "20", "CONDORHUB_SERVER_RUNTIME": "28800",
                                     "CONDORHUB_LIMIT_WARNINGS": "900,300"}
    spawner.profile = as_profile({"kind": "login_node", "slug": "login", "display_name": "Login", "roles": ["student"]})
    assert spawner._limits_env() == {"JUPYTERHUB_ACTIVITY_INTERVAL": "20"}


def test_the_server_finds_its_deadline_from_the_job_start_or_its_own(tmp_path):
    ad = tmp_path / ".job.ad"
    ad.write_text('ClusterId = 12\nJobCurrentStartDate = 1000000\nOwner = "alice"\n')
    env = {"CONDORHUB_SERVER_RUNTIME": "3600", "_CONDOR_JOB_AD": str(ad), "CONDORHUB_LIMIT_WARNINGS": "900,300"}
    assert Limits.from_environment(env, started=1_000_009) == Limits(1_003_600.0, (900, 300))
    del env["_CONDOR_JOB_AD"]
    assert Limits.from_environment(env, started=1_000_009).deadline == 1_003_609.0
    assert Limits.from_environment({"CONDORHUB_SERVER_DEADLINE": "1234567890"}).deadline == 1234567890.0
    assert Limits.from_environment({}).deadline is None  # the login node
    assert parse_warnings("300, 900,x,-5") == (900, 300) and parse_warnings(None) == (900, 300)
    assert Limits(5.0, (900,)).as_json(now=1.0) == {"deadline": 5.0, "warnings": [900], "now": 1.0}


def test_a_busy_kernel_counts_as_activity_and_an_idle_one_does_not():
    kernels = {"a": SimpleNamespace(execution_state="idle"), "b": SimpleNamespace(execution_state="busy")}
    manager = SimpleNamespace(list_kernel_ids=lambda: list(kernels), get_kernel=kernels.__getitem__)
    assert busy_kernels(manager) == ["b"]
    settings: dict = {}
    activity = BusyKernelActivity(manager, settings, SimpleNamespace(debug=lambda *a: None), interval=1)
    activity.check()
    assert settings[SETTING].tzinfo is not None  # compared with jupyter-server's own (aware) times
    kernels["b"].execution_state = "idle"
    settings.clear()
    activity.check()
    assert settings == {}
    assert check_interval({"JUPYTERHUB_ACTIVITY_INTERVAL": "4"}) == 2 and check_interval({}) == 30


def test_a_stop_by_an_admin_or_an_instructor_is_told_but_not_ones_own_or_the_cullers():
    from condorhub.spawner.stop_reasons import stopped_by_message, stopped_by_other

    assert stopped_by_message(SimpleNamespace(name="carol", admin=False)).startswith(
        "Your server was stopped by carol (an instructor of your course).")
    assert "(an admin of the hub)" in stopped_by_message(SimpleNamespace(name="erin", admin=True))
    alice = SimpleNamespace(orm_spawners={"": 1, "run": 2})

    def handler(path, actor, method="DELETE", status=204):
        return SimpleNamespace(request=SimpleNamespace(method=method, path=path), get_status=lambda: status,
                               hub=SimpleNamespace(base_url="/hub/"), _jupyterhub_user=actor,
                               find_user=lambda name: alice if name == "alice" else None)

    carol = SimpleNamespace(name="carol", kind="user", admin=False)
    assert stopped_by_other(handler("/hub/api/users/alice/server", carol)) == (alice, "", carol)
    assert stopped_by_other(handler("/hub/api/users/alice/servers/run", carol)) == (alice, "run", carol)
    assert stopped_by_other(handler("/hub/api/users/alice/server", carol, method="POST")) is None
    assert stopped_by_other(handler("/hub/api/users/alice/server", carol, status=403)) is None
    me = SimpleNamespace(name="alice", kind="user", admin=False)
    assert stopped_by_other(handler("/hub/api/users/alice/server", me)) is None
    culler = SimpleNamespace(name="idle-culler", kind="service")
    assert stopped_by_other(handler("/hub/api/users/alice/server", culler)) is None
