"""Tracker methods for NetCDF files, Zarr stores and load_matrix.

Mixed into :class:`~consist.core.tracker.Tracker` through
:class:`~consist.core.facade.formats.TrackerFormats`; reading and describing
the format lives in its driver module under :mod:`consist.core.drivers`
(:mod:`~consist.core.drivers.netcdf`, :mod:`~consist.core.drivers.zarr`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consist.core.drivers import netcdf
from consist.models.artifact import Artifact
from consist.models.run import Run

__all__ = ["NetCdfMetadataView", "TrackerArrays"]

# Names log_netcdf_file sets itself; they cannot come through **meta.
_RESERVED_META = frozenset({netcdf.META_KEY, "facet", "facet_index", "facet_schema_version"})
_MATRIX_DRIVERS = ("zarr", "netcdf")
_ALL = 1 << 31  # "no limit" for queries whose API takes an int limit

_VARIABLE_COLUMNS = [
    "key",
    "run_id",
    "year",
    "iteration",
    "artifact_id",
    "uri",
    "variable",
    "dims",
    "shape",
    "dtype",
    "is_coordinate",
    "attributes",
]
_DIMENSION_COLUMNS = ["key", "run_id", "year", "iteration", "artifact_id", "dimension", "size"]
_ATTRIBUTE_COLUMNS = [
    "key",
    "run_id",
    "year",
    "iteration",
    "artifact_id",
    "variable",
    "attribute",
    "value",
]


class NetCdfMetadataView:
    """The recorded structure of every NetCDF artifact with one key, across runs.

    Returned by :meth:`TrackerArrays.netcdf_metadata`. Each query reads the
    catalog afresh, so runs logged later are included. ``year`` filters on
    the year of the run that produced the artifact.
    """

    def __init__(self, concept_key: str, records: Callable[[], list[tuple[Artifact, Run | None]]]):
        self.concept_key = concept_key
        self._records = records

    def __repr__(self) -> str:
        return f"NetCdfMetadataView({self.concept_key!r})"

    def _selected(self, year: int | None) -> list[tuple[Artifact, Run | None, dict[str, Any]]]:
        if year is not None and (isinstance(year, bool) or not isinstance(year, int)):
            raise TypeError(f"year must be an int or None, got {year!r}")
        out = []
        for art, run in self._records():
            if year is not None and (run is None or run.year != year):
                continue
            structure = art.meta.get(netcdf.META_KEY)
            if isinstance(structure, dict):
                out.append((art, run, structure))
        return out

    def _base(self, art: Artifact, run: Run | None) -> list[Any]:
        return [
            self.concept_key,
            art.run_id,
            run.year if run is not None else None,
            run.iteration if run is not None else None,
            str(art.id),
        ]

    def get_variables(self, year: int | None = None) -> Any:
        """One row per variable per artifact (a pandas DataFrame).

        Parameters
        ----------
        year : int, optional
            Only artifacts produced by runs of this year.

        Returns
        -------
        pandas.DataFrame
            Columns ``key, run_id, year, iteration, artifact_id, uri,
            variable, dims, shape, dtype, is_coordinate, attributes`` (dims
            and shape as tuples, attributes as a dict). Empty when nothing
            matches.
        """
        import pandas as pd

        rows = [
            [
                *self._base(art, run),
                art.uri,
                v["name"],
                tuple(v["dims"]),
                tuple(v["shape"]),
                v["dtype"],
                bool(v["is_coordinate"]),
                dict(v["attributes"]),
            ]
            for art, run, s in self._selected(year)
            for v in s["variables"]
        ]
        return pd.DataFrame(rows, columns=_VARIABLE_COLUMNS)

    def get_dimensions(self, year: int | None = None) -> Any:
        """One row per dimension per artifact: ``key, run_id, year, iteration,
        artifact_id, dimension, size`` (a pandas DataFrame; ``year`` as in
        :meth:`get_variables`)."""
        import pandas as pd

        rows = [
            [*self._base(art, run), name, size]
            for art, run, s in self._selected(year)
            for name, size in s["dimensions"].items()
        ]
        return pd.DataFrame(rows, columns=_DIMENSION_COLUMNS)

    def get_attributes(self, year: int | None = None, variable: str | None = None) -> Any:
        """Attributes, one row per attribute per artifact (a pandas DataFrame).

        Parameters
        ----------
        year : int, optional
            As in :meth:`get_variables`.
        variable : str, optional
            A variable's attributes; by default the file's global attributes
            (``variable`` is then None in the rows).

        Returns
        -------
        pandas.DataFrame
            Columns ``key, run_id, year, iteration, artifact_id, variable,
            attribute, value``.
        """
        import pandas as pd

        if variable is not None and (not isinstance(variable, str) or not variable):
            raise TypeError(f"variable must be a variable name or None, got {variable!r}")
        rows = []
        for art, run, s in self._selected(year):
            if variable is None:
                attrs = s["attributes"]
            else:
                found = [v for v in s["variables"] if v["name"] == variable]
                attrs = found[0]["attributes"] if found else {}
            rows.extend([*self._base(art, run), variable, k, val] for k, val in attrs.items())
        return pd.DataFrame(rows, columns=_ATTRIBUTE_COLUMNS)

    def summary(self, concept_key: str | None = None, year: int | None = None) -> str:
        """A readable summary: artifacts, years, dimensions and variables.

        Parameters
        ----------
        concept_key : str, optional
            The view's key, accepted for the call ``view.summary("climate")``;
            another key is refused.
        year : int, optional
            As in :meth:`get_variables`.

        Raises
        ------
        ValueError
            If ``concept_key`` is not this view's key.
        """
        if concept_key is not None and concept_key != self.concept_key:
            raise ValueError(
                f"this view is for {self.concept_key!r}, not {concept_key!r}; use "
                f"tracker.netcdf_metadata({concept_key!r}).summary()"
            )
        selected = self._selected(year)
        where = f" in year {year}" if year is not None else ""
        if not selected:
            return f"NetCDF {self.concept_key!r}: no artifacts{where}"
        years = sorted({r.year for _, r, _ in selected if r is not None and r.year is not None})
        lines = [
            f"NetCDF {self.concept_key!r}: {len(selected)} artifact(s){where}"
            + (f", years {years}" if years else "")
        ]
        art, _, s = selected[0]
        lines.append(f"latest: run {art.run_id} ({art.uri})")
        dims = ", ".join(f"{k}={v}" for k, v in s["dimensions"].items())
        lines.append(f"  dimensions: {dims or '-'}")
        for v in s["variables"]:
            kind = "coordinate" if v["is_coordinate"] else "variable"
            lines.append(f"  {kind} {v['name']}({', '.join(v['dims'])}) {v['dtype']}")
        if s["attributes"]:
            lines.append(f"  attributes: {', '.join(sorted(s['attributes']))}")
        return "\n".join(lines)


def _check_key(concept_key: Any, what: str) -> str:
    if not isinstance(concept_key, str) or not concept_key:
        raise TypeError(
            f"{what}: concept_key must be a non-empty artifact key, got {concept_key!r}"
        )
    return concept_key


def _check_optional_str(value: Any, name: str) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise TypeError(f"{name} must be a non-empty string or None, got {value!r}")


class TrackerArrays:
    """Tracker methods for NetCDF files, Zarr stores and load_matrix."""

    # Provided by the Tracker this is mixed into.
    lifecycle: Any
    find_runs: Callable[..., Any]
    find_artifacts: Callable[..., Any]
    get_run: Callable[..., Any]
    get_run_outputs: Callable[..., Any]
    log_artifact: Callable[..., Any]
    load: Callable[..., Any]

    def log_netcdf_file(
        self,
        path: str | os.PathLike[str],
        key: str | None = None,
        direction: str = "output",
        **meta: Any,
    ) -> Artifact:
        """Log a NetCDF file as an artifact with metadata extraction.

        The file's structure is recorded on the artifact: ``meta["netcdf"]``
        holds its variables (name, dims, dtype, shape, attributes, whether a
        coordinate), dimension sizes, coordinate names and global
        attributes; the artifact's facet holds the scalar parts
        (``dimensions.<dim>``, ``variables.<name>.dtype``/``dims``/``ndim``,
        ``attributes.<name>``), key/value indexed. Query them with
        :meth:`netcdf_metadata`.

        Parameters
        ----------
        path : str or Path
            Path to the NetCDF file (read with xarray's h5netcdf or netCDF4
            engine).
        key : str, optional
            Semantic name for the artifact; defaults to the file stem.
        direction : str
            ``"input"`` or ``"output"`` (default).
        **meta : Any
            Additional metadata for the artifact (not ``netcdf``, ``facet``,
            ``facet_index`` or ``facet_schema_version``, which this method
            sets).

        Returns
        -------
        Artifact
            The logged artifact (driver ``netcdf``) with the structure in its
            metadata.

        Raises
        ------
        RuntimeError
            If called outside an active run context.
        ImportError
            If xarray is not installed.
        TypeError
            If ``path`` is not a path.
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not readable as NetCDF, ``direction`` is invalid,
            or ``meta`` uses a reserved name. Nothing is logged then.
        """
        self.lifecycle.require_active("log_netcdf_file")
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a str or Path to a NetCDF file, got {path!r}")
        if direction not in ("input", "output"):
            raise ValueError(f"direction must be 'input' or 'output', got {direction!r}")
        reserved = sorted(_RESERVED_META & set(meta))
        if reserved:
            raise ValueError(
                f"log_netcdf_file sets {reserved} itself; pass your metadata under other names"
            )
        file_path = os.path.abspath(os.fspath(path))
        structure = netcdf.describe_file(file_path)
        if key is None:
            key = Path(file_path).stem
        extracted = netcdf.structure_meta(structure, netcdf.META_KEY)
        return self.log_artifact(
            file_path,
            key,
            direction=direction,
            driver="netcdf",
            facet=extracted["facet"],
            facet_index=True,
            **{netcdf.META_KEY: extracted[netcdf.META_KEY]},
            **meta,
        )

    def netcdf_metadata(self, concept_key: str) -> NetCdfMetadataView:
        """Access NetCDF metadata views for a given artifact key.

        Parameters
        ----------
        concept_key : str
            The semantic key identifying the NetCDF artifact.

        Returns
        -------
        NetCdfMetadataView
            A view over every NetCDF artifact with this key across runs
            (newest first), with ``get_variables(year=None)``,
            ``get_dimensions(year=None)``, ``get_attributes(year=None,
            variable=None)`` (pandas DataFrames) and ``summary()`` (text).
            Artifacts logged without their structure (e.g. with plain
            ``log_artifact``) are described from their file when it is
            available locally.

        Raises
        ------
        TypeError
            If ``concept_key`` is not a non-empty string.

        Example
        -------
        >>> view = tracker.netcdf_metadata("climate")  # doctest: +SKIP
        >>> variables = view.get_variables(year=2024)  # doctest: +SKIP
        >>> print(view.summary("climate"))  # doctest: +SKIP
        """
        key = _check_key(concept_key, "netcdf_metadata")
        return NetCdfMetadataView(key, lambda: self._netcdf_records(key))

    def _netcdf_records(self, key: str) -> list[tuple[Artifact, Run | None]]:
        runs: dict[str, Run | None] = {}
        out = []
        for art in self.find_artifacts(key=key, driver="netcdf", limit=_ALL):
            if netcdf.META_KEY not in art.meta:
                path = art.abs_path
                if path is None or not os.path.isfile(path):
                    continue
                try:
                    described = netcdf.describe_file(path)
                except ValueError:
                    continue
                art = art.model_copy(update={"meta": {**art.meta, netcdf.META_KEY: described}})
            if art.run_id is not None and art.run_id not in runs:
                runs[art.run_id] = self.get_run(art.run_id)
            out.append((art, runs.get(art.run_id) if art.run_id else None))
        return out

    def load_matrix(
        self,
        concept_key: str,
        variables: list[str] | None = None,
        *,
        run_ids: list[str] | None = None,
        parent_id: str | None = None,
        model: str | None = None,
        status: str | None = None,
    ) -> Any:
        """Convenience wrapper for loading a matrix view from tracked artifacts.

        Finds the output artifact ``concept_key`` (a Zarr store or NetCDF
        file) of every selected run, opens each, keeps ``variables`` and
        concatenates them along a new ``run_id`` dimension, with ``year``
        and ``iteration`` coordinates from the runs (NaN where a run has
        none). Arrays of different extents are outer-joined (missing cells
        NaN). The data are read into memory.

        Parameters
        ----------
        concept_key : str
            Semantic key for the matrix artifacts.
        variables : list of str, optional
            Variables to load from each Zarr store; defaults to all variables.
        run_ids : list of str, optional
            Restrict to specific run IDs (kept in this order); otherwise runs
            are ordered by year, iteration, then creation time.
        parent_id : str, optional
            Filter by scenario/parent run ID.
        model : str, optional
            Filter by model name.
        status : str, optional
            Filter by run status.

        Returns
        -------
        xarray.Dataset
            The combined matrix data, dimension ``run_id`` first.

        Raises
        ------
        ImportError
            If xarray (or zarr, for Zarr stores) is not installed.
        TypeError
            If an argument has the wrong type.
        KeyError
            If no selected run has an output ``concept_key``, or a run id in
            ``run_ids`` does not exist, or a variable is missing.
        ValueError
            If a matching artifact is neither Zarr nor NetCDF.
        FileNotFoundError
            If a matching artifact's file is not available locally.
        """
        key = _check_key(concept_key, "load_matrix")
        for name, value in (("parent_id", parent_id), ("model", model), ("status", status)):
            _check_optional_str(value, name)
        if variables is not None and (isinstance(variables, str) or not variables):
            raise TypeError(
                f"variables must be a non-empty list of variable names, got {variables!r}"
            )
        if run_ids is not None and (
            isinstance(run_ids, str) or not all(isinstance(r, str) and r for r in run_ids)
        ):
            raise TypeError(f"run_ids must be a list of run id strings, got {run_ids!r}")
        xr = netcdf.require_xarray("load_matrix")
        found = self._matrix_artifacts(key, run_ids, parent_id, model, status)
        if not found:
            filters = {
                k: v
                for k, v in dict(
                    run_ids=run_ids, parent_id=parent_id, model=model, status=status
                ).items()
                if v is not None
            }
            raise KeyError(
                f"load_matrix: no run has an output {key!r}"
                + (f" among runs matching {filters}" if filters else "")
            )
        pieces = []
        for run, art in found:
            if art.driver not in _MATRIX_DRIVERS:
                raise ValueError(
                    f"load_matrix: output {key!r} of run {run.id!r} is a {art.driver!r} "
                    "artifact; it needs Zarr stores or NetCDF files"
                )
            ds = self.load(art, columns=variables)
            try:
                pieces.append(ds.load())
            finally:
                ds.close()
        combined = xr.concat(
            pieces,
            dim="run_id",
            data_vars="all",
            coords="different",
            compat="equals",
            join="outer",
        )
        return combined.assign_coords(
            run_id=[run.id for run, _ in found],
            year=("run_id", _coordinate([run.year for run, _ in found])),
            iteration=("run_id", _coordinate([run.iteration for run, _ in found])),
        )

    def _matrix_artifacts(
        self,
        key: str,
        run_ids: list[str] | None,
        parent_id: str | None,
        model: str | None,
        status: str | None,
    ) -> list[tuple[Run, Artifact]]:
        if run_ids is not None:
            runs = []
            for rid in dict.fromkeys(run_ids):
                run = self.get_run(rid)
                if run is None:
                    raise KeyError(f"load_matrix: run_ids names {rid!r}, which is not a run")
                if model is not None and run.model_name != model:
                    continue
                if status is not None and run.status != status:
                    continue
                if parent_id is not None and run.parent_run_id != parent_id:
                    continue
                runs.append(run)
        else:
            selected = self.find_runs(parent_id=parent_id, model=model, status=status, limit=None)
            runs = sorted(
                selected,
                key=lambda r: (
                    r.year is None,
                    r.year or 0,
                    r.iteration is None,
                    r.iteration or 0,
                    r.created_at,
                ),
            )
        found = []
        for run in runs:
            art = self.get_run_outputs(run.id).get(key)
            if art is not None:
                found.append((run, art))
        return found


def _coordinate(values: list[int | None]) -> Any:
    """Run years/iterations as an array: ints, or floats with NaN where missing."""
    import numpy as np

    if all(v is not None for v in values):
        return np.asarray(values, dtype="int64")
    return np.asarray([np.nan if v is None else v for v in values], dtype="float64")
