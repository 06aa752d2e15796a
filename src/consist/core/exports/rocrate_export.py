"""RO-Crates (Workflow Run Crate profile) of a :class:`~consist.core.exports.graph.ProvenanceGraph`.

Built with ``rocrate`` (ro-crate-py). The crate:

* conforms to the Process Run Crate and Workflow Run Crate profiles (0.5)
  and Workflow RO-Crate (its ``mainEntity`` is the workflow);
* the workflow is ``consist-workflow.json``, a file written into the crate
  that lists the selected runs (id, model, parent, status, the keys of their
  inputs and outputs) — a ``ComputationalWorkflow`` in the ``Consist``
  language;
* one ``CreateAction`` per run (``#run-<id>``): ``instrument`` the run's
  model (a ``SoftwareApplication``), ``object`` its input files, ``result``
  its output files, ``startTime``/``endTime``, ``actionStatus`` and, for a
  failed run, ``error``. A scenario header's action has the workflow as its
  instrument; a selection of runs without a scenario gets one more action,
  ``#workflow-run``, whose object is the inputs no selected run generated
  and whose result is the outputs the selected runs generated;
* one ``File`` (``Dataset`` for a directory) per artifact file: with
  ``include_files`` the file is copied to ``files/<artifact id>/<name>``
  (the name is the file's base name, made safe); without it, or when the
  file is not on this machine, the entity's id is the file's ``file://`` or
  remote URI. Tables or arrays inside one container file share the
  container's entity. Each file records ``contentSize``, ``identifier``
  (``urn:uuid:<artifact id>``) and the ``consist`` terms ``key``, ``digest``
  and ``uri``.

A path ending in ``.zip`` is written as a zip file, anything else as a
directory.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consist.core.exports.graph import SCENARIO_HEADER_TAG, ProvenanceGraph, RunEntry
from consist.core.exports.output import replacing, require, write_directory
from consist.models.artifact import Artifact

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.paths import PathResolver

PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": "Process Run Crate",
    "https://w3id.org/ro/wfrun/workflow/0.5": "Workflow Run Crate",
}
WORKFLOW_FILE = "consist-workflow.json"
CONSIST_TERMS = {
    "consistKey": "urn:consist:ns#key",
    "consistDigest": "urn:consist:ns#digest",
    "consistUri": "urn:consist:ns#uri",
    "consistRunId": "urn:consist:ns#runId",
    "consistConfigHash": "urn:consist:ns#configHash",
    "consistSignature": "urn:consist:ns#signature",
}
_MEDIA_TYPES = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "json": "application/json",
    "h5": "application/x-hdf5",
    "hdf5": "application/x-hdf5",
    "netcdf": "application/x-netcdf",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_STATUS = {
    "completed": "http://schema.org/CompletedActionStatus",
    "failed": "http://schema.org/FailedActionStatus",
    "running": "http://schema.org/ActiveActionStatus",
}


def is_zip(path: Path) -> bool:
    """Whether ``path`` asks for a zipped crate."""
    return path.suffix.lower() == ".zip"


def safe_name(name: str) -> str:
    """A file name that stays one path component (no separators, no leading dots)."""
    cleaned = _UNSAFE.sub("_", name.rsplit("/", 1)[-1]).lstrip(".")
    return cleaned or "file"


def _local_path(artifact: Artifact, paths: PathResolver | None) -> Path | None:
    """Where the artifact's file is (or was) on this machine, or None (remote or unresolvable)."""
    if paths is None:
        return None
    try:
        resolved = paths.resolve_uri(artifact.uri)
    except (TypeError, ValueError):
        return None
    candidate = Path(resolved)
    return candidate if candidate.is_absolute() and resolved.startswith("/") else None


def _workflow_description(graph: ProvenanceGraph) -> dict[str, Any]:
    return {
        "title": graph.title,
        "scenario": graph.scenario,
        "runs": [
            {
                "id": e.run.id,
                "model": e.run.model_name,
                "parent_run_id": e.run.parent_run_id,
                "status": e.run.status,
                "cache_hit": e.cache_hit,
                "inputs": sorted({key for _, key in e.inputs}),
                "outputs": sorted({key for _, key in e.outputs}),
            }
            for e in graph.runs
        ],
    }


