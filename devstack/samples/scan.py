"""A sample parameter scan on disk, for the demo, the tests and the benchmark.

``lr_<v>/layers_<n>/seed_<s>/`` folders with a small PNG (a bar whose length and colour follow the
parameters, so a grid of them visibly varies), a metrics.json and a log. The PNG writer is a few lines
of zlib: no imaging library needed on a worker node.

    python -m devstack.samples.scan DIR [--files N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import struct
import zlib
from pathlib import Path

LRS = ["0.1", "0.01", "0.001", "1e-4"]
LAYERS = ["2", "3", "10"]
SEEDS = ["1", "2"]


def png(width: int, height: int, pixel) -> bytes:
    """An RGB PNG; ``pixel(x, y)`` returns (r, g, b)."""
    rows = b"".join(
        b"\0" + bytes(itertools.chain.from_iterable(pixel(x, y) for x in range(width))) for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def bar_png(fraction: float, hue: int, width: int = 96, height: int = 64) -> bytes:
    """A bar filling ``fraction`` of the width, in one of a few colours."""
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    colour = colours[hue % len(colours)]
    filled = int(fraction * (width - 8))

    def pixel(x, y):
        if 4 <= x < 4 + filled and height // 3 <= y < 2 * height // 3:
            return colour
        return (250, 250, 250) if 2 <= x < width - 2 and 2 <= y < height - 2 else (90, 90, 90)

    return png(width, height, pixel)


def make_scan(root: Path, lrs=LRS, layers=LAYERS, seeds=SEEDS) -> list[Path]:
    """The standard small scan: lr × layers × seed folders, each with roc.png, metrics.json, train.log."""
    written = []
    for i, lr in enumerate(lrs):
        for j, nl in enumerate(layers):
            for seed in seeds:
                leaf = root / f"lr_{lr}" / f"layers_{nl}" / f"seed_{seed}"
                leaf.mkdir(parents=True, exist_ok=True)
                (leaf / "roc.png").write_bytes(bar_png((j + 1) / len(layers), i))
                (leaf / "metrics.json").write_text(
                    json.dumps({"lr": float(lr), "layers": int(nl), "seed": int(seed), "auc": 0.5 + 0.1 * j})
                )
                (leaf / "train.log").write_text(
                    f"lr={lr} layers={nl} seed={seed}\nepoch 1 loss 0.9\nepoch 2 loss 0.5\n"
                )
                written += [leaf / "roc.png", leaf / "metrics.json", leaf / "train.log"]
    return written


def make_large_scan(root: Path, files: int = 10_000) -> int:
    """``files`` small files in a 4-level scan tree (a, b, c folders, n files each): the size a week of
    hyper-parameter search leaves. Returns the number written."""
    per_leaf = 10
    leaves = max(1, files // per_leaf)
    side = max(2, round(leaves ** (1 / 3)) + 1)
    written = 0
    image = bar_png(0.5, 0, 16, 8)
    for a, b, c in itertools.product(range(side), repeat=3):
        if written >= files:
            break
        leaf = root / f"a_{a}" / f"b_{b}" / f"c_{c}"
        leaf.mkdir(parents=True, exist_ok=True)
        for k in range(min(per_leaf, files - written)):
            (leaf / f"plot_{k}.png").write_bytes(image)
            written += 1
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--files", type=int, help="write this many files in a large tree instead of the small scan")
    args = parser.parse_args(argv)
    count = make_large_scan(args.folder, args.files) if args.files else len(make_scan(args.folder))
    print(f"wrote {count} files under {args.folder}")


if __name__ == "__main__":
    main()
