"""SQL for shards: a run and everything upstream of it, copied between stores.

A *shard* is a directory::

    SHARD/
      shard.json        manifest: format, version, root run, run ids, row counts
      store.duckdb      a Consist store holding only the shard's rows
      journal/<id>.json the runs' journal snapshots (when the source had them)

``store.duckdb`` is an ordinary Consist store (``consist --db-path
SHARD/store.duckdb runs`` reads it). It holds, for the shard's runs, the rows
of ``run`` (identity manifests included), ``run_artifact_link``,
``run_facet``/``run_config_kv``; for the artifacts they link, ``artifact``,
``artifact_facet``/``artifact_kv``, ``artifact_schema`` and their
``content_identity`` rows; and the ``config_facet`` and ``schema_profile``
rows these reference. Files are not copied (artifact URIs are kept as
recorded: relative ones resolve under the target's run_dir and mounts);
ingested hot data, the stat cache and the write log stay behind.

A shard's store is always a DuckDB file; the store exported from or merged
into may be a PostgreSQL store (``db_url``) too. There the export reads in
one ``REPEATABLE READ`` snapshot, and the merge locks the tables it writes
against other writers from its conflict check to its commit (see
:mod:`consist.core.store.engines.pg_maintenance`).

"Upstream" of a run: the runs that logged one of its inputs as an output
(the producer and any cache hit that was handed it), their inputs'
producers, and so on; and the scenario header of any of these runs
(``parent_run_id``), with its own upstream.

Merging compares every run of the shard with the target's row of the same
id: absent runs (and their rows) are inserted, identical runs are skipped,
and a run (or artifact) whose content differs is a conflict: nothing is
written then. Rows keyed by content (facets, schema profiles, content
identities) are inserted when absent. Merging the same shard twice therefore
changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from consist.core.store.engines.pg_maintenance import (
    consistent_read,
    exclusive_transaction,
    is_postgres,
)
from consist.core.store.journal import Journal, atomic_write_bytes
from consist.core.store.lineage_groups import label_unlabelled
from consist.core.store.lineage_store import LINK_DST_SQL, LINK_SRC_SQL
from consist.core.store.metadata_store import MetadataStore
from consist.core.store.output_lookup import absent_outputs_for
from consist.core.store.rows import RUN_COLUMNS
from consist.core.store.schema import LATEST_VERSION
from consist.core.store.signature_index import signatures_for

SHARD_FORMAT = "consist-shard"
SHARD_VERSION = 1
MANIFEST_NAME = "shard.json"
STORE_NAME = "store.duckdb"
JOURNAL_DIRNAME = "journal"

# Copied tables in insertion order, each with its key columns.
_KEYS: dict[str, tuple[str, ...]] = {
    "run": ("id",),
    "artifact": ("id",),
    "run_artifact_link": ("run_id", "artifact_id", "direction"),
    "content_identity": ("id",),
    "config_facet": ("id",),
    "run_facet": ("run_id",),
    "run_config_kv": ("run_id", "namespace", "key"),
    "artifact_facet": ("artifact_id",),
    "artifact_kv": ("artifact_id", "key"),
    "schema_profile": ("id",),
    "artifact_schema": ("artifact_id", "source"),
}
TABLES = tuple(_KEYS)

# Which rows of each table belong to a shard of runs R with linked artifacts A.
_SELECT: dict[str, str] = {
    "run": "SELECT * FROM run WHERE id IN (SELECT unnest($runs))",
    "artifact": "SELECT * FROM artifact WHERE id IN (SELECT unnest($arts::UUID[]))",
    "run_artifact_link": ("SELECT * FROM run_artifact_link WHERE run_id IN (SELECT unnest($runs))"),
    "content_identity": (
        "SELECT * FROM content_identity WHERE id IN (SELECT content_id FROM artifact "
        "WHERE id IN (SELECT unnest($arts::UUID[])))"
    ),
    "config_facet": (
        "SELECT * FROM config_facet WHERE id IN (SELECT facet_id FROM run_facet "
        "WHERE run_id IN (SELECT unnest($runs))) OR id IN (SELECT facet_id FROM "
        "artifact_facet WHERE artifact_id IN (SELECT unnest($arts::UUID[])))"
    ),
    "run_facet": "SELECT * FROM run_facet WHERE run_id IN (SELECT unnest($runs))",
    "run_config_kv": "SELECT * FROM run_config_kv WHERE run_id IN (SELECT unnest($runs))",
    "artifact_facet": (
        "SELECT * FROM artifact_facet WHERE artifact_id IN (SELECT unnest($arts::UUID[]))"
    ),
    "artifact_kv": "SELECT * FROM artifact_kv WHERE artifact_id IN (SELECT unnest($arts::UUID[]))",
    "schema_profile": (
        "SELECT * FROM schema_profile WHERE id IN (SELECT schema_id FROM artifact_schema "
        "WHERE artifact_id IN (SELECT unnest($arts::UUID[])))"
    ),
    "artifact_schema": (
        "SELECT * FROM artifact_schema WHERE artifact_id IN (SELECT unnest($arts::UUID[]))"
    ),
}

# The columns that make a run's content (updated_ns is bookkeeping).
_RUN_CONTENT = (*RUN_COLUMNS.split(", "), "identity")


class ShardError(ValueError):
    """A shard that cannot be written or read (the message says why and what to do)."""


class ShardConflictError(ValueError):
    """Merging would overwrite runs or artifacts whose content differs; nothing was written.

    Attributes
    ----------
    conflicts:
        One :class:`ShardConflict` per differing run or artifact.
    """

    def __init__(self, message: str, conflicts: Sequence[ShardConflict]) -> None:
        super().__init__(message)
        self.conflicts = list(conflicts)


@dataclass(frozen=True)
class ShardConflict:
    """A run or artifact present in both stores with different content.

    Attributes
    ----------
    kind:
        ``"run"`` or ``"artifact"``.
    id:
        The run id or artifact id.
    fields:
        The columns (or ``"links"``) whose values differ.
    """

    kind: str
    id: str
    fields: tuple[str, ...]


@dataclass
class Rows:
    """Rows of one table: column names and row tuples."""

    columns: list[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def dicts(self) -> list[dict[str, Any]]:
        """The rows as ``{column: value}``."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


