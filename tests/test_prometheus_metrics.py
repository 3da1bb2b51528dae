"""Debian's real Prometheus scrapes the hub's /hub/metrics with the prometheus role's configuration, and what an
operator reads in it is what happens: alice's running login-node server, the pool's GPUs used and free.

Real components only: the session's HTCondor pool (two simulated GPUs), OpenLDAP, a hub subprocess behind the
proxy with the site file's `metrics.token_file`, and /usr/bin/prometheus run as the prometheus account (as
Debian's unit runs it) with the configuration rendered from ansible/roles/prometheus/templates/prometheus.yml.j2,
checked by promtool as the role checks it. Prometheus reaches the hub only with the service token, which may
read the metrics and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import htcondor2
import jinja2
import pytest
import requests
import yaml

from devstack import node_root as wr
from tests.support.hub import Hub, demo_site
from tests.support.ports import free_port
from tests.support.scratch import scratch_dir
from tests.test_condor_e2e import condor_profiles, login, messages, start_server, stop_server, wait_for

pytestmark = [pytest.mark.condor, pytest.mark.e2e, pytest.mark.ldap]

REPO = Path(__file__).resolve().parent.parent
ROLE = REPO / "ansible" / "roles" / "prometheus"
DASHBOARD = REPO / "docs" / "grafana-dashboard.json"


def render_role_config(**overrides) -> str:
    """The role's prometheus.yml as Ansible renders it: its defaults, then the inventory's values."""
    variables = {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()), **overrides}
    variables["ansible_managed"] = "Ansible managed (rendered by tests/test_prometheus_metrics.py)"
    template = (ROLE / "templates" / "prometheus.yml.j2").read_text()
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(template).render(**variables)


@pytest.fixture(scope="module")
def hub(slapd, condor_pool):
    work = scratch_dir("condorhub-metrics-hub-")
    token_file = work / "prometheus.token"
    # As the role writes it: root-owned, readable by the prometheus group only.
    token_file.write_text(os.urandom(32).hex() + "\n")
    shutil.chown(token_file, "root", "prometheus")
    token_file.chmod(0o640)
    site = demo_site(slapd.uri, slapd.suffix, work / "state")
    site["htcondor"] = {
        "condor_config": str(condor_pool.condor_config_path),
        "token_file": str(condor_pool.token_path),
        "user_tokens": {"signing_key_file": None},
        "server_venv": wr.WORKER_VENV,
        "poll_interval": 1,
        "query_timeout": 10,
        "accounting_groups": {"student": "group_students", "researcher": "group_researchers"},
    }
    site["profiles"] += condor_profiles()
    site["metrics"] = {"token_file": str(token_file)}
    # The pool status is reused for 1 s here (10 s by default), so a scrape soon sees the pool change.
    hub = Hub(work, site, extra_args=["--PoolStatus.max_age=1"]).start()
    hub.token = token_file.read_text().strip()
    hub.token_file = token_file
    yield hub
    hub.stop()
    hub.kill_servers()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def prometheus(hub):
    """/usr/bin/prometheus as the prometheus account, scraping the hub every second with the role's scrape job."""
    work = scratch_dir("condorhub-prometheus-")
    port = free_port()
    hub_address = re.match(r"https?://([^/]+)", hub.site["hub"]["hub_bind_url"]).group(1)
    config = work / "prometheus.yml"
    config.write_text(
        render_role_config(
            prometheus_hub_token_file=str(hub.token_file),
            prometheus_hub_address=hub_address,
            prometheus_listen_address=f"127.0.0.1:{port}",
            prometheus_scrape_interval="1s",
        )
    )
    check = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, f"promtool refuses the role's configuration:\n{check.stdout}{check.stderr}"
    storage = work / "data"
    storage.mkdir()
    shutil.chown(storage, "prometheus", "prometheus")
    log = open(work / "prometheus.log", "wb")
    proc = subprocess.Popen(
        ["setpriv", "--reuid=prometheus", "--regid=prometheus", "--init-groups", "/usr/bin/prometheus",
         f"--config.file={config}", f"--storage.tsdb.path={storage}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (work / "prometheus.log").read_text()[-3000:]
        try:
            return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_for("Prometheus to be ready", ready, timeout=60)
    yield url
    proc.terminate()
    proc.wait(20)
    log.close()
    shutil.rmtree(work, ignore_errors=True)


def query(prometheus: str, expr: str) -> dict[tuple, float]:
    """Prometheus' answer to an instant query: {labels: value}."""
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", answer
    return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in answer["data"]["result"]}


def value_becomes(prometheus: str, expr: str, expected: float, timeout: float = 45) -> None:
    seen: list = []

    def check() -> bool:
        seen[:] = [query(prometheus, expr)]
        return list(seen[0].values()) == [expected]

    wait_for(f"{expr} to be {expected}", check, timeout=timeout, context=lambda: f"(last answer: {seen})")


@pytest.fixture
def one_gpu_taken(condor_pool, ldap_home_base):
    """bob's ordinary 1-GPU batch job (submitted as the hub submits, Owner = bob), running."""
    schedd = htcondor2.Schedd()
    cluster = schedd.submit(
        htcondor2.Submit(
            {
                "executable": "/bin/sleep",
                "arguments": "600",
                "+Owner": '"bob"',
                "accounting_group": "group_researchers",
                "accounting_group_user": "bob",
                "request_gpus": "1",
                "request_cpus": "1",
                "request_memory": "64M",
                "initialdir": str(ldap_home_base / "bob"),
                "output": "/dev/null",
                "error": "/dev/null",
                "should_transfer_files": "NO",
                "transfer_executable": "false",
            }
        )
    ).cluster()
    try:
        wait_for("bob's 1-GPU job to run",
                 lambda: [a for a in schedd.query(f"ClusterId == {cluster}", projection=["JobStatus"])
                          if a.get("JobStatus") == 2], timeout=60)
        yield cluster
    finally:
        schedd.act(htcondor2.JobAction.Remove, f"ClusterId == {cluster}")


def test_prometheus_sees_alices_running_server_and_the_pools_gpus(hub, prometheus, request):
    # Before: the role's scrape job reaches the hub with its token, nobody's server runs, both GPUs are free.
    value_becomes(prometheus, 'up{job="condorhub-hub"}', 1)
    value_becomes(prometheus, 'sum(condorhub_servers{phase="running"})', 0)
    value_becomes(prometheus, 'condorhub_pool_gpus{state="free"}', 2)

    alice = login(hub, "alice")
    assert alice.spawn_form({"profile": "login-node"}).status_code == 200
    alice.wait_for_server("alice")
    # One running server, of the profile she chose; no other profile or phase has one.
    value_becomes(prometheus, 'condorhub_servers{phase="running",profile="login-node"}', 1)
    assert query(prometheus, "sum(condorhub_servers) - sum(condorhub_servers{phase='running',profile='login-node'})") \
        == {(): 0.0}

    # A GPU taken in the pool shows as used within a few scrapes (the pool status is cached for max_age).
    request.getfixturevalue("one_gpu_taken")
    value_becomes(prometheus, 'condorhub_pool_gpus{state="used"}', 1)
    value_becomes(prometheus, 'condorhub_pool_gpus{state="free"}', 1)
    assert query(prometheus, "condorhub_pool_status_up") == {(("__name__", "condorhub_pool_status_up"),
                                                              ("instance", _target(hub)), ("job", "condorhub-hub")): 1.0}

    r = alice.api("DELETE", "/users/alice/server")
    assert r.status_code in (202, 204), r.text
    value_becomes(prometheus, 'sum(condorhub_servers{profile="login-node"})', 0)


def test_a_batch_servers_queue_wait_and_the_schedd_queries_reach_prometheus(hub, prometheus):
    # bob's CPU server runs as an HTCondor job: counted as running under its profile, its wait in the queue
    # observed once, and the hub's schedd queries counted with their latency.
    bob = login(hub, "bob")
    events = start_server(bob, "bob", "cpu")
    assert events[-1].get("ready"), messages(events)
    try:
        value_becomes(prometheus, 'condorhub_servers{phase="running",profile="cpu"}', 1)
        value_becomes(prometheus, 'condorhub_queue_wait_seconds_count{profile="cpu"}', 1)
        # An empty pool starts the job within seconds: the one observation is in a bucket of at most a minute.
        assert list(query(prometheus, 'condorhub_queue_wait_seconds_bucket{profile="cpu",le="60.0"}').values()) == [1]
        (queries,) = query(prometheus, "condorhub_schedd_queries_total").values()
        (answered,) = query(prometheus, "condorhub_schedd_query_seconds_count").values()
        (failed,) = query(prometheus, "condorhub_schedd_query_failures_total").values()
        assert queries >= 1 and answered >= 1 and queries >= answered
        assert failed == 0
    finally:
        stop_server(bob, "bob")
    value_becomes(prometheus, 'sum(condorhub_servers{profile="cpu"})', 0)


def _target(hub) -> str:
    return re.match(r"https?://([^/]+)", hub.site["hub"]["hub_bind_url"]).group(1)


def test_the_metrics_token_reads_metrics_and_nothing_else(hub):
    metrics = f"{hub.url}/hub/metrics"
    # Without a token: refused (JupyterHub's authenticate_prometheus stays on).
    assert requests.get(metrics, timeout=10).status_code == 403
    auth = {"Authorization": f"Bearer {hub.token}"}
    assert requests.get(metrics, headers=auth, timeout=10).status_code == 200
    # The same token cannot list users, read a user or act for one.
    assert requests.get(f"{hub.url}/hub/api/users", headers=auth, timeout=10).status_code == 403
    assert requests.get(f"{hub.url}/hub/api/users/alice", headers=auth, timeout=10).status_code == 403
    assert requests.post(f"{hub.url}/hub/api/users/alice/server", headers=auth, timeout=10).status_code in (403, 404)


def dashboard_metrics() -> set[str]:
    """Every metric name the Grafana dashboard's queries use (a histogram's _bucket/_count/_sum as it is)."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    names = {name for expr in exprs for name in re.findall(r"\b((?:condorhub|jupyterhub)_[a-z0-9_]+)\b", expr)}
    assert names, "the dashboard queries no condorhub or JupyterHub metric"
    return names


def test_every_metric_the_dashboard_queries_is_on_hub_metrics(hub):
    auth = {"Authorization": f"Bearer {hub.token}"}

    def exposed() -> set[str]:
        text = requests.get(f"{hub.url}/hub/metrics", headers=auth, timeout=10).text
        return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}

    # The pool gauges appear once the pool status has answered (a scrape starts that query).
    missing: set[str] = set()

    def all_there() -> bool:
        missing.clear()
        missing.update(dashboard_metrics() - exposed())
        return not missing

    wait_for("every dashboard metric on /hub/metrics", all_there, timeout=30, context=lambda: f"missing: {missing}")
