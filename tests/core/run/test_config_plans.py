"""Config plans through the Tracker: run/trace(adapter=...), prepare/apply, bundles, tables.

A small adapter defined here (YAML settings + a coefficients CSV, first
directory wins) exercises the tracker side; the ActivitySim and BEAM
adapters have their own tests in tests/integrations/.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from consist import Tracker
from consist.core.identity.hashing import hash_bytes
from consist.core.run.config_plan import (
    ConfigAdapterOptions,
    ConfigFile,
    ConfigPlan,
    ConfigTable,
    canonical_values_digest,
)


class ToyAdapter:
    """settings.yaml (parsed) and coefficients.csv (rows) from ordered directories."""

    name = "toy"

    def __init__(self, *, root_dirs: Sequence[Path] = ()) -> None:
        self.root_dirs = [Path(d) for d in root_dirs]

    def _find(self, dirs: Sequence[Path], name: str) -> Path | None:
        return next((d / name for d in dirs if (d / name).is_file()), None)

    def plan(self, config_dirs: Sequence[Path], options: ConfigAdapterOptions) -> ConfigPlan:
        files, tables, missing = [], [], []
        values: dict = {}
        settings = self._find(config_dirs, "settings.yaml")
        if settings is not None:
            values = yaml.safe_load(settings.read_text()) or {}
            files.append(
                ConfigFile("settings.yaml", settings, "settings", canonical_values_digest(values))
            )
        coefficients = self._find(config_dirs, "coefficients.csv")
        if coefficients is None:
            if options.strict:
                raise FileNotFoundError("coefficients.csv is in none of the config directories")
            missing.append("coefficients.csv")
        else:
            with coefficients.open(newline="") as handle:
                rows = [
                    {"coefficient_name": r["coefficient_name"], "value": float(r["value"])}
                    for r in csv.DictReader(handle)
                ]
            digest = hash_bytes(
                repr(sorted((r["coefficient_name"], r["value"]) for r in rows)).encode()
            )
            files.append(ConfigFile("coefficients.csv", coefficients, "coefficients", digest))
            tables.append(ConfigTable("toy_coefficients", "coefficients.csv", rows))
        return ConfigPlan(
            adapter=self.name,
            config_dirs=list(config_dirs),
            files=files,
            tables=tables,
            values=values,
            missing=missing,
        )

    def materialize(
        self, plan: ConfigPlan, output_dir: Path, overrides: dict | None = None
    ) -> Path:
        output_dir.mkdir(parents=True, exist_ok=False)
        for f in plan.files:
            shutil.copyfile(f.path, output_dir / f.name)
        for selector, value in (overrides or {}).items():
            kind, _, name = selector.partition(".")
            path = output_dir / "coefficients.csv"
            with path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            if kind != "coefficients" or name not in {r["coefficient_name"] for r in rows}:
                raise KeyError(selector)
            for r in rows:
                if r["coefficient_name"] == name:
                    r["value"] = str(value)
            with path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=["coefficient_name", "value"])
                writer.writeheader()
                writer.writerows(rows)
        return output_dir


def model_step(sample: int = 10) -> None:
    """The model itself reads its config files; here it does nothing."""


def _tree(base: Path) -> tuple[Path, Path]:
    local, common = base / "configs_local", base / "configs"
    common.mkdir(parents=True)
    local.mkdir(parents=True)
    (common / "settings.yaml").write_text("households: 100  # sample\nmodels: [a, b]\n")
    (common / "coefficients.csv").write_text("coefficient_name,value\nc_time,-0.5\nc_cost,-1.0\n")
    (local / "coefficients.csv").write_text("coefficient_name,value\nc_time,-0.4\nc_cost,-1.0\n")
    return local, common


def test_run_with_an_adapter_hits_and_misses_on_config_content(
    tracker: Tracker, base: Path
) -> None:
    local, common = _tree(base)
    adapter = ToyAdapter(root_dirs=[local, common])
    first = tracker.run(fn=model_step, name="model", adapter=adapter)
    assert not first.cache_hit
    inputs = tracker.get_run_inputs(first.run.id)
    assert {k: a.meta["config_role"] for k, a in inputs.items()} == {
        "settings.yaml": "config",
        "coefficients.csv": "config",
        "toy_config_bundle": "bundle",
    }
    assert inputs["coefficients.csv"].path == local / "coefficients.csv"  # local wins
    bundle = tracker.get_config_bundle(first.run.id, adapter="toy")
    assert (bundle / "coefficients.csv").read_text() == (local / "coefficients.csv").read_text()
    assert first.run.meta["config_adapter"] == "toy"

    # A comment and whitespace in the YAML do not change the identity.
    (common / "settings.yaml").write_text("# edited\nhouseholds:   100\nmodels:\n  - a\n  - b\n")
    again = tracker.run(fn=model_step, name="model", adapter=adapter)
    assert again.cache_hit

    # One coefficient in the overriding directory: a miss naming that file.
    (local / "coefficients.csv").write_text("coefficient_name,value\nc_time,-0.3\nc_cost,-1.0\n")
    changed = tracker.run(fn=model_step, name="model", adapter=adapter)
    assert not changed.cache_hit
    explanation = changed.run.meta["cache_miss_explanation"]
    assert "toy:coefficients.csv" in explanation["identity_inputs"]
    assert "toy:settings.yaml" not in explanation["identity_inputs"]

    rows = tracker.run_query(
        "SELECT consist_run_id, coefficient_name, value FROM global_tables.toy_coefficients "
        "WHERE coefficient_name = 'c_time' ORDER BY value"
    )
    assert [(r[0], r[2]) for r in rows] == [(first.run.id, -0.4), (changed.run.id, -0.3)]


def test_trace_with_an_adapter_and_prepare_apply(tracker: Tracker, base: Path) -> None:
    local, common = _tree(base)
    adapter = ToyAdapter(root_dirs=[local, common])
    plan = tracker.prepare_config(adapter, [common])
    assert [f.name for f in plan.files] == ["settings.yaml", "coefficients.csv"]
    assert tracker.identity_from_config_plan(plan) == plan.identity
    assert list(base.rglob("consist_runs")) == []  # prepare wrote nothing
    with tracker.trace("inline", adapter=adapter):
        assert tracker.current_run.meta["config_adapter"] == "toy"
    with tracker.start_run("by_hand", "model"):
        contribution = tracker.apply_config_plan(plan, adapter=adapter, ingest=False)
    assert contribution.identity == plan.identity
    assert [a.key for a in contribution.artifacts] == ["settings.yaml", "coefficients.csv"]
    assert contribution.tables == {} and contribution.bundle is not None


def test_bad_adapter_calls_fail_before_anything_is_written(tracker: Tracker, base: Path) -> None:
    with pytest.raises(ValueError, match="root_dirs"):
        tracker.run(fn=model_step, name="model", adapter=ToyAdapter())
    with pytest.raises(TypeError, match="config adapter"):
        tracker.run(fn=model_step, name="model", adapter=object())
    local, _ = _tree(base)
    with pytest.raises(FileNotFoundError, match="empty is not a directory"):
        tracker.prepare_config(ToyAdapter(), [base / "empty"])
    (base / "empty").mkdir()
    assert tracker.prepare_config(ToyAdapter(), [base / "empty"]).missing == ["coefficients.csv"]
    with pytest.raises(FileNotFoundError, match=r"coefficients\.csv"):
        tracker.prepare_config(ToyAdapter(), [base / "empty"], strict=True)
    with pytest.raises(ValueError, match="facet_spec"):
        tracker.prepare_config(ToyAdapter(), [local], facet_spec={"x": 1})
    assert tracker.find_runs() == []
    with pytest.raises(RuntimeError, match="active run"):
        tracker.apply_config_plan(tracker.prepare_config(ToyAdapter(), [local]))


def test_override_run_from_a_base_run_reproduces_base_plus_override(
    tracker: Tracker, base: Path
) -> None:
    local, common = _tree(base)
    adapter = ToyAdapter(root_dirs=[local, common])
    first = tracker.run(fn=model_step, name="model", adapter=adapter)
    out = base / "override_1"
    result = tracker.run_with_config_overrides(
        adapter=adapter,
        base_run_id=first.run.id,
        overrides={"coefficients.c_time": -0.2},
        output_dir=out,
        fn=model_step,
        name="model",
    )
    assert not result.cache_hit
    text = (out / "coefficients.csv").read_text()
    assert "c_time,-0.2" in text and "c_cost,-1.0" in text
    assert (out / "settings.yaml").read_text() == (common / "settings.yaml").read_text()
    resolved = result.run.meta["resolved_config_identity"]
    assert resolved["mode"] == "auto" and resolved["adapter"] == "toy"
    assert resolved["label"] == "activitysim_config" and resolved["path"] == str(out)
    assert resolved["digest"] == result.run.meta["hash_inputs"]["activitysim_config"]
    rows = tracker.run_query(
        "SELECT value FROM global_tables.toy_coefficients "
        f"WHERE consist_run_id = '{result.run.id}' AND coefficient_name = 'c_time'"
    )
    assert rows == [(-0.2,)]
    # Same base, same override, same (empty) output folder name elsewhere: a hit.
    again = tracker.run_with_config_overrides(
        adapter=adapter,
        base_config_dirs=[out],
        overrides={},
        output_dir=base / "override_2",
        fn=model_step,
        name="model",
        resolved_config_identity="off",
    )
    assert again.run.meta["resolved_config_identity"]["mode"] == "off"


def test_override_selectors_are_checked_before_anything_runs(tracker: Tracker, base: Path) -> None:
    local, common = _tree(base)
    adapter = ToyAdapter(root_dirs=[local, common])
    kwargs = {"adapter": adapter, "overrides": {}, "fn": model_step, "name": "model"}
    with pytest.raises(ValueError, match="exactly one base"):
        tracker.run_with_config_overrides(output_dir=base / "o", **kwargs)
    with pytest.raises(ValueError, match="exactly one base"):
        tracker.run_with_config_overrides(
            output_dir=base / "o", base_run_id="x", base_config_dirs=[local], **kwargs
        )
    with pytest.raises(ValueError, match="base_primary_config"):
        tracker.run_with_config_overrides(
            output_dir=base / "o", base_run_id="x", base_primary_config="a.conf", **kwargs
        )
    with pytest.raises(KeyError, match="c_nope"):
        tracker.run_with_config_overrides(
            output_dir=base / "o",
            base_config_dirs=[local, common],
            **{**kwargs, "overrides": {"coefficients.c_nope": 1}},
        )
    assert tracker.find_runs() == []
    assert not (base / "o").exists() and list(base.glob(".o.*")) == []


class ForwardingAdapter(ToyAdapter):
    """An adapter with its own run_with_config_overrides (the tracker forwards to it)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.calls: list[dict] = []

    def run_with_config_overrides(self, **kwargs: object) -> str:
        self.calls.append(kwargs)
        return "handled by the adapter"


def test_an_adapter_with_its_own_override_runner_gets_the_call(
    tracker: Tracker, base: Path
) -> None:
    local, common = _tree(base)
    adapter = ForwardingAdapter(root_dirs=[local, common])
    out = tracker.run_with_config_overrides(
        adapter=adapter,
        base_config_dirs=[local, common],
        overrides={"coefficients.c_time": 1.0},
        output_dir=base / "o",
        fn=model_step,
        name="model",
        identity_label="toy_config",
    )
    assert out == "handled by the adapter"
    (call,) = adapter.calls
    assert call["tracker"] is tracker and call["identity_label"] == "toy_config"
    assert call["overrides"] == {"coefficients.c_time": 1.0}
    assert tracker.find_runs() == [] and not (base / "o").exists()
