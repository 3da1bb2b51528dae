"""Development and demo machinery, run from a condorhub checkout only (never packaged into the wheel).

A throw-away OpenLDAP with the demo directory (slapd, directory, accounts), the Debian 13 root of the
test/demo GPU node deployed by condorhub's own Ansible roles (node_root, playbook), the HTCondor pool run
in it (pool, services), and the one-machine demo (run; ``python -m devstack up|down|status``, which
``./setup.sh demo`` runs). The tests (tests/support/) and the benchmarks use it from the checkout.
"""
