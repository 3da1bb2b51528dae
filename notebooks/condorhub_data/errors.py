"""What can go wrong reading training data, as exceptions whose message names the problem and the fix.

Every error a student can cause with a wrong argument or a bad file is one of these, never a bare
KeyError or a deserialization traceback from deep inside uproot.
"""

from __future__ import annotations


class DataError(Exception):
    """Base class: reading or preparing ROOT training data failed; the message says why and what to do."""


class MissingFileError(DataError):
    """A file (local path or XRootD URL) does not exist."""


class MissingTreeError(DataError):
    """The file has no TTree of the requested name."""


class MissingBranchError(DataError):
    """A requested branch is not in the tree, or is missing in one of several files."""


class UnsupportedBranchError(DataError):
    """A branch holds something that is not a number or a list of numbers (strings, objects, ...)."""


class EmptyFileError(DataError):
    """The file is 0 bytes long, or its tree has no entries."""


class CorruptFileError(DataError):
    """The file is not a readable ROOT file: truncated, overwritten, or not ROOT at all."""


class RemoteAccessError(DataError):
    """A root:// URL cannot be read: XRootD client missing, server unreachable, permission denied."""


class LabelMismatchError(DataError):
    """The labels do not fit the files (different counts, unknown label in fractions, ...)."""


class SpecsError(DataError):
    """Saved normalization specs are unreadable or do not match the selected branches."""
