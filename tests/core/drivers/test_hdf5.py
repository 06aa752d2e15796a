"""HDF5 containers and tables: discovery, child links, hashing modes, loading.

Every test writes a real HDF5 file in ``tmp_path`` (pandas ``to_hdf`` in
both formats plus h5py datasets) and goes through the public Tracker API.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from consist import Tracker
from consist.core.drivers import hdf5 as h5

HOUSEHOLDS = pd.DataFrame(
    {
        "hh_id": np.arange(50),
        "income": np.linspace(1.0, 99.0, 50),
        "zone": [f"z{i % 7}" for i in range(50)],
    }
)
PERSONS = pd.DataFrame({"person_id": np.arange(120), "age": np.arange(120) % 90})
JOBS = pd.DataFrame({"job_id": np.arange(30), "sector": ["retail", "office", "farm"] * 10})


def write_container(path: Path) -> Path:
    """Two pandas 'table' tables, one 'fixed' table and two plain h5py datasets."""
    HOUSEHOLDS.to_hdf(path, key="households", format="table", mode="w")
    PERSONS.to_hdf(path, key="persons", format="table")
    JOBS.to_hdf(path, key="base/jobs", format="fixed")
    with h5py.File(path, "a") as f:
        f.create_dataset("skims/dist", data=np.arange(12.0).reshape(3, 4))
        f.create_dataset("skims/cube", data=np.zeros((2, 2, 2)))
    return path


ALL_TABLES = ["/base/jobs", "/households", "/persons", "/skims/cube", "/skims/dist"]


@pytest.fixture
def container_file(base: Path) -> Path:
    return write_container(base / "pipeline.h5")


@pytest.fixture
def trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust a recording taken right after the file was written (tests run within 2 s)."""
    monkeypatch.setattr(h5, "RACY_WINDOW_NS", 0)


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Table paths whose content the driver read to hash, in order."""
    calls: list[str] = []
    real = h5.hash_table

    def counting(path, table_path, chunk_rows=None):
        calls.append(table_path)
        return real(path, table_path, chunk_rows)

    monkeypatch.setattr(h5, "hash_table", counting)
    return calls


# -- discovery and links -----------------------------------------------------------------


def test_container_discovers_tables_and_datasets_as_linked_children(
    tracker: Tracker, container_file: Path
) -> None:
    with tracker.start_run("r1", "model"):
        container, tables = tracker.log_h5_container(container_file, key="urbansim_data")

    assert container.driver == "h5" and container.table_path is None
    assert container.meta["h5_tables"] == ALL_TABLES
    assert container.meta["h5_table_count"] == 5
    assert [t.table_path for t in tables] == ALL_TABLES
    assert {t.driver for t in tables} == {"h5_table"}

    outputs = tracker.get_run_outputs("r1")
    assert set(outputs) == {"urbansim_data"} | {f"urbansim_data{p}" for p in ALL_TABLES}
    stored_container = outputs["urbansim_data"]
    assert stored_container.id == container.id
    for path in ALL_TABLES:
        child = outputs[f"urbansim_data{path}"]
        assert child.table_path == path
        assert child.meta["parent_id"] == str(container.id)
        assert child.meta["parent_key"] == "urbansim_data"
        assert child.hash is not None and child.hash.startswith("blake3:")
        assert child.hash != container.hash

    kinds = {t.table_path: t.meta["h5_kind"] for t in tables}
    assert kinds == {
        "/base/jobs": "pandas_fixed",
        "/households": "pandas_table",
        "/persons": "pandas_table",
        "/skims/cube": "dataset",
        "/skims/dist": "dataset",
    }
    by_path = {t.table_path: t for t in tables}
    assert by_path["/persons"].meta["n_rows"] == 120
    assert by_path["/base/jobs"].meta["n_rows"] == 30
    assert by_path["/skims/dist"].meta["shape"] == [3, 4]

    found = tracker.find_artifacts(key="urbansim_data/households", driver="h5_table")
    assert [a.id for a in found] == [by_path["/households"].id]
    assert {a.id for a in tracker.find_artifacts(creator="r1", driver="h5_table")} == {
        t.id for t in tables
    }


def test_key_defaults_to_file_stem_and_distinct_tables_have_distinct_digests(
    tracker: Tracker, container_file: Path
) -> None:
    with tracker.start_run("r1", "model"):
        container, tables = tracker.log_h5_container(container_file)
    assert container.key == "pipeline"
    assert tables[1].key == "pipeline/households"
    assert len({t.hash for t in tables}) == len(tables)


def test_table_filter_callable_and_list(tracker: Tracker, container_file: Path) -> None:
    seen: list[str] = []

    def only_skims(name: str) -> bool:
        seen.append(name)
        return name.startswith("/skims/")

    with tracker.start_run("r1", "model"):
        container, tables = tracker.log_h5_container(container_file, table_filter=only_skims)
    assert sorted(seen) == ALL_TABLES
    assert [t.table_path for t in tables] == ["/skims/cube", "/skims/dist"]
    assert container.meta["h5_tables"] == ["/skims/cube", "/skims/dist"]

    with tracker.start_run("r2", "model"):
        _, tables = tracker.log_h5_container(
            container_file, key="c", table_filter=["households", "/base/jobs"]
        )
    assert [t.table_path for t in tables] == ["/base/jobs", "/households"]
    assert set(tracker.get_run_outputs("r2")) == {"c", "c/base/jobs", "c/households"}


def test_table_filter_list_naming_a_missing_table_writes_nothing(
    tracker: Tracker, container_file: Path
) -> None:
    with tracker.start_run("r1", "model"):
        with pytest.raises(ValueError, match=r"table_filter names \['/nope'\]"):
            tracker.log_h5_container(container_file, table_filter=["households", "nope"])
        with pytest.raises(TypeError, match="table_filter"):
            tracker.log_h5_container(container_file, table_filter="households")
    assert tracker.get_run_outputs("r1") == {}


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"hash_tables": "sometimes"}, "hash_tables"),
        ({"hash_tables": True}, "hash_tables"),
        ({"table_hash_chunk_rows": 0}, "table_hash_chunk_rows"),
        ({"table_hash_chunk_rows": 2.5}, "table_hash_chunk_rows"),
        ({"direction": "sideways"}, "direction"),
    ],
)
def test_invalid_arguments_raise_before_anything_is_written(
    tracker: Tracker, container_file: Path, kwargs: dict, param: str
) -> None:
    with tracker.start_run("r1", "model"), pytest.raises(ValueError, match=param):
        tracker.log_h5_container(container_file, **kwargs)
    assert tracker.get_run_outputs("r1") == {}


def test_outside_a_run_raises(tracker: Tracker, container_file: Path) -> None:
    with pytest.raises(RuntimeError):
        tracker.log_h5_container(container_file)


# -- hashing modes --------------------------------------------------------------------------


def test_if_unchanged_reuses_recorded_digests_without_reading(
    tracker: Tracker, container_file: Path, trusted: None, hash_calls: list[str]
) -> None:
    with tracker.start_run("r1", "model"):
        _, first = tracker.log_h5_container(container_file, key="c")
    assert sorted(hash_calls) == ALL_TABLES
    assert not any(t.meta["table_digest_reused"] for t in first)

    hash_calls.clear()
    with tracker.start_run("r2", "model"):
        _, second = tracker.log_h5_container(container_file, key="c")
    assert hash_calls == []  # no table content was read
    assert [t.hash for t in second] == [t.hash for t in first]
    assert all(t.meta["table_digest_reused"] for t in second)

    # "always" reads every table again, and finds the same digests.
    with tracker.start_run("r3", "model"):
        _, third = tracker.log_h5_container(container_file, key="c", hash_tables="always")
    assert sorted(hash_calls) == ALL_TABLES
    assert [t.hash for t in third] == [t.hash for t in first]


def test_if_unchanged_rehashes_after_an_in_place_edit(
    tracker: Tracker, container_file: Path, trusted: None, hash_calls: list[str]
) -> None:
    with tracker.start_run("r1", "model"):
        _, first = tracker.log_h5_container(container_file, key="c")
    before = {t.table_path: t.hash for t in first}

    # An in-place write changes no shape, dtype, offset or size of the dataset:
    # only the file's stat identity shows it, so every table is re-read.
    with h5py.File(container_file, "r+") as f:
        f["skims/dist"][0, 0] = 1000.0
    hash_calls.clear()
    with tracker.start_run("r2", "model"):
        _, second = tracker.log_h5_container(container_file, key="c")
    after = {t.table_path: t.hash for t in second}
    assert sorted(hash_calls) == ALL_TABLES
    assert after["/skims/dist"] != before["/skims/dist"]
    assert {p: h for p, h in after.items() if p != "/skims/dist"} == {
        p: h for p, h in before.items() if p != "/skims/dist"
    }

    # Appending rows to a pandas table changes that table's digest only.
    HOUSEHOLDS.iloc[:3].assign(hh_id=[900, 901, 902]).to_hdf(
        container_file, key="households", format="table", append=True
    )
    hash_calls.clear()
    with tracker.start_run("r3", "model"):
        _, third = tracker.log_h5_container(container_file, key="c")
    final = {t.table_path: t.hash for t in third}
    assert sorted(hash_calls) == ALL_TABLES
    assert final["/households"] != after["/households"]
    assert final["/persons"] == after["/persons"]
    assert {t.table_path: t.meta["n_rows"] for t in third}["/households"] == 53


def test_if_unchanged_does_not_trust_a_racy_recording(
    tracker: Tracker, container_file: Path, hash_calls: list[str]
) -> None:
    # The file was written moments ago: a digest recorded now could miss an
    # edit in the same timestamp tick, so it is not reused.
    with tracker.start_run("r1", "model"):
        tracker.log_h5_container(container_file, key="c")
    hash_calls.clear()
    with tracker.start_run("r2", "model"):
        _, second = tracker.log_h5_container(container_file, key="c")
    assert sorted(hash_calls) == ALL_TABLES
    assert not any(t.meta["table_digest_reused"] for t in second)


def test_never_records_no_table_digest(
    tracker: Tracker, container_file: Path, hash_calls: list[str]
) -> None:
    with tracker.start_run("r1", "model"):
        container, tables = tracker.log_h5_container(container_file, hash_tables="never")
    assert hash_calls == []
    assert container.hash is not None  # the file itself is still hashed
    stored = tracker.get_run_outputs("r1")
    for t in tables:
        assert t.hash is None and t.meta["table_hashed"] is False
        assert stored[t.key].hash is None
        assert "h5_fingerprint" not in t.meta
    assert stored[container.key].meta["hash_tables"] == "never"


def test_digest_does_not_depend_on_chunk_rows(container_file: Path) -> None:
    for table in ALL_TABLES:
        assert h5.hash_table(container_file, table, 1) == h5.hash_table(container_file, table, 7)
        assert h5.hash_table(container_file, table, 1) == h5.hash_table(container_file, table)


def test_chunk_rows_bounds_each_read(
    tracker: Tracker, container_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    real = h5._array_bytes

    def recording(arr):
        sizes.append(arr.shape[0])
        return real(arr)

    monkeypatch.setattr(h5, "_array_bytes", recording)
    with tracker.start_run("r1", "model"):
        tracker.log_h5_container(container_file, table_filter=["persons"], table_hash_chunk_rows=16)
    assert sizes and max(sizes) == 16
    assert sum(sizes) == 120  # the one dataset of /persons, read in 8 chunks


# -- loading -------------------------------------------------------------------------------


def test_load_returns_each_tables_natural_object(tracker: Tracker, container_file: Path) -> None:
    with tracker.start_run("r1", "model"):
        container, tables = tracker.log_h5_container(container_file, key="c")
    by_path = {t.table_path: t for t in tables}

    pd.testing.assert_frame_equal(tracker.load(by_path["/households"]), HOUSEHOLDS)
    pd.testing.assert_frame_equal(tracker.load_df(by_path["/persons"]), PERSONS)
    pd.testing.assert_frame_equal(tracker.load(by_path["/base/jobs"]), JOBS)
    pd.testing.assert_frame_equal(
        tracker.load_df(by_path["/households"], columns=["income"]), HOUSEHOLDS[["income"]]
    )
    dist = tracker.load_df(by_path["/skims/dist"])
    np.testing.assert_array_equal(dist.to_numpy(), np.arange(12.0).reshape(3, 4))
    cube = tracker.load(by_path["/skims/cube"])
    assert isinstance(cube, np.ndarray) and cube.shape == (2, 2, 2)
    with pytest.raises(ValueError, match="no DataFrame form"):
        tracker.load_df(by_path["/skims/cube"])

    stored = tracker.get_run_outputs("r1")["c/persons"]  # read back from the store
    pd.testing.assert_frame_equal(tracker.load_df(stored), PERSONS)

    everything = tracker.load(container)
    assert list(everything) == ALL_TABLES
    pd.testing.assert_frame_equal(everything["/persons"], PERSONS)
    with pytest.raises(ValueError, match="container"):
        tracker.load_df(container)


# -- log_h5_table ----------------------------------------------------------------------------


def test_log_h5_table_with_parent_and_schema_profile(
    tracker: Tracker, container_file: Path
) -> None:
    with tracker.start_run("r1", "model"):
        container, _ = tracker.log_h5_container(container_file, key="c", discover_tables=False)
        art = tracker.log_h5_table(
            container_file,
            table_path="households",
            parent=container,
            profile_file_schema=True,
            file_schema_sample_rows=10,
            note="one table",
        )
        unhashed = tracker.log_h5_table(container_file, table_path="/skims/dist", hash_table=False)
    assert art.key == "households" and art.table_path == "/households"
    assert art.driver == "h5_table" and art.meta["note"] == "one table"
    assert art.meta["parent_id"] == str(container.id)
    assert art.hash == h5.hash_table(container_file, "/households")
    summary = art.meta["schema_summary"]
    assert summary["n_fields"] == 3 and summary["n_rows"] == 50 and summary["sampled_rows"] == 10
    stored = tracker.get_run_outputs("r1")
    assert stored["households"].meta["schema_id"] == art.meta["schema_id"]
    assert unhashed.hash is None and stored["skims/dist"].hash is None
    assert "parent_id" not in unhashed.meta
    pd.testing.assert_frame_equal(tracker.load_df(stored["households"]), HOUSEHOLDS)


def test_log_h5_table_rejects_bad_input(tracker: Tracker, container_file: Path) -> None:
    with tracker.start_run("r1", "model"):
        with pytest.raises(KeyError, match="/nope"):
            tracker.log_h5_table(container_file, table_path="nope")
        with pytest.raises(KeyError, match="plain group"):
            tracker.log_h5_table(container_file, table_path="skims")
        with pytest.raises(ValueError, match="table_path"):
            tracker.log_h5_table(container_file, table_path="../x")
        with pytest.raises(TypeError, match="parent"):
            tracker.log_h5_table(container_file, table_path="persons", parent="c")
        with pytest.raises(ValueError, match="profile_file_schema"):
            tracker.log_h5_table(container_file, table_path="persons", profile_file_schema="x")
    assert tracker.get_run_outputs("r1") == {}


def test_input_container_links_to_its_producer(tracker: Tracker, container_file: Path) -> None:
    with tracker.start_run("producer", "model"):
        produced, _ = tracker.log_h5_container(container_file, key="c")
    with tracker.start_run("consumer", "model"):
        consumed, tables = tracker.log_h5_container(container_file, key="c", direction="input")
    assert consumed.id == produced.id
    for t in tables:
        assert t.meta["parent_id"] == str(produced.id)
        assert "stale_producer_artifact_id" not in t.meta
    inputs = tracker.get_artifacts_for_run("consumer").inputs
    assert set(inputs) == {"c"} | {f"c{p}" for p in ALL_TABLES}


# -- missing library -------------------------------------------------------------------------


def test_missing_h5py_raises_import_error_naming_the_extra(
    tracker: Tracker, container_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "h5py", None)
    with tracker.start_run("r1", "model"):
        with pytest.raises(ImportError, match=r"pip install 'consist\[hdf5\]'"):
            tracker.log_h5_container(container_file)
        with pytest.raises(ImportError, match="log_h5_table needs h5py"):
            tracker.log_h5_table(container_file, table_path="persons")
        assert tracker.get_run_outputs("r1") == {}
        # Without discovery, h5py is not needed: the file is logged as a whole.
        container, tables = tracker.log_h5_container(container_file, discover_tables=False)
    assert tables == [] and container.driver == "h5" and container.hash is not None


def test_reuse_rule_needs_same_file_identity_same_object_and_no_race(
    container_file: Path,
) -> None:
    table = h5.describe_table(container_file, "/persons")
    identity = h5.file_identity(container_file)
    settled = max(identity["mtime_ns"], identity["ctime_ns"]) + h5.RACY_WINDOW_NS
    record = h5.fingerprint_record(identity, table, settled)
    assert h5.may_reuse(record, identity, table)

    for field in ("dev", "ino", "size", "mtime_ns", "ctime_ns"):
        moved = {**identity, field: identity[field] + 1}
        assert not h5.may_reuse(record, moved, table), field
    other = h5.describe_table(container_file, "/households")
    assert not h5.may_reuse({**record, "object": other.fingerprint}, identity, table)
    assert not h5.may_reuse({**record, "version": "h5-v0"}, identity, table)
    assert not h5.may_reuse(h5.fingerprint_record(identity, table, settled - 1), identity, table)
    assert not h5.may_reuse(None, identity, table)


def test_table_object_fingerprint_tracks_layout_not_values(container_file: Path) -> None:
    before = {t.table_path: t.fingerprint for t in h5.discover_tables(container_file)}
    with h5py.File(container_file, "r+") as f:
        f["skims/dist"][0, 0] = -1.0  # raw data rewritten in place
    same = {t.table_path: t.fingerprint for t in h5.discover_tables(container_file)}
    assert same == before  # which is why the file's stat identity must match too
    PERSONS.to_hdf(container_file, key="persons", format="table", append=True)
    grown = {t.table_path: t.fingerprint for t in h5.discover_tables(container_file)}
    assert grown["/persons"] != before["/persons"]
    assert grown["/households"] == before["/households"]


def test_a_file_that_is_not_hdf5_is_refused(tracker: Tracker, base: Path) -> None:
    fake = base / "fake.h5"
    fake.write_text("not hdf5")
    with tracker.start_run("r1", "model"):
        with pytest.raises(ValueError, match="is not an HDF5 file"):
            tracker.log_h5_container(fake)
        with pytest.raises(FileNotFoundError):
            tracker.log_h5_container(base / "absent.h5")
    assert tracker.get_run_outputs("r1") == {}


def test_plain_datasets_of_text_records_ragged_and_scalar_values(
    tracker: Tracker, base: Path
) -> None:
    import consist

    path = base / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "names", data=np.array(["a", "bb", "ccc"], dtype=object), dtype=h5py.string_dtype()
        )
        f.create_dataset(
            "rec", data=np.array([(1, 2.0), (3, 4.0)], dtype=[("x", "i4"), ("y", "f8")])
        )
        ragged = f.create_dataset("ragged", (2,), dtype=h5py.vlen_dtype(np.int32))
        ragged[0], ragged[1] = [1, 2], [3]
        f.create_dataset("scalar", data=3.5)
    with tracker.start_run("r1", "model"):
        _, tables = tracker.log_h5_container(path, table_hash_chunk_rows=1)
    by_path = {t.table_path: t for t in tables}
    assert set(by_path) == {"/names", "/rec", "/ragged", "/scalar"}
    for table_path, art in by_path.items():  # the digest streams variable-length values
        assert art.hash == h5.hash_table(path, table_path)

    assert consist.load(by_path["/names"], tracker=tracker)["names"].tolist() == ["a", "bb", "ccc"]
    pd.testing.assert_frame_equal(
        tracker.load_df(by_path["/rec"]),
        pd.DataFrame({"x": np.array([1, 3], dtype="i4"), "y": [2.0, 4.0]}),
    )
    assert [list(v) for v in tracker.load_df(by_path["/ragged"])["ragged"]] == [[1, 2], [3]]
    assert tracker.load_df(by_path["/scalar"])["scalar"].tolist() == [3.5]

    # Editing one ragged element changes that dataset's digest only.
    with h5py.File(path, "r+") as f:
        f["ragged"][1] = [4]
    assert h5.hash_table(path, "/ragged") != by_path["/ragged"].hash
    assert h5.hash_table(path, "/names") == by_path["/names"].hash


def test_current_digest_reverifies_a_table_artifact(tracker: Tracker, container_file: Path) -> None:
    with tracker.start_run("r1", "model"):
        container, tables = tracker.log_h5_container(container_file, key="c")
    dist = {t.table_path: t for t in tables}["/skims/dist"]
    assert h5.current_digest(container_file, dist) == dist.hash
    assert h5.current_digest(container_file, container) is None
    with h5py.File(container_file, "r+") as f:
        f["skims/dist"][1, 1] = 42.0
    assert h5.current_digest(container_file, dist) != dist.hash
    with h5py.File(container_file, "r+") as f:
        del f["skims/dist"]
    assert h5.current_digest(container_file, dist) is None


# -- a table as the input of a later step ----------------------------------------------------


def _persons_rows(persons: pd.DataFrame) -> int:
    return len(persons)


def test_a_table_artifact_feeds_a_later_step_by_its_own_digest(
    tracker: Tracker, container_file: Path
) -> None:
    with tracker.start_run("producer", "model"):
        _, tables = tracker.log_h5_container(container_file, key="c")
    persons = next(t for t in tables if t.table_path == "/persons")
    first = tracker.run(fn=_persons_rows, name="count", inputs={"persons": persons})
    recorded = tracker.get_run_inputs(first.run.id)["persons"]
    assert recorded.id == persons.id and recorded.table_path == "/persons"
    assert "stale_artifact_id" not in recorded.meta
    assert tracker.run(fn=_persons_rows, name="count", inputs={"persons": persons}).cache_hit

    # Another table of the same file changes: this input is still the same content.
    with h5py.File(container_file, "r+") as f:
        f["skims/dist"][0, 0] = -1.0
    assert tracker.run(fn=_persons_rows, name="count", inputs={"persons": persons}).cache_hit

    # The table itself changes: new content (a miss), recorded with its table path.
    PERSONS.iloc[:5].to_hdf(container_file, key="persons", format="table", append=True)
    changed = tracker.run(fn=_persons_rows, name="count", inputs={"persons": persons})
    assert not changed.cache_hit
    now = tracker.get_run_inputs(changed.run.id)["persons"]
    assert now.table_path == "/persons" and now.hash != persons.hash
    assert now.meta["stale_artifact_id"] == str(persons.id)


def test_validate_checks_a_table_by_its_own_digest(tracker: Tracker, container_file: Path) -> None:
    with tracker.start_run("producer", "model"):
        tracker.log_h5_container(container_file, key="c")
    report = tracker.validate_artifacts()
    assert report.ok, report.to_dict()
    PERSONS.iloc[:2].to_hdf(container_file, key="persons", format="table", append=True)
    statuses = {c.key: c.status for c in tracker.validate_artifacts().checks}
    assert statuses["c/persons"] == "changed" and statuses["c"] == "changed"
    assert statuses["c/households"] == "ok"  # the other tables still hold their content


def _pipeline_step(where: str) -> None:
    """A step whose outputs are an HDF5 container and its tables."""
    import consist

    write_container(Path(where))
    consist.current_tracker().log_h5_container(where, key="pipeline")


def test_a_run_with_container_outputs_hits_until_a_table_changes(
    tracker: Tracker, base: Path
) -> None:
    where = str(base / "out" / "pipeline.h5")
    (base / "out").mkdir()
    first = tracker.run(fn=_pipeline_step, name="pipeline", config={"where": where})
    assert "pipeline/persons" in first.outputs
    again = tracker.run(fn=_pipeline_step, name="pipeline", config={"where": where})
    assert again.cache_hit  # the tables' own digests still hold
    PERSONS.iloc[:2].to_hdf(where, key="persons", format="table", append=True)
    changed = tracker.run(fn=_pipeline_step, name="pipeline", config={"where": where})
    assert not changed.cache_hit
    assert "pipeline/persons" in changed.run.meta["cache_miss_explanation"]["summary"]
