"""W3C PROV documents of a :class:`~consist.core.exports.graph.ProvenanceGraph` (``prov``).

The mapping:

* every artifact is a ``prov:Entity`` ``consist_artifact:<uuid>`` labelled
  with its key, with ``prov:location`` (its URI) and ``consist:`` attributes
  (``key``, ``uri``, ``digest``, ``sizeBytes``, ``driver``, ``tablePath``,
  ``arrayPath``);
* every run is a ``prov:Activity`` ``consist_run:<id>`` with its start and
  end time and ``consist:`` attributes (``runId``, ``model``, ``status``,
  ``configHash``, ``inputHash``, ``gitHash``, ``signature``, workflow
  dimensions, ``cacheHit``, ``cacheSource``, ``error``);
* every model is a ``prov:SoftwareAgent`` ``consist_model:<name>``;
  ``wasAssociatedWith`` links each run to its model;
* ``used`` links a run to each input (``prov:role`` = the key the run used);
  ``wasGeneratedBy`` links an output to the run that generated it (executed
  runs only: PROV allows one generation per entity, and a cache hit did not
  make its outputs); a cache hit is ``wasInfluencedBy`` the outputs it was
  served (role = key) and ``wasInformedBy`` its cache source;
* ``wasInformedBy`` links a run to each selected run that generated one of
  its inputs, and ``wasStartedBy`` links a scenario step to its header when
  both are selected.

Formats: ``"json"`` (PROV-JSON), ``"provn"`` (PROV-N) and ``"ttl"`` (RDF
Turtle, through ``rdflib``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

from consist.core.exports.graph import ProvenanceGraph
from consist.core.exports.output import replacing, require
from consist.models.artifact import Artifact
from consist.models.run import Run

PROV_FORMATS = ("json", "provn", "ttl")

CONSIST_NS = "urn:consist:ns#"
RUN_NS = "urn:consist:run:"
ARTIFACT_NS = "urn:consist:artifact:"
MODEL_NS = "urn:consist:model:"


def check_format(format: Any) -> str:
    """Validate ``format`` (one of :data:`PROV_FORMATS`)."""
    if not isinstance(format, str) or format.lower() not in PROV_FORMATS:
        raise ValueError(
            f"format must be one of {', '.join(repr(f) for f in PROV_FORMATS)}, got {format!r}"
        )
    return format.lower()


def run_qname(run_id: str) -> str:
    """The PROV identifier of a run."""
    return "consist_run:" + quote(run_id, safe="")


def artifact_qname(artifact: Artifact) -> str:
    """The PROV identifier of an artifact."""
    return f"consist_artifact:{artifact.id}"


def model_qname(model: str) -> str:
    """The PROV identifier of a model (a software agent)."""
    return "consist_model:" + quote(model, safe="")


def _drop_none(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


def _artifact_attributes(artifact: Artifact) -> dict[str, Any]:
    return _drop_none(
        {
            "prov:label": artifact.key,
            "prov:location": artifact.uri,
            "consist:key": artifact.key,
            "consist:uri": artifact.uri,
            "consist:digest": artifact.hash,
            "consist:sizeBytes": artifact.size_bytes,
            "consist:driver": artifact.driver,
            "consist:tablePath": artifact.table_path,
            "consist:arrayPath": artifact.array_path,
        }
    )


def _run_attributes(run: Run, cache_source: str | None) -> dict[str, Any]:
    error = run.meta.get("error") if run.status == "failed" else None
    return _drop_none(
        {
            "prov:label": run.model_name,
            "consist:runId": run.id,
            "consist:model": run.model_name,
            "consist:description": run.description,
            "consist:status": run.status,
            "consist:configHash": run.config_hash,
            "consist:inputHash": run.input_hash,
            "consist:gitHash": run.git_hash,
            "consist:signature": run.signature,
            "consist:year": run.year,
            "consist:iteration": run.iteration,
            "consist:stage": run.stage,
            "consist:phase": run.phase,
            "consist:tags": ",".join(run.tags) if run.tags else None,
            "consist:parentRun": run.parent_run_id,
            "consist:cacheHit": bool(run.meta.get("cache_hit")),
            "consist:cacheSource": cache_source,
            "consist:error": str(error) if error else None,
        }
    )


def build_document(graph: ProvenanceGraph) -> Any:
    """The ``prov.model.ProvDocument`` of ``graph`` (see the module docstring)."""
    model = require("prov.model", "export_prov")
    doc = model.ProvDocument()
    consist = doc.add_namespace("consist", CONSIST_NS)
    software_agent = require("prov.constants", "export_prov").PROV["SoftwareAgent"]
    doc.add_namespace("consist_run", RUN_NS)
    doc.add_namespace("consist_artifact", ARTIFACT_NS)
    doc.add_namespace("consist_model", MODEL_NS)
    for artifact in graph.artifacts.values():
        doc.entity(
            artifact_qname(artifact),
            {"prov:type": consist["Artifact"], **_artifact_attributes(artifact)},
        )
    models: set[str] = set()
    selected = set(graph.run_ids)
    for entry in graph.runs:
        run = entry.run
        activity = run_qname(run.id)
        doc.activity(
            activity,
            startTime=run.created_at,
            endTime=run.ended_at,
            other_attributes={
                "prov:type": consist["Run"],
                **_run_attributes(run, entry.cache_source),
            },
        )
        if run.model_name not in models:
            models.add(run.model_name)
            doc.agent(
                model_qname(run.model_name),
                {"prov:type": software_agent, "prov:label": run.model_name},
            )
        doc.wasAssociatedWith(activity, model_qname(run.model_name))
        for art, key in entry.inputs:
            doc.used(activity, artifact_qname(art), other_attributes={"prov:role": key})
        for art, key in entry.outputs:
            if graph.generated_by.get(art.id) == run.id:
                doc.wasGeneratedBy(
                    artifact_qname(art),
                    activity,
                    time=run.ended_at,
                    other_attributes={"prov:role": key},
                )
            elif entry.cache_hit:
                doc.wasInfluencedBy(
                    activity, artifact_qname(art), other_attributes={"prov:role": key}
                )
        for upstream in graph.upstream_runs(entry):
            doc.wasInformedBy(activity, run_qname(upstream))
        if entry.cache_source is not None:
            doc.wasInformedBy(
                activity,
                run_qname(entry.cache_source),
                other_attributes={"prov:type": consist["CacheHit"]},
            )
        if run.parent_run_id is not None and run.parent_run_id in selected:
            doc.wasStartedBy(activity, starter=run_qname(run.parent_run_id))
    return doc


def write_prov(graph: ProvenanceGraph, path: Path, format: str) -> Path:
    """Serialize the PROV document of ``graph`` to ``path`` (validated by the caller)."""
    doc = build_document(graph)
    if format == "ttl":
        require("rdflib", "export_prov(format='ttl')")
        args: dict[str, Any] = {"format": "rdf", "rdf_format": "turtle"}
    else:
        args = {"format": format}
    with warnings.catch_warnings():
        # prov's RDF serializer calls an rdflib API that rdflib 7 deprecates.
        warnings.filterwarnings("ignore", message="Dataset.default_context is deprecated")
        text = doc.serialize(**args)
    with replacing(path) as tmp:
        tmp.write_text(text if isinstance(text, str) else text.decode("utf-8"), encoding="utf-8")
    return path
