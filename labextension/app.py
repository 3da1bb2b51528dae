"""The jupyter-server extension: condorhub's REST API and TensorBoard proxy inside each user's server.

An ExtensionApp (not a bare load function) because it needs a shutdown hook: stopping the Lab server must
stop the TensorBoard processes it started. Settings are traitlets, e.g. in jupyter_server_config.py:
``c.CondorhubLab.max_files = 200_000``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir, jupyter_runtime_dir
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Float, Int, Unicode, default

from .jobs.handlers import handlers as jobs_handlers
from .jobs.service import JobsService
from .scan.files import ScanFileHandler
from .scan.handlers import handlers as scan_handlers
from .scan.store import PatternStore
from .tensorboard.handlers import handlers as tensorboard_handlers
from .tensorboard.manager import TensorBoardManager
from .tensorboard.private import ENV_DIR, PrivateDir
from .terminal import use_server_environment


class CondorhubLab(ExtensionApp):
    name = "condorhub_lab"
    # Loaded inside the Lab's server, never run as its own application.
    load_other_extensions = True

    max_files = Int(
        100_000,
        config=True,
        help="Most files one scan walks; beyond it the answer says the list is cut and suggests a sub-folder.",
    )
    max_matches = Int(20_000, config=True, help="Most matching files in one answer (the client pages with offset).")
    regex_timeout = Float(
        2.0,
        config=True,
        help="Seconds all matches of one request may take; a slower (catastrophic) pattern is answered with 400.",
    )
    tensorboard_max_instances = Int(8, config=True, help="Most TensorBoards one server runs at a time.")
    tensorboard_startup_timeout = Float(
        120.0,
        config=True,
        help="Seconds TensorBoard may take to answer after its start (its import alone takes seconds on a "
        "busy login node); requests to its tab wait this long instead of failing.",
    )
    tensorboard_use_tensorflow = Bool(
        False,
        config=True,
        help="Let TensorBoard import TensorFlow where it is installed: needed only for remote log folders "
        "(gs://, s3://) and a few plugins, and costs seconds of start-up and hundreds of MB per instance.",
    )
    patterns_file = Unicode(config=True, help="JSON file of the scan patterns the user saved, per folder.")
    jobs_python = Unicode(
        "",
        config=True,
        help="Python that jobs submitted from the Lab run with (scripts, papermill for notebooks). Empty: "
        "CONDORHUB_JOB_PYTHON from the hub, else the server's own interpreter (the same environment on "
        "every node).",
    )
    jobs_history_days = Float(7.0, config=True, help="The Jobs panel lists finished jobs of this many days.")
    jobs_history_max = Int(200, config=True, help="The Jobs panel lists at most this many finished jobs.")

    @default("patterns_file")
    def _default_patterns_file(self):
        return str(Path(jupyter_data_dir()) / "condorhub" / "scan-patterns.json")

    def _link_jupyter_server_extension(self, serverapp):
        super()._link_jupyter_server_extension(serverapp)
        # Linking precedes every extension's loading: the terminals extension reads this when it loads.
        use_server_environment(serverapp)

    def initialize_settings(self):
        # Two threads: one scan per click is the normal use; more would only compete for the same disk.
        self.scan_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="condorhub-scan")
        self.pattern_store = PatternStore(self.patterns_file)
        self.private = PrivateDir.create()
        # Read before _set_environment changes TMPDIR: the hub's HTCondor settings of this server.
        self.jobs = JobsService(
            python=self.jobs_python,
            history_days=self.jobs_history_days,
            history_max=self.jobs_history_max,
            log=self.log,
        )
        self._set_environment()
        self.tensorboards = TensorBoardManager(
            private=self.private,
            max_instances=self.tensorboard_max_instances,
            startup_timeout=self.tensorboard_startup_timeout,
            log=self.log,
            use_tensorflow=self.tensorboard_use_tensorflow,
        )

    def _set_environment(self):
        """What kernels and terminals inherit from the server (they get a copy of its environment)."""
        self._saved_environ = {
            k: os.environ.get(k) for k in ("TMPDIR", ENV_DIR, "TENSORBOARD_BINARY", "TENSORBOARD_PROXY_URL")
        }
        # A private TMPDIR: tensorboard.manager keeps its info files in TMPDIR/.tensorboard-info, by default
        # the world-writable /tmp/.tensorboard-info, where another user can plant an entry that makes
        # %tensorboard "reuse" a server of theirs. Also keeps the kernels' temporary files private.
        os.environ["TMPDIR"] = str(self.private.tmp)
        os.environ[ENV_DIR] = str(self.private.path)
        # %tensorboard in a notebook shows TensorBoard in an iframe at this URL (kernels inherit the
        # server's environment); without it the iframe points at localhost:<port>, which behind
        # JupyterHub is the user's own machine, not the server's.
        base_url = self.serverapp.base_url
        os.environ.setdefault("TENSORBOARD_PROXY_URL", url_path_join(base_url, "condorhub/tensorboard-port/%PORT%/"))
        # %tensorboard runs TENSORBOARD_BINARY (else `tensorboard` from PATH): ours serves on a private
        # socket that TENSORBOARD_PROXY_URL reaches (magic.py), not on a TCP port open to every user.
        launcher = self.private.write_launcher(Path(jupyter_runtime_dir()) / "condorhub")
        if launcher:
            os.environ["TENSORBOARD_BINARY"] = str(launcher)
        else:
            self.log.warning(
                "%s and the Jupyter runtime folder are on noexec file systems: %%tensorboard in notebooks falls "
                "back to `tensorboard` on a TCP port that every user of this machine can read; set TMPDIR to an "
                "exec-mounted folder",
                self.private.path,
            )
            os.environ.pop("TENSORBOARD_BINARY", None)

    def initialize_handlers(self):
        self.handlers.extend(scan_handlers())
        self.handlers.append((r"condorhub/scan/file/(.*)", ScanFileHandler, {"path": self.serverapp.root_dir}))
        self.handlers.extend(tensorboard_handlers())
        self.handlers.extend(jobs_handlers())

    async def stop_extension(self):
        # No orphans: a stopped Lab server takes its TensorBoards with it (a killed one too, see child.py).
        await self.tensorboards.stop_all()
        self.tensorboards.close()
        self.scan_pool.shutdown(wait=False, cancel_futures=True)
        self.jobs.close()
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.private.remove()
