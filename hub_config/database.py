"""The hub's SQLite database: a write-ahead log, and no fsync at every commit.

JupyterHub commits to its database on the event loop, several times per login and per spawn (the user, their
tokens, the OAuth client, the server's state, activity). In SQLite's defaults (rollback journal,
``synchronous=FULL``) every commit fsyncs the journal and the database file, and the whole hub waits for the
disk meanwhile: in benchmarks/class_scale.py's py-spy profile of a class logging in and starting servers,
SQLAlchemy's ``do_commit`` was 44 % of all the hub's busy samples (docs/benchmarks.md).

In WAL mode with ``synchronous=NORMAL`` a commit appends to the ``-wal`` file without an fsync; SQLite syncs
at checkpoints. A crash of the hub process loses nothing; a power cut of the hub machine may lose the last
commits (an activity timestamp, a token issued the same second: the user logs in again), and never leaves
the database corrupt (https://www.sqlite.org/wal.html). The ``-wal`` and ``-shm`` files sit beside the
database in the root-only state directory, which must be on a local disk (WAL needs shared memory; the hub's
state never is on NFS).
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine

__all__ = ["tune_sqlite"]


def _on_connect(dbapi_connection, connection_record) -> None:
    # Every engine of the process passes here (the hub's, and alembic's at an upgrade): only SQLite's.
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    try:
        # journal_mode is stored in the file (the first connection converts it); synchronous is per connection.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def tune_sqlite() -> None:
    """Have every new SQLite connection of this process use WAL and ``synchronous=NORMAL`` (idempotent)."""
    if not event.contains(Engine, "connect", _on_connect):
        event.listen(Engine, "connect", _on_connect)
