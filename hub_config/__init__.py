"""condorhub: JupyterHub for physics deep-learning courses and research.

The package root lives in the repository's ``hub_config/`` folder (see pyproject.toml's source mapping).
"""

__version__ = "0.1.0"
