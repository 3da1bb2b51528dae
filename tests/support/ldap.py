"""Fixtures ``ldap_home_base``, ``slapd`` and ``make_authenticator``: a real OpenLDAP (slapd) seeded with the
demo directory, and authenticators for it. Registered as a plugin by tests/conftest.py; tests that need
the helpers themselves import :func:`start_seeded_slapd` and :func:`make_authenticator` from here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from condorhub.auth import CondorhubLDAPAuthenticator
from devstack.directory import DEMO_USERS, GROUP_ROLES, directory_ldif
from devstack.slapd import OpenLDAPServer

from .scratch import scratch_dir

#: The demo's group → role mapping, as the hub configuration uses it.
DEMO_GROUP_ROLES = GROUP_ROLES


def start_seeded_slapd(base_dir: Path, home_base: Path, **kwargs) -> OpenLDAPServer:
    """Start a slapd in ``base_dir`` holding the demo directory, homes under ``home_base``."""
    server = OpenLDAPServer(base_dir, **kwargs).start()
    server.add_ldif(directory_ldif(server.suffix, DEMO_USERS, home_base=str(home_base)))
    return server


@pytest.fixture(scope="session")
def ldap_home_base():
    """The folder the demo users' homeDirectory values point into (world-traversable, not created per user)."""
    root = scratch_dir("condorhub-test-")
    home = root / "home"
    home.mkdir(mode=0o755)
    _HOME_BASES.append(home)
    yield home
    _HOME_BASES.remove(home)
    shutil.rmtree(root, ignore_errors=True)


_HOME_BASES: list[Path] = []


@pytest.fixture(autouse=True, scope="module")
def no_course_clone_outlives_its_module():
    """The session's homes are shared by every module, and several modules publish a course of the same slug
    (dl-intro), each from its own repository: a student's ~/courses/dl-intro left by one module points at a
    repository gone with it, and the next module's pull into it fails its `git fetch`."""
    yield
    for base in _HOME_BASES:
        for courses in base.glob("*/courses"):
            if courses.is_dir() and not courses.is_symlink():
                shutil.rmtree(courses, ignore_errors=True)


@pytest.fixture(scope="session")
def slapd(ldap_home_base):
    """A running OpenLDAP seeded with the demo directory (alice, bob, carol, dave), for the whole session."""
    base = scratch_dir("condorhub-slapd-")
    server = start_seeded_slapd(base, ldap_home_base)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def make_authenticator(slapd: OpenLDAPServer, **overrides) -> CondorhubLDAPAuthenticator:
    """A CondorhubLDAPAuthenticator for ``slapd`` with the demo's group roles; ``overrides`` set traits.

    The test servers speak plain LDAP, hence tls_strategy="insecure" unless overridden.
    """
    settings = {
        "server_address": "127.0.0.1",
        "server_port": slapd.port,
        "tls_strategy": "insecure",
        "bind_dn_template": [f"uid={{username}},ou=people,{slapd.suffix}"],
        "group_roles": DEMO_GROUP_ROLES,
        "connect_timeout": 2,
        "receive_timeout": 2,
    }
    settings.update(overrides)
    return CondorhubLDAPAuthenticator(**settings)


@pytest.fixture(name="make_authenticator")
def make_authenticator_fixture():
    """The :func:`make_authenticator` helper, for tests that prefer a fixture to an import."""
    return make_authenticator
