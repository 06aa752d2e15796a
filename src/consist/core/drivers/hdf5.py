"""HDF5 containers and the tables inside them: detect, hash, describe, load.

What is a table
---------------
Walking a file with h5py, a *table* is

* a pandas/PyTables group, i.e. a group carrying a ``pandas_type`` attribute
  (``DataFrame.to_hdf(format="table")`` writes ``frame_table``,
  ``format="fixed"`` writes ``frame``): the group is one table and is not
  descended into;
* any other dataset (a plain h5py array or a compound-typed record array).

Table paths are absolute HDF5 paths (``"/households"``, ``"/skims/dist"``).

Content digest of a table
-------------------------
``blake3:`` over a domain-tagged, length-prefixed stream: for each member
dataset of the table (the dataset itself, or every dataset below a pandas
group except PyTables' ``_i_*`` index groups, which are derived data) in
sorted order, its relative name, dtype, shape and attributes, then its
values read ``chunk_rows`` rows at a time along the first axis. The pandas
group's own attributes (column names, index layout) are included. Variable
length values (strings, pickled objects) are serialized element by element
with a length prefix, so the digest does not depend on ``chunk_rows``, on
compression or on where HDF5 placed the bytes in the file.

Reusing a recorded digest (``hash_tables="if_unchanged"``)
----------------------------------------------------------
A recorded digest stands in for reading the table only when

1. the container file's stat identity (device, inode, size, mtime_ns,
   ctime_ns) equals the one recorded when the digest was computed,
2. that recording was not *racy*: it was taken at least
   :data:`RACY_WINDOW_NS` after the later of the file's mtime and ctime
   (else an edit in the same timestamp tick could be invisible), and
3. the table's own HDF5 object metadata (for each member dataset: shape,
   dtype, storage offset and size, chunking, filters, object address,
   attribute count and, where HDF5 tracks them, modification times) hashes
   to the recorded object fingerprint.

When the file changed in any way (another table appended, a dataset
written in place), every table is re-hashed: HDF5 rewrites raw data in
place without touching any object metadata (an ``h5py`` write to
``dset[0]`` changes no shape, dtype, offset or size, and modification times
are usually not tracked), so object metadata alone cannot prove a table
unchanged. Rule 3 guards against a recorded fingerprint that belongs to a
different object at the same path.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import blake3

__all__ = [
    "FINGERPRINT_VERSION",
    "RACY_WINDOW_NS",
    "H5Table",
    "current_digest",
    "describe_table",
    "discover_tables",
    "file_identity",
    "hash_table",
    "load",
    "load_dataframe",
    "may_reuse",
    "profile_table",
    "require_h5py",
]

RACY_WINDOW_NS = 2_000_000_000
"""A recorded table digest is trusted only if it was read this long after the file last changed."""

FINGERPRINT_VERSION = "h5-v1"
"""Version tag of the recorded ``h5_fingerprint`` (a new version never reuses an old one)."""

_DOMAIN = b"consist-h5-table-v1\0"
_DEFAULT_CHUNK_BYTES = 64 << 20
_PANDAS_ATTR = "pandas_type"


def require_h5py(what: str) -> Any:
    """Import h5py, or raise ImportError naming the ``hdf5`` extra."""
    try:
        import h5py
    except ImportError:
        raise ImportError(f"{what} needs h5py: pip install 'consist[hdf5]'") from None
    return h5py


@dataclass
class H5Table:
    """One table found in a container.

    Attributes
    ----------
    table_path:
        Absolute HDF5 path, e.g. ``"/households"``.
    kind:
        ``"pandas_table"``, ``"pandas_fixed"`` (pandas groups) or ``"dataset"``.
    n_rows:
        Rows (first-axis length); None for a scalar dataset.
    shape, dtype:
        For a dataset: its shape and dtype (as text); None for pandas groups.
    size_bytes:
        Bytes the table's datasets occupy in the file.
    fingerprint:
        Digest of the table's HDF5 object metadata (see the module docstring).
    """

    table_path: str
    kind: str
    n_rows: int | None
    shape: list[int] | None = None
    dtype: str | None = None
    size_bytes: int = 0
    fingerprint: str = ""
    members: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Metadata recorded on the table's artifact."""
        out: dict[str, Any] = {"h5_kind": self.kind, "n_rows": self.n_rows}
        if self.shape is not None:
            out["shape"] = self.shape
        if self.dtype is not None:
            out["dtype"] = self.dtype
        return out


