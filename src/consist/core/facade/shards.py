"""Moving runs between stores, and purging them: methods of the Tracker.

Mixed into :class:`~consist.core.tracker.Tracker`; the work is done by
services in :mod:`consist.core.store` (:mod:`~consist.core.store.shards`
for export/merge, :mod:`~consist.core.store.purge` for purges).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from consist.core.store.connection import ReadOnlyStoreError

# The services load on first use (see facade.maintenance).
if TYPE_CHECKING:  # pragma: no cover
    from consist.core.paths import PathResolver
    from consist.core.store.journal import Journal
    from consist.core.store.metadata_store import MetadataStore
    from consist.core.store.purge import PurgePlan
    from consist.core.store.shards import MergeResult, ShardManifest


class TrackerShards:
    """Export, merge and purge methods of the Tracker."""

    store: MetadataStore | None
    journal: Journal
    paths: PathResolver

    def _shard_store(self, what: str, *, write: bool) -> MetadataStore:
        if self.store is None:
            raise ValueError(f"{what} needs a database: open the Tracker with a db_path or db_url")
        if write and self.store.read_only:
            raise ReadOnlyStoreError(
                f"{what} changes the store, and {self.store.db_path} was opened with "
                "read_only=True; open the Tracker with read_only=False"
            )
        return self.store

    def export_runs(self, run_id: str, out: str | os.PathLike[str]) -> ShardManifest:
        """Write a run and everything upstream of it into a new shard directory.

        Upstream: the runs that logged one of the run's inputs as an output
        (its producers and their cache hits), recursively, and the scenario
        header of each. The shard holds their run rows (identity manifests
        included), links, artifacts, facet and key/value rows, schema
        profiles, content identities and journal snapshots; not the data
        files (see :mod:`consist.core.store.shards` for the layout).
        Works on a read-only tracker; the store is not changed. The shard's
        store is a DuckDB file whatever this tracker's store is (a PostgreSQL
        store, ``db_url``, is read in one consistent snapshot).

        Parameters
        ----------
        run_id:
            The run to export.
        out:
            The shard directory to create (must not exist; its parent must).

        Returns
        -------
        ShardManifest
            The shard's manifest (``run_ids``, row ``counts``, ``journal``).

        Raises
        ------
        ValueError
            If the tracker has no database, no run has this id, or ``out``
            exists or has no parent directory (nothing is written).
        """
        store = self._shard_store("export_runs", write=False)
        from consist.core.store.shards import export_shard

        return export_shard(store, self.journal, run_id, Path(out))

    def merge_store(self, shard: str | os.PathLike[str]) -> MergeResult:
        """Bring a shard written by :meth:`export_runs` into this store.

        Runs absent here are inserted with their rows, and their journal
        snapshots are written under this tracker's run_dir when absent;
        runs already here with identical content are left alone, so merging
        the same shard twice changes nothing. Into a PostgreSQL store
        (``db_url``), other processes' writes wait from the conflict check
        to the commit (a few table locks), so none slips in between.

        Parameters
        ----------
        shard:
            The shard directory.

        Returns
        -------
        MergeResult
            ``added_runs``, ``skipped_runs``, rows ``inserted`` per table,
            ``journal_written``; ``changed`` is False for a repeated merge.

        Raises
        ------
        ValueError
            If the tracker has no database or ``shard`` is not a shard
            (:class:`~consist.core.store.shards.ShardError`).
        ShardConflictError
            (a ``ValueError``) If a run or artifact of the shard exists here
            with different content; its ``conflicts`` list them, and nothing
            is written.
        ReadOnlyStoreError
            If the tracker was opened with ``read_only=True``.
        StoreLockTimeout
            PostgreSQL: if another session keeps a store table locked for
            120 s (nothing is written).
        """
        store = self._shard_store("merge_store", write=True)
        from consist.core.store.shards import merge_shard

        return merge_shard(store, self.journal, Path(shard))

    def purge_run(self, run_id: str, *, dry_run: bool = True, cascade: bool = False) -> PurgePlan:
        """Remove a run from the store, with its links, owned artifacts and output files.

        Files are only deleted when a purged run logged them as outputs and
        they lie inside run_dir or a mount (inputs and anything else are
        listed in ``kept_files``); journal snapshots of purged runs go too.
        A run whose outputs other runs consumed (or were handed as cache
        hits), or a scenario header with steps, has dependents: the purge is
        refused unless ``cascade``, which purges them as well. On a
        PostgreSQL store (``db_url``) other processes' writes wait while the
        rows are deleted, so no run starts depending on a purged one meanwhile.

        Parameters
        ----------
        run_id:
            The run to purge.
        dry_run:
            Only report what would be removed (the default).
        cascade:
            Also purge every dependent run, recursively.

        Returns
        -------
        PurgePlan
            The runs, links, artifacts, files and journal snapshots removed
            (or that would be); ``blocked_by`` lists dependents that block a
            purge without ``cascade``; ``executed`` is True unless dry run.

        Raises
        ------
        ValueError
            If the tracker has no database or no run has this id.
        PurgeRefusedError
            (a ``ValueError``) If ``dry_run=False`` and the run has dependents
            without ``cascade``, or its artifacts were ingested as hot data;
            nothing is deleted.
        ReadOnlyStoreError
            If ``dry_run=False`` on a tracker opened with ``read_only=True``.
        StoreLockTimeout
            PostgreSQL: if another session keeps a store table locked for
            120 s (nothing is deleted).
        """
        store = self._shard_store("purge_run", write=not dry_run)
        roots = [str(self.paths.run_dir), *(str(root) for root in self.paths.mounts.values())]
        from consist.core.store.purge import execute_purge, plan_purge

        plan = plan_purge(
            store,
            self.journal,
            run_id,
            cascade=cascade,
            resolve=self.paths.resolve_uri,
            roots=roots,
        )
        if dry_run:
            return plan
        return execute_purge(store, self.journal, plan)
