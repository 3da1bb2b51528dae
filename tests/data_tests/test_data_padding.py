"""Jagged branches become fixed-length rows with padding and a mask: empty lists, lists longer than the pad
length, lists crossing basket and chunk boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from condorhub.data import RootStream, pad

from tests.support.data import EDGE_COUNTS


def expected_rows(counts, length, value=lambda ev, i: 100 * ev + i, fill=0.0):
    """Plain-Python reference: the padded rows and mask a user expects (the module itself never loops)."""
    rows = [[value(ev, i) if i < c else fill for i in range(length)] for ev, c in enumerate(counts)]
    mask = [[i < c for i in range(length)] for c in counts]
    return np.array(rows, dtype=np.float32), np.array(mask)


def test_pad_cuts_long_lists_and_pads_empty_ones():
    counts = [0, 4, 1, 2]
    offsets = np.concatenate(([0], np.cumsum(counts)))
    values = np.arange(offsets[-1], dtype=np.float32) + 1  # 1..7
    padded, mask = pad(values, offsets, 3, pad_value=-9)
    assert padded.tolist() == [[-9, -9, -9], [1, 2, 3], [5, -9, -9], [6, 7, -9]]  # the 4th value of event 1 is cut
    assert mask.tolist() == [[False] * 3, [True] * 3, [True, False, False], [True, True, False]]


def test_stream_pads_jagged_branch_exactly(data_dir):
    stream = RootStream(data_dir / "edge.root", branches=["event", "Jet_pt"], pad_length=3, normalize="none",
                        chunk_size=7)  # chunks of 7 events over baskets of 5: boundaries never line up
    chunks = list(stream.chunks(shuffle=False))
    x = np.concatenate([c.x for c in chunks])
    mask = np.concatenate([c.mask for c in chunks])
    counts = EDGE_COUNTS * 2
    want_x, want_mask = expected_rows(counts, 3)
    assert stream.layout.columns == ["event", "Jet_pt[0]", "Jet_pt[1]", "Jet_pt[2]"]
    assert x[:, 0].tolist() == list(range(len(counts)))  # every event once, in file order
    np.testing.assert_array_equal(x[:, 1:], want_x)
    np.testing.assert_array_equal(mask, want_mask)
    assert stream.layout.mask_columns == ["Jet_pt[0]", "Jet_pt[1]", "Jet_pt[2]"]


def test_default_pad_length_is_the_longest_list(data_dir):
    stream = RootStream(data_dir / "edge.root", branches=["Jet_pt", "Jet_eta"], normalize="none")
    stream.fit_specs()
    assert stream.layout.width == 2 * max(EDGE_COUNTS)  # nothing is cut
    (chunk,) = stream.chunks(shuffle=False)
    want_x, want_mask = expected_rows(EDGE_COUNTS * 2, max(EDGE_COUNTS))
    np.testing.assert_array_equal(chunk.x[:, : max(EDGE_COUNTS)], want_x)
    np.testing.assert_array_equal(chunk.x[:, max(EDGE_COUNTS) :], -want_x)  # Jet_eta = -Jet_pt, same slots
    np.testing.assert_array_equal(chunk.mask[:, : max(EDGE_COUNTS)], want_mask)


def test_padding_after_normalization_is_exactly_pad_value(data_dir):
    stream = RootStream(data_dir / "edge.root", branches=["Jet_pt"], pad_length={"Jet_*": 2}, pad_value=-1.0)
    (chunk,) = stream.chunks(shuffle=False)
    assert np.all(chunk.x[~chunk.mask] == -1.0)
    real = chunk.x[chunk.mask]
    assert real.size == sum(min(c, 2) for c in EDGE_COUNTS * 2)
    assert np.all(real != -1.0)


@pytest.mark.parametrize("bad", [0, -2, 2.5])
def test_bad_pad_length_is_refused(data_dir, bad):
    stream = RootStream(data_dir / "edge.root", branches=["Jet_pt"], pad_length=bad, normalize="none")
    with pytest.raises(ValueError, match="pad length for Jet_pt must be a positive integer"):
        stream.layout