# ---------------------------------------------------------------------------
# Discovery and description
# ---------------------------------------------------------------------------


def normalize_table_path(table_path: Any, param: str = "table_path") -> str:
    """``"households"`` or ``"/households"`` as ``"/households"``.

    Raises
    ------
    TypeError, ValueError
        For a non-string, an empty path, or one with ``.``/``..`` components.
    """
    if not isinstance(table_path, str):
        raise TypeError(f"{param} must be a string such as '/households', got {table_path!r}")
    parts = [p for p in table_path.strip().split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(
            f"{param}={table_path!r} is not an HDF5 object path; use e.g. '/households'"
        )
    return "/" + "/".join(parts)


def _is_pandas_group(group: Any) -> bool:
    return _PANDAS_ATTR in group.attrs


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _members(h5py: Any, obj: Any) -> list[tuple[str, Any]]:
    """``(relative name, dataset)`` of a table, sorted; ``_i_*`` index groups skipped."""
    if isinstance(obj, h5py.Dataset):
        return [("", obj)]
    found: list[tuple[str, Any]] = []

    def walk(group: Any, prefix: str) -> None:
        for name in sorted(group):
            if name.startswith("_i_"):
                continue  # PyTables index: derived from the data
            child = group.get(name, getlink=False)
            if isinstance(child, h5py.Dataset):
                found.append((prefix + name, child))
            elif isinstance(child, h5py.Group):
                walk(child, prefix + name + "/")

    walk(obj, "")
    return found


def _object_info(h5py: Any, obj: Any) -> list[Any]:
    info = h5py.h5o.get_info(obj.id)
    return [int(info.addr), int(info.num_attrs), int(info.mtime), int(info.ctime)]


def _describe(h5py: Any, obj: Any, table_path: str) -> H5Table:
    """Describe one table object (a pandas group or a dataset)."""
    fp = blake3.blake3(FINGERPRINT_VERSION.encode() + b"\0")
    members = _members(h5py, obj)
    if isinstance(obj, h5py.Group):
        fp.update(repr(("group", _object_info(h5py, obj))).encode())
    size = 0
    for rel, dset in members:
        storage = int(dset.id.get_storage_size())
        size += storage
        offset = dset.id.get_offset()
        fp.update(
            repr(
                (
                    rel,
                    dset.shape,
                    dset.dtype.descr if dset.dtype.fields else dset.dtype.str,
                    str(dset.dtype),
                    None if offset is None else int(offset),
                    storage,
                    dset.chunks,
                    dset.compression,
                    dset.compression_opts,
                    _object_info(h5py, dset),
                )
            ).encode()
            + b"\n"
        )
    if isinstance(obj, h5py.Dataset):
        shape = list(obj.shape)
        return H5Table(
            table_path=table_path,
            kind="dataset",
            n_rows=shape[0] if shape else None,
            shape=shape,
            dtype=str(obj.dtype),
            size_bytes=size,
            fingerprint="blake3:" + fp.hexdigest(),
            members=[""],
        )
    pandas_type = _text(obj.attrs[_PANDAS_ATTR])
    kind = "pandas_table" if pandas_type.endswith("table") else "pandas_fixed"
    n_rows: int | None = None
    if kind == "pandas_table" and isinstance(obj.get("table"), h5py.Dataset):
        n_rows = int(obj["table"].shape[0])
    elif isinstance(obj.get("axis1"), h5py.Dataset):  # frame: axis1 is the row index
        n_rows = int(obj["axis1"].shape[0])
    elif isinstance(obj.get("index"), h5py.Dataset):  # series
        n_rows = int(obj["index"].shape[0])
    return H5Table(
        table_path=table_path,
        kind=kind,
        n_rows=n_rows,
        size_bytes=size,
        fingerprint="blake3:" + fp.hexdigest(),
        members=[rel for rel, _ in members],
    )


def _open(h5py: Any, path: str | os.PathLike[str]) -> Any:
    """Open a container read-only; a file that is not HDF5 raises ValueError naming it."""
    try:
        return h5py.File(os.fspath(path), "r")
    except OSError as exc:
        if not os.path.isfile(path) or h5py.is_hdf5(os.fspath(path)):
            raise
        raise ValueError(
            f"path={os.fspath(path)!r} is not an HDF5 file ({exc}); pass an .h5 file "
            "written by h5py, PyTables or pandas.to_hdf"
        ) from None


def discover_tables(path: str | os.PathLike[str]) -> list[H5Table]:
    """Every table of the container at ``path`` (pandas groups and plain datasets), by path.

    Raises
    ------
    ImportError
        Without h5py.
    OSError
        If the file is not an HDF5 file.
    """
    h5py = require_h5py("log_h5_container")
    found: list[H5Table] = []
    with _open(h5py, path) as f:

        def walk(group: Any) -> None:
            for name in sorted(group):
                child = group.get(name)
                if child is None:  # dangling soft/external link
                    continue
                if isinstance(child, h5py.Dataset):
                    found.append(_describe(h5py, child, child.name))
                elif isinstance(child, h5py.Group):
                    if _is_pandas_group(child):
                        found.append(_describe(h5py, child, child.name))
                    else:
                        walk(child)

        walk(f)
    return found


def describe_table(path: str | os.PathLike[str], table_path: str) -> H5Table:
    """Describe the table at ``table_path`` in the container at ``path``.

    Raises
    ------
    KeyError
        If the container has no such object, or it is a plain group.
    """
    h5py = require_h5py("log_h5_table")
    with _open(h5py, path) as f:
        obj = f.get(table_path)
        if obj is None:
            raise KeyError(
                f"table_path={table_path!r} is not in {os.fspath(path)}; its tables are "
                f"{[t.table_path for t in _list_quietly(f, h5py)][:20]}"
            )
        if isinstance(obj, h5py.Group) and not _is_pandas_group(obj):
            raise KeyError(
                f"table_path={table_path!r} in {os.fspath(path)} is a plain group, not a "
                "table; name a pandas table or a dataset inside it"
            )
        return _describe(h5py, obj, obj.name)


def _list_quietly(f: Any, h5py: Any) -> list[H5Table]:
    names: list[H5Table] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) or (isinstance(obj, h5py.Group) and _is_pandas_group(obj)):
            names.append(H5Table(table_path="/" + name, kind="", n_rows=None))

    f.visititems(visit)
    return names


