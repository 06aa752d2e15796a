"""ActivitySim configuration through the tracker, in a model repository.

The config tree (``configs/local`` over ``configs/base``) lies untracked in
the project's git repository, next to the committed model code, with the
run directory and database inside the repository too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_activitysim import write_tree

from _support import git, make_model_project
from consist import Tracker
from consist.integrations.activitysim import ActivitySimConfigAdapter


def simulate(sample: int = 100) -> None:
    """Stands for `activitysim run -c local -c base`: reads its config itself."""


@pytest.fixture
def project(tmp_path: Path) -> tuple[Tracker, ActivitySimConfigAdapter, list[Path]]:
    repo = make_model_project(tmp_path / "model")
    dirs = write_tree(repo / "configs")
    tracker = Tracker(repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo)
    yield tracker, ActivitySimConfigAdapter(root_dirs=dirs), dirs
    tracker.close()


def _coefficient(tracker: Tracker, run_id: str, name: str) -> float:
    rows = tracker.run_query(
        "SELECT value FROM global_tables.asim_coefficients "
        f"WHERE consist_run_id = '{run_id}' AND coefficient_name = '{name}'"
    )
    assert len(rows) == 1, rows
    return rows[0][0]


def test_identical_tree_hits_a_coefficient_edit_misses_and_names_its_file(project) -> None:
    tracker, asim, (local, base) = project
    first = tracker.run(fn=simulate, name="activitysim", adapter=asim)
    assert not first.cache_hit
    assert first.run.meta["config_adapter"] == "activitysim"
    inputs = tracker.get_run_inputs(first.run.id)
    assert inputs["trip_mode_choice_coefficients.csv"].path == (
        local / "trip_mode_choice_coefficients.csv"
    )
    assert inputs["settings.yaml"].meta["config_file_role"] == "settings"
    # The merged settings.yaml was read from both layers: both are inputs.
    assert inputs["settings.yaml"].path == local / "settings.yaml"
    assert inputs["settings.yaml@2"].path == base / "settings.yaml"
    assert inputs["settings.yaml@2"].meta["config_role"] == "config_layer"
    # Every resolved key is a config value of the run (local's sample size wins).
    assert tracker.get_config_value(first.run.id, "settings.households_sample_size") == 100
    assert tracker.get_config_value(first.run.id, "models.trip_scheduling.max_iterations") == 5

    # Comments and layout only: same identity, a hit.
    text = (base / "tour_mode_choice.yaml").read_text()
    (base / "tour_mode_choice.yaml").write_text("# reformatted\n" + text.replace(": ", ":   "))
    assert tracker.run(fn=simulate, name="activitysim", adapter=asim).cache_hit

    # One coefficient in the overriding directory: a miss that names the file.
    path = local / "trip_mode_choice_coefficients.csv"
    path.write_text(path.read_text().replace("coef_ivt,-0.025", "coef_ivt,-0.03"))
    second = tracker.run(fn=simulate, name="activitysim", adapter=asim)
    assert not second.cache_hit
    changed = second.run.meta["cache_miss_explanation"]["identity_inputs"]
    assert list(changed) == ["activitysim:trip_mode_choice_coefficients.csv"]
    assert "code" not in second.run.meta["cache_miss_explanation"]

    # The coefficients are queryable by run and differ between the two runs.
    assert _coefficient(tracker, first.run.id, "coef_ivt") == pytest.approx(-0.025)
    assert _coefficient(tracker, second.run.id, "coef_ivt") == pytest.approx(-0.03)
    assert _coefficient(tracker, second.run.id, "coef_walk") == pytest.approx(-0.05)


def test_override_run_from_a_base_run_id(project, tmp_path: Path) -> None:
    tracker, asim, _ = project
    base_run = tracker.run(fn=simulate, name="activitysim", adapter=asim)
    bundle = tracker.get_config_bundle(base_run.run.id, adapter=asim)
    assert (bundle / "settings.yaml").is_file()

    result = tracker.run_with_config_overrides(
        adapter=asim,
        base_run_id=base_run.run.id,
        overrides={"coefficients.coef_ivt": -0.05, "settings.households_sample_size": 500},
        output_dir=tmp_path / "override_tree",
        fn=simulate,
        name="activitysim",
    )
    assert not result.cache_hit
    assert _coefficient(tracker, result.run.id, "coef_ivt") == pytest.approx(-0.05)
    replanned = asim.plan([tmp_path / "override_tree"])
    assert replanned.values["settings"]["households_sample_size"] == 500
    # Everything else is the base configuration.
    base_plan = asim.plan(None)
    assert replanned.values["models"] == base_plan.values["models"]
    resolved = result.run.meta["resolved_config_identity"]
    assert resolved["adapter"] == "activitysim" and resolved["mode"] == "auto"
    assert resolved["path"] == str((tmp_path / "override_tree").resolve())
    assert resolved["digest"].startswith("blake3:")


def test_committed_config_tree_counts_by_content_not_as_code(tmp_path: Path) -> None:
    """Configs committed in the model's repository, edited in the work tree."""
    repo = make_model_project(tmp_path / "model")
    dirs = write_tree(repo / "configs")
    git(repo, "add", "configs")
    git(repo, "commit", "-q", "-m", "configs")
    tracker = Tracker(repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo)
    asim = ActivitySimConfigAdapter(root_dirs=dirs)
    first = tracker.run(fn=simulate, name="activitysim", adapter=asim)
    local, base = dirs

    # A comment in a tracked YAML: git sees a change, identity does not.
    settings = base / "settings.yaml"
    settings.write_text("# note for reviewers\n" + settings.read_text())
    assert "configs/base/settings.yaml" in git(repo, "status", "--porcelain")
    assert tracker.run(fn=simulate, name="activitysim", adapter=asim).cache_hit

    # A coefficient: a miss that names the config file, not code.
    path = local / "trip_mode_choice_coefficients.csv"
    path.write_text(path.read_text().replace("coef_ivt,-0.025", "coef_ivt,-0.03"))
    second = tracker.run(fn=simulate, name="activitysim", adapter=asim)
    explanation = second.run.meta["cache_miss_explanation"]
    assert not second.cache_hit and "code" not in explanation
    assert list(explanation["identity_inputs"]) == ["activitysim:trip_mode_choice_coefficients.csv"]

    # Code outside the config tree still counts.
    (repo / "model.py").write_text("def simulate():\n    return 2\n")
    third = tracker.run(fn=simulate, name="activitysim", adapter=asim)
    assert not third.cache_hit and "code" in third.run.meta["cache_miss_explanation"]
    assert first.run.id != second.run.id
    tracker.close()
