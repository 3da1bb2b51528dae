"""Chunk arrays are recycled only when nobody holds them: a loop that drops each chunk reuses memory, a
list that keeps every chunk keeps every value."""

from __future__ import annotations

import numpy as np

from condorhub.data import RootStream


def test_loop_reuses_memory_of_dropped_chunks(mix_files):
    stream = RootStream(mix_files, branches=["event", "Jet_pt"], pad_length=3, normalize="none", chunk_size=500)
    seen = []
    for chunk in stream.chunks(shuffle=False, prefetch=False):
        seen.append(id(chunk.x.base))
    assert len(seen) > 4 and len(set(seen)) <= 3  # two or three buffers take turns


def test_kept_chunks_are_never_overwritten(mix_files):
    stream = RootStream(mix_files, branches=["event", "Jet_pt"], pad_length=3, normalize="none", chunk_size=500)
    kept = list(stream.chunks(shuffle=False))
    again = [(c.x.copy(), c.mask.copy()) for c in stream.chunks(shuffle=False)]
    assert len({id(c.x.base) for c in kept}) == len(kept)
    for chunk, (x, mask) in zip(kept, again, strict=True):
        np.testing.assert_array_equal(chunk.x, x)
        np.testing.assert_array_equal(chunk.mask, mask)
    events = np.concatenate([c.x[:, 0] for c in kept])
    assert len(np.unique(events)) == len(events) == 5100
