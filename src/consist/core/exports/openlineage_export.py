"""OpenLineage RunEvents of a :class:`~consist.core.exports.graph.ProvenanceGraph`.

Built with ``openlineage-python``'s models and written by its
``FileTransport`` (append mode: one JSON event per line); optionally sent to
an HTTP endpoint by its ``HttpTransport``.

Per run, oldest run first:

* ``START`` at the run's start, with its input datasets;
* ``COMPLETE`` (completed run) or ``FAIL`` (failed run, with an
  ``errorMessage`` facet) at its end, with its inputs and outputs. A run
  still running has only its ``START``.

The OpenLineage ``runId`` is a UUID derived from the Consist run id (UUIDv5,
so the same run always gets the same one); the ``consist`` run facet keeps
the Consist id, model, status, signature, config hash and cache provenance.
The job is ``(namespace, model name)``; a scenario header's job is named
after the scenario. A scenario step carries the standard ``parent`` facet
pointing at its header. Datasets follow OpenLineage's naming: a file on this
machine is namespace ``file``, name its absolute path; a URI this machine
cannot resolve (``s3://bucket/key``) is namespace ``s3://bucket``, name
``key``. A table or array inside a container file is named
``<file>#<table_path>``. Each dataset carries the ``version`` facet (its
content digest) and a ``consist`` facet (artifact id, key, URI, digest,
size).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from consist.core.exports.graph import SCENARIO_HEADER_TAG, ProvenanceGraph, RunEntry
from consist.core.exports.output import replacing, require
from consist.models.artifact import Artifact

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.paths import PathResolver

# Fixed namespace: a Consist run id always maps to the same OpenLineage runId.
RUN_UUID_NAMESPACE = uuid.UUID("8d3e1f5a-2c4b-5e6f-9a0b-1c2d3e4f5a6b")
PRODUCER = "urn:consist:openlineage-export"
FACET_SCHEMA = "urn:consist:openlineage:facet:{name}:1"
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")


def openlineage_run_id(run_id: str) -> str:
    """The OpenLineage ``runId`` (a UUID) of a Consist run id."""
    return str(uuid.uuid5(RUN_UUID_NAMESPACE, run_id))


def check_namespace(namespace: Any) -> str:
    """Validate the job namespace (a non-empty string)."""
    if not isinstance(namespace, str) or not namespace.strip():
        raise ValueError(f"namespace must be a non-empty string, got {namespace!r}")
    return namespace


def check_url(url: Any) -> str | None:
    """Validate the HTTP endpoint (None, or an http(s) URL with a host)."""
    if url is None:
        return None
    if not isinstance(url, str):
        raise TypeError(f"url must be an http(s) URL string, got {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"url must be an http:// or https:// URL with a host (e.g. "
            f"'http://localhost:5000'), got {url!r}"
        )
    return url


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _facet_classes() -> tuple[type, type]:
    """Attrs classes of the ``consist`` run and dataset facets (built on first use)."""
    import attr

    base = require("openlineage.client.generated.base", "export_openlineage")

    @attr.define
    class ConsistRunFacet(base.RunFacet):
        """Consist's own record of the run."""

        runId: str
        model: str
        status: str
        signature: str | None = None
        configHash: str | None = None
        cacheHit: bool = False
        cacheSource: str | None = None
        parentRunId: str | None = None

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA.format(name="ConsistRunFacet")

    @attr.define
    class ConsistDatasetFacet(base.DatasetFacet):
        """Consist's own record of the artifact."""

        artifactId: str
        key: str
        uri: str
        digest: str | None = None
        sizeBytes: int | None = None

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA.format(name="ConsistDatasetFacet")

    return ConsistRunFacet, ConsistDatasetFacet


def dataset_name(artifact: Artifact, paths: PathResolver | None) -> tuple[str, str]:
    """``(namespace, name)`` of an artifact as an OpenLineage dataset."""
    location = artifact.uri
    if paths is not None:
        try:
            location = paths.resolve_uri(artifact.uri)
        except (TypeError, ValueError):
            location = artifact.uri
    match = _URI.match(location)
    if match is None:
        namespace, name = "file", location
    else:
        scheme, rest = match.group(1), match.group(2)
        authority, _, path = rest.partition("/")
        namespace, name = f"{scheme}://{authority}", path or "/"
    inner = artifact.table_path or artifact.array_path
    if inner:
        name = f"{name}#{inner}"
    return namespace, name


