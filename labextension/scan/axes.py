"""Parameter axes from the named groups of the matches: each group's distinct values, sorted so that a
person reads them in order (numbers as numbers: 2 before 10, 1e-3 before 0.01)."""

from __future__ import annotations

import math
import re


def as_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _natural_key(value: str):
    # 'seed2' before 'seed10' when the values are not plain numbers
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", value)]


def build_axes(names: list[str], matches: list[dict[str, str | None]]) -> list[dict]:
    """One axis per group name, in the order the groups appear in the pattern.

    A group that did not take part in a match (optional group) has the value None, shown first.
    """
    axes = []
    for name in names:
        values = {m.get(name) for m in matches}
        present = [v for v in values if v is not None]
        numbers = {v: as_number(v) for v in present}
        numeric = bool(present) and all(n is not None for n in numbers.values())
        if numeric:
            ordered = sorted(present, key=lambda v: (numbers[v], v))
        else:
            ordered = sorted(present, key=_natural_key)
        axes.append(
            {
                "name": name,
                "numeric": numeric,
                "values": ([None] if None in values else []) + ordered,
            }
        )
    return axes
