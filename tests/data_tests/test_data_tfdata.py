"""The stream as a tf.data.Dataset: fixed-size batches across chunk boundaries, a known number of batches,
a new shuffle per epoch, and a Keras model that learns from the toy topology files."""

from __future__ import annotations

import numpy as np

from condorhub.data import RootStream, to_tf_dataset, toy

from tests.support.data import MIX_SIZES


def test_batches_cross_chunk_boundaries(mix_files):
    from condorhub.data.tfdata import batches

    stream = RootStream(mix_files, branches=["event"], normalize="none", chunk_size=700)
    sizes = [len(x) for x, _ in batches(stream, 256)]
    total = sum(MIX_SIZES.values())
    assert sum(sizes) == total
    assert sizes[:-1] == [256] * (len(sizes) - 1) and sizes[-1] == total % 256


def test_dataset_shapes_cardinality_and_mask_columns(mix_files):
    stream = RootStream(mix_files, branches=["x", "Jet_pt"], pad_length=4, chunk_size=1000)
    ds = to_tf_dataset(stream, batch_size=500, with_mask=True)
    assert int(ds.cardinality()) == 11  # ceil(5100 / 500): Keras shows a total from the first epoch
    x, y = next(iter(ds))
    assert x.shape == (500, 1 + 4 + 4) and x.dtype.name == "float32"
    assert set(np.unique(x[:, 5:].numpy())) <= {0.0, 1.0}  # the mask columns
    assert y.shape == (500,) and set(np.unique(y.numpy())) <= {0, 1, 2}


def test_each_pass_is_a_new_epoch(mix_files):
    stream = RootStream(mix_files, branches=["event"], normalize="none", chunk_size=1000)
    ds = to_tf_dataset(stream, batch_size=5100)
    first = next(iter(ds))[0].numpy().ravel()
    second = next(iter(ds))[0].numpy().ravel()
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)


def test_keras_learns_the_toy_topologies(tmp_path):
    import keras

    files = toy.write_topology_files(tmp_path, 4000, basket=1000)
    stream = RootStream(files, branches=toy.HLF_FEATURES, chunk_size=4000)
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((stream.layout.width,)),
        keras.layers.Dense(50, activation="relu"),
        keras.layers.Dense(20, activation="relu"),
        keras.layers.Dense(10, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(to_tf_dataset(stream, batch_size=256), epochs=3, verbose=0, shuffle=False)
    assert history.history["accuracy"][-1] > 0.8  # three classes: chance is 1/3
