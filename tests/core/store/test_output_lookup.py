"""Input discovery remembers raw inputs per epoch and still finds later producers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from consist import Tracker
from consist.core.store.output_lookup import absent_outputs_for


def _read(src: Path) -> None:
    src.read_text()


def _rewrite(target: str, text: str) -> Path:
    path = Path(target)
    path.write_text(text)
    return path


def _producer(tracker: Tracker, run_id: str) -> str | None:
    return tracker.get_run_inputs(run_id)["src"].run_id


def test_a_raw_input_is_asked_once_per_epoch(tmp_path: Path) -> None:
    raw = tmp_path / "raw.csv"
    raw.write_text("a\n1\n")
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=tmp_path / "p.duckdb")
    for i in range(3):
        tracker.run(_read, name="reader", config={"i": i}, inputs={"src": raw})
    epoch = tracker.store.connections.epoch
    known, _ = absent_outputs_for(tracker.store.connections).snapshot(epoch)
    assert tracker.paths.virtualize(raw) in known or str(raw) in known
    tracker.close()


def test_an_output_written_later_at_a_remembered_path_is_found(tmp_path: Path) -> None:
    raw = tmp_path / "shared.csv"
    raw.write_text("a\n1\n")
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=tmp_path / "p.duckdb")
    first = tracker.run(_read, name="reader", config={"i": 0}, inputs={"src": raw})
    assert _producer(tracker, first.run_id) == first.run_id  # raw: logged by its reader
    # Now a run of this process writes that very path as its output...
    made = tracker.run(
        _rewrite, name="writer", config={"target": str(raw), "text": "a\n2\n"}, outputs=["out"]
    )
    tracker.find_runs()  # a read applies this process's queued writes to the tables
    # ...and the next reader links the producer, not a stale "no producer".
    second = tracker.run(_read, name="reader", config={"i": 1}, inputs={"src": raw})
    assert tracker.get_run_inputs(second.run_id)["src"].id == made.outputs["out"].id
    tracker.close()


def test_a_second_tracker_in_the_process_sees_the_first_ones_outputs(tmp_path: Path) -> None:
    raw = tmp_path / "shared.csv"
    raw.write_text("a\n1\n")
    one = Tracker(run_dir=tmp_path / "runs", db_path=tmp_path / "p.duckdb")
    two = Tracker(run_dir=tmp_path / "runs", db_path=tmp_path / "p.duckdb")
    one.run(_read, name="reader", config={"i": 0}, inputs={"src": raw})
    made = two.run(
        _rewrite, name="writer", config={"target": str(raw), "text": "b\n"}, outputs=["out"]
    )
    two.find_runs()  # applies the queued writes
    later = one.run(_read, name="reader", config={"i": 1}, inputs={"src": raw})
    assert one.get_run_inputs(later.run_id)["src"].id == made.outputs["out"].id
    one.close()
    two.close()


def test_an_output_written_by_another_process_is_found_after_the_handover(
    tmp_path: Path,
) -> None:
    raw = tmp_path / "shared.csv"
    raw.write_text("a\n1\n")
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=tmp_path / "p.duckdb")
    tracker.run(_read, name="reader", config={"i": 0}, inputs={"src": raw})
    tracker.close()  # gives the file back; the other process writes meanwhile
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from consist import Tracker
        from test_output_lookup import _rewrite
        t = Tracker(run_dir={str(tmp_path / "runs")!r}, db_path={str(tmp_path / "p.duckdb")!r})
        r = t.run(_rewrite, name="writer", config={{"target": {str(raw)!r}, "text": "c\\n"}},
                  outputs=["out"])
        print(r.outputs["out"].id)
        t.close()
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    made_id = out.stdout.strip().splitlines()[-1]
    later = tracker.run(_read, name="reader", config={"i": 1}, inputs={"src": raw})
    assert str(tracker.get_run_inputs(later.run_id)["src"].id) == made_id
    tracker.close()
