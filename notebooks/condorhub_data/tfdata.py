"""A RootStream as a ``tf.data.Dataset`` of (features, labels) batches for Keras, streamed chunk by chunk.

Batches are cut across chunk boundaries (the rows left over from one chunk start the next batch), so every
batch but the last of an epoch has exactly ``batch_size`` rows and the number of batches per epoch is known:
Keras shows a progress bar with a total from the first epoch on. Each pass over the dataset (each Keras
epoch) is a new epoch of the stream, with a new shuffle.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .stream import RootStream


def batches(stream: RootStream, batch_size: int, *, epoch: int = 0, shuffle: bool = True, with_mask: bool = False):
    """(x, y) numpy batches of one epoch; x has the mask columns (as 0/1) appended when ``with_mask``."""
    carry_x = carry_y = None
    for chunk in stream.chunks(epoch=epoch, shuffle=shuffle):
        x = np.concatenate([chunk.x, chunk.mask.astype(np.float32)], axis=1) if with_mask else chunk.x
        y = chunk.y if chunk.y is not None else np.zeros(len(x), dtype=np.int32)
        if carry_x is not None:
            x, y = np.concatenate([carry_x, x]), np.concatenate([carry_y, y])
        full = len(x) - len(x) % batch_size
        for i in range(0, full, batch_size):  # one step per batch of rows, not per event
            yield x[i : i + batch_size], y[i : i + batch_size]
        carry_x, carry_y = (x[full:], y[full:]) if full < len(x) else (None, None)
    if carry_x is not None:
        yield carry_x, carry_y


def to_tf_dataset(
    stream: RootStream, batch_size: int = 256, *, shuffle: bool = True, with_mask: bool = False, start_epoch: int = 0
):
    """The stream as a repeatable ``tf.data.Dataset`` with known cardinality (batches per epoch)."""
    import tensorflow as tf

    width = stream.layout.width + (stream.layout.mask_width if with_mask else 0)
    epochs = itertools.count(start_epoch)

    def generate():
        yield from batches(stream, batch_size, epoch=next(epochs), shuffle=shuffle, with_mask=with_mask)

    dataset = tf.data.Dataset.from_generator(
        generate,
        output_signature=(
            tf.TensorSpec(shape=(None, width), dtype=tf.float32),
            tf.TensorSpec(shape=(None,), dtype=tf.int32),
        ),
    )
    n_batches = math.ceil(stream.num_events / batch_size)
    # reading and encoding the next chunk overlaps with training on this one
    return dataset.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(tf.data.AUTOTUNE)
