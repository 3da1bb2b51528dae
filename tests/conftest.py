"""The suite's shared fixtures, registered once here as plugins (the modules live in tests/support/)."""

pytest_plugins = [
    "tests.support.ldap",  # slapd with the demo directory, ldap_home_base, make_authenticator
    "tests.support.condor",  # condor_pool: the real HTCondor pool (devstack.pool)
    "tests.support.user_tokens",  # user_condor_client: a pool user's own IDTOKEN and CONDOR_CONFIG
    "tests.support.jobs_lab",  # jobs_lab: a user's real Lab server with their HTCondor env (Jobs API)
    "tests.support.ansible",  # ansible_base_root: the bare Debian 13 root the ansible tests deploy into
    "tests.support.im",  # im: a real Infrastructure Manager on loopback
    "tests.support.data",  # condorhub.data: real ROOT files (data_dir, mix_files, ...), a real XRootD server
    "tests.support.jupyter",  # a real jupyter-server with condorhub.lab (jp_serverapp, api, run, ...)
]
