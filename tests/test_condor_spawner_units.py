"""The pieces of the HTCondor spawner that need no pool: the submit description (no secrets in it),
the secrets file (written as the user, 0600, never overwritten, never through a link), the port report
(only port and host), the launcher's reading of the file, and profile → spawner traits."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tornado import web

from condorhub.spawner.condor import launcher
from condorhub.spawner.condor.api import parse_port_report
from condorhub.spawner.condor.secretfile import (
    Account,
    SecretFileError,
    read_own_file_tail,
    remove_secret_file,
    write_secret_file,
)
from condorhub.schema import CondorProfile
from condorhub.spawner.condor.jobs import Request
from condorhub.spawner.condor.spawner import HTCondorSpawner
from condorhub.spawner.condor.submit import (
    JobSpec,
    SubmitError,
    condor_arguments,
    parse_extra,
    resource_commands,
    submit_description,
)
from condorhub.spawner.profiles import as_profile, child_traits
from tests.support.scratch import scratch_dir

USER_UID, USER_GID = 10001, 10000  # alice in the demo directory (need not exist in this machine's passwd)


def spec(**kw) -> JobSpec:
    values = dict(
        user="alice",
        server_name="",
        hub_id="hub:/var/lib/condorhub",
        home="/home/alice",
        python="/opt/condorhub/worker-venv/bin/python",
        secret_file="/home/alice/.condorhub/jupyter-ab.env",
        log_stem="/home/alice/.condorhub/jupyter-ab",
        request=Request(
            cpus=2, memory_mb=4096, gpus=1, gpu_min_capability=7.0, gpu_min_memory_mb=16384, runtime_seconds=28800
        ),
        accounting_group="group_students",
    )
    values.update(kw)
    return JobSpec(**values)


def test_submit_description_requests_the_profile_and_runs_as_the_user():
    desc = submit_description(spec())
    assert desc["+Owner"] == '"alice"'
    assert (desc["request_cpus"], desc["request_memory"], desc["request_gpus"]) == ("2", "4096MB", "1")
    assert (desc["gpus_minimum_capability"], desc["gpus_minimum_memory"]) == ("7", "16384")
    assert desc["allowed_job_duration"] == "28800"
    assert (desc["accounting_group"], desc["accounting_group_user"]) == ("group_students", "alice")
    assert desc["+CondorhubHub"] == '"hub:/var/lib/condorhub"'
    assert desc["initialdir"] == "/home/alice" and desc["should_transfer_files"] == "NO"


def test_submit_description_carries_no_environment_and_no_secret():
    desc = submit_description(spec())
    assert desc["getenv"] == "false"
    assert "environment" not in desc and "env" not in desc
    # The only argument is where the secrets are, not what they are.
    assert desc["arguments"] == "\"'-m' 'condorhub.spawner.condor.launcher' '/home/alice/.condorhub/jupyter-ab.env'\""
    assert "TOKEN" not in json.dumps(desc).upper()


def test_cpu_profile_requests_no_gpu():
    desc = submit_description(spec(request=Request(cpus=2, memory_mb=4096), accounting_group=""))
    assert "request_gpus" not in desc and "gpus_minimum_capability" not in desc
    assert "accounting_group" not in desc


@pytest.mark.parametrize(
    "text, problem",
    [
        ("environment = JUPYTERHUB_API_TOKEN=x", "sets 'environment'"),
        ("getenv = true", "sets 'getenv'"),
        ("+Owner = \"root\"", "sets '+Owner'"),
        ("executable = /bin/sh", "sets 'executable'"),
        ("+CondorhubUser = \"bob\"", "sets '+CondorhubUser'"),
        ("requirements", "is not `command = value`"),
    ],
)
def test_site_extra_submit_commands_cannot_touch_identity_command_or_environment(text, problem):
    with pytest.raises(SubmitError, match=problem.replace("+", r"\+").replace("(", r"\(")):
        parse_extra(text)


def test_site_extra_submit_commands_pass_through():
    assert parse_extra("# comment\nrequirements = (OpSysMajorVer >= 12)\n+ProjectName = \"physics\"\n") == {
        "requirements": "(OpSysMajorVer >= 12)",
        "+ProjectName": '"physics"',
    }


def test_arguments_are_quoted_for_htcondor():
    assert condor_arguments(["a b", "it's", 'say "hi"']) == "\"'a b' 'it''s' 'say \"\"hi\"\"'\""
    with pytest.raises(SubmitError):
        condor_arguments(["two\nlines"])


# -- the secrets file ---------------------------------------------------------------------------------


@pytest.fixture
def home():
    """A home owned by a non-root uid, like an LDAP user's (needs root to chown, as the hub runs), in a
    folder the user can traverse (pytest's tmp_path is 0700 root)."""
    if os.geteuid() != 0:
        pytest.fail("these tests run as root, as the hub does (it writes the file as the user)")
    base = scratch_dir("condorhub-secret-")
    home = base / "alice"
    home.mkdir(mode=0o755)
    os.chown(home, USER_UID, USER_GID)
    yield home
    shutil.rmtree(base, ignore_errors=True)


def test_secret_file_is_written_as_the_user_mode_0600_in_a_0700_folder(home):
    account = Account(USER_UID, USER_GID, str(home))
    path = Path(write_secret_file(account, "jupyter-1.env", {"env": {"JUPYTERHUB_API_TOKEN": "s3cret"}}))
    st, folder = path.stat(), path.parent.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (USER_UID, USER_GID, 0o600)
    assert (folder.st_uid, stat.S_IMODE(folder.st_mode)) == (USER_UID, 0o700)
    assert json.loads(path.read_text())["env"]["JUPYTERHUB_API_TOKEN"] == "s3cret"
    # Never overwritten: a second write with the same name fails.
    with pytest.raises(SecretFileError, match="exists already"):
        write_secret_file(account, "jupyter-1.env", {"env": {}})
    remove_secret_file(account, "jupyter-1.env")
    assert not path.exists()
    remove_secret_file(account, "jupyter-1.env")  # gone already: fine


def test_a_planted_symlink_is_not_followed(home, tmp_path):
    account = Account(USER_UID, USER_GID, str(home))
    (home / ".condorhub").mkdir(mode=0o700)
    os.chown(home / ".condorhub", USER_UID, USER_GID)
    target = tmp_path / "elsewhere"
    os.symlink(target, home / ".condorhub" / "jupyter-2.env")
    with pytest.raises(SecretFileError, match="exists already"):
        write_secret_file(account, "jupyter-2.env", {"env": {"JUPYTERHUB_API_TOKEN": "s3cret"}})
    assert not target.exists()


def test_a_folder_of_someone_else_is_refused(home):
    (home / ".condorhub").mkdir(mode=0o777)  # root's, not the user's
    with pytest.raises(SecretFileError, match="not a folder owned by you"):
        write_secret_file(Account(USER_UID, USER_GID, str(home)), "jupyter-3.env", {"env": {}})


def test_the_hub_reads_only_the_users_own_files(home, tmp_path):
    own = home / "job.err"
    own.write_text("Traceback: boom\n")
    os.chown(own, USER_UID, USER_GID)
    assert read_own_file_tail(str(own), USER_UID) == "Traceback: boom\n"
    secret = tmp_path / "root-only"
    secret.write_text("root's secret")
    os.symlink(secret, home / "link.err")
    assert read_own_file_tail(str(home / "link.err"), USER_UID) == ""
    assert read_own_file_tail(str(secret), USER_UID) == ""  # not the user's


# -- the launcher -------------------------------------------------------------------------------------


def run_launcher_read(path: Path, uid: int, gid: int) -> subprocess.CompletedProcess:
    code = "import json,sys; from condorhub.spawner.condor.launcher import read_secrets; print(json.dumps(read_secrets(sys.argv[1])))"
    return subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, user=uid, group=gid, extra_groups=[], cwd="/"
    )


