"""ActivitySimConfigAdapter on a small layered config tree written in tmp_path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from consist.core.run.config_plan import ConfigAdapter, ConfigAdapterOptions, ConfigPlan
from consist.integrations.activitysim import ActivitySimConfigAdapter

STRICT = ConfigAdapterOptions(strict=True)

BASE_SETTINGS = """\
# base settings of the example region
models:
  - initialize_households
  - school_location
  - tour_mode_choice
  - trip_mode_choice
  - trip_scheduling
  - write_tables
households_sample_size: 0
chunk_size: 0
trace_hh_id: 982875
input_table_list:
  - tablename: households
    filename: households.csv
output_tables:
  action: include
  tables: [households, persons, trips]
CONSTANTS:
  CBD_THRESHOLD: 2
  walk_speed: 3.0
"""

LOCAL_SETTINGS = """\
inherit_settings: True
households_sample_size: 100  # a quick sample
output_tables:
  action: include
  tables: [trips]
"""

FILES = {
    "base/settings.yaml": BASE_SETTINGS,
    "local/settings.yaml": LOCAL_SETTINGS,
    "base/constants.yaml": "PEAK_START: 6\nPEAK_END: 9\nmode_names: [walk, bike, drive]\n",
    "base/initialize_households.yaml": (
        "annotate_households:\n  SPEC: annotate_households\n  DF: households\n"
    ),
    "base/annotate_households.csv": (
        "Description,Target,Expression\n"
        "number of workers,num_workers,persons.groupby('household_id').size()\n"
    ),
    "base/school_location.yaml": (
        "SAMPLE_SIZE: 30\n"
        "SPEC: school_location.csv\n"
        "COEFFICIENTS: school_location_coefficients.csv\n"
        "SIZE_TERMS: destination_choice_size_terms.csv\n"
        "LOGSUM_SETTINGS: tour_mode_choice.yaml\n"
    ),
    "base/school_location.csv": (
        "Label,Description,Expression,coefficient\n"
        "local_dist,distance,@_DIST,coef_dist\n"
        "size,size variable,@df['size_term'].apply(np.log1p),coef_size\n"
    ),
    "base/school_location_coefficients.csv": (
        "coefficient_name,value,constrain\ncoef_dist,-0.8,F\ncoef_size,1.0,T\n"
    ),
    "base/destination_choice_size_terms.csv": (
        "model_selector,segment,TOTHH\nschool,gradeschool,1\n"
    ),
    "base/tour_mode_choice.yaml": (
        "LOGIT_TYPE: NL\n"
        "SPEC: tour_mode_choice.csv\n"
        "COEFFICIENTS: tour_mode_choice_coefficients.csv\n"
        "COEFFICIENT_TEMPLATE: tour_mode_choice_coefficients_template.csv\n"
        "CONSTANTS:\n  ivt_cost_multiplier: 0.6\n  walk_speed: 3.0\n"
    ),
    "base/tour_mode_choice.csv": (
        "Label,Description,Expression,WALK,DRIVE\n"
        "util_ivt,in-vehicle time,@df.ivt,,coef_ivt\n"
        "util_walk,walk time,@df.walk_time,coef_walk,\n"
    ),
    "base/tour_mode_choice_coefficients.csv": (
        "coefficient_name,value,constrain\n"
        "coef_ivt_work,-0.02,F\ncoef_ivt_school,-0.03,F\ncoef_walk,-0.05,F\n"
    ),
    "base/tour_mode_choice_coefficients_template.csv": (
        "coefficient_name,work,school\ncoef_ivt,coef_ivt_work,coef_ivt_school\n"
    ),
    "base/trip_mode_choice.yaml": (
        "SPEC: trip_mode_choice.csv\n"
        "COEFFICIENTS: trip_mode_choice_coefficients.csv\n"
        "CONSTANTS:\n  ivt_cost_multiplier: 0.6\n  max_walk_distance: 3\n"
    ),
    "base/trip_mode_choice.csv": (
        "Label,Description,Expression,WALK,DRIVE\nutil_ivt,ivt,@df.ivt,,coef_ivt\n"
    ),
    "base/trip_mode_choice_coefficients.csv": (
        "coefficient_name,value,constrain\ncoef_ivt,-0.02,F\n"
    ),
    "local/trip_mode_choice_coefficients.csv": (
        "coefficient_name,value,constrain\ncoef_ivt,-0.025,F\ncoef_walk_trip,-0.04,T\n"
    ),
    "base/trip_scheduling.yaml": "PROBS_SPEC: trip_scheduling_probs.csv\nmax_iterations: 5\n",
    "base/trip_scheduling_probs.csv": (
        "primary_purpose,outbound,stop_num,0,1,2\nwork,TRUE,1,0.2,0.5,0.3\n"
        "school,FALSE,1,0.1,0.6,0.3\n"
    ),
}


def write_tree(root: Path, files: dict[str, str] = FILES) -> list[Path]:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return [root / "local", root / "base"]


@pytest.fixture
def dirs(tmp_path: Path) -> list[Path]:
    return write_tree(tmp_path / "configs")


def by_name(plan: ConfigPlan) -> dict[str, object]:
    return {f.name: f for f in plan.files}


def rows(plan: ConfigPlan, table: str) -> list[dict]:
    return [r for t in plan.tables if t.name == table for r in t.rows]


def test_first_directory_wins_and_settings_inherit(dirs: list[Path]) -> None:
    local, base = dirs
    adapter = ActivitySimConfigAdapter(root_dirs=dirs)
    assert isinstance(adapter, ConfigAdapter)
    plan = adapter.plan(None, STRICT)
    files = by_name(plan)
    assert files["trip_mode_choice_coefficients.csv"].path == local.resolve() / (
        "trip_mode_choice_coefficients.csv"
    )
    assert files["school_location_coefficients.csv"].path.parent == base.resolve()
    assert files["settings.yaml"].path.parent == local.resolve()
    assert plan.missing == []
    settings = plan.values["settings"]
    assert settings["households_sample_size"] == 100  # local wins
    assert settings["output_tables"] == {"action": "include", "tables": ["trips"]}  # whole key
    assert settings["chunk_size"] == 0 and settings["trace_hh_id"] == 982875  # inherited
    assert "inherit_settings" not in settings
    assert adapter.sources(plan)["settings.yaml"] == [
        local.resolve() / "settings.yaml",
        base.resolve() / "settings.yaml",
    ]
    assert plan.values["models"]["school_location"]["SAMPLE_SIZE"] == 30
    assert set(plan.values["models"]) == {
        "initialize_households",
        "school_location",
        "tour_mode_choice",
        "trip_mode_choice",
        "trip_scheduling",
    }
    assert plan.values["files"]["constants.yaml"]["PEAK_END"] == 9
    roles = {f.name: f.role for f in plan.files}
    assert roles == {
        "settings.yaml": "settings",
        "initialize_households.yaml": "model",
        "annotate_households.csv": "spec",  # bare SPEC name gets .csv
        "school_location.yaml": "model",
        "school_location.csv": "spec",
        "school_location_coefficients.csv": "coefficients",
        "destination_choice_size_terms.csv": "other",
        "tour_mode_choice.yaml": "model",  # via LOGSUM_SETTINGS, then as a step
        "tour_mode_choice.csv": "spec",
        "tour_mode_choice_coefficients.csv": "coefficients",
        "tour_mode_choice_coefficients_template.csv": "coefficients",
        "trip_mode_choice.yaml": "model",
        "trip_mode_choice.csv": "spec",
        "trip_mode_choice_coefficients.csv": "coefficients",
        "trip_scheduling.yaml": "model",
        "trip_scheduling_probs.csv": "probabilities",
        "constants.yaml": "constants",
    }
    # input_table_list names a data file: settings are not scanned for references
    assert "households.csv" not in files
    # the same directories passed explicitly give the same identity
    assert ActivitySimConfigAdapter().plan(dirs, STRICT).identity == plan.identity
    # a base-only plan is a different configuration
    assert adapter.plan([base]).identity != plan.identity


def test_inherit_settings_chain_names_and_errors(tmp_path: Path) -> None:
    top, mid, bottom = (tmp_path / n for n in ("top", "mid", "bottom"))
    write_tree(
        tmp_path,
        {
            "top/settings.yaml": "inherit_settings: true\na: top\n",
            "mid/settings.yaml": "inherit_settings: [settings.yaml, common.yaml]\na: mid\nb: mid\n",
            "bottom/settings.yaml": "a: bottom\nb: bottom\nc: bottom\n",
            "bottom/common.yaml": "c: common\nd: common\n",
        },
    )
    adapter = ActivitySimConfigAdapter()
    plan = adapter.plan([top, mid, bottom], STRICT)
    # top over mid; mid over bottom's settings.yaml over common.yaml
    assert plan.values["settings"] == {"a": "top", "b": "mid", "c": "bottom", "d": "common"}
    assert [f.name for f in plan.files] == ["settings.yaml"]

    (bottom / "common.yaml").unlink()
    with pytest.raises(FileNotFoundError, match=r"common\.yaml \(referenced by inherit_settings"):
        adapter.plan([top, mid, bottom], STRICT)
    assert adapter.plan([top, mid, bottom]).missing == ["common.yaml"]

    (bottom / "common.yaml").write_text("inherit_settings: other.yaml\n")
    (bottom / "other.yaml").write_text("inherit_settings: common.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        adapter.plan([top, mid, bottom])

    (top / "settings.yaml").write_text("inherit_settings: 3\n")
    with pytest.raises(ValueError, match=r"settings\.yaml: inherit_settings must be"):
        adapter.plan([top, mid, bottom])


def test_tables(dirs: list[Path]) -> None:
    plan = ActivitySimConfigAdapter(root_dirs=dirs).plan(None, STRICT)
    coefficients = rows(plan, "asim_coefficients")
    trip = [r for r in coefficients if r["file"] == "trip_mode_choice_coefficients.csv"]
    assert trip == [  # from the local file, which wins over base
        {
            "file": "trip_mode_choice_coefficients.csv",
            "coefficient_name": "coef_ivt",
            "value": -0.025,
            "constrain": "F",
        },
        {
            "file": "trip_mode_choice_coefficients.csv",
            "coefficient_name": "coef_walk_trip",
            "value": -0.04,
            "constrain": "T",
        },
    ]
    assert len(coefficients) == 2 + 2 + 3
    specs = [r for r in rows(plan, "asim_specs") if r["file"] == "school_location.csv"]
    assert specs[1]["row"] == 2 and specs[1]["label"] == "size"
    assert specs[1]["expression"] == "@df['size_term'].apply(np.log1p)"
    assert json.loads(specs[1]["columns"]) == {"coefficient": "coef_size"}
    tour = [r for r in rows(plan, "asim_specs") if r["file"] == "tour_mode_choice.csv"]
    assert json.loads(tour[0]["columns"]) == {"WALK": None, "DRIVE": "coef_ivt"}
    annotate = [r for r in rows(plan, "asim_specs") if r["file"] == "annotate_households.csv"]
    assert annotate[0]["label"] is None and annotate[0]["description"] == "number of workers"
    template = rows(plan, "asim_coefficient_templates")
    assert template[0]["coefficient_name"] == "coef_ivt"
    assert json.loads(template[0]["columns"]) == {
        "work": "coef_ivt_work",
        "school": "coef_ivt_school",
    }
    probs = rows(plan, "asim_probabilities")
    assert [r["row"] for r in probs] == [1, 2]
    assert json.loads(probs[0]["columns"]) == {
        "primary_purpose": "work",
        "outbound": "TRUE",
        "stop_num": 1,
        "0": 0.2,
        "1": 0.5,
        "2": 0.3,
    }
    constants = {(r["file"], r["name"]): r for r in rows(plan, "asim_constants")}
    assert constants[("settings.yaml", "CBD_THRESHOLD")]["number"] == 2.0
    assert constants[("trip_mode_choice.yaml", "max_walk_distance")]["value"] == "3"
    assert constants[("constants.yaml", "mode_names")]["value"] == '["walk", "bike", "drive"]'
    assert constants[("constants.yaml", "mode_names")]["number"] is None
    assert {f for f, _ in constants} == {
        "settings.yaml",
        "tour_mode_choice.yaml",
        "trip_mode_choice.yaml",
        "constants.yaml",
    }
    for table in plan.tables:  # one table per (name, file), every row names its file
        assert all(r["file"] == table.source for r in table.rows)


def test_formatting_edits_keep_identity_and_a_coefficient_edit_names_its_file(
    dirs: list[Path],
) -> None:
    local, base = dirs
    adapter = ActivitySimConfigAdapter(root_dirs=dirs)
    before = adapter.plan(None, STRICT)

    (local / "settings.yaml").write_text(
        "# local overrides\n"
        "inherit_settings: yes\n\n"
        "output_tables: {action: include, tables: ['trips']}   # just trips\n"
        "households_sample_size:    100\n"
    )
    (base / "trip_mode_choice.yaml").write_text(
        "CONSTANTS:\n    max_walk_distance: 3\n    ivt_cost_multiplier: 0.6\n"
        "# the spec\nSPEC: 'trip_mode_choice.csv'\n"
        'COEFFICIENTS: "trip_mode_choice_coefficients.csv"\n'
    )
    (base / "school_location_coefficients.csv").write_bytes(
        b"coefficient_name , value , constrain\r\n# tuned 2024\r\n"
        b'coef_dist, -0.8 ,F\r\n\r\n"coef_size",1.0,T\r\n'
    )
    after = adapter.plan(None, STRICT)
    assert after.identity_components() == before.identity_components()
    assert after.identity == before.identity

    (local / "trip_mode_choice_coefficients.csv").write_text(
        "coefficient_name,value,constrain\ncoef_ivt,-0.03,F\ncoef_walk_trip,-0.04,T\n"
    )
    edited = adapter.plan(None, STRICT)
    old, new = before.identity_components(), edited.identity_components()
    assert {k for k in old if old[k] != new[k]} == {"activitysim:trip_mode_choice_coefficients.csv"}
    assert edited.identity != before.identity
    # a real value change in a YAML changes that file's digest only
    (base / "school_location.yaml").write_text(
        FILES["base/school_location.yaml"].replace("SAMPLE_SIZE: 30", "SAMPLE_SIZE: 31")
    )
    again = adapter.plan(None, STRICT).identity_components()
    assert {k for k in new if new[k] != again[k]} == {"activitysim:school_location.yaml"}


def test_strict_names_a_missing_spec_and_loose_lists_it(dirs: list[Path]) -> None:
    local, base = dirs
    (base / "trip_mode_choice.csv").unlink()
    adapter = ActivitySimConfigAdapter(root_dirs=dirs)
    with pytest.raises(FileNotFoundError, match=r"trip_mode_choice\.csv \(referenced by SPEC in"):
        adapter.plan(None, STRICT)
    plan = adapter.plan(None)
    assert plan.missing == ["trip_mode_choice.csv"]
    assert "trip_mode_choice.csv" not in by_name(plan)
    # a step without a YAML is missing too (write_tables reads none by default)
    (base / "trip_mode_choice.csv").write_text(FILES["base/trip_mode_choice.csv"])
    settings = local / "settings.yaml"
    settings.write_text(LOCAL_SETTINGS + "models: [trip_mode_choice, new_step, write_tables]\n")
    with pytest.raises(FileNotFoundError, match=r"new_step\.yaml \(referenced by step 'new_step'"):
        adapter.plan(None, STRICT)
    assert adapter.plan(None).missing == ["new_step.yaml"]
    mapped = ActivitySimConfigAdapter(root_dirs=dirs, model_files={"new_step": None})
    assert mapped.plan(None, STRICT).missing == []
    aliased = ActivitySimConfigAdapter(
        root_dirs=dirs, model_files={"new_step": "trip_scheduling.yaml"}
    )
    assert aliased.plan(None, STRICT).values["models"]["new_step"]["max_iterations"] == 5


def test_unparsable_and_malformed_files_are_named(dirs: list[Path]) -> None:
    local, base = dirs
    adapter = ActivitySimConfigAdapter(root_dirs=dirs)
    (base / "trip_scheduling.yaml").write_text("PROBS_SPEC: [unclosed\n")
    with pytest.raises(ValueError, match=r"trip_scheduling\.yaml: cannot be parsed as YAML"):
        adapter.plan(None)
    (base / "trip_scheduling.yaml").write_text("- a\n- list\n")
    with pytest.raises(ValueError, match=r"trip_scheduling\.yaml: .* must hold a mapping"):
        adapter.plan(None)
    (base / "trip_scheduling.yaml").write_text(FILES["base/trip_scheduling.yaml"])
    (local / "trip_mode_choice_coefficients.csv").write_text(
        "coefficient_name,value,constrain\ncoef_ivt,fast,F\n"
    )
    with pytest.raises(ValueError, match=r"trip_mode_choice_coefficients\.csv: data row 1"):
        adapter.plan(None)
    (base / "school_location.yaml").write_text("SPEC: ../outside.csv\n")
    with pytest.raises(ValueError, match=r"no absolute path, no '\.\.'"):
        adapter.plan(None)


def test_no_directories_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="root_dirs"):
        ActivitySimConfigAdapter().plan(None)
    with pytest.raises(TypeError, match="list of directories"):
        ActivitySimConfigAdapter(root_dirs=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="not a directory"):
        ActivitySimConfigAdapter().plan([tmp_path / "nope"])
    plan = ActivitySimConfigAdapter().plan([tmp_path])
    assert plan.missing == ["settings.yaml"] and plan.files == []
    with pytest.raises(
        FileNotFoundError, match=r"settings\.yaml \(referenced by the settings file"
    ):
        ActivitySimConfigAdapter().plan([tmp_path], STRICT)


def test_materialize_round_trip(dirs: list[Path], tmp_path: Path) -> None:
    adapter = ActivitySimConfigAdapter(root_dirs=dirs)
    plan = adapter.plan(None, STRICT)
    out = adapter.materialize(plan, tmp_path / "bundle")
    assert sorted(p.name for p in out.iterdir()) == sorted(f.name for f in plan.files)
    written = yaml.safe_load((out / "settings.yaml").read_text())
    assert "inherit_settings" not in written and written["chunk_size"] == 0
    assert written["households_sample_size"] == 100
    replanned = adapter.plan([out], STRICT)
    assert replanned.identity == plan.identity
    assert replanned.values == plan.values
    assert replanned.tables == plan.tables
    # untouched files are copied as they are
    local = dirs[0]
    assert (out / "trip_mode_choice_coefficients.csv").read_bytes() == (
        local / "trip_mode_choice_coefficients.csv"
    ).read_bytes()
    with pytest.raises(ValueError, match="not empty"):
        adapter.materialize(plan, out)
    # a tree edited after the plan is refused
    (local / "trip_mode_choice_coefficients.csv").write_text("coefficient_name,value\ncoef_ivt,1\n")
    with pytest.raises(ValueError, match="changed since the plan"):
        adapter.materialize(plan, tmp_path / "bundle2")
    assert not (tmp_path / "bundle2").exists()


def test_materialize_overrides(dirs: list[Path], tmp_path: Path) -> None:
    adapter = ActivitySimConfigAdapter(root_dirs=dirs)
    plan = adapter.plan(None, STRICT)
    overrides = {
        "coefficients.coef_ivt_school": -0.05,
        "constants.ivt_cost_multiplier": 0.75,
        "settings.households_sample_size": 500,
        "settings.output_tables.action": "skip",
        "models.school_location.SAMPLE_SIZE": 10,
    }
    out = adapter.materialize(plan, tmp_path / "over", overrides)
    after = adapter.plan([out], STRICT)

    coefficients = {
        (r["file"], r["coefficient_name"]): r["value"] for r in rows(after, "asim_coefficients")
    }
    assert coefficients[("tour_mode_choice_coefficients.csv", "coef_ivt_school")] == -0.05
    assert coefficients[("tour_mode_choice_coefficients.csv", "coef_ivt_work")] == -0.02
    constants = {(r["file"], r["name"]): r["number"] for r in rows(after, "asim_constants")}
    # defined in two model YAMLs: both take the new value
    assert constants[("tour_mode_choice.yaml", "ivt_cost_multiplier")] == 0.75
    assert constants[("trip_mode_choice.yaml", "ivt_cost_multiplier")] == 0.75
    assert constants[("tour_mode_choice.yaml", "walk_speed")] == 3.0
    settings = after.values["settings"]
    assert settings["households_sample_size"] == 500
    assert settings["output_tables"] == {"action": "skip", "tables": ["trips"]}
    assert after.values["models"]["school_location"]["SAMPLE_SIZE"] == 10

    old, new = plan.identity_components(), after.identity_components()
    changed = {k.split(":", 1)[1] for k in old if old[k] != new[k]}
    assert changed == {
        "tour_mode_choice_coefficients.csv",
        "tour_mode_choice.yaml",
        "trip_mode_choice.yaml",
        "settings.yaml",
        "school_location.yaml",
    }
    # the rewritten coefficients file keeps the other cells
    text = (out / "tour_mode_choice_coefficients.csv").read_text()
    assert "coef_ivt_work,-0.02,F" in text and "coef_ivt_school,-0.05,F" in text


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"coefficients.coef_nope": 1.0}, KeyError, "coef_nope"),
        ({"constants.NOPE": 1}, KeyError, "NOPE"),
        ({"models.no_step.X": 1}, KeyError, "no_step"),
        ({"coefficients.coef_ivt": "big"}, TypeError, "must be a number"),
        ({"weights.x": 1}, ValueError, "settings.<dotted.key>"),
        ({"settings.inherit_settings": True}, ValueError, "flat"),
        ({"settings.output_tables.tables.x": 1}, ValueError, "not a mapping"),
    ],
)
def test_bad_overrides_write_nothing(
    dirs: list[Path], tmp_path: Path, overrides: dict, error: type, match: str
) -> None:
    adapter = ActivitySimConfigAdapter(root_dirs=dirs)
    plan = adapter.plan(None)
    with pytest.raises(error, match=match):
        adapter.materialize(plan, tmp_path / "out", overrides)
    assert not (tmp_path / "out").exists()


def test_missing_pyyaml_names_the_extra(dirs: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ImportError, match=r"pip install 'consist\[config\]'"):
        ActivitySimConfigAdapter(root_dirs=dirs).plan(None)
