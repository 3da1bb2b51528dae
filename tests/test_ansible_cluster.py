"""The cluster inventory's layout applied for real: a central manager, the hub (submit host) and a GPU worker,
each a fresh Debian 13 root of its own (see tests/support/ansible.py), deployed by one ``ansible-playbook site.yml``
run over the ``community.general.chroot`` connection.

What the all-in-one test cannot show, this one does: the paths of the roles that only run when machines are
apart. The GPU worker gets a token of its own identity, minted on the central manager (``delegate_to``), that
may only advertise the node and read, and never the pool signing key (root on the worker tries to take over the
pool with it, and is refused); the hub's schedd and the worker's startd join the central manager's collector; a job the
hub submits runs on the worker as the user, with the user's home shared between hub and worker. (Its first
run found that a submit host without the signing key cannot check the hub's token: see the htcondor role's
``htcondor_security``.)

The machines are told apart by loopback addresses (central manager 127.0.0.2, hub 127.0.0.3, worker
127.0.0.4, each HTCondor on its own address's port 9618). The site's directory is the session's slapd (the
cluster inventory uses the institute's LDAP: no ldap_server host), plain LDAP on loopback; the users' homes
folder is bind-mounted into hub and worker at the same path, standing in for the NFS server (this machine's
kernel has no NFS file system types, so the nfs_* groups stay empty). The settings are the cluster inventory's
own (ansible/inventories/cluster/group_vars/all.yml) with the overrides in :func:`cluster_vars`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path

import pytest
import yaml

from devstack import node_root as nr
from devstack import playbook
from devstack.accounts import ensure_service_account
from devstack.directory import DEMO_USERS, GROUP_ROLES
from devstack.playbook import PlaybookRun
from devstack.services import start_services
from tests.support.ansible import (ANSIBLE_DIR, CACHE_DIR, REPO, TEST_PROFILES, alice_starts_a_gpu_server, cmdline, in_root,
                                   keep_logs, process_uid, target_root, wait_for_pool, wait_for_user)
from tests.support.ports import free_port

pytestmark = [pytest.mark.ansible]

#: inventory host -> (its loopback address, its inventory groups), as in ansible/inventories/cluster/hosts.yml
HOSTS = {
    "cm": ("127.0.0.2", ["condor_central_manager"]),
    "hub": ("127.0.0.3", ["condorhub_hub", "condor_submit"]),
    "gpu01": ("127.0.0.4", ["condor_execute"]),
}
#: the order the daemons start in: the collector first, then the worker, then the hub (its schedd and JupyterHub)
START_ORDER = ("cm", "gpu01", "hub")


def cluster_vars(roots: dict[str, Path], wheel: Path, slapd, nslcd_dn: str, nslcd_password: str,
                 ports: dict[str, int]) -> dict:
    """The cluster inventory's settings, with what differs here: chroots without an init system, the test
    directory (plain LDAP), loopback addresses, a self-signed certificate, simulated GPUs, no TensorFlow."""
    settings = yaml.safe_load((ANSIBLE_DIR / "inventories/cluster/group_vars/all.yml").read_text())
    hub_ip = HOSTS["hub"][0]
    settings.update({
        "ansible_connection": "community.general.chroot",
        "ansible_become": False,
        "ansible_python_interpreter": "/usr/bin/python3",
        "condorhub_service_manager": "none",
        "condorhub_wheel": str(wheel),
        "condorhub_pip_environment": nr.pip_environment(CACHE_DIR),
        # the institute's directory: the session's slapd (no certificate: no StartTLS, plain LDAP on loopback)
        "condorhub_ldap_uri": slapd.uri,
        "condorhub_ldap_base": slapd.suffix,
        "vault_ldap_readonly_password": nslcd_password,
        "ldap_client_bind_dn": nslcd_dn,
        "ldap_client_starttls": False,
        "jupyterhub_site_extra": {
            "ldap": {"tls": {"strategy": "insecure"}},
            "hub": {"server_start_timeout": "3m"},
            "htcondor": {"poll_interval": 1, "queue_timeout": "5m", "server_start_timeout": "3m"},
        },
        "condorhub_role_groups": dict(GROUP_ROLES),
        "vault_condor_signing_key": secrets.token_urlsafe(32),
        "condorhub_condor_central_manager": HOSTS["cm"][0],
        # HTTPS: a self-signed certificate for the hub's address
        "condorhub_tls_cert": "/etc/condorhub/tls/condorhub.crt",
        "condorhub_tls_key": "/etc/condorhub/tls/condorhub.key",
        "condorhub_tls_self_signed": True,
        "jupyterhub_tls_names": ["hub", "localhost", hub_ip],
        "jupyterhub_public_url": f"https://{hub_ip}:{ports['public']}",
        "condorhub_hub_address": hub_ip,
        "jupyterhub_hub_bind_url": f"http://{hub_ip}:{ports['hub']}",
        "jupyterhub_proxy_api_url": f"http://127.0.0.1:{ports['proxy_api']}",
        "condorhub_admin_users": [],
        "htcondor_gpu_discovery_extra": "-simulate:0,2",
        "htcondor_num_cpus": 4,
        "htcondor_extra_config": {
            **nr.CHROOT_CONDOR_SETTINGS,
            # The three machines share this host's addresses: each HTCondor would take the others' daemons for
            # its own family (a local peer) and offer a family session they cannot know.
            "SEC_USE_FAMILY_SESSION": "False",
        },
        "worker_env_condorhub_extras": [],
        "jupyterhub_profiles": TEST_PROFILES,
    })
    return settings


def write_cluster_inventory(folder: Path, roots: dict[str, Path], settings: dict) -> Path:
    groups: dict[str, dict] = {g: {"hosts": {}} for g in ("ldap_server", "nfs_server", "nfs_client")}
    for host, (_, host_groups) in HOSTS.items():
        for group in host_groups:
            groups.setdefault(group, {"hosts": {}})["hosts"][host] = None
    (folder / "group_vars").mkdir(parents=True)
    (folder / "host_vars").mkdir()
    (folder / "hosts.yml").write_text(json.dumps({"all": {"children": groups}}, indent=2) + "\n")
    (folder / "group_vars/all.yml").write_text(json.dumps(settings, indent=2) + "\n")
    (folder / "group_vars/all.yml").chmod(0o600)
    for host, (address, _) in HOSTS.items():
        (folder / "host_vars" / f"{host}.yml").write_text(json.dumps(
            {"ansible_host": str(roots[host]), "htcondor_network_interface": address}) + "\n")
    return folder


def run_cluster_playbook(workdir: Path, inventory: Path) -> PlaybookRun:
    log = workdir / f"ansible-cluster-{time.strftime('%H%M%S')}-{secrets.token_hex(2)}.log"
    return playbook.run_playbook(ANSIBLE_DIR, inventory, log, timeout=2400, nice=True)


@pytest.fixture(scope="module")
def cluster(ansible_base_root, slapd, ldap_home_base):
    """Three fresh roots, one site.yml run over all of them, the daemons started machine by machine."""
    # an account of its own: the condor tests' pool binds as cn=nslcd, whose password a new call would reset
    nslcd_dn, nslcd_password = ensure_service_account(slapd, "nslcd-cluster", "NSS lookups of the cluster")
    ports = {name: free_port() for name in ("public", "hub", "proxy_api")}
    with contextlib.ExitStack() as stack:
        # alice's home (on the NFS server in the cluster), made as a login would, and removed again if this test
        # made it: the session's homes folder is shared with other tests that check how homes get created
        home = ldap_home_base / "alice"
        if not home.exists():
            alice = next(u for u in DEMO_USERS if u.uid == "alice")
            home.mkdir(mode=0o700)
            os.chown(home, alice.uid_number, alice.gid_number)
            stack.callback(shutil.rmtree, home, ignore_errors=True)
        targets = {host: stack.enter_context(target_root()) for host in HOSTS}
        roots = {host: t.path for host, t in targets.items()}
        workdir = targets["hub"].workdir
        stack.callback(keep_logs, workdir, "ansible-cluster")
        # the shared homes (NFS in the cluster) on the hub, which writes the server's token file into them,
        # and on the worker, where the server runs
        for host in ("hub", "gpu01"):
            targets[host].mounts.bind(ldap_home_base, ldap_home_base)
        wheel = nr.build_wheel(workdir / "dist", REPO, CACHE_DIR)
        inventory = write_cluster_inventory(
            workdir / "inventory", roots, cluster_vars(roots, wheel, slapd, nslcd_dn, nslcd_password, ports))
        first = run_cluster_playbook(workdir, inventory)
        print(f"\nansible cluster: first apply {first.seconds:.0f}s, recap {first.recap} (log {first.log})")
        assert first.rc == 0, f"the cluster apply failed (rc {first.rc}):\n{first.failure()}"
        services = {}
        for host in START_ORDER:
            services[host] = start_services(roots[host], workdir / f"services-{host}", timeout=120)
        wait_for_user(roots["gpu01"], "alice", workdir)
        slots = wait_for_pool(roots["hub"])
        yield {"roots": roots, "targets": targets, "workdir": workdir, "inventory": inventory, "first": first,
               "services": services, "slots": slots, "ports": ports}


def test_each_machine_runs_its_own_part(cluster):
    roots = cluster["roots"]
    names = {host: [s.script.name for s in cluster["services"][host]] for host in HOSTS}
    assert names == {"cm": ["20-nslcd", "30-condor"], "gpu01": ["20-nslcd", "30-condor"],
                     "hub": ["20-nslcd", "30-condor", "40-condorhub-hub"]}, names
    daemons = {host: set(re.split(r"[\s,]+", in_root(root, "condor_config_val", "DAEMON_LIST").stdout.strip()))
               for host, root in roots.items()}
    assert {"COLLECTOR", "NEGOTIATOR"} <= daemons["cm"] and not {"SCHEDD", "STARTD"} & daemons["cm"]
    assert "SCHEDD" in daemons["hub"] and not {"COLLECTOR", "STARTD"} & daemons["hub"]
    assert "STARTD" in daemons["gpu01"] and not {"COLLECTOR", "SCHEDD"} & daemons["gpu01"]
    # The central manager's collector knows the worker's GPUs and the hub's schedd.
    startds = in_root(roots["cm"], "condor_status", "-af", "Machine", "TotalSlotGPUs").stdout
    assert re.search(r"^\S+ 2$", startds, re.M), startds
    schedds = in_root(roots["cm"], "condor_status", "-schedd", "-af", "MyAddress").stdout
    assert HOSTS["hub"][0] in schedds, schedds


def _claims(token_file: Path) -> dict:
    payload = token_file.read_text().strip().split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


#: The GPU worker's token: its own identity, in the execute nodes' domain (htcondor role, vars/main.yml).
WORKER_IDENTITY = f"gpu01@execute.{HOSTS['cm'][0]}"


def test_the_signing_key_stays_off_the_execute_nodes(cluster):
    """idtokens: the pool signing key is on the central manager and the submit host (the hub: its schedd
    checks the hub's and the negotiator's tokens); the GPU worker, where users' code runs, holds only a token
    minted on the central manager for its own identity that may advertise its startd and master and read, nothing
    more (no condor@<central manager>, no DAEMON, WRITE or ADMINISTRATOR). The hub's own token grants READ and
    WRITE only."""
    roots = cluster["roots"]
    for host in ("cm", "hub"):
        assert (roots[host] / "etc/condor/passwords.d/POOL").exists(), f"{host} has no signing key"
        assert not list((roots[host] / "etc/condor/tokens.d").iterdir()), f"{host} holds a token it does not need"
    assert not list((roots["gpu01"] / "etc/condor/passwords.d").iterdir()), "the GPU worker holds a signing key"
    tokens = sorted(p.name for p in (roots["gpu01"] / "etc/condor/tokens.d").iterdir())
    assert tokens == ["condorhub-execute.token"], tokens
    token = roots["gpu01"] / "etc/condor/tokens.d/condorhub-execute.token"
    assert oct(token.stat().st_mode & 0o777) == "0o600"
    claims = _claims(token)
    assert claims["sub"] == WORKER_IDENTITY and claims["iss"] == HOSTS["cm"][0], claims
    assert sorted(claims["scope"].split()) == ["condor:/ADVERTISE_MASTER", "condor:/ADVERTISE_STARTD",
                                               "condor:/READ"], claims
    hub_token = roots["hub"] / "etc/condorhub/hub.token"
    assert oct(hub_token.stat().st_mode & 0o777) == "0o600"
    claims = _claims(hub_token)
    assert claims["sub"] == "condorhub@physik.example.org", claims
    assert sorted(claims["scope"].split()) == ["condor:/READ", "condor:/WRITE"], claims


def test_alice_gets_a_gpu_server_on_the_worker(cluster):
    roots, ports = cluster["roots"], cluster["ports"]
    client = alice_starts_a_gpu_server(f"https://{HOSTS['hub'][0]}:{ports['public']}",
                                       roots["hub"] / "etc/condorhub/tls/condorhub.crt")
    alice = next(u for u in DEMO_USERS if u.uid == "alice")
    jobs = in_root(roots["hub"], "condor_q", "-allusers", "-af", "Owner", "JobStatus", "RequestGpus",
                   "RemoteHost").stdout
    assert re.search(r"^alice 2 1 \S+", jobs, re.M), f"no running 1-GPU job of alice's:\n{jobs}"
    # The server runs on the worker, as alice; on the hub only the job's shadow runs as her (HTCondor's
    # submit-side half of a running job), on the central manager nothing.
    on = {host: [cmdline(pid) for pid in cluster["targets"][host].processes() if process_uid(pid) == alice.uid_number]
          for host in HOSTS}
    assert any("jupyter" in cmd for cmd in on["gpu01"]), on
    assert all(cmd.startswith("condor_shadow") for cmd in on["hub"]) and not on["cm"], on
    api = client.http.get(f"{client.url}/user/alice/api/status")
    assert api.status_code == 200, api.text[:300]
    stop = client.api("DELETE", "/users/alice/server")
    assert stop.status_code in (202, 204), stop.text


def _write(root: Path, name: str, text: str, mode: int = 0o644) -> str:
    path = root / "tmp" / name
    path.write_text(text)
    path.chmod(mode)
    return f"/tmp/{name}"


def _attempt(root: Path, *cmd: str) -> tuple[int, str]:
    proc = in_root(root, *cmd, check=False, timeout=60)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


class _Log:
    """What a daemon's log gains from now on (HTCondor logs every refused command with its name)."""

    def __init__(self, path: Path):
        self.path, self.offset = path, path.stat().st_size

    def wait_for(self, pattern: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            with self.path.open(errors="replace") as fh:
                fh.seek(self.offset)
                text = fh.read()
            found = re.search(pattern, text)
            if found:
                self.offset += len(text.encode())  # each refusal is looked for once
                return found.group(0)
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.path.name} did not log {pattern!r}; it logged:\n{text[-2000:]}")
            time.sleep(0.3)