@dataclass(frozen=True)
class ShardManifest:
    """What ``shard.json`` says about a shard.

    Attributes
    ----------
    path:
        The shard directory.
    root_run_id:
        The run the shard was exported for.
    run_ids:
        Every run in the shard (the root first, then sorted).
    counts:
        Rows per table.
    journal:
        Run ids whose journal snapshot the shard carries.
    schema_version:
        The store schema version the rows were written with.
    exported_at:
        When the shard was written (UTC).
    source:
        The store it was exported from.
    """

    path: Path
    root_run_id: str
    run_ids: tuple[str, ...]
    counts: dict[str, int]
    journal: tuple[str, ...]
    schema_version: int
    exported_at: str
    source: str

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to ``shard.json``."""
        return {
            "format": SHARD_FORMAT,
            "version": SHARD_VERSION,
            "root_run_id": self.root_run_id,
            "run_ids": list(self.run_ids),
            "counts": dict(self.counts),
            "journal": list(self.journal),
            "schema_version": self.schema_version,
            "exported_at": self.exported_at,
            "source": self.source,
        }


@dataclass(frozen=True)
class MergeResult:
    """What merging a shard did.

    Attributes
    ----------
    shard:
        The shard's manifest.
    added_runs:
        Runs inserted (absent before).
    skipped_runs:
        Runs already present with identical content (left as they were).
    inserted:
        Rows inserted per table (zero everywhere when nothing was new).
    journal_written:
        Run ids whose journal snapshot was written under the target run_dir.
    """

    shard: ShardManifest
    added_runs: tuple[str, ...]
    skipped_runs: tuple[str, ...]
    inserted: dict[str, int]
    journal_written: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """Whether the merge wrote anything."""
        return any(self.inserted.values()) or bool(self.journal_written)


# -- export -----------------------------------------------------------------------


def upstream_run_ids(con: Any, run_id: str) -> list[str]:
    """``run_id`` and every run upstream of it (see the module docstring), root first."""
    seen = {run_id}
    order = [run_id]
    frontier = [run_id]
    while frontier:
        rows = con.execute(
            "SELECT DISTINCT o.run_id FROM run_artifact_link i "
            "JOIN run_artifact_link o ON o.artifact_id = i.artifact_id AND o.direction = 'output' "
            "WHERE i.direction = 'input' AND i.run_id IN (SELECT unnest($runs)) "
            "UNION SELECT parent_run_id FROM run WHERE id IN (SELECT unnest($runs)) "
            "AND parent_run_id IS NOT NULL",
            {"runs": frontier},
        ).fetchall()
        found = sorted(r[0] for r in rows if r[0] not in seen)
        existing = (
            {
                r[0]
                for r in con.execute(
                    "SELECT id FROM run WHERE id IN (SELECT unnest($runs))", {"runs": found}
                ).fetchall()
            }
            if found
            else set()
        )
        frontier = [r for r in found if r in existing]
        seen.update(frontier)
        order.extend(frontier)
    return order


def collect_rows(con: Any, run_ids: Sequence[str]) -> dict[str, Rows]:
    """The rows of every shard table that belong to ``run_ids`` (see the module docstring)."""
    arts = [
        str(r[0])
        for r in con.execute(
            "SELECT DISTINCT artifact_id FROM run_artifact_link "
            "WHERE run_id IN (SELECT unnest($runs))",
            {"runs": list(run_ids)},
        ).fetchall()
    ]
    out: dict[str, Rows] = {}
    for table in TABLES:
        sql = _SELECT[table]
        params = {k: v for k, v in (("runs", list(run_ids)), ("arts", arts)) if f"${k}" in sql}
        cursor = con.execute(sql, params)
        columns = [d[0] for d in cursor.description]
        out[table] = _without_group(Rows(columns, [tuple(r) for r in cursor.fetchall()]))
    return out


def _without_group(rows: Rows) -> Rows:
    """``rows`` without the ``lineage_group`` column (links are labelled where they land).

    A group is joined to others through the ``lineage_group_alias`` rows of
    its store; a label copied without them would leave the links outside the
    groups they connect in the receiving store, so links always arrive
    unlabelled and :func:`label_unlabelled` labels them there.
    """
    if "lineage_group" not in rows.columns:
        return rows
    keep = [i for i, c in enumerate(rows.columns) if c != "lineage_group"]
    return Rows([rows.columns[i] for i in keep], [tuple(r[i] for i in keep) for r in rows.rows])


_ROWS_PER_STATEMENT = 5000


def _insert_rows(con: Any, table: str, rows: Rows, *, skip_existing: bool) -> int:
    """Insert ``rows`` into ``table`` by column name; return how many were new.

    Each column goes in as one list, ``unnest``-ed side by side: DuckDB
    converts Python parameters one by one, so this is a hundred times faster
    than one ``VALUES`` tuple per row.
    """
    if not rows.rows:
        return 0
    before = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    cols = ", ".join(rows.columns)
    select = ", ".join(["unnest(?)"] * len(rows.columns))
    conflict = " ON CONFLICT DO NOTHING" if skip_existing else ""
    for start in range(0, len(rows.rows), _ROWS_PER_STATEMENT):
        chunk = rows.rows[start : start + _ROWS_PER_STATEMENT]
        columns = [[row[i] for row in chunk] for i in range(len(rows.columns))]
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {select}{conflict}", columns)
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - before)


def export_shard(
    store: MetadataStore,
    journal: Journal,
    run_id: str,
    out: Path,
) -> ShardManifest:
    """Write the shard of ``run_id`` (and everything upstream) to the new directory ``out``.

    The shard is assembled in a temporary sibling directory and renamed into
    place, so ``out`` either appears complete or not at all.

    Raises
    ------
    ValueError
        If no run has this id.
    ShardError
        If ``out`` exists (a shard is never written over anything).
    """
    out = Path(out)
    if out.exists():
        raise ShardError(
            f"--out {str(out)!r} already exists; a shard is a new directory: choose another "
            "path or remove it first"
        )
    if not out.parent.is_dir():
        raise ShardError(
            f"--out {str(out)!r}: its parent directory {str(out.parent)!r} does not exist; "
            "create it first"
        )
    store.flush()  # queued snapshots join the write log, applied before the read
    with consistent_read(store) as con:
        if con.execute("SELECT 1 FROM run WHERE id = ?", [run_id]).fetchone() is None:
            raise ValueError(f"no run with id {run_id!r}")
        run_ids = upstream_run_ids(con, run_id)
        rows = collect_rows(con, run_ids)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        target = MetadataStore(str(tmp / STORE_NAME), idle_release_s=60.0)
        try:
            version = target.ensure_schema()
            with target.connections.transaction() as con:
                for table in TABLES:
                    _insert_rows(con, table, rows[table], skip_existing=False)
                label_unlabelled(con)
        finally:
            target.close()
        _remove_lock_file(tmp / STORE_NAME)
        carried = []
        (tmp / JOURNAL_DIRNAME).mkdir()
        for rid in run_ids:
            source = journal.path_for(rid)
            if source.is_file():
                shutil.copyfile(source, tmp / JOURNAL_DIRNAME / source.name)
                carried.append(rid)
        manifest = ShardManifest(
            path=out,
            root_run_id=run_id,
            run_ids=(run_ids[0], *sorted(run_ids[1:])),
            counts={t: len(rows[t].rows) for t in TABLES},
            journal=tuple(sorted(carried)),
            schema_version=version,
            exported_at=datetime.now(UTC).isoformat(),
            source=store.db_path if is_postgres(store) else os.path.abspath(store.db_path),
        )
        atomic_write_bytes(
            tmp / MANIFEST_NAME, json.dumps(manifest.to_json(), indent=2).encode() + b"\n"
        )
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a shard is for sharing
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _remove_lock_file(db_file: Path) -> None:
    """Drop the store's lock file next to the shard's database (it is not part of a shard)."""
    for leftover in db_file.parent.glob(db_file.name + ".*"):
        if leftover.name.endswith(".lock") and leftover.is_file():
            leftover.unlink(missing_ok=True)


# -- merge ------------------------------------------------------------------------


def read_manifest(shard: Path) -> ShardManifest:
    """The manifest of the shard directory ``shard``.

    Raises
    ------
    ShardError
        If ``shard`` is not a shard written by :func:`export_shard` (missing
        directory, manifest or store; another format or a newer version).
    """
    shard = Path(shard)
    manifest_path = shard / MANIFEST_NAME
    if not shard.is_dir():
        raise ShardError(
            f"shard {str(shard)!r} is not a directory; pass a directory written by "
            "`consist db export RUN_ID --out SHARD`"
        )
    try:
        data = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise ShardError(
            f"shard {str(shard)!r} has no {MANIFEST_NAME}; pass a directory written by "
            "`consist db export RUN_ID --out SHARD`"
        ) from None
    except (OSError, ValueError) as exc:
        raise ShardError(f"shard {str(shard)!r}: cannot read {MANIFEST_NAME} ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != SHARD_FORMAT:
        raise ShardError(f"shard {str(shard)!r}: {MANIFEST_NAME} is not a Consist shard manifest")
    if int(data.get("version", 0)) > SHARD_VERSION:
        raise ShardError(
            f"shard {str(shard)!r} has format version {data.get('version')}; this Consist reads "
            f"up to {SHARD_VERSION}: upgrade Consist to merge it"
        )
    if int(data.get("schema_version", 0)) > LATEST_VERSION:
        raise ShardError(
            f"shard {str(shard)!r} was written with store schema {data.get('schema_version')}; "
            f"this Consist knows up to {LATEST_VERSION}: upgrade Consist to merge it"
        )
    if not (shard / STORE_NAME).is_file():
        raise ShardError(f"shard {str(shard)!r} has no {STORE_NAME}; the shard is incomplete")
    return ShardManifest(
        path=shard,
        root_run_id=str(data["root_run_id"]),
        run_ids=tuple(data["run_ids"]),
        counts={str(k): int(v) for k, v in data.get("counts", {}).items()},
        journal=tuple(data.get("journal", ())),
        schema_version=int(data["schema_version"]),
        exported_at=str(data.get("exported_at", "")),
        source=str(data.get("source", "")),
    )


def read_shard_rows(shard: Path) -> dict[str, Rows]:
    """Every row of the shard's store, by table (read-only; the shard is never changed)."""
    import duckdb

    con = duckdb.connect(str(Path(shard) / STORE_NAME), read_only=True)
    try:
        out = {}
        for table in TABLES:
            cursor = con.execute(f"SELECT * FROM {table}")
            out[table] = _without_group(
                Rows([d[0] for d in cursor.description], [tuple(r) for r in cursor.fetchall()])
            )
        return out
    finally:
        con.close()


