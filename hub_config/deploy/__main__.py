"""``condorhub-deploy``: ``python -m condorhub.deploy tosca ...`` (see :mod:`condorhub.deploy.tosca`)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "tosca":
        print("usage: condorhub-deploy tosca {check,inventory,bundle} ...", file=sys.stderr)
        return 64
    from .tosca import main as tosca_main

    return tosca_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
