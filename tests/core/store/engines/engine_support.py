"""Helpers of the store-engine tests (importable by spawned child processes)."""

from __future__ import annotations

from pathlib import Path

from consist import Tracker
from consist.models.records import ConsistRecord


def _make_table(x: int = 0, label: str = "") -> Path:
    import consist

    path = consist.current_tracker().output_path("table", ext="csv")
    path.write_text(f"x,label\n{x},{label}\n")
    return path


def record_runs(
    base: Path,
    count: int,
    *,
    model: str = "maker",
    chain: bool = True,
    shared_input: Path | None = None,
) -> list:
    """``count`` real runs (each reading the previous one's output when ``chain``).

    ``shared_input``: a file every run also reads (rows several writers share).
    Runs ``i`` carry tags ``["all", "even"|"odd"]``, year 2020 + i % 2 and a
    facet ``{"x": i, "scenario": {"name": "s<i%2>"}}``. Returns their journal
    snapshots (:class:`ConsistRecord`), oldest first.
    """
    tracker = Tracker(base / "runs", project_root=base)  # journal only: no database
    records: list[ConsistRecord] = []
    previous = None
    try:
        for i in range(count):
            inputs: dict = {"prev": previous} if chain and previous is not None else {}
            if shared_input is not None:
                inputs["raw"] = shared_input
            result = tracker.run(
                _make_table,
                name=model,
                config={"x": i, "label": f"r{i}"},
                tags=["all", "even" if i % 2 == 0 else "odd"],
                year=2020 + i % 2,
                facet={"x": i, "scenario": {"name": f"s{i % 2}"}},
                inputs=inputs or None,
            )
            record = tracker.journal.read(result.run_id)
            assert record is not None
            records.append(record)
            previous = record.outputs[0]
    finally:
        tracker.close()
    return records
