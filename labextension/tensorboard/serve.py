"""TensorBoard in this process, serving on a Unix socket instead of a TCP port.

A TCP port on 127.0.0.1 is open to every user of the machine: on a shared login or GPU node anyone could
read anyone's runs (TensorBoard has no authentication). A Unix socket in the server's 0700 private
directory (private.py) can be connected to only by the user; the Jupyter server's proxy (proxy.py) is the
one way in, behind the user's login.

TensorBoard cannot listen on a Unix socket by itself, but ``tensorboard.program.TensorBoard`` takes a
``server_class``; werkzeug's WSGI server (the one TensorBoard uses) serves an already bound AF_UNIX
socket. Its fast data server (rustboard, ``--load_fast``) listens on a loopback TCP port of its own
without any authentication, with no option for a Unix socket: it runs only where the process has a
private network (netns.py); elsewhere it is switched off and TensorBoard reads the event files itself
(slower on large log folders, the same data).
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

#: Flags that would put TensorBoard back on the network or start rustboard; serve() overrides them.
_NETWORK_FLAGS = ("--host", "--port", "--bind_all", "--reuse_port", "--load_fast", "--grpc_data_provider")


def bind_unix(path: Path) -> socket.socket:
    """A listening socket at ``path``, mode 0600. FileExistsError if something is there already: an
    existing socket is never replaced (it may be another live TensorBoard's)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket file is made by bind(): no window with looser permissions
    try:
        sock.bind(str(path))
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise FileExistsError(errno.EEXIST, "socket exists", str(path)) from None
        raise
    finally:
        os.umask(old)
    sock.listen(128)
    return sock


def strip_network_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """(args without the flags serve() decides itself, the flags dropped)."""
    kept, dropped, skip = [], [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _NETWORK_FLAGS:
            dropped.append(arg)
            # "--port 6006" (value in the next word) vs "--port=6006" and the bare "--bind_all".
            if "=" not in arg and name != "--bind_all" and i + 1 < len(args) and not args[i + 1].startswith("--"):
                skip = True
                dropped.append(args[i + 1])
            continue
        kept.append(arg)
    return kept, dropped


def serve(
    sock: socket.socket, args: list[str], *, display_port: int | None = None, private_network: bool = False
) -> None:
    """Run TensorBoard with ``args`` on ``sock`` until it is stopped. With ``display_port`` it writes its
    info file (for %tensorboard: tensorboard.manager finds the instance by it) naming that number as its
    port; without, it writes none (the Lab's manager tracks its own instances). ``private_network``: the
    process is in a network of its own (netns.enter), where rustboard's loopback port is unreachable."""
    from absl import app
    from tensorboard import default, main_lib, manager, program
    from tensorboard.plugins import base_plugin
    from werkzeug import serving

    args_given = list(args)
    kept, dropped = strip_network_flags(args)
    if dropped:
        print(
            "condorhub: TensorBoard serves on a private socket behind your Jupyter server; "
            f"ignoring {' '.join(dropped)}",
            file=sys.stderr,
        )

    class UnixSocketServer(serving.ThreadedWSGIServer, program.TensorBoardServer):
        daemon_threads = True

        def __init__(self, wsgi_app, flags):
            self._flags = flags
            # fd: werkzeug serves the socket bound above instead of binding (and first unlinking) a path.
            super().__init__(f"unix://{sock.getsockname()}", 0, wsgi_app, program._WSGIRequestHandler, fd=sock.fileno())
            sock.close()  # werkzeug holds its own duplicate

        def get_url(self):
            return f"http://localhost:{display_port or 0}{self._flags.path_prefix.rstrip('/')}/"

        def print_serving_message(self):
            sys.stderr.write(f"TensorBoard on the Unix socket {self.server_address}\n")
            sys.stderr.flush()

    class SocketTensorBoard(program.TensorBoard):
        def configure(self, *args, **kwargs):
            result = super().configure(*args, **kwargs)
            # tensorboard.manager.start finds the new instance by the cache key of the arguments it was
            # given, before the network flags were taken out.
            self.cache_key = manager.cache_key(working_directory=os.getcwd(), arguments=args_given, configure_kwargs={})
            return result

        def _register_info(self, server):
            if display_port is not None:
                super()._register_info(server)

    main_lib.global_init()
    tensorboard = SocketTensorBoard(plugins=default.get_plugins(), server_class=UnixSocketServer)
    sys.argv = ["tensorboard", *kept, *([] if private_network else ["--load_fast=false"])]
    try:
        app.run(tensorboard.main, flags_parser=tensorboard.configure)
    except base_plugin.FlagsError as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(1)