def test_launcher_reads_and_deletes_the_file(home):
    account = Account(USER_UID, USER_GID, str(home))
    path = Path(write_secret_file(account, "jupyter-4.env", {"env": {"A": "1"}, "argv": ["jupyterhub-singleuser"]}))
    proc = run_launcher_read(path, USER_UID, USER_GID)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["env"] == {"A": "1"}
    assert not path.exists()
    again = run_launcher_read(path, USER_UID, USER_GID)
    assert again.returncode == launcher.EXIT_BAD_SECRETS
    assert "started twice" in again.stderr


def test_launcher_refuses_a_file_others_can_read(home):
    account = Account(USER_UID, USER_GID, str(home))
    path = Path(write_secret_file(account, "jupyter-5.env", {"env": {}, "argv": ["x"]}))
    path.chmod(0o644)
    proc = run_launcher_read(path, USER_UID, USER_GID)
    assert proc.returncode == launcher.EXIT_BAD_SECRETS
    assert "not a private file of yours" in proc.stderr


def test_launcher_puts_the_port_into_the_service_url():
    assert launcher.with_port("http://0.0.0.0:0/user/alice/", "0.0.0.0", 41234) == "http://0.0.0.0:41234/user/alice/"


# -- the port report ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"not json", "must be JSON"),
        (b"[8888]", "JSON object"),
        (b'{"port": 8888, "cmd": ["sh"]}', "Unsupported field(s) 'cmd'"),
        (b'{"port": 8888, "ip": "10.0.0.1"}', "Unsupported field(s) 'ip'"),
        (b'{"port": "8888"}', "`port` must be a number"),
        (b'{"port": true}', "`port` must be a number"),
        (b'{"port": 22}', "`port` must be a number from 1024 to 65535"),
        (b'{"port": 70000}', "from 1024 to 65535"),
        (b'{"port": 8888, "host": "a b"}', "`host` must be a host name"),
        (b'{"port": 8888, "host": "evil.org/x"}', "`host` must be a host name"),
    ],
)
def test_port_reports_accept_only_a_port_and_a_host(body, problem):
    with pytest.raises(web.HTTPError) as err:
        parse_port_report(body)
    assert err.value.status_code == 400
    assert problem in err.value.log_message


