"""The Ansible roles applied for real: ``ansible-playbook site.yml`` with the all-in-one inventory into a
fresh Debian 13 root (debootstrap, see tests/support/ansible.py), through the ``community.general.chroot``
connection. Nothing is mocked: apt installs slapd, nslcd, HTCondor and Debian's configurable-http-proxy,
pip builds the hub's and the worker's environments from a wheel of this checkout.

The root has no systemd, so the inventory's settings are applied with ``condorhub_service_manager: none``;
the test then starts the daemons from the start scripts the roles rendered (/etc/condorhub/services.d), in
their order, and checks what an operator would: alice (from the OpenLDAP the playbook set up) logs in
over HTTPS and gets a JupyterLab running as an HTCondor job on the pool the playbook configured, as her
own uid; a second run changes nothing; a bad setting stops the run before any task changed anything.

Ports: everything on free loopback ports, HTCondor's shared port included (the condor tests' pool uses
9618), so this test runs beside the others.
"""

from __future__ import annotations

import json
import re
import secrets
import stat
import time
from pathlib import Path

import pytest

from devstack import node_root as nr
from devstack import playbook
from devstack.directory import DEMO_GID_NUMBER, DEMO_POSIX_GROUP, DEMO_USERS, GROUP_ROLES
from devstack.playbook import PlaybookRun
from devstack.services import start_services
from tests.support.ansible import (ANSIBLE_DIR, CACHE_DIR, REPO, TEST_PROFILES, alice_starts_a_gpu_server, cmdline, in_root,
                                   keep_logs, process_uid, target_root, wait_for_pool, wait_for_user)
from tests.support.ports import free_port

pytestmark = [pytest.mark.ansible]


def run_playbook(workdir: Path, vars_file: Path, *extra: str, timeout: float = 2400) -> PlaybookRun:
    """ansible-playbook site.yml with the all-in-one inventory and the test's extra vars."""
    log = workdir / f"ansible-{time.strftime('%H%M%S')}-{secrets.token_hex(2)}.log"
    return playbook.run_playbook(ANSIBLE_DIR, ANSIBLE_DIR / "inventories/all-in-one", log, "-e", f"@{vars_file}",
                                 *extra, timeout=timeout, nice=True)


def deployment_vars(root: Path, wheel: Path, ports: dict[str, int]) -> dict:
    """What the test sets on top of the all-in-one inventory: the chroot connection, no init system,
    loopback ports of its own, the demo users in the directory, simulated GPUs, no TensorFlow."""
    base = "dc=condorhub,dc=local"
    groups: dict[str, list[str]] = {}
    for user in DEMO_USERS:
        groups.setdefault(user.group, []).append(user.uid)
    return {
        "ansible_connection": "community.general.chroot",
        "ansible_host": str(root),
        # The chroot connection is root already; the root has no sudo.
        "ansible_become": False,
        "ansible_python_interpreter": "/usr/bin/python3",
        "condorhub_service_manager": "none",
        "condorhub_wheel": str(wheel),
        "condorhub_pip_environment": nr.pip_environment(CACHE_DIR),
        "condorhub_ldap_base": base,
        "condorhub_ldap_uri": f"ldap://localhost:{ports['ldap']}",
        "condorhub_ldap_admin_password": secrets.token_urlsafe(16),
        "condorhub_ldap_readonly_password": secrets.token_urlsafe(16),
        "openldap_server_port": ports["ldap"],
        "openldap_server_users": [
            {"uid": u.uid, "uid_number": u.uid_number, "gid_number": u.gid_number, "name": u.display_name,
             "home": f"/home/{u.uid}", "password": u.password} for u in DEMO_USERS],
        "openldap_server_groups": [{"name": DEMO_POSIX_GROUP, "gid_number": DEMO_GID_NUMBER, "members": []}]
        + [{"name": name, "gid_number": 10100 + i, "members": members}
           for i, (name, members) in enumerate(sorted(groups.items()))],
        "condorhub_role_groups": dict(GROUP_ROLES),
        "condorhub_condor_signing_key": secrets.token_urlsafe(32),
        "htcondor_port": ports["condor"],
        # No GPUs here: condor_gpu_discovery simulates two (what the condor tests' pool does too).
        "htcondor_gpu_discovery_extra": "-simulate:0,2",
        "htcondor_num_cpus": 4,
        # a chroot on a shared machine, quick turnaround: what the condor tests' pool sets too
        "htcondor_extra_config": dict(nr.CHROOT_CONDOR_SETTINGS),
        # The course stack (TensorFlow: ~600 MB) is the inventory's business; the test needs condorhub only.
        "worker_env_condorhub_extras": [],
        "jupyterhub_public_url": f"https://127.0.0.1:{ports['public']}",
        "jupyterhub_hub_bind_url": f"http://127.0.0.1:{ports['hub']}",
        "jupyterhub_proxy_api_url": f"http://127.0.0.1:{ports['proxy_api']}",
        "jupyterhub_profiles": TEST_PROFILES,
        "jupyterhub_site_extra": {
            "hub": {"server_start_timeout": "3m"},
            "htcondor": {"poll_interval": 1, "queue_timeout": "5m", "server_start_timeout": "3m"},
        },
    }


