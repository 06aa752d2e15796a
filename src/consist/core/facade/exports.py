"""Standard provenance exports of the Tracker (W3C PROV, RO-Crate, OpenLineage).

Mixed into :class:`~consist.core.tracker.Tracker`; the documents are built by
:mod:`consist.core.exports` from the metadata store and the path resolver.
Every argument is checked before the store is read or anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The exporters load on first use: a Tracker that never exports does not import them.
if TYPE_CHECKING:  # pragma: no cover
    from consist.core.exports.graph import ProvenanceGraph
    from consist.core.paths import PathResolver
    from consist.core.store.metadata_store import MetadataStore

RunIds = str | Sequence[str]


class TrackerExports:
    """Standard provenance exports of the Tracker."""

    store: MetadataStore | None
    paths: PathResolver

    def export_prov(
        self,
        run_ids: RunIds | None = None,
        path: str | os.PathLike[str] | None = None,
        format: str = "json",
        *,
        scenario: str | None = None,
    ) -> Path:
        """Write the W3C PROV document of some runs or of a scenario.

        Artifacts become ``prov:Entity`` records (``consist_artifact:<uuid>``,
        with key, URI, digest and size), runs ``prov:Activity`` records
        (``consist_run:<id>``, with start/end time, status, config hash,
        signature), models ``prov:SoftwareAgent`` records. Relations:
        ``used`` (role: the key the run used), ``wasGeneratedBy`` (the run
        that executed and wrote the output; a cache hit is
        ``wasInfluencedBy`` the outputs it was served and ``wasInformedBy``
        its source), ``wasAssociatedWith`` (run to model), ``wasInformedBy``
        (run to the selected runs that generated its inputs) and
        ``wasStartedBy`` (scenario step to its header). See
        :mod:`consist.core.exports.prov_export`.

        Parameters
        ----------
        run_ids : str or list of str, optional
            The runs to export (one id or several). Exactly one of
            ``run_ids`` and ``scenario`` is given.
        path : str or os.PathLike
            The file to write (replaced if it exists; its directory must
            exist).
        format : {"json", "provn", "ttl"}, default "json"
            PROV-JSON, PROV-N, or PROV-O as RDF Turtle.
        scenario : str, optional
            A scenario name: its header run and every step.

        Returns
        -------
        Path
            The file written (absolute).

        Raises
        ------
        TypeError
            If ``run_ids``, ``scenario`` or ``path`` has the wrong type.
        ValueError
            If both or neither of ``run_ids`` and ``scenario`` are given,
            ``format`` is unknown, ``path`` is missing, is a directory or its
            directory does not exist, or the tracker has no database.
        KeyError
            If a run id or the scenario is not in the store.
        ImportError
            If the ``exports`` extra (``prov``; ``rdflib`` for Turtle) is not
            installed.

        Nothing is written when an error is raised.
        """
        from consist.core.exports.output import check_file_destination
        from consist.core.exports.prov_export import check_format, write_prov

        fmt = check_format(format)
        target = check_file_destination(self._export_path(path))
        graph = self._export_graph(run_ids, scenario)
        return write_prov(graph, target, fmt)

    def export_rocrate(
        self,
        run_ids: RunIds | None = None,
        path: str | os.PathLike[str] | None = None,
        *,
        scenario: str | None = None,
        include_files: bool = True,
    ) -> Path:
        """Write an RO-Crate (Workflow Run Crate profile) of some runs or of a scenario.

        One ``CreateAction`` per run, whose ``object`` is its input files and
        ``result`` its output files, with the run's model as ``instrument``
        (a scenario header's is the workflow). The crate's main entity is
        ``consist-workflow.json``, a description of the runs written into the
        crate. See :mod:`consist.core.exports.rocrate_export`.

        Parameters
        ----------
        run_ids : str or list of str, optional
            The runs to export (one id or several). Exactly one of
            ``run_ids`` and ``scenario`` is given.
        path : str or os.PathLike
            The crate to write: a directory (new or empty), or a zip file
            when the path ends in ``.zip`` (replaced if it exists). The
            parent directory must exist.
        scenario : str, optional
            A scenario name: its header run and every step.
        include_files : bool, default True
            Copy each artifact file found on this machine into the crate
            (under ``files/<artifact id>/``). When False, or for a file that
            is not here, the crate refers to the file by URI.

        Returns
        -------
        Path
            The directory or zip file written (absolute).

        Raises
        ------
        TypeError
            If ``run_ids``, ``scenario``, ``path`` or ``include_files`` has the
            wrong type.
        ValueError
            If both or neither of ``run_ids`` and ``scenario`` are given,
            ``path`` is missing, an existing file (directory crate), a
            non-empty directory, a directory (zip crate) or has no parent
            directory, or the tracker has no database.
        KeyError
            If a run id or the scenario is not in the store.
        ImportError
            If the ``exports`` extra (``rocrate``) is not installed.

        Nothing is written when an error is raised.
        """
        if not isinstance(include_files, bool):
            raise TypeError(
                f"include_files must be True or False, got {type(include_files).__name__}"
            )
        from consist.core.exports.output import (
            check_directory_destination,
            check_file_destination,
        )
        from consist.core.exports.rocrate_export import is_zip, write_rocrate

        target = self._export_path(path)
        if is_zip(target):
            check_file_destination(target)
        else:
            check_directory_destination(target)
        graph = self._export_graph(run_ids, scenario)
        return write_rocrate(graph, target, paths=self.paths, include_files=include_files)

    def export_openlineage(
        self,
        run_ids: RunIds | None = None,
        path: str | os.PathLike[str] | None = None,
        *,
        scenario: str | None = None,
        url: str | None = None,
        namespace: str = "consist",
    ) -> Path:
        """Write OpenLineage RunEvents of some runs or of a scenario (and optionally send them).

        Per run: ``START`` with its input datasets, then ``COMPLETE`` (or
        ``FAIL``, with an ``errorMessage`` facet) with its inputs and
        outputs; a run still running has only ``START``. Events are written
        one JSON object per line by the client's ``FileTransport``. The
        OpenLineage ``runId`` is a UUID derived from the Consist run id; the
        job is ``(namespace, model name)``; datasets are named after the
        files' absolute paths (namespace ``file``). See
        :mod:`consist.core.exports.openlineage_export`.

        Parameters
        ----------
        run_ids : str or list of str, optional
            The runs to export (one id or several). Exactly one of
            ``run_ids`` and ``scenario`` is given.
        path : str or os.PathLike
            The file to write (replaced if it exists; its directory must
            exist).
        scenario : str, optional
            A scenario name: its header run and every step.
        url : str, optional
            An OpenLineage HTTP endpoint (e.g. Marquez at
            ``http://localhost:5000``): after the file is written each event
            is POSTed to ``<url>/api/v1/lineage`` by the client's
            ``HttpTransport``.
        namespace : str, default "consist"
            The OpenLineage job namespace.

        Returns
        -------
        Path
            The file written (absolute).

        Raises
        ------
        TypeError
            If ``run_ids``, ``scenario``, ``path`` or ``url`` has the wrong
            type.
        ValueError
            If both or neither of ``run_ids`` and ``scenario`` are given,
            ``url`` is not an http(s) URL, ``namespace`` is empty, ``path``
            is missing, is a directory or its directory does not exist, or
            the tracker has no database.
        KeyError
            If a run id or the scenario is not in the store.
        ConnectionError
            If ``url`` is given and an event could not be delivered (the
            file has been written).
        ImportError
            If the ``exports`` extra (``openlineage-python``) is not installed.

        Nothing is written when an error other than ``ConnectionError`` is
        raised.
        """
        from consist.core.exports.openlineage_export import (
            check_namespace,
            check_url,
            write_openlineage,
        )
        from consist.core.exports.output import check_file_destination

        checked_url = check_url(url)
        checked_namespace = check_namespace(namespace)
        target = check_file_destination(self._export_path(path))
        graph = self._export_graph(run_ids, scenario)
        return write_openlineage(
            graph, target, namespace=checked_namespace, url=checked_url, paths=self.paths
        )

    # -- helpers ---------------------------------------------------------------------

    def _export_path(self, path: Any) -> Path:
        if path is None:
            raise ValueError("path is required: the file or directory to write the export to")
        return self.paths.user_write_path(path, param="path")

    def _export_graph(self, run_ids: Any, scenario: Any) -> ProvenanceGraph:
        from consist.core.exports.graph import collect_graph, resolve_selection

        ids, name = resolve_selection(run_ids, scenario)
        if self.store is None:
            raise ValueError("exports need a database: construct the Tracker with db_path=...")
        return collect_graph(self.store, run_ids=ids, scenario=name)
