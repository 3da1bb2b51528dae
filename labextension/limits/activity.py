"""A busy kernel is activity: the idle culler must never stop a server whose kernel runs a long cell.

jupyter-server's ``last_activity`` (what jupyterhub-singleuser reports to the hub, and the idle culler judges
by) counts kernel *messages*; a cell that trains for an hour without printing sends none after its start.
jupyter-server also takes any ``*_last_activity`` entry of its settings into account, so this marks
``condorhub_busy_kernels_last_activity`` with the current time whenever a kernel is busy, looking every few
seconds (a fraction of the activity report interval, which the hub sets from the shortest idle timeout).
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_server._tz import utcnow
from tornado.ioloop import PeriodicCallback

SETTING = "condorhub_busy_kernels_last_activity"


def check_interval(environ=os.environ) -> float:
    """Half the server's activity report interval (JUPYTERHUB_ACTIVITY_INTERVAL, 300 s by default), 1–30 s."""
    try:
        report = float(environ.get("JUPYTERHUB_ACTIVITY_INTERVAL") or 300)
    except ValueError:
        report = 300
    return min(max(report / 2, 1.0), 30.0)


def busy_kernels(kernel_manager: Any) -> list[str]:
    """Ids of the kernels whose last status was busy (jupyter-server tracks it from their iopub messages)."""
    busy = []
    for kernel_id in list(kernel_manager.list_kernel_ids()):
        try:
            kernel = kernel_manager.get_kernel(kernel_id)
        except KeyError:  # shut down meanwhile
            continue
        if getattr(kernel, "execution_state", None) == "busy":
            busy.append(kernel_id)
    return busy


class BusyKernelActivity:
    def __init__(self, kernel_manager: Any, settings: dict, log: Any, interval: float | None = None):
        self.kernel_manager = kernel_manager
        self.settings = settings
        self.log = log
        self.interval = interval or check_interval()
        self._callback: PeriodicCallback | None = None

    def check(self) -> None:
        busy = busy_kernels(self.kernel_manager)
        if busy:
            self.settings[SETTING] = utcnow()
            self.log.debug("condorhub: kernel(s) %s busy: the server counts as active", ", ".join(busy))

    def start(self) -> None:
        self._callback = PeriodicCallback(self.check, self.interval * 1000)
        self._callback.start()
