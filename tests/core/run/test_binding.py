"""Config values reach the step function (``consist.core.run.binding``).

Each config key binds to the parameter of the same name, the parameter named
``config`` receives the whole config, a pydantic config binds by field, and
the precedence is runtime_kwargs > inputs > config > default. Every test
compares what the function received with what the run recorded (the JSON
snapshot and ``get_run_config``): provenance must not lie. A parameter that
no source supplies is refused before anything is written. Real trackers,
DuckDB files, CSV inputs and git repositories under ``tmp_path``.
"""

import copy
import importlib.util
import json
import linecache
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import pytest
from pydantic import BaseModel, Field, field_serializer

from _support import make_git_repo, persisted, write
from consist import ExecutionOptions, RunContext, Tracker

# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #


@pytest.fixture(autouse=True)
def _isolated_cwd(in_base_dir: None) -> None:
    """Every test of this module runs in its own temporary directory."""


@pytest.fixture
def data_csv(base: Path) -> Path:
    return write(base / "data" / "population.csv", "zone,persons\n1,100\n2,200\n")


def recorded_config(tracker: Tracker, run_id: str) -> dict[str, Any]:
    """The config the run recorded: the JSON snapshot on disk, checked against the API."""
    snapshot = json.loads((tracker.run_dir / "consist_runs" / f"{run_id}.json").read_text())
    assert tracker.get_run_config(run_id) == snapshot["config"]
    return snapshot["config"]


def nothing_written(tracker: Tracker, call: Any, exc: type[BaseException], match: str) -> None:
    """``call`` raises ``exc`` and leaves no journal file, DB row or run directory behind."""
    before = persisted(tracker)
    files_before = sorted(tracker.run_dir.rglob("*")) if tracker.run_dir.exists() else []
    with pytest.raises(exc, match=match):
        call()
    assert persisted(tracker) == before
    files_after = sorted(tracker.run_dir.rglob("*")) if tracker.run_dir.exists() else []
    assert files_after == files_before


class Scenario(BaseModel):
    scale: int = 1
    growth: float = 0.02
    zones: list[int] = Field(default_factory=lambda: [1, 2])
    out_dir: Path = Path("outputs/base")


class Tuned(Scenario):
    """A subclass: a parameter annotated with the base class accepts it."""

    damping: float = 0.5


class Scaled(BaseModel):
    scale: int = 1
    secret: str = Field(default="hidden", exclude=True)

    @field_serializer("scale")
    def _tenfold(self, value: int) -> int:
        return value * 10


RECEIVED: list[tuple[int, Any]] = []


def takes_named_model(scale: int, config: "Scenario") -> None:
    """Module level, so that its string annotation resolves through the module's globals."""
    RECEIVED.append((scale, config))


# --------------------------------------------------------------------------- #
# Config keys bind to parameters of the same name
# --------------------------------------------------------------------------- #


