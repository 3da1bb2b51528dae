"""Normalization statistics from a first pass over the data ("specs", as MLaaS4HEP calls them), saved as
JSON and reloaded so that training, validation and later inference normalize the same way.

Per branch: count, mean, spread (as M2, the sum of squared deviations), min, max, and for jagged branches
the longest list seen (the default pad length). Chunks are summarized with numpy and merged with Chan et
al.'s parallel formula, so one pass over any number of chunks and files gives exact mean and variance
without holding the data.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SpecsError

FORMAT = "condorhub.data.specs/1"
METHODS = ("standard", "minmax", "none")


@dataclass
class BranchStats:
    kind: str
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    max_len: int = 0  # longest list (jagged branches)
    nonfinite: int = 0  # NaN/inf values seen (left out of the statistics)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else 0.0

    def add(self, values: np.ndarray, max_len: int = 0) -> None:
        """Merge the statistics of ``values`` (a flat numpy array) into these."""
        self.max_len = max(self.max_len, int(max_len))
        if values.size == 0:
            return
        values = values.astype(np.float64, copy=False)
        lo, hi = values.min(), values.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):  # rare: only then pay for a finite-mask pass
            finite = np.isfinite(values)
            self.nonfinite += int(values.size - finite.sum())
            values = values[finite]
            if values.size == 0:
                return
            lo, hi = values.min(), values.max()
        n = values.size
        mean = float(values.mean())
        m2 = float(np.square(values - mean).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.min = min(self.min, float(lo))
        self.max = max(self.max, float(hi))

    def scaler(self, method: str) -> tuple[float, float]:
        """(shift, scale) so that the normalized value is (x - shift) * scale."""
        if method == "none" or self.count == 0:
            return 0.0, 1.0
        if method == "standard":
            std = self.std
            return self.mean, (1.0 / std if std > 0 else 1.0)
        if method == "minmax":
            span = self.max - self.min
            return self.min, (1.0 / span if span > 0 else 1.0)
        raise SpecsError(f"unknown normalization {method!r}; use one of {', '.join(METHODS)}")


@dataclass
class Specs:
    """Statistics of the selected branches over the files of a first pass."""

    tree: str
    branches: dict[str, BranchStats] = field(default_factory=dict)
    n_events: int = 0
    files: list[str] = field(default_factory=list)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        data: dict[str, Any] = {
            "format": FORMAT,
            "tree": self.tree,
            "n_events": self.n_events,
            "files": self.files,
            "branches": {name: asdict(stats) for name, stats in self.branches.items()},
        }
        # JSON has no infinity: an empty branch keeps min/max as null
        for stats in data["branches"].values():
            for key in ("min", "max"):
                if not math.isfinite(stats[key]):
                    stats[key] = None
        path.write_text(json.dumps(data, indent=1))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Specs:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise SpecsError(f"{path}: no such specs file; compute it with stream.fit_specs() and save it") from None
        except (OSError, ValueError) as exc:
            raise SpecsError(f"{path} is not a specs JSON file ({exc}); compute the specs again") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SpecsError(f"{path} is not a condorhub.data specs file (format {FORMAT!r}); compute the specs again")
        try:
            branches = {}
            for name, stats in data["branches"].items():
                stats = dict(stats)
                stats["min"] = math.inf if stats["min"] is None else stats["min"]
                stats["max"] = -math.inf if stats["max"] is None else stats["max"]
                branches[name] = BranchStats(**stats)
            return cls(tree=data["tree"], branches=branches, n_events=int(data["n_events"]), files=list(data["files"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecsError(
                f"{path}: specs file is incomplete ({type(exc).__name__}: {exc}); compute the specs again"
            ) from None

    def check(self, branches, where: str = "specs") -> None:
        """Raise if a selected branch has no statistics here or they were taken with another shape."""
        missing = [b.name for b in branches if b.name not in self.branches]
        if missing:
            raise SpecsError(
                f"{where} has no statistics for {', '.join(missing)}; they were computed for other branches: "
                "compute the specs again with the same branches"
            )
        for b in branches:
            if self.branches[b.name].kind != b.kind:
                raise SpecsError(f"{where}: {b.name} is {self.branches[b.name].kind} there but {b.kind} in the files")
