"""Tracker methods for HDF5 containers and tables.

Mixed into :class:`~consist.core.tracker.Tracker` through
:class:`~consist.core.facade.formats.TrackerFormats`; reading, hashing and
describing the format lives in :mod:`consist.core.drivers.hdf5` (the rule
for reusing a table's recorded digest is documented there).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from consist.core.run.artifacts import ArtifactRequest, validate_direction, validate_key
from consist.core.store.schema_fields import (
    DEFAULT_SAMPLE_ROWS,
    validate_profile_mode,
    validate_sample_rows,
)
from consist.models.artifact import Artifact, content_id_for

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.drivers.hdf5 import H5Table
    from consist.core.paths import PathResolver
    from consist.core.run.lifecycle import RunLifecycle
    from consist.core.store.metadata_store import MetadataStore
    from consist.core.store.schema_store import SchemaStore

HASH_TABLE_MODES = ("always", "if_unchanged", "never")

# Above this many characters of JSON, the container lists only its table count.
_MAX_TABLE_LIST_CHARS = 60_000


class TrackerHdf5:
    """Tracker methods for HDF5 containers and tables."""

    store: MetadataStore | None
    lifecycle: RunLifecycle
    paths: PathResolver

    if TYPE_CHECKING:  # pragma: no cover

        def _schema_store(self) -> SchemaStore | None: ...  # TrackerViews provides it

    def log_h5_container(
        self,
        path: str | os.PathLike[str],
        key: str | None = None,
        direction: str = "output",
        discover_tables: bool = True,
        table_filter: Callable[[str], bool] | list[str] | None = None,
        hash_tables: str = "if_unchanged",
        table_hash_chunk_rows: int | None = None,
        **meta: Any,
    ) -> tuple[Artifact, list[Artifact]]:
        """Log an HDF5 file and optionally discover its internal tables.

        Each pandas/PyTables table (a group written by ``DataFrame.to_hdf``,
        ``format="table"`` or ``"fixed"``) and each other dataset becomes a
        child artifact: driver ``h5_table``, ``table_path`` its HDF5 path
        (``"/households"``), key ``"<container key>/<table path>"``
        (``"urbansim_data/households"``), and meta ``parent_id`` /
        ``parent_key`` naming the container, ``h5_kind``
        (``pandas_table`` / ``pandas_fixed`` / ``dataset``), ``n_rows`` and,
        for datasets, ``shape`` and ``dtype``. The container (driver ``h5``,
        hashed as a whole file) lists its tables' paths in meta
        ``h5_tables``. All are written in one journal write and transaction.

        Parameters
        ----------
        path : str or Path
            Path to the HDF5 file.
        key : str, optional
            Semantic name for the container. If not provided, uses the file stem.
        direction : str
            ``"input"`` or ``"output"`` (default ``"output"``).
        discover_tables : bool
            If True, scan the file and create child artifacts for each table/dataset.
        table_filter : callable or list of str, optional
            Which tables to log: a callable taking a table path
            (``"/2025/households"``) and returning True to include it, or a
            list of table names to include (exact match, with or without the
            leading ``/``). None includes all tables.
        hash_tables : {"always", "if_unchanged", "never"}
            ``"always"`` reads and hashes every table's content.
            ``"if_unchanged"`` (default) reuses a table's recorded digest when
            the container file's stat identity and the table's HDF5 object
            metadata are unchanged since the digest was computed (and that
            recording was not within the file's timestamp granularity), and
            hashes it otherwise; see :mod:`consist.core.drivers.hdf5`.
            ``"never"`` records no content digest (the child's ``hash`` is
            None and meta ``table_hashed`` is False).
        table_hash_chunk_rows : int, optional
            Rows read at a time when hashing a table (default: about 64 MiB
            per read). It bounds memory and does not change the digest.
        **meta : Any
            Additional metadata for the container artifact.

        Returns
        -------
        tuple of (Artifact, list of Artifact)
            The container artifact and its table artifacts, in table-path order.

        Raises
        ------
        RuntimeError
            If called outside an active run context.
        ImportError
            If h5py is not installed and discover_tables is True.
        ValueError
            For an invalid ``hash_tables``, ``table_hash_chunk_rows``,
            ``direction`` or key, or a ``table_filter`` list naming a table
            the file does not hold (all before anything is written).
        TypeError
            For a ``table_filter`` that is neither a callable nor a list of names.
        FileNotFoundError
            If ``path`` does not exist and tables are to be discovered.
        """
        from consist.core.drivers import hdf5 as h5

        self.lifecycle.require_active("log_h5_container")
        mode = _check_mode(hash_tables)
        chunk_rows = _check_chunk_rows(table_hash_chunk_rows)
        validate_direction(direction)
        if not isinstance(discover_tables, bool):
            raise TypeError(f"discover_tables must be True or False, got {discover_tables!r}")
        wanted = _check_filter(table_filter)
        abs_path = _file_path(path, "log_h5_container")
        container_key = validate_key(key if key is not None else _stem(abs_path))
        if not discover_tables:
            request = ArtifactRequest(
                ref=abs_path, key=container_key, direction=direction, driver="h5", meta=meta
            )
            request.allow_pending = direction == "output"
            return self.lifecycle.log_artifacts([request], "log_h5_container")[0], []

        h5.require_h5py("log_h5_container")
        if not os.path.isfile(abs_path):
            raise FileNotFoundError(
                f"log_h5_container: {abs_path} does not exist (write the HDF5 file first, "
                "or pass discover_tables=False to log it when the run ends)"
            )
        tables = _apply_filter(h5.discover_tables(abs_path), table_filter, wanted)
        child_keys = [validate_key(_child_key(container_key, t.table_path)) for t in tables]
        uri = self.paths.virtualize(abs_path)
        digests = self._h5_digests(abs_path, uri, tables, mode, chunk_rows)

        listed = [t.table_path for t in tables]
        container_meta = {**meta, "hash_tables": mode, "h5_table_count": len(tables)}
        if len(json.dumps(listed)) <= _MAX_TABLE_LIST_CHARS:
            container_meta["h5_tables"] = listed
        request = ArtifactRequest(
            ref=abs_path, key=container_key, direction=direction, driver="h5", meta=container_meta
        )
        container = self.lifecycle.log_artifacts([request], "log_h5_container", flush=False)[0]
        try:
            requests = [
                self._h5_child_request(
                    abs_path, uri, table, child_key, direction, container, digests[i], {}
                )
                for i, (table, child_key) in enumerate(zip(tables, child_keys, strict=True))
            ]
            children = (
                self.lifecycle.log_artifacts(requests, "log_h5_container", flush=False)
                if requests
                else []
            )
            for child in children:
                # The builder compares a child's table digest with the digest of the
                # file an earlier run wrote at this location: not a staleness signal.
                child.meta.pop("stale_producer_artifact_id", None)
        finally:
            self.lifecycle.flush()
        return container, children

    def log_h5_table(
        self,
        path: str | os.PathLike[str],
        *,
        table_path: str,
        key: str | None = None,
        direction: str = "output",
        parent: Artifact | None = None,
        hash_table: bool = True,
        table_hash_chunk_rows: int | None = None,
        profile_file_schema: bool | str = False,
        file_schema_sample_rows: int | None = None,
        **meta: Any,
    ) -> Artifact:
        """Log a single HDF5 table as an artifact without scanning the container.

        The artifact has driver ``h5_table`` and the meta of a discovered
        child (see :meth:`log_h5_container`); with ``parent`` also
        ``parent_id`` / ``parent_key``.

        Parameters
        ----------
        path : str or Path
            Path to the HDF5 file on disk.
        table_path : str
            Internal table/dataset path inside the HDF5 container
            (``"/households"``; the leading ``/`` may be omitted).
        key : str, optional
            Semantic key for the table artifact. Defaults to the dataset name
            (``table_path`` without its leading ``/``).
        direction : str
            Whether the table is an ``"input"`` or ``"output"``.
        parent : Artifact, optional
            Optional parent container artifact to link this table to.
        hash_table : bool
            Whether to compute a content hash for the table. With True a
            recorded digest is reused under the ``hash_tables="if_unchanged"``
            rule of :meth:`log_h5_container`; with False the artifact has no
            hash (meta ``table_hashed`` False).
        table_hash_chunk_rows : int, optional
            Chunk size (rows) for hashing large tables.
        profile_file_schema : bool or "if_changed"
            Whether to profile the table's schema (from its first
            ``file_schema_sample_rows`` rows) and store it as metadata
            (``schema_id``, ``schema_summary``). ``"if_changed"`` skips
            profiling when the same content identity already has a schema
            (needs ``hash_table=True``).
        file_schema_sample_rows : int, optional
            Number of rows to sample when profiling schema (default 10,000).
        **meta : Any
            Additional metadata to store on the artifact.

        Returns
        -------
        Artifact
            The created table artifact.

        Raises
        ------
        RuntimeError
            Outside an active run.
        ImportError
            If h5py is not installed.
        KeyError
            If the file holds no table at ``table_path``.
        ValueError, TypeError
            For an invalid argument (before anything is written).
        FileNotFoundError
            If ``path`` does not exist.
        """
        from consist.core.drivers import hdf5 as h5

        self.lifecycle.require_active("log_h5_table")
        table_path = h5.normalize_table_path(table_path)
        validate_direction(direction)
        if not isinstance(hash_table, bool):
            raise TypeError(f"hash_table must be True or False, got {hash_table!r}")
        chunk_rows = _check_chunk_rows(table_hash_chunk_rows)
        profile = validate_profile_mode(profile_file_schema)
        sample_rows = validate_sample_rows(file_schema_sample_rows)
        if parent is not None and not isinstance(parent, Artifact):
            raise TypeError(
                f"parent must be the container's Artifact (from log_h5_container or "
                f"log_artifact), got {type(parent).__name__}"
            )
        abs_path = _file_path(path, "log_h5_table")
        table_key = validate_key(key if key is not None else table_path.lstrip("/"))
        h5.require_h5py("log_h5_table")
        if not os.path.isfile(abs_path):
            raise FileNotFoundError(f"log_h5_table: {abs_path} does not exist")
        table = h5.describe_table(abs_path, table_path)
        uri = self.paths.virtualize(abs_path)
        mode = "if_unchanged" if hash_table else "never"
        digest = self._h5_digests(abs_path, uri, [table], mode, chunk_rows)[0]
        request = self._h5_child_request(
            abs_path, uri, table, table_key, direction, parent, digest, meta
        )
        art = self.lifecycle.log_artifacts([request], "log_h5_table", flush=False)[0]
        try:
            art.meta.pop("stale_producer_artifact_id", None)
            if profile:
                self._h5_profile(abs_path, table, art, profile, sample_rows)
        finally:
            self.lifecycle.flush()
        return art

    # -- internals ----------------------------------------------------------------

    def _h5_digests(
        self,
        abs_path: str,
        uri: str,
        tables: list[H5Table],
        mode: str,
        chunk_rows: int | None,
    ) -> list[tuple[str | None, dict | None, bool]]:
        """Per table: (digest, ``h5_fingerprint`` to record, whether the digest was reused)."""
        from consist.core.drivers import hdf5 as h5

        if mode == "never":
            return [(None, None, False) for _ in tables]
        out: list[tuple[str | None, dict | None, bool]] = []
        for table in tables:
            identity = h5.file_identity(abs_path)
            if mode == "if_unchanged" and self.store is not None:
                recorded = self.store.get_artifact_by_uri(uri, table_path=table.table_path)
                if (
                    recorded is not None
                    and recorded.hash is not None
                    and recorded.hash.startswith("blake3:")
                ):
                    fingerprint = recorded.meta.get("h5_fingerprint")
                    if h5.may_reuse(fingerprint, identity, table):
                        out.append((recorded.hash, fingerprint, True))
                        continue
            recorded_ns = h5.now_ns()
            digest = h5.hash_table(abs_path, table.table_path, chunk_rows)
            # Remember the reading only if the file stayed put while it was read.
            stable = h5.file_identity(abs_path) == identity
            record = h5.fingerprint_record(identity, table, recorded_ns) if stable else None
            out.append((digest, record, False))
        return out

    def _h5_child_request(
        self,
        abs_path: str,
        uri: str,
        table: H5Table,
        key: str,
        direction: str,
        parent: Artifact | None,
        digest: tuple[str | None, dict | None, bool],
        meta: dict[str, Any],
    ) -> ArtifactRequest:
        """The request of one table artifact (a prebuilt Artifact when it has no digest)."""
        content_hash, fingerprint, reused = digest
        child_meta: dict[str, Any] = {**meta, **table.summary()}
        if parent is not None:
            child_meta["parent_id"] = str(parent.id)
            child_meta["parent_key"] = parent.key
        child_meta["table_hashed"] = content_hash is not None
        if content_hash is not None:
            child_meta["table_digest_reused"] = reused
        if fingerprint is not None:
            child_meta["h5_fingerprint"] = fingerprint
        if content_hash is not None:
            return ArtifactRequest(
                ref=abs_path,
                key=key,
                direction=direction,
                driver="h5_table",
                table_path=table.table_path,
                content_hash=content_hash,
                meta=child_meta,
            )
        # No digest: build the record here, so the builder does not stand the
        # whole file's digest in for the table's.
        from consist.core.validation import validate_metadata

        active = self.lifecycle.require_active("logging an HDF5 table")
        art = Artifact(
            key=key,
            uri=uri,
            driver="h5_table",
            hash=None,
            content_id=content_id_for(None),
            table_path=table.table_path,
            size_bytes=table.size_bytes,
            run_id=active.run.id,
            meta=validate_metadata(child_meta, param="meta"),
        )
        return ArtifactRequest(ref=art.with_local_path(abs_path), key=None, direction=direction)

    def _h5_profile(
        self, abs_path: str, table: H5Table, art: Artifact, mode: bool | str, rows: int | None
    ) -> None:
        """Profile a table artifact's schema and record it (before the run is flushed)."""
        import warnings

        from consist.core.drivers import hdf5 as h5

        store = self._schema_store()
        if mode == "if_changed" and store is not None and art.hash is not None:
            link = store.find_file_link(art.content_id, art.hash)
            profile = store.get_profile(link.schema_id) if link is not None else None
            if link is not None and profile is not None:
                art.meta["schema_id"] = link.schema_id
                art.meta["schema_reused"] = True
                return
        try:
            obs = h5.profile_table(abs_path, table, rows, DEFAULT_SAMPLE_ROWS)
        except Exception as exc:  # profiling never fails the logging
            warnings.warn(
                f"could not profile the schema of {art.key!r} ({table.table_path}): {exc}",
                UserWarning,
                stacklevel=3,
            )
            return
        art.meta["schema_id"] = obs.profile.id
        art.meta["schema_summary"] = obs.summary()
        if store is not None:
            store.record([(obs, art.id)], content_id=art.content_id, hash=art.hash)