def build_events(
    graph: ProvenanceGraph, *, namespace: str, paths: PathResolver | None = None
) -> list[Any]:
    """The RunEvents of ``graph`` (``openlineage.client.event_v2.RunEvent``), in time order."""
    ev = require("openlineage.client.event_v2", "export_openlineage")
    parent_run = require("openlineage.client.generated.parent_run", "export_openlineage")
    error_message = require("openlineage.client.generated.error_message_run", "export_openlineage")
    version = require("openlineage.client.generated.dataset_version_dataset", "export_openlineage")
    run_facet_cls, dataset_facet_cls = _facet_classes()

    def datasets(items: tuple[tuple[Artifact, str], ...], cls: type) -> list[Any]:
        out = []
        for art, key in items:
            ds_namespace, name = dataset_name(art, paths)
            facets: dict[str, Any] = {
                "consist": dataset_facet_cls(
                    artifactId=str(art.id),
                    key=key,
                    uri=art.uri,
                    digest=art.hash,
                    sizeBytes=art.size_bytes,
                    producer=PRODUCER,
                )
            }
            if art.hash:
                facets["version"] = version.DatasetVersionDatasetFacet(
                    datasetVersion=art.hash, producer=PRODUCER
                )
            out.append(cls(namespace=ds_namespace, name=name, facets=facets))
        return out

    def job_name(entry: RunEntry) -> str:
        run = entry.run
        return run.id if SCENARIO_HEADER_TAG in run.tags else run.model_name

    jobs = {entry.run.id: job_name(entry) for entry in graph.runs}
    events: list[Any] = []
    for entry in graph.runs:
        run = entry.run
        facets: dict[str, Any] = {
            "consist": run_facet_cls(
                runId=run.id,
                model=run.model_name,
                status=run.status,
                signature=run.signature,
                configHash=run.config_hash,
                cacheHit=entry.cache_hit,
                cacheSource=entry.cache_source,
                parentRunId=run.parent_run_id,
                producer=PRODUCER,
            )
        }
        if run.parent_run_id is not None:
            facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=openlineage_run_id(run.parent_run_id)),
                job=parent_run.Job(
                    namespace=namespace, name=jobs.get(run.parent_run_id, run.parent_run_id)
                ),
                producer=PRODUCER,
            )
        job = ev.Job(namespace=namespace, name=jobs[run.id])
        ol_run = ev.Run(runId=openlineage_run_id(run.id), facets=facets)
        inputs = datasets(entry.inputs, ev.InputDataset)
        events.append(
            ev.RunEvent(
                eventType=ev.RunState.START,
                eventTime=_iso(run.created_at),
                run=ol_run,
                job=job,
                producer=PRODUCER,
                inputs=inputs,
                outputs=[],
            )
        )
        if run.status not in ("completed", "failed"):
            continue
        end_facets = dict(facets)
        if run.status == "failed":
            end_facets["errorMessage"] = error_message.ErrorMessageRunFacet(
                message=str(run.meta.get("error") or "run failed"),
                programmingLanguage="python",
                stackTrace=run.meta.get("error_traceback"),
                producer=PRODUCER,
            )
        events.append(
            ev.RunEvent(
                eventType=ev.RunState.COMPLETE if run.status == "completed" else ev.RunState.FAIL,
                eventTime=_iso(run.ended_at or run.created_at),
                run=ev.Run(runId=ol_run.runId, facets=end_facets),
                job=job,
                producer=PRODUCER,
                inputs=inputs,
                outputs=datasets(entry.outputs, ev.OutputDataset),
            )
        )
    return events


def write_openlineage(
    graph: ProvenanceGraph,
    path: Path,
    *,
    namespace: str,
    url: str | None = None,
    paths: PathResolver | None = None,
) -> Path:
    """Write the events of ``graph`` to ``path`` (one per line), then send them to ``url``.

    Raises
    ------
    ConnectionError
        If ``url`` is given and an event could not be delivered (the file is
        written first and stays).
    """
    events = build_events(graph, namespace=namespace, paths=paths)
    file_transport = require("openlineage.client.transport.file", "export_openlineage")
    with replacing(path) as tmp:
        tmp.write_text("")
        transport = file_transport.FileTransport(
            file_transport.FileConfig(log_file_path=str(tmp), append=True)
        )
        for event in events:
            transport.emit(event)
    if url is not None:
        send_events(events, url)
    return path


def send_events(events: list[Any], url: str) -> None:
    """POST each event to ``url`` (``/api/v1/lineage``) with the client's HttpTransport."""
    http = require("openlineage.client.transport.http", "export_openlineage")
    transport = http.HttpTransport(http.HttpConfig(url=url, timeout=10.0))
    for event in events:
        try:
            transport.emit(event)
        except Exception as exc:
            raise ConnectionError(
                f"url={url!r}: sending OpenLineage event {event.eventType.value} of job "
                f"{event.job.name!r} failed: {exc}"
            ) from exc
