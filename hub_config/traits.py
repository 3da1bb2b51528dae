"""Validated site model → JupyterHub traits. The only place that knows both vocabularies.

jupyterhub_config.py calls :func:`apply_site`; nothing here reads files other than the hub's own secrets
in ``state_dir`` (created on first start with modes only root can read).
"""

from __future__ import annotations

import math
import os
import secrets
import socket
from pathlib import Path

from .database import tune_sqlite
from .schema import SiteConfig


def _secret_file(path: Path, nbytes: int) -> bytes:
    """Read a hex secret from ``path``, creating it (mode 0600) on first use."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        value = secrets.token_bytes(nbytes)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value.hex())
        return value


def prepare_state_dir(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    # The directory holds the database (with hashed tokens) and the auth-state key: root only.
    os.chmod(state_dir, 0o700)


def apply_site(c, site: SiteConfig) -> None:
    """Set every JupyterHub trait that follows from the site file on the config object ``c``."""
    hub = site.hub
    prepare_state_dir(hub.state_dir)

    c.JupyterHub.bind_url = str(hub.bind_url)
    c.JupyterHub.hub_bind_url = str(hub.hub_bind_url)
    c.JupyterHub.db_url = f"sqlite:///{hub.state_dir / 'jupyterhub.sqlite'}"
    # WAL, no fsync per commit: the commits run on the event loop (see condorhub.database).
    tune_sqlite()
    c.JupyterHub.cookie_secret_file = str(hub.state_dir / "cookie_secret")
    c.JupyterHub.pid_file = str(hub.state_dir / "jupyterhub.pid")
    # Servers outlive the hub: a hub restart (upgrade, config change) must not kill a class's servers.
    c.JupyterHub.cleanup_servers = False
    c.ConfigurableHTTPProxy.pid_file = str(hub.state_dir / "proxy.pid")
    c.ConfigurableHTTPProxy.api_url = str(hub.proxy_api_url)

    # Auth state carries the posix identity the spawners need; it is encrypted with a key that only the
    # hub can read.
    c.Authenticator.enable_auth_state = True
    c.CryptKeeper.keys = [_secret_file(hub.state_dir / "auth_state_key", 32)]

    apply_ldap(c, site)

    c.JupyterHub.spawner_class = "condorhub.spawner.ProfileSpawner"
    # The schema's objects themselves: the spawners read typed values, nothing is converted again.
    c.ProfileSpawner.profiles = list(site.profiles)
    c.Spawner.default_url = hub.default_url
    # JupyterHub's timeouts are whole seconds.
    c.Spawner.start_timeout = math.ceil(hub.server_start_timeout)
    c.Spawner.http_timeout = math.ceil(min(hub.server_start_timeout, 60))
    c.LoginNodeSpawner.cmd = [str(hub.server_venv / "bin" / "jupyterhub-singleuser")]
    # Make the environment's tools (jupyter, python, pip) the ones a terminal in the Lab finds first.
    c.LoginNodeSpawner.environment = {
        "PATH": f"{hub.server_venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(hub.server_venv),
    }

    apply_htcondor(c, site)

    from condorhub.culling import apply_culling  # the idle culler service, per-profile idle timeouts

    apply_culling(c, site)

    from condorhub.courses.hub import apply_courses  # after the spawners: it adds to their environment

    apply_courses(c, site)

    from condorhub.spawner.server_status import apply_server_status  # after courses: it adds to their template vars

    apply_server_status(c)

    from condorhub.metrics import apply_metrics  # condorhub's own on /hub/metrics, and Prometheus' service

    apply_metrics(c, site)


def apply_ldap(c, site: SiteConfig) -> None:
    ldap = site.ldap
    auth = c.CondorhubLDAPAuthenticator
    c.JupyterHub.authenticator_class = "condorhub.auth.CondorhubLDAPAuthenticator"
    auth.server_address = ldap.server_address
    if ldap.server_port is not None:
        auth.server_port = ldap.server_port
    auth.tls_strategy = ldap.tls.strategy
    if ldap.tls.ca_file is not None:
        auth.tls_ca_file = str(ldap.tls.ca_file)
    auth.connect_timeout = ldap.connect_timeout
    auth.receive_timeout = ldap.receive_timeout
    auth.state_min_free = site.hub.state_min_free  # logins and spawns refused while the state disk is short
    if ldap.bind_dn_template:
        auth.bind_dn_template = list(ldap.bind_dn_template)
    if ldap.lookup is not None:
        auth.lookup_dn = True
        auth.lookup_dn_search_user = ldap.lookup.search_user
        auth.lookup_dn_search_password = ldap.lookup.search_password_file.read_text().strip()
        auth.lookup_dn_search_filter = ldap.lookup.filter
        auth.lookup_dn_user_dn_attribute = ldap.user_attribute
    auth.user_search_base = ldap.user_search_base
    auth.user_attribute = ldap.user_attribute
    auth.valid_username_regex = ldap.valid_username_regex
    auth.group_membership_attribute = ldap.groups.membership_attribute
    if ldap.groups.search_base:
        auth.group_search_base = ldap.groups.search_base

    auth.group_roles = dict(site.roles.groups)
    auth.default_role = site.roles.default
    auth.admin_users = set(site.hub.admin_users)
    # Membership in the directory decides; nobody outside the mapped groups gets in unless a default role
    # is set (the authenticator refuses people without a role).
    auth.allow_all = True

    throttle = site.login_throttle
    auth.throttle_free_failures = throttle.free_failures
    auth.throttle_free_failures_per_address = throttle.free_failures_per_address
    auth.trusted_proxies = [str(network) for network in throttle.trusted_proxies]
    auth.throttle_known_browser_days = throttle.known_browser_lifetime / 86400
    auth.throttle_window_seconds = throttle.window
    auth.throttle_max_delay_seconds = throttle.max_delay


def apply_htcondor(c, site: SiteConfig) -> None:
    """The `htcondor` section: the hub's pool client (HTCondorQueue) and the HTCondor spawner."""
    condor = site.htcondor
    if condor is None:
        return
    queue = c.HTCondorQueue
    if condor.condor_config is not None:
        queue.condor_config = str(condor.condor_config)
    if condor.collector is not None:
        queue.collector = condor.collector
    if condor.schedd is not None:
        queue.schedd = condor.schedd
    if condor.token_file is not None:
        queue.token_file = str(condor.token_file)
    # A private copy of the token lives here (HTCondor reads tokens from a directory, not a file).
    queue.private_dir = str(site.hub.state_dir / "htcondor")
    # Stable across restarts (so the restarted hub recognises its own jobs), distinct between two hubs
    # that share a pool.
    queue.hub_id = condor.hub_id or f"{socket.getfqdn()}:{site.hub.state_dir}"
    queue.poll_interval = condor.poll_interval
    queue.query_timeout = condor.query_timeout
    queue.unknown_grace = condor.unknown_grace

    # Each user's own HTCondor credential in their servers (login node and batch alike).
    credentials = c.UserCredentials
    credentials.signing_key_file = str(condor.user_tokens.signing_key_file or "")
    credentials.hub_token_file = str(condor.token_file or "")
    credentials.hub_condor_config = str(condor.condor_config or "")
    credentials.login_node_lifetime = condor.user_tokens.login_node_lifetime

    # Jobs a user submits from a login-node Lab run on the execute nodes: with their environment's Python,
    # not the hub machine's (a batch server's own is that environment already, see HTCondorSpawner.user_env).
    c.LoginNodeSpawner.environment = {
        **c.LoginNodeSpawner.environment,
        "CONDORHUB_JOB_PYTHON": str(condor.server_venv / "bin" / "python"),
    }

    spawner = c.HTCondorSpawner
    queue_timeout = condor.queue_timeout
    server_start_timeout = condor.server_start_timeout
    spawner.server_venv = str(condor.server_venv)
    spawner.queue_timeout = queue_timeout
    spawner.server_start_timeout = server_start_timeout
    spawner.accounting_groups = dict(condor.accounting_groups)
    # At each login the user's roles become their accounting groups and limits in the pool's user map.
    from condorhub.spawner.condor.usermap import configure_user_map

    configure_user_map(c, site)
    # JupyterHub wraps start() in start_timeout and kills the spawn when it expires, counting from the
    # request. The spawner enforces its own queue timeout (from submission) and startup timeout (from the
    # job starting to run), so this outer limit only has to exceed both: it is a safety net, not the rule.
    spawner.start_timeout = math.ceil(queue_timeout + server_start_timeout + 120)
    # After start() returns the job is running and the launcher has reported its port; the server gets the
    # startup timeout again to answer (JupyterLab imports take a while on a busy node).
    spawner.http_timeout = math.ceil(server_start_timeout)
    # Polling a condor server reads the shared queue view (no query of its own), so it can be as
    # frequent as the view is refreshed.
    spawner.poll_interval = max(int(condor.poll_interval), 1)

    # Import the spawner now rather than at the first spawn, where importing batchspawner and friends
    # stalled the event loop for a second on a busy hub; and before JupyterHub collects its API handlers,
    # so that batchspawner's own (which sets any spawner attribute) is gone before it could be registered.
    import condorhub.spawner.condor.spawner  # noqa: F401

    # The job reports its port to condorhub's own, narrow endpoint (batchspawner's is not registered).
    from condorhub.spawner.condor.api import PORT_API_PATTERN, PortReportHandler
    from condorhub.spawner.condor.reconcile import reconcile_at_hub_start

    c.JupyterHub.extra_handlers = [*c.JupyterHub.get("extra_handlers", []), (PORT_API_PATTERN, PortReportHandler)]
    # At hub start: remove jobs of this hub that no server owns (servers without a job are cleared by
    # JupyterHub's own start-up poll).
    reconcile_at_hub_start()
