"""The user's regular expression: compiled with the ``regex`` module so that every match has a deadline.

Python's ``re`` cannot be interrupted, so a pattern with nested quantifiers (``(a|a)+$``) can pin a server
thread for minutes. ``regex`` takes a ``timeout`` per call; we hand each call the time left of one budget
for the whole request, so a catastrophic pattern is answered with a 400 after at most that budget, however
many paths there are.
"""

from __future__ import annotations

import re
import time

import regex

#: Longer patterns are refused: nobody types them, and huge repetitions cost memory at compile time.
MAX_PATTERN_LENGTH = 2000


class PatternError(ValueError):
    """The pattern cannot be used; the message says why and how to fix it (answered as HTTP 400)."""


def compile_pattern(pattern: object) -> regex.Pattern:
    """Compile and check a scan pattern: a regular expression with at least one named group."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise PatternError("give a regular expression, e.g. lr_(?P<lr>[^/]+)/.*\\.png")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"the regular expression is {len(pattern)} characters long; at most {MAX_PATTERN_LENGTH}")
    try:
        # Checked with Python's re first: its syntax (and messages) are what users know, and it refuses
        # duplicate group names, which the regex module would silently accept. re only compiles here;
        # every match runs in regex, with a timeout.
        re.compile(pattern)
        compiled = regex.compile(pattern, flags=regex.VERSION0)
    except (re.error, regex.error, OverflowError, ValueError, RecursionError) as err:
        pos = getattr(err, "pos", None)  # re.error and regex.error have it
        where = f" at position {pos}" if pos is not None else ""
        msg = getattr(err, "msg", None) or str(err)
        raise PatternError(f"invalid regular expression: {msg}{where}") from None
    if not compiled.groupindex:
        raise PatternError(
            "the regular expression has no named group: name each parameter with (?P<name>...), "
            "e.g. lr_(?P<lr>[^/]+)/layers_(?P<layers>\\d+)/.*\\.png"
        )
    return compiled


class Deadline:
    """One time budget shared by all the matches of a request."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def fullmatch(compiled: regex.Pattern, path: str, deadline: Deadline):
    """Match the whole relative path, or raise PatternError when the budget is spent."""
    left = deadline.left()
    try:
        if left <= 0:
            raise TimeoutError
        return compiled.fullmatch(path, timeout=left)
    except TimeoutError:
        raise PatternError(
            f"the regular expression needed more than {deadline.seconds:g} s (stopped at {path!r}); it probably "
            "has nested quantifiers such as (a+)+ or (a|a)*: make the parts unambiguous, e.g. [^/]+ for one "
            "folder name"
        ) from None
