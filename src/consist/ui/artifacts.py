"""What the artifact pages show: one artifact, its lineage graph, the first rows of a table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from consist.core.hot.preview import first_rows
from consist.ui.graph import lineage_graph
from consist.ui.params import ApiError, check_known, integer
from consist.ui.runs import get_run_or_404
from consist.ui.summaries import artifact_summary

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.tracker import Tracker
    from consist.models.artifact import Artifact

Query = Mapping[str, list[str]]

MAX_PREVIEW_ROWS = 1000


def get_artifact_or_404(tracker: Tracker, key_or_id: str) -> Artifact:
    """The artifact by UUID, else the newest with that key (as ``Tracker.get_artifact``)."""
    artifact = tracker.get_artifact(key_or_id)
    if artifact is None:
        raise ApiError(404, f"no artifact {key_or_id!r} in this store", "artifact_id")
    return artifact


def artifact_detail(tracker: Tracker, key_or_id: str, query: Query) -> dict[str, Any]:
    """``/api/artifacts/{id}``: the artifact, its file's reachability and its run."""
    check_known(query, ())
    artifact = get_artifact_or_404(tracker, key_or_id)
    return {"artifact": artifact_summary(artifact)}


def _depth(query: Query) -> int | None:
    return integer(query, "depth", low=0)


def artifact_lineage(tracker: Tracker, key_or_id: str, query: Query) -> dict[str, Any]:
    """``/api/artifacts/{id}/lineage?depth=``: the upstream graph, laid out for drawing.

    ``depth`` as ``max_depth`` of ``Tracker.get_artifact_lineage`` (absent:
    everything). See :func:`consist.ui.graph.lineage_graph` for the shape.
    """
    check_known(query, ("depth",))
    depth = _depth(query)
    artifact = get_artifact_or_404(tracker, key_or_id)
    tree = tracker.get_artifact_lineage(artifact.id, max_depth=depth)
    if tree is None:  # deleted between the two reads
        raise ApiError(404, f"no artifact {key_or_id!r} in this store", "artifact_id")
    return {"artifact": artifact_summary(artifact), "depth": depth, **lineage_graph(tree)}


def run_lineage(tracker: Tracker, run_id: str, query: Query) -> dict[str, Any]:
    """``/api/runs/{id}/lineage?depth=``: the run's inputs and their upstream, laid out."""
    check_known(query, ("depth",))
    depth = _depth(query)
    get_run_or_404(tracker, run_id)
    tree = tracker.get_run_lineage(run_id, max_depth=depth)
    if tree is None:
        raise ApiError(404, f"no run {run_id!r} in this store", "run_id")
    return {"run_id": run_id, "depth": depth, **lineage_graph(tree)}


def preview(tracker: Tracker, key_or_id: str, query: Query) -> dict[str, Any]:
    """``/api/artifacts/{id}/preview?rows=``: the first rows of a table artifact.

    Read with ``Tracker.load`` (as ``consist preview`` does): from the file,
    or from the store when the file is gone but its rows were ingested.
    410 when the data is gone, 422 when the artifact is not a table.
    """
    check_known(query, ("rows",))
    rows = integer(query, "rows", default=20, low=1, high=MAX_PREVIEW_ROWS)
    assert rows is not None
    artifact = get_artifact_or_404(tracker, key_or_id)
    summary = artifact_summary(artifact)
    try:
        loaded = tracker.load(artifact)
        columns, types, values = first_rows(loaded, rows)
    except FileNotFoundError:
        raise ApiError(
            410,
            f"artifact {artifact.key!r}: its file is gone ({summary['path'] or artifact.uri}) "
            "and its rows were not ingested",
        ) from None
    except (ValueError, TypeError) as exc:
        raise ApiError(
            422,
            f"artifact {artifact.key!r} ({artifact.driver}) cannot be previewed as a table: {exc}",
        ) from None
    return {
        "artifact": summary,
        "source": "file" if summary["reachable"] else "store",
        "columns": columns,
        "types": types,
        "rows": values,
    }
