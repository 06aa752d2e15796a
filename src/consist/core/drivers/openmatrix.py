"""OpenMatrix (OMX) files: detect, describe, read matrices, load, compare.

An OMX file is HDF5 with the matrices under ``/data/<name>`` (2-D arrays of
one shape), zone mappings under ``/lookup/<name>`` (1-D arrays, e.g. the
zone ids) and attributes on the root (``OMX_VERSION``, ``SHAPE``, user
attributes) and on each matrix. Files are read with h5py when it is
installed, else with the ``openmatrix`` package (PyTables); both give the
same description, and a missing pair raises ImportError naming the
``omx`` extra. Libraries are imported inside functions so ``import
consist`` stays cheap.

What is recorded (:func:`describe`, stored as ``artifact.meta["openmatrix"]``
and as the artifact's key/value-indexed facet):

* ``matrices``: ``{name: {"rows", "cols", "dtype", "title"?, "attributes"?}}``
* ``matrix_count``, ``shape`` (``[rows, cols]``: the ``SHAPE`` attribute,
  else the first matrix's shape), ``zone_count`` (the number of rows, i.e.
  origin zones), ``omx_version`` and ``created_with`` when present
* ``mappings``: ``{name: {"length", "dtype"}}``, ``mapping_count``
* ``attributes``: the file's user attributes (PyTables' bookkeeping
  attributes and the OMX format attributes above are left out)

Attribute values become plain JSON: bytes are decoded as UTF-8, numpy
scalars become numbers, arrays of at most :data:`MAX_ATTRIBUTE_ITEMS`
elements become lists and larger ones the text ``"<array shape=... dtype=...>"``.

:func:`load` returns an xarray Dataset (one variable per matrix over the
dims ``origin`` / ``destination``); :func:`load_dataframe` its long form.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from consist.models.artifact import Artifact

__all__ = [
    "DESCRIPTION_KEY",
    "MAX_ATTRIBUTE_ITEMS",
    "MatrixComparison",
    "compare_arrays",
    "describe",
    "load",
    "load_dataframe",
    "read_matrix",
]

DESCRIPTION_KEY = "openmatrix"
"""The ``artifact.meta`` key holding the structure recorded by ``log_openmatrix_file``."""

MAX_ATTRIBUTE_ITEMS = 64
"""Array attributes up to this many elements are recorded as lists."""

ORIGIN, DESTINATION = "origin", "destination"

# Attributes PyTables writes for its own bookkeeping, and the OMX format's own.
_SYSTEM_ATTRIBUTES = frozenset(
    {"CLASS", "VERSION", "TITLE", "FILTERS", "FLAVOR", "EXTDIM", "PYTABLES_FORMAT_VERSION"}
)
_OMX_ATTRIBUTES = frozenset({"OMX_VERSION", "OMX_CREATED_WITH", "SHAPE"})


def _missing_library(what: str) -> ImportError:
    return ImportError(f"{what} needs h5py or openmatrix: pip install 'consist[omx]'")


# --------------------------------------------------------------------------- #
# Reading, through h5py or the openmatrix package
# --------------------------------------------------------------------------- #
class _H5pyFile:
    """An OMX file opened with h5py."""

    def __init__(self, handle: Any) -> None:
        self.h = handle

    def root_attrs(self) -> dict[str, Any]:
        return dict(self.h.attrs.items())

    def _group(self, name: str) -> Any:
        import h5py

        group = self.h.get(name)
        return group if isinstance(group, h5py.Group) else None

    def has_data(self) -> bool:
        return self._group("data") is not None

    def _arrays(self, group_name: str) -> dict[str, Any]:
        import h5py

        group = self._group(group_name)
        if group is None:
            return {}
        return {k: v for k, v in group.items() if isinstance(v, h5py.Dataset)}

    def matrices(self) -> dict[str, tuple[tuple[int, ...], str, dict[str, Any]]]:
        return {
            name: (tuple(ds.shape), str(ds.dtype), dict(ds.attrs.items()))
            for name, ds in self._arrays("data").items()
        }

    def mappings(self) -> dict[str, tuple[int, str]]:
        return {
            name: (int(ds.shape[0]) if ds.shape else 0, str(ds.dtype))
            for name, ds in self._arrays("lookup").items()
        }

    def read(self, group: str, name: str) -> Any:
        return self._arrays(group)[name][()]


class _TablesFile:
    """An OMX file opened with the openmatrix package (PyTables)."""

    def __init__(self, handle: Any) -> None:
        self.h = handle

    @staticmethod
    def _attrs(node: Any) -> dict[str, Any]:
        attrs = node._v_attrs
        found = {name: attrs[name] for name in attrs._f_list("user")}
        title = getattr(node, "title", "") if hasattr(node, "dtype") else ""
        if title:
            found["TITLE"] = title
        return found

    def root_attrs(self) -> dict[str, Any]:
        return self._attrs(self.h.root)

    def _group(self, name: str) -> Any:
        import tables

        # (openmatrix.File's ``in`` looks up matrix names, not node paths.)
        try:
            node = self.h.get_node(f"/{name}")
        except tables.NoSuchNodeError:
            return None
        return node if isinstance(node, tables.Group) else None

    def has_data(self) -> bool:
        return self._group("data") is not None

    def _arrays(self, group_name: str) -> dict[str, Any]:
        import tables

        group = self._group(group_name)
        if group is None:
            return {}
        return {
            node._v_name: node
            for node in self.h.list_nodes(group)
            if isinstance(node, tables.Leaf) and hasattr(node, "dtype")
        }

    def matrices(self) -> dict[str, tuple[tuple[int, ...], str, dict[str, Any]]]:
        return {
            name: (tuple(int(n) for n in node.shape), str(node.dtype), self._attrs(node))
            for name, node in self._arrays("data").items()
        }

    def mappings(self) -> dict[str, tuple[int, str]]:
        return {
            name: (int(node.shape[0]) if node.shape else 0, str(node.dtype))
            for name, node in self._arrays("lookup").items()
        }

    def read(self, group: str, name: str) -> Any:
        return self._arrays(group)[name].read()


@contextmanager
def _open(path: str | os.PathLike[str], what: str) -> Iterator[_H5pyFile | _TablesFile]:
    """Open an OMX file read-only (h5py first, else openmatrix)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: {path} does not exist or is not a file")
    try:
        import h5py
    except ImportError:
        h5py = None
    if h5py is not None:
        if not h5py.is_hdf5(path):
            raise ValueError(_not_omx(path, "it is not an HDF5 file"))
        with h5py.File(path, "r") as handle:
            yield _checked(_H5pyFile(handle), path)
        return
    try:
        import openmatrix
        import tables
    except ImportError:
        raise _missing_library(what) from None
    if not tables.is_hdf5_file(path):
        raise ValueError(_not_omx(path, "it is not an HDF5 file"))
    handle = openmatrix.open_file(path, "r")
    try:
        yield _checked(_TablesFile(handle), path)
    finally:
        handle.close()