class TestConfigKeys:
    def test_key_overrides_the_default_and_is_what_the_run_recorded(self, tracker: Tracker) -> None:
        seen: list[int] = []

        def step(scale: int = 1) -> None:
            seen.append(scale)

        result = tracker.run(step, config={"scale": 5})
        assert seen == [5]
        assert recorded_config(tracker, result.run_id) == {"scale": 5}
        assert seen[0] == recorded_config(tracker, result.run_id)["scale"]

    def test_required_parameter_supplied_by_config(self, tracker: Tracker) -> None:
        seen: dict[str, Any] = {}

        def step(k, *, label: str) -> None:
            seen.update(k=k, label=label)

        result = tracker.run(step, config={"k": [1, 2, {"a": None}], "label": "x", "unused": 3})
        assert seen == {"k": [1, 2, {"a": None}], "label": "x"}
        recorded = recorded_config(tracker, result.run_id)
        assert {name: recorded[name] for name in seen} == seen

    def test_config_parameter_gets_the_whole_dict_next_to_bound_keys(
        self, tracker: Tracker
    ) -> None:
        seen: dict[str, Any] = {}

        def step(scale: int, config: dict) -> None:
            seen.update(scale=scale, config=config)

        cfg = {"scale": 3, "nested": {"a": [1, 2]}, "config": "a key named config"}
        result = tracker.run(step, config=cfg)
        assert seen["scale"] == 3
        # The parameter named ``config`` is the whole config, never config["config"].
        assert seen["config"] == cfg == recorded_config(tracker, result.run_id)

    def test_step_mutating_its_arguments_cannot_change_the_record(self, tracker: Tracker) -> None:
        calls: list[tuple[list[int], dict[str, Any]]] = []

        def step(zones: list, config: dict) -> None:
            calls.append((list(zones), copy.deepcopy(config)))
            zones.append(99)
            config["nested"]["changed"] = True
            config["extra"] = 1

        cfg = {"zones": [1, 2], "nested": {"k": 1}}
        first = tracker.run(step, config=cfg)
        assert calls == [([1, 2], {"zones": [1, 2], "nested": {"k": 1}})]
        # Neither the caller's dict nor the record saw the mutation...
        assert cfg == {"zones": [1, 2], "nested": {"k": 1}}
        assert recorded_config(tracker, first.run_id) == cfg
        # ...so the identical call is a cache hit on an honest record.
        second = tracker.run(step, config={"zones": [1, 2], "nested": {"k": 1}})
        assert second.cache_hit and len(calls) == 1

    def test_values_keep_their_python_type_and_record_their_canonical_form(
        self, tracker: Tracker, base: Path
    ) -> None:
        seen: dict[str, Any] = {}

        def step(path: Path, pair: tuple) -> None:
            seen.update(path=path, pair=pair)

        result = tracker.run(step, config={"path": base / "x.csv", "pair": (1, 2)})
        assert seen == {"path": base / "x.csv", "pair": (1, 2)}
        recorded = recorded_config(tracker, result.run_id)
        assert Path(recorded["path"]) == seen["path"]
        assert recorded["pair"] == list(seen["pair"])

    def test_var_keyword_receives_every_unclaimed_config_key(
        self, tracker: Tracker, data_csv: Path
    ) -> None:
        seen: dict[str, Any] = {}

        def step(scale: int, **params: Any) -> None:
            seen.update(scale=scale, params=params)

        cfg = {"scale": 2, "rate": 0.5, "not-an-identifier": True}
        result = tracker.run(step, config=cfg, inputs={"population": data_csv})
        # Named inputs bind to named parameters only; config keys fill **kwargs.
        assert seen == {"scale": 2, "params": {"rate": 0.5, "not-an-identifier": True}}
        recorded = recorded_config(tracker, result.run_id)
        assert {"scale": seen["scale"], **seen["params"]} == recorded

    def test_positional_only_parameters_are_never_bound_by_name(self, tracker: Tracker) -> None:
        seen: dict[str, Any] = {}

        def step(scale: int = 1, /, **kwargs: Any) -> None:
            seen.update(scale=scale, kwargs=kwargs)

        tracker.run(step, config={"scale": 5})
        assert seen == {"scale": 1, "kwargs": {"scale": 5}}

        def required(scale: int, /) -> None:
            raise AssertionError("must not run")

        nothing_written(
            tracker,
            lambda: tracker.run(required, config={"scale": 5}),
            TypeError,
            r"positional-only parameter\(s\) \['scale'\]",
        )

    def test_cache_hit_then_changed_config_executes_with_the_new_value(
        self, tracker: Tracker
    ) -> None:
        seen: list[int] = []

        def step(scale: int = 1) -> None:
            seen.append(scale)

        assert not tracker.run(step, config={"scale": 5}).cache_hit
        assert tracker.run(step, config={"scale": 5}).cache_hit
        changed = tracker.run(step, config={"scale": 6})
        assert not changed.cache_hit
        assert seen == [5, 6]
        assert recorded_config(tracker, changed.run_id) == {"scale": 6}


# --------------------------------------------------------------------------- #
# Pydantic configs bind by field
# --------------------------------------------------------------------------- #


