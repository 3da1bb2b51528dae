"""Private homes (issue 10, item 3): one user cannot read another's work, on the login node or in a GPU job.

The demo's users, like many sites', share one primary group (``condorhub``, gid 10000), so a home that is
0755 or 0750 is everyone's. condorhub creates homes 0700 wherever it creates them (the login-node and
HTCondor spawners, :func:`devstack.accounts.ensure_homes`), and the servers it starts run with umask
077, so even a file a user's code writes outside the home is that user's alone.

Each test is the attack, for real: bob, with the credentials his own login-node server runs with (uid and
gid the hub read from LDAP), reads alice's notebook on the login node; bob's job in the real HTCondor pool
(submitted the way the hub submits, queue super user with ``Owner = bob``) ``cat``\\ s it on the GPU node.
Both get *Permission denied*; alice herself reads the same file in the same places (so the refusals are
the homes' modes, not a wrong path).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from devstack.accounts import HOME_MODE, ensure_homes
from devstack.directory import DEMO_USERS, DemoUser
from tests.support.hub import Hub, demo_site
from tests.support.scratch import scratch_dir

USERS = {u.uid: u for u in DEMO_USERS}
NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _as(uid: int, gid: int, groups: list[int], *argv: str) -> subprocess.CompletedProcess:
    """Run ``argv`` with exactly these credentials (as the login-node spawner's preexec sets them)."""

    def become():
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)

    return subprocess.run(list(argv), preexec_fn=become, capture_output=True, text=True, timeout=30, cwd="/")