def _check_mode(value: Any) -> str:
    if not isinstance(value, str) or value not in HASH_TABLE_MODES:
        raise ValueError(
            f"hash_tables={value!r} is not supported; use 'always', 'if_unchanged' "
            "(reuse a recorded digest while the file is unchanged) or 'never'"
        )
    return value


def _check_chunk_rows(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"table_hash_chunk_rows must be a positive number of rows or None, got {value!r}"
        )
    return value


def _check_filter(value: Any) -> list[str] | None:
    """A list filter as normalized table paths (None for no filter or a callable)."""
    from consist.core.drivers.hdf5 import normalize_table_path

    if value is None or callable(value):
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(
            "table_filter must be a callable (name -> bool) or a list of table names, "
            f"e.g. ['households', 'persons']; got {value!r}"
        )
    names = list(value)
    return [normalize_table_path(n, param="table_filter entry") for n in names]


def _apply_filter(
    tables: list[H5Table], table_filter: Any, wanted: list[str] | None
) -> list[H5Table]:
    if table_filter is None:
        return tables
    if wanted is None:
        return [t for t in tables if table_filter(t.table_path)]
    present = {t.table_path for t in tables}
    missing = [n for n in wanted if n not in present]
    if missing:
        raise ValueError(
            f"table_filter names {missing}, which the file does not hold; its tables are "
            f"{sorted(present)[:30]}"
        )
    keep = set(wanted)
    return [t for t in tables if t.table_path in keep]


def _file_path(path: Any, what: str) -> str:
    if isinstance(path, Artifact) or not isinstance(path, str | os.PathLike):
        raise TypeError(f"{what}: path must be a str or Path of an HDF5 file, got {path!r}")
    return os.path.abspath(os.fspath(path))


def _stem(abs_path: str) -> str:
    name = os.path.basename(abs_path)
    stem, _ = os.path.splitext(name)
    return stem or name


def _child_key(container_key: str, table_path: str) -> str:
    return f"{container_key}/{table_path.lstrip('/')}"
