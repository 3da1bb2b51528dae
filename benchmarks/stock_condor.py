"""Stock batchspawner CondorSpawner, adapted only as far as needed to run against the benchmark's pool.

Used by ``benchmarks/condor_spawn.py`` as the baseline; not part of condorhub. Its logic is untouched:
``condor_submit`` with the stock batch script (``GetEnv = True``), one ``condor_q <job>`` process per
server per poll (and every 0.5 s per server while starting), ``condor_rm`` to stop, the stock
``/hub/api/batchspawner`` port callback. What differs from a textbook installation:

* ``exec_prefix``: the pool's tools live in the pool's Debian root, so the commands run
  ``chroot <root> condor_...`` instead of ``sudo -E -u <user> condor_...``, authenticated with the hub's
  IDTOKEN (users may not submit in this pool) and setting the job's Owner with
  ``-a '+Owner = "<user>"'``: the job runs as the user just the same, one process per command as stock;
* every command goes through a tiny wrapper that counts it (``COUNT_FILE``), so the benchmark can report
  schedd queries per poll cycle;
* ``user_env``/``req_homedir``: stock reads the hub's passwd (``pwd.getpwnam``), which has no LDAP users
  on this machine; the home directory comes from condorhub's auth state instead.
"""

from __future__ import annotations

from batchspawner import CondorSpawner
from traitlets import Unicode, default

from condorhub.schema import HTCondorSettings, default_of


class StockCondorSpawner(CondorSpawner):
    worker_env = Unicode(str(default_of(HTCondorSettings, "server_venv")), config=True, help="The pool's single-user environment.")
    home = Unicode("")
    shell = Unicode("")

    @default("cmd")
    def _cmd(self):
        return [f"{self.worker_env}/bin/jupyterhub-singleuser"]

    @default("batchspawner_singleuser_cmd")
    def _singleuser(self):
        return f"{self.worker_env}/bin/batchspawner-singleuser"

    async def run_auth_state_hook(self, auth_state):
        state = auth_state or {}
        self.home = str(state.get("home_directory", ""))
        self.shell = str(state.get("login_shell", ""))
        return await super().run_auth_state_hook(auth_state)

    @default("req_homedir")
    def _homedir(self):
        return self.home

    def user_env(self, env):
        env["USER"] = self.user.name
        if self.home:
            env["HOME"] = self.home
        if self.shell:
            env["SHELL"] = self.shell
        return env

    async def submit_batch_script(self):
        self.req_homedir = self.home  # resolved after the auth state hook ran
        return await super().submit_batch_script()


def stock_args(root: str, token_dir: str, count_file: str, worker_env: str, poll_interval: int) -> list[str]:
    """JupyterHub command-line settings that make the hub use StockCondorSpawner on the pool in ``root``
    (``token_dir``: a folder inside the root holding the hub's IDTOKEN)."""
    counted = f"/bin/sh -c 'echo $0 >> {count_file}; exec \"$@\"'"
    chroot = (
        # -u CONDOR_CONFIG: the hub's own (host) setting means nothing inside the root.
        f"/usr/sbin/chroot {root} /usr/bin/env -u CONDOR_CONFIG _CONDOR_SEC_TOKEN_DIRECTORY={token_dir} "
        "_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS=IDTOKENS"
    )
    return [
        "--JupyterHub.spawner_class=stock_condor.StockCondorSpawner",
        f"--Spawner.poll_interval={poll_interval}",
        "--StockCondorSpawner.exec_prefix=",
        f"--StockCondorSpawner.batch_submit_cmd={counted} submit {chroot} condor_submit -a '+Owner = \"{{username}}\"'",
        # Stock's query, verbatim (its "\n" is a real line break inside the quotes).
        f"--StockCondorSpawner.batch_query_cmd={counted} query {chroot} "
        + 'condor_q {job_id} -format "%s, " JobStatus -format "%s" RemoteHost -format "\n" True',
        "--StockCondorSpawner.startup_poll_interval=0.5",
        f"--StockCondorSpawner.batch_cancel_cmd={counted} cancel {chroot} condor_rm {{job_id}}",
        f"--StockCondorSpawner.worker_env={worker_env}",
        "--StockCondorSpawner.req_nprocs=1",
        "--StockCondorSpawner.req_memory=512",
        "--StockCondorSpawner.start_timeout=300",
        "--StockCondorSpawner.http_timeout=120",
    ]
