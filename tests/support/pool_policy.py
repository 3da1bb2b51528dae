"""The test pool's user map (see condorhub.spawner.condor.usermap): written as the hub writes it at logins.

The session's pool enforces the htcondor role's policy like a deployed one: a user not in the map is refused.
Most condor tests submit for alice, bob and carol through the hub's token without a hub login of their own,
so :func:`seed_logged_in_users` (called by the ``condor_pool`` fixture once the pool is up) writes their lines as
the demo site's hub would after they logged in (:data:`POLICY_PROFILES`, :data:`POLICY_GROUPS`: the demo's
profiles and groups). dave (guest) stays out: the user who never logged in.
"""

from __future__ import annotations

from collections.abc import Iterable

from condorhub.schema import DEFAULT_MAX_JOBS_PER_USER, CondorProfile
from condorhub.spawner.condor.usermap import UserLimits, UserMapWriter, limits_for
from devstack.directory import DEMO_USERS, GROUP_ROLES
from devstack.pool import HTCondorPool
from devstack.run import ACCOUNTING_GROUPS, CONDOR_PROFILES

__all__ = ["POLICY_GROUPS", "POLICY_PROFILES", "demo_limits", "seed_logged_in_users", "user_map_writer"]

#: The condor profiles and accounting groups the seeded lines follow (the demo site's).
POLICY_PROFILES = [CondorProfile(**p) for p in CONDOR_PROFILES]
POLICY_GROUPS = dict(ACCOUNTING_GROUPS)
#: Users the seeded map knows, as if they had logged in once.
LOGGED_IN = ("alice", "bob", "carol")


def user_map_writer(pool: HTCondorPool) -> UserMapWriter:
    """A writer of ``pool``'s map, as a hub on this host has it (the file in the node, reconfig in the node)."""
    return UserMapWriter(pool.user_map_path, pool.user_map_reconfig_command)


def demo_limits(roles: Iterable[str], max_jobs: dict[str, int] | None = None) -> UserLimits:
    """What the demo site's hub writes for a user with ``roles``."""
    return limits_for(roles, POLICY_PROFILES, POLICY_GROUPS, max_jobs or {}, DEFAULT_MAX_JOBS_PER_USER)


def seed_logged_in_users(pool: HTCondorPool, users: Iterable[str] = LOGGED_IN) -> None:
    """Write ``users``' lines (their demo roles) into ``pool``'s map and have the schedd re-read it."""
    writer = user_map_writer(pool)
    for demo in DEMO_USERS:
        if demo.uid in users:
            writer.update(demo.uid, demo_limits([GROUP_ROLES[demo.group]]))
