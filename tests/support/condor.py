"""Session fixture ``condor_pool``: a real HTCondor pool (the demo's GPU execute node) for the tests.

The pool is what ops deploy: condorhub's Ansible roles (ansible/site.yml) put HTCondor, nslcd and the
worker environment into a Debian 13 root (:mod:`devstack.node_root`, cached; ~3 min on first use),
and every session applies site.yml again with its own settings before starting the daemons the roles
rendered. Users resolve through nslcd from the session's ``slapd`` (the demo directory: alice, bob,
carol, dave), with their homes under ``ldap_home_base`` bind-mounted at the same path; accounting groups
with dynamic quotas as in the all-in-one inventory. The pool listens on a free loopback port (the demo's
pool may run beside it on 9618). tests/conftest.py registers this module as a plugin.

While the fixture is active, ``CONDOR_CONFIG`` in this process points at the pool's host-side
client configuration (IDTOKENS with the hub's token) and ``htcondor2`` has been reloaded with it,
so ``htcondor2.Schedd()`` / ``htcondor2.Collector()`` talk to the pool as the hub would.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from devstack.accounts import ensure_homes, ensure_service_account
from devstack.directory import DEMO_USERS
from devstack.pool import HTCondorPool

from .pool_policy import seed_logged_in_users
from .ports import free_port
from .scratch import scratch_dir


#: The accounting groups the condor tests' site file charges (test_condor_e2e) and their shares.
GROUP_QUOTAS = {"group_students": 0.5, "group_researchers": 0.5}


@pytest.fixture(scope="session")
def condor_pool(slapd, ldap_home_base):
    """A running :class:`~devstack.pool.HTCondorPool` (2 simulated GPUs) for the session."""
    if os.geteuid() != 0:
        pytest.fail("the HTCondor pool needs root (debootstrap, chroot, mounts): run the tests as root")
    ensure_homes(DEMO_USERS, ldap_home_base)
    nslcd_dn, nslcd_password = ensure_service_account(slapd, "nslcd", "NSS lookups of the GPU nodes")
    run_dir = scratch_dir("condorhub-pool-")
    # A hub of the condor tests with courses keeps their repositories here (hub.courses_dir): the node sees
    # it read-only at the same path, as an execute node mounts the hub's courses folder.
    courses_base = scratch_dir("condorhub-pool-courses-")
    courses_base.chmod(0o755)
    pool = HTCondorPool(
        run_dir,
        ldap_uri=slapd.uri,
        ldap_base=slapd.suffix,
        home_base=ldap_home_base,
        courses_dir=courses_base,
        probe_user=DEMO_USERS[0].uid,
        ldap_bind_dn=nslcd_dn,
        ldap_bind_password=nslcd_password,
        port=free_port(),
        group_quotas=GROUP_QUOTAS,
    )
    saved = os.environ.get("CONDOR_CONFIG")
    try:
        pool.up()
        # alice, bob and carol as if they had logged in to a hub: the pool refuses users its map lacks.
        seed_logged_in_users(pool)
        os.environ.update(pool.env)
        import htcondor2

        htcondor2.reload_config()
        yield pool
    finally:
        if saved is None:
            os.environ.pop("CONDOR_CONFIG", None)
        else:
            os.environ["CONDOR_CONFIG"] = saved
        if "htcondor2" in sys.modules:
            sys.modules["htcondor2"].reload_config()
        try:
            pool.down()
        finally:
            _keep_logs(pool)
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.rmtree(courses_base, ignore_errors=True)


def _keep_logs(pool: HTCondorPool) -> None:
    """The run's ansible-playbook log, the daemons' output and condor's logs, for a look after the run
    (test-artifacts/condor-pool/; no secrets: the inventory and the tokens stay behind)."""
    dest = Path(__file__).resolve().parents[2] / "test-artifacts" / "condor-pool"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for log in [pool.run_dir / "ansible-apply.log", *(pool.run_dir / "services").glob("*.log"),
                *(p for p in pool.log_dir.glob("*") if p.is_file())]:
        if log.is_file():
            shutil.copy(log, dest / log.name)
