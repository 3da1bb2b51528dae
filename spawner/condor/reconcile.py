"""Hub start: jobs and servers agree again.

Servers outlive the hub (``cleanup_servers`` is off), so after a restart the hub must reconcile its
database with the queue:

* a server whose job is gone is cleared: JupyterHub polls every server it believes running while it
  starts (``init_spawners``), and :meth:`HTCondorSpawner.poll` answers "stopped" for a job that left
  the queue (but "running" while the queue cannot be asked: unknown is not gone);
* a job that no server owns is removed: a hub killed between submitting and saving the server's state,
  or a stop that could not reach the schedd, leaves one. :class:`.queue.HTCondorQueue` sweeps this hub's
  jobs (``CondorhubHub``) against the job ids in the hub database plus those of spawns in progress,
  first right after the hub has started and then every ``reconcile_interval``.

JupyterHub has no hook for "the hub has started", so :func:`reconcile_at_hub_start` is called from the
configuration (the configuration file runs inside the hub's event loop) and schedules the sweep there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


def job_ids_in_states(states: Iterable[dict | None]) -> set[str]:
    """Job ids named by spawner states (ProfileSpawner keeps the HTCondor spawner's in child_state)."""
    ids: set[str] = set()
    for state in states:
        if not isinstance(state, dict):
            continue
        for candidate in (state, state.get("child_state")):
            if isinstance(candidate, dict) and candidate.get("job_id"):
                ids.add(str(candidate["job_id"]))
    return ids


def job_ids_in_hub_db(db) -> set[str]:
    """Job ids of all servers the hub database lists (running or pending)."""
    from jupyterhub import orm

    db.expire_all()  # read what is committed now, not what this session cached
    return job_ids_in_states(s.state for s in db.query(orm.Spawner).filter(orm.Spawner.server != None))  # noqa: E711


def reconcile_at_hub_start() -> bool:
    """Schedule the queue view's reconciliation on the hub's event loop; False when there is none
    (the configuration is being loaded by a tool, not by a starting hub)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    loop.call_soon(_start)
    return True


def _start() -> None:
    from jupyterhub.app import JupyterHub

    from .queue import HTCondorQueue

    if not JupyterHub.initialized():
        return
    app = JupyterHub.instance()
    queue = HTCondorQueue.instance(config=app.config)

    def known() -> set[str] | None:
        db = getattr(app, "db", None)
        if db is None:
            return None  # the hub is not that far yet: no sweep before its database is open
        return job_ids_in_hub_db(db)

    queue.known_job_ids = known
    queue.start()
    app.log.info("HTCondor queue view started for hub %s", queue.hub_id)
