"""HTCondorSpawner: a user's Jupyter server as an HTCondor job on an execute (GPU) node.

Built on batchspawner's :class:`~batchspawner.BatchSpawnerBase`, so its documented request traits keep
their meaning (``req_nprocs``, ``req_memory``, ``req_runtime``, ``req_ngpus``, ``req_options``), but
none of its shell machinery is used: no ``sudo``, no ``condor_submit``/``condor_q`` processes, no
regular expressions over command output (``batch_script``, ``batch_*_cmd``, ``exec_prefix`` and
``req_prologue``/``req_epilogue`` are ignored). Instead:

* **submission** through the ``htcondor2`` bindings, by the hub as a queue super user, with the job's
  ``Owner`` set to the user: the job runs as the user and the hub holds no root shell;
* **state** from the shared :class:`~.queue.HTCondorQueue` view: one schedd query per cycle for all
  servers; held, suspended and transferring jobs are not "gone"; an unanswered query is "unknown";
* **secrets** in a 0600 file in the user's home (:mod:`.secretfile`), never in the public job ad;
* **the port** reported by the job's launcher to condorhub's own API handler (:mod:`.api`), checked
  against the node HTCondor runs the job on;
* **progress** on the spawn page: submitted (job id), waiting (jobs ahead, and why: e.g. no free GPU),
  running on <node>, server starting, then JupyterHub's "ready";
* **timeouts** of its own: ``queue_timeout`` from submission, ``server_start_timeout`` from the job starting
  to run, so a long queue never kills a server that just got its GPU.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator

from batchspawner import BatchSpawnerBase
from jupyterhub.apihandlers import default_handlers
from tornado import web
from traitlets import Bool, Dict, Float, Instance, Integer, Unicode, default

from condorhub.metrics import record_queue_wait
from condorhub.schema import CondorProfile, HTCondorSettings, default_of, parse_duration, parse_memory

from ..choice import format_duration
from ..loginnode import PosixIdentity
from .client import CondorClientError
from .credentials import CredentialError, UserCredentials
from .jobs import Job, Phase, Request
from .queue import HTCondorQueue, QueueUnavailable
from .secretfile import SECRET_DIR, Account, SecretFileError, read_own_file_tail, remove_secret_file, write_secret_file
from .submit import JobSpec, SubmitError, describe, parse_extra, submit_description


def _drop_batchspawner_api_handler() -> None:
    """Importing batchspawner registered /hub/api/batchspawner, which lets a server's token set any
    attribute of the spawner; condorhub answers port reports with its own handler (see .api)."""
    from batchspawner.api import BatchSpawnerAPIHandler

    default_handlers[:] = [h for h in default_handlers if h[1] is not BatchSpawnerAPIHandler]


_drop_batchspawner_api_handler()

MiB = 1024 * 1024


class SpawnFailed(web.HTTPError):
    """A server could not start; the message is shown on the spawn page as it is."""

    def __init__(self, message: str, status: int = 500):
        super().__init__(status, log_message=message)
        self.jupyterhub_message = message

    def __str__(self) -> str:
        return self.log_message or ""


class HTCondorSpawner(BatchSpawnerBase):
    """Run ``jupyterhub-singleuser`` as an HTCondor job owned by the user."""

    # Defaults the site file's `htcondor` section also has come from its schema, so they cannot differ.
    server_venv = Unicode(
        str(default_of(HTCondorSettings, "server_venv")),
        config=True,
        help="""
        Python environment (virtualenv prefix) on the execute nodes with condorhub, jupyterhub and
        JupyterLab. The job runs `<server_venv>/bin/python -m condorhub.spawner.condor.launcher`, which
        starts `jupyterhub-singleuser` from the same environment; a terminal in the Lab finds its tools
        first on PATH.
        """,
    )

    queue_timeout = Float(
        default_of(HTCondorSettings, "queue_timeout"),
        config=True,
        help="""
        Seconds a server's job may wait in the queue (e.g. for a free GPU), counted from submission.
        Then the job is removed and the spawn page says why it did not start. Independent of
        `server_start_timeout`, which starts counting only when the job runs.
        """,
    )

    server_start_timeout = Float(
        default_of(HTCondorSettings, "server_start_timeout"),
        config=True,
        help="""
        Seconds from the job starting to run on its node until its launcher reports the server's port.
        A long wait in the queue does not count against it. (JupyterHub's own `start_timeout` is set
        above the sum of both by condorhub's site file; it is only a safety net.)
        """,
    )

    unreachable_grace = Float(
        60.0,
        config=True,
        help="""
        Seconds a running server may refuse TCP connections on its node before the hub gives it up and
        removes its job. HTCondor lists a job as running for as long as its shadow waits to reconnect to
        the node (the job lease, 40 min by default), so a node that died, or whose startd was killed with
        its jobs, would otherwise keep a dead server listed. A busy server still accepts connections: only
        a server whose process or node is gone fails the check, which each poll makes (0 turns it off).
        """,
    )

    accounting_groups = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="""
        condorhub role → HTCondor accounting group (e.g. {"student": "group_students"}). The job is
        charged to the group of the first role of the profile's `roles` the user has (without a profile:
        of the user's roles), as `accounting_group = <group>`, `accounting_group_user = <user>`, so the
        negotiator shares the pool between groups by their quotas.
        """,
    )

    profile = Instance(
        CondorProfile,
        allow_none=True,
        help="""
        The site file's `condor` profile this server runs (set by ProfileSpawner): its resources become
        the job's request, its `roles` decide the accounting group. None when HTCondorSpawner is used on
        its own; then batchspawner's `req_nprocs`, `req_memory`, `req_ngpus` and `req_runtime` (or
        `cpu_limit`/`mem_limit`) give the request.
        """,
    )

    min_uid = Integer(
        1000,
        config=True,
        help="""
        Lowest uid and gid a server may run as. The pool refuses root jobs anyway; this stops a mistaken
        directory entry before anything is written to disk.
        """,
    )

    create_home = Bool(
        True,
        config=True,
        help="""
        Create the user's home directory (mode 0700, owned by the user) on the hub when it does not exist.
        The home must be shared with the execute nodes: the job starts in it and the secrets file is
        handed over there.
        """,
    )

    # -- runtime state ---------------------------------------------------------------------------------
    identity: PosixIdentity | None = None
    roles: list[str] = []
    secret_name = Unicode("")
    node = Unicode("")
    run_started = Integer(0)  # JobCurrentStartDate of the run that serves (epoch seconds)
    submitted_at = Float(0)
    stop_reason = Unicode("", help="Why the server stopped or failed, in words for the user.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._events: list[dict] = []
        self._events_changed = asyncio.Event()
        self._progress_done = False
        self._port_future: asyncio.Future | None = None
        self._submitted_mono = 0.0
        self._unanswered_since: float | None = None
        # The configured address the server binds to on its node (`ip`, 0.0.0.0 by default); `ip` itself
        # becomes the node's address once the job runs.
        self._bind_ip = self.ip

    @default("req_homedir")
    def _req_homedir_default(self):
        # batchspawner asks the hub's pwd database; condorhub's users come from LDAP (auth state).
        return self.identity.home if self.identity else ""

    @property
    def queue(self) -> HTCondorQueue:
        return HTCondorQueue.instance(config=self.config)

    # -- identity --------------------------------------------------------------------------------------

    async def run_auth_state_hook(self, auth_state):
        self.identity = PosixIdentity.from_auth_state(auth_state, min_uid=self.min_uid)
        self.roles = list((auth_state or {}).get("roles", []))
        return await super().run_auth_state_hook(auth_state)

    def _require_identity(self) -> PosixIdentity:
        if self.identity is None:
            raise SpawnFailed(
                "No Unix identity for this server: the hub needs auth state (enable_auth_state) filled by "
                "condorhub's LDAP authenticator."
            )
        return self.identity

    def _account(self) -> Account:
        identity = self._require_identity()
        return Account(identity.uid, identity.gid, identity.home)

    def _prepare_home(self, identity: PosixIdentity) -> None:
        if os.path.isdir(identity.home):
            return
        if not self.create_home:
            raise SpawnFailed(f"Home directory {identity.home} does not exist; ask your administrators.")
        os.makedirs(identity.home, mode=0o700, exist_ok=True)
        os.chown(identity.home, identity.uid, identity.gid)

    def user_env(self, env: dict) -> dict:
        identity = self._require_identity()
        env["USER"] = env["LOGNAME"] = self.user.name
        env["HOME"] = identity.home
        if identity.shell:
            env["SHELL"] = identity.shell
        env["PATH"] = f"{self.server_venv}/bin:/usr/local/bin:/usr/bin:/bin"
        env["VIRTUAL_ENV"] = self.server_venv
        # The Python of the jobs the user submits from this Lab (the Jobs panel): the same environment.
        env["CONDORHUB_JOB_PYTHON"] = f"{self.server_venv}/bin/python"
        return env

    def get_env(self) -> dict:
        return self.user_env(super().get_env())

    # -- the job ---------------------------------------------------------------------------------------

    def _server_argv(self) -> list[str]:
        cmd = list(self.cmd)
        if cmd and "/" not in cmd[0]:
            cmd[0] = f"{self.server_venv}/bin/{cmd[0]}"
        return cmd + list(self.get_args())

    def _accounting_group(self) -> str:
        order = list(self.profile.roles) if self.profile is not None else list(self.roles)
        for role in order:
            if role in self.roles and role in self.accounting_groups:
                return self.accounting_groups[role]
        return ""

    def _request(self) -> Request:
        """What the job asks for: the profile's resources, or batchspawner's request traits without one."""
        if self.profile is not None:
            return Request.from_profile(self.profile)
        try:
            return self._request_from_traits()
        except ValueError as err:
            raise SpawnFailed(f"The server's request is misconfigured: {err}. Tell the hub admins.") from None

    def _request_from_traits(self) -> Request:
        # batchspawner documents these as strings ("4", "4G", "8:00:00"); a site that sets them directly
        # (HTCondorSpawner as its spawner_class) keeps that meaning.
        cpus = max(int(float(self.req_nprocs)), 1) if self.req_nprocs else max(int(self.cpu_limit or 1), 1)
        if self.req_memory:
            memory_mb = max(parse_memory(self.req_memory) // MiB, 1)
        else:
            memory_mb = int(self.mem_limit or 0) // MiB
        runtime = round(parse_duration(self.req_runtime)) if self.req_runtime else None
        return Request(cpus=cpus, memory_mb=memory_mb, gpus=int(self.req_ngpus or 0), runtime_seconds=runtime or None)

    def job_spec(self, stem: str) -> JobSpec:
        identity = self._require_identity()
        request = self._request()
        try:
            extra = parse_extra(self.req_options)
        except SubmitError as err:
            raise SpawnFailed(f"The server profile is misconfigured: {err}. Tell the hub admins.") from None
        folder = os.path.join(identity.home, SECRET_DIR)
        return JobSpec(
            user=self.user.name,
            server_name=self.name,
            hub_id=self.queue.hub_id,
            home=identity.home,
            python=f"{self.server_venv}/bin/python",
            secret_file=os.path.join(folder, f"{stem}.env"),
            log_stem=os.path.join(folder, stem),
            request=request,
            accounting_group=self._accounting_group(),
            extra=extra,
        )

    # -- progress --------------------------------------------------------------------------------------

    def _emit(self, progress: int | None, message: str) -> None:
        event: dict = {"message": message}
        if progress is not None:
            event["progress"] = progress
        self.log.info("%s: %s", self._log_name, message)
        self._events.append(event)
        changed, self._events_changed = self._events_changed, asyncio.Event()
        changed.set()

    async def progress(self) -> AsyncIterator[dict]:
        # Every reader (a page opened late, a reload) gets all events so far, then the new ones.
        index = 0
        while True:
            while index < len(self._events):
                yield self._events[index]
                index += 1
            if self._progress_done:
                return
            await self._events_changed.wait()

    # -- start -----------------------------------------------------------------------------------------

    async def start(self):
        identity = self._require_identity()
        queue = self.queue
        queue.start()
        self._events, self._progress_done, self.stop_reason = [], False, ""
        self._events_changed = asyncio.Event()
        self.port = 0
        loop = asyncio.get_running_loop()
        self._port_future = loop.create_future()
        stem = f"jupyter-{secrets.token_hex(8)}"
        spec = self.job_spec(stem)
        account = self._account()
        try:
            await loop.run_in_executor(None, self._prepare_home, identity)
            self.ip = self._bind_ip
            payload = {"env": self.get_env(), "argv": self._server_argv(), "bind_ip": self._bind_ip}
            access = await self._pool_access(spec.request)
            if access:
                payload["htcondor"] = access
            await loop.run_in_executor(None, write_secret_file, account, f"{stem}.env", payload)
        except (SecretFileError, OSError) as err:
            raise SpawnFailed(f"Your server could not be prepared: {err}") from None
        self.secret_name = f"{stem}.env"
        description = submit_description(spec)
        self.log.debug("Submitting for %s:\n%s", self._log_name, describe(description))
        try:
            job_id = await queue.submit(description)
        except CondorClientError as err:
            await self._forget_secret_file()
            raise SpawnFailed(f"HTCondor did not accept your server's job: {err}", 503) from None
        # Only queries that start after the schedd confirmed the job can tell that it is gone.
        self._submitted_mono = time.monotonic()
        self.job_id = job_id
        self.submitted_at = time.time()
        queue.claim(job_id, self._log_name)
        self._save_state()
        self._emit(10, f"Submitted to HTCondor as job {job_id}")
        try:
            job = await self._wait_until_running()
            await self._wait_for_port(job)
        except BaseException as err:
            reason = getattr(err, "jupyterhub_message", None) or (
                "the hub gave up starting it" if isinstance(err, asyncio.CancelledError) else str(err)
            )
            await self._abandon(reason)
            raise
        finally:
            self._progress_done = True
            self._events_changed.set()
        return self.ip, self.port

    async def _pool_access(self, request: Request) -> dict | None:
        """The user's own HTCondor token and client configuration for the server (see .credentials).

        Valid while the job may wait and run, and no longer. Without one (not configured, or the key cannot
        be read) the server still starts; the user then cannot submit from the Lab, and the log says why.
        """
        credentials = UserCredentials.instance(config=self.config)
        if not credentials.enabled:
            return None
        lifetime = self.queue_timeout + (request.runtime_seconds or credentials.login_node_lifetime) + 600
        try:
            token = await asyncio.get_running_loop().run_in_executor(None, credentials.mint, self.user.name, lifetime)
            config = credentials.config_for(None, await self.queue.schedd_name())
        except (CredentialError, OSError) as err:
            self.log.error("No HTCondor credential for %s's server: %s", self._log_name, err)
            self._emit(5, f"Your server starts without HTCondor access (ask the admins): {err}")
            return None
        return {"token": token, "config": config}

    def _seen_since_submit(self) -> bool:
        """Whether the view's data comes from a query that started after our submission."""
        return self.queue.last_query_started > self._submitted_mono

    def _fail(self, message: str, log_tail: bool = False) -> SpawnFailed:
        if log_tail and self.identity is not None:
            tail = read_own_file_tail(
                os.path.join(self.identity.home, SECRET_DIR, self.secret_name.removesuffix(".env") + ".err"),
                self.identity.uid,
            ).strip()
            if tail:
                message += f" The job's last error output: {tail[-600:]}"
        self.stop_reason = message
        self._emit(100, message)
        return SpawnFailed(message)

    async def _wait_until_running(self) -> Job:
        queue = self.queue
        deadline = self.submitted_at + self.queue_timeout
        last_message = ""
        # Right after submission: look now (the job is idle, or already matched on an empty pool).
        await queue.next_refresh(timeout=queue.query_timeout + queue.min_query_interval)
        while True:
            if queue.unknown:
                if queue.unknown_for() > queue.unknown_grace:
                    raise self._fail(
                        f"HTCondor's queue has not answered for {queue.unknown_for():.0f} s ({queue.last_error}); "
                        "try again later."
                    )
                message = f"HTCondor's queue does not answer at the moment ({queue.last_error}); still waiting"
            else:
                job = queue.job(self.job_id)
                if job is None:
                    if self._seen_since_submit():
                        raise self._fail(
                            f"Job {self.job_id} left HTCondor's queue before it started: "
                            f"{await queue.last_words(self.job_id)}.",
                            log_tail=True,
                        )
                    await queue.next_refresh(timeout=queue.query_timeout + queue.min_query_interval)
                    continue
                if job.phase == Phase.running:
                    # The schedd's own times when it has them (our view may see the start a poll cycle late).
                    waited = (
                        job.start_date - job.qdate if job.start_date and job.qdate else time.time() - self.submitted_at
                    )
                    record_queue_wait(self.profile.slug if self.profile is not None else "", waited)
                    return job
                if job.phase == Phase.held:
                    raise self._fail(f"HTCondor held your server's job {self.job_id}: {job.hold_reason}")
                if job.phase == Phase.ended:
                    raise self._fail(
                        f"Your server's job {self.job_id} did not start: {job.end_reason()}.", log_tail=True
                    )
                ahead = queue.position(self.job_id)
                why = queue.why_waiting(self._request())
                queued = f"{ahead} job{'s' if ahead != 1 else ''} queued before yours"
                message = f"Waiting in the queue (job {self.job_id}): {queued}; {why}"
                if time.time() > deadline:
                    raise self._fail(
                        f"Your server waited {self.queue_timeout:g} s in the queue without getting a slot "
                        f"({why}); the job was removed. Try again later or choose a smaller profile."
                    )
            if message != last_message:
                self._emit(30, message)
                last_message = message
            if self._start_port_future.done():
                # The launcher reported (so the job runs) but this view predates that: wait for the next.
                await queue.wait_for_change(queue.poll_interval)
            else:
                # The regular cycle, or earlier if the launcher reports its port meanwhile.
                await self._wait_for(self._start_port_future, queue.poll_interval)

    @property
    def _start_port_future(self) -> asyncio.Future:
        """The port future of the start in progress (start() makes it before it submits the job)."""
        if self._port_future is None:
            raise RuntimeError("no start in progress")
        return self._port_future

    async def _wait_for(self, future: asyncio.Future, timeout: float) -> None:
        """Until ``future`` is done or the queue view changes or ``timeout`` passes."""
        change = asyncio.ensure_future(self.queue.wait_for_change(timeout))
        try:
            await asyncio.wait([change, future], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            change.cancel()

    async def _wait_for_port(self, job: Job) -> None:
        queue = self.queue
        self.run_started = job.start_date or int(time.time())
        self.node = job.node
        self._emit(50, f"Running on {job.node} (job {self.job_id}); starting the Jupyter server")
        deadline = self.run_started + self.server_start_timeout
        while not self._start_port_future.done():
            await self._wait_for(self._start_port_future, queue.poll_interval)
            if self._start_port_future.done():
                break
            latest = queue.job(self.job_id) if not queue.unknown else job
            if latest is None:
                raise self._fail(
                    f"Your server's job {self.job_id} ended before the server started: "
                    f"{await queue.last_words(self.job_id)}.",
                    log_tail=True,
                )
            job = latest
            if job.phase == Phase.held:
                raise self._fail(f"HTCondor held your server's job {self.job_id}: {job.hold_reason}")
            if job.phase == Phase.ended:
                raise self._fail(
                    f"Your server's job {self.job_id} ended before the server started: {job.end_reason()}.",
                    log_tail=True,
                )
            if job.phase == Phase.queued:
                raise self._fail(f"HTCondor moved your server's job {self.job_id} off {self.node} before it started.")
            if time.time() > deadline:
                raise self._fail(
                    f"Your server's job started on {self.node} but the Jupyter server did not report within "
                    f"{self.server_start_timeout:g} s.",
                    log_tail=True,
                )
        self.port, self.ip = self._start_port_future.result()
        self._emit(80, f"Server starting on {self.node}, port {self.port}; waiting for it to answer")
        await self._wait_listening(deadline)

    async def _wait_listening(self, deadline: float) -> None:
        """Return once the server accepts connections on its port.

        The launcher reports the port before jupyter-server has started (seconds of imports on a busy
        node). If start() returned then, JupyterHub's own check would back off exponentially, up to 5 s
        between attempts, and the user would wait for nothing; a TCP connect every 0.1 s costs next to
        nothing, and JupyterHub's first check then finds the server (its request waits for the answer).
        """
        queue = self.queue
        while True:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(self.ip, self.port), 1)
            except (TimeoutError, OSError):
                pass
            else:
                writer.close()
                return
            job = queue.job(self.job_id)
            if job is None and not queue.unknown:
                # Gone from the queue (removed, or ended and out of the history the queue keeps): waiting on
                # for the whole start timeout would keep the user looking at a progress bar for nothing.
                raise self._fail(
                    f"Your server's job {self.job_id} left the queue before the server answered: "
                    f"{await queue.last_words(self.job_id)}.",
                    log_tail=True,
                )
            if job is not None and job.phase != Phase.running:
                raise self._fail(
                    f"Your server's job {self.job_id} stopped before the server answered: {job.end_reason()}.",
                    log_tail=True,
                )
            if time.time() > deadline:
                raise self._fail(
                    f"Your server on {self.node} did not answer on port {self.port} within "
                    f"{self.server_start_timeout:g} s of its job starting.",
                    log_tail=True,
                )
            await asyncio.sleep(0.1)

    async def accept_port(self, port: int, host: str | None) -> None:
        """The job's launcher reports its port (through :class:`.api.PortReportHandler`)."""
        future = self._port_future
        # The launcher's retry of a report the hub took but answered late (seen at load 20: 28.8 s, past the
        # launcher's 30 s timeout): the same port again is no conflict, and a 409 made the launcher exit.
        if self.job_id and _reported_port(future) == port:
            return
        if future is None or future.done() or not self.job_id:
            raise web.HTTPError(409, "This server is not waiting for a port (it runs already, or was stopped)")
        queue = self.queue
        # The report usually arrives before the regular cycle has seen the job run: look now (merged with
        # every other server's request into one query).
        job = queue.job(self.job_id)
        for _ in range(3):
            if job is not None and job.phase == Phase.running:
                break
            await queue.next_refresh(timeout=queue.query_timeout + queue.min_query_interval)
            job = queue.job(self.job_id)
        if job is None or job.phase != Phase.running:
            raise web.HTTPError(409, f"HTCondor does not list job {self.job_id} as running; port refused")
        if host is not None and host not in {job.node, job.node_address, job.node.split(".")[0]}:
            raise web.HTTPError(400, f"Host {host!r} is not the node HTCondor runs job {self.job_id} on ({job.node})")
        if not future.done():
            future.set_result((port, job.node_address))

    async def _abandon(self, reason: str) -> None:
        """Undo a start that failed: remove the job, delete the secrets file, forget the job."""
        job_id = self.job_id
        if job_id:
            await self.queue.remove([job_id], f"condorhub: {reason}"[:250])
            self.queue.release(job_id)
        await self._forget_secret_file()
        self.job_id = ""

    async def _forget_secret_file(self) -> None:
        if not self.secret_name or self.identity is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, remove_secret_file, self._account(), self.secret_name
            )
        except SecretFileError as err:
            self.log.warning("%s: %s", self._log_name, err)

    # -- poll and stop ---------------------------------------------------------------------------------

    async def _gone(self, reason: str, remove: str = "") -> int:
        """The server is no more: say why, remove its job if it still holds a slot, forget the job.

        Forgetting matters: JupyterHub polls once more while stopping, and that poll must neither see the
        job again (its reason would replace the real one: "removed by condorhub" after "held") nor remove
        it twice. A removal the schedd misses is retried by the queue view.
        """
        job_id = self.job_id
        if remove:
            await self.queue.remove([job_id], f"condorhub: {remove}")
        self.stop_reason = reason
        self.log.warning("%s stopped: %s", self._log_name, reason)
        self.queue.release(job_id)
        await self._forget_secret_file()
        self.job_id = ""
        return 1

    async def poll(self):
        if not self.job_id:
            return 0
        queue = self.queue
        try:
            await queue.fresh(max_age=2 * queue.poll_interval)
        except QueueUnavailable:
            if queue.unknown_for() < queue.unknown_grace:
                return None  # unknown is not gone: keep the server, ask again next time
            return await self._gone(
                f"HTCondor's queue could not be asked for {queue.unknown_for():.0f} s ({queue.last_error}); the hub "
                "gave your server up. Its job is removed as soon as the queue answers.",
                remove="the hub gave this server up (queue unknown)",
            )
        if self._port_future is not None and not self._port_future.done():
            return None  # still starting: start() watches it
        job = queue.job(self.job_id)
        if job is None:
            return await self._gone(
                self._runtime_limit_reason()
                or f"Your server's job {self.job_id} ended: {await queue.last_words(self.job_id)}."
            )
        if not self.run_started and self._port_future is None:
            # A spawn the hub died in (its state was saved at submission): no start() of this hub process
            # waits for the job or will take its port, so left queued it would hold a slot for nobody.
            return await self._gone(
                f"The hub restarted while your server waited in HTCondor's queue or was starting (job "
                f"{self.job_id}); its job was removed. Start your server again.",
                remove="the hub restarted while the server was starting",
            )
        if job.phase == Phase.running:
            if self.run_started and job.start_date and job.start_date != self.run_started:
                return await self._gone(
                    f"HTCondor restarted your server's job {self.job_id}; the server is gone.",
                    remove="restarted behind the hub's back",
                )
            if await self._unreachable_too_long():
                return await self._gone(
                    f"Your server on {self.node} stopped answering for {self.unreachable_grace:g} s while HTCondor "
                    f"still listed its job {self.job_id} as running: the node or its HTCondor daemons failed. The "
                    "hub removed the job; your files are kept, start a server again to go on.",
                    remove="the server stopped answering on its node",
                )
            return None
        if job.phase == Phase.queued:
            if self.port:
                return await self._gone(
                    f"HTCondor evicted your server's job {self.job_id} from {self.node}.",
                    remove="evicted, cannot resume",
                )
            return None
        if job.phase == Phase.held:
            return await self._gone(
                self._runtime_limit_reason() or f"HTCondor held your server's job {self.job_id}: {job.hold_reason}",
                remove="held (see the hub)",
            )
        return await self._gone(
            self._runtime_limit_reason() or f"Your server's job {self.job_id} ended: {job.end_reason()}."
        )

    async def _unreachable_too_long(self) -> bool:
        """Whether the running server has refused connections for longer than `unreachable_grace`."""
        if not self.unreachable_grace or not self.port or not self.ip:
            return False  # off, or not known (a hub restarted since the start does not keep the port)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(self.ip, self.port), 5)
        except (TimeoutError, OSError):
            now = time.monotonic()
            if self._unanswered_since is None:
                self._unanswered_since = now
                self.log.warning("%s does not answer on %s:%s", self._log_name, self.ip, self.port)
            return now - self._unanswered_since >= self.unreachable_grace
        writer.close()
        self._unanswered_since = None
        return False

    def _runtime_limit_reason(self) -> str:
        """What users read when the job ended at its profile's runtime limit ("" when it ended before it).

        HTCondor holds a job at ``allowed_job_duration`` after it started to run; the time tells it apart
        from any other end, whatever words the hold reason has in this HTCondor version.
        """
        profile = self.profile
        if profile is None or not self.run_started or time.time() < self.run_started + profile.runtime - 5:
            return ""
        return (
            f"Your server was stopped by its runtime limit of {format_duration(round(profile.runtime))} (the "
            f"{profile.display_name} profile), counted from the start of its job {self.job_id}. Start a new "
            "server to go on; your files are kept."
        )

    async def stop(self, now: bool = False):
        job_id = self.job_id
        queue = self.queue
        if job_id:
            job = queue.job(job_id)
            if job is None or job.phase != Phase.ended:
                self.log.info("Removing HTCondor job %s of %s", job_id, self._log_name)
                await queue.remove([job_id], f"condorhub: server of {self.user.name} stopped")
            if not now:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    await queue.next_refresh(timeout=queue.query_timeout)
                    job = queue.job(job_id)
                    if not queue.unknown and (job is None or job.phase == Phase.ended):
                        break
            queue.release(job_id)
        await self._forget_secret_file()

    # -- state -----------------------------------------------------------------------------------------

    def _save_state(self) -> None:
        """Write the server's state (its job) to the hub database now, not only when start() returns.

        JupyterHub saves a spawner's state once the start has finished; a hub killed while the job waits in
        the queue would restart without its id, and the job would stay queued as an orphan (possibly start
        and hold a GPU) until a sweep. With the id saved, the restarted hub's poll removes it and says why.
        """
        orm_spawner, user = getattr(self, "orm_spawner", None), getattr(self, "user", None)
        if orm_spawner is None or user is None or self.db is None:
            return
        owner = user.spawners.get(self.name) or self  # the ProfileSpawner wrapping this one, if any
        try:
            orm_spawner.state = owner.get_state()
            self.db.commit()
        except Exception:  # the start goes on; only a hub killed meanwhile would miss it
            self.log.exception("Saving the state of %s after submission failed", self._log_name)

    def get_state(self):
        state = super().get_state()
        if self.job_id:
            state.update(
                secret_name=self.secret_name,
                node=self.node,
                run_started=self.run_started,
                submitted_at=self.submitted_at,
            )
            if self.identity is not None:
                state["identity"] = {"uid": self.identity.uid, "gid": self.identity.gid, "home": self.identity.home}
        return state

    def load_state(self, state):
        super().load_state(state)
        self.secret_name = state.get("secret_name", "")
        self.node = state.get("node", "")
        self.run_started = int(state.get("run_started", 0) or 0)
        self.submitted_at = float(state.get("submitted_at", 0) or 0)
        ident = state.get("identity")
        if ident:
            self.identity = PosixIdentity(uid=ident["uid"], gid=ident["gid"], home=ident["home"])
        if self.job_id:
            # After a hub restart: the job belongs to this server again (not an orphan), and is polled.
            self.queue.claim(self.job_id, self._log_name)
            self._port_future = None

    def clear_state(self):
        if self.job_id:
            self.queue.release(self.job_id)
        super().clear_state()
        self.secret_name = ""
        self.node = ""
        self.run_started = 0
        self.submitted_at = 0
        self._port_future = None


def _reported_port(future: asyncio.Future | None) -> int | None:
    """The port a finished port report set, or None."""
    if future is None or not future.done() or future.cancelled() or future.exception() is not None:
        return None
    return future.result()[0]