class _CrateBuilder:
    """Builds the crate in memory; files are copied when it is written."""

    def __init__(
        self, graph: ProvenanceGraph, paths: PathResolver | None, include_files: bool
    ) -> None:
        rocrate = require("rocrate.rocrate", "export_rocrate")
        self.model = require("rocrate.model", "export_rocrate")
        self.graph = graph
        self.paths = paths
        self.include_files = include_files
        self.crate = rocrate.ROCrate()
        self.crate.metadata.extra_terms = dict(CONSIST_TERMS)
        self.files: dict[str, Any] = {}  # uri -> entity
        self.apps: dict[str, Any] = {}  # model -> entity

    def build(self, workflow_source: Path) -> Any:
        crate, graph = self.crate, self.graph
        crate.name = graph.title
        crate.description = (
            f"Provenance of {len(graph.runs)} run(s) recorded by Consist, as a Workflow Run "
            "Crate: one CreateAction per run with its input (object) and output (result) files."
        )
        for profile_id, name in PROFILES.items():
            profile = crate.add(
                self.model.ContextEntity(
                    crate,
                    profile_id,
                    properties={"@type": "CreativeWork", "name": name, "version": "0.5"},
                )
            )
            crate.root_dataset.append_to("conformsTo", profile)
        language = crate.add(
            self.model.ComputerLanguage(
                crate, "#consist", properties={"name": "Consist", "alternateName": "consist"}
            )
        )
        workflow = crate.add_workflow(
            workflow_source,
            dest_path=WORKFLOW_FILE,
            main=True,
            lang=language,
            properties={"name": graph.title, "encodingFormat": "application/json"},
        )
        header = None
        for entry in graph.runs:
            is_header = graph.scenario is not None and entry.run.id == graph.scenario
            if SCENARIO_HEADER_TAG in entry.run.tags and is_header:
                header = entry
            self._action(entry, workflow if is_header else self._app(entry.run.model_name))
        if header is None:
            self._workflow_action(workflow)
        return crate

    def _app(self, model_name: str) -> Any:
        if model_name not in self.apps:
            self.apps[model_name] = self.crate.add(
                self.model.SoftwareApplication(
                    self.crate, f"#model-{safe_name(model_name)}", properties={"name": model_name}
                )
            )
        return self.apps[model_name]

    def _file(self, artifact: Artifact) -> Any:
        if artifact.uri in self.files:
            return self.files[artifact.uri]
        local = _local_path(artifact, self.paths)
        present = local is not None and local.exists()
        is_dir = present and local.is_dir()  # type: ignore[union-attr]
        properties: dict[str, Any] = {
            "name": artifact.key,
            "identifier": f"urn:uuid:{artifact.id}",
            "consistKey": artifact.key,
            "consistUri": artifact.uri,
        }
        if artifact.hash:
            properties["consistDigest"] = artifact.hash
        if artifact.size_bytes is not None:
            properties["contentSize"] = str(artifact.size_bytes)
        if artifact.driver in _MEDIA_TYPES:
            properties["encodingFormat"] = _MEDIA_TYPES[artifact.driver]
        if present and self.include_files:
            add = self.crate.add_dataset if is_dir else self.crate.add_file
            dest = f"files/{artifact.id}/{safe_name(local.name)}"  # type: ignore[union-attr]
            entity = add(local, dest_path=dest, properties=properties)
        else:
            # A reference, never fetched or copied: this machine's file:// URI, the
            # remote URI, or (unresolvable here) a local identifier.
            if local is not None:
                reference = local.as_uri()
            elif _URI.match(artifact.uri):
                reference = artifact.uri
            else:
                reference = f"#artifact-{artifact.id}"
            properties["@type"] = "Dataset" if is_dir else "File"
            entity = self.crate.add(self.model.ContextEntity(self.crate, reference, properties))
            self.crate.root_dataset.append_to("hasPart", entity)
        self.files[artifact.uri] = entity
        return entity

    def _action(self, entry: RunEntry, instrument: Any) -> Any:
        run = entry.run
        properties: dict[str, Any] = {
            "@type": "CreateAction",
            "name": f"{run.model_name} ({run.id})",
            "identifier": run.id,
            "consistRunId": run.id,
            "startTime": run.created_at.isoformat(),
            "actionStatus": {"@id": _STATUS.get(run.status, _STATUS["running"])},
        }
        if run.ended_at is not None:
            properties["endTime"] = run.ended_at.isoformat()
        if run.description:
            properties["description"] = run.description
        if run.config_hash:
            properties["consistConfigHash"] = run.config_hash
        if run.signature:
            properties["consistSignature"] = run.signature
        if run.status == "failed" and run.meta.get("error"):
            properties["error"] = str(run.meta["error"])
        objects = self._unique_files(entry.inputs)
        results = self._unique_files(entry.outputs)
        return self.crate.add_action(
            instrument,
            identifier=f"#run-{safe_name(run.id)}",
            object=objects or None,
            result=results or None,
            properties=properties,
        )

    def _unique_files(self, items: tuple[tuple[Artifact, str], ...]) -> list[Any]:
        seen: dict[str, Any] = {}
        for art, _ in items:
            entity = self._file(art)
            seen.setdefault(entity.id, entity)
        return list(seen.values())

    def _workflow_action(self, workflow: Any) -> Any:
        graph = self.graph
        starts = [e.run.created_at for e in graph.runs]
        ends = [e.run.ended_at for e in graph.runs]
        statuses = {e.run.status for e in graph.runs}
        status = (
            "failed"
            if "failed" in statuses
            else "running"
            if "running" in statuses
            else "completed"
        )
        properties: dict[str, Any] = {
            "@type": "CreateAction",
            "name": f"Execution of {graph.title}",
            "startTime": min(starts).isoformat(),
            "actionStatus": {"@id": _STATUS[status]},
        }
        if all(end is not None for end in ends):
            properties["endTime"] = max(ends).isoformat()  # type: ignore[type-var]
        objects = [self._file(a) for a in graph.external_inputs()]
        results = [self._file(a) for a in graph.generated()]
        return self.crate.add_action(
            workflow,
            identifier="#workflow-run",
            object=list({e.id: e for e in objects}.values()) or None,
            result=list({e.id: e for e in results}.values()) or None,
            properties=properties,
        )


def write_rocrate(
    graph: ProvenanceGraph,
    path: Path,
    *,
    paths: PathResolver | None = None,
    include_files: bool = True,
) -> Path:
    """Write the crate of ``graph`` to ``path`` (a directory, or a zip when it ends in .zip)."""
    builder = _CrateBuilder(graph, paths, include_files)
    with tempfile.TemporaryDirectory(prefix=".consist-crate-", dir=path.parent) as scratch:
        source = Path(scratch) / WORKFLOW_FILE
        source.write_text(json.dumps(_workflow_description(graph), indent=2, default=str) + "\n")
        crate = builder.build(source)
        if is_zip(path):
            with replacing(path) as tmp:
                crate.write_zip(tmp)
        else:
            write_directory(path, crate.write)
    return path