def _credentials(pid: int) -> tuple[int, int, list[int], int]:
    """(uid, gid, supplementary groups, umask) of a running process, from /proc/<pid>/status."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    uid = int(fields["Uid"].split()[0])
    gid = int(fields["Gid"].split()[0])
    groups = [int(g) for g in fields["Groups"].split()]
    return uid, gid, groups, int(fields["Umask"], 8)


def _server_pid(hub: Hub, uid: int) -> int:
    pids = [pid for pid in hub.server_pids() if Path(f"/proc/{pid}").stat().st_uid == uid]
    assert pids, f"no server of uid {uid} among {hub.server_pids()}"
    return min(pids)  # the server itself, not a kernel it started


# ------------------------------------------------------------------ the login node


@pytest.fixture(scope="module")
def hub(slapd):
    work = scratch_dir("condorhub-homes-hub-")
    hub = Hub(work, demo_site(slapd.uri, slapd.suffix, work / "state")).start()
    yield hub
    hub.stop()
    hub.kill_servers()
    shutil.rmtree(work, ignore_errors=True)


def _start_login_server(hub: Hub, user: DemoUser):
    client = hub.client()
    assert client.login(user.uid, user.password, follow=False).status_code == 302
    client.spawn_form({"profile": "login-node"})
    assert "started" in client.wait_for_server(user.uid)
    return client


@pytest.mark.e2e
@pytest.mark.ldap
def test_bob_cannot_read_alices_notebook_on_the_login_node(hub, ldap_home_base):
    alice, bob = USERS["alice"], USERS["bob"]
    client = _start_login_server(hub, alice)
    xsrf = client.http.cookies.get("_xsrf", path="/user/alice/") or client.http.cookies.get("_xsrf")
    put = client.http.put(f"{hub.url}/user/alice/api/contents/graded.ipynb",
                          json={"type": "notebook", "content": NOTEBOOK}, headers={"X-XSRFToken": xsrf}, timeout=15)
    assert put.status_code in (200, 201), put.text
    home = Path(alice.home_under(str(ldap_home_base)))
    notebook = home / "graded.ipynb"
    # Her home is hers alone, and so is what her server writes (umask 077: 0600, not 0644).
    st = home.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (alice.uid_number, 0o700)
    st = notebook.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (alice.uid_number, 0o600)
    assert _credentials(_server_pid(hub, alice.uid_number))[3] == 0o077

    # bob's own server: the credentials the hub gives him, from his posixAccount.
    _start_login_server(hub, bob)
    uid, gid, groups, umask = _credentials(_server_pid(hub, bob.uid_number))
    assert (uid, gid, groups, umask) == (bob.uid_number, bob.gid_number, [bob.gid_number], 0o077)
    assert gid == alice.gid_number, "the demo's users share a primary group: the case 0750 would not protect"
    read = _as(uid, gid, groups, "cat", str(notebook))
    assert read.returncode != 0 and "Permission denied" in read.stderr, (read.returncode, read.stdout, read.stderr)
    listing = _as(uid, gid, groups, "ls", str(home))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr, listing.stderr
    # ... while alice, with her server's credentials, reads it.
    a_uid, a_gid, a_groups, _ = _credentials(_server_pid(hub, alice.uid_number))
    mine = _as(a_uid, a_gid, a_groups, "cat", str(notebook))
    assert mine.returncode == 0 and '"nbformat": 4' in mine.stdout, mine.stderr


def test_login_node_spawner_refuses_a_umask_that_is_not_one(tmp_path):
    from traitlets import TraitError

    from condorhub.spawner.loginnode import LoginNodeSpawner

    assert LoginNodeSpawner().umask == 0o077
    with pytest.raises(TraitError, match="between 0 and 0o777"):
        LoginNodeSpawner(umask=0o1777)


# ------------------------------------------------------------------ homes condorhub creates


def test_ensure_homes_creates_private_homes_and_tightens_the_ones_it_made_before(tmp_path):
    base = tmp_path / "home"
    base.mkdir()
    users = [DemoUser(u.uid, "pw", u.uid_number, u.gid_number, "", u.group, u.display_name) for u in DEMO_USERS]
    old = base / "bob"  # as earlier versions made it
    old.mkdir()
    old.chmod(0o755)
    os.chown(old, 10002, 10000)
    chosen = base / "carol"  # carol opened her home herself: her choice
    chosen.mkdir()
    chosen.chmod(0o711)
    os.chown(chosen, 10003, 10000)
    os.symlink("/etc", base / "dave")  # never followed
    saved = os.umask(0o022)
    try:
        ensure_homes(users, base)
    finally:
        os.umask(saved)
    modes = {p.name: (p.lstat().st_uid, stat.S_IMODE(p.lstat().st_mode)) for p in base.iterdir() if not p.is_symlink()}
    fresh = {u.uid: (u.uid_number, HOME_MODE) for u in DEMO_USERS if u.uid not in ("bob", "carol", "dave")}
    assert modes == {**fresh, "bob": (10002, 0o700), "carol": (10003, 0o711)}, modes
    assert "alice" in fresh
    assert stat.S_IMODE(os.stat("/etc").st_mode) == 0o755


def test_login_node_spawner_creates_a_private_home(tmp_path):
    from condorhub.spawner.loginnode import LoginNodeSpawner, PosixIdentity

    home = tmp_path / "home" / "alice"
    saved = os.umask(0o022)
    try:
        LoginNodeSpawner()._prepare_home(PosixIdentity(uid=10001, gid=10000, home=str(home)))
    finally:
        os.umask(saved)
    st = home.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (10001, 10000, 0o700)


# ------------------------------------------------------------------ the HTCondor launcher


class _PortAPI(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_the_launcher_starts_the_server_with_umask_077(tmp_path):
    """The real launcher process (``python -m condorhub.spawner.condor.launcher``, as the job runs it) execs
    the server with umask 077, whatever umask HTCondor's starter gave the job (022)."""
    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PortAPI)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "umask.txt"
        secrets = tmp_path / "job.env"
        fd = os.open(secrets, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"env": {"JUPYTERHUB_API_URL": f"http://127.0.0.1:{api.server_port}/hub/api",
                               "JUPYTERHUB_API_TOKEN": "t"},
                       "argv": ["/bin/sh", "-c", f"umask > {out}; echo x > {tmp_path / 'made-by-server'}"],
                       "bind_ip": "127.0.0.1"}, fh)
        proc = subprocess.run([sys.executable, "-m", "condorhub.spawner.condor.launcher", str(secrets)],
                              capture_output=True, text=True, timeout=60, preexec_fn=lambda: os.umask(0o022))
        assert proc.returncode == 0, proc.stderr
        assert out.read_text().strip() == "0077"
        assert stat.S_IMODE((tmp_path / "made-by-server").stat().st_mode) == 0o600
    finally:
        api.shutdown()


# ------------------------------------------------------------------ a GPU job in the real pool


