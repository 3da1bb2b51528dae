"""Fixtures for condorhub.data (tests/data_tests/): real ROOT files written with uproot, and a real XRootD server
serving them. Registered as a plugin by tests/conftest.py; the tests import the files' constants from here."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from .xrootd import XRootDServer

#: Jet multiplicities of the edge-case file, repeated: empty lists, lists longer than a pad length of 3.
EDGE_COUNTS = [0, 7, 1, 3, 0, 2, 4, 0, 1, 5, 3, 0]
EDGE_BASKET = 5  # events per basket: chunks and lists cross basket boundaries

#: Event counts of the three labelled mixing files (labels "a", "b", "c").
MIX_SIZES = {"a": 3000, "b": 1500, "c": 600}
MIX_BASKET = 400


def edge_events(n_repeat: int = 2) -> dict:
    counts = np.array(EDGE_COUNTS * n_repeat)
    event = np.arange(len(counts))
    # value = 100 * event + position in the list: any misplaced value is recognisable
    position = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    pt = (100 * np.repeat(event, counts) + position).astype(np.float32)
    jets = ak.unflatten(ak.zip({"pt": pt, "eta": -pt}), counts)
    return {"event": event.astype(np.int64), "x": (event * 0.5).astype(np.float32), "Jet": jets}


def mix_events(label: str, n: int, *, with_eta: bool = True) -> dict:
    rng = np.random.default_rng(ord(label))
    first = {"a": 0, "b": 100_000, "c": 200_000}[label]
    counts = rng.poisson(2, n)
    fields = {"pt": rng.exponential(30, counts.sum()).astype(np.float32)}
    if with_eta:
        fields["eta"] = rng.normal(0, 1.5, counts.sum()).astype(np.float32)
    return {
        "event": np.arange(first, first + n, dtype=np.int64),
        "x": rng.normal(ord(label) - ord("a"), 1.0, n).astype(np.float32),
        "Jet": ak.unflatten(ak.zip(fields), counts),
    }


def write_tree(path: Path, events: dict, basket: int, tree: str = "Events") -> Path:
    n = len(events["event"])
    with uproot.recreate(path) as out:
        types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in events.items()}
        t = out.mktree(tree, types)
        for start in range(0, n, basket):
            t.extend({k: v[start : start + basket] for k, v in events.items()})
    return path


@pytest.fixture(scope="session")
def data_dir():
    """World-readable folder (the XRootD server runs as the xrootd user) with every test file."""
    root = Path(tempfile.mkdtemp(prefix="condorhub-data-", dir="/var/tmp"))
    root.chmod(0o755)
    write_tree(root / "edge.root", edge_events(), EDGE_BASKET)
    for label, n in MIX_SIZES.items():
        write_tree(root / f"mix_{label}.root", mix_events(label, n), MIX_BASKET)
    write_tree(root / "mix_b_no_eta.root", mix_events("b", MIX_SIZES["b"], with_eta=False), MIX_BASKET)
    write_tree(root / "other_tree.root", mix_events("a", 10), 10, tree="tree")
    with uproot.recreate(root / "no_entries.root") as out:
        out.mktree("Events", {"event": np.int64, "x": np.float32})
    (root / "zero_bytes.root").write_bytes(b"")
    (root / "garbage.root").write_bytes(np.random.default_rng(1).bytes(20_000))
    good = (root / "mix_a.root").read_bytes()
    (root / "truncated.root").write_bytes(good[: len(good) * 6 // 10])
    for f in root.iterdir():
        f.chmod(0o644)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mix_files(data_dir):
    return {label: data_dir / f"mix_{label}.root" for label in MIX_SIZES}


@pytest.fixture(scope="session")
def xrootd(data_dir):
    """A real XRootD server (Debian's xrootd-server) on loopback exporting ``data_dir`` read-only."""
    server = XRootDServer(data_dir).start()
    yield server
    server.stop()
