"""Which run produced an input: lookups on the path of every run with inputs.

Mixed into :class:`~consist.core.store.metadata_store.MetadataStore`. Both
lookups answer from the tables plus this process's writes not applied yet,
without applying them.

Automatic input discovery asks, for each input path, for the newest output a
completed run logged there. Raw inputs (a model's source data) were never any
run's output, but every run that reads one logs it again, so their URI
matches many artifact rows: at 100,000 runs reading 100 shared files, the
lookup read ~1,000 rows per run and cost ~10 ms, growing with the store.
:class:`AbsentOutputs` remembers, per epoch of the connection (see
:mod:`consist.core.store.signature_index` for why an epoch can be trusted:
while this process holds the file no other process writes), the URIs known
to have no such output. Only this process can then add one: a flush forgets
the URIs of the outputs it commits, and a shard merge forgets everything.
Positive answers are never cached (a purge may remove them). An epoch outlives
this process's own hand-overs of the file when nobody wrote it meanwhile (see
``DuckDBConnectionManager.epoch``): before that, each hand-over (every
``max_hold_s``) emptied the set, and the per-run cost of a sweep reading 100
shared files grew from 6 to 23 ms over 100,000 runs.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from consist.core.store.process_shared import PerConnections
from consist.core.store.rows import ARTIFACT_COLUMNS, artifact_from_row
from consist.models.artifact import Artifact

__all__ = ["AbsentOutputs", "OutputLookupMixin", "absent_outputs_for"]

# Column positions in an artifact row / link row / run row of a queued write.
_URI, _TABLE_PATH, _ARRAY_PATH = 2, 6, 7


class AbsentOutputs:
    """URIs where no completed run logged an output, known for one epoch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoch = -1
        self._uris: set[str] = set()
        self._generation = 0  # bumped by every forget: a lookup racing it adds nothing

    def snapshot(self, epoch: int) -> tuple[frozenset[str], int]:
        """The URIs known absent in ``epoch`` and the generation they belong to."""
        with self._lock:
            if self._epoch != epoch:
                self._epoch, self._uris = epoch, set()
            return frozenset(self._uris), self._generation

    def add(self, epoch: int, generation: int, uris: Iterable[str]) -> None:
        """Remember ``uris`` as absent, unless something was forgotten meanwhile."""
        with self._lock:
            if self._epoch == epoch and self._generation == generation:
                self._uris.update(uris)

    def discard_written(self, batch: Sequence[Any]) -> None:
        """Forget the URIs of the outputs in a committed batch of writes."""
        uris = {uri for uri, _ in _output_rows(batch)}
        if uris:
            with self._lock:
                self._generation += 1
                self._uris.difference_update(uris)

    def reset_in_child(self) -> None:
        """Forget everything in a forked child (see :mod:`.process_shared`)."""
        self._lock = threading.Lock()
        self._epoch = -1
        self._uris = set()

    def clear(self) -> None:
        """Forget everything (runs were added by another route, e.g. a shard merge)."""
        with self._lock:
            self._generation += 1
            self._uris = set()


def _output_rows(batch: Sequence[Any]) -> list[tuple[str, list[Any]]]:
    """``(uri, artifact row)`` of every output artifact in ``batch`` (any run status)."""
    out = []
    for write in batch:
        rows = {row[0]: row for row, _ in write.artifacts}
        for link in write.links:
            if link[2] == "output" and link[1] in rows:
                out.append((rows[link[1]][_URI], rows[link[1]]))
    return out


_INDEXES: PerConnections[AbsentOutputs] = PerConnections(AbsentOutputs)


def absent_outputs_for(connections: Any) -> AbsentOutputs:
    """The set shared by every store of this process on ``connections``' file."""
    return _INDEXES.get(connections)


class OutputLookupMixin:
    """Producer lookups for input discovery and identity (see the module docs)."""

    connections: Any
    _pending_lock: Any
    _pending: list[Any]
    _log: Any

    def producer_signatures(self, artifact_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        """For each artifact, the signature of the first completed run that output it.

        Answers from the tables plus this process's writes not applied yet,
        without applying them (this is on the path of every run with inputs).
        """
        if not artifact_ids:
            return {}
        queued = {
            uuid.UUID(art_row[0]): signature
            for art_row, signature in self._queued_outputs()
            if signature is not None
        }
        with self.connections.connection(hot=True) as con:
            rows = con.execute(
                "SELECT l.artifact_id, r.signature FROM run_artifact_link l "
                "JOIN run r ON r.id = l.run_id "
                "WHERE l.direction = 'output' AND r.status = 'completed' "
                "AND r.signature IS NOT NULL AND l.artifact_id IN (SELECT unnest(?::UUID[])) "
                "QUALIFY row_number() OVER (PARTITION BY l.artifact_id ORDER BY r.created_at) = 1",
                [[str(a) for a in artifact_ids]],
            ).fetchall()
        found = {
            (r[0] if isinstance(r[0], uuid.UUID) else uuid.UUID(str(r[0]))): r[1] for r in rows
        }
        for artifact_id in artifact_ids:
            if artifact_id not in found and artifact_id in queued:
                found[artifact_id] = queued[artifact_id]
        return found

    def _queued_outputs(self) -> list[tuple[list[Any], str | None]]:
        """(artifact row, run signature) for outputs of completed runs not in the tables.

        Writes still queued (a failed commit) or logged but not applied yet.
        """
        with self._pending_lock:
            pending = self._log.snapshot() + list(self._pending)
        out = []
        for write in pending:
            if write.run_row[3] != "completed":
                continue
            for _, row in _output_rows([write]):
                out.append((row, write.run_row[13]))
        return out

    def latest_outputs_at(self, uris: Sequence[str]) -> dict[str, Artifact]:
        """For each URI, the newest artifact a completed run logged there as output.

        Used by automatic input discovery, on the path of every run with
        inputs. URIs known to have no such output in this epoch are not
        asked again (:class:`AbsentOutputs`).
        """
        if not uris:
            return {}
        cols = ", ".join("a." + c for c in ARTIFACT_COLUMNS.split(", "))
        sql = (
            f"SELECT {cols} FROM artifact a "
            "JOIN run_artifact_link l ON l.artifact_id = a.id AND l.direction = 'output' "
            "JOIN run r ON r.id = l.run_id AND r.status = 'completed' "
            "WHERE a.uri IN (SELECT unnest(?)) AND a.table_path IS NULL "
            "AND a.array_path IS NULL "
            "QUALIFY row_number() OVER (PARTITION BY a.uri ORDER BY a.created_at DESC) = 1"
        )
        absent = absent_outputs_for(self.connections)
        with self.connections.connection(hot=True) as con:
            epoch = self.connections.epoch
            known, generation = absent.snapshot(epoch)
            ask = sorted(set(uris) - known)
            rows = con.execute(sql, [ask]).fetchall() if ask else []
        found = {r[_URI]: artifact_from_row(r) for r in rows}
        # Read after the tables: a write logged meanwhile is queued (or, once
        # applied, bumped the generation so nothing below is remembered).
        wanted = set(uris)
        queued = [
            (row, artifact_from_row(row))
            for row, _ in self._queued_outputs()
            if row[_URI] in wanted and row[_TABLE_PATH] is None and row[_ARRAY_PATH] is None
        ]
        # A URI with a queued output will be in the tables once it is applied.
        absent.add(epoch, generation, set(ask) - set(found) - {r[_URI] for r, _ in queued})
        for row, art in queued:
            uri = row[_URI]
            if uri in wanted and (uri not in found or art.created_at >= found[uri].created_at):
                found[uri] = art
        return found
