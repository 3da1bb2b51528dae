"""The hub's state disk guard (condorhub.state_disk, used by the authenticator before logins and spawns):
which database it watches, and the message a user gets when the disk is short. The real full disk is
tests/test_hub_faults.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from traitlets import Unicode
from traitlets.config import Configurable

from condorhub import state_disk
from condorhub.auth import CondorhubLDAPAuthenticator


def test_the_state_dir_is_the_folder_of_the_hubs_sqlite_database():
    assert state_disk.state_dir_of("sqlite:////var/lib/condorhub/jupyterhub.sqlite") == Path("/var/lib/condorhub")
    assert state_disk.state_dir_of("sqlite:///jupyterhub.sqlite?timeout=5") == Path(".")
    # Another database lives on another machine's disk: nothing to watch here.
    assert state_disk.state_dir_of("postgresql://hub@db/jupyterhub") is None
    assert state_disk.state_dir_of("sqlite:///:memory:") is None


def test_a_short_disk_is_refused_with_what_is_free_and_what_the_hub_needs(tmp_path):
    free = state_disk.free_bytes(tmp_path)
    state_disk.check(tmp_path, free // 2)  # enough: no error
    with pytest.raises(state_disk.StateDiskFull) as refused:
        state_disk.check(tmp_path, free + 2**40)
    message = refused.value.jupyterhub_message
    assert message.startswith(f"The hub's state disk ({tmp_path}) is full (")
    assert "new logins and servers are refused until an administrator frees space" in message
    assert "Running servers are not affected." in message


def test_the_check_can_be_turned_off_and_never_fails_on_a_missing_folder(tmp_path):
    state_disk.check(tmp_path, 0)
    state_disk.check(tmp_path / "gone", 2**60)
    state_disk.check(None, 2**60)


def test_the_authenticator_watches_the_database_its_hub_uses(tmp_path):
    class App(Configurable):  # what JupyterHub is to its authenticator: the parent, with its db_url
        db_url = Unicode(f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}")

    auth = CondorhubLDAPAuthenticator(server_address="ldap.example.org", parent=App())
    auth.state_min_free = state_disk.free_bytes(tmp_path) + 2**40
    with pytest.raises(state_disk.StateDiskFull):
        auth.check_state_disk()
    auth.state_min_free = 0
    auth.check_state_disk()
    assert os.path.samefile(auth._state_dir(), tmp_path)
