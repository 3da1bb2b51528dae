"""Fair share and limits enforced by the pool, not by the hub's form (issue 12 part 2).

Users hold their own IDTOKEN (``<user>@<uid_domain>``, READ + WRITE: tests/support/user_tokens.py mints it as the
hub does) and submit with ``condor_submit`` in the pool's node, as in a Lab terminal. The schedd, configured by the
htcondor role, charges each job to its owner's group and refuses what the owner's role does not allow, from the
pool's user map that the hub writes at login (condorhub.spawner.condor.usermap). The session's map knows alice
(student), bob (researcher) and carol (instructor) as the demo site's hub writes them (tests/support/pool_policy.py);
dave never logged in. Each attack is performed for real and shown refused.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import time

import pytest

from devstack.directory import DEMO_USERS
from condorhub.spawner.condor.usermap import UserMapWriter, _limits_from, parse, render
from tests.support.hub import Hub, demo_site
from tests.support.pool_policy import POLICY_GROUPS, demo_limits, user_map_writer
from tests.support.scratch import scratch_dir
from tests.support.user_tokens import SUBMITTER_AUTHZ, mint_user_token

import htcondor2  # a condorhub dependency: missing means a broken install, which must fail

pytestmark = [pytest.mark.condor]

HELD = "executable = /bin/true\nhold = true\n"


def _submit(client, pool, text: str) -> subprocess.CompletedProcess[str]:
    """``condor_submit`` of ``text`` (a file in the client's folder) in the node as the client's user, with their
    token only."""
    job = client.directory / "job.sub"
    job.write_text(text if "queue" in text else text + "queue\n")
    os.chown(job, client.uid, client.gid)
    return client.run_in_root(pool, "condor_submit job.sub")


def _cluster(proc: subprocess.CompletedProcess[str]) -> int:
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr
    return int(re.search(r"submitted to cluster (\d+)", proc.stdout).group(1))


def _refusal(proc: subprocess.CompletedProcess[str]) -> str:
    """The schedd's reason, as condor_submit prints it."""
    assert proc.returncode != 0, f"accepted: {proc.stdout[-500:]}"
    return "\n".join(line for line in proc.stderr.splitlines() if line.startswith("ERROR") or "DENIED" in line)


def _ad(cluster: int, *attrs: str) -> dict:
    ads = htcondor2.Schedd().query(f"ClusterId == {cluster}", projection=list(attrs))
    assert ads, f"cluster {cluster} is not in the queue"
    return {name: ads[0][name] for name in attrs if name in ads[0]}


@pytest.fixture
def clusters():
    """Clusters to remove after the test (through the hub's token)."""
    made: list[int] = []
    yield made
    if made:
        htcondor2.Schedd().act(htcondor2.JobAction.Remove, " || ".join(f"ClusterId == {c}" for c in made))


@pytest.fixture
def restore_map(condor_pool):
    """Users whose map lines a test changes get their demo lines back afterwards."""
    changed: list[str] = []
    yield changed
    writer = user_map_writer(condor_pool)
    roles = {u.uid: u.group.rstrip("s") for u in DEMO_USERS}
    for user in changed:
        writer.update(user, demo_limits([roles[user]]))


# ------------------------------------------------------------------------------ accounting group


def test_a_students_job_asking_for_the_researchers_group_is_refused_naming_hers(condor_pool, user_condor_client,
                                                                              clusters):
    """Refused rather than silently re-charged: alice learns at once that the group is not hers (and which is),
    instead of finding her usage elsewhere later; the hub's own jobs always ask for one of the user's groups."""
    alice = user_condor_client("alice")
    reason = _refusal(_submit(alice, condor_pool, HELD + "accounting_group = group_researchers\n"))
    assert "accounting_group = group_researchers is not yours" in reason and "group_students" in reason, reason

    # Without a group, or naming another user's share: charged to her own group, as herself.
    cluster = _cluster(_submit(alice, condor_pool, HELD + "accounting_group_user = bob\n"))
    clusters.append(cluster)
    ad = _ad(cluster, "Owner", "AcctGroup", "AcctGroupUser", "AccountingGroup")
    assert ad == {"Owner": "alice", "AcctGroup": "group_students", "AcctGroupUser": "alice",
                  "AccountingGroup": "group_students.alice"}, ad
    # ... and she cannot change that afterwards.
    edit = alice.run_in_root(condor_pool, f"condor_qedit {cluster} AcctGroup '\"group_researchers\"'")
    assert edit.returncode != 0
    assert _ad(cluster, "AcctGroup")["AcctGroup"] == "group_students"

    bob = user_condor_client("bob")
    cluster = _cluster(_submit(bob, condor_pool, HELD + "accounting_group = group_researchers\n"))
    clusters.append(cluster)
    assert _ad(cluster, "AcctGroup", "AccountingGroup") == {"AcctGroup": "group_researchers",
                                                           "AccountingGroup": "group_researchers.bob"}


def test_the_hubs_own_jobs_follow_the_same_rules(condor_pool, clusters):
    """The hub submits as a queue super user with Owner = the user; the schedd's rules apply all the same."""
    schedd = htcondor2.Schedd()
    base = {"executable": "/bin/true", "hold": "true", "+Owner": '"alice"', "should_transfer_files": "NO",
            "transfer_executable": "false"}
    with pytest.raises(htcondor2.HTCondorException, match="students may request at most 1 GPU"):
        schedd.submit(htcondor2.Submit({**base, "request_gpus": "2"}))
    with pytest.raises(htcondor2.HTCondorException, match="group_researchers is not yours"):
        schedd.submit(htcondor2.Submit({**base, "accounting_group": "group_researchers"}))
    cluster = schedd.submit(htcondor2.Submit({**base, "accounting_group": "group_students",
                                              "accounting_group_user": "alice", "request_gpus": "1"})).cluster()
    clusters.append(cluster)
    assert _ad(cluster, "AcctGroup", "AllowedJobDuration") == {"AcctGroup": "group_students",
                                                              "AllowedJobDuration": 8 * 3600}


# ------------------------------------------------------------------------------ role limits


def test_gpus_per_job_follow_the_role(condor_pool, user_condor_client, clusters):
    alice, bob = user_condor_client("alice"), user_condor_client("bob")
    reason = _refusal(_submit(alice, condor_pool, HELD + "request_gpus = 2\n"))
    assert "students may request at most 1 GPU(s) per job; this job asks for 2" in reason, reason
    # An expression could mean more on the execute node than at the schedd: only a number is accepted.
    reason = _refusal(_submit(alice, condor_pool, HELD + "request_gpus = TARGET.TotalSlotGPUs\n"))
    assert "request_gpus must be a whole number, not TARGET.TotalSlotGPUs" in reason, reason
    clusters.append(_cluster(_submit(alice, condor_pool, HELD + "request_gpus = 1\n")))
    cluster = _cluster(_submit(bob, condor_pool, HELD + "request_gpus = 2\n"))
    clusters.append(cluster)
    assert _ad(cluster, "RequestGpus")["RequestGpus"] == 2
    # Raising it once queued is for the queue super user only.
    edit = alice.run_in_root(condor_pool, f"condor_qedit {clusters[0]} RequestGpus 2")
    assert edit.returncode != 0
    assert _ad(clusters[0], "RequestGpus")["RequestGpus"] == 1


def test_runtime_beyond_the_roles_longest_is_refused_and_a_job_without_one_gets_it(condor_pool, user_condor_client,
                                                                                   clusters):
    alice = user_condor_client("alice")
    reason = _refusal(_submit(alice, condor_pool, HELD + "allowed_job_duration = 2592000\n"))
    assert "students may run a job for at most 28800 seconds (allowed_job_duration); this job asks for 2592000" \
        in reason, reason
    cluster = _cluster(_submit(alice, condor_pool, HELD))
    clusters.append(cluster)
    assert _ad(cluster, "AllowedJobDuration")["AllowedJobDuration"] == 28800
    cluster = _cluster(_submit(alice, condor_pool, HELD + "allowed_job_duration = 600\n"))
    clusters.append(cluster)
    assert _ad(cluster, "AllowedJobDuration")["AllowedJobDuration"] == 600


def test_jobs_per_user_beyond_the_limit_are_refused_naming_it(condor_pool, user_condor_client, clusters,
                                                             restore_map):
    # The site's htcondor.max_jobs_per_user, as the hub writes it: students 3.
    restore_map.append("alice")
    user_map_writer(condor_pool).update("alice", demo_limits(["student"], {"student": 3}))
    alice = user_condor_client("alice")
    before = len(htcondor2.Schedd().query('Owner == "alice"', projection=["ClusterId"]))
    reason = _refusal(_submit(alice, condor_pool, HELD + "queue 4\n"))
    assert "students may add at most 3 jobs in one submission" in reason, reason
    # the whole submission is refused: none of its 4 jobs entered the queue
    assert len(htcondor2.Schedd().query('Owner == "alice"', projection=["ClusterId"])) == before
    cluster = _cluster(_submit(alice, condor_pool, HELD + "queue 3\n"))
    clusters.append(cluster)
    assert len(htcondor2.Schedd().query(f"ClusterId == {cluster}", projection=["ProcId"])) == 3
    # All of a user's jobs together: HTCondor's one per-owner number, the largest role's (1000 here).
    value = condor_pool.run_in_root(["condor_config_val", "-subsystem", "schedd", "MAX_JOBS_PER_OWNER"])
    assert value.stdout.strip() == "1000"


def test_a_late_materializing_cluster_is_refused(condor_pool, user_condor_client,
                                                  clusters, restore_map):
    """With max_materialize or max_idle the schedd would make a cluster's jobs later, a few at a time, past the
    check at submission: such a cluster is refused."""
    restore_map.append("alice")
    user_map_writer(condor_pool).update("alice", demo_limits(["student"], {"student": 3}))
    alice = user_condor_client("alice")
    before = len(htcondor2.Schedd().query('Owner == "alice"', projection=["ClusterId"]))
    for late in ("max_materialize = 2", "max_idle = 2"):
        reason = _refusal(_submit(alice, condor_pool, HELD + late + "\nqueue 10\n"))
        assert "late materialization (max_materialize, max_idle) is not open to pool users" in reason, (late, reason)
    assert len(htcondor2.Schedd().query('Owner == "alice"', projection=["ClusterId"])) == before


@pytest.fixture
def dave_unknown_to_the_pool(condor_pool):
    """The user map is the session pool's, and other modules' hubs saw dave log in: the map as a pool's whose hub
    never saw him, and back afterwards."""
    path = condor_pool.user_map_path
    saved = path.read_text()
    users = {name: _limits_from(entry) for name, entry in parse(saved).items() if name != "dave"}
    _replace_map(condor_pool, render(users))
    yield
    _replace_map(condor_pool, saved)


def _replace_map(pool, text: str) -> None:
    path = pool.user_map_path
    st = path.stat()
    path.write_text(text)
    stamp = max(int(time.time()), int(st.st_mtime) + 1)  # the schedd re-reads a map whose mtime changed
    os.utime(path, (stamp, stamp))
    UserMapWriter(path, pool.user_map_reconfig_command).reconfig()


def test_a_user_who_never_logged_in_is_refused_saying_so(condor_pool, user_condor_client, dave_unknown_to_the_pool):
    dave = user_condor_client("dave")  # a valid token, but the hub never saw dave log in
    reason = _refusal(_submit(dave, condor_pool, HELD))
    assert "dave has not logged in to the hub yet" in reason and "log in to the hub once" in reason, reason
    assert htcondor2.Schedd().query('Owner == "dave"', projection=["ClusterId"]) == []


def test_a_role_without_batch_profiles_may_not_run_jobs(condor_pool, user_condor_client, restore_map):
    restore_map.append("carol")
    user_map_writer(condor_pool).update("carol", demo_limits(["guest"]))
    reason = _refusal(_submit(user_condor_client("carol"), condor_pool, HELD))
    assert "guests may not run HTCondor jobs" in reason, reason


# ------------------------------------------------------------------------------ a user's token, against others


def test_alices_token_cannot_remove_hold_or_edit_bobs_job(condor_pool, user_condor_client, clusters):
    alice, bob = user_condor_client("alice"), user_condor_client("bob")
    job = _cluster(_submit(bob, condor_pool, "executable = /bin/sleep\narguments = 600\nhold = true\n"))
    clusters.append(job)
    release = bob.run_in_root(condor_pool, f"condor_release {job}")  # bob acts on his own job: it works
    assert release.returncode == 0, release.stderr
    for cmd in (f"condor_rm {job}", f"condor_hold {job}", f"condor_qedit {job} CondorhubAttack 1"):
        # The schedd lets alice act on her own jobs only: bob's is not found for her, or refused.
        proc = alice.run_in_root(condor_pool, cmd)
        assert not re.search(r"marked for removal|held|Set attribute", proc.stdout), f"alice could {cmd}: {proc.stdout}"
        ad = _ad(job, "Owner", "JobStatus", "CondorhubAttack")
        assert ad["Owner"] == "bob" and ad["JobStatus"] in (1, 2) and "CondorhubAttack" not in ad, (cmd, ad)
    # the control: the same command from bob works (it is who sends it that differs)
    assert bob.run_in_root(condor_pool, f"condor_hold {job}").returncode == 0
    assert _ad(job, "JobStatus")["JobStatus"] == 5
    # alice sees the queue (READ), hers and others'
    assert alice.run_in_root(condor_pool, "condor_q -allusers -totals").returncode == 0


def test_alices_token_cannot_advertise_a_startd(condor_pool, user_condor_client):
    """A fake GPU node would draw other users' jobs (and their files). alice's token does not carry the right; and a
    token that did (minted by the key's holder by mistake) still meets the collector's ALLOW list."""
    collector_log = condor_pool.log_dir / "CollectorLog"
    ad = ('MyType = "Machine"\nName = "slot1@fake-gpu-node"\nMachine = "fake-gpu-node"\n'
          f'MyAddress = "<127.0.0.1:{condor_pool.port}>"\nTotalSlotGPUs = 8\nGPUs = 8\n')
    for authz, refusal in (
        (SUBMITTER_AUTHZ, r"limited authorization which did not include this command \(0 UPDATE_STARTD_AD\)"),
        ((*SUBMITTER_AUTHZ, "ADVERTISE_STARTD"),
         r"PERMISSION DENIED to alice@condorhub\.test .*\(UPDATE_STARTD_AD\), access level ADVERTISE_STARTD"),
    ):
        alice = user_condor_client("alice", token=mint_user_token(condor_pool, "alice", 600, authz=authz))
        (alice.directory / "fake.ad").write_text(ad)
        offset = collector_log.stat().st_size
        proc = alice.run_in_root(condor_pool, "condor_advertise -tcp UPDATE_STARTD_AD fake.ad")
        assert proc.returncode != 0, proc.stdout
        names = condor_pool.run_in_root(["condor_status", "-af", "Name"]).stdout
        assert "fake-gpu-node" not in names, names
        deadline = time.monotonic() + 10
        while not re.search(refusal, collector_log.read_text(errors="replace")[offset:]):
            assert time.monotonic() < deadline, f"the collector did not log {refusal!r}"
            time.sleep(0.3)


# ------------------------------------------------------------------------------ the map, and the hub keeping it


def test_the_map_is_roots_and_only_condor_reads_it(condor_pool):
    st = condor_pool.user_map_path.stat()
    condor_gid = int(condor_pool.run_in_root(["id", "-g", "condor"]).stdout)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, condor_gid, 0o640)
    assert "roles alice student" in condor_pool.user_map_path.read_text()
    proc = condor_pool.run_in_root(["cat", "/etc/condorhub/pool-users.map"], user="alice", check=False)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr


