"""TensorBoard processes of one Jupyter server: start, list, reload, stop, and stop them all at shutdown.

Each instance is a separate TensorBoard subprocess (in-process TensorBoard broke with every TensorBoard
and tornado release) listening on a Unix socket in the server's 0700 private directory (private.py,
serve.py), not on a TCP port another user of the machine could connect to. The browser reaches it only
through the proxy (proxy.py), behind the server's login.

Start returns at once with state "starting"; a background task waits until TensorBoard answers HTTP and
sets "running" (or "failed" with the end of its log). Its import alone takes seconds, longer on a busy
login node, so there is no short start timeout to trip over: the proxy holds requests until it is ready,
up to ``startup_timeout``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import sys
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.netutil import Resolver

from .private import SOCKET_NAME, PrivateDir, check_own_socket

#: Secrets of the Jupyter server that TensorBoard has no use for.
_DROP_ENV = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES")


class TensorBoardError(Exception):
    """A request the manager refuses; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SocketResolver(Resolver):
    """Resolves ``http://<socket name>/...`` to that Unix socket of the private directory (the way
    jupyter-server-proxy's ``unix_socket`` option does), checking before every connection that the socket
    is this user's: a request never goes to a socket someone else made."""

    def initialize(self, private: PrivateDir):
        self.private = private

    async def resolve(self, host: str, port: int, family: int = socket.AF_UNSPEC):
        if not SOCKET_NAME.match(host):
            raise OSError(f"{host!r} is not a TensorBoard socket name")
        return [(socket.AF_UNIX, str(check_own_socket(self.private.socket(host))))]


@dataclass
class Instance:
    id: str
    logdir: str  # relative to the server root, as the user picked it
    real_logdir: Path
    log_file: Path
    socket: Path
    process: asyncio.subprocess.Process | None = None
    state: str = "starting"  # starting | running | failed | stopped
    message: str | None = None
    started: float = field(default_factory=time.time)
    ready_after: float | None = None  # seconds from start to the first HTTP answer
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set when running or failed
    watcher: asyncio.Task | None = None

    @property
    def upstream(self) -> str:
        """The URL host the manager's HTTP client resolves to this instance's socket."""
        return self.socket.stem

    def model(self) -> dict:
        return {
            "id": self.id,
            "logdir": self.logdir,
            "url": f"condorhub/tensorboard/{self.id}/",  # relative to the server's base_url
            "state": self.state,
            "message": self.message,
            "pid": self.process.pid if self.process else None,
            "started": self.started,
            "ready_after": self.ready_after,
        }


