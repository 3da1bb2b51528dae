"""condorhub: JupyterHub for physics deep-learning courses and research.

The package root lives in the repository's ``hub_config/`` folder (see pyproject.toml's source mapping).
"""

import importlib.metadata

# The version has one owner, pyproject.toml's `version`; the installed package's metadata carries it here.
try:
    __version__ = importlib.metadata.version("condorhub")
except importlib.metadata.PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
