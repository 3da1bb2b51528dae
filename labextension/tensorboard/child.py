"""Runs TensorBoard as a child that dies with its Jupyter server.

    python -m condorhub.lab.tensorboard.child --parent PID --socket PATH [--without-tensorflow] [--private-network]
        -- <tensorboard arguments>

A graceful server stop terminates its TensorBoards (CondorhubLab.stop_extension), but a killed server
(OOM killer, SIGKILL from the hub, an HTCondor job evicted) runs no Python at all. PR_SET_PDEATHSIG asks
the kernel to send us SIGTERM when the process that started us dies, so no TensorBoard is left behind
holding a socket and memory. TensorBoard runs in this process (not exec'd) so the setting stays in force,
and so that it can serve on the Unix socket PATH instead of a TCP port (serve.py). --private-network: first
move into a network of its own (netns.py), where TensorBoard's fast data server may listen on loopback.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import types
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    # The parent may have died between fork and prctl; then nobody would ever signal us.
    if os.getppid() != parent:
        sys.exit(f"the Jupyter server (pid {parent}) is gone; not starting TensorBoard")


def without_tensorflow() -> None:
    """Make TensorBoard use its built-in TensorFlow stub even where TensorFlow is installed.

    TensorBoard imports TensorFlow when it can (seconds of start-up and hundreds of MB per instance on a
    shared login node) only to read remote file systems (gs://, s3://) and for a few plugins. The
    marker module tensorboard.compat.notf is TensorBoard's own switch for this (its "no_tensorflow"
    build); it must exist before TensorBoard first asks.
    """
    sys.modules["tensorboard.compat.notf"] = types.ModuleType("tensorboard.compat.notf")


def main(argv: list[str]) -> None:
    usage = (
        "usage: python -m condorhub.lab.tensorboard.child --parent PID --socket PATH [--without-tensorflow]"
        " [--private-network] -- <tensorboard arguments>"
    )
    if len(argv) < 5 or argv[0] != "--parent" or argv[2] != "--socket" or "--" not in argv:
        sys.exit(usage)
    split = argv.index("--")
    options, tensorboard_args = argv[4:split], argv[split + 1 :]
    if set(options) - {"--without-tensorflow", "--private-network"}:
        sys.exit(usage)
    die_with_parent(int(argv[1]))
    private_network = False
    if "--private-network" in options:
        from .netns import enter

        # Now, while this process has one thread (unshare refuses more); TensorBoard's imports start some.
        why_not = enter()
        private_network = why_not is None
        if why_not:
            print(f"condorhub: no private network ({why_not}); TensorBoard reads the logs without its fast data server",
                  file=sys.stderr, flush=True)  # fmt: skip
    from .private import check_private_dir
    from .serve import bind_unix, serve

    socket_path = Path(argv[3])
    check_private_dir(socket_path.parent)  # never listen where another user could connect or plant
    sock = bind_unix(socket_path)
    # SIGTERM's default action ends the process at once, which is what stop wants; TensorBoard's own
    # handler would first log a traceback.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if "--without-tensorflow" in options:
        without_tensorflow()
    serve(sock, tensorboard_args, private_network=private_network)


if __name__ == "__main__":
    main(sys.argv[1:])
