"""RunSet: a fluent, in-memory collection of runs for analysis.

Build one from a query (``tracker.run_set(model="asim", year=2030)`` or
``RunSet.from_query(tracker, ...)``), then narrow, group and pair it::

    base = tracker.run_set("baseline", tags=["baseline"])
    policy = tracker.run_set("policy", tags=["policy"])
    pairs = base.latest(by="year").align(policy.latest(by="year"), on="year")
    diffs = base.config_diffs(policy, on="year")
    frame = base.to_frame(facets=["demand.scale"])

Fields are Run attributes (``year``, ``iteration``, ``stage``, ``model_name``,
...) or facet keys (flattened dotted keys of the run's indexed facet, looked
up in one query per call), written bare (``"scale"``, ``"demand.scale"``) or
with a prefix (``"facet.scale"`` / ``"facet:scale"``). A bare name that is a
Run attribute means the attribute: the facet key of the same name needs the
prefix (``split_by("year")`` groups by ``Run.year``, ``split_by("facet.year")``
by the facet's ``year``). A bare name that is neither a Run attribute nor a
facet key of any run in the set raises ``ValueError`` (a typo never silently
selects nothing). pandas is imported only by :meth:`RunSet.to_frame`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from consist.models.run import Run

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_FACET_PREFIXES = ("facet.", "facet:")
_FRAME_COLUMNS = (
    "id",
    "model_name",
    "status",
    "year",
    "iteration",
    "stage",
    "phase",
    "tags",
    "created_at",
)
_EARLIEST = datetime.min.replace(tzinfo=UTC)
# Names a bare field resolves to on the Run itself: its fields and public properties.
_RUN_ATTRIBUTES = frozenset(Run.model_fields) | frozenset(
    name
    for name in dir(Run)
    if not name.startswith("_")
    and not name.startswith("model_")
    and isinstance(getattr(Run, name, None), property)
)


class RunSource(Protocol):
    """What a RunSet needs from a tracker (a :class:`~consist.core.tracker.Tracker`)."""

    def find_runs(self, **filters: Any) -> Any: ...

    def get_config_values_for_runs(
        self,
        run_ids: Iterable[str],
        *,
        namespace: str | None = None,
        prefix: str | None = None,
        keys: Iterable[str] | None = None,
    ) -> dict[str, dict[str, Any]]: ...

    def diff_runs(self, run_id_a: str, run_id_b: str, **options: Any) -> dict[str, Any]: ...


def _facet_key(field: str) -> str | None:
    """The facet key of ``field``: after a ``facet.`` prefix, or a bare non-attribute name."""
    for prefix in _FACET_PREFIXES:
        if field.startswith(prefix) and len(field) > len(prefix):
            return field[len(prefix) :]
    if field in _RUN_ATTRIBUTES:
        return None
    return field


def _is_bare_facet(field: str) -> bool:
    return field not in _RUN_ATTRIBUTES and not any(
        field.startswith(p) and len(field) > len(p) for p in _FACET_PREFIXES
    )


def _hashable(value: Any) -> Hashable:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _equal(value: Any, want: Any) -> bool:
    """Equality that keeps booleans apart from numbers (``True != 1`` here)."""
    return isinstance(value, bool) == isinstance(want, bool) and value == want


def _as_fields(on: str | Sequence[str], param: str) -> list[str]:
    fields = [on] if isinstance(on, str) else list(on)
    if not fields:
        raise ValueError(f"{param} needs at least one field name")
    for name in fields:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{param} must name fields as strings, got {name!r}")
    return fields


def _recency(run: Run) -> tuple[Any, ...]:
    """Latest-first ordering key: highest iteration (when set), then newest, then id."""
    has_iteration = run.iteration is not None
    return (
        has_iteration,
        run.iteration if has_iteration else 0,
        run.created_at or _EARLIEST,
        run.id,
    )


class RunSet:
    """An ordered, immutable collection of runs with grouping and pairing helpers.

    Parameters
    ----------
    runs : Iterable[Run]
        The runs, in the order to keep (queries give newest first). A run id
        appearing twice is kept once.
    label : str, optional
        A name for the set (shown in ``repr`` and carried by derived sets).
    tracker : Tracker, optional
        Needed for facet fields, :meth:`to_frame` facet columns and
        :meth:`config_diffs`.
    """

    __slots__ = ("_runs", "_source", "label")

    def __init__(
        self,
        runs: Iterable[Run],
        *,
        label: str | None = None,
        tracker: RunSource | None = None,
    ) -> None:
        seen: dict[str, Run] = {}
        for run in runs:
            if not isinstance(run, Run):
                raise TypeError(f"RunSet holds Run objects, got {type(run).__name__}")
            seen.setdefault(run.id, run)
        self._runs: tuple[Run, ...] = tuple(seen.values())
        self.label = label
        self._source = tracker

    @classmethod
    def from_query(cls, tracker: RunSource, label: str | None = None, **filters: Any) -> RunSet:
        """Runs matching ``tracker.find_runs(**filters)``, newest first.

        ``limit`` defaults to None (every matching run), unlike ``find_runs``.

        Raises
        ------
        ValueError
            If ``index_by`` is given (a RunSet is a collection, not a mapping;
            use :meth:`split_by`).
        """
        if "index_by" in filters:
            raise ValueError("RunSet.from_query does not take index_by; use .split_by(field)")
        filters.setdefault("limit", None)
        runs = tracker.find_runs(**filters)
        return cls(runs, label=label, tracker=tracker)

    # -- collection protocol ----------------------------------------------------

    @property
    def runs(self) -> list[Run]:
        """The runs, in order (a new list each time)."""
        return list(self._runs)

    @property
    def run_ids(self) -> list[str]:
        """The run ids, in order."""
        return [r.id for r in self._runs]

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[Run]:
        return iter(self._runs)

    def __getitem__(self, index: int) -> Run:
        return self._runs[index]

    def __bool__(self) -> bool:
        return bool(self._runs)

    def __repr__(self) -> str:
        label = f"{self.label!r}, " if self.label is not None else ""
        return f"RunSet({label}{len(self._runs)} runs)"

    def _derive(self, runs: Iterable[Run], label: str | None = None) -> RunSet:
        return RunSet(runs, label=self.label if label is None else label, tracker=self._source)

    # -- field values -----------------------------------------------------------

    def _require_source(self, what: str) -> RunSource:
        if self._source is None:
            raise ValueError(
                f"{what} needs a tracker: build the set with tracker.run_set(...) or "
                "RunSet(runs, tracker=tracker)"
            )
        return self._source

    def _facet_values(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not keys or not self._runs:
            return {}
        source = self._require_source("facet fields")
        return source.get_config_values_for_runs(self.run_ids, keys=list(keys))

    def values(self, field: str) -> list[Any]:
        """The value of ``field`` for each run, in order (None when a facet key is missing)."""
        (name,) = _as_fields(field, "values")
        return [row[0] for row in self._key_rows([name], "values")]

    def _key_rows(self, fields: Sequence[str], param: str) -> list[tuple[Any, ...]]:
        facet_keys = [k for k in (_facet_key(f) for f in fields) if k is not None]
        bare = [f for f in fields if _is_bare_facet(f)]
        if bare and self._runs and self._source is None:
            raise ValueError(
                f"{param}: {bare[0]!r} is not a Run attribute, so it is read as a facet key, "
                "which needs a tracker: build the set with tracker.run_set(...)"
            )
        facets = self._facet_values(facet_keys)
        for name in bare:
            if self._runs and not any(name in values for values in facets.values()):
                raise ValueError(
                    f"{param}: {name!r} is neither a Run attribute nor a facet key of any run "
                    f"in this set; use a Run attribute ({', '.join(sorted(Run.model_fields))}) "
                    "or a key of the runs' facets (write 'facet.<key>' to allow a key no run has)"
                )
        rows = []
        for run in self._runs:
            row = []
            for name in fields:
                key = _facet_key(name)
                if key is not None:
                    row.append(facets.get(run.id, {}).get(key))
                else:
                    row.append(getattr(run, name))
            rows.append(tuple(row))
        return rows

    # -- narrowing and grouping -------------------------------------------------

    def filter(self, predicate: Callable[[Run], bool] | None = None, **field_equals: Any) -> RunSet:
        """Runs matching a predicate and/or exact field values.

        Parameters
        ----------
        predicate : callable, optional
            ``predicate(run) -> bool``.
        **field_equals :
            ``field=value`` exact matches on Run attributes or facet keys:
            ``filter(year=2030, scenario="policy")``; dotted or prefixed
            keys go through a dict: ``filter(**{"demand.scale": 1.5})``,
            ``filter(**{"facet.year": 2030})`` (a bare name that is a Run
            attribute means the attribute). A value may also be a callable,
            applied to the field value. ``True`` does not match ``1`` (nor
            ``False`` ``0``).

        Returns
        -------
        RunSet
            The matching runs, order kept, same label.

        Raises
        ------
        ValueError
            If a bare field is neither a Run attribute nor a facet key of
            any run in the set.
        """
        fields = _as_fields(list(field_equals), "filter") if field_equals else []
        rows = self._key_rows(fields, "filter") if fields else [()] * len(self._runs)
        wanted = [field_equals[name] for name in fields]
        kept = []
        for run, row in zip(self._runs, rows, strict=True):
            if predicate is not None and not predicate(run):
                continue
            if all(
                (want(value) if callable(want) else _equal(value, want))
                for want, value in zip(wanted, row, strict=True)
            ):
                kept.append(run)
        return self._derive(kept)

    def split_by(self, field: str) -> dict[Any, RunSet]:
        """Group runs by a field or facet value.

        Parameters
        ----------
        field : str
            A Run attribute (``"year"``), a facet key (``"scale"``,
            ``"demand.scale"``) or ``"facet.<key>"`` / ``"facet:<key>"``
            (needed when the key is also a Run attribute's name).

        Returns
        -------
        dict
            ``{value: RunSet}`` in order of first appearance; runs without
            the facet key (or with the attribute None) are grouped under
            ``None``. List values are keyed as tuples. Each subset's label is
            ``"<label>/<field>=<value>"`` (``"<field>=<value>"`` unlabelled).

        Raises
        ------
        ValueError
            If a bare ``field`` is neither a Run attribute nor a facet key of
            any run in the set.
        """
        (name,) = _as_fields(field, "split_by")
        groups: dict[Hashable, list[Run]] = {}
        for run, (value,) in zip(self._runs, self._key_rows([name], "split_by"), strict=True):
            groups.setdefault(_hashable(value), []).append(run)
        prefix = f"{self.label}/" if self.label is not None else ""
        return {
            value: self._derive(runs, label=f"{prefix}{name}={value}")
            for value, runs in groups.items()
        }

    def latest(self, by: str | Sequence[str] | None = None) -> RunSet:
        """The latest run overall, or per group of ``by`` values.

        "Latest" is the highest ``iteration`` (runs with an iteration rank
        above runs without one), then the newest ``created_at``, then the
        greater id, matching ``find_latest_run``.

        Parameters
        ----------
        by : str or list of str, optional
            Fields (Run attributes or ``"facet.<key>"``) defining the groups.
            None: the single latest run.

        Returns
        -------
        RunSet
            One run per group, in order of each group's first appearance.
        """
        if not self._runs:
            return self._derive([])
        if by is None:
            return self._derive([max(self._runs, key=_recency)])
        fields = _as_fields(by, "latest")
        best: dict[Hashable, Run] = {}
        for run, row in zip(self._runs, self._key_rows(fields, "latest"), strict=True):
            group = _hashable(row)
            current = best.get(group)
            if current is None or _recency(run) > _recency(current):
                best[group] = run
        return self._derive(best.values())

    # -- pairing ------------------------------------------------------------------

    def _keyed(self, fields: list[str], side: str) -> dict[Hashable, Run]:
        keyed: dict[Hashable, Run] = {}
        for run, row in zip(self._runs, self._key_rows(fields, "align"), strict=True):
            key = _hashable(row[0] if len(fields) == 1 else row)
            if key in keyed:
                raise ValueError(
                    f"align: the {side} set has several runs with {fields} = {key!r} "
                    f"({keyed[key].id!r}, {run.id!r}); narrow it first, e.g. .latest(by={fields!r})"
                )
            keyed[key] = run
        return keyed

    def align(
        self, other: RunSet, on: str | Sequence[str], *, how: str = "inner"
    ) -> list[tuple[Run | None, Run | None]]:
        """Pair runs of this set with runs of ``other`` that share the ``on`` values.

        Parameters
        ----------
        other : RunSet
            The comparison set.
        on : str or list of str
            Fields (Run attributes or ``"facet.<key>"``) that must be equal.
        how : {"inner", "left", "outer"}, default "inner"
            Unmatched runs: ``"inner"`` drops them; ``"left"`` keeps this
            set's unmatched runs as ``(run, None)``; ``"outer"`` also appends
            ``other``'s unmatched runs as ``(None, run)``.

        Returns
        -------
        list[tuple[Run | None, Run | None]]
            ``(run_a, run_b)`` pairs in this set's order (then ``other``'s
            for the outer extras).

        Raises
        ------
        ValueError
            If ``how`` is unknown, or a set has several runs with the same
            ``on`` values (take ``.latest(by=on)`` first).
        """
        return [(a, b) for _, a, b in self._align(other, on, how)]

    def _align(
        self, other: RunSet, on: str | Sequence[str], how: str
    ) -> list[tuple[Hashable, Run | None, Run | None]]:
        if not isinstance(other, RunSet):
            raise TypeError(f"align expects a RunSet, got {type(other).__name__}")
        if how not in ("inner", "left", "outer"):
            raise ValueError(f"how must be 'inner', 'left' or 'outer', got {how!r}")
        fields = _as_fields(on, "align")
        mine = self._keyed(fields, "first")
        theirs = other._keyed(fields, "other")
        pairs: list[tuple[Hashable, Run | None, Run | None]] = []
        for key, run in mine.items():
            match = theirs.get(key)
            if match is not None or how != "inner":
                pairs.append((key, run, match))
        if how == "outer":
            pairs.extend((key, None, run) for key, run in theirs.items() if key not in mine)
        return pairs

    def config_diffs(
        self,
        other: RunSet,
        on: str | Sequence[str],
        *,
        namespace: str | None = None,
        prefix: str | None = None,
        keys: Iterable[str] | None = None,
        include_equal: bool = False,
    ) -> list[dict[str, Any]]:
        """``diff_runs`` for every pair of :meth:`align` (inner join).

        Parameters
        ----------
        other : RunSet
            The comparison set (its runs are the ``b`` side).
        on : str or list of str
            Alignment fields, as for :meth:`align`.
        namespace, prefix, keys, include_equal :
            Forwarded to ``tracker.diff_runs``.

        Returns
        -------
        list[dict]
            One ``diff_runs`` result per aligned pair (``run_id_a``,
            ``run_id_b``, ``namespace``, ``changes``) plus ``"on"``: the
            shared ``{field: value}``.

        Raises
        ------
        ValueError
            As for :meth:`align`, or if the set has no tracker.
        """
        source = self._require_source("config_diffs")
        fields = _as_fields(on, "config_diffs")
        key_list = None if keys is None else list(keys)
        out = []
        for key, a, b in self._align(other, fields, "inner"):
            assert a is not None and b is not None
            diff = source.diff_runs(
                a.id,
                b.id,
                namespace=namespace,
                prefix=prefix,
                keys=key_list,
                include_equal=include_equal,
            )
            values = (key,) if len(fields) == 1 else key
            diff["on"] = dict(zip(fields, values, strict=True))  # type: ignore[arg-type]
            out.append(diff)
        return out

    # -- export ---------------------------------------------------------------------

    def to_frame(
        self, facets: bool | Sequence[str] | None = None, *, namespace: str | None = None
    ) -> pd.DataFrame:
        """One row per run as a pandas DataFrame.

        Parameters
        ----------
        facets : bool or list of str, optional
            Add facet columns named ``"facet.<key>"``: True for every indexed
            key of the runs, or a list of flattened keys. None/False: none.
        namespace : str, optional
            Facet namespace filter (default: each run's own facet).

        Returns
        -------
        pandas.DataFrame
            Columns ``id, model_name, status, year, iteration, stage, phase,
            tags, created_at`` (``year``/``iteration`` as nullable ``Int64``),
            then the facet columns sorted by key (None where a run lacks the
            key).
        """
        import pandas as pd

        data: dict[str, Any] = {
            column: [getattr(r, column) for r in self._runs] for column in _FRAME_COLUMNS
        }
        data["tags"] = [list(r.tags) for r in self._runs]
        data["year"] = pd.array(data["year"], dtype="Int64")
        data["iteration"] = pd.array(data["iteration"], dtype="Int64")
        if facets and self._runs:
            source = self._require_source("to_frame(facets=...)")
            keys = None if facets is True else list(facets)  # type: ignore[arg-type]
            values = source.get_config_values_for_runs(self.run_ids, namespace=namespace, keys=keys)
            names = keys if keys is not None else sorted({k for v in values.values() for k in v})
            for key in names:
                data[f"facet.{key}"] = [values.get(r.id, {}).get(key) for r in self._runs]
        return pd.DataFrame(data, columns=list(data))
