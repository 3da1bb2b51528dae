"""condorhub.data: ROOT files (local or over XRootD) → normalized, padded, shuffled training chunks.

MLaaS4HEP's streaming and training layers, vectorized with awkward and numpy:

- :class:`RootStream` reads labelled files in chunks with uproot (choose/exclude branches, mix files by
  label in proportion, shuffle), pads jagged branches to a fixed length with a mask, and normalizes with
  :class:`Specs` from a first pass that can be saved and reloaded;
- :func:`to_tf_dataset` feeds it to Keras as a ``tf.data.Dataset`` without loading the data into memory;
- :mod:`condorhub.data.toy` writes toy ROOT files for the course, the tests and the benchmark;
- errors are :class:`DataError` subclasses whose message names the problem and the fix.
"""

from .errors import (
    CorruptFileError,
    DataError,
    EmptyFileError,
    LabelMismatchError,
    MissingBranchError,
    MissingFileError,
    MissingTreeError,
    RemoteAccessError,
    SpecsError,
    UnsupportedBranchError,
)
from .pad import pad
from .specs import BranchStats, Specs
from .stream import Chunk, RootStream


def to_tf_dataset(stream, batch_size=256, **kwargs):
    """See :func:`condorhub.data.tfdata.to_tf_dataset` (imported lazily: TensorFlow takes seconds to load)."""
    from .tfdata import to_tf_dataset as build

    return build(stream, batch_size, **kwargs)


__all__ = [
    "BranchStats",
    "Chunk",
    "CorruptFileError",
    "DataError",
    "EmptyFileError",
    "LabelMismatchError",
    "MissingBranchError",
    "MissingFileError",
    "MissingTreeError",
    "RemoteAccessError",
    "RootStream",
    "Specs",
    "SpecsError",
    "UnsupportedBranchError",
    "pad",
    "to_tf_dataset",
]
