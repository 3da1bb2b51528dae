"""The cluster inventory's layout applied for real: a central manager, the hub (submit host) and a GPU worker,
each a fresh Debian 13 root of its own (see ansible_fixtures.py), deployed by one ``ansible-playbook site.yml``
run over the ``community.general.chroot`` connection.

What the all-in-one test cannot show, this one does: the paths of the roles that only run when machines are
apart. The GPU worker gets a *daemon token* minted on the central manager (``delegate_to``) and never the
pool signing key; the hub's schedd and the worker's startd join the central manager's collector; a job the
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
from ansible_fixtures import (ANSIBLE_DIR, CACHE_DIR, REPO, TEST_PROFILES, alice_starts_a_gpu_server, cmdline, free_port,
                              in_root, keep_logs, process_uid, target_root, wait_for_pool, wait_for_user)

from condorhub.demo import node_root as nr
from condorhub.demo import playbook
from condorhub.demo.accounts import ensure_service_account
from condorhub.demo.directory import DEMO_USERS, GROUP_ROLES
from condorhub.demo.playbook import PlaybookRun
from condorhub.demo.services import start_services

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
            "hub": {"start_timeout": 180},
            "htcondor": {"poll_interval": 1, "queue_timeout": "5m", "startup_timeout": "3m"},
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
        "worker_env_packages": [],
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


def test_the_signing_key_stays_off_the_execute_nodes(cluster):
    """idtokens: the pool signing key is on the central manager and the submit host (the hub: its schedd
    checks the hub's and the negotiator's tokens); the GPU worker, where users' code runs, holds only a daemon
    token minted on the central manager. The hub's own token grants READ and WRITE only."""
    roots = cluster["roots"]
    for host in ("cm", "hub"):
        assert (roots[host] / "etc/condor/passwords.d/POOL").exists(), f"{host} has no signing key"
        assert not (roots[host] / "etc/condor/tokens.d/condorhub-daemon.token").exists()
    assert not list((roots["gpu01"] / "etc/condor/passwords.d").iterdir()), "the GPU worker holds a signing key"
    token = roots["gpu01"] / "etc/condor/tokens.d/condorhub-daemon.token"
    assert oct(token.stat().st_mode & 0o777) == "0o600"
    claims = _claims(token)
    assert claims["sub"] == f"condor@{HOSTS['cm'][0]}" and claims["iss"] == HOSTS["cm"][0], claims
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


def test_second_run_changes_nothing(cluster):
    second = run_cluster_playbook(cluster["workdir"], cluster["inventory"])
    print(f"\nansible cluster: second apply {second.seconds:.0f}s, recap {second.recap}")
    assert second.rc == 0, second.failure()
    assert second.recap["changed"] == 0, f"changed on the second run: {second.changed_tasks()}"
