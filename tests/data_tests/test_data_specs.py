"""Normalization statistics from a first pass ("specs"): exact, saved and reloaded, checked on load."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot

from condorhub.data import RootStream, Specs, SpecsError


def all_values(files, branch):
    arrays = [uproot.open(f)["Events"][branch].array(library="ak") for f in files]
    return np.concatenate([ak.to_numpy(ak.flatten(a, axis=None)) for a in arrays]).astype(np.float64)


def test_specs_equal_numpy_over_all_files(mix_files):
    stream = RootStream(mix_files, branches=["x", "Jet_pt"], pad_length=4, chunk_size=700)
    specs = stream.fit_specs()
    assert specs.n_events == 3000 + 1500 + 600
    for name in ("x", "Jet_pt"):
        values = all_values(mix_files.values(), name)
        stats = specs.branches[name]
        assert stats.count == values.size
        assert stats.mean == pytest.approx(values.mean(), rel=1e-9)
        assert stats.std == pytest.approx(values.std(), rel=1e-9)
        assert (stats.min, stats.max) == (values.min(), values.max())
    counts = [uproot.open(f)["Events"]["nJet"].array(library="np").max() for f in mix_files.values()]
    assert specs.branches["Jet_pt"].max_len == max(counts)


def test_standard_normalization_gives_mean_0_std_1(mix_files):
    stream = RootStream(mix_files, branches=["x"], chunk_size=1000)
    x = np.concatenate([c.x[:, 0] for c in stream.chunks()])  # specs computed on first use
    assert x.mean() == pytest.approx(0, abs=1e-5)
    assert x.std() == pytest.approx(1, abs=1e-5)


def test_minmax_normalization_spans_0_to_1(mix_files):
    stream = RootStream(mix_files, branches=["x"], normalize="minmax")
    x = np.concatenate([c.x[:, 0] for c in stream.chunks()])
    assert (x.min(), x.max()) == (pytest.approx(0, abs=1e-6), pytest.approx(1, abs=1e-6))


def test_saved_specs_reload_and_give_identical_features(mix_files, tmp_path):
    first = RootStream(mix_files, branches=["x", "Jet_*"], pad_length=3)
    first.fit_specs().save(tmp_path / "specs.json")
    saved = json.loads((tmp_path / "specs.json").read_text())
    assert set(saved["branches"]) == {"x", "Jet_pt", "Jet_eta"}
    again = RootStream(mix_files, branches=["x", "Jet_*"], pad_length=3, specs=tmp_path / "specs.json")
    a, b = next(first.chunks(epoch=3)), next(again.chunks(epoch=3))
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert Specs.load(tmp_path / "specs.json").branches == first.specs.branches


def test_specs_for_other_branches_are_refused(mix_files, tmp_path):
    RootStream(mix_files, branches=["x"]).fit_specs().save(tmp_path / "x_only.json")
    stream = RootStream(mix_files, branches=["x", "Jet_pt"], pad_length=2, specs=tmp_path / "x_only.json")
    with pytest.raises(SpecsError, match="no statistics for Jet_pt.*compute the specs again"):
        next(stream.chunks())


@pytest.mark.parametrize("content, match", [
    ("{not json", "not a specs JSON file"),
    ('{"format": "something else"}', "not a condorhub.data specs file"),
    ('{"format": "condorhub.data.specs/1", "tree": "Events"}', "incomplete"),
])
def test_broken_specs_file_says_so(tmp_path, content, match):
    (tmp_path / "specs.json").write_text(content)
    with pytest.raises(SpecsError, match=match):
        Specs.load(tmp_path / "specs.json")


def test_missing_specs_file_says_how_to_make_one(tmp_path):
    with pytest.raises(SpecsError, match="no such specs file; compute it with stream.fit_specs"):
        Specs.load(tmp_path / "nope.json")
