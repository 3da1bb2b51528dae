"""Opening a TTree in a local ROOT file or over XRootD, with uproot, turning failures into clear errors.

Remote files are read through uproot's fsspec source with ``fsspec-xrootd`` (the XRootD client from the
``xrootd`` wheel). Reading goes through :func:`read_arrays` so that a file that turns out to be corrupt in
the middle (a bad basket) fails with the same :class:`CorruptFileError` as one that is corrupt at open.
"""

from __future__ import annotations

import os
import socket
import sys
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import uproot

from .errors import (
    CorruptFileError,
    EmptyFileError,
    MissingFileError,
    MissingTreeError,
    RemoteAccessError,
)

REMOTE_SCHEMES = ("root://", "xroot://")


def _load_xrootd_client() -> None:
    """Import the XRootD client with RTLD_DEEPBIND, once, so it binds to its own OpenSSL.

    TensorFlow loads libtensorflow_framework globally, and that library exports BoringSSL's CRYPTO_*
    symbols: an XRootD client loaded after it binds its TLS set-up to them and crashes the process
    (SIGSEGV in CRYPTO_get_ex_new_index from libXrdUtils' static initializer). Students import
    tensorflow first, so the order cannot be left to them. Loading it here, at import of condorhub.data,
    with the client's own symbols placed first, works in either order.
    """
    if "XRootD.client" in sys.modules:
        return
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_NOW | os.RTLD_DEEPBIND)
    try:
        import XRootD.client  # noqa: F401
    except ImportError:  # reported when a root:// URL is used (_check_remote_client)
        pass
    finally:
        sys.setdlopenflags(flags)


_load_xrootd_client()

# What uproot and its decompressors raise for bytes that are not what the ROOT format promises.
_DECODE_ERRORS = (ValueError, zlib.error, EOFError, IndexError, AssertionError, OverflowError)


def _why(exc: BaseException) -> str:
    """The first line of an exception (uproot appends "in file ..." lines: the file is named already)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def is_remote(path: str | os.PathLike) -> bool:
    return str(path).startswith(REMOTE_SCHEMES)


def _check_remote_client() -> None:
    try:
        import fsspec_xrootd  # noqa: F401
        import XRootD  # noqa: F401
    except ImportError as exc:
        raise RemoteAccessError(
            f"reading root:// URLs needs the XRootD client ({_why(exc)}); install it with "
            "pip install 'condorhub[data]' (fsspec-xrootd and the xrootd wheel)"
        ) from None


def _check_reachable(url: str, timeout: float) -> None:
    """Fail at once when nothing listens at the URL's host:port: the XRootD client itself would retry for
    many seconds before giving up with a less helpful message."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 1094
    if not host:
        raise RemoteAccessError(f"{url}: no host in the URL; write root://host[:port]//path/to/file.root")
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 10)):
            pass
    except OSError as exc:
        raise RemoteAccessError(
            f"{url}: cannot read from the XRootD server: cannot connect to {host}:{port} ({exc.strerror or exc}); "
            "is the server up and the host:port right?"
        ) from None


def _check_local(path: Path) -> None:
    if not path.exists():
        raise MissingFileError(f"{path}: no such file; check the path (relative paths start at {Path.cwd()})")
    if path.is_dir():
        raise MissingFileError(f"{path} is a folder, not a ROOT file; name the .root files inside it")
    if path.stat().st_size == 0:
        raise EmptyFileError(f"{path} is empty (0 bytes): the job that wrote it probably failed; write it again")


def open_file(path: str | os.PathLike, timeout: float = 30):
    """The uproot ReadOnlyFile for a local path or a root:// URL."""
    name = str(path)
    if is_remote(name):
        _check_remote_client()
        _check_reachable(name, timeout)
        try:
            return uproot.open(name, timeout=timeout)
        except FileNotFoundError:
            raise MissingFileError(
                f"{name}: no such file on the XRootD server; check the path after the host"
            ) from None
        except PermissionError as exc:
            raise RemoteAccessError(
                f"{name}: the XRootD server refused access ({_why(exc)}); check your credentials"
            ) from None
        except (OSError, TimeoutError) as exc:
            # fsspec-xrootd raises OSError carrying the XRootD status: 3011 kXR_NotFound, 3010 kXR_NotAuthorized
            if "[3011]" in str(exc):
                raise MissingFileError(
                    f"{name}: no such file on the XRootD server; check the path after the host"
                ) from None
            if "[3010]" in str(exc):
                raise RemoteAccessError(
                    f"{name}: the XRootD server refused access ({_why(exc)}); check your credentials"
                ) from None
            raise RemoteAccessError(
                f"{name}: cannot read from the XRootD server ({_why(exc)}); is the server up and the host:port right?"
            ) from None
        except _DECODE_ERRORS as exc:
            raise CorruptFileError(
                f"{name} is not a readable ROOT file ({_why(exc)}); copy it again from its source"
            ) from None
    local = Path(name)
    _check_local(local)
    try:
        return uproot.open(local)
    except _DECODE_ERRORS + (OSError,) as exc:
        raise CorruptFileError(
            f"{local} is not a readable ROOT file (truncated or corrupt: {_why(exc)}); copy or write it again"
        ) from None


def open_tree(path: str | os.PathLike, tree: str, timeout: float = 30):
    """The TTree ``tree`` of ``path``; raises a :class:`DataError` naming the file if it cannot be used."""
    file = open_file(path, timeout=timeout)
    try:
        obj = file[tree]
    except KeyError:
        trees = sorted({key.split(";")[0] for key in file.keys(filter_classname="TTree")})
        hint = (
            f"it has {', '.join(repr(t) for t in trees)}: pass tree={trees[0]!r}"
            if trees
            else "it holds no tree at all"
        )
        raise MissingTreeError(f"{path} has no tree {tree!r}; {hint}") from None
    except _DECODE_ERRORS + (OSError,) as exc:
        raise CorruptFileError(
            f"{path}: the tree {tree!r} cannot be read (corrupt file: {_why(exc)}); write it again"
        ) from None
    if not isinstance(obj, uproot.behaviors.TTree.TTree):
        raise MissingTreeError(f"{path}: {tree!r} is a {type(obj).__name__}, not a TTree; name the tree to read")
    if obj.num_entries == 0:
        raise EmptyFileError(f"{path}: tree {tree!r} has no entries; leave this file out or write it again")
    return obj


def read_arrays(tree, names: list[str], start: int, stop: int) -> dict:
    """Entries [start, stop) of the branches ``names`` as a dict of awkward arrays."""
    try:
        return tree.arrays(names, entry_start=start, entry_stop=stop, library="ak", how=dict)
    except OSError as exc:
        where = tree.file.file_path
        if is_remote(where):  # the network, not the file
            raise RemoteAccessError(
                f"{where}: reading entries {start}-{stop} from the XRootD server failed ({_why(exc)}); "
                "is the server still up? Try again"
            ) from None
        raise CorruptFileError(
            f"{where}: entries {start}-{stop} of tree {tree.name!r} cannot be read (truncated or corrupt file: "
            f"{_why(exc)}); copy or write the file again"
        ) from None
    except _DECODE_ERRORS + (uproot.deserialization.DeserializationError,) as exc:
        where = tree.file.file_path
        raise CorruptFileError(
            f"{where}: entries {start}-{stop} of tree {tree.name!r} cannot be read (corrupt or truncated file: "
            f"{type(exc).__name__}: {_why(exc)}); copy or write the file again"
        ) from None
