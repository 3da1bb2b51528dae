"""Runs TensorBoard as a child that dies with its Jupyter server.

    python -m condorhub.lab.tensorboard.child --parent PID -- <tensorboard arguments>

A graceful server stop terminates its TensorBoards (CondorhubLab.stop_extension), but a killed server
(OOM killer, SIGKILL from the hub, an HTCondor job evicted) runs no Python at all. PR_SET_PDEATHSIG asks
the kernel to send us SIGTERM when the process that started us dies, so no TensorBoard is left behind
holding a port and memory. TensorBoard runs in this process (not exec'd) so the setting stays in force;
its fast data server (a Rust helper) exits by itself when TensorBoard goes (--die-after-stdin).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    # The parent may have died between fork and prctl; then nobody would ever signal us.
    if os.getppid() != parent:
        sys.exit(f"the Jupyter server (pid {parent}) is gone; not starting TensorBoard")


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[0] != "--parent" or argv[2] != "--":
        sys.exit("usage: python -m condorhub.lab.tensorboard.child --parent PID -- <tensorboard arguments>")
    die_with_parent(int(argv[1]))
    # SIGTERM's default action ends the process at once, which is what stop wants; TensorBoard's own
    # handler would first log a traceback.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from tensorboard import main as tensorboard_main

    sys.argv = ["tensorboard", *argv[3:]]
    tensorboard_main.run_main()


if __name__ == "__main__":
    main(sys.argv[1:])