def _not_omx(path: str, why: str) -> str:
    return (
        f"{path} is not an OpenMatrix file ({why}); an OMX file is HDF5 with its matrices "
        "under /data (log other HDF5 files with log_h5_container or log_artifact)"
    )


def _checked(reader: _H5pyFile | _TablesFile, path: str) -> _H5pyFile | _TablesFile:
    if not reader.has_data():
        raise ValueError(_not_omx(path, "it has no /data group"))
    return reader


# --------------------------------------------------------------------------- #
# Describing
# --------------------------------------------------------------------------- #
def _plain(value: Any) -> Any:
    """An attribute value as plain JSON (see the module docstring)."""
    import numpy as np

    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        if value.size > MAX_ATTRIBUTE_ITEMS:
            return f"<array shape={list(value.shape)} dtype={value.dtype}>"
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    # h5py's Empty (an attribute without data) and anything else: its text.
    return None if type(value).__name__ == "Empty" else str(value)


def _user_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    skip = _SYSTEM_ATTRIBUTES | _OMX_ATTRIBUTES
    return {str(k): _plain(v) for k, v in sorted(attrs.items()) if k not in skip}


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The structure of the OMX file at ``path`` (see the module docstring).

    Only metadata is read, never the matrices' values.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not an existing file.
    ValueError
        If the file is not HDF5 or has no ``/data`` group.
    ImportError
        If neither h5py nor openmatrix is installed.
    """
    with _open(path, "log_openmatrix_file") as omx:
        root = omx.root_attrs()
        matrices: dict[str, Any] = {}
        for name, (shape, dtype, attrs) in sorted(omx.matrices().items()):
            entry: dict[str, Any] = {
                "rows": int(shape[0]) if len(shape) > 0 else 0,
                "cols": int(shape[1]) if len(shape) > 1 else 0,
                "dtype": dtype,
            }
            title = _plain(attrs.get("TITLE"))
            if title:
                entry["title"] = title
            user = _user_attributes(attrs)
            if user:
                entry["attributes"] = user
            matrices[name] = entry
        mappings = {
            name: {"length": length, "dtype": dtype}
            for name, (length, dtype) in sorted(omx.mappings().items())
        }
    shape = _plain(root.get("SHAPE"))
    if not (isinstance(shape, list) and len(shape) == 2):
        first = next(iter(matrices.values()), None)
        shape = [first["rows"], first["cols"]] if first else [0, 0]
    described: dict[str, Any] = {
        "matrix_count": len(matrices),
        "matrices": matrices,
        "shape": [int(shape[0]), int(shape[1])],
        "zone_count": int(shape[0]),
        "mapping_count": len(mappings),
        "mappings": mappings,
        "attributes": _user_attributes(root),
    }
    for attr, field in (("OMX_VERSION", "omx_version"), ("OMX_CREATED_WITH", "created_with")):
        value = _plain(root.get(attr))
        if value is not None:
            described[field] = value
    return described


# --------------------------------------------------------------------------- #
# Reading values, loading
# --------------------------------------------------------------------------- #
def read_matrix(path: str | os.PathLike[str], matrix: str) -> Any:
    """The values of one matrix as a numpy array.

    Raises
    ------
    KeyError
        If the file has no matrix ``matrix`` (the message lists those it has).
    FileNotFoundError, ValueError, ImportError
        As :func:`describe`.
    """
    with _open(path, "reading an OpenMatrix matrix") as omx:
        names = sorted(omx.matrices())
        if matrix not in names:
            raise KeyError(f"{os.fspath(path)} has no matrix {matrix!r} (it has {names})")
        return omx.read("data", matrix)


def _decoded(values: Any) -> Any:
    import numpy as np

    if values.dtype.kind == "S":
        return np.char.decode(values, "utf-8")
    return values


def load(
    path: str | os.PathLike[str],
    artifact: Artifact | None = None,
    columns: Sequence[str] | None = None,
    *,
    mapping: str | None = None,
    **kwargs: Any,
) -> Any:
    """An OMX file as an xarray Dataset: one variable per matrix.

    Each matrix is a variable over the dims ``origin`` and ``destination``
    with its attributes (and ``title``); the file's attributes are the
    Dataset's. The zone ids of a mapping (``/lookup/<name>``) are the
    ``origin`` / ``destination`` coordinates: the one named by ``mapping``,
    else the file's only mapping whose length fits both dims; otherwise the
    dims have no coordinate values (positions). Values are read into memory,
    so select matrices with ``columns`` on large files.

    Parameters
    ----------
    path:
        The OMX file.
    artifact:
        Its artifact (named in errors).
    columns:
        Matrix names to load (default: all).
    mapping:
        The mapping to use as zone coordinates.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    KeyError
        If ``columns`` or ``mapping`` names something the file lacks.
    ValueError
        If ``mapping``'s length does not fit the matrices, a reader option is
        given, or the file is not OMX.
    ImportError
        If xarray, or both h5py and openmatrix, are missing.
    """
    if kwargs:
        raise ValueError(
            f"OpenMatrix artifacts take no reader option(s) {sorted(kwargs)}; "
            "use columns=[matrix names] and mapping='<lookup name>'"
        )
    try:
        import xarray as xr
    except ImportError:
        raise ImportError(
            "loading an OpenMatrix artifact needs xarray: pip install xarray "
            "(it comes with 'consist[netcdf]')"
        ) from None
    label = repr(artifact.key) if artifact is not None else os.fspath(path)
    with _open(path, "loading an OpenMatrix artifact") as omx:
        available = omx.matrices()
        names = sorted(available) if columns is None else list(columns)
        missing = [n for n in names if n not in available]
        if missing:
            raise KeyError(
                f"matrices {missing} are not in OpenMatrix artifact {label} "
                f"(it has {sorted(available)})"
            )
        flat = [n for n in names if len(available[n][0]) != 2]
        if flat:
            raise ValueError(
                f"{flat} in OpenMatrix artifact {label} are not 2-D matrices; leave them out "
                "with columns=[...]"
            )
        shapes = {available[n][0] for n in names}
        if len(shapes) > 1:
            raise ValueError(
                f"the matrices of OpenMatrix artifact {label} have different shapes "
                f"{sorted(shapes)}; load one shape at a time with columns=[...]"
            )
        shape = next(iter(shapes)) if shapes else None
        lookups = omx.mappings()
        coords: dict[str, Any] = {}
        if mapping is not None:
            if mapping not in lookups:
                raise KeyError(
                    f"mapping {mapping!r} is not in OpenMatrix artifact {label} "
                    f"(it has {sorted(lookups)})"
                )
            if shape is None or lookups[mapping][0] != shape[0] or shape[0] != shape[1]:
                raise ValueError(
                    f"mapping={mapping!r} has {lookups[mapping][0]} entries, which does not "
                    f"fit matrices of shape {sorted(shapes)}; choose a mapping of the zone count"
                )
            chosen = mapping
        else:
            fitting = [
                n
                for n, (length, _) in lookups.items()
                if shape is not None and shape[0] == shape[1] == length
            ]
            chosen = fitting[0] if len(fitting) == 1 else None
        if chosen is not None:
            zones = _decoded(omx.read("lookup", chosen))
            coords = {ORIGIN: zones, DESTINATION: zones}
        variables = {}
        for name in names:
            attrs = dict(available[name][2])
            title = _plain(attrs.get("TITLE"))
            var_attrs = _user_attributes(attrs)
            if title:
                var_attrs["title"] = title
            variables[name] = xr.Variable((ORIGIN, DESTINATION), omx.read("data", name), var_attrs)
        attrs = _user_attributes(omx.root_attrs())
    if chosen is not None:
        attrs["zone_mapping"] = chosen
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def load_dataframe(
    path: str | os.PathLike[str],
    artifact: Artifact | None = None,
    columns: Sequence[str] | None = None,
    **kwargs: Any,
) -> Any:
    """The matrices in long form: one row per (origin, destination) cell.

    Columns ``origin``, ``destination`` (zone ids from the mapping chosen as
    in :func:`load`, else positions) and one column per matrix. Parameters
    and errors as :func:`load`.
    """
    return load(path, artifact, columns, **kwargs).to_dataframe().reset_index()


# --------------------------------------------------------------------------- #
# Comparing one matrix of two files
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class MatrixComparison:
    """One matrix compared between two runs (``b`` minus ``a``).

    Attributes
    ----------
    matrix, run_a, run_b:
        What was compared.
    sum_a, sum_b:
        The sum of each matrix (NaN cells left out).
    diff_sum:
        The sum of the differences ``b - a`` over cells where both are numbers.
    abs_diff_sum, max_abs_diff:
        The sum and the largest of ``|b - a|`` over those cells.
    cells:
        The number of cells.
    changed_cells, changed_share:
        Cells where ``|b - a| > tolerance``, or that are NaN in exactly one
        of the two; and their share of ``cells`` (0.0 for an empty matrix).
    tolerance:
        The tolerance used.
    """

    matrix: str
    run_a: str
    run_b: str
    sum_a: float
    sum_b: float
    diff_sum: float
    abs_diff_sum: float
    max_abs_diff: float
    cells: int
    changed_cells: int
    changed_share: float
    tolerance: float

    def to_dict(self) -> dict[str, Any]:
        """The comparison as a plain dict."""
        return asdict(self)


def compare_arrays(
    a: Any, b: Any, *, matrix: str, run_a: str, run_b: str, tolerance: float = 0.0
) -> MatrixComparison:
    """Compare two arrays of one shape (see :class:`MatrixComparison`).

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    import numpy as np

    a = np.asarray(a, dtype="float64")
    b = np.asarray(b, dtype="float64")
    if a.shape != b.shape:
        raise ValueError(
            f"matrix {matrix!r} has shape {a.shape} in run {run_a!r} but {b.shape} in run "
            f"{run_b!r}; only matrices of one shape can be compared cell by cell"
        )
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    both = ~nan_a & ~nan_b
    diff = np.where(both, b - a, 0.0)
    absdiff = np.abs(diff)
    changed = (absdiff > tolerance) | (nan_a ^ nan_b)
    cells = int(a.size)
    changed_cells = int(changed.sum())
    return MatrixComparison(
        matrix=matrix,
        run_a=run_a,
        run_b=run_b,
        sum_a=float(np.nansum(a)),
        sum_b=float(np.nansum(b)),
        diff_sum=float(diff.sum()),
        abs_diff_sum=float(absdiff.sum()),
        max_abs_diff=float(absdiff.max()) if cells else 0.0,
        cells=cells,
        changed_cells=changed_cells,
        changed_share=changed_cells / cells if cells else 0.0,
        tolerance=float(tolerance),
    )
