"""The real HTCondor pool of the tests and the demo (devstack.pool), used the way the hub uses
it: from the host, through the htcondor2 bindings, authenticated with the hub's IDTOKEN, submitting
as queue super user on behalf of LDAP users (``+Owner``)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import stat
import time
from pathlib import Path

import pytest

from devstack import node_root
from devstack.directory import DEMO_USERS
from devstack.pool import HTCondorPool, PoolError

import htcondor2  # a condorhub dependency: missing means a broken install, which must fail

# Tests marked `condor` run against the real pool (root, debootstrap, chroot); the unit tests at
# the top need none of that.
condor = pytest.mark.condor

USERS = {u.uid: u for u in DEMO_USERS}
REPO = Path(__file__).resolve().parents[1]
IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5


def _wait_for(what: str, predicate, timeout: float = 60.0, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _home(user: str, pool: HTCondorPool) -> Path:
    return Path(USERS[user].home_under(str(pool.home_base)))


def _job(user: str | None, home: Path, script: str, **extra: str) -> htcondor2.Submit:
    """A 1-GPU shell job for ``user`` (None: no +Owner, i.e. the hub's own identity)."""
    owner = {"+Owner": f'"{user}"'} if user else {}
    return htcondor2.Submit({
        "executable": "/bin/sh",
        # HTCondor's argument syntax: the whole in double quotes, one argument in single quotes,
        # a double quote written twice.
        "arguments": '"-c \'' + script.replace('"', '""') + '\'"',
        "initialdir": str(home),
        "output": "job-$(ClusterId).$(ProcId).out",
        "error": "job-$(ClusterId).$(ProcId).err",
        "request_gpus": "1",
        "request_cpus": "1",
        "request_memory": "128MB",
        "should_transfer_files": "NO",
        "transfer_executable": "false",
        **owner,
        **extra,
    })


def _job_status(schedd, cluster: int) -> dict[int, int]:
    """ProcId -> JobStatus, from the queue or (once gone) the history."""
    ads = schedd.query(f"ClusterId == {cluster}", projection=["ProcId", "JobStatus"])
    if not ads:
        ads = schedd.history(f"ClusterId == {cluster}", projection=["ProcId", "JobStatus"])
    return {ad["ProcId"]: ad["JobStatus"] for ad in ads}


def _remove_and_wait(schedd, clusters: list[int]) -> None:
    constraint = " || ".join(f"ClusterId == {c}" for c in clusters)
    schedd.act(htcondor2.JobAction.Remove, constraint)
    _wait_for("removed jobs to leave the queue",
              lambda: not schedd.query(constraint, projection=["ClusterId"]), timeout=60)


# ------------------------------------------------------------------ unit tests (no pool)


def _checkout_copy(tmp_path: Path) -> Path:
    repo = tmp_path / "checkout"
    shutil.copytree(REPO / "ansible", repo / "ansible", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", repo / "pyproject.toml")
    return repo


def test_node_root_hash_follows_the_roles_it_applies(tmp_path):
    """The cached node root is rebuilt when what goes into it changes: a file of a role it applies, or
    condorhub's dependencies; not when a role it does not apply changes."""
    repo = _checkout_copy(tmp_path)
    base = node_root.node_recipe_hash(repo)
    assert base == node_root.node_recipe_hash(repo)
    template = repo / "ansible/roles/htcondor/templates/condorhub.config.j2"
    template.write_text(template.read_text() + "# a change\n")
    changed_role = node_root.node_recipe_hash(repo)
    assert changed_role != base
    hub_role = repo / "ansible/roles/jupyterhub/defaults/main.yml"
    hub_role.write_text(hub_role.read_text() + "# not on the GPU node\n")
    assert node_root.node_recipe_hash(repo) == changed_role
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('dependencies = [', 'dependencies = [\n    "rich",', 1))
    assert node_root.node_recipe_hash(repo) not in (base, changed_role)


def test_node_inventory_makes_one_pool_host_and_keeps_the_key_private(tmp_path):
    variables = node_root.node_vars(
        root=tmp_path / "root", wheel=tmp_path / "condorhub.whl", port=9700, ldap_uri="ldap://127.0.0.1:3890",
        ldap_base="dc=condorhub,dc=test", ldap_bind_dn="cn=nslcd,dc=condorhub,dc=test", ldap_bind_password="pw",
        signing_key="k" * 32, domain="condorhub.test", hub_identity="condorhub@condorhub.test", num_gpus=2,
        num_cpus=4, group_quotas={"group_students": 0.5})
    folder = node_root.write_inventory(tmp_path / "inventory", variables)
    hosts = json.loads((folder / "hosts.yml").read_text())["all"]["children"]
    assert set(hosts) == {"condor_central_manager", "condor_submit", "condor_execute"}
    group_vars = folder / "group_vars/all.yml"
    assert stat.S_IMODE(group_vars.stat().st_mode) == 0o600
    assert json.loads(group_vars.read_text())["condorhub_accounting_group_quotas"] == {"group_students": 0.5}


# ------------------------------------------------------------------ the real pool


@condor
def test_pool_is_up_with_two_gpus_and_idtokens_client(condor_pool):
    collector = htcondor2.Collector(condor_pool.collector_address)
    slots = collector.query(htcondor2.AdTypes.Startd, projection=["Name", "TotalSlotGPUs"])
    assert sum(ad.get("TotalSlotGPUs", 0) for ad in slots) == 2
    config = condor_pool.condor_config_path.read_text()
    assert "SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS" in config
    assert "CLAIMTOBE" not in config
    # The token is root's alone.
    mode = condor_pool.token_path.stat().st_mode
    assert stat.S_IMODE(mode) == 0o600 and condor_pool.token_path.stat().st_uid == 0
    assert stat.S_IMODE(condor_pool.token_path.parent.stat().st_mode) == 0o700
    # The token names the hub identity and grants READ and WRITE only (no ADMINISTRATOR/DAEMON).
    payload = condor_pool.token_path.read_text().strip().split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == condor_pool.hub_identity
    assert sorted(claims["scope"].split()) == ["condor:/READ", "condor:/WRITE"]
    # The schedd sees the hub as its token identity.
    schedd = htcondor2.Schedd()
    assert schedd.query("false", projection=["ClusterId"]) == []


@condor
def test_pool_runs_the_configuration_the_roles_rendered(condor_pool):
    """What runs is what ops deploy: the htcondor role's configuration, applied by ansible-playbook."""
    rendered = (condor_pool.root / "etc/condor/config.d/50-condorhub.config").read_text()
    assert "Ansible managed" in rendered
    for line in ("SEC_DEFAULT_AUTHENTICATION = REQUIRED", "SEC_READ_ENCRYPTION = REQUIRED",
                 "SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS", f"SHARED_PORT_PORT = {condor_pool.port}",
                 "use FEATURE: GPUs", "GROUP_ACCEPT_SURPLUS = True"):
        assert line in rendered, line
    assert "CLAIMTOBE" not in rendered and "ALLOW_WRITE = *" not in rendered

    def value(name: str) -> str:
        return condor_pool.run_in_root(["condor_config_val", name]).stdout.strip()

    assert value("QUEUE_SUPER_USERS").endswith(condor_pool.hub_identity)
    assert value("GROUP_NAMES").replace(" ", "") == "group_researchers,group_students"
    assert value("GROUP_QUOTA_DYNAMIC_group_students") == "0.5"
    # The nslcd the ldap_client role configured asks the session's directory.
    nslcd = (condor_pool.root / "etc/nslcd.conf").read_text()
    assert f"uri {condor_pool.ldap_uri}" in nslcd and "nss_min_uid 1000" in nslcd


@condor
def test_impersonation_reaches_real_users_only(condor_pool):
    """The role's QUEUE_SUPER_USER_MAY_IMPERSONATE: a valid user name that is none of the node's local
    accounts (listed at deployment from its /etc/passwd)."""
    regex = condor_pool.run_in_root(["condor_config_val", "QUEUE_SUPER_USER_MAY_IMPERSONATE"]).stdout.strip()
    pattern = re.compile(regex)
    for name in ("alice", "bob", "carol", "dave", "a.student", "user_42", "rootless", "condorx"):
        assert pattern.fullmatch(name), name
    local = [line.split(":")[0] for line in (condor_pool.root / "etc/passwd").read_text().splitlines() if line]
    assert {"root", "condor", "condorhub", "nslcd", "nobody", "daemon"} <= set(local)
    # ... and the accounts the hub gets later in site.yml (the jupyterhub role's course account), from the start
    for name in [*local, "condorhub-courses", "", "Alice", "-rf", "alice bob", "x" * 40, "alice\n"]:
        assert not pattern.fullmatch(name), name


@condor
def test_ldap_users_resolve_inside_the_node(condor_pool):
    out = condor_pool.run_in_root(["getent", "passwd", "alice"]).stdout
    fields = out.strip().split(":")
    assert fields[0] == "alice" and fields[2] == "10001" and fields[3] == "10000"
    # ... and only through LDAP: the node's own /etc/passwd has no such user.
    assert "alice" not in (condor_pool.root / "etc/passwd").read_text()
    assert condor_pool.run_in_root("id -un", user="alice").stdout.strip() == "alice"


@condor
def test_single_user_environment_has_this_checkout(condor_pool):
    """The worker venv (jupyterhub 6, jupyterlab, batchspawner 1.3) with the condorhub wheel built from this
    checkout at ``up`` (the worker_env role reinstalls a changed wheel), usable by a user."""
    code = ("import importlib.metadata as m, condorhub, batchspawner, jupyterhub, jupyterlab; "
            "print(condorhub.__file__, m.version('jupyterhub'), m.version('batchspawner'))")
    out = condor_pool.run_in_root(["/opt/condorhub/worker-venv/bin/python", "-c", code],
                                  user="alice").stdout.split()
    assert out[0].startswith("/opt/condorhub/worker-venv/lib/")
    # ... this checkout's code, not the one the cached root was built with
    installed = condor_pool.root / Path(out[0]).parent.relative_to("/") / "spawner/condor/launcher.py"
    assert installed.read_bytes() == (REPO / "spawner/condor/launcher.py").read_bytes()
    # ... and only the product: the dev machinery (devstack/) is not in the wheel.
    assert not (condor_pool.root / Path(out[0]).parent.relative_to("/") / "demo").exists()
    assert out[1].split(".")[0] == "6" and out[2].startswith("1.3")
    assert (condor_pool.root / "opt/condorhub/worker-venv/bin/batchspawner-singleuser").exists()


@condor
def test_job_submitted_for_alice_runs_as_alice_with_one_gpu(condor_pool):
    home = _home("alice", condor_pool)
    marker = home / "written-by-job.txt"
    marker.unlink(missing_ok=True)
    schedd = htcondor2.Schedd()
    script = (f'id -un; echo "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"; '
              f'echo hello-from-the-gpu-node > {marker}')
    cluster = schedd.submit(_job("alice", home, script)).cluster()
    ad = schedd.query(f"ClusterId == {cluster}", projection=["Owner", "User", "RequestGPUs"])[0]
    assert ad["Owner"] == "alice"
    assert ad["User"] == f"alice@{condor_pool.uid_domain}"
    _wait_for(f"job {cluster} to complete",
              lambda: _job_status(schedd, cluster).get(0) == COMPLETED, timeout=90)

    out = (home / f"job-{cluster}.0.out").read_text().splitlines()
    assert out[0] == "alice"
    gpus = out[1].removeprefix("CUDA_VISIBLE_DEVICES=")
    ids = [g for g in gpus.split(",") if g]
    assert len(ids) == 1 and re.fullmatch(r"GPU-[0-9a-f]+", ids[0]), out
    # Written inside the job, seen on the host at the same path, owned by alice's LDAP uid.
    assert marker.read_text().strip() == "hello-from-the-gpu-node"
    assert marker.stat().st_uid == 10001 and marker.stat().st_gid == 10000


@condor
@pytest.mark.parametrize("owner", ["root", "daemon", "condor", "nslcd", "condorhub", "nobody"])
def test_hub_cannot_impersonate_root_or_system_accounts(condor_pool, owner):
    schedd = htcondor2.Schedd()
    sub = _job("alice", _home("alice", condor_pool), "true")
    sub["+Owner"] = f'"{owner}"'
    with pytest.raises(htcondor2.HTCondorException, match="not permitted"):
        schedd.submit(sub)
    assert schedd.query(f'Owner == "{owner}"', projection=["ClusterId"]) == []


@condor
def test_hub_cannot_run_jobs_as_itself(condor_pool):
    """Without +Owner the job would run as the hub's local account: refused too."""
    schedd = htcondor2.Schedd()
    sub = _job(None, _home("alice", condor_pool), "true")
    with pytest.raises(htcondor2.HTCondorException, match="not permitted"):
        schedd.submit(sub)


@condor
def test_users_inside_the_node_submit_only_as_the_pool_policy_allows(condor_pool):
    """Users may write to the schedd (issue 12: their own jobs), under the pool's user map: dave, who never logged
    in to the hub, is refused with the reason; alice's job is queued, charged to her role's group. (Their own
    IDTOKENs: tests/test_pool_policy.py.)"""
    job = "printf 'executable = /bin/true\\nhold = true\\nqueue\\n' > /tmp/{0}.sub && condor_submit /tmp/{0}.sub"
    proc = condor_pool.run_in_root(job.format("dave"), user="dave", check=False)
    assert proc.returncode != 0, proc.stdout
    assert "dave has not logged in to the hub" in proc.stderr, proc.stderr
    proc = condor_pool.run_in_root(job.format("alice"), user="alice", check=False)
    assert proc.returncode == 0, proc.stderr
    cluster = int(re.search(r"submitted to cluster (\d+)", proc.stdout).group(1))
    schedd = htcondor2.Schedd()
    try:
        ad = schedd.query(f"ClusterId == {cluster}", projection=["Owner", "AcctGroup"])[0]
        assert (ad["Owner"], ad["AcctGroup"]) == ("alice", "group_students")
    finally:
        _remove_and_wait(schedd, [cluster])
    # Reading the queue is fine.
    assert condor_pool.run_in_root(["condor_q", "-totals"], user="alice").returncode == 0


@condor
def test_two_gpus_two_jobs_third_waits(condor_pool):
    schedd = htcondor2.Schedd()
    clusters = []
    try:
        for user in ("alice", "bob", "carol"):
            home = _home(user, condor_pool)
            script = 'echo "$CUDA_VISIBLE_DEVICES"; sleep 300'
            clusters.append(schedd.submit(_job(user, home, script)).cluster())

        def states():
            return [_job_status(schedd, c).get(0) for c in clusters]

        _wait_for("two jobs running", lambda: states().count(RUNNING) == 2, timeout=90)
        # Several negotiation cycles (2 s each): the third stays idle, no GPU is left.
        time.sleep(8)
        now = states()
        assert sorted(now) == [IDLE, RUNNING, RUNNING], now
        running = [c for c, s in zip(clusters, now) if s == RUNNING]
        owners = {c: u for c, u in zip(clusters, ("alice", "bob", "carol"))}
        devices = []
        for c in running:
            out = _home(owners[c], condor_pool) / f"job-{c}.0.out"
            devices.append(_wait_for(f"output of job {c}", lambda out=out: out.exists()
                                     and out.read_text().strip()))
        assert len(set(devices)) == 2 and all("," not in d for d in devices), devices
    finally:
        if clusters:
            _remove_and_wait(schedd, clusters)


@condor
def test_second_pool_is_refused_while_one_runs(condor_pool, tmp_path):
    other = HTCondorPool(tmp_path / "other-run", root=condor_pool.node_root, port=condor_pool.port,
                         install_condorhub=False, log=lambda msg: None)
    with pytest.raises(PoolError, match=f"is running on port {condor_pool.port}"):
        other.up()
    assert condor_pool.status()["running"]
    # The refused up left nothing behind (and did not touch the running pool's mounts).
    assert not (tmp_path / "other-run" / "pool-state.json").exists()
    slots = htcondor2.Collector(condor_pool.collector_address).query(
        htcondor2.AdTypes.Startd, projection=["Name"])
    assert len(slots) == 1