def test_the_role_renders_users_write_to_the_schedd_only(condor_pool):
    """Users may write to the schedd; the collector, negotiator and startd still admit only the hub and condor."""
    def value(subsystem: str, name: str) -> str:
        return condor_pool.run_in_root(["condor_config_val", "-subsystem", subsystem, name]).stdout.strip()

    assert value("schedd", "ALLOW_WRITE").endswith(f"*@{condor_pool.uid_domain}")
    for daemon in ("collector", "negotiator", "startd"):
        assert f"*@{condor_pool.uid_domain}" not in value(daemon, "ALLOW_WRITE"), daemon
    names = value("schedd", "SUBMIT_REQUIREMENT_NAMES").split()
    assert names[0] == "CondorhubRealUsersOnly" and names[1:] == [
        "CondorhubKnownUser", "CondorhubMayRunJobs", "CondorhubOwnGroup", "CondorhubGpus", "CondorhubRuntime",
        "CondorhubJobsPerSubmission"], names
    assert value("schedd", "CLASSAD_USER_MAPFILE_Condorhub") == "/etc/condorhub/pool-users.map"


def _membership(slapd, user: str, group: str, op: str) -> None:
    """Add ``user`` to or delete them from ``group`` in the directory (the memberof overlay updates memberOf)."""
    ldif = (f"dn: cn={group},ou=groups,{slapd.suffix}\nchangetype: modify\n{op}: member\n"
            f"member: uid={user},ou=people,{slapd.suffix}\n")
    subprocess.run(["ldapmodify", "-Q", "-Y", "EXTERNAL", "-H", slapd.ldapi_uri], input=ldif, text=True,
                   capture_output=True, check=True, env={**os.environ, "LDAPNOINIT": "1"})