class TestPydantic:
    def test_fields_bind_by_name(self, tracker: Tracker) -> None:
        seen: dict[str, Any] = {}

        def step(scale: int, zones: list, out_dir: Path, growth: float = 9.9) -> None:
            seen.update(scale=scale, zones=zones, out_dir=out_dir, growth=growth)

        cfg = Scenario(scale=7, zones=[3, 4])
        result = tracker.run(step, config=cfg)
        # Typed attribute values (a Path stays a Path)...
        assert seen == {
            "scale": 7,
            "zones": [3, 4],
            "out_dir": Path("outputs/base"),
            "growth": 0.02,
        }
        # ...whose JSON form is exactly what the run recorded.
        assert recorded_config(tracker, result.run_id) == {
            "scale": 7,
            "growth": 0.02,
            "zones": [3, 4],
            "out_dir": "outputs/base",
        }

    def test_config_parameter_annotated_with_the_class_gets_the_model(
        self, tracker: Tracker
    ) -> None:
        seen: dict[str, Any] = {}

        def exact(config: Scenario) -> None:
            seen["exact"] = config

        def base_class(config: BaseModel) -> None:
            seen["base_class"] = config

        def optional(config: Optional[Scenario] = None) -> None:  # noqa: UP045
            seen["optional"] = config

        def union(config: dict | Scenario) -> None:
            seen["union"] = config

        def plain(config) -> None:
            seen["plain"] = config

        def mapping(config: dict) -> None:
            seen["mapping"] = config

        cfg = Tuned(scale=4, damping=0.25)
        ids = {
            fn.__name__: tracker.run(fn, config=cfg).run_id
            for fn in (exact, base_class, optional, union, plain, mapping)
        }
        for name in ("exact", "base_class", "optional", "union"):
            assert isinstance(seen[name], Tuned), name
            assert seen[name] == cfg
            assert seen[name] is not cfg  # a copy: the step cannot change the caller's model
            assert seen[name].model_dump(mode="json") == recorded_config(tracker, ids[name])
        for name in ("plain", "mapping"):
            assert seen[name] == cfg.model_dump(mode="json")
            assert seen[name] == recorded_config(tracker, ids[name])

    def test_string_annotations(self, tracker: Tracker) -> None:
        RECEIVED.clear()
        tracker.run(takes_named_model, config=Scenario(scale=3))
        ((scale, model),) = RECEIVED
        assert scale == 3 and isinstance(model, Scenario) and model == Scenario(scale=3)

        class LocalModel(BaseModel):
            rate: float = 0.1

        seen: dict[str, Any] = {}

        # Not resolvable from the module's globals: matched by class name.
        def step(rate: float, config: "LocalModel") -> None:
            seen.update(rate=rate, config=config)

        tracker.run(step, config=LocalModel(rate=0.3))
        assert seen["rate"] == 0.3 and isinstance(seen["config"], LocalModel)

    def test_mutating_the_model_inside_the_step_leaves_the_caller_alone(
        self, tracker: Tracker
    ) -> None:
        def step(config: Scenario) -> None:
            config.zones.append(99)
            config.scale = 100

        cfg = Scenario(scale=2)
        result = tracker.run(step, config=cfg)
        assert cfg == Scenario(scale=2)
        assert recorded_config(tracker, result.run_id)["zones"] == [1, 2]

    def test_serializer_and_excluded_fields_follow_the_record(self, tracker: Tracker) -> None:
        seen: dict[str, Any] = {}

        def step(scale: int, secret: str = "default") -> None:
            seen.update(scale=scale, secret=secret)

        result = tracker.run(step, config=Scaled(scale=7, secret="s3cr3t"))
        recorded = recorded_config(tracker, result.run_id)
        # The serializer records 70: the step receives 70, not the attribute's 7.
        assert recorded == {"scale": 70}
        # An excluded field is not recorded, so it does not bind either.
        assert seen == {"scale": 70, "secret": "default"}


# --------------------------------------------------------------------------- #
# Precedence: runtime_kwargs > inputs > config > default
# --------------------------------------------------------------------------- #


