"""Bad input fails with a DataError that names the file, the problem and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from condorhub.data import (
    CorruptFileError,
    EmptyFileError,
    MissingBranchError,
    MissingFileError,
    MissingTreeError,
    RootStream,
)


def test_missing_tree_lists_the_trees_there(data_dir):
    with pytest.raises(MissingTreeError, match=r"other_tree.root has no tree 'Events'; it has 'tree': pass tree='tree'"):
        RootStream(data_dir / "other_tree.root")
    assert RootStream(data_dir / "other_tree.root", tree="tree").num_events == 10


def test_missing_branch_suggests_the_right_spelling(mix_files):
    with pytest.raises(MissingBranchError, match=r"no branch 'jet_pt' \(did you mean 'Jet_pt'\?\); branches are"):
        RootStream(mix_files, branches=["x", "jet_pt"])


def test_pattern_matching_nothing(mix_files):
    with pytest.raises(MissingBranchError, match=r"no numeric branch matches 'Muon_\*'"):
        RootStream(mix_files, branches=["Muon_*"])


def test_branch_missing_in_one_file_names_that_file(mix_files, data_dir):
    files = {"a": mix_files["a"], "b": data_dir / "mix_b_no_eta.root"}
    with pytest.raises(MissingBranchError) as err:
        RootStream(files)
    msg = str(err.value)
    assert "'Jet_eta' is missing in" in msg and "mix_b_no_eta.root" in msg and "mix_a.root" in msg
    assert "exclude=['Jet_eta']" in msg
    # the fix the message gives works
    stream = RootStream(files, exclude=["Jet_eta"], pad_length=2)
    assert [b.name for b in stream.branches] == ["event", "x", "nJet", "Jet_pt"]
    assert sum(len(c) for c in stream.chunks()) == 3000 + 1500


def test_exclude_by_pattern(mix_files):
    stream = RootStream(mix_files, exclude=["Jet_*", "n*"])
    assert [b.name for b in stream.branches] == ["event", "x"]


def test_tree_without_entries(data_dir):
    with pytest.raises(EmptyFileError, match=r"no_entries.root: tree 'Events' has no entries"):
        RootStream(data_dir / "no_entries.root")


def test_zero_byte_file(data_dir):
    with pytest.raises(EmptyFileError, match=r"zero_bytes.root is empty \(0 bytes\)"):
        RootStream(data_dir / "zero_bytes.root")


def test_file_that_is_not_root(data_dir):
    with pytest.raises(CorruptFileError, match=r"garbage.root is not a readable ROOT file .*write it again"):
        RootStream(data_dir / "garbage.root")


def test_truncated_file(data_dir):
    # depending on where the cut falls this fails at open or at the first basket past the cut: both say so
    with pytest.raises(CorruptFileError, match=r"truncated.root.*(truncated|corrupt)"):
        stream = RootStream(data_dir / "truncated.root", normalize="none", pad_length=2)
        for _ in stream.chunks():
            pass


def test_missing_file(tmp_path):
    with pytest.raises(MissingFileError, match=r"nope.root: no such file"):
        RootStream(tmp_path / "nope.root")


def test_non_numeric_branches_are_skipped_with_a_warning(tmp_path):
    import uproot

    with uproot.recreate(tmp_path / "s.root") as out:
        t = out.mktree("Events", {"x": np.float32, "name": "string"})
        t.extend({"x": np.arange(3, dtype=np.float32), "name": np.array(["a", "b", "c"])})
    with pytest.warns(UserWarning, match=r"skipping branches that are not numbers.*name"):
        stream = RootStream(tmp_path / "s.root")
    assert [b.name for b in stream.branches] == ["x"]