def test_a_user_moved_to_researchers_gets_their_limits_at_the_next_hub_login(slapd, condor_pool, user_condor_client,
                                                                             clusters, restore_map):
    """The real path: LDAP group → the hub's login → the map → the schedd. carol (instructor, 1 GPU) joins the
    researchers in the directory (she stays the instructors' only member) and logs in to a hub; her next submit may
    ask for 2 GPUs, charged to the researchers. A login that changes nothing leaves the map (and the schedd) alone."""
    work = scratch_dir("condorhub-policy-hub-")
    site = demo_site(slapd.uri, slapd.suffix, work / "state")
    site["htcondor"] = {"condor_config": str(condor_pool.condor_config_path),
                        "accounting_groups": dict(POLICY_GROUPS), "user_map": condor_pool.hub_user_map_settings}
    site["profiles"] += [{"slug": "gpu-1", "kind": "condor", "display_name": "1 GPU",
                          "roles": ["student", "researcher", "instructor"], "runtime": "8h", "gpus": 1},
                         {"slug": "gpu-2", "kind": "condor", "display_name": "2 GPUs", "roles": ["researcher"],
                          "runtime": "8h", "gpus": 2}]
    carol_pw = next(u.password for u in DEMO_USERS if u.uid == "carol")
    carol = user_condor_client("carol")
    assert "instructors may request at most 1 GPU" in _refusal(_submit(carol, condor_pool, HELD + "request_gpus = 2\n"))
    restore_map.append("carol")
    hub = Hub(work, site).start()
    moved = False
    try:
        _membership(slapd, "carol", "researchers", "add")
        moved = True
        client = hub.client()
        client.login("carol", carol_pw)
        assert client.logged_in_as() == "carol"
        text = condor_pool.user_map_path.read_text()
        assert "roles carol instructor,researcher\n" in text, text
        groups = parse(text)["carol"]["*"].split(",")
        assert sorted(groups) == ["group_instructors", "group_researchers"] and "gpus carol 2\n" in text, text
        cluster = _cluster(_submit(carol, condor_pool, HELD + "request_gpus = 2\naccounting_group = group_researchers\n"))
        clusters.append(cluster)
        assert _ad(cluster, "AcctGroup")["AcctGroup"] == "group_researchers"

        # Logging in again with the same roles: the file is not rewritten, the schedd not reconfigured.
        before = condor_pool.user_map_path.stat().st_mtime_ns
        reloads = (condor_pool.log_dir / "SchedLog").read_text(errors="replace").count("Loading classad userMap")
        second = hub.client()
        second.login("carol", carol_pw)
        assert second.logged_in_as() == "carol"
        assert condor_pool.user_map_path.stat().st_mtime_ns == before
        assert (condor_pool.log_dir / "SchedLog").read_text(errors="replace").count("Loading classad userMap") \
            == reloads
    finally:
        if moved:
            _membership(slapd, "carol", "researchers", "delete")
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_the_user_token_helper_gives_a_private_client(condor_pool, user_condor_client):
    """tests/support/user_tokens.py, which other tests build on: folder and files the user's alone, IDTOKENS only,
    the token's identity the user's."""
    alice = user_condor_client("alice", lifetime=600)
    for path in (alice.directory, alice.token_dir):
        st = path.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (10001, 0o700), path
    for path in (alice.config, alice.token_file):
        st = path.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (10001, 0o600), path
    assert "SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS" in alice.config.read_text()
    who = alice.python("import htcondor2 as h; s = h.Schedd(); print(s.query(projection=['ClusterId']) is not None)")
    assert who.returncode == 0 and who.stdout.strip() == "True", who.stderr[-1500:]
    ping = alice.run_in_root(condor_pool, "condor_ping -type schedd -verbose WRITE")
    assert "Remote Mapping:              alice@condorhub.test" in ping.stdout and "Authorized:                  TRUE" in ping.stdout, ping.stdout + ping.stderr
    assert list((alice.directory / "passwords.d").iterdir()) == []  # no signing key to mint another token