def _as_hub(*cmd: str) -> list[str]:
    """``cmd`` with the hub's own client configuration and token (as the hub's htcondor2 calls run)."""
    return ["env", "CONDOR_CONFIG=/etc/condorhub/condor_config", "_CONDOR_SEC_TOKEN_DIRECTORY=/tmp/hub-tokens", *cmd]


def worker_root_attacks(roots: dict[str, Path]) -> dict[str, str]:
    """Root on the GPU worker, with the token the htcondor role gave it, against the pool. Returns what each
    attempt printed; raises if one was not refused for want of authorization."""
    hub, worker, cm = roots["hub"], roots["gpu01"], roots["cm"]
    pool = f"{HOSTS['cm'][0]}:9618"
    collector = f"<{pool}>"  # the central manager's collector: the shared port's default daemon
    schedd = in_root(cm, "condor_status", "-schedd", "-af", "MyAddress").stdout.strip()
    collector_log = _Log(cm / "var/log/condor/CollectorLog")
    schedd_log = _Log(hub / "var/log/condor/SchedLog")
    # the victim: a held job of alice's, submitted as the hub submits (its token: a queue super user, Owner = alice)
    (hub / "tmp/hub-tokens").mkdir(mode=0o700, exist_ok=True)
    shutil.copy(hub / "etc/condorhub/hub.token", hub / "tmp/hub-tokens/hub")
    target = _write(hub, "target.sub", 'executable = /bin/sleep\narguments = 600\ninitialdir = /tmp\n'
                                       'should_transfer_files = NO\ntransfer_executable = false\nrequest_cpus = 1\n'
                                       'request_memory = 64MB\nhold = true\n+Owner = "alice"\nqueue\n')
    job = re.search(r"cluster (\d+)", in_root(hub, *_as_hub("condor_submit", target)).stdout).group(1)

    def alice_job() -> list[str]:
        return in_root(hub, "condor_q", job, "-af", "Owner", "JobStatus", "CondorhubAttack").stdout.split()

    assert alice_job() == ["alice", "5", "undefined"], alice_job()
    # the same edit as the hub works: the command is right, only who sends it differs
    in_root(hub, *_as_hub("condor_qedit", job, "CondorhubProbe", "1"))
    out: dict[str, str] = {}
    # what the token is for: reading (here the hub's queue, found through the collector)
    rc, out["read the queue"] = _attempt(worker, "condor_q", "-pool", pool, "-allusers", "-af", "ClusterId", "Owner")
    assert rc == 0 and f"{job} alice" in out["read the queue"], out

    ad = 'MyType = "{}"\nName = "fake"\nMachine = "gpu01"\nMyAddress = "<' + HOSTS["gpu01"][0] + ':9618>"\n'
    evil = _write(worker, "evil.sub", 'executable = /usr/bin/id\nshould_transfer_files = NO\n'
                                      'transfer_executable = false\n+Owner = "alice"\nqueue\n')
    # (no -name: the three machines share this host's name, under which the worker's tools find the hub's schedd)
    attacks = {
        "edit alice's job": (["condor_qedit", "-pool", pool, job, "CondorhubAttack", "1"], schedd_log, "QMGMT_WRITE_CMD"),
        "remove alice's job": (["condor_rm", "-pool", pool, job], schedd_log, "ACT_ON_JOBS"),
        "submit as alice": (["condor_submit", "-pool", pool, "-addr", schedd, evil], schedd_log, "QMGMT_WRITE_CMD"),
        "advertise a schedd": (["condor_advertise", "-tcp", "-pool", pool, "UPDATE_SCHEDD_AD",
                                _write(worker, "schedd.ad", ad.format("Scheduler"))], collector_log, "UPDATE_SCHEDD_AD"),
        "advertise a negotiator": (["condor_advertise", "-tcp", "-pool", pool, "UPDATE_NEGOTIATOR_AD",
                                    _write(worker, "negotiator.ad", ad.format("Negotiator"))], collector_log,
                                   "UPDATE_NEGOTIATOR_AD"),
        "reconfigure the central manager": (["condor_reconfig", "-addr", collector], collector_log, "DC_RECONFIG_FULL"),
    }
    for name, (cmd, log, command) in attacks.items():
        rc, out[name] = _attempt(worker, *cmd)
        assert rc != 0, f"root on the GPU worker could {name}: {out[name]}"
        # refused for the token's authorizations, not for a typo or a connection failure
        out[name] += "\n  daemon: " + log.wait_for(
            rf"authentication of <{re.escape(HOSTS['gpu01'][0])}:\d+> was successful but resulted in a limited "
            rf"authorization which did not include this command \(\d+ {command}\)")
    # runtime configuration is off in the pool (HTCondor's default), whoever asks
    rc, out["set the central manager's configuration"] = _attempt(
        worker, "condor_config_val", "-address", collector, "-set", "CONDORHUB_ATTACK = 1")
    assert rc != 0
    collector_log.wait_for(r'trying to modify "CONDORHUB_ATTACK"')
    # no key on the worker to mint one; a fetched token is the node's own, with the same few authorizations
    rc, out["mint a token"] = _attempt(worker, "condor_token_create", "-identity", f"condor@{HOSTS['cm'][0]}",
                                       "-key", "POOL")
    assert rc != 0 and "passwords.d/POOL" in out["mint a token"], out["mint a token"]
    rc, out["fetch a stronger token"] = _attempt(worker, "condor_token_fetch", "-pool", pool, "-type", "collector",
                                                 "-authz", "ADMINISTRATOR", "-authz", "WRITE")
    assert rc != 0 and "doesn't allow requested authorization" in out["fetch a stronger token"], out
    rc, fetched = _attempt(worker, "condor_token_fetch", "-pool", pool, "-type", "collector")
    assert rc == 0, fetched
    _write(worker, "fetched.token", fetched.splitlines()[-1] + "\n", 0o600)
    claims = _claims(worker / "tmp/fetched.token")
    assert claims["sub"] == WORKER_IDENTITY and "ADMINISTRATOR" not in claims["scope"], claims
    out["fetch a token"] = f"{claims['sub']}: {claims['scope']}"
    assert alice_job() == ["alice", "5", "undefined"], f"alice's job changed: {alice_job()}"
    assert "fake" not in in_root(cm, "condor_status", "-schedd", "-af", "Name").stdout
    assert "fake" not in in_root(cm, "condor_status", "-negotiator", "-af", "Name").stdout

    # The control: with the token earlier versions of the role put on execute nodes (condor@<central manager>,
    # unrestricted), the same root reconfigures the central manager and advertises a negotiator.
    old = in_root(cm, "condor_token_create", "-identity", f"condor@{HOSTS['cm'][0]}", "-key", "POOL").stdout.strip()
    (worker / "tmp/old-tokens").mkdir(mode=0o700, exist_ok=True)
    _write(worker, "old-tokens/daemon", old + "\n", 0o600)
    with_old = ["env", "_CONDOR_SEC_TOKEN_SYSTEM_DIRECTORY=/tmp/old-tokens"]
    try:
        for name in ("reconfigure the central manager", "advertise a negotiator"):
            rc, text = _attempt(worker, *with_old, *attacks[name][0])
            assert rc == 0, f"the control failed: with an unrestricted token, {name}: {text}"
            out[f"{name}, with the old token"] = text
        assert "fake" in in_root(cm, "condor_status", "-negotiator", "-af", "Name").stdout
        invalidate = _write(worker, "invalidate.ad", 'MyType = "Query"\nTargetType = "Negotiator"\n'
                                                     'Requirements = Name == "fake"\n')
        in_root(worker, *with_old, "condor_advertise", "-tcp", "-pool", pool, "INVALIDATE_NEGOTIATOR_ADS", invalidate)
    finally:
        shutil.rmtree(worker / "tmp/old-tokens")
    in_root(hub, *_as_hub("condor_rm", job))
    return out