class TensorBoardManager:
    def __init__(
        self, *, private: PrivateDir, max_instances: int, startup_timeout: float, log, use_tensorflow: bool = False
    ):
        self.use_tensorflow = use_tensorflow
        self.private = private
        self.runtime_dir = private.path
        self.max_instances = max_instances
        self.startup_timeout = startup_timeout
        self.log = log
        self.instances: dict[str, Instance] = {}
        # Our own client, not the loop's shared AsyncHTTPClient(): that one may be configured (or replaced,
        # as in tests) by other code. The limit: TensorBoard's largest answers are its JS bundle and
        # image/histogram data. Its resolver connects to the private sockets (URL host = socket name).
        self.http = AsyncHTTPClient(
            force_instance=True,
            max_body_size=512 * 1024 * 1024,
            max_clients=32,
            resolver=SocketResolver(private=private),
        )

    # --- queries ---------------------------------------------------------------------------------------

    def get(self, instance_id: str) -> Instance:
        try:
            return self.instances[instance_id]
        except KeyError:
            raise TensorBoardError(f"no TensorBoard {instance_id!r} (stopped, or the server restarted)", 404) from None

    def list(self) -> list[dict]:
        return [i.model() for i in sorted(self.instances.values(), key=lambda i: i.started)]

    # --- start / stop ------------------------------------------------------------------------------------

    async def start(self, logdir: str, real_logdir: Path) -> tuple[Instance, bool]:
        """A TensorBoard for ``logdir``; an existing one for the same folder is reused. (instance, created)"""
        for inst in self.instances.values():
            if inst.real_logdir == real_logdir and inst.state in ("starting", "running"):
                return inst, False
        if len(self.instances) >= self.max_instances:
            raise TensorBoardError(
                f"{len(self.instances)} TensorBoards are running, the most this server allows "
                f"(CondorhubLab.tensorboard_max_instances); stop one first",
                409,
            )
        instance_id = secrets.token_hex(4)
        inst = Instance(
            instance_id, logdir, real_logdir, self.runtime_dir / f"tensorboard-{instance_id}.log",
            self.private.socket(f"instance-{instance_id}"),
        )  # fmt: skip
        self.instances[instance_id] = inst
        await self._launch(inst)
        return inst, True

    async def _launch(self, inst: Instance) -> None:
        inst.state, inst.message, inst.ready_after = "starting", None, None
        inst.started = time.time()
        inst.ready = asyncio.Event()
        await self._spawn(inst)
        inst.watcher = asyncio.ensure_future(self._watch_startup(inst))

    async def _spawn(self, inst: Instance) -> None:
        # A socket left by a killed TensorBoard (a reload) would refuse the bind: the name is ours to reuse.
        inst.socket.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
        command = [
            sys.executable, "-m", "condorhub.lab.tensorboard.child", "--parent", str(os.getpid()),
            "--socket", str(inst.socket),
            # TensorFlow is there for remote log folders (gs://, s3://), which need the real network.
            *([] if self.use_tensorflow else ["--without-tensorflow", "--private-network"]), "--",
            "--logdir", str(inst.real_logdir),
            # The proxy strips its own prefix, and TensorBoard's pages use relative URLs, so no
            # --path_prefix: the same TensorBoard works under any JupyterHub user prefix.
        ]  # fmt: skip
        with open(inst.log_file, "wb") as log:
            inst.process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                # Its own process group: stop signals TensorBoard and its data server together.
                start_new_session=True,
            )
        self.log.info("TensorBoard %s for %s: pid %s, socket %s", inst.id, inst.logdir, inst.process.pid, inst.socket)

    async def _watch_startup(self, inst: Instance) -> None:
        """Poll TensorBoard until it answers HTTP; record a failure with the end of its log."""
        deadline = time.monotonic() + self.startup_timeout
        start = time.monotonic()
        process = inst.process
        if process is None:  # watched only once started
            raise RuntimeError(f"TensorBoard for {inst.logdir!r} was never started")
        try:
            while time.monotonic() < deadline:
                if process.returncode is not None:
                    self._failed(inst, f"TensorBoard exited with code {process.returncode}")
                    return
                try:
                    await self.http.fetch(f"http://{inst.upstream}/data/environment", request_timeout=5)
                    inst.state, inst.ready_after = "running", round(time.monotonic() - start, 3)
                    return
                except (HTTPClientError, OSError):
                    pass
                try:
                    await asyncio.wait_for(process.wait(), 0.1)
                except TimeoutError:
                    pass
            self._failed(inst, f"TensorBoard did not answer within {self.startup_timeout:g} s")
            await self._terminate(inst)
        finally:
            inst.ready.set()

    def _failed(self, inst: Instance, why: str) -> None:
        tail = self.log_tail(inst)
        inst.state, inst.message = "failed", f"{why}. Its log ends:\n{tail}" if tail else why
        self.log.warning("TensorBoard %s failed: %s", inst.id, inst.message)

    def log_tail(self, inst: Instance, lines: int = 15) -> str:
        try:
            text = inst.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    async def reload(self, instance_id: str) -> Instance:
        """Restart the process (new runs, a crashed TensorBoard); the id and so the tab's URL stay."""
        inst = self.get(instance_id)
        await self._terminate(inst)
        await self._launch(inst)
        return inst

    async def stop(self, instance_id: str) -> None:
        inst = self.get(instance_id)
        await self._terminate(inst)
        inst.state = "stopped"
        self.instances.pop(instance_id, None)
        inst.log_file.unlink(missing_ok=True)
        inst.socket.unlink(missing_ok=True)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(i) for i in list(self.instances)), return_exceptions=True)

    def close(self) -> None:
        self.http.close()

    async def _terminate(self, inst: Instance, grace: float = 5) -> None:
        """SIGTERM the instance's process group, SIGKILL it after ``grace`` seconds."""
        if inst.watcher and not inst.watcher.done():
            inst.watcher.cancel()
        proc = inst.process
        if proc is None:
            return
        if proc.returncode is None:
            self._signal_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                self._signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        else:
            # TensorBoard itself is gone; make sure nothing of its group (the data server) stays.
            self._signal_group(proc.pid, signal.SIGKILL)
        inst.ready.set()

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
