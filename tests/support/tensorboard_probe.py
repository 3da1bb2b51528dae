"""What a local user can see and reach of a TensorBoard: its TCP listeners (from /proc/net/tcp, which every
user can read) and plain HTTP over TCP or a Unix socket. Also run as a script by another Unix user:

    python tensorboard_probe.py tcp-of-uid UID PATH      GET PATH on every TCP port UID listens on
    python tensorboard_probe.py tcp PORT PATH            GET PATH on 127.0.0.1:PORT
    python tensorboard_probe.py unix SOCKET PATH         GET PATH over the Unix socket

printing one JSON line: what answered, what refused and why.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
from pathlib import Path

_LISTEN = "0A"


def _tcp_table(netns_of: int | str = "self"):
    """(port, uid, inode) of every listening TCP socket in the network namespace of the process
    ``netns_of`` (default: this one's, i.e. what this process can connect to)."""
    for name in (f"/proc/{netns_of}/net/tcp", f"/proc/{netns_of}/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == _LISTEN:
                yield int(f[1].rsplit(":", 1)[1], 16), int(f[7]), int(f[9])


def tcp_listen_ports(pid: int, netns_of: int | str = "self") -> set[int]:
    """TCP ports the process ``pid`` (or a child of it) listens on in the network namespace of the process
    ``netns_of`` (default: this one's: ports this process could connect to)."""
    inodes = set()
    for p in [pid, *_descendants(pid)]:
        try:
            for fd in Path(f"/proc/{p}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
        except OSError:
            continue
    return {port for port, _, inode in _tcp_table(netns_of) if inode in inodes}


def _descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tcp_ports_of_uid(uid: int) -> set[int]:
    return {port for port, owner, _ in _tcp_table() if owner == uid}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, str]:
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def unix_get(sock: str | Path, path: str, timeout: float = 5) -> tuple[int, str]:
    return _get(_UnixConnection(str(sock), timeout), path)


def tcp_get(port: int, path: str, timeout: float = 5) -> tuple[int, str]:
    return _get(http.client.HTTPConnection("127.0.0.1", port, timeout=timeout), path)


def main(argv: list[str]) -> None:
    what, target, path = argv
    results = {}
    if what in ("tcp-of-uid", "tcp"):
        for port in sorted(tcp_ports_of_uid(int(target))) if what == "tcp-of-uid" else [int(target)]:
            try:
                results[str(port)] = list(tcp_get(port, path))
            except OSError as err:
                results[str(port)] = ["error", repr(err)]
    else:
        try:
            results[target] = list(unix_get(target, path))
        except OSError as err:
            results[target] = ["error", repr(err)]
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
