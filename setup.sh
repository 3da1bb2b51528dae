#!/usr/bin/env bash
# condorhub set-up for a fresh Debian (12+) or Ubuntu (22.04+) machine, run as root. Safe to re-run.
#
#   ./setup.sh demo   install everything and bring up the whole system on this machine with demo users;
#                     the hub answers at http://127.0.0.1:8000 (stop it with: ./setup.sh demo-down)
#   ./setup.sh test   install everything the tests need and run every test
#
# Downloads are cached under /var/cache/condorhub (pip, npm), so a second run is fast and offline-friendly.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# CONDORHUB_PREFIX moves the installation (e.g. to try a checkout beside a running one).
PREFIX="${CONDORHUB_PREFIX:-/opt/condorhub}"
export CONDORHUB_PREFIX="$PREFIX"
# The checkout the GPU node's (HTCondor pool's) environment is built from, demo and tests alike.
export CONDORHUB_SOURCE="$REPO"
VENV="$PREFIX/venv"
CACHE=/var/cache/condorhub
export PIP_CACHE_DIR="$CACHE/pip" npm_config_cache="$CACHE/npm"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n==> %s\n' "$*"; }
need_root() { [ "$(id -u)" = 0 ] || { echo "setup.sh: run as root (it installs packages and starts services)" >&2; exit 1; }; }

apt_install() {
    local missing=()
    for pkg in "$@"; do dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    step "apt: installing ${missing[*]}"
    # Refresh the package lists at most once a day; a re-run should not wait on the mirror.
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
        apt-get update -q
    fi
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

install_system() {
    # slapd/ldap-utils: the demo and test directory; python3-venv: the environment servers run from (it
    # must be readable by every user, which a Python under /root is not); openssl: test certificates;
    # debootstrap: the Debian 13 roots the HTCondor pool and the Ansible test deploy into.
    apt_install ca-certificates git python3 python3-venv python3-dev gcc slapd ldap-utils openssl procps curl debootstrap
    if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 18 ]; then
        apt_install nodejs npm
    fi
    command -v npm >/dev/null || apt_install npm
}

build_labextension() {
    # The wheel ships the prebuilt JupyterLab extension; building it needs the JupyterLab it extends
    # (pyproject's own requirement, installed first) and node. Skipped when its sources are unchanged.
    step "JupyterLab extension (labextension/)"
    local lab_req
    lab_req="$("$VENV/bin/python" -c 'import sys, tomllib; print(next(d for d in tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"] if d.startswith("jupyterlab")))' "$REPO/pyproject.toml")"
    "$VENV/bin/pip" install -q "$lab_req"
    mkdir -p "$npm_config_cache"
    "$REPO/labextension/build.sh" "$VENV/bin/python"
}

install_python() {
    local extras="$1"
    step "python environment $VENV"
    mkdir -p "$PREFIX" "$PIP_CACHE_DIR"
    [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    build_labextension
    # Dependencies first (cached), then condorhub itself from this checkout, always rebuilt so a re-run
    # after `git pull` picks up the new code.
    "$VENV/bin/pip" install -q "$REPO$extras"
    "$VENV/bin/pip" install -q --no-deps --force-reinstall "$REPO"
    chmod -R a+rX "$PREFIX"
}

install_browser() {
    # Debian's Chromium, driven by Playwright's Python package; Playwright never downloads a browser here.
    apt_install chromium fonts-dejavu-core
}

install_proxy() {
    local chp="$PREFIX/node/node_modules/.bin/configurable-http-proxy"
    if [ ! -x "$chp" ]; then
        step "configurable-http-proxy (npm)"
        mkdir -p "$PREFIX/node" "$npm_config_cache"
        npm install --no-audit --no-fund --prefix "$PREFIX/node" configurable-http-proxy@5
    fi
    "$chp" --version >/dev/null
}

install_im() {
    # tests/test_tosca_im.py deploys tosca/ on a real Infrastructure Manager (the INDIGO/INFN Cloud TOSCA
    # deployer, Dummy cloud) with its client; in a venv of their own: IM pins its own ansible, tosca-parser.
    local im_venv="$PREFIX/im-venv"
    step "Infrastructure Manager $im_venv"
    [ -x "$im_venv/bin/python" ] || /usr/bin/python3 -m venv "$im_venv"
    "$im_venv/bin/pip" install -q 'IM==2.0.0' 'IM-client==1.8.4'
}

case "${1:-}" in
    demo)
        need_root
        install_system
        # libnss-extrausers: the demo's people get names on this machine, the login node (devstack/nss.py)
        apt_install libnss-extrausers
        # [course]: the course notebooks' stack (TensorFlow, uproot, ...) in the login node's servers;
        # [deploy]: ansible-playbook, which deploys the demo's HTCondor pool with condorhub's own roles
        install_python "[course,deploy]"
        install_proxy
        step "starting the demo (OpenLDAP with demo users, JupyterHub, proxy)"
        # devstack/ (the demo machinery) is not in the wheel: it runs from this checkout.
        cd "$REPO"
        PYTHONPATH="$REPO" exec "$VENV/bin/python" -m devstack up
        ;;
    demo-down)
        need_root
        cd "$REPO"
        PYTHONPATH="$REPO" exec "$VENV/bin/python" -m devstack down
        ;;
    test)
        need_root
        install_system
        install_python "[test]"
        install_proxy
        install_browser
        # condorhub.data's remote-read tests start a real XRootD server on loopback (it runs as the
        # package's xrootd user; the package's systemd units are templates and start nothing)
        apt_install xrootd-server
        # tests/test_prometheus_metrics.py: Debian's Prometheus (and promtool) scraping a test hub, run by the
        # test on a free port as the package's prometheus account
        apt_install prometheus
        # tests/test_hub_faults.py: strace kills the hub's HTCondor worker process at the write of its answer to a
        # submission (the schedd has taken the job, the hub never hears of it)
        apt_install strace
        install_im
        step "running every test"
        cd "$REPO"
        start=$(date +%s)
        set +e
        "$VENV/bin/python" -m pytest -p no:cacheprovider "${@:2}"
        rc=$?
        set -e
        echo "tests took $(( $(date +%s) - start )) s"
        exit $rc
        ;;
    *)
        sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
        exit 64
        ;;
esac
