"""Which branches to read: what a tree offers (flat numbers or jagged lists of numbers), choosing and
excluding by name or glob pattern, and checking that every file has what the first one has."""

from __future__ import annotations

import fnmatch
import warnings
from dataclasses import dataclass

import numpy as np
import uproot

from .errors import MissingBranchError, UnsupportedBranchError


@dataclass(frozen=True)
class Branch:
    name: str
    kind: str  # "flat": one number per event; "jagged": a list of numbers per event
    dtype: str
    # jagged: the branch that counts the lists (nJet for Jet_pt, Jet_eta, ...); branches with the same
    # counter have the same list lengths, so their offsets and padding slots are computed once per chunk
    counter: str | None = None

    @property
    def jagged(self) -> bool:
        return self.kind == "jagged"


def _describe(branch) -> Branch | str:
    """A :class:`Branch`, or a string saying why this branch cannot become numbers."""
    interp = branch.interpretation
    if isinstance(interp, uproot.interpretation.numerical.AsDtype):
        if interp.inner_shape:
            return f"a fixed-size array {interp.inner_shape} per event"
        return Branch(branch.name, "flat", np.dtype(interp.to_dtype).name)
    if isinstance(interp, uproot.interpretation.jagged.AsJagged):
        content = interp.content
        if isinstance(content, uproot.interpretation.numerical.AsDtype) and not content.inner_shape:
            counter = getattr(branch, "count_branch", None)
            return Branch(
                branch.name, "jagged", np.dtype(content.to_dtype).name, counter.name if counter is not None else None
            )
        return "a list of non-numbers per event"
    return f"{type(interp).__name__} data (strings or objects)"


def available(tree) -> tuple[dict[str, Branch], dict[str, str]]:
    """(usable branches by name in tree order, unusable branch name → why)."""
    usable, unusable = {}, {}
    for branch in tree.itervalues(recursive=True):
        described = _describe(branch)
        if isinstance(described, Branch):
            usable[branch.name] = described
        else:
            unusable[branch.name] = described
    return usable, unusable


def _is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def select(tree, where: str, branches=None, exclude=()) -> list[Branch]:
    """The branches to read from ``tree`` (in the order asked for, patterns expanded in tree order).

    ``branches``: names or glob patterns (``"Jet_*"``); None means every usable branch. ``exclude``: names
    or patterns to drop afterwards. Asking for a branch that is not there, or one that is not numeric,
    raises; with ``branches=None`` non-numeric branches are skipped with a warning.
    """
    usable, unusable = available(tree)
    if isinstance(branches, str):
        branches = [branches]
    if isinstance(exclude, str):
        exclude = [exclude]
    if branches is None:
        chosen = list(usable)
        if unusable:
            skipped = ", ".join(f"{n} ({why})" for n, why in unusable.items())
            warnings.warn(
                f"{where}: skipping branches that are not numbers or lists of numbers: {skipped}", stacklevel=3
            )
    else:
        chosen = []
        for wanted in branches:
            if _is_pattern(wanted):
                hits = [n for n in usable if fnmatch.fnmatchcase(n, wanted)]
                if not hits:
                    raise MissingBranchError(
                        f"{where}: no numeric branch matches {wanted!r}; branches are {_short(usable)}"
                    )
            elif wanted in usable:
                hits = [wanted]
            elif wanted in unusable:
                raise UnsupportedBranchError(
                    f"{where}: branch {wanted!r} holds {unusable[wanted]}, which cannot be fed to a network; "
                    "leave it out of branches="
                )
            else:
                close = [n for n in usable if n.lower() == wanted.lower()]
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise MissingBranchError(f"{where}: no branch {wanted!r}{hint}; branches are {_short(usable)}")
            chosen += [n for n in hits if n not in chosen]
    dropped = [n for n in chosen if any(fnmatch.fnmatchcase(n, pat) for pat in exclude)]
    chosen = [n for n in chosen if n not in dropped]
    if not chosen:
        raise MissingBranchError(f"{where}: no branch left to read after exclude={list(exclude)!r}")
    return [usable[n] for n in chosen]


def check_same(first: list[Branch], first_where: str, tree, where: str) -> None:
    """Raise if ``tree`` lacks one of ``first`` (read from ``first_where``) or has it with another shape."""
    usable, unusable = available(tree)
    for branch in first:
        other = usable.get(branch.name)
        if other is None:
            why = f"holds {unusable[branch.name]}" if branch.name in unusable else "is missing"
            raise MissingBranchError(
                f"branch {branch.name!r} {why} in {where} but is in {first_where}; "
                f"leave it out with exclude=[{branch.name!r}] or fix the file"
            )
        if other.kind != branch.kind or other.counter != branch.counter:
            raise MissingBranchError(
                f"branch {branch.name!r} is {other.kind} in {where} but {branch.kind} in {first_where}; "
                f"the files do not hold the same data: exclude it with exclude=[{branch.name!r}]"
            )


def _short(names, limit: int = 20) -> str:
    names = list(names)
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
