"""The jupyter-server extension: condorhub's REST API and TensorBoard proxy inside each user's server.

An ExtensionApp (not a bare load function) because it needs a shutdown hook: stopping the Lab server must
stop the TensorBoard processes it started. Settings are traitlets, e.g. in jupyter_server_config.py:
``c.CondorhubLab.max_files = 200_000``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Int, Unicode, default

from .scan.handlers import handlers as scan_handlers
from .scan.store import PatternStore


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
    patterns_file = Unicode(config=True, help="JSON file of the scan patterns the user saved, per folder.")

    @default("patterns_file")
    def _default_patterns_file(self):
        return str(Path(jupyter_data_dir()) / "condorhub" / "scan-patterns.json")

    def initialize_settings(self):
        # Two threads: one scan per click is the normal use; more would only compete for the same disk.
        self.scan_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="condorhub-scan")
        self.pattern_store = PatternStore(self.patterns_file)

    def initialize_handlers(self):
        self.handlers.extend(scan_handlers())

    async def stop_extension(self):
        self.scan_pool.shutdown(wait=False, cancel_futures=True)
