"""The query, RunSet, diff, facet and lineage API through a Tracker, on DuckDB and PostgreSQL.

The same workflow is recorded into a DuckDB file and into a fresh database of
the session's throwaway PostgreSQL server; every answer must be the same
(run ids differ, so answers are compared by run name and content).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import consist
from consist import Tracker


def _grow(households: Path, scale: float) -> Path:
    rows = households.read_text().splitlines()
    out = consist.current_tracker().output_path("grown", ext="csv")
    out.write_text("\n".join([rows[0], *[f"{r},{scale}" for r in rows[1:]]]) + "\n")
    return out


def _summarise(grown: Path) -> Path:
    out = consist.current_tracker().output_path("summary", ext="csv")
    out.write_text(f"rows\n{len(grown.read_text().splitlines()) - 1}\n")
    return out


def _record(tracker: Tracker, data: Path) -> dict[str, str]:
    ids = {}
    for scenario, scale in (("base", 1.0), ("policy", 1.5)):
        for year in (2030, 2040):
            grown = tracker.run(
                _grow,
                name="grow",
                inputs={"households": data},
                config={"scale": scale},
                facet={"scenario": scenario, "demand": {"scale": scale}},
                tags=[scenario],
                year=year,
                outputs=["grown"],
            )
            summary = tracker.run(
                _summarise,
                name="summarise",
                inputs={"grown": grown.outputs["grown"]},
                tags=[scenario],
                year=year,
                outputs=["summary"],
            )
            ids[f"grow_{scenario}_{year}"] = grown.run.id
            ids[f"summarise_{scenario}_{year}"] = summary.run.id
    return ids


def _answers(tracker: Tracker, ids: dict[str, str]) -> dict[str, Any]:
    names = {v: k for k, v in ids.items()}

    def named(runs: Any) -> list[str]:
        return [names[r.id] for r in runs]

    base = tracker.run_set("base", model="grow", tags=["base"])
    policy = tracker.run_set("policy", model="grow", tags=["policy"])
    pairs = base.latest(by="year").align(policy.latest(by="year"), on="year")
    diffs = base.latest(by="year").config_diffs(policy.latest(by="year"), on="year")
    lineage = tracker.get_artifact_lineage("summary")
    history = tracker.history(limit=10)
    frame = base.to_frame(facets=["demand.scale"])
    return {
        "find_runs": sorted(named(tracker.find_runs(model="grow"))),
        "find_runs_tag_year": named(tracker.find_runs(tags=["policy"], year=2040)),
        "latest": names[tracker.find_latest_run(model="summarise").id],
        "history_models": sorted(history["model_name"].tolist()),
        "run_set": sorted(named(base)),
        "filter": named(base.filter(year=2040)),
        "split_by": {k: sorted(named(v)) for k, v in base.split_by("scenario").items()},
        "pairs": sorted((names[a.id], names[b.id]) for a, b in pairs),
        "config_diffs": sorted(
            str(sorted((k, v.get("status")) for k, v in d["changes"].items())) for d in diffs
        ),
        "diff_runs": tracker.diff_runs(ids["grow_base_2030"], ids["grow_policy_2030"])["changes"],
        "frame": sorted(frame["facet.demand.scale"].tolist()),
        "lineage_chain": (
            lineage["producing_run"]["model_name"],
            [i["input_key"] for i in lineage["producing_run"]["inputs"]],
            lineage["producing_run"]["inputs"][0]["producing_run"]["model_name"],
        ),
        "run_lineage_inputs": sorted(
            i["input_key"] for i in tracker.get_run_lineage(ids["summarise_policy_2040"])["inputs"]
        ),
    }


@pytest.mark.slow
def test_queries_runsets_diffs_and_lineage_answer_the_same_on_both_engines(
    tmp_path: Path, pg_url: str
) -> None:
    data = tmp_path / "households.csv"
    data.write_text("hh\n1\n2\n3\n")
    answers = {}
    for engine, where in (
        ("duckdb", {"db_path": tmp_path / "p.duckdb"}),
        ("pg", {"db_url": pg_url}),
    ):
        tracker = Tracker(tmp_path / f"runs_{engine}", project_root=tmp_path, **where)
        try:
            ids = _record(tracker, data)
            answers[engine] = _answers(tracker, ids)
            rerun = tracker.run(
                _grow,
                name="grow",
                inputs={"households": data},
                config={"scale": 1.5},
                facet={"scenario": "policy", "demand": {"scale": 1.5}},
                tags=["policy"],
                year=2040,
                outputs=["grown"],
            )
            assert rerun.cache_hit
        finally:
            tracker.close()
    duck, pg = answers["duckdb"], answers["pg"]
    assert duck["find_runs"] == [
        "grow_base_2030",
        "grow_base_2040",
        "grow_policy_2030",
        "grow_policy_2040",
    ]
    assert duck["diff_runs"]  # the scale and scenario differ
    assert duck["pairs"] == [
        ("grow_base_2030", "grow_policy_2030"),
        ("grow_base_2040", "grow_policy_2040"),
    ]
    assert len(duck["config_diffs"]) == 2 and "changed" in duck["config_diffs"][0]
    assert duck["split_by"] == {"base": ["grow_base_2030", "grow_base_2040"]}
    assert duck["frame"] == [1.0, 1.0] and duck["filter"] == ["grow_base_2040"]
    assert duck["run_lineage_inputs"] == ["grown"]
    assert duck["lineage_chain"] == ("summarise", ["grown"], "grow")
    for key in duck:
        assert pg[key] == duck[key], key
