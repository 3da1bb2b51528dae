"""condorhub's metrics as /hub/metrics renders them (prometheus_client's default registry, which JupyterHub
serves), from spawners and a pool status made of plain objects: which phase a server is counted in, that every
profile's series exists at 0, that the pool gauges report the cached answer and ask the pool at most once per
max_age, and that a metrics token file another user could read or swap is refused with the fix.

Pure logic (marker `unit`); the real hub, pool and Prometheus are in tests/test_prometheus_metrics.py.
"""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY, generate_latest
from traitlets.config import Config

from condorhub import metrics
from condorhub.schema import SiteConfig
from condorhub.spawner.condor.pool_status import PoolSnapshot, PoolStatus


def spawner(phase: str, slug: str = "gpu-1") -> SimpleNamespace:
    """A ProfileSpawner as the collector sees it, in one of the states JupyterHub gives it."""
    states = {
        "stopped": dict(active=False, pending=None, ready=False, job="", node=""),
        "queued": dict(active=True, pending="spawn", ready=False, job="12.0", node=""),
        "starting": dict(active=True, pending="spawn", ready=False, job="12.0", node="gpu01.example.org"),
        "running": dict(active=True, pending=None, ready=True, job="12.0", node="gpu01.example.org"),
        "stopping": dict(active=True, pending="stop", ready=False, job="12.0", node="gpu01.example.org"),
    }
    s = states[phase]
    child = SimpleNamespace(job_id=s["job"], node=s["node"])
    return SimpleNamespace(
        active=s["active"], pending=s["pending"], ready=s["ready"], profile=SimpleNamespace(slug=slug), child_spawner=child
    )


def scrape() -> dict[str, float]:
    """The registry as /hub/metrics renders it: {'name{labels}': value}."""
    out = {}
    for line in generate_latest(REGISTRY).decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


@pytest.mark.parametrize("phase", ["queued", "starting", "running", "stopping"])
def test_a_server_is_counted_in_the_phase_its_user_sees(phase):
    assert metrics.server_phase(spawner(phase)) == phase


def test_a_login_node_server_starting_has_no_job_and_is_starting_not_queued():
    s = spawner("queued", "login-node")
    s.child_spawner = SimpleNamespace()  # LoginNodeSpawner: no job_id, no node
    assert metrics.server_phase(s) == "starting"
    assert metrics.server_phase(spawner("stopped")) is None


def test_servers_by_phase_and_profile_with_every_profile_present_at_zero():
    users = [
        SimpleNamespace(spawners={"": spawner("running", "login-node")}),
        SimpleNamespace(spawners={"": spawner("queued"), "second": spawner("running")}),
        SimpleNamespace(spawners={"": spawner("stopped")}),
    ]
    metrics.register("servers", metrics.ServersCollector(lambda: users, ["login-node", "gpu-1", "gpu-2"]))
    found = {k: v for k, v in scrape().items() if k.startswith("condorhub_servers{")}
    assert found['condorhub_servers{phase="running",profile="login-node"}'] == 1
    assert found['condorhub_servers{phase="running",profile="gpu-1"}'] == 1
    assert found['condorhub_servers{phase="queued",profile="gpu-1"}'] == 1
    assert found['condorhub_servers{phase="stopping",profile="gpu-2"}'] == 0
    assert len(found) == 4 * 3 and sum(found.values()) == 3


class FakePool:
    """What PoolCollector uses of PoolStatus: cached(), max_age, snapshot() (counted)."""

    def __init__(self, snapshot, age):
        self.max_age = 10.0
        self._cached = (snapshot, age)
        self.asked = 0

    def cached(self):
        return self._cached

    async def snapshot(self):
        self.asked += 1


SLOTS = [
    {"SlotType": "Partitionable", "State": "Unclaimed", "Cpus": 6, "Memory": 8000, "GPUs": 1, "TotalSlotGPUs": 2},
    {"SlotType": "Dynamic", "State": "Claimed", "Cpus": 1, "Memory": 1000, "GPUs": 1},
    {"SlotType": "Partitionable", "State": "Drained", "Cpus": 8, "Memory": 8000, "GPUs": 4, "TotalSlotGPUs": 4},
]


def test_pool_gpus_used_and_free_from_the_cached_answer_without_asking_the_pool():
    pool = FakePool(PoolSnapshot(SLOTS, [], 0.0), age=3.0)
    metrics.register("pool", metrics.PoolCollector(lambda: pool))
    found = scrape()
    # The drained machine's GPUs take no job: neither used nor free.
    assert found['condorhub_pool_gpus{state="used"}'] == 1
    assert found['condorhub_pool_gpus{state="free"}'] == 1
    assert found["condorhub_pool_status_up"] == 1
    assert found["condorhub_pool_status_age_seconds"] == 3.0
    assert pool.asked == 0


def test_a_stale_answer_is_reported_and_one_fresh_query_started_in_the_background():
    pool = FakePool(None, age=12.0)  # the pool did not answer, 12 s ago (max_age 10 s)
    metrics.register("pool", metrics.PoolCollector(lambda: pool))

    async def on_the_hub_loop():
        found = scrape()
        await asyncio.sleep(0)
        return found

    found = asyncio.run(on_the_hub_loop())
    assert found["condorhub_pool_status_up"] == 0
    assert not any(k.startswith("condorhub_pool_gpus") for k in found)  # unknown is not "0 GPUs"
    assert pool.asked == 1


