"""Spawners: the profile chooser JupyterHub uses, and one spawner per profile kind."""

from .loginnode import LoginNodeSpawner
from .profiles import ProfileSpawner

__all__ = ["LoginNodeSpawner", "ProfileSpawner"]
