"""Keying query results: ``index_by`` specs and client-side metadata filters."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from consist.models.run import Run


@dataclass(frozen=True)
class IndexBySpec:
    """How ``find_runs(index_by=...)`` keys its result.

    Attributes
    ----------
    kind:
        ``"field"`` (a Run attribute) or ``"facet"`` (a persisted facet key).
    name:
        The attribute name or the flattened facet key.
    namespace:
        Facet namespace (default: each run's model name).
    """

    kind: str
    name: str
    namespace: str | None = None


def index_by_field(name: str) -> IndexBySpec:
    """Key runs by a Run attribute, e.g. ``index_by_field("year")``."""
    if not isinstance(name, str) or not name:
        raise ValueError("index_by_field needs a Run attribute name")
    if name not in Run.model_fields and not hasattr(Run, name):
        raise ValueError(
            f"index_by_field({name!r}): Run has no such attribute; use one of "
            f"{', '.join(sorted(Run.model_fields))}"
        )
    return IndexBySpec("field", name)


def index_by_facet(key: str, namespace: str | None = None) -> IndexBySpec:
    """Key runs by a persisted facet value (a flattened dotted key)."""
    if not isinstance(key, str) or not key:
        raise ValueError("index_by_facet needs a facet key")
    return IndexBySpec("facet", key, namespace)


def parse_index_by(index_by: str | IndexBySpec) -> IndexBySpec:
    """Normalise ``"year"``, ``"facet.<key>"``, ``"facet:<key>"`` or a spec.

    Raises
    ------
    TypeError
        If ``index_by`` is neither a string nor an :class:`IndexBySpec`.
    """
    if isinstance(index_by, IndexBySpec):
        return index_by
    if not isinstance(index_by, str):
        raise TypeError(
            f"index_by must be a string ('year', 'facet.<key>') or an IndexBySpec, "
            f"got {type(index_by).__name__}"
        )
    for prefix in ("facet.", "facet:"):
        if index_by.startswith(prefix) and len(index_by) > len(prefix):
            return index_by_facet(index_by[len(prefix) :])
    return index_by_field(index_by)


def key_runs(
    runs: Iterable[Run],
    spec: IndexBySpec,
    facet_values: Callable[[list[Run], IndexBySpec], Mapping[str, Any]],
) -> dict[Hashable, Run]:
    """Key ``runs`` (given newest first) by ``spec``; for a shared key the newest wins.

    Runs are visited oldest to newest so that, as documented ("the last one
    wins"), the newest run with a given key is the one kept.
    """
    ordered = list(runs)[::-1]
    if spec.kind == "facet":
        values = facet_values(ordered, spec)
        keyed = {_hashable(values[r.id]): r for r in ordered if r.id in values}
    else:
        keyed = {_hashable(getattr(r, spec.name)): r for r in ordered}
    return dict(reversed(list(keyed.items())))


def _hashable(value: Any) -> Hashable:
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    return value


def matches_metadata(run: Run, metadata: Mapping[str, Any] | None) -> bool:
    """Exact match of every ``metadata`` item against ``run.meta``."""
    if not metadata:
        return True
    meta = run.meta or {}
    return all(k in meta and meta[k] == v for k, v in metadata.items())
