"""The home page's server box: what it shows of a server, from the spawner's own state (pure logic with
stand-in spawners; the real HTCondor server is in test_spawn_form_pool.py)."""

from __future__ import annotations

from types import SimpleNamespace

from condorhub.spawner.profiles import as_profile
from condorhub.spawner.server_status import apply_server_status, format_time_left, server_entry, servers_of

GPU = as_profile({"kind": "condor", "slug": "gpu-1", "display_name": "1 GPU", "roles": ["student"], "gpus": 1,
                  "runtime": "8h"})
LOGIN = as_profile({"kind": "login_node", "slug": "login", "display_name": "Login node", "roles": ["student"]})


def spawner(profile, ready=True, pending=None, child=None, limit_warning=900.0):
    return SimpleNamespace(active=ready or bool(pending), ready=ready, pending=pending, profile=profile,
                           child_spawner=child, limit_warning=limit_warning)


def test_a_gpu_server_shows_its_job_node_and_time_left_before_the_runtime_limit():
    job = SimpleNamespace(job_id="42.0", node="gpu07.example.org", run_started=1_000_000)
    entry = server_entry("", spawner(GPU, child=job), "hub", now=1_000_000 + 3600 + 59)
    assert (entry["profile"], entry["node"], entry["job_id"]) == ("1 GPU", "gpu07.example.org", "42.0")
    # HTCondor's allowed_job_duration counts from the job's start: 8 h after it.
    assert entry["ends_at"] == 1_000_000 + 8 * 3600 and entry["runtime"] == "8 h"
    assert entry["time_left"] == "6 h 59 min" and not entry["warn"]


def test_the_warning_starts_limit_warning_seconds_before_the_end():
    job = SimpleNamespace(job_id="42.0", node="gpu07", run_started=1_000_000)
    end = 1_000_000 + 8 * 3600
    assert not server_entry("", spawner(GPU, child=job), "hub", now=end - 901)["warn"]
    late = server_entry("", spawner(GPU, child=job), "hub", now=end - 845)
    assert late["warn"] and late["time_left"] == "14 min 5 s"
    assert not server_entry("", spawner(GPU, child=job, limit_warning=0), "hub", now=end - 10)["warn"]


def test_a_queued_server_has_a_job_but_no_node_or_limit_yet_and_the_login_node_has_no_limit():
    queued = server_entry("", spawner(GPU, ready=False, pending="spawn",
                                      child=SimpleNamespace(job_id="43.0", node="", run_started=0)), "hub")
    assert (queued["job_id"], queued["node"], queued["ends_at"], queued["pending"]) == ("43.0", "", 0, "spawn")
    login = server_entry("", spawner(LOGIN), "hub.example.org")
    assert (login["node"], login["ends_at"], login["job_id"]) == ("hub.example.org", 0, "")
    assert server_entry("", spawner(LOGIN, ready=False), "hub") is None  # stopped: not shown


def test_only_active_servers_of_a_logged_in_user_and_the_template_var_is_merged():
    user = SimpleNamespace(orm_user=SimpleNamespace(orm_spawners={"": 1, "b": 2}),
                           spawners={"": spawner(LOGIN, ready=False), "b": spawner(LOGIN)})
    assert [e["name"] for e in servers_of(user, "hub")] == ["b"]
    assert servers_of(None) == []
    c = SimpleNamespace(JupyterHub=SimpleNamespace(template_vars={"condorhub_courses": "x"}))
    c.JupyterHub.get = lambda key, default: getattr(c.JupyterHub, key, default)
    apply_server_status(c)
    assert set(c.JupyterHub.template_vars) == {"condorhub_courses", "condorhub_servers"}


def test_time_left_drops_seconds_above_an_hour():
    assert [format_time_left(s) for s in (7 * 3600 + 59 * 60 + 30, 845, 0, -5)] == ["7 h 59 min", "14 min 5 s",
                                                                                  "0 s", "0 s"]
