"""The real HTCondor pool of the tests and the demo (condorhub.demo.pool), used the way the hub uses
it: from the host, through the htcondor2 bindings, authenticated with the hub's IDTOKEN, submitting
as queue super user on behalf of LDAP users (``+Owner``)."""

from __future__ import annotations

import base64
import json
import re
import stat
import time
from pathlib import Path

import pytest

from condorhub.demo import worker_root
from condorhub.demo.directory import DEMO_USERS
from condorhub.demo.pool import HTCondorPool, PoolError, impersonation_regex

import htcondor2  # a condorhub dependency: missing means a broken install, which must fail

# Tests marked `condor` run against the real pool (root, debootstrap, chroot); the unit tests at
# the top need none of that.
condor = pytest.mark.condor

USERS = {u.uid: u for u in DEMO_USERS}
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


def _fake_root(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
        "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        "nslcd:x:100:101::/run/nslcd:/usr/sbin/nologin\n"
        "condor:x:101:102::/var/lib/condor:/usr/sbin/nologin\n"
        "condorhub:x:999:999::/nonexistent:/usr/sbin/nologin\n"
    )
    (etc / "group").write_text("nslcd:x:101:\ncondor:x:102:\n")
    return tmp_path


def test_impersonation_regex_allows_only_real_user_names(tmp_path):
    regex = re.compile(impersonation_regex(_fake_root(tmp_path)))
    for name in ("alice", "bob", "carol", "dave", "a.student", "user_42", "rootless", "condorx"):
        assert regex.match(name), name
    for name in ("root", "daemon", "www-data", "nobody", "nslcd", "condor", "condorhub",
                 "", "Alice", "-rf", "alice bob", "x" * 40, "alice\n"):
        assert not regex.fullmatch(name), name


def test_recipe_hash_follows_the_recipe(monkeypatch):
    base = worker_root.recipe_hash()
    assert base == worker_root.recipe_hash()
    monkeypatch.setattr(worker_root, "PACKAGES", (*worker_root.PACKAGES, "vim"))
    with_vim = worker_root.recipe_hash()
    assert with_vim != base
    monkeypatch.setattr(worker_root, "RECIPE_VERSION", worker_root.RECIPE_VERSION + 1)
    assert worker_root.recipe_hash() not in (base, with_vim)


def test_generated_configs_are_locked_down(tmp_path):
    pool = HTCondorPool(tmp_path / "run", "ldap://127.0.0.1:3890", "dc=condorhub,dc=test",
                        root=_fake_root(tmp_path), log=lambda msg: None)
    pool_config = pool._pool_config(pool.root)
    assert "SEC_DEFAULT_AUTHENTICATION = REQUIRED" in pool_config
    assert "SEC_READ_AUTHENTICATION = REQUIRED" in pool_config
    assert "SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS" in pool_config
    assert "CLAIMTOBE" not in pool_config and "ALLOW_WRITE = *" not in pool_config
    assert "ENABLE_KERNEL_TUNING = False" in pool_config
    assert f"QUEUE_SUPER_USERS = root, condor, {pool.hub_identity}" in pool_config
    host_config = pool._host_config()
    assert "SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS" in host_config
    assert "CLAIMTOBE" not in host_config
    assert "FILESYSTEM_DOMAIN = condorhub.test" in host_config
    nslcd = pool._nslcd_conf()
    assert "uri ldap://127.0.0.1:3890" in nslcd and "nss_min_uid 1000" in nslcd


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
def test_ldap_users_resolve_inside_the_node(condor_pool):
    out = condor_pool.run_in_root(["getent", "passwd", "alice"]).stdout
    fields = out.strip().split(":")
    assert fields[0] == "alice" and fields[2] == "10001" and fields[3] == "10000"
    # ... and only through LDAP: the node's own /etc/passwd has no such user.
    assert "alice" not in (condor_pool.root / "etc/passwd").read_text()
    assert condor_pool.run_in_root("id -un", user="alice").stdout.strip() == "alice"


@condor
def test_single_user_environment_has_this_checkout(condor_pool):
    """The worker venv (jupyterhub 6, jupyterlab, batchspawner 1.3) plus the condorhub wheel built
    from this checkout at ``up``, usable by a user."""
    code = ("import importlib.metadata as m, condorhub, batchspawner, jupyterhub, jupyterlab; "
            "print(condorhub.__file__, m.version('jupyterhub'), m.version('batchspawner'))")
    out = condor_pool.run_in_root(["/opt/condorhub/worker-venv/bin/python", "-c", code],
                                  user="alice").stdout.split()
    assert out[0].startswith("/opt/condorhub/run-site/condorhub/")
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
def test_users_inside_the_node_cannot_submit(condor_pool):
    """Only the hub (and condor itself) may write to the queue; a user in a job may not."""
    proc = condor_pool.run_in_root(
        "printf 'executable = /bin/true\\nqueue\\n' > /tmp/alice.sub && condor_submit /tmp/alice.sub",
        user="alice", check=False)
    assert proc.returncode != 0, proc.stdout
    assert "DENIED" in proc.stderr or "denied" in proc.stderr.lower(), proc.stderr
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
    other = HTCondorPool(tmp_path / "other-run", root=condor_pool.root, port=condor_pool.port,
                         install_condorhub=False, log=lambda msg: None)
    with pytest.raises(PoolError, match="is running in"):
        other.up()
    assert condor_pool.status()["running"]
    # The refused up left nothing behind (and did not touch the running pool's mounts).
    assert not (tmp_path / "other-run" / "pool-state.json").exists()
    slots = htcondor2.Collector(condor_pool.collector_address).query(
        htcondor2.AdTypes.Startd, projection=["Name"])
    assert len(slots) == 1
