"""Only a guard; the build is configured in pyproject.toml.

The condorhub wheel ships the prebuilt JupyterLab extension (labextension/_built/). Without it pip would
build a wheel whose Lab silently lacks the scan browser and TensorBoard manager, so stop with the fix.
"""

import sys
from pathlib import Path

from setuptools import setup

BUILT = Path(__file__).resolve().parent / "labextension" / "_built"
if not (BUILT / "package.json").is_file() or not list((BUILT / "static").glob("remoteEntry.*.js")):
    sys.exit(
        f"condorhub: the JupyterLab extension is not built ({BUILT} is missing or empty).\n"
        "Build it before installing condorhub: ./setup.sh does, or by hand (needs Node.js >= 18 and npm):\n"
        "    labextension/build.sh /path/to/venv/bin/python   # an environment with jupyterlab installed"
    )

setup()
