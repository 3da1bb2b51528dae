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


def python_syntax(pattern: str) -> str:
    """JavaScript's named groups written the Python way: ``(?<lr>...)`` → ``(?P<lr>...)``, ``\\k<lr>`` → ``(?P=lr)``.

    People who write regular expressions in the browser (JavaScript, and PCRE and .NET too) write named
    groups without the ``P``; Python's ``re`` calls that an "unknown extension". Lookbehinds ``(?<=`` and
    ``(?<!`` are left alone, and so is anything escaped (``\\(?<``) or inside a character class (``[(?<]``),
    so a pattern that was valid Python means exactly what it meant.
    """
    return _translate(pattern)[0]


def _translate(pattern: str) -> tuple[str, list[int]]:
    """:func:`python_syntax`, and for each character of the result the position it came from in ``pattern``
    (an error message names the position the user typed, not one in our rewrite)."""
    out: list[str] = []
    origin: list[int] = []

    def put(text: str, start: int) -> None:
        out.append(text)
        origin.extend(min(start + k, len(pattern)) for k in range(len(text)))

    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if not in_class and pattern.startswith("k<", i + 1):
                end = pattern.find(">", i + 3)
                if end > i + 3:
                    put(f"(?P={pattern[i + 3 : end]})", i)
                    i = end + 1
                    continue
            put(pattern[i : i + 2], i)  # an escape: the next character is literal, whatever it is
            i += 2
        elif in_class:
            # "]" right after "[" or "[^" is a literal, not the end of the class.
            if ch == "]" and not (out and out[-1] in ("[", "[^")):
                in_class = False
            put(ch, i)
            i += 1
        elif ch == "[":
            in_class = True
            opening = "[^" if pattern.startswith("[^", i) else "["
            put(opening, i)
            i += len(opening)
        elif pattern.startswith("(?<", i) and i + 3 < n and pattern[i + 3] not in "=!":
            put("(?P<", i)
            i += 3
        else:
            put(ch, i)
            i += 1
    return "".join(out), origin


def compile_pattern(pattern: object) -> regex.Pattern:
    """Compile and check a scan pattern: a regular expression with at least one named group.

    JavaScript-style named groups are accepted (:func:`python_syntax`); the compiled pattern, and what is
    saved, is the Python spelling.
    """
    if not isinstance(pattern, str) or not pattern.strip():
        raise PatternError("Give a regular expression, e.g. lr_(?P<lr>[^/]+)/.*\\.png")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(
            f"The regular expression is {len(pattern)} characters long; it may have at most {MAX_PATTERN_LENGTH}."
        )
    typed = pattern
    pattern, origin = _translate(typed)
    try:
        # Checked with Python's re first: its syntax (and messages) are what users know, and it refuses
        # duplicate group names, which the regex module would silently accept. re only compiles here;
        # every match runs in regex, with a timeout.
        re.compile(pattern)
        compiled = regex.compile(pattern, flags=regex.VERSION0)
    except (re.error, regex.error, OverflowError, ValueError, RecursionError) as err:
        pos = getattr(err, "pos", None)  # re.error and regex.error have it
        if isinstance(pos, int):
            pos = origin[pos] if pos < len(origin) else len(typed)
        where = f" at position {pos}" if pos is not None else ""
        msg = getattr(err, "msg", None) or str(err)
        raise PatternError(f"The pattern is not a valid regular expression: {msg}{where}.") from None
    if not compiled.groupindex:
        raise PatternError(
            "The regular expression has no named group: name each parameter with (?P<name>...) or (?<name>...), "
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
            f"The regular expression needed more than {deadline.seconds:g} s (stopped at {path!r}); it probably "
            "has nested quantifiers such as (a+)+ or (a|a)*: make the parts unambiguous, e.g. [^/]+ for one "
            "folder name."
        ) from None
