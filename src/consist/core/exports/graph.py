"""The provenance graph an export describes: chosen runs, their artifacts and relations.

Every export (W3C PROV, RO-Crate, OpenLineage) starts from one
:class:`ProvenanceGraph` collected here from the metadata store:

* the runs, chosen by id (``run_ids``) or as a scenario (the header run, whose
  id is the scenario's name, and every run whose ``parent_run_id`` is it),
  oldest first;
* for each run, the artifacts it logged as inputs and outputs, with the key
  that run used;
* who *generated* each artifact within the selection: the earliest run of the
  selection that logged it as an output and really executed. A cache hit is
  linked to the outputs it was served (it hands them back) but did not make
  them; its ``meta["cache_source"]`` names the run that did.

Selections are validated before anything else happens (see
:func:`resolve_selection`): bad arguments raise ``TypeError`` /
``ValueError`` naming the parameter, unknown runs ``KeyError``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from consist.models.artifact import Artifact
from consist.models.run import Run

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.store.metadata_store import MetadataStore

SCENARIO_HEADER_TAG = "scenario_header"


@dataclass(frozen=True)
class RunEntry:
    """One run of the selection with its artifacts (each as ``(artifact, key)``)."""

    run: Run
    inputs: tuple[tuple[Artifact, str], ...]
    outputs: tuple[tuple[Artifact, str], ...]

    @property
    def cache_hit(self) -> bool:
        """True when the run was served from an earlier run's outputs."""
        return bool(self.run.meta.get("cache_hit"))

    @property
    def cache_source(self) -> str | None:
        """The run a cache hit was served from, else None."""
        source = self.run.meta.get("cache_source")
        return str(source) if self.cache_hit and source else None


@dataclass
class ProvenanceGraph:
    """The runs of an export and what connects them.

    Attributes
    ----------
    runs:
        The selected runs, oldest first.
    scenario:
        The scenario's name when the selection is a scenario, else None.
    artifacts:
        Every artifact any selected run logged, by id.
    generated_by:
        Artifact id -> id of the selected run that generated it (executed
        runs only; see the module docstring).
    """

    runs: list[RunEntry]
    scenario: str | None = None
    artifacts: dict[uuid.UUID, Artifact] = field(default_factory=dict)
    generated_by: dict[uuid.UUID, str] = field(default_factory=dict)

    @property
    def run_ids(self) -> list[str]:
        """The selected run ids, oldest first."""
        return [entry.run.id for entry in self.runs]

    def entry(self, run_id: str) -> RunEntry | None:
        """The selected run with this id, or None."""
        for entry in self.runs:
            if entry.run.id == run_id:
                return entry
        return None

    @property
    def title(self) -> str:
        """A short human title of the selection."""
        if self.scenario is not None:
            return f"Consist scenario {self.scenario}"
        ids = self.run_ids
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        return f"Consist runs {shown}"

    def external_inputs(self) -> list[Artifact]:
        """Artifacts some selected run used that no selected run generated (first use order)."""
        seen: dict[uuid.UUID, Artifact] = {}
        for entry in self.runs:
            for art, _ in entry.inputs:
                if art.id not in self.generated_by and art.id not in seen:
                    seen[art.id] = art
        return list(seen.values())

    def generated(self) -> list[Artifact]:
        """Artifacts generated within the selection (generation order)."""
        return [self.artifacts[a] for a in self.generated_by]

    def upstream_runs(self, entry: RunEntry) -> list[str]:
        """Selected runs that generated an input of ``entry`` (sorted, without itself)."""
        found = {self.generated_by.get(art.id) for art, _ in entry.inputs}
        found.discard(None)
        found.discard(entry.run.id)
        return sorted(found)  # type: ignore[arg-type]


def resolve_selection(run_ids: Any, scenario: Any) -> tuple[list[str] | None, str | None]:
    """Validate ``run_ids`` / ``scenario`` (exactly one) and normalise them.

    Returns
    -------
    tuple
        ``(run ids without duplicates, None)`` or ``(None, scenario)``.

    Raises
    ------
    TypeError
        If ``run_ids`` is not a string or a sequence of strings, or
        ``scenario`` not a string.
    ValueError
        If both or neither are given, or ``run_ids`` is empty or holds an
        empty string, or ``scenario`` is empty.
    """
    if run_ids is None and scenario is None:
        raise ValueError(
            "give run_ids (one run id or a list of them) or scenario= (a scenario name), "
            "not neither"
        )
    if run_ids is not None and scenario is not None:
        raise ValueError(
            "give either run_ids or scenario=, not both: a scenario already selects its "
            "header run and every step"
        )
    if scenario is not None:
        if not isinstance(scenario, str):
            raise TypeError(
                f"scenario must be a scenario name (str), got {type(scenario).__name__}"
            )
        if not scenario:
            raise ValueError("scenario must be a non-empty scenario name")
        return None, scenario
    if isinstance(run_ids, str):
        ids: Sequence[Any] = [run_ids]
    elif isinstance(run_ids, Sequence | set | frozenset):
        ids = list(run_ids)
    else:
        raise TypeError(
            f"run_ids must be a run id (str) or a list of run ids, got {type(run_ids).__name__}"
        )
    if not ids:
        raise ValueError("run_ids is empty: give at least one run id (or scenario=)")
    for value in ids:
        if not isinstance(value, str):
            raise TypeError(f"run_ids must hold run ids (str), got {type(value).__name__}")
        if not value:
            raise ValueError("run_ids holds an empty run id")
    return list(dict.fromkeys(ids)), None


def collect_graph(
    store: MetadataStore, *, run_ids: list[str] | None = None, scenario: str | None = None
) -> ProvenanceGraph:
    """The :class:`ProvenanceGraph` of a validated selection (see :func:`resolve_selection`).

    Raises
    ------
    KeyError
        If a run id is not in the store (``run_ids``), or no run is named
        like the scenario (``scenario``).
    """
    if scenario is not None:
        header = store.get_run(scenario)
        if header is None:
            raise KeyError(
                f"scenario: no scenario {scenario!r} in the store (a scenario's header run "
                "has the scenario's name as its id)"
            )
        runs = [header, *store.find_runs(parent_id=scenario, limit=None)]
    else:
        assert run_ids is not None
        runs = []
        for run_id in run_ids:
            run = store.get_run(run_id)
            if run is None:
                raise KeyError(f"run_ids: no run {run_id!r} in the store")
            runs.append(run)
    runs.sort(key=lambda r: (r.created_at, r.id))
    graph = ProvenanceGraph(runs=[], scenario=scenario)
    for run in runs:
        inputs, outputs = [], []
        for art, direction in store.get_run_artifacts(run.id):
            graph.artifacts.setdefault(art.id, art)
            (outputs if direction == "output" else inputs).append((art, art.key))
        entry = RunEntry(run=run, inputs=tuple(inputs), outputs=tuple(outputs))
        graph.runs.append(entry)
        if entry.cache_hit:
            continue
        for art, _ in outputs:
            graph.generated_by.setdefault(art.id, run.id)
    return graph
