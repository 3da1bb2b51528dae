"""The one way the tests pick a TCP port: ask the kernel for a free loopback port."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port nothing listened on a moment ago; nothing listens on it once this returns, so it
    also serves as a port that refuses connections. (Another process may take it meanwhile: callers bind
    it soon.)"""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