# ---------------------------------------------------------------------------
# Hashing
# ---------------------------------------------------------------------------


def _put(h: Any, data: bytes) -> None:
    h.update(struct.pack("<Q", len(data)))
    h.update(data)


def _element_bytes(value: Any) -> bytes:
    """One variable-length element as tagged bytes."""
    import numpy as np

    if isinstance(value, bytes):
        return b"b" + value
    if isinstance(value, str):
        return b"s" + value.encode("utf-8", "surrogatepass")
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            parts = [_element_bytes(v) for v in value.ravel()]
            return (
                b"o"
                + repr(value.shape).encode()
                + b"".join(struct.pack("<Q", len(p)) + p for p in parts)
            )
        return b"a" + value.dtype.str.encode() + repr(value.shape).encode() + value.tobytes()
    return b"r" + repr(value).encode()


def _array_bytes(arr: Any) -> Iterator[bytes]:
    """The values of a read chunk, row-major; variable-length values element by element."""
    import numpy as np

    if not arr.dtype.hasobject:
        yield np.ascontiguousarray(arr).tobytes()
        return
    names = arr.dtype.names
    for item in arr.reshape(-1):
        if names:
            for name in names:
                data = _element_bytes(item[name])
                yield struct.pack("<Q", len(data)) + data
        else:
            data = _element_bytes(item)
            yield struct.pack("<Q", len(data)) + data


