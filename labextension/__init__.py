"""condorhub in JupyterLab: the parameter-scan browser and the TensorBoard manager.

This package is both halves of one extension: the jupyter-server extension (``app.CondorhubLab``, enabled
by the installed ``jupyter_server_config.d/condorhub-lab.json``) and the prebuilt JupyterLab frontend
(TypeScript in ``src/``, built into ``_built/`` and installed to ``share/jupyter/labextensions``).
"""

from __future__ import annotations

#: The labextension's npm name; also its folder under share/jupyter/labextensions.
LABEXTENSION_NAME = "@condorhub/lab"


def _jupyter_server_extension_points():
    from .app import CondorhubLab

    return [{"module": "condorhub.lab", "app": CondorhubLab}]


def _jupyter_labextension_paths():
    # For `jupyter labextension develop`; installs get the files from the wheel's data files.
    return [{"src": "_built", "dest": LABEXTENSION_NAME}]
