"""TensorBoard for %tensorboard in a notebook (TENSORBOARD_BINARY; the launcher in private.py runs this).

    python -m condorhub.lab.tensorboard.magic <tensorboard arguments>

tensorboard.manager.start runs TENSORBOARD_BINARY with the magic's arguments and waits for an info file
with the new process's pid; the notebook then shows TENSORBOARD_PROXY_URL with %PORT% replaced by the
info file's port. Here TensorBoard listens on ``port-<n>.sock`` in the server's private socket folder
instead of a TCP port, and its info file names n as the port: the notebook's frame then loads
``{base_url}condorhub/tensorboard-port/<n>/``, which the Jupyter server proxies to that socket behind the
user's login. --host, --port and --bind_all are ignored (a TCP port would be open to every user here).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import sys
from pathlib import Path

from .netns import enter
from .private import ENV_DIR, NotPrivate, check_private_dir
from .serve import bind_unix, serve


def bind_numbered(sockets: Path, attempts: int = 50):
    """(socket, n) for a free ``port-<n>.sock``; n in the range of TCP ports, as the info file wants."""
    for _ in range(attempts):
        n = 1024 + secrets.randbelow(65536 - 1024)
        try:
            return bind_unix(sockets / f"port-{n}.sock"), n
        except FileExistsError:
            continue
    raise SystemExit(f"no free TensorBoard socket name in {sockets} after {attempts} tries; stop some TensorBoards")


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def main(argv: list[str]) -> None:
    where = os.environ.get(ENV_DIR)
    if not where:
        sys.exit(f"{ENV_DIR} is not set: run %tensorboard in a kernel of a Jupyter server with condorhub's extension")
    sockets = Path(where) / "sockets"
    try:
        check_private_dir(sockets)
    except NotPrivate as err:
        sys.exit(f"refusing to start TensorBoard: {err}")
    # A network of its own for TensorBoard's fast data server (netns.py), unless a log folder is remote
    # (gs://, s3://: that needs the real network).
    why_not = "a remote log folder" if any("://" in arg for arg in argv) else enter()
    if why_not:
        print(f"condorhub: no private network ({why_not}); TensorBoard reads the logs without its fast data server",
              file=sys.stderr, flush=True)  # fmt: skip
    sock, n = bind_numbered(sockets)
    path = sock.getsockname()
    # TensorBoard stopped by SIGTERM or at its end runs atexit; the Jupyter server's proxy answers 502 for
    # a socket left behind by a killed one.
    atexit.register(_unlink, path)
    serve(sock, argv, display_port=n, private_network=why_not is None)


if __name__ == "__main__":
    main(sys.argv[1:])
