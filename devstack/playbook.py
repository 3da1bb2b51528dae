"""``ansible-playbook site.yml`` as the demo, the tests' pool and the ``ansible`` tests run it.

One place for how it is called: the ``ansible-playbook`` of this Python environment (the ``ansible``
package, extra ``deploy``), condorhub's ``ansible.cfg``, a clean environment (the chroot connection passes
ansible-playbook's environment on to the commands in the root, and the host's pip settings or the
CONDOR_CONFIG of a test do not belong there), per-task durations at the end of the log
(``ansible.posix.profile_tasks``), and the recap parsed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PlaybookError", "PlaybookRun", "ansible_playbook", "run_playbook"]

RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)", re.M)


class PlaybookError(RuntimeError):
    """ansible-playbook could not be run at all (not installed, timed out)."""


@dataclass
class PlaybookRun:
    rc: int
    output: str
    seconds: float
    log: Path

    @property
    def recaps(self) -> dict[str, dict[str, int]]:
        """The PLAY RECAP's counts per host."""
        start = self.output.rfind("PLAY RECAP")
        found = {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
                 for m in RECAP.finditer(self.output, max(start, 0))} if start >= 0 else {}
        if not found:
            raise PlaybookError(f"no PLAY RECAP in the output of ansible-playbook ({self.log}):\n"
                                f"{self.output[-3000:]}")
        return found

    @property
    def recap(self) -> dict[str, int]:
        """The PLAY RECAP's counts, summed over the hosts."""
        total: dict[str, int] = {}
        for counts in self.recaps.values():
            for key, value in counts.items():
                total[key] = total.get(key, 0) + value
        return total

    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported "changed" (for a readable failure message)."""
        names, task = [], None
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                task = line[6:].split("]")[0]
            elif line.startswith("changed:") and task:
                names.append(task)
        return names

    def failure(self) -> str:
        """The failed tasks' messages (``fatal:`` lines and what follows), else the output's tail."""
        lines = self.output.splitlines()
        hits = [i for i, line in enumerate(lines) if line.startswith(("fatal:", "failed:", "ERROR!", "[ERROR]"))]
        if not hits:
            return "\n".join(lines[-40:])
        return "\n".join("\n".join(lines[max(0, i - 2):i + 12]) for i in hits[:3])


def ansible_playbook() -> Path:
    path = Path(sys.executable).parent / "ansible-playbook"
    if not path.exists():
        raise PlaybookError(f"{path} is missing: the HTCondor pool is deployed with condorhub's Ansible roles; "
                            "install condorhub with the `deploy` extra (./setup.sh does)")
    return path


def run_playbook(ansible_dir: Path, inventory: Path, log: Path, *extra: str, timeout: float = 2400,
                 progress: Callable[[str], None] | None = None, nice: bool = False,
                 playbook: str = "site.yml") -> PlaybookRun:
    """Run ``ansible-playbook -i <inventory> site.yml [extra...]`` in ``ansible_dir``; output to ``log``.

    ``progress`` gets a line per task as it starts (long applies show where they are).
    """
    workdir = log.parent
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_CONFIG": str(ansible_dir / "ansible.cfg"),
        "ANSIBLE_HOME": str(workdir / ".ansible"),
        "ANSIBLE_LOCAL_TEMP": str(workdir / ".ansible" / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
        "PYTHONUNBUFFERED": "1",
    }
    cmd: Sequence[str] = [str(ansible_playbook()), "-i", str(inventory), playbook, *extra]
    if nice:
        cmd = ["nice", "-n", "10", *cmd]
    t0 = time.monotonic()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ansible_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace")
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            for line in proc.stdout:
                out.write(line)
                if progress and line.startswith("TASK ["):
                    progress(line[6:].split("]")[0])
            rc = proc.wait()
        finally:
            timer.cancel()
    if time.monotonic() - t0 >= timeout:
        raise PlaybookError(f"ansible-playbook timed out after {timeout:.0f}s (log {log})")
    return PlaybookRun(rc, log.read_text(errors="replace"), time.monotonic() - t0, log)
