"""The hub's SQLite database in WAL mode without an fsync per commit (condorhub.database): JupyterHub commits on
the event loop, and with SQLite's defaults every login and spawn waited for the disk several times
(benchmarks/class_scale.py, docs/benchmarks.md). Pure logic: a database file in a temporary folder, opened the way
JupyterHub opens its own (jupyterhub.orm.new_session_factory)."""

from __future__ import annotations

import sqlite3

from jupyterhub import orm
from sqlalchemy import text

from condorhub.database import tune_sqlite


def _hub_db(path):
    return orm.new_session_factory(f"sqlite:///{path}")()


def test_the_hubs_database_uses_wal_and_no_fsync_per_commit(tmp_path):
    tune_sqlite()
    tune_sqlite()  # apply_site may run more than once in a process: one listener
    db = _hub_db(tmp_path / "jupyterhub.sqlite")
    assert db.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    # 1 = NORMAL: the WAL is synced at checkpoints, not at each commit (2 = FULL, SQLite's default)
    assert db.execute(text("PRAGMA synchronous")).scalar() == 1
    db.close()


def test_committed_hub_state_is_there_for_the_next_hub(tmp_path):
    """What a restarted hub reads (users, their servers) is what the last one committed, WAL or not."""
    tune_sqlite()
    path = tmp_path / "jupyterhub.sqlite"
    db = _hub_db(path)
    db.add(orm.User(name="alice"))
    db.commit()
    db.close()
    # another process, with plain sqlite3 (no listener): the commit is in the WAL, readers see it
    with sqlite3.connect(path) as plain:
        assert plain.execute("SELECT name FROM users").fetchall() == [("alice",)]
    assert (tmp_path / "jupyterhub.sqlite-wal").exists()
