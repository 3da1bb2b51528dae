"""`python -m devstack up|down|status` (what `./setup.sh demo` runs): the whole system on one machine, with the demo users.

Everything lives under /var/lib/condorhub-demo (directory data, hub state, the demo site file) and logs go
to /var/log/condorhub. `up` restarts whatever already runs, so it is safe to re-run; the directory and the
hub database are kept between runs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .course import course_settings, publish_demo_course
from .directory import DEMO_USERS, GROUP_ROLES, directory_ldif, newcomers_ldif
from .logfile import open_log
from .slapd import OpenLDAPServer

DEMO_DIR = Path("/var/lib/condorhub-demo")
LOG_DIR = Path("/var/log/condorhub")
LDAP_PORT = 3890
HUB_URL = "http://127.0.0.1:8000"
SUFFIX = "dc=condorhub,dc=test"
PIDS = {"slapd": DEMO_DIR / "slapd.pid", "hub": DEMO_DIR / "hub.pid"}
POOL_DIR = DEMO_DIR / "pool"
HOME_BASE = "/home"
# condorhub role -> HTCondor accounting group, and each group's share of the pool (as in the all-in-one
# inventory): a group may use what the others leave idle.
ACCOUNTING_GROUPS = {"student": "group_students", "researcher": "group_researchers",
                     "instructor": "group_instructors", "admin": "group_admins"}
GROUP_QUOTAS = {"group_students": 0.4, "group_researchers": 0.4, "group_instructors": 0.1, "group_admins": 0.1}

# The GPU profiles the demo offers when its HTCondor pool (2 simulated GPUs) is up.
CONDOR_PROFILES = [
    {"slug": "cpu", "kind": "condor", "display_name": "CPU batch", "description": "A CPU job on the GPU node.",
     "roles": ["student", "researcher", "instructor", "admin"], "cpus": 1, "memory": "2G", "runtime": "8h"},
    {"slug": "gpu-1", "kind": "condor", "display_name": "1 GPU", "description": "One (simulated) GPU.",
     "roles": ["student", "researcher", "instructor", "admin"], "cpus": 1, "memory": "2G", "runtime": "8h",
     "gpus": 1},
    {"slug": "gpu-2", "kind": "condor", "display_name": "2 GPUs", "description": "Both (simulated) GPUs.",
     "roles": ["researcher", "admin"], "cpus": 1, "memory": "2G", "runtime": "8h", "gpus": 2},
]


def demo_site(pool=None, *, demo_dir: Path = DEMO_DIR, hub_url: str = HUB_URL,
              hub_bind_url: str = "http://127.0.0.1:8081", proxy_api_url: str | None = None,
              ldap_port: int = LDAP_PORT, suffix: str = SUFFIX) -> dict:
    """The demo's site file; the keywords move it (a test runs it beside a developer's demo on its own
    folder and ports)."""
    site = {
        "hub": {
            "bind_url": hub_url,
            "hub_bind_url": hub_bind_url,
            **({"proxy_api_url": proxy_api_url} if proxy_api_url else {}),
            "state_dir": str(demo_dir / "hub"),
            "server_venv": str(Path(sys.executable).parent.parent),
        },
        "ldap": {
            "server_address": "127.0.0.1",
            "server_port": ldap_port,
            # The demo directory listens on loopback only and has no certificate; a real site keeps the
            # default (StartTLS, certificate verified).
            "tls": {"strategy": "insecure"},
            "bind_dn_template": [f"uid={{username}},ou=people,{suffix}"],
            "user_search_base": f"ou=people,{suffix}",
        },
        "roles": {"groups": dict(GROUP_ROLES)},
        "profiles": [
            {
                "slug": "login-node",
                "kind": "login_node",
                "display_name": "Login node (no GPU)",
                "description": "Small interactive work on this machine.",
                "roles": ["student", "researcher", "instructor", "guest", "admin"],
                "cpus": 1,
                "memory": "2G",
            }
        ],
    }
    if pool is not None:
        from .node_root import WORKER_VENV

        site["htcondor"] = {
            "condor_config": str(pool.condor_config_path),
            # Users' own tokens in their servers: signed with the pool's key, issuer and domain from the hub's.
            "token_file": str(pool.token_path),
            "user_tokens": {"signing_key_file": str(pool.signing_key_path)},
            "server_venv": WORKER_VENV,
            "accounting_groups": dict(ACCOUNTING_GROUPS),
            # the pool's user map in the node, kept by the hub at each login
            "user_map": pool.hub_user_map_settings,
        }
        site["profiles"] += CONDOR_PROFILES
    # carol teaches the course notebooks to the students (devstack/course.py publishes them at `up`).
    course = course_settings(demo_dir / "courses")
    site["hub"]["courses_dir"] = course["courses_dir"]
    site["courses"] = course["courses"]
    return site


def server_pids(hub_api_url: str) -> list[int]:
    """Pids of the single-user servers started by the hub whose API is at ``hub_api_url``.

    Servers run in their own sessions and outlive the hub on purpose (cleanup_servers is off, so a hub
    restart does not end a class's work); stopping the demo for good ends them by this marker in their
    environment.
    """
    marker = f"JUPYTERHUB_API_URL={hub_api_url.rstrip('/')}/hub/api".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                pass  # gone, or a kernel thread
    return pids


def kill_process_groups(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def _stop(name: str) -> None:
    pid = _alive(PIDS[name])
    if pid is None:
        return
    print(f"stopping {name} (pid {pid})")
    try:
        os.killpg(pid, signal.SIGTERM)  # the hub's process group includes its proxy
    except ProcessLookupError:
        pass
    for _ in range(100):
        if _alive(PIDS[name]) is None:
            break
        time.sleep(0.1)
    else:
        os.killpg(pid, signal.SIGKILL)
    PIDS[name].unlink(missing_ok=True)


def _start_ldap() -> OpenLDAPServer:
    server = OpenLDAPServer(DEMO_DIR / "ldap", port=LDAP_PORT, suffix=SUFFIX)
    fresh = not server.is_configured
    server.start()
    if fresh:
        server.add_ldif(directory_ldif(SUFFIX, DEMO_USERS, home_base=HOME_BASE))
    PIDS["slapd"].write_text(str(server.pid))
    joined = [] if fresh else _add_newcomers(server)
    print(f"OpenLDAP: {server.uri} ({'created' if fresh else 'kept'} demo directory"
          + (f"; added {', '.join(joined)}" if joined else "") + ")")
    return server


def _add_newcomers(server: OpenLDAPServer) -> list[str]:
    """Demo users a kept directory lacks (an earlier demo's, from before they were added), added with their
    groups; the others stay as they are."""
    present = set(re.findall(r"^uid: (\S+)$", server.search(f"ou=people,{SUFFIX}", "(objectClass=posixAccount)",
                                                             "uid"), re.M))
    newcomers = [u for u in DEMO_USERS if u.uid not in present]
    if newcomers:
        people, memberships = newcomers_ldif(newcomers, SUFFIX, home_base=HOME_BASE)
        server.add_ldif(people, ignore_existing=True)
        subprocess.run(["ldapmodify", "-Q", "-c", "-Y", "EXTERNAL", "-H", server.ldapi_uri], input=memberships,
                       text=True, capture_output=True, check=True, env={**os.environ, "LDAPNOINIT": "1"})
    return [u.uid for u in newcomers]


def _start_pool(server: OpenLDAPServer):
    """The GPU node: the HTCondor pool, deployed by the Ansible roles into a Debian 13 root (the cached root is
    built on first use, ~3 min; each start re-applies the roles with this run's settings, ~30 s)."""
    from .accounts import ensure_service_account
    from .pool import HTCondorPool, PoolError

    bind_dn, bind_password = ensure_service_account(server, "nslcd", "NSS lookups of the GPU node")
    try:
        pool = HTCondorPool(
            POOL_DIR,
            ldap_uri=server.uri,
            ldap_base=SUFFIX,
            home_base=HOME_BASE,
            # the course repositories, read-only in the node: HTCondor servers pull the course too
            courses_dir=DEMO_DIR / "courses",
            probe_user=DEMO_USERS[0].uid,
            ldap_bind_dn=bind_dn,
            ldap_bind_password=bind_password,
            group_quotas=GROUP_QUOTAS,
        )
        pool.up()
    except (PoolError, OSError) as err:
        # The login node still works without it; say why the GPU profiles are missing.
        print(f"\nWARNING: no HTCondor pool, so no GPU profiles in this demo: {err}\n")
        return None
    print(f"HTCondor pool: 2 simulated GPUs, {pool.collector_address}")
    return pool


def _stop_pool() -> None:
    from .pool import HTCondorPool, PoolError

    try:
        HTCondorPool.from_run_dir(POOL_DIR).down()
    except PoolError:
        pass  # no pool state: nothing runs


def open_hub_log(log_dir: Path = LOG_DIR):
    """The hub's log, ``log_dir/hub.log``, opened for appending: 0640 root:adm, never world-readable (it
    names users and their servers), also when an older demo left it 0644."""
    log_dir.mkdir(mode=0o755, parents=True, exist_ok=True)  # the file is what must stay private
    return open_log(log_dir / "hub.log")


def _start_hub(site_file: Path) -> None:
    with open_hub_log() as log:  # the hub keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "condorhub"), "hub", "--site", str(site_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives this command; `devstack down` stops the whole group
        )
    PIDS["hub"].write_text(str(proc.pid))
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the hub exited with {proc.returncode}; see {LOG_DIR / 'hub.log'}")
        try:
            urllib.request.urlopen(f"{HUB_URL}/hub/api", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the hub did not answer at {HUB_URL} within 60 s; see {LOG_DIR / 'hub.log'}")


def up() -> int:
    if os.geteuid() != 0:
        raise SystemExit("devstack up: run as root (servers run as the demo users' uids)")
    from .accounts import ensure_homes
    from .nss import enable_extrausers

    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    DEMO_DIR.chmod(0o755)  # students reach the course repositories in it (the hub's state folder is 0700)
    down(quiet=True)
    server = _start_ldap()
    ensure_homes(DEMO_USERS, HOME_BASE)
    # The login node is this machine: its NSS learns the demo's people (a terminal's prompt has a name).
    print(enable_extrausers(DEMO_USERS, HOME_BASE))
    pool = _start_pool(server)
    site = demo_site(pool)
    print(publish_demo_course(site, DEMO_USERS, HOME_BASE))
    site_file = DEMO_DIR / "site.yaml"
    site_file.write_text(yaml.safe_dump(site, sort_keys=False))
    _start_hub(site_file)
    print(f"\nthe demo is up: {HUB_URL}  (logs: {LOG_DIR / 'hub.log'}; site file: {site_file})")
    for user in DEMO_USERS:
        print(f"  {user.uid:6} password {user.password:10} group {user.group:12} role {GROUP_ROLES[user.group]}")
    print(f"  course {site['courses'][0]['slug']!r}: carol teaches it, the students take it (~/courses/"
          f"{site['courses'][0]['slug']} at their next server start)")
    return 0


def down(quiet: bool = False) -> int:
    _stop("hub")
    kill_process_groups(server_pids(demo_site()["hub"]["hub_bind_url"]))
    _stop_pool()
    _stop("slapd")
    if not quiet:
        # Only when the demo stops for good: `up` calls this too, and fills NSS again right after.
        from .nss import disable_extrausers

        print(disable_extrausers())
        print("the demo stopped")
    return 0


def status() -> int:
    for name, pidfile in PIDS.items():
        pid = _alive(pidfile)
        print(f"{name:6} {'running, pid %d' % pid if pid else 'stopped'}")
    from .pool import HTCondorPool, PoolError

    try:
        slots = HTCondorPool.from_run_dir(POOL_DIR).status().get("slots")
        print(f"pool   running, slots: {slots}")
    except PoolError:
        print("pool   stopped")
    return 0
