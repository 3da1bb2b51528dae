"""A chunk of branches → one float32 feature matrix (normalized, jagged branches padded) and a mask.

:class:`Layout` fixes the columns: each flat branch is one column, each jagged branch ``L`` columns
(``Jet_pt[0]`` ... ``Jet_pt[L-1]``). The mask has one column per jagged column, True where a real value
sits. Padding is written after normalization, so a padded slot holds exactly ``pad_value`` (0 = the mean
for standard normalization) and the mask tells it apart from a real value that happens to be 0.
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass

import numpy as np

from .branches import Branch
from .errors import SpecsError
from .pad import Slots
from .specs import Specs


@dataclass(frozen=True)
class Block:
    branch: Branch
    start: int  # first column in the feature matrix
    length: int  # 1 for flat branches, the pad length for jagged ones
    mask_start: int  # first column in the mask (jagged branches)


class Layout:
    """Column order of the feature matrix and the mask."""

    def __init__(self, branches: list[Branch], lengths: dict[str, int]):
        self.blocks: list[Block] = []
        col = mcol = 0
        for b in branches:
            length = lengths[b.name] if b.jagged else 1
            self.blocks.append(Block(b, col, length, mcol))
            col += length
            mcol += length if b.jagged else 0
        self.width, self.mask_width = col, mcol

    @classmethod
    def build(cls, branches: list[Branch], pad_length, specs: Specs | None) -> Layout:
        """``pad_length``: int for every jagged branch, {name or glob: int}, or None for the longest list in
        ``specs`` (MLaaS4HEP's choice: nothing is cut, but one odd event can make every row long)."""
        lengths = {}
        for b in (b for b in branches if b.jagged):
            length = None
            if isinstance(pad_length, dict):
                length = next((v for k, v in pad_length.items() if fnmatch.fnmatchcase(b.name, k)), None)
            elif pad_length is not None:
                length = pad_length
            if length is None:
                if specs is None:
                    raise SpecsError(
                        f"no pad length for jagged branch {b.name}: give pad_length= or compute specs first "
                        "(the longest list seen becomes the pad length)"
                    )
                length = max(1, specs.branches[b.name].max_len)
            if not isinstance(length, (int, np.integer)) or length < 1:
                raise ValueError(f"pad length for {b.name} must be a positive integer, got {length!r}")
            lengths[b.name] = int(length)
        return cls(branches, lengths)

    @property
    def branches(self) -> list[Branch]:
        return [blk.branch for blk in self.blocks]

    @property
    def columns(self) -> list[str]:
        names = []
        for blk in self.blocks:
            names += (
                [blk.branch.name] if not blk.branch.jagged else [f"{blk.branch.name}[{i}]" for i in range(blk.length)]
            )
        return names

    @property
    def mask_columns(self) -> list[str]:
        return [c for blk in self.blocks if blk.branch.jagged for c in self.columns[blk.start : blk.start + blk.length]]


class Encoder:
    """Turns chunks read from the files into (features, mask) with one layout and one normalization."""

    def __init__(self, layout: Layout, specs: Specs | None, method: str = "standard", pad_value: float = 0.0):
        if method != "none":
            if specs is None:
                raise SpecsError(f"normalization {method!r} needs specs: call fit_specs() or pass specs=")
            specs.check(layout.branches)
        self.layout, self.pad_value = layout, float(pad_value)
        self._spares: list[tuple[np.ndarray, np.ndarray]] = []
        self.scalers = {
            blk.branch.name: (specs.branches[blk.branch.name].scaler(method) if specs is not None else (0.0, 1.0))
            for blk in layout.blocks
        }

    def _normalize_into(self, name: str, values: np.ndarray, out: np.ndarray) -> None:
        shift, scale = self.scalers[name]
        np.subtract(values, np.float32(shift), out=out, dtype=np.float32, casting="unsafe")
        if scale != 1.0:
            out *= np.float32(scale)

    def encode(self, columns: dict) -> tuple[np.ndarray, np.ndarray]:
        """(features (n, width) float32, mask (n, mask_width) bool) for {name: Column} of one chunk.

        Both are built feature-major, (width, n), and returned transposed (Fortran-ordered views): each
        branch then writes contiguous memory (see :mod:`condorhub.data.pad`). Values may arrive in the
        file's byte order: the cast to float32 inside the normalization converts them in the same pass.
        """
        blocks = self.layout.blocks
        n = len(columns[blocks[0].branch.name])
        xt, maskt = self._buffers(n)
        slots_cache: dict = {}
        for blk in blocks:
            name = blk.branch.name
            column = columns[name]
            if not blk.branch.jagged:
                self._normalize_into(name, column.values, xt[blk.start])
                continue
            slots = self._slots(slots_cache, blk.branch, column.offsets, blk.length)
            kept = column.values if slots.keep is None else column.values[slots.keep]
            values = np.empty(len(kept), dtype=np.float32)
            self._normalize_into(name, kept, values)
            # padding is written after normalization: a padded slot is exactly pad_value
            slots.fill(xt[blk.start : blk.start + blk.length], values, self.pad_value)
            maskt[blk.mask_start : blk.mask_start + blk.length] = slots.mask
        return xt.T, maskt.T

    @staticmethod
    def _slots(cache: dict, branch, offsets: np.ndarray, length: int) -> Slots:
        """Slots for these offsets, shared by the branches of one collection (same counter branch)."""
        key = (branch.counter or branch.name, length)
        cached = cache.get(key)
        if cached is not None and (cached[0] is offsets or np.array_equal(cached[0], offsets)):
            return cached[1]
        slots = Slots.for_offsets(offsets, length)
        cache[key] = (offsets, slots)
        return slots

    def _buffers(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(features, mask) arrays, feature-major, for n events, cut from a spare flat buffer of an earlier
        chunk when nobody holds it (or any view of it) any more, else from new ones. A fresh 100 MB array
        costs its page faults on first write, about 10% of encoding; reuse is decided by reference counts
        (every view keeps its base alive), so a chunk the caller still holds is never overwritten."""
        need_x, need_m = self.layout.width * n, self.layout.mask_width * n
        for flat_x, flat_m in self._spares:
            # referenced only by the spares' tuple and getrefcount's argument: no chunk or view uses it
            if flat_x.size >= need_x and sys.getrefcount(flat_x) <= 3 and sys.getrefcount(flat_m) <= 3:
                break
        else:
            # 1% headroom: the chunks of one epoch differ by a few events
            flat_x = np.empty(need_x + need_x // 100, dtype=np.float32)
            flat_m = np.empty(need_m + need_m // 100, dtype=bool)
            self._spares = [*self._spares[-1:], (flat_x, flat_m)]  # a loop variable holds the previous chunk
        return (flat_x[:need_x].reshape(self.layout.width, n), flat_m[:need_m].reshape(self.layout.mask_width, n))
