"""A real Infrastructure Manager (grycap/im, the TOSCA deployer of INDIGO-DataCloud and INFN Cloud) on loopback.

``im`` (session scope) starts IM 2.0.0 from its own venv ($CONDORHUB_PREFIX/im-venv, made by setup.sh's
``install_im``: IM pins its own ansible and tosca-parser) with a throw-away configuration: REST API on a free
loopback port, no SSL, a SQLite data file in a temporary folder. VMs come from IM's ``Dummy`` cloud connector
(auth line ``type = Dummy``), which "launches" running VMs with the private address 10.0.0.1 and no public
one, as IM's own tests do. IM still starts contextualizing them (it waits for SSH to a master VM that does
not exist); the configuration makes that give up within seconds (WAIT_SSH_ACCCESS_TIMEOUT,
WAIT_PUBLIC_IP_TIMEOUT, MAX_CONTEXTUALIZATION_TIME) and the VMs then read ``unconfigured``.

The IM downloads each node type's playbook when it turns a template into RADL; an HTTP server on loopback
serves this checkout for that (the ``--artifacts-url`` of ``condorhub-deploy tosca bundle``) and records
what was fetched.
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from .ports import free_port

REPO = Path(__file__).resolve().parents[2]
IM_VENV = Path(os.environ.get("CONDORHUB_PREFIX", "/opt/condorhub")) / "im-venv"
IM_VERSION = "2.0.0"
# An IM user (any name and password: no USER_DB) and the Dummy cloud, as im_client's auth file writes them.
AUTH_LINES = ["id = im; type = InfrastructureManager; username = condorhub-ops; password = not-a-secret",
              "id = dummy; type = Dummy"]

# IM reads its configuration only from fixed places (/etc/im/im.cfg, ...); this loads ours into IM's Config
# with IM's own parser before the service module (which reads Config at import) is imported.
LAUNCHER = """
import configparser, sys
from IM.config import Config, parse_options
cfg = configparser.ConfigParser()
cfg.read(sys.argv[1])
parse_options(cfg, "im", Config)
from IM.im_service import main
sys.argv = sys.argv[:1]
main()
"""


@dataclass
class IMServer:
    url: str
    artifacts_url: str
    workdir: Path
    fetched: list[str] = field(default_factory=list)
    started_in: float = 0.0
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self):
        # The REST API's Authorization header: the auth file's lines joined by a literal "\n".
        self.session.headers["Authorization"] = "\\n".join(AUTH_LINES)

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, f"{self.url}{path}", **kwargs)

    def log(self) -> str:
        return (self.workdir / "im.log").read_text(errors="replace")

    def im_client(self, *args: str) -> subprocess.CompletedProcess:
        """``im_client -r URL -a AUTH_FILE args...`` (IM-client from the same venv), as an operator runs it."""
        auth = self.workdir / "auth.dat"
        auth.write_text("\n".join(AUTH_LINES) + "\n")
        return subprocess.run([str(IM_VENV / "bin" / "im_client"), "-r", self.url, "-a", str(auth), *args],
                              capture_output=True, text=True, timeout=120, cwd=self.workdir)


def _artifacts_server(fetched: list[str]) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(REPO), **kwargs)

        def do_GET(self):
            fetched.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, name="im-artifacts", daemon=True).start()
    return server


@pytest.fixture(scope="session")
def im(tmp_path_factory):
    python = IM_VENV / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import IM, imclient; print(IM.__version__)"],
                           capture_output=True, text=True) if python.exists() else None
    if probe is None or probe.returncode != 0 or probe.stdout.strip() != IM_VERSION:
        pytest.fail(f"the Infrastructure Manager {IM_VERSION} is not installed in {IM_VENV} "
                    f"({'no venv' if probe is None else (probe.stderr.strip() or probe.stdout.strip())[-300:]}): "
                    "run `./setup.sh test` (its step 'Infrastructure Manager', function install_im)")
    workdir = tmp_path_factory.mktemp("im")
    port = free_port()
    (workdir / "im.cfg").write_text(f"""[im]
REST_ADDRESS = 127.0.0.1
REST_PORT = {port}
REST_SSL = False
DATA_DB = sqlite://{workdir}/inf.dat
LOG_FILE = {workdir}/im.log
LOG_LEVEL = INFO
WAIT_SSH_ACCCESS_TIMEOUT = 5
WAIT_PUBLIC_IP_TIMEOUT = 5
MAX_CONTEXTUALIZATION_TIME = 20
""")
    fetched: list[str] = []
    artifacts = _artifacts_server(fetched)
    out = open(workdir / "im.out", "w")
    # Its own session: teardown signals the whole group. cwd and TMPDIR: IM's TOSCA download cache
    # (tosca_cache.sqlite) and its contextualization scratch folders stay in the temporary folder.
    proc = subprocess.Popen([str(python), "-c", LAUNCHER, str(workdir / "im.cfg")], cwd=workdir,
                            env={"PATH": f"{IM_VENV}/bin:/usr/bin:/bin", "HOME": str(workdir),
                                 "TMPDIR": str(workdir), "LANG": "C.UTF-8"},
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = IMServer(url=f"http://127.0.0.1:{port}", workdir=workdir, fetched=fetched,
                      artifacts_url=f"http://127.0.0.1:{artifacts.server_address[1]}")
    try:
        start = time.monotonic()
        deadline = start + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the IM exited ({proc.returncode}): {(workdir / 'im.out').read_text()[-3000:]}")
            try:
                if requests.get(f"{server.url}/version", timeout=2).text.strip() == IM_VERSION:
                    server.started_in = time.monotonic() - start
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the IM did not answer on {server.url} in 60 s: {(workdir / 'im.out').read_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        # SIGTERM: IM stops its REST server, saves its data and kills its own children (im_service.im_stop).
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything the IM left in its group
        except ProcessLookupError:
            pass
        out.close()
        artifacts.shutdown()
        artifacts.server_close()
