"""Helpers and fixtures the tests share (imported as ``tests.support.*``; the checkout is on the path
through pytest's ``pythonpath``). The fixture modules (ldap, condor, ansible, im, jupyter, data) are
registered once, as plugins, by ``pytest_plugins`` in tests/conftest.py; the other modules are plain
helpers that tests import by name. The dev machinery they drive (slapd, the HTCondor pool, node roots)
lives in devstack/ at the checkout's top."""
