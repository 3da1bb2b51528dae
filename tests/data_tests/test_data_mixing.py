"""Several labelled files mixed in the right proportions, every event once per epoch, shuffled anew each
epoch and reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from condorhub.data import LabelMismatchError, RootStream

from tests.support.data import MIX_SIZES


def epoch(stream, n=0, shuffle=True):
    chunks = list(stream.chunks(epoch=n, shuffle=shuffle))
    return chunks, np.concatenate([c.x[:, 0] for c in chunks]).astype(np.int64), np.concatenate([c.y for c in chunks])


def test_every_chunk_holds_the_labels_in_file_proportions(mix_files):
    stream = RootStream(mix_files, branches=["event"], normalize="none", chunk_size=1000)
    assert stream.classes == ["a", "b", "c"]
    total = sum(MIX_SIZES.values())
    chunks, _, _ = epoch(stream)
    assert len(chunks) == -(-total // 1000)
    for chunk in chunks:
        shares = np.bincount(chunk.y, minlength=3) / len(chunk)
        want = np.array(list(MIX_SIZES.values())) / total
        assert np.allclose(shares, want, atol=0.01), shares


def test_every_event_once_per_epoch_with_its_label(mix_files):
    stream = RootStream(mix_files, branches=["event"], normalize="none", chunk_size=900)
    _, events, labels = epoch(stream, 0)
    assert len(events) == len(np.unique(events)) == sum(MIX_SIZES.values())
    # event ids: a = 0.., b = 100000.., c = 200000..
    np.testing.assert_array_equal(labels, events // 100_000)


def test_shuffle_changes_per_epoch_and_is_reproducible(mix_files):
    stream = RootStream(mix_files, branches=["event"], normalize="none", chunk_size=1000, seed=7)
    _, e0, _ = epoch(stream, 0)
    _, e1, _ = epoch(stream, 1)
    _, e0_again, _ = epoch(RootStream(mix_files, branches=["event"], normalize="none", chunk_size=1000, seed=7), 0)
    assert not np.array_equal(e0, e1)
    np.testing.assert_array_equal(e0, e0_again)
    # within a chunk the rows are permuted, not in file order
    assert not np.all(np.diff(e0[:1000]) > 0)


def test_without_shuffle_files_are_read_in_order(mix_files):
    stream = RootStream(mix_files, branches=["event"], normalize="none", chunk_size=1000)
    _, events, labels = epoch(stream, shuffle=False)
    for k in range(3):
        assert np.all(np.diff(events[labels == k]) > 0)


def test_fractions_balance_the_labels(mix_files):
    stream = RootStream(mix_files, branches=["event"], normalize="none", chunk_size=600,
                        fractions={"a": 1, "b": 1, "c": 1})
    _, events, labels = epoch(stream)
    assert np.bincount(labels).tolist() == [600, 600, 600]  # limited by the smallest file
    assert len(np.unique(events)) == 1800


def test_integer_labels_are_class_indices(mix_files):
    stream = RootStream(list(mix_files.values()), labels=[2, 0, 1], branches=["event"], normalize="none")
    _, events, labels = epoch(stream)
    np.testing.assert_array_equal(labels, np.array([2, 0, 1])[events // 100_000])


def test_events_per_file_limits_each_file(mix_files):
    stream = RootStream(mix_files, branches=["event"], normalize="none", events_per_file=100)
    _, events, labels = epoch(stream)
    assert np.bincount(labels).tolist() == [100, 100, 100]


@pytest.mark.parametrize("labels", [["a", "b"], ["a", "b", "c", "d"]])
def test_label_list_that_does_not_match_the_files(mix_files, labels):
    with pytest.raises(LabelMismatchError, match=rf"3 files but {len(labels)} labels; give one label per file"):
        RootStream(list(mix_files.values()), labels=labels)


def test_fractions_for_an_unknown_label(mix_files):
    with pytest.raises(LabelMismatchError, match=r"fractions name labels \['z'\] that no file has"):
        RootStream(mix_files, fractions={"a": 1, "z": 1})


def test_fractions_missing_a_label(mix_files):
    with pytest.raises(LabelMismatchError, match=r"fractions= lacks labels \['c'\]"):
        RootStream(mix_files, fractions={"a": 1, "b": 1})