def test_before_the_first_answer_no_pool_gauge_is_reported():
    pool = FakePool(None, age=None)
    metrics.register("pool", metrics.PoolCollector(lambda: pool))
    assert not any(k.startswith("condorhub_pool_") for k in scrape())


def test_pool_status_cached_says_never_asked_then_the_answer_and_its_age():
    status = PoolStatus(queue=SimpleNamespace())
    assert status.cached() == (None, None)
    snapshot = PoolSnapshot(SLOTS, [], 0.0)
    status._remember(snapshot)
    cached, age = status.cached()
    assert cached is snapshot and 0 <= age < 1


def test_culls_queue_waits_and_schedd_queries_are_counted():
    before = scrape()
    metrics.record_cull("gpu-1")
    metrics.record_queue_wait("gpu-1", 42.0)
    metrics.SCHEDD_QUERIES.inc()
    metrics.record_schedd_query(0.03)
    metrics.SCHEDD_QUERIES.inc()
    metrics.record_schedd_query(None)
    after = scrape()

    def grew(key: str) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert grew('condorhub_culls_total{profile="gpu-1"}') == 1
    assert grew('condorhub_queue_wait_seconds_bucket{le="60.0",profile="gpu-1"}') == 1
    assert grew('condorhub_queue_wait_seconds_bucket{le="30.0",profile="gpu-1"}') == 0
    assert grew("condorhub_schedd_queries_total") == 2
    assert grew("condorhub_schedd_query_failures_total") == 1
    assert grew("condorhub_schedd_query_seconds_count") == 1


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: None, "does not exist"),
        (lambda p: (p.write_text("x" * 64), p.chmod(0o644)), "chmod 0640"),
        (lambda p: (p.write_text("x" * 64), p.chmod(0o660)), "chmod 0640"),
        (lambda p: (p.with_name("real").write_text("x" * 64), p.symlink_to(p.with_name("real"))), "cannot be opened"),
        (lambda p: (p.write_text("short\n"), p.chmod(0o600)), "at least 32"),
    ],
    ids=["missing", "world-readable", "group-writable", "symlink", "short"],
)
def test_a_token_file_others_could_read_or_swap_is_refused_with_the_fix(tmp_path, make, words):
    path = tmp_path / "prometheus.token"
    make(path)
    with pytest.raises(metrics.MetricsTokenError, match=words) as err:
        metrics.read_token_file(path, owner_uid=os.geteuid())
    assert str(path) in str(err.value) and "metrics.token_file" in str(err.value)


def test_a_token_file_of_another_owner_is_refused_and_a_good_one_read(tmp_path):
    path = tmp_path / "prometheus.token"
    path.write_text("ab" * 32 + "\n")
    path.chmod(0o640)
    assert metrics.read_token_file(path, owner_uid=os.geteuid()) == "ab" * 32
    with pytest.raises(metrics.MetricsTokenError, match="must be owned by root"):
        metrics.read_token_file(path, owner_uid=os.geteuid() + 1)



def site_with(token_file) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "ldap": {
                "server_address": "ldap.example.org",
                "bind_dn_template": ["uid={username},ou=people,dc=example,dc=org"],
                "user_search_base": "ou=people,dc=example,dc=org",
            },
            "profiles": [{"slug": "login-node", "kind": "login_node", "display_name": "Login node", "roles": ["student"]}],
            "metrics": {"token_file": str(token_file)} if token_file else {},
        }
    )


def test_the_hub_stops_at_start_naming_the_token_file_and_the_fix(tmp_path, capsys):
    path = tmp_path / "prometheus.token"
    path.write_text("ab" * 32)
    path.chmod(0o644)
    with pytest.raises(SystemExit) as stop:
        metrics.apply_metrics(Config(), site_with(path))
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"condorhub: metrics.token_file {path} must be owned by root") and "chmod 0640" in err


def test_without_a_token_file_no_service_is_added():
    c = Config()
    metrics.apply_metrics(c, site_with(None))
    assert "services" not in c.JupyterHub and "load_roles" not in c.JupyterHub


def test_the_token_the_prometheus_role_writes_is_the_one_the_hubs_site_file_names():
    """One path, restated once per role (each role's defaults stand alone): the same literal; the jupyterhub role
    names it in the site file only with Prometheus on, and Prometheus sends it as its credentials file."""
    import re
    from pathlib import Path

    roles = Path(__file__).resolve().parents[1] / "ansible/roles"
    literal = re.compile(r"condorhub_metrics_token_file \| default\('([^']+)'\)")
    prometheus = literal.findall((roles / "prometheus/defaults/main.yml").read_text())
    jupyterhub = literal.findall((roles / "jupyterhub/defaults/main.yml").read_text())
    assert prometheus == jupyterhub == ["/etc/condorhub/prometheus.token"]
    assert "if condorhub_prometheus | default(false) | bool else ''" in (roles / "jupyterhub/defaults/main.yml").read_text()
    assert "'metrics': {'token_file': jupyterhub_metrics_token_file}" in (
        roles / "jupyterhub/templates/site.yaml.j2"
    ).read_text()
    assert "credentials_file: {{ prometheus_hub_token_file }}" in (roles / "prometheus/templates/prometheus.yml.j2").read_text()
