"""Limits inside every user's server: the Lab's warnings before a batch server's runtime limit, and busy
kernels counted as activity for the hub's idle culler. A jupyter-server extension of its own (enabled by the
installed ``jupyter_server_config.d/condorhub-lab.json``), on the login node and in HTCondor jobs alike.

- :mod:`.deadline`  when HTCondor will end this server (from what the hub's spawner put in the environment)
                    and when to warn; ``GET {base_url}condorhub/api/limits`` for the Lab plugin
                    (labextension/src/limits/)
- :mod:`.activity`  a kernel running a long cell sends nothing, so jupyter-server would report the server
                    idle; a busy kernel is marked as activity, which jupyterhub-singleuser reports to the hub

The hub's side: the spawner's environment (condorhub.spawner.profiles.ProfileSpawner._limits_env) and the
idle culling (condorhub.culling).
"""

from __future__ import annotations

import os

from jupyter_server.utils import url_path_join

from .activity import BusyKernelActivity
from .deadline import LIMITS_PATH, Limits, LimitsHandler


def _jupyter_server_extension_points():
    return [{"module": "condorhub.lab.limits"}]


def _load_jupyter_server_extension(server_app):
    web_app = server_app.web_app
    limits = Limits.from_environment(os.environ, started=web_app.settings["started"].timestamp())
    if limits.deadline:
        server_app.log.info("condorhub: this server's runtime limit ends it at %s (epoch s)", limits.deadline)
    web_app.add_handlers(
        ".*", [(url_path_join(web_app.settings["base_url"], LIMITS_PATH), LimitsHandler, {"limits": limits})]
    )
    busy = BusyKernelActivity(server_app.kernel_manager, web_app.settings, server_app.log)
    web_app.settings["condorhub_busy_kernels"] = busy


async def _start_jupyter_server_extension(server_app):
    # Once the loop runs: look at the kernels regularly.
    busy = server_app.web_app.settings.get("condorhub_busy_kernels")
    if busy is not None:
        busy.start()