def _attr_bytes(attrs: Any) -> bytes:
    parts = []
    for name in sorted(attrs):
        try:
            value = attrs[name]
        except (OSError, TypeError):  # attribute of a type h5py cannot read
            value = f"<unreadable {attrs.get_id(name).dtype}>"
        parts.append(name.encode() + b"\0" + _element_bytes(value))
    return b"".join(struct.pack("<Q", len(p)) + p for p in parts)


def default_chunk_rows(dset: Any) -> int:
    """Rows per read when ``table_hash_chunk_rows`` is None: about 64 MiB."""
    row_items = 1
    for n in dset.shape[1:]:
        row_items *= int(n)
    row_bytes = max(1, row_items * max(1, dset.dtype.itemsize))
    return max(1, _DEFAULT_CHUNK_BYTES // row_bytes)


def hash_table(path: str | os.PathLike[str], table_path: str, chunk_rows: int | None = None) -> str:
    """The content digest (``blake3:...``) of one table, streamed ``chunk_rows`` rows at a time.

    See the module docstring for what is hashed. ``chunk_rows`` bounds memory
    and does not change the digest.
    """
    h5py = require_h5py("hashing an HDF5 table")
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    h.update(_DOMAIN)
    with h5py.File(os.fspath(path), "r") as f:
        obj = f[table_path]
        _put(h, _attr_bytes(obj.attrs) if isinstance(obj, h5py.Group) else b"")
        for rel, dset in _members(h5py, obj):
            _put(h, rel.encode())
            _put(h, repr(dset.dtype.descr if dset.dtype.fields else dset.dtype.str).encode())
            _put(h, repr(tuple(dset.shape)).encode())
            _put(h, _attr_bytes(dset.attrs))
            if dset.shape is None or dset.size == 0:
                continue
            if dset.ndim == 0:
                for data in _array_bytes(_scalar(dset)):
                    h.update(data)
                continue
            step = chunk_rows or default_chunk_rows(dset)
            for start in range(0, dset.shape[0], step):
                for data in _array_bytes(dset[start : start + step]):
                    h.update(data)
    return "blake3:" + h.hexdigest()


def current_digest(path: str | os.PathLike[str], artifact: Any) -> str | None:
    """The digest an ``h5_table`` artifact's table has now (for re-verifying an input).

    Compare it with ``artifact.hash``; the whole file's digest is not
    comparable with a table's. None when the artifact is not a table or the
    file no longer holds it.
    """
    if artifact.table_path is None:
        return None
    try:
        return hash_table(path, artifact.table_path)
    except KeyError:
        return None


def _scalar(dset: Any) -> Any:
    """A scalar dataset's value as a one-element array."""
    import numpy as np

    value = dset[()]
    if isinstance(value, np.ndarray | np.generic):
        return np.asarray(value).reshape(1)
    return np.asarray([value], dtype=object)


# ---------------------------------------------------------------------------
# Reuse of recorded digests
# ---------------------------------------------------------------------------


def file_identity(path: str | os.PathLike[str]) -> dict[str, int]:
    """The container's stat identity as recorded in ``h5_fingerprint``."""
    st = os.stat(path)
    return {
        "dev": int(st.st_dev),
        "ino": int(st.st_ino),
        "size": int(st.st_size),
        "mtime_ns": int(st.st_mtime_ns),
        "ctime_ns": int(st.st_ctime_ns),
    }


def fingerprint_record(identity: dict[str, int], table: H5Table, recorded_ns: int) -> dict:
    """The ``h5_fingerprint`` metadata of a table whose content was read at ``recorded_ns``."""
    return {
        "version": FINGERPRINT_VERSION,
        "file": dict(identity),
        "object": table.fingerprint,
        "recorded_ns": int(recorded_ns),
    }


def may_reuse(recorded: Any, identity: dict[str, int], table: H5Table) -> bool:
    """Whether a recorded ``h5_fingerprint`` lets its digest stand for ``table`` now.

    Implements the three rules of the module docstring.
    """
    if not isinstance(recorded, dict) or recorded.get("version") != FINGERPRINT_VERSION:
        return False
    if recorded.get("file") != identity or recorded.get("object") != table.fingerprint:
        return False
    recorded_ns = recorded.get("recorded_ns")
    if not isinstance(recorded_ns, int):
        return False
    newest_change = max(identity["mtime_ns"], identity["ctime_ns"])
    return recorded_ns - newest_change >= RACY_WINDOW_NS


def now_ns() -> int:
    """``time.time_ns()`` (taken before a table is read)."""
    return time.time_ns()


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def _read_table(path: str, table_path: str, columns: list[str] | None, kwargs: dict) -> Any:
    h5py = require_h5py("loading an HDF5 table")
    with h5py.File(path, "r") as f:
        obj = f.get(table_path)
        if obj is None:
            raise KeyError(f"{table_path!r} is no longer in {path}")
        pandas_kind = None
        if isinstance(obj, h5py.Group):
            if not _is_pandas_group(obj):
                raise KeyError(f"{table_path!r} in {path} is a plain group, not a table")
            pandas_kind = _text(obj.attrs[_PANDAS_ATTR])
        elif h5py.check_string_dtype(obj.dtype) is not None:
            data = obj.asstr()[()]  # text as str, not bytes
        else:
            data = obj[()]
    if pandas_kind is not None:
        import pandas as pd

        try:
            import tables  # noqa: F401
        except ImportError:
            raise ImportError(
                "loading a pandas HDF5 table needs PyTables: pip install 'consist[hdf5]'"
            ) from None
        if columns is not None and pandas_kind.endswith("table"):
            frame = pd.read_hdf(path, key=table_path, columns=columns, **kwargs)
        else:
            frame = pd.read_hdf(path, key=table_path, **kwargs)
        return _select(frame, columns, table_path)
    if kwargs:
        raise ValueError(
            f"reader options {sorted(kwargs)} apply to pandas tables only; {table_path!r} "
            "is a plain dataset"
        )
    return data


def _select(frame: Any, columns: list[str] | None, table_path: str) -> Any:
    if columns is None:
        return frame
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(
            f"columns {missing} are not in {table_path!r} (it has {list(frame.columns)})"
        )
    return frame[columns]


def _as_frame(data: Any, table_path: str) -> Any:
    """A plain dataset's array as a DataFrame (None for more than two dimensions)."""
    import numpy as np
    import pandas as pd

    arr = np.asarray(data)
    if arr.dtype.names:
        return pd.DataFrame.from_records(arr.reshape(-1))
    if arr.ndim == 0:
        return pd.DataFrame({table_path.rsplit("/", 1)[-1]: [arr[()]]})
    if arr.ndim == 1:
        return pd.DataFrame({table_path.rsplit("/", 1)[-1]: arr})
    if arr.ndim == 2:
        return pd.DataFrame(arr)
    return None


def load(path: str, artifact: Any, columns: list[str] | None = None, **kwargs: Any) -> Any:
    """The natural object of an HDF5 artifact.

    * a table (``h5_table``): a pandas table as its DataFrame
      (``pandas.read_hdf``); a plain dataset as a DataFrame (compound records,
      1-D or 2-D arrays) or, beyond two dimensions, its numpy array;
    * a container (``h5``): a dict ``{table path: that table's object}`` of
      every table in the file, in path order (each read in full: load the
      child artifacts one by one for large files).
    """
    if artifact.table_path is None:
        if columns is not None or kwargs:
            raise ValueError(
                f"artifact {artifact.key!r} is an HDF5 container; columns= and reader "
                "options apply to its tables: load a child artifact (log_h5_container "
                "returns them)"
            )
        return {t.table_path: load_table(path, t.table_path) for t in discover_tables(path)}
    return load_table(path, artifact.table_path, columns, **kwargs)


def load_table(path: str, table_path: str, columns: list[str] | None = None, **kwargs: Any) -> Any:
    """One table's natural object (see :func:`load`)."""
    data = _read_table(path, table_path, columns, kwargs)
    if hasattr(data, "columns"):
        return data
    frame = _as_frame(data, table_path)
    if frame is None:
        if columns is not None:
            raise ValueError(f"{table_path!r} has {data.ndim} dimensions; it has no columns")
        return data
    return _select(frame, columns, table_path)


def load_dataframe(
    path: str, artifact: Any, columns: list[str] | None = None, **kwargs: Any
) -> Any:
    """A table artifact as a pandas DataFrame.

    Raises
    ------
    ValueError
        For a container (load one of its tables) or a dataset of more than
        two dimensions.
    """
    if artifact.table_path is None:
        raise ValueError(
            f"artifact {artifact.key!r} is an HDF5 container, not one table; load_df one "
            "of its child artifacts, or tracker.load(container) for a dict of all tables"
        )
    result = load_table(path, artifact.table_path, columns, **kwargs)
    if not hasattr(result, "columns"):
        raise ValueError(
            f"artifact {artifact.key!r} is a {result.ndim}-dimensional dataset with no "
            "DataFrame form; use tracker.load(artifact) for its array"
        )
    return result


# ---------------------------------------------------------------------------
# Schema profiles
# ---------------------------------------------------------------------------


def _sample(path: str, table: H5Table, rows: int) -> Any:
    """The first ``rows`` rows of a table as a DataFrame."""
    if table.kind == "pandas_table":
        import pandas as pd

        return pd.read_hdf(path, key=table.table_path, start=0, stop=rows)
    h5py = require_h5py("profiling an HDF5 table")
    if table.kind == "dataset":
        with h5py.File(path, "r") as f:
            dset = f[table.table_path]
            data = dset[:rows] if dset.ndim else dset[()]
        frame = _as_frame(data, table.table_path)
        if frame is None:
            raise ValueError(f"{table.table_path!r} has more than two dimensions")
        return frame
    return load_table(path, table.table_path).head(rows)


def profile_table(path: str, table: H5Table, sample_rows: int | None, default_rows: int) -> Any:
    """A ``"file"`` schema observation of a table from its first rows.

    Column types are DuckDB's reading of the sample; ``n_rows`` is the
    table's row count from its metadata.
    """
    import duckdb

    from consist.core.store.schema_fields import profile_from_columns, stat_text

    frame = _sample(path, table, sample_rows or default_rows)
    frame.columns = [str(c) for c in frame.columns]
    con = duckdb.connect()
    try:
        con.register("sample_frame", frame)
        described = con.execute("DESCRIBE sample_frame").fetchall()
    finally:
        con.close()
    stats: dict[str, dict[str, Any]] = {}
    for name in frame.columns:
        column = frame[name]
        entry: dict[str, Any] = {"null_count": int(column.isna().sum())}
        try:
            values = column.dropna()
            if len(values):
                entry["min"], entry["max"] = stat_text(values.min()), stat_text(values.max())
        except (TypeError, ValueError):
            pass
        stats[name] = entry
    return profile_from_columns(
        [(row[0], row[1], True) for row in described],
        source="file",
        n_rows=table.n_rows,
        sampled_rows=len(frame),
        stats=stats,
        dtypes={str(c): str(t) for c, t in frame.dtypes.items()},
    )
