"""Tracker construction: TrackerConfig, Tracker.from_config, option validation,
journal-only mode (``db_path=None``) and the registered-schema registry.

Everything runs against real directories and a real DuckDB file under
``tmp_path``; nothing is mocked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlmodel
from pydantic import ValidationError

import consist
import consist.core.tracker
import consist.core.tracker_config
from consist.core.tracker import Tracker
from consist.core.tracker_config import TrackerConfig
from consist.models.records import ConsistRecord
from consist.models.run import Run


# --------------------------------------------------------------------------- #
# Small SQLModel classes used as registered schemas
# --------------------------------------------------------------------------- #
class HouseholdRow(sqlmodel.SQLModel):
    household_id: int
    size: int


class LinkstatsRow(sqlmodel.SQLModel):
    link_id: str
    volume: float


def _make_schema_named(name: str) -> type[sqlmodel.SQLModel]:
    """A fresh SQLModel class with the given ``__name__`` (for duplicate checks)."""
    return type(name, (sqlmodel.SQLModel,), {"__annotations__": {"x": int}})


class NotASQLModel:
    pass


@pytest.fixture(autouse=True)
def _isolated_cwd(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from tmp_path, so project_root="." is never the repository's working tree."""
    monkeypatch.chdir(base)


@pytest.fixture
def tracker(base: Path) -> Iterator[Tracker]:
    t = Tracker(base / "runs", db_path=base / "db" / "prov.duckdb")
    yield t
    t.close()


