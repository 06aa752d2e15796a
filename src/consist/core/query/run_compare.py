"""Two runs side by side: their config (from snapshots, else facets) and inputs.

``consist diff`` and the web page's diff both show :func:`compare_runs`.
"""

from __future__ import annotations

from typing import Any, Protocol


class DiffsRuns(Protocol):
    """What :func:`compare_runs` needs of a tracker (``Tracker.diff_runs``)."""

    def diff_runs(
        self,
        run_id_a: str,
        run_id_b: str,
        *,
        include_equal: bool = False,
        config_source: str = "facets",
        include_inputs: bool = False,
    ) -> dict[str, Any]: ...


def compare_runs(
    source: DiffsRuns, run_id_a: str, run_id_b: str, *, include_equal: bool = False
) -> dict[str, Any]:
    """The config and input differences of two runs.

    Config comes from each run's snapshot (all keys, flattened to ``a.b.c``);
    when a snapshot is missing, the indexed config facets are compared
    instead and ``note`` says so.

    Parameters
    ----------
    source:
        The tracker (anything with ``diff_runs``).
    run_id_a, run_id_b:
        The baseline run and the run compared with it.
    include_equal:
        Also list config keys and inputs that are equal.

    Returns
    -------
    dict
        ``{"config_source": "snapshot" | "facets", "note": str or None,
        "config": {key: {"a", "b", "status"}}, "inputs": {key: {"a", "b",
        "status"}}}`` (``Tracker.diff_runs``'s ``changes`` and ``inputs``).

    Raises
    ------
    ValueError
        From ``Tracker.diff_runs`` for anything but a missing snapshot (e.g.
        an unknown run).
    """
    note = None
    try:
        found = source.diff_runs(
            run_id_a,
            run_id_b,
            config_source="snapshot",
            include_inputs=True,
            include_equal=include_equal,
        )
        config_source = "snapshot"
    except ValueError as exc:
        if "no config snapshot" not in str(exc):
            raise
        note = f"{exc}; comparing the indexed config facets instead"
        found = source.diff_runs(
            run_id_a, run_id_b, include_inputs=True, include_equal=include_equal
        )
        config_source = "facets"
    return {
        "config_source": config_source,
        "note": note,
        "config": found["changes"],
        "inputs": found["inputs"],
    }
