"""The `condorhub` command: inspect the site file, run the hub.

    condorhub config check [--site FILE]    validate; exit 2 with every problem listed
    condorhub config show  [--site FILE]    the configuration as loaded, defaults filled in (YAML)
    condorhub config schema                 JSON Schema of the site file, every key documented
    condorhub config example                the documented example site file
    condorhub hub [--site FILE] [-- JUPYTERHUB ARGS]   run JupyterHub with condorhub's configuration

The one-machine demo is development machinery, not part of the product: `./setup.sh demo` runs it from
the checkout (devstack/, `python -m devstack up`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import resources
from pathlib import Path

import yaml

from .site import SITE_FILE_ENV, SiteConfigError, load_site_file


def jupyterhub_config_path() -> Path:
    return Path(str(resources.files("condorhub") / "jupyterhub_config.py"))


def _config(args) -> int:
    if args.action == "schema":
        from .schema import SiteConfig

        print(json.dumps(SiteConfig.model_json_schema(), indent=2))
        return 0
    if args.action == "example":
        print((resources.files("condorhub") / "site.example.yaml").read_text(), end="")
        return 0
    try:
        site = load_site_file(args.site)
    except SiteConfigError as err:
        print(f"condorhub: {err}", file=sys.stderr)
        return 2
    if args.action == "check":
        print(f"site file is valid: {len(site.profiles)} profile(s), LDAP server {site.ldap.server_address}")
        return 0
    # show
    data = site.model_dump(mode="json")
    print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0


def _hub(args) -> int:
    env = dict(os.environ)
    if args.site:
        env[SITE_FILE_ENV] = str(Path(args.site).resolve())
    # Validate first so a broken site file fails here with the key named, not deep in JupyterHub's log.
    try:
        site = load_site_file(env.get(SITE_FILE_ENV))
    except SiteConfigError as err:
        print(f"condorhub: {err}", file=sys.stderr)
        return 2
    bin_dir = str(Path(sys.executable).parent)
    proxy_bin = Path(env.get("CONDORHUB_PREFIX", "/opt/condorhub")) / "node" / "node_modules" / ".bin"
    env["PATH"] = os.pathsep.join([bin_dir, str(proxy_bin), env.get("PATH", "")])
    argv = [
        os.path.join(bin_dir, "jupyterhub"),
        "-f",
        str(jupyterhub_config_path()),
        *args.jupyterhub_args,
    ]
    os.chdir(site.hub.state_dir if site.hub.state_dir.exists() else "/")
    os.execve(argv[0], argv, env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="condorhub", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    config = sub.add_parser("config", help="inspect and validate the site file")
    config.add_argument("action", choices=["check", "show", "schema", "example"])
    config.add_argument("--site", help=f"site file (default: ${SITE_FILE_ENV} or /etc/condorhub/site.yaml)")
    config.set_defaults(func=_config)

    hub = sub.add_parser("hub", help="run JupyterHub with condorhub's configuration")
    hub.add_argument("--site", help="site file")
    hub.add_argument("jupyterhub_args", nargs=argparse.REMAINDER, help="passed on to jupyterhub")
    hub.set_defaults(func=_hub)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "jupyterhub_args", None) and args.jupyterhub_args[0] == "--":
        args.jupyterhub_args = args.jupyterhub_args[1:]
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