def _wait_done(schedd, cluster: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ads = schedd.query(f"ClusterId == {cluster}", projection=["JobStatus"]) or \
            schedd.history(f"ClusterId == {cluster}", projection=["JobStatus"])
        if ads and ads[0]["JobStatus"] == 4:
            return
        time.sleep(0.5)
    raise AssertionError(f"job {cluster} did not complete within {timeout:.0f} s")


def _cat_job(owner: DemoUser, home_base: Path, target: Path):
    import htcondor2

    home = owner.home_under(str(home_base))
    return htcondor2.Submit({
        "executable": "/bin/sh",
        "arguments": f"\"-c 'id -un; cat {target}; echo rc=$?'\"",
        "initialdir": home,
        "output": "cat-$(ClusterId).out",
        "error": "cat-$(ClusterId).err",
        "request_gpus": "1",
        "request_cpus": "1",
        "request_memory": "128MB",
        "should_transfer_files": "NO",
        "+Owner": f'"{owner.uid}"',
    })


@pytest.mark.condor
def test_bobs_gpu_job_cannot_read_alices_notebook(condor_pool):
    import htcondor2

    alice, bob = USERS["alice"], USERS["bob"]
    home = Path(alice.home_under(str(condor_pool.home_base)))
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    notebook = home / "graded-gpu.ipynb"
    # written by alice herself, with a careless umask (0644): the home's mode alone must protect it
    made = subprocess.run(["sh", "-c", f"umask 022; echo '{json.dumps(NOTEBOOK)}' > {notebook}"],
                          preexec_fn=lambda: (os.setgroups([alice.gid_number]), os.setgid(alice.gid_number),
                                              os.setuid(alice.uid_number)), capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(notebook.stat().st_mode) == 0o644
    schedd = htcondor2.Schedd()
    outputs = {}
    for user in (bob, alice):
        cluster = schedd.submit(_cat_job(user, condor_pool.home_base, notebook)).cluster()
        _wait_done(schedd, cluster)
        user_home = Path(user.home_under(str(condor_pool.home_base)))
        outputs[user.uid] = ((user_home / f"cat-{cluster}.out").read_text(),
                             (user_home / f"cat-{cluster}.err").read_text())
    out, err = outputs["bob"]
    assert out.splitlines()[0] == "bob" and "nbformat" not in out, out
    assert re.search(r"rc=[1-9]", out) and "Permission denied" in err, (out, err)
    out, err = outputs["alice"]
    assert out.splitlines()[0] == "alice" and '"nbformat": 4' in out and "rc=0" in out, (out, err)


# ------------------------------------------------------------------ the NFS role's home export


def _render_exports(tmp_path: Path, **settings) -> str:
    """The nfs_server role's exports file, rendered by Ansible itself with the role's defaults and ``settings``."""
    ansible = Path(__file__).resolve().parents[1] / "ansible"
    role = ansible / "roles/nfs_server"
    dest = tmp_path / "condorhub.exports"
    play = [{"hosts": "localhost", "gather_facts": False, "vars_files": [str(role / "defaults/main.yml")],
             "tasks": [{"name": "exports", "ansible.builtin.template": {
                 "src": str(role / "templates/exports.j2"), "dest": str(dest), "mode": "0644"}}]}]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    (tmp_path / "vars.json").write_text(json.dumps({"condorhub_nfs_clients": "10.10.0.0/24", **settings}))
    bin_dir = Path(sys.executable).parent
    proc = subprocess.run(
        [str(bin_dir / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", f"@{tmp_path / 'vars.json'}",
         str(tmp_path / "play.yml")],
        capture_output=True, text=True, timeout=120, cwd=ansible,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "ANSIBLE_HOME": str(tmp_path / ".ansible"),
             "LANG": "C.UTF-8", "ANSIBLE_PYTHON_INTERPRETER": sys.executable})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return dest.read_text()


def test_the_home_export_squashes_root_everywhere_but_on_the_hub(tmp_path):
    """The hub creates a new user's home (0700, owned by the user) at the first server start; with root squashed
    on the home export it could not (mkdir as nobody in a root-owned /home). Only the hub's root is kept; every
    other client's (the GPU nodes') is squashed, and the data export stays read-only."""
    exports = _render_exports(tmp_path, condorhub_hub_address="hub.physik.example.org")
    lines = {line.split()[0]: line.split()[1:] for line in exports.splitlines() if line and not line.startswith("#")}
    assert lines["/home"] == ["hub.physik.example.org(rw,sync,no_subtree_check,no_root_squash)",
                              "10.10.0.0/24(rw,sync,no_subtree_check,root_squash)"], exports
    assert lines["/srv/condorhub/data"] == ["10.10.0.0/24(ro,sync,no_subtree_check,root_squash)"], exports
    assert lines["/srv/condorhub/scratch"] == ["10.10.0.0/24(rw,sync,no_subtree_check,root_squash)"], exports
    # without a hub address (e.g. an NFS server deployed on its own), root is squashed on every client
    exports = _render_exports(tmp_path)
    assert "no_root_squash" not in exports, exports