def test_a_good_port_report():
    assert parse_port_report(b'{"port": 41234, "host": "gpu07.example.org"}') == (41234, "gpu07.example.org")
    assert parse_port_report(b'{"port": 41234}') == (41234, None)


# -- profile → spawner traits -------------------------------------------------------------------------


GPU_PROFILE = {
    "kind": "condor",
    "slug": "gpu-1",
    "display_name": "1 GPU",
    "roles": ["student", "researcher"],
    "cpus": 2,
    "memory": "16G",
    "runtime": "8h",
    "gpus": 1,
    "gpus_minimum_capability": 7.0,
    "gpus_minimum_memory": "16G",
}


def test_a_condor_profile_reaches_the_submit_description_typed_and_parsed_once():
    """site file → schema object (units normalised) → the child spawner's `profile` → one Request → commands."""
    profile = as_profile(GPU_PROFILE)
    assert isinstance(profile, CondorProfile)
    assert (profile.memory, profile.runtime, profile.gpus_minimum_memory) == (16 * 1024**3, 28800.0, 16 * 1024**3)
    traits = child_traits(profile)
    assert traits["profile"] is profile  # the same object, not a copy in another vocabulary
    spawner = HTCondorSpawner(**traits)
    request = spawner._request()
    assert request == Request(
        cpus=2, memory_mb=16384, gpus=1, gpu_min_capability=7.0, gpu_min_memory_mb=16384, runtime_seconds=28800
    )
    assert resource_commands(request) == {
        "request_cpus": "2",
        "request_memory": "16384MB",
        "request_gpus": "1",
        "gpus_minimum_capability": "7",
        "gpus_minimum_memory": "16384",
        "allowed_job_duration": "28800",
    }


def test_the_profile_decides_over_batchspawner_request_traits():
    spawner = HTCondorSpawner(profile=as_profile(GPU_PROFILE), req_ngpus="4", req_memory="1G")
    assert (spawner._request().gpus, spawner._request().memory_mb) == (1, 16384)


def test_batchspawner_request_traits_work_without_a_profile():
    """A site that uses HTCondorSpawner directly sets batchspawner's documented string traits."""
    spawner = HTCondorSpawner(req_nprocs="4", req_memory="4G", req_ngpus="2", req_runtime="08:00:00")
    assert spawner._request() == Request(cpus=4, memory_mb=4096, gpus=2, runtime_seconds=28800)
    assert resource_commands(spawner._request())["allowed_job_duration"] == "28800"


def test_a_bad_batchspawner_request_trait_is_named_on_the_spawn_page():
    spawner = HTCondorSpawner(req_runtime="soon")
    with pytest.raises(web.HTTPError, match="'soon' is not a duration"):
        spawner._request()


