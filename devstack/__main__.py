"""``python -m devstack {up,down,status}`` from the checkout: the whole system on this machine, with the
demo users (see run.py). ``./setup.sh demo`` and ``./setup.sh demo-down`` run this; the product's
``condorhub`` command knows nothing of it."""

from __future__ import annotations

import argparse
import sys

from . import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack",
                                     description="the whole system on this machine, with demo users")
    parser.add_argument("action", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    return {"up": run.up, "down": run.down, "status": run.status}[args.action]()


if __name__ == "__main__":
    sys.exit(main())
