"""The job's entry point on the execute node: secrets from the file, port to the hub, exec the server.

Run by HTCondor as the user (``python -m condorhub.spawner.condor.launcher ~/.condorhub/<job>.env``)
from the worker environment. It imports nothing but the standard library, so it starts in milliseconds.

1. Read the secrets file the hub wrote (see :mod:`.secretfile`) and delete it at once: it must be the
   user's own regular file, not a link, and readable by nobody else.
2. Pick a free port and report it to the hub's condorhub API with the server's token (only the port and
   this node's address; the hub checks both against what HTCondor says about the job).
3. Put the user's own HTCondor credential (if the hub sent one) into a 0700 folder in the job's scratch
   directory, which HTCondor creates for this job alone and deletes when it ends, and point CONDOR_CONFIG
   at it: ``condor_submit`` and the bindings in the Lab then act as the user.
4. Replace this process with ``jupyterhub-singleuser`` (exec), its environment being the job's own
   (HTCondor's CUDA_VISIBLE_DEVICES names the GPUs assigned to this job, and the kernels inherit it)
   plus the hub's settings from the file, with the file mode creation mask :data:`UMASK`.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

#: Where the hub's handler listens, relative to JUPYTERHUB_API_URL.
PORT_API_PATH = "condorhub/port"

#: The server's (and its kernels') umask: what the user's code creates is the user's alone. condorhub's users
#: often share one primary group, and HTCondor's starter hands jobs its own umask (022): their files would
#: be readable by every other user wherever those can reach them (scratch, a folder shared on purpose).
#: The login node's servers get the same default (LoginNodeSpawner.umask).
UMASK = 0o077

EXIT_BAD_SECRETS = 10
EXIT_HUB_REFUSED = 11
EXIT_HUB_UNREACHABLE = 12


def fail(code: int, message: str) -> None:
    # stderr goes to ~/.condorhub/<job>.err; the hub shows its end to the user when the job fails.
    print(f"condorhub launcher: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def read_secrets(path: str) -> dict:
    """The secrets file's content; the file is deleted before this returns."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        fail(
            EXIT_BAD_SECRETS,
            f"{path} does not exist: this job was started twice (e.g. after an eviction) or the hub gave it up. "
            "Start your server again from the hub.",
        )
    except OSError as err:
        fail(EXIT_BAD_SECRETS, f"cannot open {path}: {err.strerror}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
            fail(EXIT_BAD_SECRETS, f"{path} is not a private file of yours (mode 0600); refusing to use it")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read()
    finally:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
    try:
        secrets = json.loads(data)
    except ValueError:
        fail(EXIT_BAD_SECRETS, f"{path} is not valid JSON")
    if not isinstance(secrets, dict) or not isinstance(secrets.get("env"), dict) or not secrets.get("argv"):
        fail(EXIT_BAD_SECRETS, f"{path} lacks `env` or `argv`")
    return secrets


def install_pool_access(access: dict, env: dict) -> str:
    """Write the user's token and client configuration into the job's scratch directory; returns the
    CONDOR_CONFIG path. The folder is this job's own (HTCondor removes it, token included, at the job's end)."""
    scratch = env.get("_CONDOR_SCRATCH_DIR") or env.get("TMPDIR") or ""
    if not os.path.isdir(scratch):
        fail(EXIT_BAD_SECRETS, "the job has no scratch directory (_CONDOR_SCRATCH_DIR) for its HTCondor credential")
    folder = os.path.join(scratch, ".condorhub-htcondor")
    tokens = os.path.join(folder, "tokens.d")
    os.mkdir(folder, 0o700)
    os.mkdir(tokens, 0o700)
    config = str(access.get("config", "")).rstrip("\n") + (
        f"\nSEC_TOKEN_DIRECTORY = {tokens}\nSEC_TOKEN_SYSTEM_DIRECTORY = {tokens}\n"
    )
    for path, text in (
        (os.path.join(tokens, "user.token"), str(access["token"])),
        (os.path.join(folder, "condor_config"), config),
    ):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    return os.path.join(folder, "condor_config")


def free_port(bind_ip: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in bind_ip else socket.AF_INET) as sock:
        sock.bind((bind_ip, 0))
        return sock.getsockname()[1]


def node_name() -> str:
    """The name HTCondor knows this node by (``Machine`` in the machine ad the starter hands every job),
    else the host name. The hub compares it with the job's RemoteHost."""
    path = os.environ.get("_CONDOR_MACHINE_AD")
    if path:
        try:
            with open(path) as fh:
                for line in fh:
                    key, _, value = line.partition("=")
                    if key.strip() == "Machine":
                        return value.strip().strip('"')
        except OSError:
            pass
    return socket.getfqdn()


def report_port(env: dict, port: int, host: str, attempts: int = 6) -> None:
    """POST the port to the hub; retried while the hub is unreachable (e.g. restarting)."""
    url = env["JUPYTERHUB_API_URL"].rstrip("/") + "/" + PORT_API_PATH
    body = json.dumps({"port": port, "host": host}).encode()
    delay = 1.0
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Authorization": f"token {env['JUPYTERHUB_API_TOKEN']}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
                return
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:500]
            if err.code < 500:
                fail(EXIT_HUB_REFUSED, f"the hub refused the port report ({err.code}): {detail}")
            problem = f"HTTP {err.code}"
        except (urllib.error.URLError, OSError) as err:
            problem = str(getattr(err, "reason", err))
        print(f"condorhub launcher: hub at {url} not reachable ({problem}), attempt {attempt}", file=sys.stderr)
        time.sleep(delay)
        delay = min(delay * 2, 10)
    fail(EXIT_HUB_UNREACHABLE, f"the hub at {url} could not be reached; check hub.hub_bind_url in the site file")


def with_port(service_url: str, bind_ip: str, port: int) -> str:
    parts = urlsplit(service_url)
    host = f"[{bind_ip}]" if ":" in bind_ip else bind_ip
    return urlunsplit(parts._replace(netloc=f"{host}:{port}"))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        fail(2, "usage: python -m condorhub.spawner.condor.launcher SECRETS_FILE")
    secrets = read_secrets(args[0])
    env = dict(os.environ)  # the job's environment: HTCondor's CUDA_VISIBLE_DEVICES, _CONDOR_*, TMPDIR
    for key, value in secrets["env"].items():
        if key in ("CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL"):
            continue  # the GPUs are HTCondor's to assign, never the hub's
        env[str(key)] = str(value)
    if isinstance(secrets.get("htcondor"), dict) and secrets["htcondor"].get("token"):
        env["CONDOR_CONFIG"] = install_pool_access(secrets["htcondor"], env)
    bind_ip = secrets.get("bind_ip") or "0.0.0.0"
    port = free_port(bind_ip)
    env["JUPYTERHUB_SERVICE_URL"] = with_port(env.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:0/"), bind_ip, port)
    report_port(env, port, node_name())
    argv = [str(a) for a in secrets["argv"]]
    os.umask(UMASK)
    sys.stdout.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as err:
        fail(2, f"cannot start {argv[0]}: {err.strerror}")


if __name__ == "__main__":
    main()
