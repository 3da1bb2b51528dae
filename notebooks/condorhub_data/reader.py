"""Reading entries [start, stop) of the selected branches as :class:`Column`: values back to back, as stored
in the file (big-endian), plus list offsets for jagged branches.

Local files take a direct path for the common branch layouts (one number per event; a list of numbers per
event without per-entry headers, i.e. ``Jet_pt[nJet]`` leaf lists as written by ROOT and uproot): each
basket is decompressed by uproot (``TBranch.basket``) and its bytes are viewed as numbers, with no per-basket
interpretation, byte swapping or awkward array. Byte order is converted later in the same pass that
normalizes. This is about 3x faster than ``TTree.arrays`` on 74 branches. Everything else — remote files,
where uproot's ``arrays`` batches the byte ranges into few requests, and any other branch layout — goes
through ``TTree.arrays``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import awkward as ak
import numpy as np
import uproot

from .branches import Branch
from .errors import CorruptFileError
from .pad import offsets_and_content
from .sources import is_remote, read_arrays

_AsDtype = uproot.interpretation.numerical.AsDtype
_AsJagged = uproot.interpretation.jagged.AsJagged


@dataclass
class Column:
    values: np.ndarray  # all values of the chunk, any byte order
    offsets: np.ndarray | None  # n+1 list boundaries into values (jagged), None for flat branches

    def __len__(self) -> int:
        return len(self.values) if self.offsets is None else len(self.offsets) - 1

    @classmethod
    def from_array(cls, array, jagged: bool) -> Column:
        if jagged:
            offsets, content = offsets_and_content(array)
            return cls(content, offsets)
        return cls(ak.to_numpy(array) if isinstance(array, ak.Array) else np.asarray(array), None)


def concat(columns: list[Column]) -> Column:
    """One column from the same branch of consecutive pieces (several files of one chunk)."""
    if len(columns) == 1:
        return columns[0]
    values = np.concatenate([c.values for c in columns])
    if columns[0].offsets is None:
        return Column(values, None)
    counts = np.concatenate([np.diff(c.offsets) for c in columns])  # type: ignore[type-var]  # all jagged alike
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Column(values, offsets)


def _direct_dtype(branch) -> np.dtype | None:
    """The stored dtype when the branch's baskets are plain numbers we can view directly, else None."""
    interp = branch.interpretation
    if isinstance(interp, _AsDtype) and not interp.inner_shape:
        return np.dtype(interp.from_dtype)
    if (
        isinstance(interp, _AsJagged)
        and interp.header_bytes == 0
        and isinstance(interp.content, _AsDtype)
        and not interp.content.inner_shape
    ):
        return np.dtype(interp.content.from_dtype)
    return None


def _direct(branch, dtype: np.dtype, jagged: bool, start: int, stop: int, offsets_of=None) -> Column:
    """``offsets_of``: offsets already built for another branch with the same counter (reused as is)."""
    edges = np.asarray(branch.entry_offsets)
    first = int(np.searchsorted(edges, start, side="right")) - 1
    last = int(np.searchsorted(edges, stop, side="left"))
    values, counts = [], []
    for i in range(first, last):
        basket = branch.basket(i)
        lo, hi = max(start, edges[i]) - edges[i], min(stop, edges[i + 1]) - edges[i]
        data = basket.data.view(dtype)
        if jagged:
            offsets = basket.byte_offsets // dtype.itemsize
            values.append(data[offsets[lo] : offsets[hi]])
            counts.append(np.diff(offsets[lo : hi + 1]))
        else:
            values.append(data[lo:hi])
    joined = values[0] if len(values) == 1 else np.concatenate(values)
    if not jagged:
        return Column(joined, None)
    if offsets_of is not None and offsets_of[-1] == len(joined):
        return Column(joined, offsets_of)
    all_counts = counts[0] if len(counts) == 1 else np.concatenate(counts)
    offsets = np.zeros(len(all_counts) + 1, dtype=np.int64)
    np.cumsum(all_counts, out=offsets[1:])
    return Column(joined, offsets)


def read_columns(tree, branches: list[Branch], start: int, stop: int) -> dict[str, Column]:
    """Entries [start, stop) of ``branches`` of ``tree`` as {name: Column}."""
    columns: dict[str, Column] = {}
    rest = []
    direct = not is_remote(tree.file.file_path)
    offsets_by_counter: dict[str, np.ndarray] = {}
    for b in branches:
        branch = tree[b.name]
        dtype = _direct_dtype(branch) if direct else None
        if dtype is None:
            rest.append(b)
            continue
        try:
            shared = offsets_by_counter.get(b.counter) if b.counter is not None else None
            columns[b.name] = _direct(branch, dtype, b.jagged, start, stop, shared)
            offsets = columns[b.name].offsets
            if b.jagged and b.counter is not None and offsets is not None:
                offsets_by_counter.setdefault(b.counter, offsets)
        except (ValueError, zlib.error, OSError, IndexError, uproot.deserialization.DeserializationError) as exc:
            raise CorruptFileError(
                f"{tree.file.file_path}: branch {b.name!r}, entries {start}-{stop} cannot be read (corrupt or "
                f"truncated file: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "copy or write the file again"
            ) from None
        if len(columns[b.name]) != stop - start:  # a basket that does not hold what the tree says
            raise CorruptFileError(
                f"{tree.file.file_path}: branch {b.name!r} has {len(columns[b.name])} entries in {start}-{stop}; "
                "the file is corrupt: copy or write it again"
            )
    if rest:
        arrays = read_arrays(tree, [b.name for b in rest], start, stop)
        for b in rest:
            columns[b.name] = Column.from_array(arrays[b.name], b.jagged)
    return columns
