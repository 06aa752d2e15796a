"""``consist db export``, ``db merge`` and ``db purge`` on the shared project store."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pytest

from _support import make_model_project
from consist import Tracker

if TYPE_CHECKING:  # pragma: no cover
    from conftest import Outcome, Project


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def query(db: Path, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return sorted(con.execute(sql, params or []).fetchall(), key=repr)
    finally:
        con.close()


@dataclass
class Store:
    """A second project's store."""

    root: Path
    db_path: Path
    run_dir: Path

    def args(self) -> list[str]:
        return ["--db-path", str(self.db_path), "--run-dir", str(self.run_dir)]


def second_project(root: Path, *, scenario: str | None = None) -> Store:
    """A second model project; its store is empty, or holds one scenario header."""
    repo = make_model_project(root)
    tracker = Tracker(repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo)
    if scenario is not None:
        with tracker.scenario(scenario, config={"policy": "strict"}):
            pass
    tracker.close()
    return Store(root=repo, db_path=repo / "provenance.duckdb", run_dir=repo / "runs")


@pytest.fixture
def fresh(tmp_path: Path) -> Store:
    """A second model project with an empty store."""
    return second_project(tmp_path / "fresh")


def test_export_writes_the_step_and_everything_upstream(
    project: Project, cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    runs = project.runs
    before = sha(project.db_path)
    out = cli("db", "export", runs["d2040"], "--out", str(tmp_path / "shard"), *project.args())
    assert out.code == 0, out.stderr
    assert f"to {tmp_path / 'shard'}" in out.stdout
    assert "consist db merge" in out.stdout
    # demand_2040 <- demand_2030 <- households (and its cache hit); both steps' header.
    upstream = {runs["d2040"], runs["d2030"], runs["first"], runs["hit"], "baseline"}
    for run_id in upstream:
        assert run_id in out.stdout
    assert runs["scaled"] not in out.stdout and runs["failed"] not in out.stdout
    assert sha(project.db_path) == before  # opened read-only: the store is untouched

    data = cli(
        "db", "export", runs["d2030"], "--out", str(tmp_path / "s2"), "--json", *project.args()
    ).json()
    assert data["format"] == "consist-shard" and data["root_run_id"] == runs["d2030"]
    assert set(data["run_ids"]) == upstream - {runs["d2040"]}
    assert data["counts"]["run"] == 4 and data["counts"]["run_artifact_link"] == 6
    assert set(data["journal"]) == set(data["run_ids"])
    shard = Path(data["path"])
    assert sorted(p.name for p in shard.iterdir()) == ["journal", "shard.json", "store.duckdb"]
    # The shard's store is a Consist store the CLI can read.
    listed = cli(
        "runs", "--json", "--db-path", str(shard / "store.duckdb"), "--run-dir", str(shard)
    )
    assert {r["id"] for r in listed.json()} == set(data["run_ids"])
    # Merging a shard back into the store it came from changes nothing.
    back = cli("db", "merge", str(shard), "--json", *project.args())
    assert back.code == 0 and back.json()["changed"] is False
    assert set(back.json()["skipped_runs"]) == set(data["run_ids"])


def test_merge_through_a_subprocess_brings_every_row_and_is_idempotent(
    project: Project,
    fresh: Store,
    cli: Callable[..., Outcome],
    run_consist: Callable[..., Outcome],
    tmp_path: Path,
) -> None:
    runs = project.runs
    shard = tmp_path / "shard"
    assert cli("db", "export", runs["d2040"], "--out", str(shard), *project.args()).code == 0
    upstream = {runs["d2040"], runs["d2030"], runs["first"], runs["hit"], "baseline"}

    merged = run_consist("db", "merge", str(shard), "--json", *fresh.args())
    assert merged.code == 0, merged.stderr
    data = merged.json()
    assert data["changed"] is True and data["skipped_runs"] == []
    assert set(data["added_runs"]) == upstream
    assert data["inserted"]["run"] == 5 and data["inserted"]["run_artifact_link"] == 8
    assert set(data["journal_written"]) == upstream

    # Every upstream run, artifact and link arrived as recorded.
    ids = sorted(upstream)
    for sql in (
        "SELECT * FROM run WHERE id IN (SELECT unnest($1))",
        # lineage_group: the label of the link's group in the store that holds it
        # (which root survived depends on the order runs were written in).
        "SELECT * EXCLUDE (lineage_group) FROM run_artifact_link "
        "WHERE run_id IN (SELECT unnest($1))",
        "SELECT list(DISTINCT run_id ORDER BY run_id) FROM run_artifact_link "
        "WHERE run_id IN (SELECT unnest($1)) GROUP BY lineage_group ORDER BY 1",
        "SELECT * FROM artifact WHERE id IN (SELECT artifact_id FROM run_artifact_link "
        "WHERE run_id IN (SELECT unnest($1)))",
    ):
        assert query(fresh.db_path, sql, [ids]) == query(project.db_path, sql, [ids])
    assert query(fresh.db_path, "SELECT count(*) FROM run") == [(5,)]
    shown = cli("show", runs["d2040"], "--json", *fresh.args()).json()
    assert shown["config"] == {"year": 2040}  # from the merged journal snapshot
    assert [a["key"] for a in shown["inputs"]] == ["persons"]

    again = run_consist("db", "merge", str(shard), *fresh.args())
    assert again.code == 0, again.stderr
    assert "nothing to merge: all 5 run(s)" in again.stdout
    again_json = cli("db", "merge", str(shard), "--json", *fresh.args()).json()
    assert again_json["changed"] is False and again_json["added_runs"] == []
    assert set(again_json["skipped_runs"]) == upstream
    assert set(again_json["inserted"].values()) == {0}
    assert query(fresh.db_path, "SELECT count(*) FROM run") == [(5,)]
    assert query(fresh.db_path, "SELECT count(*) FROM run_artifact_link") == [(8,)]


def test_merge_conflict_is_reported_and_writes_nothing(
    project: Project, cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    shard = tmp_path / "shard"
    assert (
        cli("db", "export", project.runs["d2040"], "--out", str(shard), *project.args()).code == 0
    )
    # Another project recorded its own scenario "baseline" (same id, other content).
    other = second_project(tmp_path / "other", scenario="baseline")
    runs_before = query(other.db_path, "SELECT id, updated_ns FROM run")
    out = cli("db", "merge", str(shard), *other.args())
    assert out.code == 1
    assert "conflicts with this store" in out.stderr and "run baseline" in out.stderr
    assert "nothing was merged" in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    as_json = cli("db", "merge", str(shard), "--json", *other.args())
    assert as_json.code == 1
    conflicts = as_json.json()["conflicts"]
    assert [(c["kind"], c["id"]) for c in conflicts] == [("run", "baseline")]
    assert "created_at" in conflicts[0]["fields"]
    assert query(other.db_path, "SELECT id, updated_ns FROM run") == runs_before
    assert not (other.run_dir / "consist_runs" / f"{project.runs['d2040']}.json").exists()


def test_export_and_merge_errors(
    project: Project, fresh: Store, cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    unknown = cli("db", "export", "nope", "--out", str(tmp_path / "s"), *project.args())
    assert unknown.code == 5 and "no run 'nope'" in unknown.stderr
    (tmp_path / "taken").mkdir()
    taken = cli("db", "export", project.runs["first"], "--out", str(tmp_path / "taken"),
                *project.args())  # fmt: skip
    assert taken.code == 2 and "--out" in taken.stderr and "already exists" in taken.stderr
    missing_opt = cli("db", "export", project.runs["first"], *project.args())
    assert missing_opt.code == 2 and "--out" in missing_opt.stderr
    not_shard = cli("db", "merge", str(tmp_path / "taken"), *fresh.args())
    assert not_shard.code == 2 and "consist db export" in not_shard.stderr
    shard = tmp_path / "shard"
    assert (
        cli("db", "export", project.runs["first"], "--out", str(shard), *project.args()).code == 0
    )
    no_store = cli("db", "merge", str(shard), "--db-path", str(tmp_path / "x.duckdb"))
    assert no_store.code == 3 and "x.duckdb" in no_store.stderr
    assert not (tmp_path / "x.duckdb").exists()
    assert cli("db", "merge", "--help").stdout.count("Example: consist db merge") == 1


def _files(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}


def test_purge_dry_run_changes_nothing_and_refuses_a_consumed_run(
    project: Project, cli: Callable[..., Outcome]
) -> None:
    runs = project.runs
    db_before, files_before = sha(project.db_path), _files(project.root)
    out = cli("db", "purge", runs["first"], *project.args())
    assert out.code == 1
    assert "refused" in out.stdout and "--cascade" in out.stderr
    assert f"consumes persons of {runs['first']}" in out.stdout
    assert f"cache hit handed persons of {runs['first']}" in out.stdout
    plan = cli("db", "purge", runs["first"], "--json", *project.args())
    assert plan.code == 1
    data = plan.json()
    assert data["blocked"] is True and data["executed"] is False
    assert {r["id"] for r in data["blocked_by"]} == {runs["d2030"], runs["hit"]}

    dry = cli("db", "purge", runs["scaled"], *project.args())
    assert dry.code == 0, dry.stderr
    assert "dry run" in dry.stdout and "--yes" in dry.stdout
    assert f"outputs/households/{runs['scaled']}/persons.parquet" in dry.stdout
    assert "households.csv" in dry.stdout and "an input, never deleted" in dry.stdout
    assert sha(project.db_path) == db_before and _files(project.root) == files_before


def test_purge_yes_removes_the_run_its_outputs_and_journal_only(
    project: Project, cli: Callable[..., Outcome]
) -> None:
    runs = project.runs
    households = project.root / "data" / "households.csv"
    output = project.run_dir / "outputs" / "households" / runs["scaled"] / "persons.parquet"
    assert output.is_file()
    files_before = _files(project.root)
    out = cli("db", "purge", runs["scaled"], "--yes", "--json", *project.args())
    assert out.code == 0, out.stderr
    data = out.json()
    assert data["executed"] is True and [r["id"] for r in data["runs"]] == [runs["scaled"]]
    assert data["files"] == [str(output)]
    assert data["deleted_rows"]["run"] == 1 and data["deleted_rows"]["run_artifact_link"] == 2
    gone = {str(output), str(project.run_dir / "consist_runs" / f"{runs['scaled']}.json")}
    assert _files(project.root) == files_before - gone
    assert households.is_file()
    assert cli("show", runs["scaled"], *project.args()).code == 5
    assert cli("show", runs["first"], *project.args()).code == 0


def test_purge_cascade_purges_the_downstream_runs(
    project: Project, cli: Callable[..., Outcome]
) -> None:
    runs = project.runs
    households = project.root / "data" / "households.csv"
    csv_before = households.read_bytes()
    out = cli("db", "purge", runs["first"], "--cascade", "--yes", *project.args())
    assert out.code == 0, out.stderr
    assert "purged 4 run(s)" in out.stdout
    for run_id in (runs["d2030"], runs["d2040"], runs["hit"]):
        assert run_id in out.stdout
    left = {r["id"] for r in cli("runs", "--json", *project.args()).json()}
    assert left == {runs["scaled"], runs["failed"], "baseline"}
    assert households.read_bytes() == csv_before  # outside run_dir: never deleted
    outputs = project.run_dir / "outputs"
    assert not (outputs / "demand_2030").exists() and not (outputs / "demand_2040").exists()
    assert (outputs / "households" / runs["scaled"] / "persons.parquet").is_file()
    # The scenario header stays; its purged steps are gone from it.
    steps = cli("runs", "--scenario", "baseline", "--json", *project.args()).json()
    assert steps == []


def test_purge_unknown_run_and_help(project: Project, cli: Callable[..., Outcome]) -> None:
    out = cli("db", "purge", "nope", "--yes", *project.args())
    assert out.code == 5 and "no run 'nope'" in out.stderr
    helped = cli("db", "purge", "--help")
    assert helped.code == 0 and "Example: consist db purge" in helped.stdout
    assert "--cascade" in helped.stdout and "--yes" in helped.stdout
    assert '"files": ["path", ...]' in helped.stdout  # the --json shape survives rich markup


def test_purge_with_the_wrong_run_dir_deletes_no_stranger_file(
    project: Project, cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    runs = project.runs
    decoy_dir = tmp_path / "elsewhere"
    decoy = decoy_dir / "outputs" / "households" / runs["scaled"] / "persons.parquet"
    decoy.parent.mkdir(parents=True)
    decoy.write_bytes(b"not the recorded file")
    args = ["--db-path", str(project.db_path), "--run-dir", str(decoy_dir)]
    out = cli("db", "purge", runs["scaled"], "--yes", *args)
    assert out.code == 0, out.stderr
    assert "size differs from the recorded" in out.stdout
    assert f"no journal snapshot under {decoy_dir}" in out.stdout
    assert decoy.read_bytes() == b"not the recorded file"
    real = project.run_dir / "outputs" / "households" / runs["scaled"] / "persons.parquet"
    assert real.is_file()  # outside this --run-dir: untouched
    assert cli("show", runs["scaled"], *project.args()).code == 5