# ------------------------------------------------------------------------------------- services


# ------------------------------------------------------------------------------------- fixture


@pytest.fixture(scope="module")
def deployment(ansible_base_root):
    """The all-in-one deployment in a fresh root: bad-setting check, first apply, daemons started."""
    ports = {name: free_port() for name in ("ldap", "condor", "public", "hub", "proxy_api")}
    with target_root() as target:
        root, workdir = target.path, target.workdir
        wheel = nr.build_wheel(workdir / "dist", REPO, CACHE_DIR)
        vars_file = workdir / "test-vars.json"
        vars_file.write_text(json.dumps(deployment_vars(root, wheel, ports), indent=2))
        info = {"root": root, "workdir": workdir, "vars_file": vars_file, "ports": ports, "target": target}
        try:
            yield from _deploy(info)
        finally:
            keep_logs(workdir, "ansible")


def _deploy(info: dict):
    """Bad-setting run, first apply (no homes yet: the hub makes them), daemons started from the rendered scripts."""
    root, workdir, vars_file = info["root"], info["workdir"], info["vars_file"]
    # A typo in a choice must stop everything before the first change (argument_specs, first play).
    info["bad"] = run_playbook(workdir, vars_file, "-e", "htcondor_security=kerberos", timeout=300)
    info["bad_left_condor"] = (root / "etc/condor").exists()

    first = run_playbook(workdir, vars_file)
    info["first"] = first
    print(f"\nansible: first apply {first.seconds:.0f}s, recap {first.recap} (log {first.log})")
    assert first.rc == 0 and first.recap["failed"] == 0, (
        f"the first ansible-playbook run failed (rc {first.rc}):\n{first.output[-6000:]}")
    # No homes yet: the hub creates a user's (0700) at the first server start, as on a fresh site.
    assert not any((root / "home").iterdir()), list((root / "home").iterdir())
    info["services"] = start_services(root, workdir, timeout=90)
    wait_for_user(root, "alice", workdir)
    info["slots"] = wait_for_pool(root)
    yield info


# ------------------------------------------------------------------------------------- tests


def test_bad_setting_stops_the_run_before_any_change(deployment):
    bad: PlaybookRun = deployment["bad"]
    assert bad.rc != 0, "ansible-playbook accepted htcondor_security=kerberos"
    assert "htcondor_security" in bad.output and "kerberos" in bad.output, bad.output[-3000:]
    assert bad.recap["changed"] == 0, f"tasks changed something before the check failed: {bad.changed_tasks()}"
    assert not deployment["bad_left_condor"], "HTCondor was installed although the settings were refused"