def _norm(value: Any) -> Any:
    """A column value in a form that compares equal across stores."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def find_conflicts(con: Any, rows: dict[str, Rows]) -> tuple[list[ShardConflict], set[str]]:
    """Runs and artifacts of the shard that differ in the target; and the runs already there.

    Returns ``(conflicts, present)``: ``present`` holds the shard's run ids
    the target already has (identical or not).
    """
    conflicts: list[ShardConflict] = []
    shard_runs = {r["id"]: r for r in rows["run"].dicts()}
    existing = _fetch(con, "run", "id", list(shard_runs))
    shard_links = _links_by_run(rows["run_artifact_link"].dicts())
    target_links = _links_by_run(
        dict(zip(("run_id", "artifact_id", "direction", "key", "meta"), r, strict=True))
        for r in (
            con.execute(
                "SELECT run_id, artifact_id, direction, key, meta FROM run_artifact_link "
                "WHERE run_id IN (SELECT unnest($ids))",
                {"ids": list(existing)},
            ).fetchall()
            if existing
            else []
        )
    )
    for run_id, theirs in existing.items():
        ours = shard_runs[run_id]
        differ = [c for c in _RUN_CONTENT if c in ours and _norm(ours[c]) != _norm(theirs.get(c))]
        if not differ and shard_links.get(run_id, set()) != target_links.get(run_id, set()):
            differ = ["links"]
        if differ:
            conflicts.append(ShardConflict("run", run_id, tuple(differ)))
    shard_arts = {str(a["id"]): a for a in rows["artifact"].dicts()}
    for art_id, theirs in _fetch(con, "artifact", "id", list(shard_arts), uuid_key=True).items():
        ours = shard_arts[art_id]
        differ = [c for c in ours if _norm(ours[c]) != _norm(theirs.get(c))]
        if differ:
            conflicts.append(ShardConflict("artifact", art_id, tuple(differ)))
    return conflicts, set(existing)


def _links_by_run(dicts: Iterable[dict[str, Any]]) -> dict[str, set[tuple[Any, ...]]]:
    """Link rows as comparable tuples, by run id."""
    out: dict[str, set[tuple[Any, ...]]] = {}
    for d in dicts:
        out.setdefault(d["run_id"], set()).add(
            (str(d["artifact_id"]), d["direction"], d["key"], json.dumps(_norm(d["meta"])))
        )
    return out


def _fetch(
    con: Any, table: str, key: str, ids: list[str], *, uuid_key: bool = False
) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    cast = "::UUID[]" if uuid_key else ""
    cursor = con.execute(
        f"SELECT * FROM {table} WHERE {key} IN (SELECT unnest($ids{cast}))", {"ids": ids}
    )
    columns = [d[0] for d in cursor.description]
    return {str(r[0]): dict(zip(columns, r, strict=True)) for r in cursor.fetchall()}


def merge_shard(store: MetadataStore, journal: Journal, shard: Path) -> MergeResult:
    """Bring the shard at ``shard`` into ``store`` (and its journal snapshots into ``journal``).

    Raises
    ------
    ShardError
        If ``shard`` is not a readable shard.
    ShardConflictError
        If a run or artifact of the shard exists in ``store`` with other
        content; nothing is written then.
    """
    manifest = read_manifest(shard)
    rows = read_shard_rows(Path(shard))
    store.flush()  # queued snapshots join the write log, applied before the read

    def write(con: Any) -> tuple[dict[str, int], set[str], set[str], int]:
        inserted: dict[str, int] = {}
        conflicts, present = find_conflicts(con, rows)
        if conflicts:
            raise ShardConflictError(_conflict_message(manifest, conflicts), conflicts)
        new_runs = {r["id"] for r in rows["run"].dicts()} - present
        for table in TABLES:
            table_rows = rows[table]
            if table == "run_artifact_link":
                # Links of runs already present are identical (checked above).
                index = table_rows.columns.index("run_id")
                table_rows = Rows(
                    table_rows.columns, [r for r in table_rows.rows if r[index] in new_runs]
                )
            inserted[table] = _insert_rows(con, table, table_rows, skip_existing=True)
        if "src" not in rows["run_artifact_link"].columns:  # written before migration 7
            con.execute(
                f"UPDATE run_artifact_link SET src = {LINK_SRC_SQL}, dst = {LINK_DST_SQL} "
                "WHERE src IS NULL OR dst IS NULL"
            )
        label_unlabelled(con)
        return inserted, present, new_runs, store.connections.epoch

    # PostgreSQL: no other writer adds one of these runs or artifacts between
    # the conflict check and the inserts (ON CONFLICT DO NOTHING would hide it).
    inserted, present, new_runs, epoch = exclusive_transaction(store, TABLES, write)
    signatures = [
        r["signature"]
        for r in rows["run"].dicts()
        if r["id"] in new_runs and r["status"] == "completed" and r["signature"]
    ]
    signatures_for(store.connections).add(epoch, signatures)
    absent_outputs_for(store.connections).clear()  # merged runs may output anywhere
    written = _merge_journal(journal, Path(shard), manifest)
    ordered = [r for r in manifest.run_ids if r in new_runs]
    return MergeResult(
        shard=manifest,
        added_runs=tuple(ordered),
        skipped_runs=tuple(r for r in manifest.run_ids if r in present),
        inserted=inserted,
        journal_written=tuple(written),
    )


def _merge_journal(journal: Journal, shard: Path, manifest: ShardManifest) -> list[str]:
    """Copy the shard's journal snapshots that the target run_dir lacks."""
    written = []
    for run_id in manifest.journal:
        target = journal.path_for(run_id)
        source = shard / JOURNAL_DIRNAME / target.name
        if target.exists() or not source.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, source.read_bytes())
        written.append(run_id)
    return written


def _conflict_message(manifest: ShardManifest, conflicts: Sequence[ShardConflict]) -> str:
    shown = "; ".join(f"{c.kind} {c.id} ({', '.join(c.fields)})" for c in conflicts[:5])
    more = f"; and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
    return (
        f"shard {str(manifest.path)!r} conflicts with this store: {len(conflicts)} "
        f"record(s) exist here with different content: {shown}{more}; nothing was merged "
        "(purge or rename the local runs first, or merge into another store)"
    )
