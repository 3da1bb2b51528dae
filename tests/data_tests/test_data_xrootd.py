"""The same files read through a real XRootD server (Debian's xrootd-server on loopback) with uproot and
fsspec-xrootd give exactly what reading them locally gives."""

from __future__ import annotations

import numpy as np
import pytest

from condorhub.data import MissingFileError, MissingTreeError, RemoteAccessError, RootStream
from tests.support.ports import free_port


def test_remote_chunks_equal_local_chunks(xrootd, mix_files):
    remote = {label: xrootd.url(path) for label, path in mix_files.items()}
    assert remote["a"].startswith("root://127.0.0.1:")
    kwargs = dict(branches=["event", "x", "Jet_*"], pad_length=3, chunk_size=800, seed=3)
    local_stream, remote_stream = RootStream(mix_files, **kwargs), RootStream(remote, **kwargs)
    assert remote_stream.fit_specs().branches == local_stream.fit_specs().branches
    local_chunks = list(local_stream.chunks(epoch=1))
    remote_chunks = list(remote_stream.chunks(epoch=1))
    assert len(remote_chunks) == len(local_chunks) > 1
    for a, b in zip(local_chunks, remote_chunks):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_array_equal(a.y, b.y)


def test_remote_jagged_edge_cases(xrootd, data_dir):
    stream = RootStream(xrootd.url(data_dir / "edge.root"), branches=["Jet_pt"], pad_length=3, normalize="none",
                        chunk_size=7)
    local = RootStream(data_dir / "edge.root", branches=["Jet_pt"], pad_length=3, normalize="none", chunk_size=7)
    for a, b in zip(stream.chunks(shuffle=False), local.chunks(shuffle=False), strict=True):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.mask, b.mask)


def test_remote_missing_file(xrootd, data_dir):
    url = xrootd.url(data_dir) + "/not_there.root"
    with pytest.raises(MissingFileError, match=r"not_there.root: no such file on the XRootD server"):
        RootStream(url)


def test_remote_missing_tree(xrootd, data_dir):
    with pytest.raises(MissingTreeError, match=r"has no tree 'Events'; it has 'tree'"):
        RootStream(xrootd.url(data_dir / "other_tree.root"))


def test_server_not_running_is_a_clear_error():
    port = free_port()  # nobody listens there
    with pytest.raises(RemoteAccessError, match=r"cannot connect to 127.0.0.1:\d+ \(Connection refused\); is the server up"):
        RootStream(f"root://127.0.0.1:{port}//data/a.root", timeout=5)


def test_remote_read_after_importing_tensorflow_first(xrootd, mix_files):
    """A notebook imports tensorflow, then reads root:// files: TensorFlow's BoringSSL symbols must not
    capture the XRootD client's OpenSSL (that crashed the kernel with SIGSEGV before condorhub.data loaded
    the client with RTLD_DEEPBIND). A fresh interpreter makes the import order certain."""
    import subprocess
    import sys

    code = (
        "import tensorflow\n"
        "from condorhub.data import RootStream\n"
        f"s = RootStream({xrootd.url(mix_files['a'])!r}, branches=['event'], normalize='none')\n"
        "print(sum(len(c) for c in s.chunks()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "3000"
