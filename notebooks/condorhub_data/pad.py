"""Jagged lists → fixed-length rows with padding and a mask, on whole chunks at once (numpy, no loop over
events).

A jagged branch arrives as ``offsets`` (n+1 list boundaries) and ``content`` (all values back to back).
Value i of the content belongs to event ``row[i]`` at position ``position[i]`` in its list; the first
``length`` positions survive. The padded block is stored *slot-major*, shape (length, n): slot j of every
event is one contiguous row, so filling the padding and scattering the values are two sequential passes,
and the caller's feature matrix, kept as (features, n) and handed out transposed, gets whole contiguous
rows. (An (n, length) block inside an (n, features) matrix would be written with a stride of the full
row width for every branch: measured 3-4x slower.)

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
    """Where the values of lists with given offsets land in a slot-major (length, n) block."""

    length: int
    mask: np.ndarray  # (length, n) bool: True where a real value sits, False where padding
    index: np.ndarray  # flat position in the (length, n) block of every value that fits
    keep: np.ndarray | None  # bool per value: False for values beyond `length`; None when none are cut

    @classmethod
    def for_offsets(cls, offsets: np.ndarray, length: int) -> Slots:
        counts = np.diff(offsets)
        n = len(counts)
        mask = np.arange(length)[:, None] < counts[None, :]
        # value i sits in row r at position p = i - offsets[r]; its flat index p * n + r
        # = i * n + (r - offsets[r] * n): one repeat of a per-row term, plus i * n
        index = np.repeat(np.arange(n, dtype=np.int64) - offsets[:-1] * n, counts)
        index += np.arange(offsets[-1], dtype=np.int64) * n
        keep = None
        if n and counts.max() > length:  # lists longer than the pad length lose their tail
            keep = index // n < length  # the position, as r < n
            index = index[keep]
        return cls(length, mask, index, keep)

    def fill(self, block: np.ndarray, values: np.ndarray, pad_value: float = 0.0) -> np.ndarray:
        """Write ``values`` (the kept ones, in content order) into the contiguous (length, n) ``block``."""
        block.fill(pad_value)
        block.reshape(-1)[self.index] = values
        return block


def pad(values: np.ndarray, offsets: np.ndarray, length: int, pad_value: float = 0.0, dtype=np.float32):
    """(padded (n, length) array, (n, length) mask) for one jagged branch given as offsets and values."""
    slots = Slots.for_offsets(offsets, length)
    kept = values if slots.keep is None else values[slots.keep]
    block = slots.fill(np.empty((length, len(offsets) - 1), dtype=dtype), kept, pad_value)
    return block.T, slots.mask.T
