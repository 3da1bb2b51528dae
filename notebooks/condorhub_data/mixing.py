"""Which entries of which file go into which chunk, so that every chunk holds the labels in the right
proportions and each epoch sees the data in a new order — decided per file and chunk, never per event.

Each file contributes its quota of events split into K nearly equal contiguous parts (K = number of
chunks); chunk k takes one part of every file. With shuffling, every epoch rotates each file's parts by a
random amount, picks a random window when a file is only partly used, and permutes the chunk order; the
stream then permutes the rows inside each chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import LabelMismatchError


@dataclass(frozen=True)
class Piece:
    file: int  # index into the stream's files
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def quotas(entries: list[int], labels: list[int], fractions: dict[int, float] | None = None) -> list[int]:
    """Events to use per file and epoch: all of them, or as many as keep each label at its fraction.

    ``labels[i]`` is the class index of file i; ``fractions`` maps class index → share of the events.
    """
    if not fractions:
        return list(entries)
    total = sum(fractions.values())
    if total <= 0 or any(f < 0 for f in fractions.values()):
        raise LabelMismatchError(f"fractions must be non-negative with a positive sum, got {fractions}")
    shares = {label: f / total for label, f in fractions.items()}
    per_label = {label: sum(n for n, lab in zip(entries, labels, strict=True) if lab == label) for label in shares}
    # the largest epoch in which every label reaches its share without reusing events
    epoch = min(per_label[label] / share for label, share in shares.items() if share > 0)
    out = []
    for n, label in zip(entries, labels, strict=True):
        share = shares.get(label, 0.0)
        out.append(int(epoch * share * n / per_label[label]) if per_label.get(label) else 0)
    return out


def _bounds(quota: int, parts: int, clusters: np.ndarray | None, alone: bool) -> np.ndarray:
    """K+1 boundaries splitting [0, quota) evenly, moved onto basket-cluster boundaries (a chunk boundary
    inside a basket means decompressing that basket twice) when that keeps every part non-empty and, if
    other files share the chunks (``alone`` False), moves no boundary by more than 2.5% of a part, so the
    label proportions of each chunk stay right."""
    bounds = np.rint(np.linspace(0, quota, parts + 1)).astype(np.int64)
    small = clusters is not None and len(clusters) > 2 and np.diff(clusters).max() * 20 <= quota / parts
    if clusters is not None and len(clusters) > 2 and (alone or small):
        inner = clusters[(clusters > 0) & (clusters < quota)]
        if len(inner) >= parts - 1 and parts > 1:
            candidates = np.concatenate(([0], inner, [quota]))
            pos = np.clip(np.searchsorted(candidates, bounds), 1, len(candidates) - 1)
            nearer = np.where(bounds - candidates[pos - 1] <= candidates[pos] - bounds, pos - 1, pos)
            snapped = candidates[nearer]
            if np.all(np.diff(snapped) > 0):
                bounds = snapped
    return bounds


def plan(
    entries: list[int],
    quota: list[int],
    chunk_size: int,
    *,
    epoch: int = 0,
    shuffle: bool = False,
    seed: int = 0,
    clusters: list[np.ndarray | None] | None = None,
) -> list[list[Piece]]:
    """The chunks of one epoch, each a list of pieces (one per file that has events in it)."""
    total = sum(quota)
    if total == 0:
        return []
    parts = max(1, math.ceil(total / chunk_size))
    rng = np.random.default_rng([seed, epoch])
    clusters = clusters or [None] * len(entries)
    chunks: list[list[Piece]] = [[] for _ in range(parts)]
    for i, (n, q) in enumerate(zip(entries, quota, strict=True)):
        if q == 0:
            continue
        offset = int(rng.integers(0, n - q + 1)) if shuffle and q < n else 0
        # clusters only line up with the parts when the file is read from its first entry
        alone = sum(1 for other in quota if other) == 1
        bounds = _bounds(q, parts, clusters[i] if offset == 0 else None, alone) + offset
        shift = int(rng.integers(parts)) if shuffle else 0
        for k in range(parts):
            part = (k + shift) % parts
            start, stop = int(bounds[part]), int(bounds[part + 1])
            if stop > start:
                chunks[k].append(Piece(i, start, stop))
    order = rng.permutation(parts) if shuffle else range(parts)
    return [chunks[k] for k in order if chunks[k]]