def _tree(root: Path) -> list[str]:
    """Every path (files and directories) under ``root``, relative and sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --------------------------------------------------------------------------- #
# Public names
# --------------------------------------------------------------------------- #
class TestPublicNames:
    def test_top_level_tracker_is_core_tracker(self) -> None:
        assert consist.Tracker is consist.core.tracker.Tracker

    def test_top_level_tracker_config_is_core_tracker_config(self) -> None:
        assert consist.TrackerConfig is consist.core.tracker_config.TrackerConfig

    def test_from_config_is_a_classmethod_of_tracker(self) -> None:
        assert isinstance(Tracker.__dict__["from_config"], classmethod)


# --------------------------------------------------------------------------- #
# Valid construction
# --------------------------------------------------------------------------- #
class TestConstruction:
    def test_defaults_create_run_dir_and_db(self, base: Path) -> None:
        run_dir = base / "a" / "runs"
        db = base / "b" / "nested" / "prov.duckdb"
        assert not run_dir.exists()
        t = Tracker(run_dir, db_path=db)
        try:
            assert run_dir.is_dir()
            assert db.is_file()
            assert t.run_dir == run_dir
            assert t.run_dir.is_absolute()
            assert Path(t.db_path) == db
            assert t.engine is not None
            assert t.store is not None
            assert t.store.table_counts() == {
                "run": 0,
                "artifact": 0,
                "run_artifact_link": 0,
                "content_identity": 0,
                "stat_cache": 0,
            }
            assert t.config.hashing_strategy == "full"
            assert t.config.allow_external_paths is False
            assert t.config.mounts == {}
            assert t.last_run is None
            assert t.current_run is None
            assert t.is_cached is False
            assert dict(t.registered_schemas) == {}
        finally:
            t.close()

    def test_full_signature_with_keywords(self, base: Path) -> None:
        inputs_root = base / "data" / "inputs"
        inputs_root.mkdir(parents=True)
        t = Tracker(
            run_dir=base / "runs",
            db_path=base / "prov.duckdb",
            mounts={"inputs": inputs_root},
            schemas=[HouseholdRow],
            project_root=base,
            hashing_strategy="fast",
            allow_external_paths=True,
        )
        try:
            assert t.config.hashing_strategy == "fast"
            assert t.config.allow_external_paths is True
            assert t.config.mounts == {"inputs": inputs_root}
            assert t.project_root == base
            assert t.registered_schemas["HouseholdRow"] is HouseholdRow
            # The mount is used to record portable URIs.
            assert t.paths.virtualize(inputs_root / "hh.csv") == "inputs://hh.csv"
        finally:
            t.close()

    def test_relative_run_dir_is_made_absolute(
        self, base: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(base)
        t = Tracker("rel_runs")
        assert t.run_dir == base / "rel_runs"
        assert (base / "rel_runs").is_dir()

    def test_str_paths_are_accepted(self, base: Path) -> None:
        t = Tracker(str(base / "runs"), db_path=str(base / "p.duckdb"))
        try:
            assert t.run_dir == base / "runs"
            assert Path(t.db_path) == base / "p.duckdb"
        finally:
            t.close()

    def test_extra_options_reach_the_config(self, base: Path) -> None:
        t = Tracker(
            base / "runs",
            db_path=base / "p.duckdb",
            lock_timeout_s=5.0,
            idle_release_s=0.1,
            max_hold_s=1.0,
            stat_cache_min_bytes=0,
        )
        try:
            assert t.config.lock_timeout_s == 5.0
            assert t.config.idle_release_s == 0.1
            assert t.config.max_hold_s == 1.0
            assert t.config.stat_cache_min_bytes == 0
        finally:
            t.close()

    def test_run_subdir_fn_option_is_honoured(self, base: Path) -> None:
        t = Tracker(base / "runs", run_subdir_fn=lambda run: f"by_id/{run.id}")
        t.begin_run("r1", "model")
        try:
            assert t.run_artifact_dir() == base / "runs" / "outputs" / "by_id" / "r1"
        finally:
            t.end_run()

    def test_reopening_an_existing_store_keeps_its_rows(self, base: Path) -> None:
        t1 = Tracker(base / "runs", db_path=base / "p.duckdb")
        with t1.start_run("r1", "m"):
            pass
        t1.close()
        t2 = Tracker(base / "runs", db_path=base / "p.duckdb")
        try:
            assert t2.get_run("r1") is not None
            assert t2.store.table_counts()["run"] == 1
        finally:
            t2.close()

    def test_repr_mentions_paths(self, tracker: Tracker, base: Path) -> None:
        text = repr(tracker)
        assert str(base / "runs") in text
        assert "prov.duckdb" in text


# --------------------------------------------------------------------------- #
# TrackerConfig and from_config
# --------------------------------------------------------------------------- #
class TestTrackerConfig:
    def test_defaults(self, base: Path) -> None:
        cfg = TrackerConfig(run_dir=base / "runs")
        assert cfg.run_dir == base / "runs"
        assert cfg.db_path is None
        assert cfg.mounts == {}
        assert cfg.schemas == ()
        assert cfg.hashing_strategy == "full"
        assert cfg.allow_external_paths is False
        assert cfg.run_subdir_fn is None
        assert cfg.lock_timeout_s > 0
        assert cfg.max_hold_s > 0
        assert cfg.idle_release_s >= 0
        assert cfg.stat_cache_min_bytes >= 0

    def test_constructing_a_config_writes_nothing(self, base: Path) -> None:
        TrackerConfig(run_dir=base / "runs", db_path=base / "p.duckdb")
        assert _tree(base) == []

    def test_config_is_frozen(self, base: Path) -> None:
        cfg = TrackerConfig(run_dir=base / "runs")
        with pytest.raises(ValidationError):
            cfg.hashing_strategy = "fast"  # type: ignore[misc]
        assert cfg.hashing_strategy == "full"

    def test_from_config_builds_an_equivalent_tracker(self, base: Path) -> None:
        cfg = TrackerConfig(
            run_dir=base / "runs",
            db_path=base / "p.duckdb",
            schemas=[HouseholdRow, LinkstatsRow],
            hashing_strategy="fast",
            run_subdir_fn=lambda run: f"flat_{run.id}",
        )
        t = Tracker.from_config(cfg)
        try:
            assert isinstance(t, Tracker)
            assert t.config is cfg
            assert t.run_dir == base / "runs"
            assert (base / "runs").is_dir()
            assert (base / "p.duckdb").is_file()
            assert set(t.registered_schemas) == {"HouseholdRow", "LinkstatsRow"}
            with t.start_run("r1", "m", config={"a": 1}):
                assert t.run_artifact_dir() == base / "runs" / "outputs" / "flat_r1"
            assert t.get_run("r1").status == "completed"
            assert t.get_run_config("r1") == {"a": 1}
        finally:
            t.close()

    def test_from_config_and_constructor_agree(self, base: Path) -> None:
        cfg = TrackerConfig(run_dir=base / "runs", db_path=base / "p.duckdb")
        t1 = Tracker.from_config(cfg)
        t2 = Tracker(base / "runs", db_path=base / "p.duckdb")
        try:
            assert t1.config == t2.config
            assert t1.run_dir == t2.run_dir
            assert t1.db_path == t2.db_path
        finally:
            t1.close()
            t2.close()

    def test_from_config_rejects_other_types(self, base: Path) -> None:
        with pytest.raises(TypeError, match="TrackerConfig"):
            Tracker.from_config({"run_dir": str(base / "runs")})  # type: ignore[arg-type]
        assert _tree(base) == []


# --------------------------------------------------------------------------- #
# Invalid options: ValueError naming the field, nothing created on disk
# --------------------------------------------------------------------------- #
INVALID_OPTIONS = [
    pytest.param({"run_dir": ""}, "run_dir", id="empty-run_dir"),
    pytest.param({"run_dir": "   "}, "run_dir", id="blank-run_dir"),
    pytest.param({"db_path": ":memory:"}, "db_path", id="memory-db"),
    pytest.param({"db_path": ""}, "db_path", id="empty-db_path"),
    pytest.param({"hashing_strategy": "sha1"}, "hashing_strategy", id="bad-hashing"),
    pytest.param({"hashing_strategy": ""}, "hashing_strategy", id="empty-hashing"),
    pytest.param({"mounts": {"1inputs": "DATA"}}, "mounts", id="mount-leading-digit"),
    pytest.param({"mounts": {"in puts": "DATA"}}, "mounts", id="mount-space"),
    pytest.param({"mounts": {"": "DATA"}}, "mounts", id="mount-empty-name"),
    pytest.param({"mounts": {"file": "DATA"}}, "mounts", id="mount-reserved-file"),
    pytest.param({"schemas": ["HouseholdRow"]}, "schemas", id="schema-string"),
    pytest.param({"schemas": [42]}, "schemas", id="schema-int"),
    pytest.param({"schemas": [NotASQLModel]}, "schemas", id="schema-not-sqlmodel"),
    pytest.param({"schemas": HouseholdRow}, "schemas", id="schema-bare-class"),
    pytest.param(
        {"schemas": [_make_schema_named("Row"), _make_schema_named("Row")]},
        "schemas",
        id="schema-duplicate-names",
    ),
    pytest.param({"schemas": [HouseholdRow, HouseholdRow]}, "schemas", id="schema-same-twice"),
    pytest.param({"project_root": ""}, "project_root", id="empty-project_root"),
    pytest.param({"lock_timeout_s": 0}, "lock_timeout_s", id="zero-lock-timeout"),
    pytest.param({"max_hold_s": -1}, "max_hold_s", id="negative-max-hold"),
    pytest.param({"stat_cache_min_bytes": -1}, "stat_cache_min_bytes", id="negative-min-bytes"),
    pytest.param({"no_such_option": 1}, "no_such_option", id="unknown-option"),
]


@pytest.mark.parametrize(
    ("option", "where"),
    [
        (
            "cache_mode",
            r"tracker\.run\(\.\.\.\) or begin_run\(\.\.\.\), directly or as CacheOptions",
        ),
        ("output_missing", r"tracker\.run\(\.\.\.\), directly or as OutputPolicyOptions"),
        ("runtime_kwargs", r"tracker\.run\(\.\.\.\), directly or as ExecutionOptions"),
        ("colour", r"the tracker's options are .*db_path"),
    ],
)
def test_an_unknown_tracker_keyword_says_where_it_belongs(
    base: Path, option: str, where: str
) -> None:
    with pytest.raises(ValueError, match=f"unexpected keyword argument '{option}'.*{where}"):
        Tracker(base / "runs", db_path=base / "p.duckdb", **{option: "x"})
    assert _tree(base) == []


def _resolve_placeholders(options: dict, base: Path) -> dict:
    out = dict(options)
    if "mounts" in out:
        out["mounts"] = {k: base / "data" if v == "DATA" else v for k, v in out["mounts"].items()}
    return out


class TestInvalidOptions:
    @pytest.mark.parametrize(("options", "field"), INVALID_OPTIONS)
    def test_tracker_rejects_and_writes_nothing(
        self, base: Path, options: dict, field: str
    ) -> None:
        kwargs = {"run_dir": base / "runs", "db_path": base / "db" / "p.duckdb"}
        kwargs.update(_resolve_placeholders(options, base))
        with pytest.raises(ValueError, match=field):
            Tracker(**kwargs)
        assert not (base / "runs").exists()
        assert not (base / "db").exists()
        assert _tree(base) == []

    @pytest.mark.parametrize(("options", "field"), INVALID_OPTIONS)
    def test_tracker_config_rejects(self, base: Path, options: dict, field: str) -> None:
        kwargs = {"run_dir": base / "runs", "db_path": base / "db" / "p.duckdb"}
        kwargs.update(_resolve_placeholders(options, base))
        if field == "mounts":
            # Mount *names* are validated when the tracker builds its path
            # resolver, which happens before anything is created.
            cfg = TrackerConfig(**kwargs)
            with pytest.raises(ValueError, match="mounts"):
                Tracker.from_config(cfg)
        else:
            with pytest.raises(ValueError, match=field):
                TrackerConfig(**kwargs)
        assert _tree(base) == []

    def test_empty_mount_root_is_rejected(
        self, base: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # An empty root must not silently mount the current directory.
        monkeypatch.chdir(base)
        with pytest.raises(ValueError, match="mounts"):
            Tracker(base / "runs", mounts={"inputs": ""})
        assert not (base / "runs").exists()

    def test_string_false_does_not_enable_external_paths(self, base: Path) -> None:
        # A non-bool "false" must never turn on writes outside run_dir: either it
        # is rejected at construction or it means False.
        try:
            t = Tracker(base / "runs", allow_external_paths="false")  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            assert "allow_external_paths" in str(exc)
            return
        outside = base / "outside"
        with pytest.raises(ValueError, match="artifact_dir"):
            t.begin_run("r1", "m", artifact_dir=outside)
        assert t.current_run is None

    def test_schemas_none_means_no_schemas(self, base: Path) -> None:
        t = Tracker(base / "runs", schemas=None)
        assert dict(t.registered_schemas) == {}

    def test_mounts_none_means_no_mounts(self, base: Path) -> None:
        t = Tracker(base / "runs", mounts=None)
        assert t.config.mounts == {}


# --------------------------------------------------------------------------- #
# Journal-only mode (db_path=None)
# --------------------------------------------------------------------------- #
class TestJournalOnly:
    @pytest.fixture
    def jtracker(self, base: Path) -> Tracker:
        return Tracker(base / "runs")

    def test_no_database_is_created(self, jtracker: Tracker, base: Path) -> None:
        assert jtracker.db_path is None
        assert jtracker.store is None
        assert jtracker.engine is None
        with jtracker.start_run("r1", "m"):
            pass
        assert not [p for p in base.rglob("*") if p.suffix in (".duckdb", ".db", ".wal")]

    def test_runs_write_the_journal(self, jtracker: Tracker, base: Path) -> None:
        out = base / "runs" / "out.txt"
        with jtracker.start_run("r1", "m", config={"alpha": 1}, tags=["t"]):
            out.write_text("hello")
            jtracker.log_artifact(out, key="out")
            jtracker.log_meta(score=0.5)
        snapshot = base / "runs" / "consist_runs" / "r1.json"
        latest = base / "runs" / "consist.json"
        assert snapshot.is_file()
        assert latest.is_file()
        data = json.loads(snapshot.read_text())
        assert data["run"]["id"] == "r1"
        assert data["run"]["status"] == "completed"
        assert data["run"]["meta"]["score"] == 0.5
        assert data["config"] == {"alpha": 1}
        assert [a["key"] for a in data["outputs"]] == ["out"]
        assert json.loads(latest.read_text())["run"]["id"] == "r1"

    def test_consist_json_points_at_latest_run(self, jtracker: Tracker, base: Path) -> None:
        with jtracker.start_run("first", "m"):
            pass
        with jtracker.start_run("second", "m"):
            pass
        latest = json.loads((base / "runs" / "consist.json").read_text())
        assert latest["run"]["id"] == "second"
        assert latest["run"]["status"] == "completed"

    def test_query_methods_degrade(self, jtracker: Tracker, base: Path) -> None:
        inp = base / "in.csv"
        inp.write_text("a,b\n1,2\n")
        with jtracker.start_run("r1", "m", inputs=[inp]):
            out = base / "runs" / "o.txt"
            out.write_text("x")
            art = jtracker.log_artifact(out, key="o")
        assert jtracker.get_run("r1") is None
        assert jtracker.get_run_inputs("r1") == {}
        assert jtracker.get_run_outputs("r1") == {}
        assert jtracker.get_artifact("o") is None
        assert jtracker.get_artifact(art.id) is None
        assert jtracker.get_artifact(str(art.id)) is None
        assert jtracker.engine is None
        with pytest.raises(RuntimeError, match="db_path"):
            jtracker.run_query("SELECT 1")

    def test_get_run_record_reads_the_journal(self, jtracker: Tracker, base: Path) -> None:
        with jtracker.start_run("r1", "m", config={"k": [1, 2]}, year=2030):
            jtracker.log_meta(note="hi")
        record = jtracker.get_run_record("r1")
        assert isinstance(record, ConsistRecord)
        assert isinstance(record.run, Run)
        assert record.run.id == "r1"
        assert record.run.status == "completed"
        assert record.run.year == 2030
        assert record.run.meta["note"] == "hi"
        assert record.config == {"k": [1, 2]}
        assert jtracker.get_run_config("r1") == {"k": [1, 2]}
        # A fresh journal-only tracker on the same run_dir reads it too.
        again = Tracker(base / "runs")
        assert again.get_run_record("r1").run.status == "completed"
        assert again.get_run_record("missing", allow_missing=True) is None
        with pytest.raises(FileNotFoundError):
            again.get_run_record("missing")

    def test_existing_run_id_rejected_from_journal(self, jtracker: Tracker, base: Path) -> None:
        with jtracker.start_run("r1", "m"):
            pass
        before = (base / "runs" / "consist_runs" / "r1.json").read_bytes()
        with pytest.raises(ValueError, match="run_id"):
            jtracker.begin_run("r1", "m")
        assert jtracker.current_run is None
        assert (base / "runs" / "consist_runs" / "r1.json").read_bytes() == before

    def test_failed_run_is_journaled(self, jtracker: Tracker, base: Path) -> None:
        with pytest.raises(KeyError), jtracker.start_run("r1", "m"):
            raise KeyError("missing-thing")
        data = json.loads((base / "runs" / "consist_runs" / "r1.json").read_text())
        assert data["run"]["status"] == "failed"
        assert "missing-thing" in data["run"]["meta"]["error"]
        assert jtracker.last_run.run.status == "failed"


# --------------------------------------------------------------------------- #
# Registered schemas
# --------------------------------------------------------------------------- #
class TestRegisteredSchemas:
    @pytest.fixture
    def stracker(self, base: Path) -> Tracker:
        return Tracker(base / "runs", schemas=[HouseholdRow, LinkstatsRow])

    def test_registered_by_class_name(self, stracker: Tracker) -> None:
        schemas = stracker.registered_schemas
        assert set(schemas) == {"HouseholdRow", "LinkstatsRow"}
        assert schemas["HouseholdRow"] is HouseholdRow
        assert schemas["LinkstatsRow"] is LinkstatsRow
        assert "HouseholdRow" in schemas
        assert len(schemas) == 2

    def test_mapping_is_read_only(self, stracker: Tracker) -> None:
        schemas = stracker.registered_schemas
        with pytest.raises(TypeError):
            schemas["Other"] = HouseholdRow  # type: ignore[index]
        with pytest.raises(TypeError):
            del schemas["HouseholdRow"]  # type: ignore[attr-defined]
        assert set(stracker.registered_schemas) == {"HouseholdRow", "LinkstatsRow"}

    def test_caller_list_mutation_does_not_leak(self, base: Path) -> None:
        given = [HouseholdRow]
        t = Tracker(base / "runs", schemas=given)
        given.append(LinkstatsRow)
        assert set(t.registered_schemas) == {"HouseholdRow"}

    def test_get_registered_schema_found(self, stracker: Tracker) -> None:
        assert stracker.get_registered_schema("HouseholdRow") is HouseholdRow
        assert stracker.get_registered_schema("LinkstatsRow", default=None) is LinkstatsRow

    def test_get_registered_schema_missing_returns_default(self, stracker: Tracker) -> None:
        assert stracker.get_registered_schema("Unknown") is None
        assert stracker.get_registered_schema("Unknown", default=LinkstatsRow) is LinkstatsRow
        # Exact, case-sensitive matching.
        assert stracker.get_registered_schema("householdrow") is None
        assert stracker.get_registered_schema(" HouseholdRow") is None

    @pytest.mark.parametrize("bad", [None, 1, HouseholdRow, b"HouseholdRow", ["HouseholdRow"]])
    def test_get_registered_schema_non_str_is_type_error(self, stracker: Tracker, bad) -> None:
        with pytest.raises(TypeError, match="schema_name"):
            stracker.get_registered_schema(bad)  # type: ignore[arg-type]

    @pytest.mark.parametrize("bad", ["", "   ", "\t\n"])
    def test_get_registered_schema_blank_is_value_error(self, stracker: Tracker, bad: str) -> None:
        with pytest.raises(ValueError, match="schema_name"):
            stracker.get_registered_schema(bad)

    def test_no_schemas_registered(self, base: Path) -> None:
        t = Tracker(base / "runs")
        assert len(t.registered_schemas) == 0
        assert t.get_registered_schema("HouseholdRow") is None
        with pytest.raises(TypeError):
            t.registered_schemas["HouseholdRow"] = HouseholdRow  # type: ignore[index]
