"""Scan patterns as people type them: JavaScript-style named groups become Python's, nothing else changes,
and a mistake reads as a sentence naming the position typed (pure logic; the API is in test_lab_scan_api.py)."""

import re

import pytest

from condorhub.lab.scan.pattern import PatternError, compile_pattern, python_syntax


@pytest.mark.parametrize(
    "typed, python",
    [
        (r"lr_(?<lr>[^/]+)/layers_(?<layers>\d+)", r"lr_(?P<lr>[^/]+)/layers_(?P<layers>\d+)"),
        (r"(?<a>x)\k<a>", r"(?P<a>x)(?P=a)"),  # JavaScript's backreference too
        (r"(?<=seed_)(?<seed>\d)(?<!0)", r"(?<=seed_)(?P<seed>\d)(?<!0)"),  # lookbehinds untouched
        (r"\(?<x>(?P<y>.)", r"\(?<x>(?P<y>.)"),  # an escaped parenthesis is a literal "("
        (r"[(?<x>](?<y>.)", r"[(?<x>](?P<y>.)"),  # inside a character class: literal characters
        (r"[]?<x>](?<y>.)", r"[]?<x>](?P<y>.)"),  # "]" first in a class does not end it
        (r"[^]\]](?<y>.)", r"[^]\]](?P<y>.)"),
        (r"lr_(?P<lr>[^/]+)", r"lr_(?P<lr>[^/]+)"),  # already Python: unchanged
    ],
)
def test_javascript_named_groups_are_written_the_python_way(typed, python):
    assert python_syntax(typed) == python
    re.compile(python)


def test_the_compiled_and_saved_pattern_is_pythons_spelling_with_the_same_groups():
    compiled = compile_pattern(r"lr_(?<lr>[^/]+)/(?<file>.+)")
    assert compiled.pattern == r"lr_(?P<lr>[^/]+)/(?P<file>.+)"
    assert compiled.fullmatch("lr_0.1/roc.png").groupdict() == {"lr": "0.1", "file": "roc.png"}


@pytest.mark.parametrize(
    "typed, message",
    [
        # The brief's example: a sentence, and the position counts what the user typed.
        (r"lr_(?<lr>[^/]+)/(?<x>[^/]+", "The pattern is not a valid regular expression: missing ), unterminated "
                                      "subpattern at position 16."),
        (r"(?<a>x)(?<a>y)", "The pattern is not a valid regular expression: redefinition of group name 'a' as "
                            "group 2; was group 1 at position 10."),
        ("", "Give a regular expression, e.g. lr_(?P<lr>[^/]+)/.*\\.png"),
    ],
)
def test_mistakes_read_as_sentences(typed, message):
    with pytest.raises(PatternError) as err:
        compile_pattern(typed)
    assert str(err.value) == message
    assert "(400)" not in str(err.value)


def test_no_named_group_explains_both_spellings():
    with pytest.raises(PatternError, match=r"with \(\?P<name>\.\.\.\) or \(\?<name>\.\.\.\)"):
        compile_pattern(r"lr_([^/]+)")