# -- the hub's HTCondor client configuration ----------------------------------------------------------


def test_a_token_file_is_copied_into_a_private_token_directory(tmp_path):
    """htcondor.token_file: HTCondor reads tokens from a directory, so the hub keeps a private copy.
    Run in a child process: the bindings' configuration is process-wide."""
    token = tmp_path / "hub.token"
    token.write_text("eyJ.fake.token\n")
    config = tmp_path / "condor_config"
    config.write_text("COLLECTOR_HOST = cm.example.org:9618\n")
    private = tmp_path / "private"
    code = (
        "import os, json, htcondor2\n"
        "from condorhub.spawner.condor.client import configure_htcondor\n"
        f"configure_htcondor({str(config)!r}, None, {str(token)!r}, {str(private)!r})\n"
        "print(json.dumps({'dir': htcondor2.param['SEC_TOKEN_DIRECTORY'], 'methods': htcondor2.param['SEC_CLIENT_AUTHENTICATION_METHODS'],"
        " 'collector': htcondor2.param['COLLECTOR_HOST']}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDOR_", "_CONDOR_"))}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen == {"dir": str(private / "tokens.d"), "methods": "IDTOKENS", "collector": "cm.example.org:9618"}
    copy = private / "tokens.d" / "hub.token"
    assert copy.read_text() == "eyJ.fake.token\n"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert stat.S_IMODE((private / "tokens.d").stat().st_mode) == 0o700
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


def test_a_missing_condor_config_is_named_with_the_site_key(tmp_path):
    code = (
        "from condorhub.spawner.condor.client import configure_htcondor, CondorClientError\n"
        "try:\n"
        f"    configure_htcondor({str(tmp_path / 'nope')!r})\n"
        "except CondorClientError as err:\n"
        "    print(err)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert "cannot be read; fix `htcondor.condor_config` in the site file" in proc.stdout, proc.stderr


# -- the port report under load ------------------------------------------------------------------------


class _OneJobQueue:
    """The queue view as the spawner reads it, for one job (pure logic: no pool)."""

    unknown = False
    query_timeout = 0.01
    min_query_interval = 0.0

    def __init__(self, job):
        self._job = job

    def job(self, job_id):
        return self._job

    async def next_refresh(self, timeout):
        return None

    async def last_words(self, job_id):
        return "removed by alice"


class _SpawnerOn(HTCondorSpawner):
    def __init__(self, queue, **kw):
        super().__init__(**kw)
        self._queue_view = queue

    @property
    def queue(self):  # type: ignore[override]
        return self._queue_view


def _running_job():
    from types import SimpleNamespace

    from condorhub.spawner.condor.queue import Phase

    return SimpleNamespace(phase=Phase.running, node="gpu1.example.org", node_address="10.0.0.7")


def test_a_repeated_port_report_is_accepted_and_another_port_refused():
    """The launcher retries a report the hub took but answered after the launcher's timeout (seen at load 20): the
    same port again must not be a 409, which made the launcher exit; a different port still is."""
    import asyncio

    async def scenario():
        spawner = _SpawnerOn(_OneJobQueue(_running_job()))
        spawner.job_id = "42.0"
        spawner._port_future = asyncio.get_running_loop().create_future()
        await spawner.accept_port(8888, None)
        assert spawner._port_future.result() == (8888, "10.0.0.7")
        await spawner.accept_port(8888, None)  # the retry: no error
        with pytest.raises(web.HTTPError) as refused:
            await spawner.accept_port(9999, None)
        assert refused.value.status_code == 409

    asyncio.run(scenario())


def test_a_job_gone_from_the_queue_ends_the_wait_for_the_server_at_once():
    """Before: a job removed while its server was starting kept the user waiting the whole start timeout."""
    import asyncio
    import time

    async def scenario():
        spawner = _SpawnerOn(_OneJobQueue(None))
        spawner.job_id = "42.0"
        spawner.ip, spawner.port, spawner.node = "127.0.0.1", 1, "gpu1"  # nothing listens on port 1
        started = time.monotonic()
        with pytest.raises(Exception, match="left the queue before the server answered: removed by alice"):
            await spawner._wait_listening(time.time() + 60)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 5
