"""Tracker methods for OpenMatrix (OMX) files.

Mixed into :class:`~consist.core.tracker.Tracker` through
:class:`~consist.core.facade.formats.TrackerFormats`; reading and describing
the format lives in :mod:`consist.core.drivers.openmatrix`.

* :meth:`TrackerOpenMatrix.log_openmatrix_file` logs an OMX file with its
  structure (matrices, shape, zone count, mappings, attributes) in
  ``artifact.meta["openmatrix"]`` and as the artifact's key/value-indexed
  facet (``matrices.<name>.rows``, ``zone_count``, ``mappings.<name>.length``,
  ``attributes.<name>``, ...).
* :meth:`TrackerOpenMatrix.openmatrix_metadata` returns an
  :class:`OpenMatrixMetadataView` over every OMX artifact with a key, across
  runs, each labelled with the year and iteration of the run that produced it.
* :meth:`TrackerOpenMatrix.compare_matrices` compares one matrix between
  the files two runs logged under a key.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consist.core.drivers import openmatrix as omx_driver
from consist.core.run.artifacts import validate_direction, validate_key
from consist.models.artifact import Artifact
from consist.models.run import Run

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from consist.core.drivers.openmatrix import MatrixComparison

_DRIVER = "openmatrix"
_RESERVED_META = frozenset({omx_driver.DESCRIPTION_KEY, "facet_schema_name"})

Entry = tuple[Artifact, "Run | None"]


def _check_year(year: Any) -> None:
    if year is not None and (isinstance(year, bool) or not isinstance(year, int)):
        raise TypeError(f"year must be an int (e.g. year=2024) or None, got {year!r}")


def _check_run_id(run_id: Any, param: str = "run_id", *, optional: bool = True) -> str | None:
    if isinstance(run_id, Run):
        return run_id.id
    if run_id is None and optional:
        return None
    if not isinstance(run_id, str) or not run_id:
        raise TypeError(f"{param} must be a run id (str) or a Run, got {run_id!r}")
    return run_id


class OpenMatrixMetadataView:
    """The OMX artifacts logged under one key, across runs.

    Built by :meth:`TrackerOpenMatrix.openmatrix_metadata`; every call reads
    the store afresh, so runs logged later appear. Each artifact is
    labelled with the run that produced it (``run_id``, ``year``,
    ``iteration``). Its structure comes from the metadata recorded by
    ``log_openmatrix_file``; an OMX artifact logged another way is described
    from its file when the file is here, and is otherwise listed by
    :meth:`summary` only. Methods return pandas DataFrames, ordered by year
    (runs without a year last), then by logging time; a key with no OMX
    artifact gives empty DataFrames with the same columns.
    """

    _ENTRY_COLUMNS = ("run_id", "year", "iteration", "artifact_id")

    def __init__(
        self,
        concept_key: str,
        entries: Callable[[], list[Entry]],
        compare: Callable[..., MatrixComparison],
    ) -> None:
        self.concept_key = concept_key
        self._entries = entries
        self._compare = compare

    def __repr__(self) -> str:
        return f"OpenMatrixMetadataView({self.concept_key!r})"

    # -- selection -----------------------------------------------------------------

    def _selected(self, year: Any, run_id: Any) -> list[tuple[Artifact, Run | None, dict | None]]:
        _check_year(year)
        run_id = _check_run_id(run_id)
        chosen = []
        for art, run in self._entries():
            if year is not None and (run is None or run.year != year):
                continue
            if run_id is not None and art.run_id != run_id:
                continue
            chosen.append((art, run, _description(art)))
        chosen.sort(
            key=lambda e: (
                e[1] is None or e[1].year is None,
                (e[1].year or 0) if e[1] is not None else 0,
                e[0].created_at,
            )
        )
        return chosen

    @staticmethod
    def _label(art: Artifact, run: Run | None) -> dict[str, Any]:
        return {
            "run_id": art.run_id,
            "year": run.year if run is not None else None,
            "iteration": run.iteration if run is not None else None,
            "artifact_id": str(art.id),
        }

    @staticmethod
    def _frame(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(rows, columns=list(columns))

    def get_artifacts(self, year: int | None = None, run_id: str | None = None) -> list[Artifact]:
        """The OMX artifacts with this key (optionally of one year / one run)."""
        return [art for art, _, _ in self._selected(year, run_id)]

    # -- structure -----------------------------------------------------------------

    def get_matrices(self, year: int | None = None, run_id: str | None = None) -> pd.DataFrame:
        """One row per matrix per artifact.

        Parameters
        ----------
        year:
            Only artifacts produced by runs of this year.
        run_id:
            Only artifacts produced by this run.

        Returns
        -------
        pandas.DataFrame
            Columns ``run_id``, ``year``, ``iteration``, ``artifact_id``,
            ``matrix``, ``rows``, ``cols``, ``dtype``, ``title``,
            ``attributes`` (a dict).

        Raises
        ------
        TypeError
            If ``year`` is not an int or ``run_id`` not a string.
        """
        rows = []
        for art, run, desc in self._selected(year, run_id):
            for name, info in (desc or {}).get("matrices", {}).items():
                rows.append(
                    {
                        **self._label(art, run),
                        "matrix": name,
                        "rows": info.get("rows"),
                        "cols": info.get("cols"),
                        "dtype": info.get("dtype"),
                        "title": info.get("title"),
                        "attributes": dict(info.get("attributes", {})),
                    }
                )
        columns = ("matrix", "rows", "cols", "dtype", "title", "attributes")
        return self._frame(rows, self._ENTRY_COLUMNS + columns)

    def get_zone_counts(self, year: int | None = None, run_id: str | None = None) -> pd.DataFrame:
        """The zone count (matrix rows) and shape of each artifact.

        Returns
        -------
        pandas.DataFrame
            Columns ``run_id``, ``year``, ``iteration``, ``artifact_id``,
            ``zone_count``, ``rows``, ``cols``. Filters as :meth:`get_matrices`.
        """
        rows = []
        for art, run, desc in self._selected(year, run_id):
            if desc is None:
                continue
            shape = desc.get("shape") or [None, None]
            rows.append(
                {
                    **self._label(art, run),
                    "zone_count": desc.get("zone_count"),
                    "rows": shape[0],
                    "cols": shape[1],
                }
            )
        return self._frame(rows, (*self._ENTRY_COLUMNS, "zone_count", "rows", "cols"))

    def get_mappings(self, year: int | None = None, run_id: str | None = None) -> pd.DataFrame:
        """One row per zone mapping (``/lookup/<name>``) per artifact.

        Returns
        -------
        pandas.DataFrame
            Columns ``run_id``, ``year``, ``iteration``, ``artifact_id``,
            ``mapping``, ``length``, ``dtype``. Filters as :meth:`get_matrices`.
        """
        rows = []
        for art, run, desc in self._selected(year, run_id):
            for name, info in (desc or {}).get("mappings", {}).items():
                rows.append(
                    {
                        **self._label(art, run),
                        "mapping": name,
                        "length": info.get("length"),
                        "dtype": info.get("dtype"),
                    }
                )
        return self._frame(rows, (*self._ENTRY_COLUMNS, "mapping", "length", "dtype"))

    def get_attributes(self, year: int | None = None, run_id: str | None = None) -> pd.DataFrame:
        """One row per attribute: the file's (``matrix`` None) and each matrix's.

        Returns
        -------
        pandas.DataFrame
            Columns ``run_id``, ``year``, ``iteration``, ``artifact_id``,
            ``matrix``, ``name``, ``value``. Filters as :meth:`get_matrices`.
        """
        rows = []
        for art, run, desc in self._selected(year, run_id):
            if desc is None:
                continue
            label = self._label(art, run)
            for name, value in desc.get("attributes", {}).items():
                rows.append({**label, "matrix": None, "name": name, "value": value})
            for matrix, info in desc.get("matrices", {}).items():
                for name, value in info.get("attributes", {}).items():
                    rows.append({**label, "matrix": matrix, "name": name, "value": value})
        return self._frame(rows, (*self._ENTRY_COLUMNS, "matrix", "name", "value"))

    def summary(self, concept_key: str | None = None) -> pd.DataFrame:
        """One row per artifact: its run and the shape of its contents.

        Parameters
        ----------
        concept_key:
            Optional: the view's own key, as in ``view.summary("demand")``.

        Returns
        -------
        pandas.DataFrame
            Columns ``run_id``, ``year``, ``iteration``, ``artifact_id``,
            ``model``, ``hash``, ``matrix_count``, ``matrices`` (names),
            ``zone_count``, ``shape``, ``mappings`` (names), ``attributes``
            (the file's). Structure columns are None for an artifact that
            cannot be described (logged without ``log_openmatrix_file`` and its
            file not here).

        Raises
        ------
        ValueError
            If ``concept_key`` is given and is not the view's key.
        """
        if concept_key is not None and concept_key != self.concept_key:
            raise ValueError(
                f"summary({concept_key!r}) was asked of the view of {self.concept_key!r}; "
                f"call tracker.openmatrix_metadata({concept_key!r}).summary() for that key"
            )
        rows = []
        for art, run, desc in self._selected(None, None):
            desc = desc or {}
            rows.append(
                {
                    **self._label(art, run),
                    "model": run.model_name if run is not None else None,
                    "hash": art.hash,
                    "matrix_count": desc.get("matrix_count"),
                    "matrices": sorted(desc["matrices"]) if "matrices" in desc else None,
                    "zone_count": desc.get("zone_count"),
                    "shape": tuple(desc["shape"]) if "shape" in desc else None,
                    "mappings": sorted(desc["mappings"]) if "mappings" in desc else None,
                    "attributes": desc.get("attributes"),
                }
            )
        columns = (
            "model",
            "hash",
            "matrix_count",
            "matrices",
            "zone_count",
            "shape",
            "mappings",
            "attributes",
        )
        return self._frame(rows, self._ENTRY_COLUMNS + columns)

    def compare(
        self, matrix: str, run_a: str | Run, run_b: str | Run, *, tolerance: float = 0.0
    ) -> MatrixComparison:
        """Compare ``matrix`` of this key between two runs.

        Same as ``tracker.compare_matrices(key, matrix, run_a, run_b,
        tolerance=tolerance)``; see there.
        """
        return self._compare(self.concept_key, matrix, run_a, run_b, tolerance=tolerance)


def _description(art: Artifact) -> dict[str, Any] | None:
    """The recorded structure, else the file's (when here), else None."""
    desc = (art.meta or {}).get(omx_driver.DESCRIPTION_KEY)
    if isinstance(desc, dict):
        return desc
    path = art.abs_path
    if path is not None and os.path.isfile(path):
        try:
            return omx_driver.describe(path)
        except (ValueError, OSError, ImportError):
            return None
    return None


class TrackerOpenMatrix:
    """Tracker methods for OpenMatrix (OMX) files."""

    def log_openmatrix_file(
        self,
        path: str | Path,
        key: str | None = None,
        direction: str = "output",
        **meta: Any,
    ) -> Artifact:
        """Log an OpenMatrix (OMX) file as an artifact with metadata extraction.

        The file is hashed by content like any artifact. Its structure is
        read (metadata only, never the matrix values) and recorded in
        ``artifact.meta["openmatrix"]``: ``matrices`` (name -> ``rows``,
        ``cols``, ``dtype``, ``title``, ``attributes``), ``matrix_count``,
        ``shape``, ``zone_count`` (the rows), ``mappings`` (lookup name ->
        ``length``, ``dtype``), ``mapping_count``, ``attributes`` (the file's
        user attributes), ``omx_version``. The same dict is the artifact's
        facet, with its scalar fields key/value indexed (e.g.
        ``matrices.SOV_TIME.rows``, ``mappings.TAZ.length``,
        ``attributes.scenario``). See :mod:`consist.core.drivers.openmatrix`
        for how attribute values are converted.

        Parameters
        ----------
        path : Union[str, Path]
            Path to the OpenMatrix file (relative paths are taken from the
            working directory). It must exist.
        key : Optional[str]
            Semantic name for the artifact. If not provided, uses the file stem.
        direction : str
            Whether this is an ``"input"`` or ``"output"`` artifact.
        **meta : Any
            Additional metadata for the artifact. Names of ``log_artifact``
            options (``driver``, ``facet``, ``content_hash``, ...) and
            ``openmatrix`` are refused: use ``log_artifact`` for those.

        Returns
        -------
        Artifact
            The logged artifact with metadata extracted from the OpenMatrix structure.

        Raises
        ------
        RuntimeError
            If called outside an active run context.
        TypeError
            If ``path`` is not a str or Path.
        ValueError
            If ``direction``, ``key`` or a ``meta`` name is invalid, or the
            file is not OpenMatrix (not HDF5, or no ``/data`` group).
        FileNotFoundError
            If ``path`` does not exist.
        ImportError
            If neither h5py nor openmatrix is installed.
        """
        self.lifecycle.require_active("log_openmatrix_file")  # type: ignore[attr-defined]
        if isinstance(path, Artifact) or not isinstance(path, str | os.PathLike):
            raise TypeError(
                f"log_openmatrix_file: path must be a str or Path to an .omx file, got "
                f"{type(path).__name__}"
            )
        validate_direction(direction)
        if key is None:
            key = Path(os.fspath(path)).stem
        validate_key(key)
        taken = sorted(set(meta) & self._openmatrix_reserved_meta())
        if taken:
            raise ValueError(
                f"log_openmatrix_file: {taken} cannot be passed as metadata (they are "
                "log_artifact options or the recorded structure); use log_artifact(path, "
                "key, driver='openmatrix', ...) to set them"
            )
        description = omx_driver.describe(os.path.abspath(os.fspath(path)))
        return self.log_artifact(  # type: ignore[attr-defined]
            path,
            key,
            direction=direction,
            driver=_DRIVER,
            facet=description,
            facet_index=True,
            **{omx_driver.DESCRIPTION_KEY: description},
            **meta,
        )

    def _openmatrix_reserved_meta(self) -> frozenset[str]:
        params = inspect.signature(self.log_artifact).parameters  # type: ignore[attr-defined]
        options = {
            name
            for name, p in params.items()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
            and name not in ("path", "key", "direction")
        }
        return _RESERVED_META | options

    def openmatrix_metadata(self, concept_key: str) -> OpenMatrixMetadataView:
        """Access OpenMatrix metadata views for a given artifact key.

        The view covers every OMX artifact (driver ``openmatrix``) with this
        key, across runs, and reads the store on every call.

        Parameters
        ----------
        concept_key : str
            The semantic key identifying the OpenMatrix artifact.

        Returns
        -------
        OpenMatrixMetadataView
            A view object with methods to explore matrices, zones, and
            attributes (``get_matrices``, ``get_zone_counts``,
            ``get_mappings``, ``get_attributes``, ``get_artifacts``,
            ``summary``, ``compare``).

        Raises
        ------
        TypeError, ValueError
            If ``concept_key`` is not a valid key.

        Example
        -------
        view = tracker.openmatrix_metadata("demand")
        matrices = view.get_matrices(year=2024)
        zones = view.get_zone_counts()
        print(view.summary("demand"))
        """
        validate_key(concept_key, param="concept_key")

        def entries() -> list[Entry]:
            found = self.find_artifacts(  # type: ignore[attr-defined]
                key=concept_key, driver=_DRIVER, limit=1_000_000
            )
            runs: dict[str, Run | None] = {}
            for art in found:
                if art.run_id is not None and art.run_id not in runs:
                    runs[art.run_id] = self.get_run(art.run_id)  # type: ignore[attr-defined]
            return [(art, runs.get(art.run_id or "")) for art in found]

        return OpenMatrixMetadataView(concept_key, entries, self.compare_matrices)

    def compare_matrices(
        self,
        key: str,
        matrix: str,
        run_a: str | Run,
        run_b: str | Run,
        *,
        tolerance: float = 0.0,
    ) -> MatrixComparison:
        """Compare one matrix between the OMX files two runs logged under ``key``.

        Each run's file is the artifact it logged with that key: its output,
        else its input. The files must be here (locally or through mounts).

        Parameters
        ----------
        key : str
            The artifact key both runs used.
        matrix : str
            The matrix name (``/data/<matrix>``).
        run_a, run_b : str or Run
            The runs; differences are ``run_b - run_a``.
        tolerance : float
            A cell counts as changed when ``|b - a| > tolerance`` (or when it
            is NaN in only one of the two). Default 0.0: any difference.

        Returns
        -------
        MatrixComparison
            ``sum_a``, ``sum_b``, ``diff_sum`` (sum of ``b - a``),
            ``abs_diff_sum``, ``max_abs_diff``, ``cells``, ``changed_cells``,
            ``changed_share`` and the inputs (``.to_dict()`` for a dict).

        Raises
        ------
        TypeError
            If a run is not a run id or Run, or ``tolerance`` is not a number.
        ValueError
            If ``tolerance`` is negative or not finite, or the two matrices
            differ in shape.
        KeyError
            If a run logged no artifact with ``key``, or its file has no
            such matrix.
        FileNotFoundError
            If a run's file is not available locally.
        ImportError
            If neither h5py nor openmatrix is installed.
        """
        validate_key(key)
        if not isinstance(matrix, str) or not matrix:
            raise TypeError(f"matrix must be a matrix name (str), got {matrix!r}")
        a_id = _check_run_id(run_a, "run_a", optional=False)
        b_id = _check_run_id(run_b, "run_b", optional=False)
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
            raise TypeError(f"tolerance must be a number, got {tolerance!r}")
        if not (tolerance >= 0 and tolerance != float("inf")):
            raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
        assert a_id is not None and b_id is not None
        path_a = self._openmatrix_file_of(key, a_id)
        path_b = self._openmatrix_file_of(key, b_id)
        values_a = omx_driver.read_matrix(path_a, matrix)
        values_b = omx_driver.read_matrix(path_b, matrix)
        return omx_driver.compare_arrays(
            values_a, values_b, matrix=matrix, run_a=a_id, run_b=b_id, tolerance=tolerance
        )

    def _openmatrix_file_of(self, key: str, run_id: str) -> str:
        """The local file of the artifact ``run_id`` logged as ``key``."""
        for role in ("creator", "consumer"):
            found = self.find_artifacts(key=key, limit=1, **{role: run_id})  # type: ignore[attr-defined]
            if found:
                art = found[0]
                path = art.abs_path
                if path is None or not os.path.isfile(path):
                    raise FileNotFoundError(
                        f"the file of artifact {key!r} of run {run_id!r} is not available "
                        f"locally ({art.uri})"
                    )
                return path
        raise KeyError(f"run {run_id!r} logged no artifact with key {key!r}")
