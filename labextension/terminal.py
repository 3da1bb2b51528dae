"""A Lab terminal whose ``python``, ``pip`` and ``tensorboard`` are the server's own environment.

Under a spawner, jupyter-server starts each terminal as a login shell (``$SHELL -l``) so that /etc/profile sets
up the session; but Debian's (and most distributions') /etc/profile *replaces* PATH, so the server environment's
bin folder, first on the server's PATH (both spawners set it and VIRTUAL_ENV), is gone: ``python`` is "command
not found" and ``python3`` is the system one, without the course's packages.

So the terminal runs the login profile first (``bash -l -c``: /etc/profile, /etc/profile.d — a site's module
system — and the user's ~/.profile), then puts ``$VIRTUAL_ENV/bin`` first again and starts the interactive shell
(bash, which reads ~/.bashrc as usual; a user whose login shell is another one gets that one as a login shell,
with PATH as its own profile leaves it). A site that configures ``ServerApp.terminado_settings.shell_command``
itself keeps its own.
"""

from __future__ import annotations

SCRIPT = (
    '[ -n "$VIRTUAL_ENV" ] && PATH="$VIRTUAL_ENV/bin:$PATH" && export PATH; '
    'case "${SHELL:-/bin/bash}" in */bash|*/sh) exec /bin/bash -i;; *) exec "$SHELL" -l;; esac'
)
#: The terminals' command (jupyter-server's ``terminado_settings["shell_command"]``).
SHELL_COMMAND = ["/bin/bash", "-l", "-c", SCRIPT]


def use_server_environment(serverapp) -> None:
    """Make :data:`SHELL_COMMAND` the terminals' command unless the server's configuration names one.

    Called while extensions are linked, before any is loaded: jupyter_server_terminals reads the setting when
    it is loaded."""
    settings = dict(serverapp.terminado_settings or {})
    if "shell_command" not in settings:
        settings["shell_command"] = list(SHELL_COMMAND)
        serverapp.terminado_settings = settings