class TestPrecedence:
    def test_input_beats_config_and_says_so(self, tracker: Tracker, data_csv: Path) -> None:
        seen: dict[str, Any] = {}

        def step(population: pd.DataFrame, scale: int = 1) -> None:
            seen.update(population=population, scale=scale)

        with pytest.warns(UserWarning, match=r"\['population'\] are both named inputs and config"):
            result = tracker.run(
                step, inputs={"population": data_csv}, config={"population": 3, "scale": 2}
            )
        pd.testing.assert_frame_equal(seen["population"], pd.read_csv(data_csv))
        assert seen["scale"] == 2
        # The config value stays recorded (and in the identity).
        assert recorded_config(tracker, result.run_id) == {"population": 3, "scale": 2}

    def test_no_warning_without_a_clash(self, tracker: Tracker, data_csv: Path) -> None:
        def step(population: Path, scale: int) -> None:
            return None

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tracker.run(step, inputs={"population": data_csv}, config={"scale": 2})

    def test_input_binding_none_lets_the_config_key_bind(
        self, tracker: Tracker, data_csv: Path
    ) -> None:
        seen: dict[str, Any] = {}

        def step(population: Any = None) -> None:
            seen["population"] = population

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tracker.run(
                step,
                inputs={"population": data_csv},
                config={"population": 3},
                execution_options=ExecutionOptions(input_binding="none"),
            )
        assert seen == {"population": 3}

    def test_runtime_kwargs_win_and_the_run_records_the_override(
        self, tracker: Tracker, data_csv: Path
    ) -> None:
        seen: dict[str, Any] = {}

        def step(population: Any, scale: int, threads: int = 1) -> None:
            seen.update(population=population, scale=scale, threads=threads)

        result = tracker.run(
            step,
            inputs={"population": data_csv},
            config={"scale": 5, "threads": 2},
            runtime_kwargs={"scale": 7, "population": "in-memory", "threads": 8},
        )
        assert seen == {"population": "in-memory", "scale": 7, "threads": 8}
        assert recorded_config(tracker, result.run_id) == {"scale": 5, "threads": 2}
        assert result.run.meta["runtime_overrides"] == ["population", "scale", "threads"]
        assert tracker.get_run(result.run_id).meta["runtime_overrides"] == [
            "population",
            "scale",
            "threads",
        ]

    def test_runtime_kwargs_without_a_clash_record_nothing(self, tracker: Tracker) -> None:
        def step(scale: int, threads: int = 1) -> None:
            return None

        result = tracker.run(step, config={"scale": 5}, runtime_kwargs={"threads": 4})
        assert "runtime_overrides" not in result.run.meta

    def test_default_when_no_source_supplies_the_parameter(self, tracker: Tracker) -> None:
        seen: dict[str, Any] = {}

        def step(scale: int = 1, growth: float = 0.1) -> None:
            seen.update(scale=scale, growth=growth)

        tracker.run(step, config={"scale": 3})
        assert seen == {"scale": 3, "growth": 0.1}

    def test_injected_context_wins_over_a_config_key(self, tracker: Tracker) -> None:
        seen: dict[str, Any] = {}

        def step(ctx: RunContext, scale: int) -> None:
            seen.update(ctx=ctx, scale=scale)

        tracker.run(
            step,
            config={"ctx": "not a context", "scale": 2},
            execution_options=ExecutionOptions(inject_context=True),
        )
        assert isinstance(seen["ctx"], RunContext)
        assert seen["ctx"].config == {"ctx": "not a context", "scale": 2}
        assert seen["scale"] == 2

    def test_context_name_clashing_with_a_runtime_kwarg_or_input(
        self, tracker: Tracker, data_csv: Path
    ) -> None:
        def step(ctx: Any = None) -> None:
            raise AssertionError("must not run")

        inject = ExecutionOptions(inject_context=True, runtime_kwargs={"ctx": 1})
        nothing_written(
            tracker,
            lambda: tracker.run(step, execution_options=inject),
            ValueError,
            "runtime_kwargs has 'ctx'",
        )
        nothing_written(
            tracker,
            lambda: tracker.run(
                step,
                inputs={"ctx": data_csv},
                execution_options=ExecutionOptions(inject_context=True),
            ),
            ValueError,
            "inputs has 'ctx'",
        )


# --------------------------------------------------------------------------- #
# Missing parameters are refused before anything is written
# --------------------------------------------------------------------------- #


class TestMissing:
    def test_on_a_fresh_store(self, base: Path) -> None:
        tracker = Tracker(base / "fresh_runs", db_path=base / "fresh.duckdb", project_root=base)
        try:

            def step(k, scale: int = 1) -> None:
                raise AssertionError("must not run")

            with pytest.raises(TypeError) as info:
                tracker.run(step, config={"scale": 5, "kk": 1})
            message = str(info.value)
            assert "step() needs ['k']" in message
            assert "config keys ['kk', 'scale']" in message
            assert "runtime_kwargs" in message and "inputs" in message
            assert not (base / "fresh_runs" / "consist_runs").exists()
            assert tracker.find_runs(limit=10) == []
        finally:
            tracker.close()

    def test_after_earlier_runs(self, tracker: Tracker) -> None:
        def ok(scale: int) -> None:
            return None

        tracker.run(ok, config={"scale": 1})

        def needs_two(scale: int, zones: list) -> None:
            raise AssertionError("must not run")

        nothing_written(
            tracker,
            lambda: tracker.run(needs_two, config={"scale": 1}),
            TypeError,
            r"needs_two\(\) needs \['zones'\]",
        )

        # A pydantic config that lacks the field is refused the same way.
        def needs_damping(scale: int, damping: float) -> None:
            assert damping == 0.5

        nothing_written(
            tracker,
            lambda: tracker.run(needs_damping, config=Scenario()),
            TypeError,
            r"needs_damping\(\) needs \['damping'\]",
        )
        tracker.run(needs_damping, config=Tuned())  # the subclass has the field

    def test_pydantic_excluded_field_does_not_supply_a_parameter(self, tracker: Tracker) -> None:
        def step(secret: str) -> None:
            raise AssertionError("must not run")

        nothing_written(
            tracker,
            lambda: tracker.run(step, config=Scaled(secret="x")),
            TypeError,
            r"needs \['secret'\]",
        )


