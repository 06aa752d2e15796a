"""Facet, config-value and RunSet queries of the Tracker

Mixed into :class:`~consist.core.tracker.Tracker`. Every method delegates to
the facet store (:mod:`consist.core.store.facet_store`); without a database
they return empty results (or None / the default), as documented.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from consist.core.query.facets import diff_values, unique_keys
from consist.core.query.lineage import diff_inputs
from consist.core.store.facet_rows import VALUE_TYPES, ConfigFacet, ConfigKV
from consist.core.store.flatten import flatten
from consist.models.html import RunDiff

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.query.runset import RunSet
    from consist.core.store.metadata_store import MetadataStore
    from consist.models.run import Run


def _check_str(value: Any, param: str, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise TypeError(f"{param} must be a non-empty string, got {value!r}")


def _check_prefix(prefix: Any) -> None:
    if prefix is not None and not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string such as 'inputs.', got {prefix!r}")


def _check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be a non-negative int, got {limit!r}")
    return limit


class TrackerFacets:
    """Facet, config-value and RunSet queries of the Tracker."""

    store: MetadataStore | None

    # -- facet payloads -----------------------------------------------------------

    def get_config_facet(self, facet_id: str) -> ConfigFacet | None:
        """Retrieve a single persisted config facet by ID.

        Parameters
        ----------
        facet_id : str
            The facet identifier (``blake3:<hex>``, as in ``ConfigFacet.id``
            or ``ConfigKV.facet_id``).

        Returns
        -------
        ConfigFacet | None
            The facet record (``id``, ``namespace``, ``schema_name``,
            ``schema_version``, ``facet``, ``created_at``) if present,
            otherwise None (also when no database is configured).

        Raises
        ------
        TypeError
            If ``facet_id`` is not a non-empty string.
        """
        _check_str(facet_id, "facet_id", optional=False)
        if self.store is None:
            return None
        return self.store.facets.get_facet(facet_id)

    def get_config_facets(
        self,
        *,
        namespace: str | None = None,
        schema_name: str | None = None,
        limit: int = 100,
    ) -> list[ConfigFacet]:
        """List persisted config facets, optionally filtered.

        Identical facet payloads are stored once, so this lists distinct
        payloads (namespaced by model name: the run's for run facets, the
        producing run's for artifact facets), newest first.

        Parameters
        ----------
        namespace : str, optional
            Filter facets by namespace.
        schema_name : str, optional
            Filter facets by schema name.
        limit : int, default 100
            Maximum number of facet records to return.

        Returns
        -------
        list[ConfigFacet]
            Facet records (empty if DB is not configured).

        Raises
        ------
        TypeError
            If ``namespace`` or ``schema_name`` is not a string.
        ValueError
            If ``limit`` is negative.
        """
        _check_str(namespace, "namespace")
        _check_str(schema_name, "schema_name")
        limit = _check_limit(limit)
        if self.store is None:
            return []
        return self.store.facets.list_facets(
            namespace=namespace, schema_name=schema_name, limit=limit
        )

    # -- a run's flattened values ------------------------------------------------------

    def get_run_config_kv(
        self,
        run_id: str,
        *,
        namespace: str | None = None,
        prefix: str | None = None,
        limit: int = 10_000,
    ) -> list[ConfigKV]:
        """Retrieve flattened key/value config entries for a run.

        This is primarily used for querying and debugging indexed config
        facets. Runs started with ``facet_index=False`` have no entries.

        Parameters
        ----------
        run_id : str
            Run identifier.
        namespace : str, optional
            Filter by namespace (a run's facet namespace is its model name).
        prefix : str, optional
            Filter keys by prefix (e.g. ``"inputs."``).
        limit : int, default 10_000
            Maximum number of entries to return.

        Returns
        -------
        list[ConfigKV]
            Rows sorted by key, each with ``key``, ``value_type``
            (``"str"``/``"num"``/``"bool"``/``"null"``/``"json"``), the typed
            value columns and ``.value`` (empty if DB is not configured).

        Raises
        ------
        TypeError
            If ``run_id``, ``namespace`` or ``prefix`` is not a string.
        ValueError
            If ``limit`` is negative.
        """
        _check_str(run_id, "run_id", optional=False)
        _check_str(namespace, "namespace")
        _check_prefix(prefix)
        limit = _check_limit(limit)
        if self.store is None:
            return []
        return self.store.facets.run_kv(run_id, namespace=namespace, prefix=prefix, limit=limit)

    def get_config_values(
        self,
        run_id: str,
        *,
        namespace: str | None = None,
        prefix: str | None = None,
        keys: Iterable[str] | None = None,
        limit: int = 10_000,
    ) -> dict[str, Any]:
        """Return a flattened config facet as a dict of key/value pairs.

        Parameters
        ----------
        run_id : str
            Run identifier.
        namespace : str, optional
            Namespace for the facet. Defaults to the run's model name (the
            namespace its facet was recorded under).
        prefix : str, optional
            Filter keys by prefix (e.g. ``"inputs."``).
        keys : Iterable[str], optional
            Only include specific keys when provided.
        limit : int, default 10_000
            Maximum number of entries to return (the first ones by key).

        Returns
        -------
        dict
            Mapping of flattened keys (sorted) to typed values: ``str``,
            ``int``/``float`` (as recorded: ``1`` stays ``1``, ``1.0`` stays
            ``1.0``), ``bool``, ``None``, or a list / empty dict for JSON
            values. Empty when the run has no indexed facet or no DB is
            configured.

        Raises
        ------
        TypeError
            If ``keys`` is a bare string or contains non-strings.
        ValueError
            If ``limit`` is negative.

        Notes
        -----
        Keys are stored as flattened dotted paths. If an original key
        contains a literal dot, it is escaped as ``"\\."`` in the stored key.
        """
        _check_str(run_id, "run_id", optional=False)
        _check_str(namespace, "namespace")
        _check_prefix(prefix)
        key_list = unique_keys(keys)
        limit = _check_limit(limit)
        if self.store is None:
            return {}
        rows = self.store.facets.run_kv(
            run_id, namespace=namespace, prefix=prefix, keys=key_list, limit=limit
        )
        return {row.key: row.value for row in rows}

    def get_config_value(
        self,
        run_id: str,
        key: str,
        *,
        namespace: str | None = None,
        default: Any = None,
    ) -> Any:
        """Retrieve a single config value from a flattened config facet.

        Parameters
        ----------
        run_id : str
            Run identifier.
        key : str
            Flattened key to fetch (``"a.b"``; a literal dot is ``"a\\.b"``).
        namespace : str, optional
            Namespace for the facet. Defaults to the run's model name.
        default : Any, optional
            Value to return when the key is missing.

        Returns
        -------
        Any
            The typed value for the key (``None`` when recorded as null), or
            ``default`` if missing (or no DB is configured).

        Raises
        ------
        TypeError
            If ``run_id`` or ``key`` is not a non-empty string.
        """
        _check_str(run_id, "run_id", optional=False)
        _check_str(key, "key", optional=False)
        _check_str(namespace, "namespace")
        if self.store is None:
            return default
        found, value = self.store.facets.get_value(run_id, key, namespace=namespace)
        return value if found else default

    def get_config_values_for_runs(
        self,
        run_ids: Iterable[str],
        *,
        namespace: str | None = None,
        prefix: str | None = None,
        keys: Iterable[str] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Flattened config values of many runs in one query.

        Parameters
        ----------
        run_ids : Iterable[str]
            Run identifiers.
        namespace, prefix, keys :
            As for :meth:`get_config_values`.

        Returns
        -------
        dict
            ``{run_id: {key: value}}`` for the runs that have matching
            indexed entries (others are absent; empty without a DB).

        Raises
        ------
        TypeError
            If ``run_ids`` or ``keys`` is a bare string.
        """
        if isinstance(run_ids, str):
            raise TypeError(f"run_ids must be a list of run ids: use [{run_ids!r}]")
        ids = [str(r) for r in run_ids]
        _check_str(namespace, "namespace")
        _check_prefix(prefix)
        key_list = unique_keys(keys)
        if self.store is None:
            return {}
        return self.store.facets.config_values(
            ids, namespace=namespace, prefix=prefix, keys=key_list
        )

    # -- search and compare ----------------------------------------------------------

    def find_runs_by_facet_kv(
        self,
        *,
        namespace: str,
        key: str,
        value_type: str | None = None,
        value_str: str | None = None,
        value_num: float | None = None,
        value_bool: bool | None = None,
        limit: int = 100,
    ) -> list[Run]:
        """Find runs by a flattened config facet key/value.

        With no value given, every run whose facet has ``key`` matches.
        Values are matched in their own column, so ``value_num=1`` matches
        ``1`` and ``1.0`` but never ``True``, and ``value_bool=True`` never
        matches ``1``. ``value_type="null"`` finds keys recorded as None.

        Parameters
        ----------
        namespace : str
            Facet namespace (the model name of the runs).
        key : str
            Flattened facet key.
        value_type : str, optional
            Restrict to one value type: ``"str"``, ``"num"``, ``"bool"``,
            ``"null"`` or ``"json"``.
        value_str : str, optional
            String value to match.
        value_num : float, optional
            Numeric value to match.
        value_bool : bool, optional
            Boolean value to match.
        limit : int, default 100
            Maximum number of runs to return.

        Returns
        -------
        list[Run]
            Matching runs, newest first (empty if DB is not configured).

        Raises
        ------
        TypeError
            If ``namespace`` or ``key`` is not a non-empty string, or a value
            has the wrong type.
        ValueError
            If ``value_type`` is unknown or contradicts the value given, more
            than one value is given, or ``limit`` is negative.
        """
        _check_str(namespace, "namespace", optional=False)
        _check_str(key, "key", optional=False)
        given = {
            name: value
            for name, value in (
                ("str", value_str),
                ("num", value_num),
                ("bool", value_bool),
            )
            if value is not None
        }
        if len(given) > 1:
            raise ValueError(
                "give at most one of value_str, value_num, value_bool "
                f"(got {', '.join('value_' + n for n in given)})"
            )
        if value_type is not None and value_type not in VALUE_TYPES:
            raise ValueError(f"value_type must be one of {VALUE_TYPES}, got {value_type!r}")
        if given and value_type is not None and value_type not in given:
            raise ValueError(
                f"value_type={value_type!r} contradicts value_{next(iter(given))}=...; "
                "drop one of them"
            )
        if value_str is not None and not isinstance(value_str, str):
            raise TypeError(f"value_str must be a string, got {value_str!r}")
        if value_num is not None and (
            isinstance(value_num, bool) or not isinstance(value_num, int | float)
        ):
            raise TypeError(f"value_num must be a number, got {value_num!r}")
        if value_bool is not None and not isinstance(value_bool, bool):
            raise TypeError(f"value_bool must be True or False, got {value_bool!r}")
        limit = _check_limit(limit)
        if self.store is None:
            return []
        return self.store.facets.find_runs_by_kv(
            namespace=namespace,
            key=key,
            value_type=value_type,
            value_str=value_str,
            value_num=value_num,
            value_bool=value_bool,
            limit=limit,
        )

    def diff_runs(
        self,
        run_id_a: str,
        run_id_b: str,
        *,
        namespace: str | None = None,
        prefix: str | None = None,
        keys: Iterable[str] | None = None,
        limit: int = 10_000,
        include_equal: bool = False,
        config_source: str = "facets",
        include_inputs: bool = False,
    ) -> dict[str, Any]:
        """Compare flattened config facets between two runs.

        Parameters
        ----------
        run_id_a : str
            Baseline run identifier.
        run_id_b : str
            Comparison run identifier.
        namespace : str, optional
            Namespace for facets. Defaults to each run's model name.
        prefix : str, optional
            Filter keys by prefix (e.g. ``"inputs."``).
        keys : Iterable[str], optional
            Only include specific keys when provided.
        limit : int, default 10_000
            Maximum number of entries to inspect per run (the first by key).
        include_equal : bool, default False
            If True, include keys whose values are unchanged.
        config_source : {"facets", "snapshot"}, default "facets"
            ``"facets"`` compares the indexed config facets (only the values
            each run was given as ``facet``). ``"snapshot"`` compares each
            run's full config from its JSON snapshot under ``run_dir``
            (flattened to dotted keys); ``namespace`` is then ignored and
            reported as each run's model name. ``prefix``, ``keys`` and
            ``limit`` apply to either.
        include_inputs : bool, default False
            Also compare the runs' inputs (by the key each run used): adds
            ``"inputs"`` to the result.

        Returns
        -------
        dict
            A :class:`~consist.models.html.RunDiff` (a ``dict`` that also
            renders as a table in a notebook):
            ``{"run_id_a": ..., "run_id_b": ...,
            "namespace": {"a": namespace_a, "b": namespace_b},
            "changes": {key: {"a": value_a, "b": value_b, "status": status}}}``
            with ``changes`` sorted by key; ``status`` is ``"changed"``,
            ``"added"`` (only in b; ``"a"`` is None), ``"removed"`` (only in
            a; ``"b"`` is None) or, with ``include_equal``, ``"equal"``.
            Values compare with their type (``1``, ``1.0`` and ``True``
            differ). Without a DB the namespaces are None and ``changes`` is
            empty. With ``include_inputs``, ``"inputs"``: ``{key: {"a":
            input_or_None, "b": input_or_None, "status": status}}`` sorted by
            key, an input being ``{"id", "uri", "hash"}`` and two
            inputs equal when they are the same artifact or have the same
            digest (statuses as for ``changes``).

        Raises
        ------
        TypeError
            If a run id is not a string or ``keys`` is a bare string.
        ValueError
            If either run is not recorded in the store, ``limit`` is
            negative, ``config_source`` is not ``"facets"`` or
            ``"snapshot"``, or (``"snapshot"``) a run has no snapshot under
            ``run_dir``.
        """
        _check_str(run_id_a, "run_id_a", optional=False)
        _check_str(run_id_b, "run_id_b", optional=False)
        _check_str(namespace, "namespace")
        _check_prefix(prefix)
        key_list = unique_keys(keys)
        limit = _check_limit(limit)
        result: dict[str, Any] = {
            "run_id_a": run_id_a,
            "run_id_b": run_id_b,
            "namespace": {"a": namespace, "b": namespace},
            "changes": {},
        }
        if config_source not in ("facets", "snapshot"):
            raise ValueError(f"config_source must be 'facets' or 'snapshot', got {config_source!r}")
        if include_inputs:
            result["inputs"] = {}
        if self.store is None:
            return RunDiff(result)
        if config_source == "facets":
            found = self.store.facets.runs_with_values(
                [run_id_a, run_id_b],
                namespace=namespace,
                prefix=prefix,
                keys=key_list,
                limit_per_run=limit,
            )
        else:
            found = {}
            for run_id in (run_id_a, run_id_b):
                run = self.store.get_run(run_id)
                if run is None:
                    continue
                config = self.get_run_config(run_id, allow_missing=True)  # type: ignore[attr-defined]
                if config is None:
                    raise ValueError(
                        f"diff_runs: run {run_id!r} has no config snapshot under run_dir "
                        f"(consist_runs/{run_id}.json); use the run directory it was "
                        "recorded in, or config_source='facets'"
                    )
                flat = flatten(config)
                wanted = sorted(
                    k
                    for k in flat
                    if (prefix is None or k.startswith(prefix))
                    and (key_list is None or k in key_list)
                )[:limit]
                found[run_id] = (run.model_name, {k: flat[k] for k in wanted})
        for side, run_id in (("a", run_id_a), ("b", run_id_b)):
            if run_id not in found:
                raise ValueError(f"diff_runs: no run {run_id!r} (run_id_{side}) in the store")
            if namespace is None or config_source == "snapshot":
                result["namespace"][side] = found[run_id][0]
        result["changes"] = diff_values(
            found[run_id_a][1], found[run_id_b][1], include_equal=include_equal
        )
        if include_inputs:
            result["inputs"] = diff_inputs(
                self.get_artifacts_for_run(run_id_a).inputs,  # type: ignore[attr-defined]
                self.get_artifacts_for_run(run_id_b).inputs,  # type: ignore[attr-defined]
                include_equal=include_equal,
            )
        return RunDiff(result)

    # -- RunSet ---------------------------------------------------------------------

    def run_set(self, label: str | None = None, **filters: Any) -> RunSet:
        """Build a RunSet from find_runs filters.

        Parameters
        ----------
        label : str, optional
            Optional label attached to the returned RunSet.
        **filters : Any
            Filters forwarded to ``find_runs`` (``index_by`` is not allowed).
            Unlike ``find_runs``, ``limit`` defaults to None: every matching
            run.

        Returns
        -------
        RunSet
            A tracker-backed RunSet for fluent grouping/alignment analysis.

        Raises
        ------
        ValueError
            If ``index_by`` is given.

        Notes
        -----
        This is equivalent to ``RunSet.from_query(self, label=label, **filters)``.
        """
        from consist.core.query.runset import RunSet

        return RunSet.from_query(self, label=label, **filters)