def test_root_on_the_gpu_worker_cannot_take_over_the_pool(cluster):
    """Root on a GPU node (where students run their code: one local exploit away) holds that node's token. With
    it, each of these is refused by the daemon for the token's authorizations: editing, removing or submitting
    alice's jobs at the hub's schedd, advertising a schedd or a negotiator, reconfiguring the central manager;
    minting a token fails for want of the key, and a fetched token is the node's own with the same few rights.
    What the token is for works: it reads the pool, and the worker ran alice's server (the test above). The
    control: with the unrestricted condor@<central manager> token that earlier versions of the role put on
    execute nodes, the same reconfiguration and the fake negotiator succeed."""
    out = worker_root_attacks(cluster["roots"])
    for name, text in out.items():
        print(f"\n[{name}] {text[-300:]}")
    # the worker is still in the pool, its GPUs on offer
    startds = in_root(cluster["roots"]["cm"], "condor_status", "-af", "Machine", "TotalSlotGPUs").stdout
    assert re.search(r"^\S+ 2$", startds, re.M), startds


def test_second_run_changes_nothing(cluster):
    second = run_cluster_playbook(cluster["workdir"], cluster["inventory"])
    print(f"\nansible cluster: second apply {second.seconds:.0f}s, recap {second.recap}")
    assert second.rc == 0, second.failure()
    assert second.recap["changed"] == 0, f"changed on the second run: {second.changed_tasks()}"
