"""Jagged lists → fixed-length rows with padding and a mask, on whole chunks at once (numpy, no loop over
events).

A jagged branch arrives as ``offsets`` (n+1 list boundaries) and ``content`` (all values back to back). In a
padded (n, L) grid the values that survive (the first L of each list) occupy exactly the positions where
``column < count`` — and in row-major order those positions appear in the same order as the values in
``content``. So padding is one boolean-mask assignment, and the mask is that same boolean grid.
Branches of one collection (``Jet_pt``, ``Jet_eta``, ... all counted by ``nJet``) share their offsets, so
:class:`Slots` is computed once per collection and chunk and reused for each of its branches.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np


def offsets_and_content(array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets starting at 0, content) of a one-level jagged array of numbers."""
    layout = ak.to_layout(array)
    if not isinstance(layout, ak.contents.ListOffsetArray) or not isinstance(layout.content, ak.contents.NumpyArray):
        layout = ak.to_layout(ak.to_packed(array))
    offsets = np.asarray(layout.offsets)
    content = np.asarray(layout.content.data)
    if offsets[0] != 0 or len(content) != offsets[-1]:
        content = content[offsets[0] : offsets[-1]]
        offsets = offsets - offsets[0]
    return offsets, content


@dataclass(frozen=True)
class Slots:
    """Where the values of lists with given offsets land in an (n, length) grid."""

    length: int
    mask: np.ndarray  # (n, length) bool: True where a real value sits, False where padding
    keep: np.ndarray | None  # bool per value: False for values beyond `length`; None when none are cut

    @classmethod
    def for_offsets(cls, offsets: np.ndarray, length: int) -> "Slots":
        counts = np.diff(offsets)
        mask = np.arange(length) < counts[:, None]
        keep = None
        if len(counts) and counts.max() > length:
            # position of each value inside its list; those at >= length do not fit and are dropped
            position = np.arange(offsets[-1]) - np.repeat(offsets[:-1], counts)
            keep = position < length
        return cls(length, mask, keep)


def pad_into(out: np.ndarray, values: np.ndarray, slots: Slots, pad_value: float = 0.0) -> np.ndarray:
    """Fill the (n, length) array ``out`` (may be a column block of a wider matrix) from ``values``."""
    out[...] = pad_value
    out[slots.mask] = values if slots.keep is None else values[slots.keep]
    return out


def pad(values: np.ndarray, offsets: np.ndarray, length: int, pad_value: float = 0.0, dtype=np.float32):
    """(padded (n, length) array, mask) for one jagged branch; see the module docstring."""
    slots = Slots.for_offsets(offsets, length)
    out = np.empty((len(offsets) - 1, length), dtype=dtype)
    return pad_into(out, values, slots, pad_value), slots.mask