# --------------------------------------------------------------------------- #
# The layout modelers use: tracker inside the project's git repository
# --------------------------------------------------------------------------- #

STEPS_MODULE = """
import pandas as pd


def simulate(population: pd.DataFrame, growth: float, years: int = 1, config=None):
    out = population.copy()
    out["persons"] = out["persons"] * (1 + growth) ** years
    out["years"] = years
    out["config_keys"] = ",".join(sorted(config))
    return out
"""


def _import_from(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class TestInRepository:
    @pytest.fixture
    def project(self, base: Path) -> Iterator[tuple[Tracker, Path, Any]]:
        repo = make_git_repo(base / "model", {"steps.py": STEPS_MODULE, "README.md": "model\n"})
        data = write(repo / "data" / "population.csv", "zone,persons\n1,100\n2,200\n")
        write(repo / "logs" / "session.log", "started\n")  # untracked, beside the code
        module_name = f"binding_steps_{abs(hash(str(repo)))}"
        steps = _import_from(repo / "steps.py", module_name)
        tracker = Tracker(repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo)
        try:
            yield tracker, data, steps
        finally:
            tracker.close()
            sys.modules.pop(module_name, None)

    def test_config_reaches_a_step_of_the_repository(
        self, project: tuple[Tracker, Path, Any]
    ) -> None:
        tracker, data, steps = project
        cfg = {"growth": 0.5, "years": 2}
        first = tracker.run(
            steps.simulate, inputs={"population": data}, config=cfg, outputs=["population"]
        )
        assert not first.cache_hit
        assert first.run.meta["code_identity_mode"] == "repo_git"
        table = pd.read_parquet(first.outputs["population"].path)
        assert table["persons"].tolist() == [225.0, 450.0]  # growth and years reached the step
        assert set(table["years"]) == {2}
        assert set(table["config_keys"]) == {"growth,years"}
        assert recorded_config(tracker, first.run_id) == cfg

        again = tracker.run(
            steps.simulate, inputs={"population": data}, config=cfg, outputs=["population"]
        )
        assert again.cache_hit

        other = tracker.run(
            steps.simulate,
            inputs={"population": data},
            config={"growth": 0.5},
            outputs=["population"],
        )
        assert not other.cache_hit
        assert pd.read_parquet(other.outputs["population"].path)["years"].tolist() == [1, 1]


# --------------------------------------------------------------------------- #
# A notebook: the same cell executed again in one process
# --------------------------------------------------------------------------- #

CELL = """
received = []

def grow(scale: int = 1, label: str = "none"):
    received.append((scale, label))

result = tracker.run(grow, config={"scale": SCALE, "label": "cell"},
                     code_identity="callable_source")
"""


class TestNotebookCell:
    def _execute(self, namespace: dict[str, Any], scale: int, count: int) -> Any:
        """Compile a cell the way IPython does: a file name that is not on disk + linecache."""
        source = CELL.replace("SCALE", str(scale))
        filename = f"/nonexistent/ipykernel_0/cell_{count}.py"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), namespace)
        return namespace["result"]

    def test_rerun_hits_and_an_edit_executes_with_the_new_value(self, base: Path) -> None:
        repo = make_git_repo(base / "analysis", {"analysis.ipynb": "{}\n"})
        tracker = Tracker(repo / "runs", db_path=repo / "prov.duckdb", project_root=repo)
        namespace: dict[str, Any] = {"tracker": tracker}
        try:
            first = self._execute(namespace, 5, 1)
            assert not first.cache_hit
            assert namespace["received"] == [(5, "cell")]
            assert recorded_config(tracker, first.run_id) == {"scale": 5, "label": "cell"}

            again = self._execute(namespace, 5, 2)  # same cell, run again
            assert again.cache_hit
            assert namespace["received"] == []  # not called on a hit

            edited = self._execute(namespace, 6, 3)
            assert not edited.cache_hit
            assert namespace["received"] == [(6, "cell")]
            assert recorded_config(tracker, edited.run_id) == {"scale": 6, "label": "cell"}

            back = self._execute(namespace, 5, 4)
            assert back.cache_hit
            assert back.run.meta["cache_source"] == first.run_id
        finally:
            tracker.close()