def test_first_apply_renders_every_service(deployment):
    root = deployment["root"]
    names = [svc.script.name for svc in deployment["services"]]
    assert names == ["10-slapd", "20-nslcd", "30-condor", "40-condorhub-hub"]
    # The hub's start script runs exactly what the systemd unit would (one source for both).
    unit = (root / "etc/systemd/system/condorhub-hub.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)
    script = (root / "etc/condorhub/services.d/40-condorhub-hub").read_text()
    assert f"exec {exec_start}" in script
    # Before the hub starts, its HTCondor identity gets its queue user record (see the script's comment).
    assert "ExecStartPre=/usr/local/sbin/condorhub-register-hub-identity" in unit
    assert "\n/usr/local/sbin/condorhub-register-hub-identity\n" in script
    # The site file the hub runs with passed condorhub's own check, and names what the inventory said.
    check = in_root(root, "/opt/condorhub/venv/bin/condorhub", "config", "check", "--site", "/etc/condorhub/site.yaml")
    assert "site file is valid" in check.stdout
    site = (root / "etc/condorhub/site.yaml").read_text()
    assert f"https://127.0.0.1:{deployment['ports']['public']}" in site
    assert "token_file: /etc/condorhub/hub.token" in site
    # Secrets: the hub's token is root's alone, the LDAP bind password readable by nslcd only.
    assert oct((root / "etc/condorhub/hub.token").stat().st_mode & 0o777) == "0o600"
    assert oct((root / "etc/nslcd.conf").stat().st_mode & 0o777) == "0o640"


def test_the_hubs_log_is_not_readable_by_other_users(deployment):
    import grp
    import subprocess

    root = deployment["root"]
    # With systemd the hub's output goes to the journal (root, adm, systemd-journal), never to a file.
    unit = (root / "etc/systemd/system/condorhub-hub.service").read_text()
    assert re.search(r"^StandardOutput=journal$", unit, re.M) and re.search(r"^StandardError=journal$", unit, re.M)
    # Without one, the output of the hub's start script is its log: 0640 root:adm, while the hub runs.
    log = next(svc.log for svc in deployment["services"] if svc.script.name == "40-condorhub-hub")
    assert "JupyterHub" in log.read_text(errors="replace"), "not the hub's log"
    info = log.stat()
    assert (oct(info.st_mode & 0o777), info.st_uid, info.st_gid) == ("0o640", 0, grp.getgrnam("adm").gr_gid)
    # Another user gets nothing from it (its folder is open to all: only the file's mode stops them).
    assert subprocess.run(["runuser", "-u", "nobody", "--", "ls", str(log.parent)], capture_output=True).returncode == 0
    read = subprocess.run(["runuser", "-u", "nobody", "--", "cat", str(log)], capture_output=True, text=True)
    assert read.returncode != 0 and "Permission denied" in read.stderr, read.stdout[:200]


def test_ldap_users_are_unix_users(deployment):
    root = deployment["root"]
    alice = next(u for u in DEMO_USERS if u.uid == "alice")
    entry = in_root(root, "getent", "passwd", "alice").stdout.strip()
    assert entry.split(":")[2] == str(alice.uid_number), entry
    groups = in_root(root, "id", "-Gn", "alice").stdout.split()
    assert "students" in groups


def test_impersonation_reaches_real_users_only(deployment):
    root = deployment["root"]
    regex = in_root(root, "condor_config_val", "QUEUE_SUPER_USER_MAY_IMPERSONATE").stdout.strip()
    pattern = re.compile(regex)
    assert pattern.match("alice")
    for local in ("root", "condor", "condorhub", "nslcd", "openldap", "daemon", "nobody"):
        assert not pattern.match(local), f"the hub may impersonate {local}: {regex}"
    assert "condorhub@condorhub.local" in in_root(root, "condor_config_val", "QUEUE_SUPER_USERS").stdout
    groups = in_root(root, "condor_config_val", "GROUP_NAMES").stdout
    assert "group_students" in groups


def test_alice_logs_in_over_https_and_gets_a_gpu_server_on_the_pool(deployment):
    root = deployment["root"]
    url = f"https://127.0.0.1:{deployment['ports']['public']}"
    # The self-signed certificate the playbook made is what the client trusts, nothing else.
    client = alice_starts_a_gpu_server(url, root / "etc/condorhub/tls/condorhub.crt")
    alice = next(u for u in DEMO_USERS if u.uid == "alice")
    # The server is an HTCondor job of alice's on the pool the playbook configured, with one GPU.
    jobs = in_root(root, "condor_q", "-allusers", "-af", "Owner", "JobStatus", "RequestGpus", "AssignedGPUs").stdout
    assert re.search(r"^alice 2 1 \S+", jobs, re.M), f"no running 1-GPU job of alice's:\n{jobs}"
    # Her login put her role's lines into the pool's user map (the deployed hub, condor_reconfig as local root),
    # and her server's job went through the schedd's rules: charged to her role's group.
    user_map = root / "etc/condorhub/pool-users.map"
    assert "roles alice student\n" in user_map.read_text() and "* alice group_students\n" in user_map.read_text()
    assert stat.S_IMODE(user_map.stat().st_mode) == 0o640 and user_map.stat().st_uid == 0
    assert "alice group_students" in in_root(root, "condor_q", "-allusers", "-af", "Owner", "AcctGroup").stdout
    # ... and runs as her uid, on the execute node (inside the root the playbook deployed).
    procs = {pid: cmdline(pid) for pid in deployment["target"].processes() if process_uid(pid) == alice.uid_number}
    assert any("jupyter" in cmd for cmd in procs.values()), f"no Jupyter server running as alice: {procs}"
    # Her home, created by the hub at this first start, is hers alone; her server writes with umask 077.
    home = (root / "home/alice").stat()
    assert (home.st_uid, home.st_gid, oct(home.st_mode & 0o777)) == (alice.uid_number, alice.gid_number, "0o700")
    server = next(pid for pid, cmd in procs.items() if "jupyter" in cmd)
    umask = re.search(r"^Umask:\s*(\d+)", Path(f"/proc/{server}/status").read_text(), re.M).group(1)
    assert umask == "0077", f"alice's server runs with umask {umask}"
    stop = client.api("DELETE", "/users/alice/server")
    assert stop.status_code in (202, 204), stop.text


def test_second_run_changes_nothing(deployment):
    """Idempotence on the running system: the second apply reports changed=0."""
    second = run_playbook(deployment["workdir"], deployment["vars_file"])
    print(f"\nansible: second apply {second.seconds:.0f}s, recap {second.recap}")
    assert second.rc == 0, second.output[-4000:]
    assert second.recap["changed"] == 0, f"changed on the second run: {second.changed_tasks()}"
