"""Tests for artifact logging and artifact queries on the Tracker facade.

Everything runs against real files under ``tmp_path`` and a real DuckDB file:
no component of consist is mocked. Where a call is observed (journal writes,
store syncs) the real function is wrapped and still runs.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import consist.core.store.journal as journal_mod
from consist import Artifact, Tracker
from consist.core.identity.hashing import hash_directory, hash_file
from consist.core.store.metadata_store import MetadataStore
from consist.models.artifact import content_id_for

HEX = set("0123456789abcdef")
FAKE_HASH = "blake3:" + "ab" * 32  # syntactically valid, matches no file used here


# --------------------------------------------------------------------------- #
# Helpers and fixtures
# --------------------------------------------------------------------------- #
def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def _edit_in_place(path: Path, data: bytes, offset: int = 0) -> None:
    """Overwrite bytes at ``offset`` without changing the file size or inode."""
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)
    assert path.stat().st_size == size


def _make_tracker(tmp_path: Path, **kwargs: Any) -> Tracker:
    inputs = tmp_path / "inputs"
    inputs.mkdir(exist_ok=True)
    return Tracker(
        run_dir=tmp_path / "runs",
        db_path=tmp_path / "store.duckdb",
        mounts={"inputs": inputs},
        **kwargs,
    )


@pytest.fixture
def tracker(tmp_path: Path):
    trk = _make_tracker(tmp_path)
    yield trk
    trk.close()


@pytest.fixture
def inputs_dir(tmp_path: Path, tracker: Tracker) -> Path:
    return tmp_path / "inputs"


def _state(tracker: Tracker, run_id: str | None = None) -> dict[str, Any]:
    """Everything a failed call must leave untouched: DB counts and journal files."""
    journal = tracker.journal
    files = {}
    for path in (journal.latest_path, journal.path_for(run_id) if run_id else None):
        if path is not None and path.exists():
            files[str(path)] = (path.read_bytes(), path.stat().st_mtime_ns)
    pending = (
        sorted(p.name for p in journal.pending_dir.iterdir())
        if journal.pending_dir.exists()
        else []
    )
    return {"counts": tracker.store.table_counts(), "files": files, "pending": pending}


def _journal(tracker: Tracker, run_id: str) -> dict[str, Any]:
    return json.loads(tracker.journal.path_for(run_id).read_bytes())


def _produce(tracker: Tracker, run_id: str, name: str, data: bytes | str, key: str) -> Artifact:
    """Run ``run_id`` writing one output file ``name`` into its artifact dir."""
    with tracker.start_run(run_id, "producer_model", config={"run": run_id}):
        path = _write(tracker.run_artifact_dir() / name, data)
        art = tracker.log_output(path, key=key)
    return art


# --------------------------------------------------------------------------- #
# log_artifact / log_input / log_output: returned fields
# --------------------------------------------------------------------------- #
def test_log_artifact_returns_fully_populated_artifact(tracker: Tracker, inputs_dir: Path):
    data = b"hh_id,size\n1,3\n2,1\n"
    src = _write(inputs_dir / "land" / "households.csv", data)
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        art = tracker.log_artifact(src, key="households", direction="input", role="base", year=2030)

    assert isinstance(art, Artifact)
    assert isinstance(art.id, uuid.UUID)
    assert art.key == "households"
    assert art.uri == "inputs://land/households.csv"
    assert art.driver == "csv"
    assert art.hash is not None and art.hash.startswith("blake3:")
    assert len(art.hash) == len("blake3:") + 64 and set(art.hash[7:]) <= HEX
    assert art.hash == hash_file(src)
    assert art.content_id == content_id_for(art.hash)
    assert isinstance(art.content_id, uuid.UUID)
    assert art.size_bytes == len(data)
    assert art.run_id == "r1"
    assert art.meta == {"role": "base", "year": 2030}
    assert art.table_path is None and art.array_path is None
    assert art.path == src
    assert art.path.read_bytes() == data
    assert os.fspath(art) == str(src)


def test_log_output_under_run_dir_and_log_input_directions(tracker: Tracker, inputs_dir: Path):
    src = _write(inputs_dir / "zones.parquet", b"PAR1-zones")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        inp = tracker.log_input(src, key="zones", source="survey")
        out_path = _write(tracker.run_artifact_dir() / "trips.parquet", b"PAR1-trips")
        out = tracker.log_output(out_path, key="trips", stage_hint="final")

    assert inp.uri == "inputs://zones.parquet"
    assert inp.meta == {"source": "survey"}
    assert out.uri.startswith("./outputs/")
    assert out.uri.endswith("/trips.parquet")
    assert out.driver == "parquet"
    assert out.meta == {"stage_hint": "final"}
    assert out.path == out_path
    assert out.size_bytes == len(b"PAR1-trips")
    assert out.run_id == "r1"

    assert set(tracker.get_run_inputs("r1")) == {"zones"}
    assert set(tracker.get_run_outputs("r1")) == {"trips"}
    assert tracker.get_run_inputs("r1")["zones"].id == inp.id
    assert tracker.get_run_outputs("r1")["trips"].id == out.id


def test_log_artifact_persists_immediately_inside_the_run(tracker: Tracker, inputs_dir: Path):
    src = _write(inputs_dir / "a.csv", "x\n1\n")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        art = tracker.log_input(src, key="a")
        # Before end_run: both the journal and the DB already know the artifact.
        snap = _journal(tracker, "r1")
        assert [a["id"] for a in snap["inputs"]] == [str(art.id)]
        assert tracker.store.table_counts()["artifact"] == 1
        assert tracker.get_run_inputs("r1")["a"].id == art.id


@pytest.mark.parametrize("method", ["log_artifact", "log_input", "log_output"])
def test_logging_outside_a_run_raises_runtime_error(
    tracker: Tracker, inputs_dir: Path, method: str
):
    src = _write(inputs_dir / "a.csv", "x\n1\n")
    with pytest.raises(RuntimeError):
        getattr(tracker, method)(src, key="a")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        pass
    before = _state(tracker, "r1")
    with pytest.raises(RuntimeError):
        getattr(tracker, method)(src, key="a")
    assert _state(tracker, "r1") == before


def test_log_artifacts_outside_a_run_raises_runtime_error(tracker: Tracker, inputs_dir: Path):
    src = _write(inputs_dir / "a.csv", "x\n1\n")
    with pytest.raises(RuntimeError):
        tracker.log_artifacts({"a": src})
    assert tracker.store.table_counts()["artifact"] == 0


@pytest.mark.parametrize("method", ["log_artifact", "log_input", "log_output"])
@pytest.mark.parametrize("as_path", [True, False])
def test_path_without_key_raises_value_error(
    tracker: Tracker, inputs_dir: Path, method: str, as_path: bool
):
    src = _write(inputs_dir / "a.csv", "x\n1\n")
    ref = src if as_path else str(src)
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        before = _state(tracker, "r1")
        with pytest.raises(ValueError, match="key"):
            getattr(tracker, method)(ref)
        assert _state(tracker, "r1") == before
    assert tracker.get_artifacts_for_run("r1").model_dump() == {"inputs": {}, "outputs": {}}


def test_missing_input_file_raises_and_writes_nothing(tmp_path: Path, tracker: Tracker):
    missing = tmp_path / "inputs" / "nope.csv"
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        before = _state(tracker, "r1")
        with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
            tracker.log_input(missing, key="nope")
        assert _state(tracker, "r1") == before
    snap = _journal(tracker, "r1")
    assert snap["inputs"] == [] and snap["outputs"] == []
    assert tracker.store.table_counts()["artifact"] == 0


@pytest.mark.parametrize("method", ["log_artifact", "log_output"])
def test_output_that_never_appears_writes_nothing_and_warns(
    tmp_path: Path, tracker: Tracker, method: str
):
    # An output may be logged before its file exists (see test_field_fidelity);
    # one that never appears is left out of the record under output_missing="warn".
    missing = tmp_path / "inputs" / "nope.csv"
    with (
        pytest.warns(UserWarning, match=r"nope"),
        tracker.start_run("r1", "model_a", config={"run": "r1"}),
    ):
        before = _state(tracker, "r1")
        art = getattr(tracker, method)(missing, key="nope")
        assert art.hash is None
        assert _state(tracker, "r1") == before
    snap = _journal(tracker, "r1")
    assert snap["inputs"] == [] and snap["outputs"] == []
    assert tracker.store.table_counts()["artifact"] == 0


def test_missing_file_with_validated_hash_raises_and_writes_nothing(tmp_path: Path, tracker):
    missing = tmp_path / "inputs" / "nope.csv"
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        before = _state(tracker, "r1")
        with pytest.raises(FileNotFoundError):
            tracker.log_input(
                missing, key="nope", content_hash=FAKE_HASH, validate_content_hash=True
            )
        assert _state(tracker, "r1") == before


def test_log_artifacts_with_one_missing_file_writes_nothing(tracker: Tracker, inputs_dir: Path):
    a = _write(inputs_dir / "a.csv", "x\n1\n")
    b = _write(inputs_dir / "b.csv", "x\n2\n")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        before = _state(tracker, "r1")
        with pytest.raises(FileNotFoundError):
            tracker.log_artifacts(
                {"a": a, "missing": inputs_dir / "missing.csv", "b": b}, direction="input"
            )
        assert _state(tracker, "r1") == before
    assert tracker.get_run_inputs("r1") == {}


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        pytest.param({"key": ""}, ValueError, id="empty-key"),
        pytest.param({"key": "k" * 300}, ValueError, id="long-key"),
        pytest.param({"key": 5}, TypeError, id="non-str-key"),
        pytest.param({"key": "a", "direction": "sideways"}, ValueError, id="bad-direction"),
        pytest.param({"key": "a", "content_hash": 123}, TypeError, id="non-str-hash"),
        pytest.param({"key": "a", "reuse_scope": "everywhere"}, ValueError, id="bad-scope"),
        pytest.param({"key": "a", "blob": object()}, (TypeError, ValueError), id="meta-not-json"),
    ],
)
def test_bad_arguments_rejected_before_anything_is_written(
    tracker: Tracker, inputs_dir: Path, kwargs: dict[str, Any], exc: Any
):
    src = _write(inputs_dir / "a.csv", "x\n1\n")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        before = _state(tracker, "r1")
        with pytest.raises(exc):
            tracker.log_artifact(src, **kwargs)
        assert _state(tracker, "r1") == before
    assert tracker.store.table_counts()["artifact"] == 0


# --------------------------------------------------------------------------- #
# log_artifacts
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda p: [("a", p)], id="list-of-pairs"),
        pytest.param(lambda p: [p], id="list-of-paths"),
        pytest.param(lambda p: p, id="single-path"),
        pytest.param(lambda p: str(p), id="single-str"),
    ],
)
def test_log_artifacts_rejects_non_mapping(tracker: Tracker, inputs_dir: Path, bad):
    src = _write(inputs_dir / "a.csv", "x\n1\n")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        before = _state(tracker, "r1")
        with pytest.raises(TypeError):
            tracker.log_artifacts(bad(src))
        assert _state(tracker, "r1") == before


def test_log_artifacts_rejects_non_string_keys(tracker: Tracker, inputs_dir: Path):
    a = _write(inputs_dir / "a.csv", "x\n1\n")
    b = _write(inputs_dir / "b.csv", "x\n2\n")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        before = _state(tracker, "r1")
        with pytest.raises(TypeError):
            tracker.log_artifacts({"a": a, 2: b})
        with pytest.raises(TypeError):
            tracker.log_artifacts({Path("a"): a})
        assert _state(tracker, "r1") == before


def test_log_artifacts_rejects_unknown_metadata_keys(tracker: Tracker, inputs_dir: Path):
    a = _write(inputs_dir / "a.csv", "x\n1\n")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        before = _state(tracker, "r1")
        with pytest.raises(ValueError, match="metadata_by_key"):
            tracker.log_artifacts({"a": a}, metadata_by_key={"a": {}, "typo": {"role": "x"}})
        assert _state(tracker, "r1") == before


def test_log_artifacts_shared_meta_and_per_key_overrides(tracker: Tracker):
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        out_dir = tracker.run_artifact_dir()
        persons = _write(out_dir / "persons.parquet", b"PAR1-p")
        households = _write(out_dir / "households.parquet", b"PAR1-h")
        result = tracker.log_artifacts(
            {"persons": persons, "households": households},
            metadata_by_key={"households": {"role": "primary", "extra": 1}},
            role="secondary",
            year=2030,
        )

    assert set(result) == {"persons", "households"}
    assert all(isinstance(a, Artifact) for a in result.values())
    assert result["persons"].key == "persons"
    assert result["households"].key == "households"
    assert result["persons"].meta == {"role": "secondary", "year": 2030}
    assert result["households"].meta == {"role": "primary", "extra": 1, "year": 2030}
    assert result["persons"].path == persons
    assert result["households"].hash == hash_file(households)

    stored = tracker.get_run_outputs("r1")
    assert stored["persons"].meta == {"role": "secondary", "year": 2030}
    assert stored["households"].meta == {"role": "primary", "extra": 1, "year": 2030}


def test_log_artifacts_direction_input_and_explicit_driver(tracker: Tracker, inputs_dir: Path):
    a = _write(inputs_dir / "a.dat", "x\n1\n")
    b = _write(inputs_dir / "b.txt", "x\n2\n")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        result = tracker.log_artifacts({"a": a, "b": b}, direction="input", driver="csv")
    assert {k: v.driver for k, v in result.items()} == {"a": "csv", "b": "csv"}
    assert set(tracker.get_run_inputs("r1")) == {"a", "b"}
    assert tracker.get_run_outputs("r1") == {}


def test_log_artifacts_persists_once_per_call(tracker: Tracker, monkeypatch):
    journal_writes: list[Path] = []
    real_atomic_write = journal_mod.atomic_write_bytes

    def counting_atomic_write(path, data, **kwargs):
        journal_writes.append(Path(path))
        return real_atomic_write(path, data, **kwargs)

    syncs: list[int] = []
    real_sync = MetadataStore.sync_record

    def counting_sync(self, record, **kwargs):
        syncs.append(len(list(kwargs.get("artifacts") or [])))
        return real_sync(self, record, **kwargs)

    monkeypatch.setattr(journal_mod, "atomic_write_bytes", counting_atomic_write)
    monkeypatch.setattr(MetadataStore, "sync_record", counting_sync)

    n = 7
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        out_dir = tracker.run_artifact_dir()
        one = {"single": _write(out_dir / "single.csv", "x\n0\n")}
        many = {f"part{i}": _write(out_dir / f"part{i}.csv", f"x\n{i + 1}\n") for i in range(n)}

        journal_writes.clear()
        syncs.clear()
        tracker.log_artifacts(one)
        writes_for_one, syncs_for_one = len(journal_writes), len(syncs)

        journal_writes.clear()
        syncs.clear()
        result = tracker.log_artifacts(many)
        writes_for_many, syncs_for_many = len(journal_writes), list(syncs)

        # The whole batch is in the journal and in the DB after the single call.
        snap = _journal(tracker, "r1")
        assert {a["key"] for a in snap["outputs"]} == {"single", *many}
        assert tracker.store.table_counts()["artifact"] == n + 1
        assert tracker.store.table_counts()["run_artifact_link"] == n + 1

    assert writes_for_one >= 1
    assert writes_for_many == writes_for_one, "journal writes must not grow with N"
    assert syncs_for_one == 1
    assert len(syncs_for_many) == 1, "one DB sync per log_artifacts call"
    assert syncs_for_many == [n]
    assert set(result) == set(many)


# --------------------------------------------------------------------------- #
# Drivers
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("data.parquet", "parquet"),
        ("data.csv", "csv"),
        ("DATA.CSV", "csv"),
        ("data.json", "json"),
        ("data.h5", "h5"),
        ("data.hdf5", "h5"),
        ("data.nc", "netcdf"),
        ("skims.omx", "openmatrix"),
        ("zones.geojson", "geojson"),
        ("zones.gpkg", "geopackage"),
        ("zones.shp", "shapefile"),
        ("zones.geo.parquet", "geoparquet"),
        ("zones.geoparquet", "geoparquet"),
        ("notes.txt", "other"),
        ("noextension", "other"),
    ],
)
def test_driver_inferred_from_extension(
    tracker: Tracker, inputs_dir: Path, name: str, expected: str
):
    src = _write(inputs_dir / name, b"payload")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        art = tracker.log_input(src, key="k")
    assert art.driver == expected
    assert tracker.get_run_inputs("r1")["k"].driver == expected


def test_driver_zarr_directory(tracker: Tracker, inputs_dir: Path):
    store = inputs_dir / "grid.zarr"
    _write(store / ".zgroup", '{"zarr_format": 2}')
    _write(store / "temp" / "0.0", b"\x00\x01\x02")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        art = tracker.log_input(store, key="grid")
    assert art.driver == "zarr"
    assert art.uri == "inputs://grid.zarr"
    assert art.hash == hash_directory(store)
    assert art.path == store


def test_explicit_driver_is_honoured(tracker: Tracker, inputs_dir: Path):
    dat = _write(inputs_dir / "table.dat", "x\n1\n")
    h5 = _write(inputs_dir / "store.h5", b"\x89HDF")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        as_csv = tracker.log_artifact(dat, key="table", direction="input", driver="csv")
        as_table = tracker.log_artifact(
            h5, key="persons", direction="input", driver="h5_table", table_path="/persons"
        )
    assert as_csv.driver == "csv"
    assert as_table.driver == "h5_table"
    assert as_table.table_path == "/persons"
    stored = tracker.get_run_inputs("r1")
    assert stored["table"].driver == "csv"
    assert stored["persons"].driver == "h5_table"


def test_unknown_driver_raises_and_writes_nothing(tracker: Tracker, inputs_dir: Path):
    src = _write(inputs_dir / "a.csv", "x\n1\n")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        before = _state(tracker, "r1")
        with pytest.raises(ValueError, match="driver"):
            tracker.log_artifact(src, key="a", driver="not-a-driver")
        with pytest.raises(ValueError, match="driver"):
            tracker.log_artifacts({"a": src}, driver="not-a-driver")
        assert _state(tracker, "r1") == before


# --------------------------------------------------------------------------- #
# content_hash
# --------------------------------------------------------------------------- #
def test_given_content_hash_is_used_instead_of_hashing(tracker: Tracker, inputs_dir: Path):
    src = _write(inputs_dir / "a.csv", "x\n1\n")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        art = tracker.log_input(src, key="a", content_hash=FAKE_HASH)
    assert art.hash == FAKE_HASH != hash_file(src)
    assert art.content_id == content_id_for(FAKE_HASH)
    stored = tracker.get_run_inputs("r1")["a"]
    assert stored.hash == FAKE_HASH
    assert stored.content_id == content_id_for(FAKE_HASH)


def test_validate_content_hash_accepts_matching_hash(tracker: Tracker, inputs_dir: Path):
    src = _write(inputs_dir / "a.csv", "x\n1\n")
    real = hash_file(src)
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        art = tracker.log_input(src, key="a", content_hash=real, validate_content_hash=True)
    assert art.hash == real


@pytest.mark.parametrize("method", ["log_input", "log_output", "log_artifact"])
def test_validate_content_hash_mismatch_raises_and_writes_nothing(
    tracker: Tracker, inputs_dir: Path, method: str
):
    src = _write(inputs_dir / "a.csv", "x\n1\n")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        before = _state(tracker, "r1")
        with pytest.raises(ValueError, match="content_hash"):
            getattr(tracker, method)(
                src, key="a", content_hash=FAKE_HASH, validate_content_hash=True
            )
        assert _state(tracker, "r1") == before
    assert tracker.get_artifacts_for_run("r1").model_dump() == {"inputs": {}, "outputs": {}}
    assert tracker.store.table_counts()["content_identity"] == 0


def test_force_hash_override_replaces_hash_of_existing_artifact(tracker: Tracker):
    original = _produce(tracker, "r1", "a.csv", "x\n1\n", key="a")
    new_hash = "blake3:" + "cd" * 32
    with tracker.start_run("r2", "model_b", config={"run": "r2"}):
        art = tracker.log_input(original, content_hash=new_hash, force_hash_override=True)
    assert art.id == original.id
    assert art.hash == new_hash
    assert art.content_id == content_id_for(new_hash)
    assert tracker.get_run_inputs("r2")["a"].hash == new_hash


def test_mismatched_hash_without_force_warns_and_keeps_recorded_hash(tracker: Tracker):
    original = _produce(tracker, "r1", "a.csv", "x\n1\n", key="a")
    with (
        tracker.start_run("r2", "model_b", config={"run": "r2"}),
        pytest.warns(UserWarning, match="force_hash_override"),
    ):
        art = tracker.log_input(original, content_hash="blake3:" + "cd" * 32)
    assert art.id == original.id
    assert art.hash == original.hash
    assert art.content_id == original.content_id
    assert tracker.get_run_inputs("r2")["a"].hash == original.hash
    assert tracker.get_artifact(original.id).hash == original.hash


# --------------------------------------------------------------------------- #
# content_id dedupe
# --------------------------------------------------------------------------- #
def test_identical_bytes_share_content_id_across_paths_and_runs(tracker: Tracker):
    a = _produce(tracker, "r1", "one.csv", "x\n1\n", key="one")
    b = _produce(tracker, "r2", "two.csv", "x\n1\n", key="two")
    c = _produce(tracker, "r3", "three.csv", "x\n2\n", key="three")

    assert a.uri != b.uri
    assert a.id != b.id
    assert a.hash == b.hash
    assert a.content_id == b.content_id
    assert c.content_id != a.content_id
    assert c.hash != a.hash

    counts = tracker.store.table_counts()
    assert counts["artifact"] == 3
    assert counts["content_identity"] == 2


def test_same_output_bytes_logged_twice_make_fresh_rows_one_content(tracker: Tracker):
    first = _produce(tracker, "r1", "same.csv", "x\n1\n", key="same")
    second = _produce(tracker, "r2", "same.csv", "x\n1\n", key="same")
    assert first.id != second.id
    assert first.content_id == second.content_id
    counts = tracker.store.table_counts()
    assert counts["artifact"] == 2
    assert counts["content_identity"] == 1


# --------------------------------------------------------------------------- #
# Automatic input discovery (lineage) and in-place edits (invariant 1)
# --------------------------------------------------------------------------- #
def test_input_at_earlier_output_location_links_to_producer(tracker: Tracker):
    produced = _produce(tracker, "A", "x.csv", "x\n1\n2\n", key="x")
    with tracker.start_run("B", "consumer_model", config={"run": "B"}):
        consumed = tracker.log_input(produced.path, key="x_in")

    assert consumed.id == produced.id
    assert consumed.hash == produced.hash
    assert consumed.key == "x_in"
    assert consumed.path == produced.path
    inputs = tracker.get_run_inputs("B")
    assert set(inputs) == {"x_in"}
    assert inputs["x_in"].id == produced.id
    assert tracker.get_run_outputs("A")["x"].id == produced.id
    # A single artifact row, linked twice (as A's output and B's input).
    counts = tracker.store.table_counts()
    assert counts["artifact"] == 1
    assert counts["run_artifact_link"] == 2


def test_input_edited_in_place_same_size_is_a_new_artifact(tracker: Tracker):
    produced = _produce(tracker, "A", "x.csv", "x\n1\n2\n", key="x")
    with tracker.start_run("B", "consumer_model", config={"run": "B"}):
        linked = tracker.log_input(produced.path, key="x_in")
    assert linked.id == produced.id

    _edit_in_place(produced.path, b"9", offset=2)
    new_hash = hash_file(produced.path)
    assert new_hash != produced.hash

    with tracker.start_run("C", "consumer_model", config={"run": "C"}):
        fresh = tracker.log_input(produced.path, key="x_in")

    assert fresh.id != produced.id
    assert fresh.hash == new_hash
    assert fresh.content_id == content_id_for(new_hash)
    assert fresh.run_id == "C"
    assert fresh.uri == produced.uri
    assert tracker.get_run_inputs("C")["x_in"].id == fresh.id
    assert tracker.get_run_inputs("C")["x_in"].hash == new_hash
    # B's recorded lineage is unchanged.
    assert tracker.get_run_inputs("B")["x_in"].id == produced.id
    assert tracker.get_artifact(produced.id).hash == produced.hash


def test_in_place_edit_with_mtime_restored_is_a_new_artifact(tmp_path: Path):
    """Even with a trusted stat-cache entry, restoring mtime cannot hide an edit.

    ``stat_cache_min_bytes=0`` sends every file through the stat cache, and the
    file is left untouched for longer than the racy window before it is first
    hashed, so the cache entry recorded for A's output is trusted.
    """
    tracker = _make_tracker(tmp_path, stat_cache_min_bytes=0)
    try:
        with tracker.start_run("A", "producer_model", config={"run": "A"}):
            path = _write(tracker.run_artifact_dir() / "x.csv", "x\n1\n2\n")
            time.sleep(2.2)  # beyond the default 2 s racy window
            produced = tracker.log_output(path, key="x")
        assert tracker.store.table_counts()["stat_cache"] >= 1

        with tracker.start_run("B", "consumer_model", config={"run": "B"}):
            assert tracker.log_input(path, key="x_in").id == produced.id

        st = path.stat()
        _edit_in_place(path, b"9", offset=2)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert path.stat().st_mtime_ns == st.st_mtime_ns
        assert path.stat().st_size == st.st_size

        with tracker.start_run("C", "consumer_model", config={"run": "C"}):
            fresh = tracker.log_input(path, key="x_in")
        assert fresh.id != produced.id
        assert fresh.hash == hash_file(path) != produced.hash
        assert tracker.get_run_inputs("C")["x_in"].id == fresh.id
    finally:
        tracker.close()


def test_in_place_edit_with_mtime_restored_small_file(tracker: Tracker):
    produced = _produce(tracker, "A", "x.csv", "x\n1\n2\n", key="x")
    st = produced.path.stat()
    _edit_in_place(produced.path, b"7", offset=4)
    os.utime(produced.path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with tracker.start_run("C", "consumer_model", config={"run": "C"}):
        fresh = tracker.log_input(produced.path, key="x_in")
    assert fresh.id != produced.id
    assert fresh.hash == hash_file(produced.path)


def test_directory_input_links_then_detects_in_place_edit(tracker: Tracker):
    with tracker.start_run("A", "producer_model", config={"run": "A"}):
        out_dir = tracker.run_artifact_dir() / "skims"
        _write(out_dir / "am.bin", b"\x00" * 32)
        _write(out_dir / "sub" / "pm.bin", b"\x01" * 32)
        produced = tracker.log_output(out_dir, key="skims")
    assert produced.hash == hash_directory(out_dir)

    with tracker.start_run("B", "consumer_model", config={"run": "B"}):
        linked = tracker.log_input(out_dir, key="skims_in")
    assert linked.id == produced.id
    assert tracker.get_run_inputs("B")["skims_in"].id == produced.id

    _edit_in_place(out_dir / "sub" / "pm.bin", b"\x02", offset=5)
    with tracker.start_run("C", "consumer_model", config={"run": "C"}):
        fresh = tracker.log_input(out_dir, key="skims_in")
    assert fresh.id != produced.id
    assert fresh.hash == hash_directory(out_dir) != produced.hash

    _write(out_dir / "extra.bin", b"")
    with tracker.start_run("D", "consumer_model", config={"run": "D"}):
        added = tracker.log_input(out_dir, key="skims_in")
    assert added.id not in (produced.id, fresh.id)
    assert added.hash == hash_directory(out_dir)


# --------------------------------------------------------------------------- #
# Queries: get_artifact, get_artifact_by_uri, run artifacts, historical paths
# --------------------------------------------------------------------------- #
def test_get_artifact_by_key_uuid_and_run_scope(tracker: Tracker):
    v1 = _produce(tracker, "r1", "k.csv", "x\n1\n", key="k")
    v2 = _produce(tracker, "r2", "k.csv", "x\n2\n", key="k")

    newest = tracker.get_artifact("k")
    assert newest is not None and newest.id == v2.id
    assert newest.path == v2.path

    assert tracker.get_artifact("k", run_id="r1").id == v1.id
    assert tracker.get_artifact("k", run_id="r2").id == v2.id
    assert tracker.get_artifact("k", run_id="unknown-run") is None

    assert tracker.get_artifact(v1.id).id == v1.id
    assert tracker.get_artifact(str(v1.id)).id == v1.id
    assert tracker.get_artifact(v1.id).hash == v1.hash
    assert tracker.get_artifact(v1.id).path == v1.path
    assert tracker.get_artifact(v1.id, run_id="r1").id == v1.id
    assert tracker.get_artifact(str(v1.id), run_id="r1").id == v1.id
    assert tracker.get_artifact(v1.id, run_id="r2") is None

    assert tracker.get_artifact("no-such-key") is None
    assert tracker.get_artifact(uuid.uuid4()) is None
    assert tracker.get_artifact(str(uuid.uuid4())) is None


def test_get_artifact_by_link_key_in_consumer_run(tracker: Tracker):
    produced = _produce(tracker, "A", "x.csv", "x\n1\n", key="x")
    with tracker.start_run("B", "consumer_model", config={"run": "B"}):
        tracker.log_input(produced.path, key="x_in", role="lookup")
    found = tracker.get_artifact("x_in", run_id="B")
    assert found is not None and found.id == produced.id
    assert found.key == "x_in"
    assert tracker.get_artifact("x").id == produced.id
    assert tracker.get_artifact(produced.id, run_id="B").id == produced.id


def test_get_artifact_by_uri_with_uri_and_local_path(tracker: Tracker, inputs_dir: Path):
    src = _write(inputs_dir / "nested" / "a.csv", "x\n1\n")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        inp = tracker.log_input(src, key="a")
        out_path = _write(tracker.run_artifact_dir() / "o.csv", "y\n1\n")
        out = tracker.log_output(out_path, key="o")

    assert tracker.get_artifact_by_uri("inputs://nested/a.csv").id == inp.id
    assert tracker.get_artifact_by_uri(str(src)).id == inp.id
    assert tracker.get_artifact_by_uri(out.uri).id == out.id
    assert tracker.get_artifact_by_uri(str(out_path)).id == out.id
    assert tracker.get_artifact_by_uri(str(out_path)).path == out_path
    assert tracker.get_artifact_by_uri("inputs://nested/other.csv") is None
    assert tracker.get_artifact_by_uri(str(inputs_dir / "nope.csv")) is None


def test_get_artifact_by_uri_returns_newest(tracker: Tracker):
    first = _produce(tracker, "r1", "x.csv", "x\n1\n", key="x")
    with tracker.start_run(
        "r2", "producer_model", config={"run": "r2"}, artifact_dir=first.path.parent
    ):
        _write(first.path, "x\n2\n")
        second = tracker.log_output(first.path, key="x")
    assert first.uri == second.uri
    assert tracker.get_artifact_by_uri(first.uri).id == second.id


def test_get_artifacts_for_run_keyed_by_run_key(tracker: Tracker, inputs_dir: Path):
    produced = _produce(tracker, "A", "x.csv", "x\n1\n", key="x")
    ext = _write(inputs_dir / "zones.csv", "z\n1\n")
    with tracker.start_run("B", "consumer_model", config={"run": "B"}):
        tracker.log_input(produced.path, key="upstream")
        tracker.log_input(ext, key="zones")
        out = tracker.log_output(_write(tracker.run_artifact_dir() / "y.csv", "y\n1\n"), key="y")

    arts = tracker.get_artifacts_for_run("B")
    assert set(arts.inputs) == {"upstream", "zones"}
    assert set(arts.outputs) == {"y"}
    assert arts.inputs["upstream"].id == produced.id
    assert arts.inputs["upstream"].key == "upstream"
    assert arts.outputs["y"].id == out.id
    assert arts.inputs["zones"].path == ext
    assert tracker.get_run_inputs("B") == arts.inputs
    assert tracker.get_run_outputs("B") == arts.outputs
    assert tracker.get_run_outputs("A")["x"].key == "x"

    empty = tracker.get_artifacts_for_run("no-such-run")
    assert empty.inputs == {} and empty.outputs == {}
    assert tracker.get_run_inputs("no-such-run") == {}
    assert tracker.get_run_outputs("no-such-run") == {}


def test_resolve_historical_path(tracker: Tracker, inputs_dir: Path):
    src = _write(inputs_dir / "a.csv", "x\n1\n")
    produced = _produce(tracker, "A", "x.csv", "x\n1\n", key="x")
    with tracker.start_run("B", "consumer_model", config={"run": "B"}):
        tracker.log_input(src, key="a")
    run_a, run_b = tracker.get_run("A"), tracker.get_run("B")
    out = tracker.get_run_outputs("A")["x"]
    inp = tracker.get_run_inputs("B")["a"]
    assert tracker.resolve_historical_path(out, run_a) == produced.path
    assert tracker.resolve_historical_path(inp, run_b) == src
    assert isinstance(tracker.resolve_historical_path(out, run_a), Path)


# --------------------------------------------------------------------------- #
# Mounts and portable URIs
# --------------------------------------------------------------------------- #
def test_uri_forms_and_resolve_uri_inverts(tmp_path: Path, tracker: Tracker, inputs_dir: Path):
    mounted = _write(inputs_dir / "sub" / "dir" / "a.csv", "x\n1\n")
    elsewhere = _write(tmp_path / "elsewhere" / "b.csv", "x\n2\n")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        in_run_dir = _write(tracker.run_dir / "scratch" / "c.csv", "x\n3\n")
        a = tracker.log_input(mounted, key="a")
        b = tracker.log_input(elsewhere, key="b")
        c = tracker.log_output(in_run_dir, key="c")

    assert a.uri == "inputs://sub/dir/a.csv"
    assert c.uri == "./scratch/c.csv"
    assert b.uri == str(elsewhere)
    assert os.path.isabs(b.uri)
    for art, path in ((a, mounted), (b, elsewhere), (c, in_run_dir)):
        assert tracker.resolve_uri(art.uri) == str(path)
        assert tracker.get_artifact(art.id).path == path


def test_mounted_uri_resolves_under_another_trackers_mount(tmp_path: Path, tracker: Tracker):
    src = _write(tmp_path / "inputs" / "a.csv", "x\n1\n")
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        tracker.log_input(src, key="a")
    tracker.close()

    moved = tmp_path / "moved_inputs"
    _write(moved / "a.csv", "x\n1\n")
    other = Tracker(
        run_dir=tmp_path / "runs", db_path=tmp_path / "store.duckdb", mounts={"inputs": moved}
    )
    try:
        art = other.get_run_inputs("r1")["a"]
        assert art.uri == "inputs://a.csv"
        assert art.path == moved / "a.csv"
        assert other.resolve_uri(art.uri) == str(moved / "a.csv")
    finally:
        other.close()


@pytest.mark.parametrize(
    "uri",
    [
        "inputs://../../etc/passwd",
        "inputs://sub/../../outside.csv",
        "inputs:///etc/passwd",
        "./../outside.csv",
        "../outside.csv",
    ],
)
def test_traversal_uri_is_rejected(tracker: Tracker, uri: str):
    with pytest.raises(ValueError):
        tracker.resolve_uri(uri)


def test_relogging_an_output_as_input_keeps_the_artifacts_own_key(tmp_path: Path) -> None:
    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "db.duckdb", project_root=tmp_path)
    with tracker.start_run("loop", "m", config={"x": 1}):
        out = tracker.run_artifact_dir()
        out.mkdir(parents=True, exist_ok=True)
        (out / "state.csv").write_text("s\n1\n")
        state = tracker.log_output(out / "state.csv", key="state")
        view = tracker.log_input(state, key="previous_state", role="loop")
    assert view.id == state.id and view.key == "previous_state"
    assert tracker.get_artifact(state.id).key == "state"
    arts = tracker.get_artifacts_for_run("loop")
    assert arts.inputs["previous_state"].id == state.id
    assert arts.outputs["state"].id == state.id
    assert arts.inputs["previous_state"].meta["role"] == "loop"
    assert "role" not in tracker.get_artifact(state.id).meta
    tracker.close()
