"""Toy ROOT files, written with uproot, for the course, the tests and the benchmark (nothing downloaded).

``write_topology_file``: collision events of one of three topologies — W+jets, QCD multijet, ttbar — as in
the topology-classification study (Nguyen et al., "Topology classification with deep learning to improve
real-time event selection at the LHC"), with its 14 high-level features as flat branches and the jets as
jagged branches (``Jet_pt``, ``Jet_eta``, ``Jet_phi``, ``Jet_btag``, counted by ``nJet``). The physics is a
cartoon — lepton isolation, jet and b-jet multiplicity, missing energy and transverse mass differ between
the classes as they do in data — so a small network separates them well but not perfectly.

``write_wide_file``: the shape of the MLaaS4HEP benchmark — 22 flat and 52 jagged branches in 6
collections, NanoAOD-like multiplicities.

Events are generated and written ``basket`` at a time: each ``extend`` is one basket per branch, like a
ROOT file's clusters, and memory stays flat however many events are written.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

TOPOLOGIES = ("wjets", "qcd", "ttbar")

#: The 14 high-level features of the study's HLF classifier.
HLF_FEATURES = [
    "HT",
    "METp",
    "METo",
    "MT",
    "nJets",
    "bJets",
    "allJetMass",
    "LepPt",
    "LepEta",
    "LepIsoCh",
    "LepIsoGamma",
    "LepIsoNeu",
    "LepCharge",
    "LepIsEle",
]

# per topology: mean jet multiplicity, jet pT slope (GeV), P(b jet), lepton pT slope, MET slope,
# lepton isolation slope, whether the MET comes from a W (back to back with the lepton)
_TOPOLOGY = {
    "wjets": dict(jets=1.2, jet_pt=35.0, b=0.04, lep_pt=25.0, met=30.0, iso=0.03, w=True),
    "qcd": dict(jets=3.0, jet_pt=30.0, b=0.08, lep_pt=8.0, met=12.0, iso=0.35, w=False),
    "ttbar": dict(jets=4.5, jet_pt=55.0, b=0.35, lep_pt=35.0, met=45.0, iso=0.05, w=True),
}


def topology_events(topology: str, n: int, rng: np.random.Generator) -> dict:
    """``n`` toy events of ``topology`` as {branch: array}; ``Jet`` is a record of jagged fields."""
    if topology not in _TOPOLOGY:
        raise ValueError(f"unknown topology {topology!r}; choose from {', '.join(TOPOLOGIES)}")
    p = _TOPOLOGY[topology]
    # jets: multiplicity, then all jets of the chunk in one flat array, cut into events by the counts
    n_jets = rng.poisson(p["jets"], n)
    total = int(n_jets.sum())
    is_b = rng.random(total) < p["b"]
    jet_pt = (25.0 + rng.exponential(p["jet_pt"], total)).astype(np.float32)
    jet_eta = np.clip(rng.normal(0.0, 1.4, total), -2.4, 2.4).astype(np.float32)
    jet_phi = rng.uniform(-np.pi, np.pi, total).astype(np.float32)
    jet_btag = np.where(is_b, rng.beta(5.0, 1.5, total), rng.beta(1.2, 6.0, total)).astype(np.float32)
    jets = ak.unflatten(ak.zip({"pt": jet_pt, "eta": jet_eta, "phi": jet_phi, "btag": jet_btag}), n_jets)

    px, py = ak.sum(jets.pt * np.cos(jets.phi), axis=1), ak.sum(jets.pt * np.sin(jets.phi), axis=1)
    pz, energy = ak.sum(jets.pt * np.sinh(jets.eta), axis=1), ak.sum(jets.pt * np.cosh(jets.eta), axis=1)
    all_jet_mass = np.sqrt(np.maximum(ak.to_numpy(energy**2 - px**2 - py**2 - pz**2), 0.0))

    lep_pt = 20.0 + rng.exponential(p["lep_pt"], n)
    lep_phi = rng.uniform(-np.pi, np.pi, n)
    met = rng.exponential(p["met"], n) + (15.0 if p["w"] else 0.0)
    # a W's neutrino recoils against its lepton; QCD's fake MET points anywhere
    dphi = rng.normal(np.pi, 0.7, n) if p["w"] else rng.uniform(-np.pi, np.pi, n)
    iso = lambda scale: rng.exponential(scale, n) * lep_pt  # noqa: E731 (absolute isolation, GeV)

    events = {
        "HT": ak.to_numpy(ak.sum(jets.pt, axis=1)),
        "METp": met * np.cos(dphi),
        "METo": met * np.sin(dphi),
        "MT": np.sqrt(2.0 * lep_pt * met * (1.0 - np.cos(dphi))),
        "nJets": n_jets.astype(np.int32),
        "bJets": ak.to_numpy(ak.sum(jets.btag > 0.7, axis=1)).astype(np.int32),
        "allJetMass": all_jet_mass,
        "LepPt": lep_pt,
        "LepEta": np.clip(rng.normal(0.0, 1.1, n), -2.5, 2.5),
        "LepPhi": lep_phi,
        "LepIsoCh": iso(p["iso"]),
        "LepIsoGamma": iso(p["iso"] * 0.6),
        "LepIsoNeu": iso(p["iso"] * 0.4),
        "LepCharge": rng.choice(np.array([-1, 1], dtype=np.int32), n),
        "LepIsEle": rng.integers(0, 2, n, dtype=np.int32),
    }
    events = {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in events.items()}
    events["Jet"] = jets
    return events


def _write(path: Path, n: int, basket: int, make, compression) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path, compression=compression) as out:
        tree = None
        for start in range(0, n, basket):
            events = make(min(basket, n - start))
            if tree is None:
                # mktree, not out["Events"] = ...: uproot >= 5.7 writes an RNTuple for a plain assignment;
                # a TTree (jagged "Jet_pt" counted by "nJet") is what the course's readers expect
                types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in events.items()}
                tree = out.mktree("Events", types)
            tree.extend(events)
    return path


def write_topology_file(
    path, topology: str, n: int, *, seed: int = 0, basket: int = 20_000, compression=uproot.ZLIB(1)
) -> Path:
    """A ROOT file with ``n`` toy ``topology`` events in tree ``Events``."""
    rng = np.random.default_rng([seed, TOPOLOGIES.index(topology) if topology in TOPOLOGIES else 99])
    return _write(path, n, basket, lambda k: topology_events(topology, k, rng), compression)


def write_topology_files(folder, n: int, *, seed: int = 0, **kwargs) -> dict[str, Path]:
    """One file per topology in ``folder`` ({topology}.root), ``n`` events each."""
    return {t: write_topology_file(Path(folder) / f"{t}.root", t, n, seed=seed, **kwargs) for t in TOPOLOGIES}


def ensure_topology_files(folder, n: int, *, seed: int = 0, **kwargs) -> dict[str, Path]:
    """Like :func:`write_topology_files`, but keeps files that already hold ``n`` events (a notebook run
    again does not rewrite them; one run with another ``n`` does)."""
    folder = Path(folder)
    out = {}
    for t in TOPOLOGIES:
        path = folder / f"{t}.root"
        try:
            with uproot.open(path) as f:
                current = f["Events"].num_entries
        except Exception:  # missing, unreadable or another layout: write it
            current = None
        out[t] = path if current == n else write_topology_file(path, t, n, seed=seed, **kwargs)
    return out


# ----------------------------------------------------------------------------- benchmark shape

#: 6 collections: (name, mean multiplicity, number of float branches); 12+10+10+8+6+6 = 52 jagged branches
WIDE_COLLECTIONS = [
    ("Jet", 4.0, 12),
    ("Muon", 1.0, 10),
    ("Electron", 1.0, 10),
    ("Photon", 1.5, 8),
    ("Tau", 0.5, 6),
    ("TrigObj", 3.0, 6),
]
WIDE_FLAT = 22


def wide_events(n: int, rng: np.random.Generator) -> dict:
    """22 flat + 52 jagged float branches (plus the collections' counters, which uproot adds)."""
    events = {f"flat_{i:02d}": rng.normal(i, 1.0 + i, n).astype(np.float32) for i in range(WIDE_FLAT)}
    for name, mean, fields in WIDE_COLLECTIONS:
        counts = rng.poisson(mean, n)
        total = int(counts.sum())
        record = ak.zip({f"v{j:02d}": rng.normal(j, 1.0 + j, total).astype(np.float32) for j in range(fields)})
        events[name] = ak.unflatten(record, counts)
    return events


def wide_branches() -> list[str]:
    """The 74 feature branches of a wide file (without the n<Collection> counters)."""
    return [f"flat_{i:02d}" for i in range(WIDE_FLAT)] + [
        f"{name}_v{j:02d}" for name, _, fields in WIDE_COLLECTIONS for j in range(fields)
    ]


def write_wide_file(path, n: int, *, seed: int = 0, basket: int = 50_000, compression=uproot.ZLIB(1)) -> Path:
    rng = np.random.default_rng(seed)
    return _write(path, n, basket, lambda k: wide_events(k, rng), compression)
