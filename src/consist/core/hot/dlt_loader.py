"""Everything dlt: staging row iterables for ingestion.

dlt (the ``ingest`` extra) turns an iterable of dict rows into a typed
table: it infers column types, evolves the schema as new keys appear and
stores nested values as JSON. Consist uses it for exactly that and nothing
else: rows are loaded into a private staging DuckDB file, then the hot store
moves them into ``global_tables`` with provenance columns (see
:mod:`consist.core.store.hot_tables`), so dlt's own bookkeeping tables and
columns never reach the shared store.

Isolation, so that nothing lands outside the tracker's folders:

* dlt is imported lazily; a missing install raises ImportError naming
  ``pip install 'consist[ingest]'``.
* dlt's telemetry is switched off (``RUNTIME__DLTHUB_TELEMETRY=false``
  during the call, and the run context forces it off). If the host program
  already started dlt telemetry itself, that choice is left alone.
* dlt runs inside its own run context rooted at ``workdir`` (by default
  ``<run_dir>/.consist/dlt``): pipelines, load packages, its config lookup
  and the ``.anonymous_id`` file dlt writes on every pipeline step live
  there, never in ``~/.dlt`` or ``/var/dlt``. Each ingest uses a fresh
  pipeline whose working folder and staging file are removed afterwards.
* Names are kept as they are (dlt's ``direct`` naming convention), so rows
  loaded through dlt and files read natively share column names.
  ``max_table_nesting=0``: nested dicts/lists become JSON columns instead
  of child tables. dlt's ``iso_timestamp`` detection is off, so strings
  stay strings; column types follow the Python values.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install 'consist[ingest]'"
STAGING_DATASET = "consist_rows"
_DLT_COLUMNS = ("_dlt_id", "_dlt_load_id", "_dlt_parent_id", "_dlt_list_idx", "_dlt_root_id")
_VARIANT_MARK = "\u25b6v_"  # dlt's direct naming joins "column▶v_<type>" for variant columns
_ENV = {"RUNTIME__DLTHUB_TELEMETRY": "false"}


def require_dlt() -> Any:
    """Import dlt, or raise ImportError with the install hint."""
    try:
        import dlt
    except ImportError as exc:
        raise ImportError(
            f"ingesting row iterables uses dlt, which is not installed: {INSTALL_HINT}"
        ) from exc
    return dlt


@dataclass(frozen=True)
class StagedRows:
    """Rows loaded by dlt into a staging DuckDB file.

    Attributes
    ----------
    path:
        The staging DuckDB file (removed when the context exits).
    table:
        ``<dataset>."<table>"`` inside that file.
    exclude:
        dlt bookkeeping columns to drop when reading.
    columns:
        Data column names in order.
    variant_columns:
        ``{column: [variant columns]}`` where dlt met values of a type the
        column could not hold.
    load_info:
        dlt's ``LoadInfo`` of the load.
    """

    path: str
    table: str
    exclude: tuple[str, ...]
    columns: tuple[str, ...]
    variant_columns: dict[str, list[str]]
    load_info: Any


@contextlib.contextmanager
def stage_rows(rows: Iterable[Any], table: str, workdir: Path) -> Iterator[StagedRows | None]:
    """Load ``rows`` with dlt into a fresh staging DuckDB file under ``workdir``.

    Yields None when the iterable produced no rows. The pipeline folder and
    the staging file are removed on exit.

    Raises
    ------
    ImportError
        If dlt is not installed.
    """
    dlt = require_dlt()
    workdir = Path(workdir)
    name = f"consist_{uuid.uuid4().hex[:16]}"
    pipelines_dir = workdir / "pipelines"
    staging_dir = workdir / "staging"
    staging_dir.mkdir(parents=True, exist_ok=True)
    staging = staging_dir / f"{name}.duckdb"
    try:
        with _isolated(workdir):
            from dlt.common.schema import Schema

            pipeline = dlt.pipeline(
                pipeline_name=name,
                pipelines_dir=str(pipelines_dir),
                destination=dlt.destinations.duckdb(credentials=str(staging)),
                dataset_name=STAGING_DATASET,
            )
            resource = dlt.resource(
                rows, name=table, max_table_nesting=0, write_disposition="append"
            )
            schema = Schema(name, normalizers={"names": "direct"})
            # Keep values' Python types: ISO-looking strings stay strings.
            schema.remove_type_detection("iso_timestamp")
            info = pipeline.run(resource, schema=schema, loader_file_format="parquet")
            schema = pipeline.default_schema
            loaded = table in schema.tables and staging.exists()
            columns = schema.get_table_columns(table) if loaded else {}
        if not loaded:
            yield None
            return
        exclude = tuple(c for c in columns if c in _DLT_COLUMNS)
        data = [c for c in columns if c not in _DLT_COLUMNS]
        variants: dict[str, list[str]] = {}
        for column in data:
            if columns[column].get("variant") or _VARIANT_MARK in column:
                base = column.split(_VARIANT_MARK, 1)[0]
                variants.setdefault(base, []).append(column)
        yield StagedRows(
            path=str(staging),
            table=f'{STAGING_DATASET}."{table}"',
            exclude=exclude,
            columns=tuple(c for c in data if not any(c in v for v in variants.values())),
            variant_columns=variants,
            load_info=info,
        )
    finally:
        shutil.rmtree(pipelines_dir / name, ignore_errors=True)
        for suffix in ("", ".wal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{staging}{suffix}")


@contextlib.contextmanager
def _isolated(workdir: Path) -> Iterator[None]:
    """Run dlt with telemetry off and every folder inside ``workdir``."""
    from dlt.common.runtime.run_context import switched_run_context

    saved = {key: os.environ.get(key) for key in (*_ENV, "DLT_DATA_DIR")}
    os.environ.update(_ENV)
    os.environ["DLT_DATA_DIR"] = str(workdir)
    try:
        with switched_run_context(_run_context(str(workdir))):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run_context(workdir: str) -> Any:
    """A dlt run context whose every directory is ``workdir`` and telemetry is off."""
    from dlt.common.configuration.resolve import resolve_configuration
    from dlt.common.configuration.specs import RuntimeConfiguration
    from dlt.common.runtime.run_context import RunContext

    class ConsistRunContext(RunContext):
        @property
        def global_dir(self) -> str:
            return workdir

        @property
        def run_dir(self) -> str:
            return workdir

        @property
        def local_dir(self) -> str:
            return workdir

        @property
        def data_dir(self) -> str:
            return workdir

        def initialize_runtime(self, runtime_config: Any = None) -> None:
            if runtime_config is None:
                runtime_config = resolve_configuration(RuntimeConfiguration())
            runtime_config.dlthub_telemetry = False
            super().initialize_runtime(runtime_config)

    return ConsistRunContext(workdir)
