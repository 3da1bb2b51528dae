"""Spawners: the profile chooser JupyterHub uses, and one spawner per profile kind.

Imports are lazy (PEP 562): ``condorhub.spawner.condor.launcher`` runs on execute nodes and must not
pay for importing JupyterHub through this package.
"""

from importlib import import_module

__all__ = ["HTCondorSpawner", "LoginNodeSpawner", "ProfileSpawner"]

_WHERE = {
    "HTCondorSpawner": ".condor.spawner",
    "LoginNodeSpawner": ".loginnode",
    "ProfileSpawner": ".profiles",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
