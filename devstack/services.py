"""Start the daemons of a root the roles deployed with ``condorhub_service_manager: none``.

Without an init system the roles render each service as ``/etc/condorhub/services.d/<order>-<name>``: a
script that runs the daemon in the foreground, exactly as its systemd unit would, with a comment saying
how to tell that it is up (``# condorhub-ready: file:<path> | tcp:<host>:<port> | url:<url>``). This is
the init system for such a root: start the scripts in order, each once the one before is ready.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack.logfile import open_log
from devstack.node_root import chroot_env

__all__ = ["Service", "ServiceError", "rendered_services", "start_services"]

SERVICES_DIR = "etc/condorhub/services.d"


class ServiceError(RuntimeError):
    """A rendered service did not come up; the message has the end of its output."""


@dataclass
class Service:
    script: Path  # path inside the root
    ready: str
    proc: subprocess.Popen | None = None
    log: Path | None = None


def rendered_services(root: Path) -> list[Service]:
    """The start scripts the roles rendered into ``root``, in their order."""
    services = []
    folder = root / SERVICES_DIR
    for script in sorted(folder.iterdir()) if folder.is_dir() else []:
        ready = re.search(r"^# condorhub-ready: (\S+)$", script.read_text(), re.M)
        if not ready:
            raise ServiceError(f"{script} does not say how to tell that it is up (# condorhub-ready: ...)")
        services.append(Service(Path("/") / script.relative_to(root), ready.group(1)))
    return services


def is_ready(root: Path, ready: str) -> bool:
    kind, _, what = ready.partition(":")
    if kind == "file":
        return (root / what.lstrip("/")).exists()
    if kind == "url":
        import requests
        import urllib3

        # Only "is it up": whoever uses the service checks its certificate.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            try:
                return requests.get(what, timeout=5, verify=False).status_code == 200
            except requests.RequestException:
                return False
    host, _, port = what.rpartition(":")
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def start_services(root: Path, log_dir: Path, *, timeout: float = 90,
                   log: Callable[[str], None] | None = None) -> list[Service]:
    """Start every rendered service of ``root`` in order, each once the one before is up.

    The daemons run in their own sessions (they outlive the caller, as under an init system); each one's
    output goes to ``log_dir/<script>.log`` (mode 0640, see :mod:`.logfile`). A service that exits or is
    not ready within ``timeout`` seconds stops the start with :class:`ServiceError` (the caller tears the
    root down).
    """
    services = rendered_services(root)
    log_dir.mkdir(parents=True, exist_ok=True)
    for svc in services:
        t0 = time.monotonic()
        svc.log = log_dir / f"{svc.script.name}.log"
        with open_log(svc.log, append=False) as out:  # 0640: the hub's output names users
            svc.proc = subprocess.Popen(["chroot", str(root), str(svc.script)], env=chroot_env(),
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        while not is_ready(root, svc.ready):
            if svc.proc.poll() is not None or time.monotonic() - t0 > timeout:
                raise ServiceError(f"{svc.script} did not come up ({svc.ready}); exit {svc.proc.poll()}:\n"
                                   f"{svc.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        if log:
            log(f"  {svc.script.name}: up in {time.monotonic() - t0:.1f}s ({svc.ready})")
    return services
