#!/usr/bin/env bash
# Build the prebuilt JupyterLab extension into labextension/_built/ (what the condorhub wheel ships).
#
#   labextension/build.sh PYTHON     PYTHON: the interpreter of an environment that has jupyterlab
#   labextension/build.sh --sources-hash   print the hash of the sources (setup.py compares it to the stamp)
#
# Skips everything when the sources are unchanged since the last build (a stamp of their hash and the
# JupyterLab version), so a re-run of setup.sh costs a second. `pip install` of condorhub runs this too,
# through hatch-jupyter-builder (`npm run build:prod`, see setup.py). npm's cache: $npm_config_cache
# (setup.sh: /var/cache/condorhub/npm).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

sources_hash() {
    { cat package.json package-lock.json tsconfig.json install.json;
      find src style -type f | LC_ALL=C sort | xargs cat; } | sha256sum | cut -d' ' -f1
}
if [ "${1:-}" = "--sources-hash" ]; then
    sources_hash
    exit 0
fi
PYTHON="${1:?usage: labextension/build.sh PYTHON (an interpreter whose environment has jupyterlab)}"

# One build at a time in this checkout: setup.sh, a developer and any `pip install`/`pip wheel` of it (setup.py
# builds a stale extension) may start one together. The lock is held on build.log (git-ignored, never removed).
if command -v flock >/dev/null; then
    exec 9>>build.log
    flock 9
fi

# The webpack build shares JupyterLab's own modules (module federation): it needs the installed
# JupyterLab's "core" package description, from its staging folder.
CORE="$("$PYTHON" -c 'import jupyterlab, pathlib; print(pathlib.Path(jupyterlab.__file__).parent / "staging")')" || {
    echo "labextension/build.sh: $PYTHON has no jupyterlab; install it first" >&2
    exit 1
}
LAB_VERSION="$("$PYTHON" -c 'import jupyterlab; print(jupyterlab.__version__)')"

# The stamp: the sources' hash, then the JupyterLab version built against (a new one rebuilds).
HASH="$(sources_hash) jupyterlab-$LAB_VERSION"
STAMP=_built/.sources-sha256
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ] && ls _built/static/remoteEntry.*.js >/dev/null 2>&1; then
    echo "labextension: up to date"
    exit 0
fi

# npm ci only when the lock file changed since node_modules was made.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s <(sha256sum < package-lock.json) node_modules/.condorhub-lock-sha256 2>/dev/null; then
    npm ci --no-audit --no-fund --loglevel=error
    sha256sum < package-lock.json > node_modules/.condorhub-lock-sha256
fi
rm -rf lib _built tsconfig.tsbuildinfo
node_modules/.bin/tsc
node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$CORE" . >build.log 2>&1 || {
    tail -40 build.log >&2
    echo "labextension/build.sh: the webpack build failed (full log: $HERE/build.log)" >&2
    exit 1
}
cp install.json _built/
echo "$HASH" > "$STAMP"
echo "labextension: built into $HERE/_built ($(ls _built/static | wc -l) assets)"
