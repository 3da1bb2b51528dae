"""The direct basket reader (local files) gives exactly what uproot's TTree.arrays gives."""

from __future__ import annotations

import numpy as np
import pytest
import uproot

from condorhub.data.branches import select
from condorhub.data.reader import Column, read_columns


@pytest.mark.parametrize("start, stop", [(0, 24), (3, 11), (5, 10), (7, 8), (23, 24)])
def test_direct_read_equals_uproot_arrays(data_dir, start, stop):
    tree = uproot.open(data_dir / "edge.root")["Events"]  # baskets of 5 events: ranges cut through them
    branches = select(tree, "edge.root")
    direct = read_columns(tree, branches, start, stop)
    arrays = tree.arrays([b.name for b in branches], entry_start=start, entry_stop=stop, how=dict)
    for b in branches:
        want = Column.from_array(arrays[b.name], b.jagged)
        got = direct[b.name]
        assert len(got) == stop - start
        np.testing.assert_array_equal(got.values.astype(want.values.dtype), want.values)
        if b.jagged:
            np.testing.assert_array_equal(got.offsets, want.offsets)
