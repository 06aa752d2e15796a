"""BEAM config adapter: HOCON includes, substitutions, inputs, identity, materialize."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from consist.core.identity.hashing import hash_bytes
from consist.core.run.config_plan import ConfigAdapter, ConfigAdapterOptions, ConfigPlan
from consist.integrations.beam import RESOLVED_NAME, BeamConfigAdapter

MAIN = """\
# BEAM scenario: beamville
include "common.conf"

beam {
  agentsim {
    agentSampleSizeAsFractionOfPopulation = 0.5
    simulationName = "beamville"
  }
  physsim.networkFile = ${common.baseDir}"/network.csv"
  outputs.baseOutputDir = ${common.baseDir}"/output"
  agentsim.agents.vehicles.vehicleTypesFilePath = ${common.baseDir}"/vehicleTypes.csv"
  timeout = 90 minutes
  "odd.key" = 3
  routing { include "routing.conf" }
}
"""

COMMON = """\
common {
  baseDir = "inputs"
}
beam.agentsim.firstIteration = 0
beam.agentsim.lastIteration = 2
beam.agentsim.agentSampleSizeAsFractionOfPopulation = 0.1
"""

ROUTING = """\
baseDate = "2017-09-22T00:00:00-07:00"
transitOnStreetNetwork = true
"""

NETWORK = "id,from,to,length\n1,a,b,10.5\n2,b,c,3.25\n"


def build(root: Path) -> tuple[Path, Path]:
    """scenario/ (beam.conf, inputs/network.csv) and common/ (common.conf, routing.conf)."""
    scenario, common = root / "scenario", root / "common"
    (scenario / "inputs").mkdir(parents=True)
    common.mkdir()
    (scenario / "beam.conf").write_text(MAIN)
    (common / "common.conf").write_text(COMMON)
    (common / "routing.conf").write_text(ROUTING)
    (scenario / "inputs" / "network.csv").write_text(NETWORK)
    return scenario, common


def plan_of(dirs: list[Path], **options: bool) -> ConfigPlan:
    return BeamConfigAdapter(root_dirs=dirs).plan(None, ConfigAdapterOptions(**options))


def digests(plan: ConfigPlan) -> dict[str, str]:
    return {f.name: f.digest for f in plan.files}


def rows(plan: ConfigPlan) -> dict[str, dict[str, object]]:
    (table,) = plan.tables
    assert table.name == "beam_config"
    return {row["key"]: row for row in table.rows}


def test_includes_and_substitutions_resolved(tmp_path: Path) -> None:
    scenario, common = build(tmp_path)
    adapter = BeamConfigAdapter(root_dirs=[scenario, common])
    assert isinstance(adapter, ConfigAdapter)
    plan = adapter.plan([scenario, common], ConfigAdapterOptions())

    agentsim = plan.values["beam"]["agentsim"]
    assert agentsim["agentSampleSizeAsFractionOfPopulation"] == 0.5  # main overrides common
    assert agentsim["lastIteration"] == 2  # from the include
    assert plan.values["beam"]["physsim"]["networkFile"] == "inputs/network.csv"
    assert plan.values["beam"]["routing"]["transitOnStreetNetwork"] is True
    assert plan.values["beam"]["timeout"] == "90 minutes"
    assert plan.values["beam"]["odd.key"] == 3  # a quoted key is one segment

    roles = {f.name: f.role for f in plan.files}
    assert roles == {
        "beam.conf": "primary",
        "common.conf": "include",
        "routing.conf": "include",
        "inputs/network.csv": "input",
        RESOLVED_NAME: "resolved",
    }
    by_name = {f.name: f for f in plan.files}
    assert by_name["common.conf"].path == (common / "common.conf").resolve()
    assert by_name["inputs/network.csv"].digest == hash_bytes(NETWORK.encode())
    assert plan.missing == ["inputs/vehicleTypes.csv"]  # referenced, held by no directory

    table = rows(plan)
    sample = table["beam.agentsim.agentSampleSizeAsFractionOfPopulation"]
    assert json.loads(sample["value"]) == 0.5 and sample["source"] == "beam.conf"
    assert table["beam.agentsim.lastIteration"]["source"] == "common.conf"
    assert table["common.baseDir"] == {
        "key": "common.baseDir",
        "value": '"inputs"',
        "source": "common.conf",
    }
    assert table["beam.physsim.networkFile"]["source"] == "beam.conf"
    assert table['beam."odd.key"']["value"] == "3"
    assert table["beam.routing.baseDate"]["source"] is None  # included inside an object
    assert plan.tables[0].source == "beam.conf"


def test_include_found_next_to_including_file_first(tmp_path: Path) -> None:
    scenario, common = build(tmp_path)
    # a decoy routing.conf in the first config directory: common.conf's own directory wins
    (scenario / "routing.conf").write_text('baseDate = "decoy"\n')
    plan = BeamConfigAdapter(root_dirs=[scenario, common], primary_config="beam.conf").plan(
        None, ConfigAdapterOptions()
    )
    assert plan.values["beam"]["routing"]["baseDate"] == "decoy"  # included from beam.conf
    (scenario / "beam.conf").write_text(MAIN.replace('{ include "routing.conf" }', "{}"))
    (common / "common.conf").write_text(COMMON + 'beam.routing { include "routing.conf" }\n')
    plan = BeamConfigAdapter(root_dirs=[scenario, common], primary_config="beam.conf").plan(
        None, ConfigAdapterOptions()
    )
    assert plan.values["beam"]["routing"]["baseDate"].startswith("2017")
    assert {f.name: f.path for f in plan.files}["routing.conf"] == (
        common / "routing.conf"
    ).resolve()


def test_whitespace_and_comment_edits_keep_identity(tmp_path: Path) -> None:
    scenario, common = build(tmp_path)
    before = plan_of([scenario, common])
    (scenario / "beam.conf").write_text(
        "// reformatted\n"
        + "\n".join(
            "    " + line + "   # note" if "=" in line else line for line in MAIN.splitlines()
        )
        + "\n\n\n"
    )
    (common / "common.conf").write_text("# header comment\n\n" + COMMON.replace(" = ", "   =   "))
    after = plan_of([scenario, common])
    assert after.values == before.values
    assert digests(after) == digests(before)
    assert after.identity == before.identity


def test_changing_an_included_value_changes_identity(tmp_path: Path) -> None:
    scenario, common = build(tmp_path)
    before = plan_of([scenario, common])
    (common / "common.conf").write_text(COMMON.replace("lastIteration = 2", "lastIteration = 5"))
    after = plan_of([scenario, common])
    assert after.values["beam"]["agentsim"]["lastIteration"] == 5
    assert after.identity != before.identity
    changed = {n for n in digests(after) if digests(after)[n] != digests(before)[n]}
    assert changed == {"common.conf", RESOLVED_NAME}


def test_changing_an_input_file_changes_identity(tmp_path: Path) -> None:
    scenario, common = build(tmp_path)
    before = plan_of([scenario, common])
    (scenario / "inputs" / "network.csv").write_text(NETWORK.replace("10.5", "11.0"))
    after = plan_of([scenario, common])
    assert after.values == before.values
    assert after.identity != before.identity
    changed = {n for n in digests(after) if digests(after)[n] != digests(before)[n]}
    assert changed == {"inputs/network.csv"}


def test_missing_include_strict_names_it(tmp_path: Path) -> None:
    scenario, common = build(tmp_path)
    (scenario / "beam.conf").write_text('include "akka-extra.conf"\n' + MAIN)
    with pytest.raises(FileNotFoundError, match=r"akka-extra\.conf"):
        plan_of([scenario, common], strict=True)
    plan = plan_of([scenario, common])
    assert "akka-extra.conf" in plan.missing
    assert plan.values["beam"]["agentsim"]["lastIteration"] == 2
    (scenario / "beam.conf").write_text('include required("gone.conf")\n' + MAIN)
    with pytest.raises(FileNotFoundError, match=r"gone\.conf"):
        plan_of([scenario, common])


def test_bad_input_is_named(tmp_path: Path) -> None:
    scenario, common = build(tmp_path)
    (common / "common.conf").write_text("common { baseDir = \n")
    with pytest.raises(ValueError, match=r"common\.conf"):
        plan_of([scenario, common])
    (common / "common.conf").write_text('include "beam.conf"\n' + COMMON)
    with pytest.raises(ValueError, match="include cycle"):
        plan_of([scenario, common])
    (common / "common.conf").write_text(COMMON.replace('"inputs"', "${nowhere.dir}"))
    with pytest.raises(ValueError, match=r"beam\.conf"):
        plan_of([scenario, common])


def test_primary_config_lookup(tmp_path: Path) -> None:
    scenario, common = build(tmp_path)
    (scenario / "other.conf").write_text("x = 1\n")
    with pytest.raises(ValueError, match="primary_config"):
        plan_of([scenario, common])
    with pytest.raises(FileNotFoundError, match=r"nope\.conf"):
        BeamConfigAdapter(root_dirs=[scenario], primary_config="nope.conf").plan(None)
    plan = BeamConfigAdapter(root_dirs=[common, scenario], primary_config="other.conf").plan(None)
    assert plan.values == {"x": 1}
    assert [f.name for f in plan.files if f.role == "primary"] == ["other.conf"]
    with pytest.raises(ValueError, match="root_dirs"):
        BeamConfigAdapter().plan(None)


def test_materialize_round_trip(tmp_path: Path) -> None:
    scenario, common = build(tmp_path)
    adapter = BeamConfigAdapter(root_dirs=[scenario, common])
    plan = adapter.plan(None, ConfigAdapterOptions())
    out = tmp_path / "bundle"
    assert adapter.materialize(plan, out) == out

    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["beam.conf", "inputs/network.csv"]
    assert (out / "inputs" / "network.csv").read_text() == NETWORK
    again = adapter.plan([out], ConfigAdapterOptions(strict=True))
    assert again.values == plan.values
    assert again.identity == plan.identity
    assert rows(again).keys() == rows(plan).keys()

    with pytest.raises(FileExistsError, match="bundle"):
        adapter.materialize(plan, out)


def test_materialize_overrides_visible_after_replanning(tmp_path: Path) -> None:
    scenario, common = build(tmp_path)
    adapter = BeamConfigAdapter(root_dirs=[scenario, common])
    plan = adapter.plan(None, ConfigAdapterOptions())
    out = tmp_path / "override"
    adapter.materialize(
        plan,
        out,
        overrides={
            "beam.agentsim.agentSampleSizeAsFractionOfPopulation": 0.05,
            "beam.routing": {"baseDate": "2020-01-01", "extra": {"flag": False}},
            'beam."odd.key"': [1, 2],
        },
    )
    again = adapter.plan([out], ConfigAdapterOptions())
    agentsim = again.values["beam"]["agentsim"]
    assert agentsim["agentSampleSizeAsFractionOfPopulation"] == 0.05
    assert agentsim["lastIteration"] == 2
    assert again.values["beam"]["routing"] == {"baseDate": "2020-01-01", "extra": {"flag": False}}
    assert again.values["beam"]["odd.key"] == [1, 2]
    assert json.loads(rows(again)['beam."odd.key"']["value"]) == [1, 2]
    assert again.identity != plan.identity
    assert plan.values["beam"]["agentsim"]["agentSampleSizeAsFractionOfPopulation"] == 0.5

    with pytest.raises(ValueError, match="not an object"):
        adapter.materialize(plan, tmp_path / "bad1", overrides={"common.baseDir.x": 1})
    with pytest.raises(TypeError, match="overrides"):
        adapter.materialize(plan, tmp_path / "bad2", overrides={"a.b": object()})
    with pytest.raises(KeyError, match="agentSampleSize"):
        adapter.materialize(plan, tmp_path / "bad4", overrides={"beam.agentsim.agentSampleSize": 1})
    with pytest.raises(ValueError, match="empty segment"):
        adapter.materialize(plan, tmp_path / "bad3", overrides={"a..b": 1})
    assert not any((tmp_path / f"bad{k}").exists() for k in range(1, 5))


def test_materialize_copies_inputs_named_by_overrides(tmp_path: Path) -> None:
    scenario, common = build(tmp_path)
    (scenario / "inputs" / "network-v2.csv").write_text(NETWORK + "3,c,d,1.0\n")
    adapter = BeamConfigAdapter(root_dirs=[scenario, common])
    plan = adapter.plan(None, ConfigAdapterOptions())
    out = tmp_path / "v2"
    adapter.materialize(plan, out, overrides={"beam.physsim.networkFile": "inputs/network-v2.csv"})
    assert (out / "inputs" / "network-v2.csv").is_file()
    assert not (out / "inputs" / "network.csv").exists()
    again = adapter.plan([out], ConfigAdapterOptions())
    assert {f.name for f in again.files if f.role == "input"} == {"inputs/network-v2.csv"}


def test_missing_pyhocon_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "pyhocon" or m.startswith("pyhocon.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "pyhocon", None)
    with pytest.raises(ImportError, match=r"pip install 'consist\[config\]'"):
        BeamConfigAdapter(root_dirs=[tmp_path])


def test_inputs_behind_a_symlink_are_tracked(tmp_path: Path) -> None:
    scenario, common = build(tmp_path)
    shared_inputs = tmp_path / "shared_inputs"
    (scenario / "inputs").rename(shared_inputs)
    (scenario / "inputs").symlink_to(shared_inputs, target_is_directory=True)
    plan = plan_of([scenario, common])
    (network,) = [f for f in plan.files if f.role == "input"]
    assert network.name == "inputs/network.csv"
    assert network.digest == hash_bytes(NETWORK.encode())


def test_materialize_refuses_an_input_changed_since_the_plan(tmp_path: Path) -> None:
    scenario, common = build(tmp_path)
    adapter = BeamConfigAdapter(root_dirs=[scenario, common])
    plan = adapter.plan(None, ConfigAdapterOptions())
    (scenario / "inputs" / "network.csv").write_text(NETWORK + "9,x,y,1\n")
    with pytest.raises(ValueError, match="changed since the plan"):
        adapter.materialize(plan, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_tracker_logs_files_bundle_and_table(tmp_path: Path) -> None:
    from consist import Tracker

    scenario, common = build(tmp_path)
    adapter = BeamConfigAdapter(root_dirs=[scenario, common])
    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "db" / "prov.duckdb")
    plan = tracker.prepare_config(adapter, None)
    with tracker.start_run("beam_1", "beam"):
        contribution = tracker.apply_config_plan(plan, adapter=adapter)
    assert contribution.identity == plan.identity
    assert contribution.tables == {"beam_config": len(plan.tables[0].rows)}
    logged = {a.key for a in contribution.artifacts}
    assert logged == {"beam.conf", "common.conf", "routing.conf", "inputs/network.csv"}
    bundle = Path(tracker.resolve_uri(contribution.bundle.uri))
    assert adapter.plan([bundle], ConfigAdapterOptions()).identity == plan.identity


def test_include_text_in_comments_and_strings_is_not_a_directive(tmp_path: Path) -> None:
    scenario, common = build(tmp_path)
    (scenario / "inputs" / "plans.csv").write_text("person,act\n1,home\n")
    extra = (
        '# include "commented-out.conf"\n'
        '// include "also-commented.conf"\n'
        'beam.note = "include \\"quoted.conf\\" is text"\n'
        'beam.banner = """\ninclude "triple.conf"\n"""\n'
        'beam.plans = [{ file = ${common.baseDir}"/plans.csv" }, "inputs/network.csv"]\n'
    )
    (scenario / "beam.conf").write_text(MAIN + extra)
    plan = plan_of([scenario, common], strict=True)
    assert plan.values["beam"]["note"] == 'include "quoted.conf" is text'
    assert {f.name for f in plan.files if f.role == "include"} == {"common.conf", "routing.conf"}
    assert {f.name for f in plan.files if f.role == "input"} == {
        "inputs/network.csv",
        "inputs/plans.csv",
    }
    assert json.loads(rows(plan)["beam.plans"]["value"])[1] == "inputs/network.csv"


def test_unsupported_and_absolute_includes(tmp_path: Path) -> None:
    scenario, common = build(tmp_path)
    (scenario / "beam.conf").write_text('include url("https://example.org/x.conf")\n' + MAIN)
    with pytest.raises(ValueError, match="not supported"):
        plan_of([scenario, common])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "site.conf").write_text("beam.agentsim.lastIteration = 9\n")
    (scenario / "beam.conf").write_text(
        MAIN + f"include file({json.dumps(str(elsewhere / 'site.conf'))})\n"
    )
    plan = plan_of([scenario, common], strict=True)
    assert plan.values["beam"]["agentsim"]["lastIteration"] == 9  # included last, so it wins
    names = {f.name: f.role for f in plan.files}
    assert names["../elsewhere/site.conf"] == "include"
    assert rows(plan)["beam.agentsim.lastIteration"]["source"] == "../elsewhere/site.conf"


def test_override_run_from_a_base_run(tmp_path: Path) -> None:
    from consist import Tracker

    scenario, common = build(tmp_path)
    adapter = BeamConfigAdapter(root_dirs=[scenario, common], primary_config="beam.conf")
    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "db" / "prov.duckdb")
    calls: list[str] = []
    base = tracker.run(fn=lambda: calls.append("base"), name="beam", adapter=adapter)
    key = "beam.agentsim.agentSampleSizeAsFractionOfPopulation"
    override = tracker.run_with_config_overrides(
        adapter=adapter,
        base_run_id=base.run.id,
        output_dir=tmp_path / "override_tree",
        overrides={key: 0.05},
        fn=lambda: calls.append("override"),
        name="beam",
    )
    assert calls == ["base", "override"]
    tree = adapter.plan([tmp_path / "override_tree"], ConfigAdapterOptions())
    assert tree.values["beam"]["agentsim"]["agentSampleSizeAsFractionOfPopulation"] == 0.05
    assert override.run.meta["resolved_config_identity"]["adapter"] == "beam"
    found = tracker.run_query(
        f"SELECT consist_run_id, value FROM global_tables.beam_config WHERE key = '{key}'"
    )
    assert sorted(found) == sorted([(base.run.id, "0.5"), (override.run.id, "0.05")])
