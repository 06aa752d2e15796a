"""Container steps on a real engine (podman; the Docker API through Podman's socket)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consist import Tracker
from consist.core.containers.engines import ContainerEngineError
from consist.core.run.container_step import ContainerRunError
from consist.models.container import ContainerSpec
from consist.options import ExecutionOptions

COPY = ["sh", "-c", "cat {input:raw} > {output:copy}; echo copied"]


def container_files(root: Path) -> list[str]:
    """Every file under ``root`` (relative), to prove nothing was written."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _container(image: str, command: Any = COPY, **fields: Any) -> ExecutionOptions:
    return ExecutionOptions(
        executor="container", container=ContainerSpec(image=image, command=command, **fields)
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "raw.csv").write_text("a,b\n1,2\n")
    return tmp_path


@pytest.fixture
def tracker(project: Path) -> Tracker:
    return Tracker(run_dir=project / "runs", db_path=project / "provenance.duckdb")


def _copy_step(tracker: Tracker, image: str, project: Path, **kwargs: Any) -> Any:
    options = kwargs.pop("execution_options", None) or _container(image)
    return tracker.run(
        name="copy",
        inputs={"raw": project / "raw.csv"},
        output_paths={"copy": "copy.csv"},
        execution_options=options,
        **kwargs,
    )


def _summary(result: Any) -> str:
    return (result.run.meta.get("cache_miss_explanation") or {}).get("summary", "")


def test_reads_a_mounted_input_writes_an_output_then_hits(
    tracker: Tracker, image: str, project: Path
) -> None:
    first = _copy_step(tracker, image, project)
    assert not first.cache_hit
    copy = Path(first.outputs["copy"].abs_path)
    assert copy.read_text() == "a,b\n1,2\n"
    assert copy.parent == Path(
        first.run.meta["artifact_dir"].replace("./", str(tracker.run_dir) + "/", 1)
    )
    assert Path(first.outputs["container_stdout"].abs_path).read_text() == "copied\n"
    meta = first.run.meta["container"]
    assert meta["engine"] == "podman" and meta["exit_code"] == 0
    assert meta["image_id"].startswith("sha256:")
    assert meta["command"] == [
        "sh",
        "-c",
        "cat /inputs/raw/raw.csv > /outputs/copy.csv; echo copied",
    ]

    second = _copy_step(tracker, image, project)
    assert second.cache_hit
    assert second.run.meta["cache_source"] == first.run_id
    assert second.outputs["copy"].hash == first.outputs["copy"].hash
    assert "container" not in second.run.meta  # the container did not run

    # Another tracker (a second session on the same store) hits too.
    other = Tracker(run_dir=tracker.run_dir, db_path=project / "provenance.duckdb")
    assert _copy_step(other, image, project).cache_hit


def test_a_hit_copies_outputs_to_its_own_output_paths_without_the_container(
    tracker: Tracker, image: str, project: Path
) -> None:
    from consist.options import CacheOptions

    first = _copy_step(tracker, image, project)
    hit = _copy_step(
        tracker, image, project, cache_options=CacheOptions(cache_hydration="outputs-requested")
    )
    assert hit.cache_hit and "container" not in hit.run.meta
    copied = Path(hit.outputs["copy"].abs_path)
    assert copied != Path(first.outputs["copy"].abs_path)
    assert copied.parent.name == hit.run_id  # the hit's own output folder
    assert copied.read_text() == "a,b\n1,2\n"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"command": ["sh", "-c", "cat {input:raw} > {output:copy}; echo again"]}, "command"),
        ({"environment": {"SCALE": "2"}}, "environment"),
    ],
)
def test_changing_the_definition_misses_and_says_what_changed(
    tracker: Tracker, image: str, project: Path, change: dict[str, Any], named: str
) -> None:
    _copy_step(tracker, image, project)
    fields = {"command": COPY, **change}
    changed = _copy_step(tracker, image, project, execution_options=_container(image, **fields))
    assert not changed.cache_hit
    assert f"container {named}" in _summary(changed) or named in _summary(changed)
    explanation = changed.run.meta["cache_miss_explanation"]
    assert named in explanation["code"]["container"]
    # consist why / the web page show the field with its old and new values
    from consist.core.query.cache_decision import explanation_rows

    rows = {r["key"]: r for r in explanation_rows(explanation)}
    assert rows[f"container.{named}"]["new"] == explanation["code"]["container"][named]["new"]
    assert rows[f"container.{named}"]["old"] != rows[f"container.{named}"]["new"]


def test_environment_values_reach_the_container(
    tracker: Tracker, image: str, project: Path
) -> None:
    options = _container(
        image,
        ["sh", "-c", "echo $SCALE:$CONSIST_INPUT_RAW > {output:copy}"],
        environment={"SCALE": 7},
    )
    result = _copy_step(tracker, image, project, execution_options=options)
    assert Path(result.outputs["copy"].abs_path).read_text() == "7:/inputs/raw/raw.csv\n"


def test_input_bytes_change_misses(tracker: Tracker, image: str, project: Path) -> None:
    first = _copy_step(tracker, image, project)
    (project / "raw.csv").write_text("a,b\n3,4\n")
    second = _copy_step(tracker, image, project)
    assert not second.cache_hit
    assert "inputs: raw" in _summary(second)
    assert Path(second.outputs["copy"].abs_path).read_text() == "a,b\n3,4\n"
    assert Path(first.outputs["copy"].abs_path).read_text() == "a,b\n1,2\n"


def test_new_image_content_under_the_same_tag_misses(
    tracker: Tracker, make_image: Callable[..., str], project: Path
) -> None:
    ref = make_image("one")
    first = _copy_step(tracker, ref, project)
    assert _copy_step(tracker, ref, project).cache_hit
    make_image("two", tag=ref)  # same tag, different bytes
    second = _copy_step(tracker, ref, project)
    assert not second.cache_hit
    assert second.run.meta["container"]["image_id"] != first.run.meta["container"]["image_id"]
    assert "image_id" in second.run.meta["cache_miss_explanation"]["code"]["container"]


def test_config_reaches_the_container_as_recorded(
    tracker: Tracker, image: str, project: Path
) -> None:
    options = _container(
        image, ["sh", "-c", "cat $CONSIST_CONFIG > {output:copy}; echo {config:zones.count}"]
    )
    config = {"scale": 5, "zones": {"count": 12}}
    result = _copy_step(tracker, image, project, execution_options=options, config=config)
    assert json.loads(Path(result.outputs["copy"].abs_path).read_text()) == config
    assert Path(result.outputs["container_stdout"].abs_path).read_text() == "12\n"
    assert tracker.get_run_config(result.run_id) == config
    other = _copy_step(
        tracker, image, project, execution_options=options, config={**config, "scale": 6}
    )
    assert not other.cache_hit


def test_a_failing_container_records_a_failed_run_with_its_log(
    tracker: Tracker, image: str, project: Path
) -> None:
    options = _container(image, ["sh", "-c", "echo half way; echo broken input >&2; exit 3"])
    with pytest.raises(ContainerRunError) as caught:
        _copy_step(tracker, image, project, execution_options=options)
    error = caught.value
    assert isinstance(error, RuntimeError)
    assert error.exit_code == 3
    assert "exited with code 3" in str(error) and str(error.stderr_path) in str(error)
    assert "broken input" in str(error)
    run = tracker.get_run(error.run_id)
    assert run.status == "failed"
    assert run.meta["container"]["exit_code"] == 3
    logs = {a.key: a for a in tracker.get_artifacts_for_run(run.id).outputs.values()}
    assert Path(logs["container_stderr"].abs_path).read_text() == "broken input\n"
    assert Path(logs["container_stdout"].abs_path).read_text() == "half way\n"
    # A failed run is never a cache source: the next identical attempt runs again.
    with pytest.raises(ContainerRunError):
        _copy_step(tracker, image, project, execution_options=options)


def test_absolute_output_inside_a_read_write_volume(
    tracker: Tracker, image: str, project: Path
) -> None:
    shared = project / "shared"
    shared.mkdir()
    result = tracker.run(
        name="copy",
        inputs={"raw": project / "raw.csv"},
        output_paths={"copy": shared / "out" / "copy.csv"},
        execution_options=_container(image, volumes={str(shared): "/data"}),
    )
    assert (shared / "out" / "copy.csv").read_text() == "a,b\n1,2\n"
    assert result.outputs["copy"].abs_path == str(shared / "out" / "copy.csv")
    assert result.run.meta["container"]["command"][2].startswith(
        "cat /inputs/raw/raw.csv > /data/out/copy.csv"
    )


def test_directory_input_and_output(tracker: Tracker, image: str, project: Path) -> None:
    zones = project / "zones"
    zones.mkdir()
    (zones / "a.txt").write_text("A")
    (zones / "b.txt").write_text("B")
    result = tracker.run(
        name="listing",
        inputs={"zones": zones},
        output_paths={"report": "report"},
        execution_options=_container(
            image,
            ["sh", "-c", "mkdir -p {output:report} && ls {input:zones} > {output:report}/ls.txt"],
        ),
    )
    report = Path(result.outputs["report"].abs_path)
    assert (report / "ls.txt").read_text() == "a.txt\nb.txt\n"


def test_missing_declared_output_follows_the_output_policy(
    tracker: Tracker, image: str, project: Path
) -> None:
    options = _container(image, ["sh", "-c", "echo nothing"])
    with pytest.warns(UserWarning, match="declared outputs"):
        result = _copy_step(tracker, image, project, execution_options=options)
    assert "copy" not in result.outputs
    from consist.options import OutputPolicyOptions

    with pytest.raises(RuntimeError, match="declared outputs"):
        _copy_step(
            tracker,
            image,
            project,
            execution_options=_container(image, ["sh", "-c", "echo still nothing"]),
            output_policy=OutputPolicyOptions(output_missing="error"),
        )
    failed = tracker.find_runs(model="copy", status="failed")
    assert len(failed) == 1 and failed[0].meta["container"]["exit_code"] == 0


def test_docker_api_engine_shares_the_cache_with_podman(
    tracker: Tracker, image: str, project: Path, docker_api: str
) -> None:
    first = _copy_step(tracker, image, project)
    options = _container(image, engine="docker", base_url=docker_api)
    hit = _copy_step(tracker, image, project, execution_options=options)
    assert hit.cache_hit  # the engine is not part of identity; the image digest is
    changed = _copy_step(
        tracker,
        image,
        project,
        execution_options=_container(
            image,
            ["sh", "-c", "cat {input:raw} > {output:copy}; echo via api; echo oops >&2"],
            engine="docker",
            base_url=docker_api,
        ),
    )
    assert not changed.cache_hit
    assert changed.run.meta["container"]["engine"] == "docker"
    assert changed.run.meta["container"]["image_id"] == first.run.meta["container"]["image_id"]
    assert Path(changed.outputs["copy"].abs_path).read_text() == "a,b\n1,2\n"
    assert Path(changed.outputs["container_stdout"].abs_path).read_text() == "via api\n"
    assert Path(changed.outputs["container_stderr"].abs_path).read_text() == "oops\n"
    failing = _container(image, ["sh", "-c", "exit 4"], engine="docker", base_url=docker_api)
    with pytest.raises(ContainerRunError, match="code 4"):
        _copy_step(tracker, image, project, execution_options=failing)


@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_every_option_of_the_definition_reaches_the_engine(
    tracker: Tracker, image: str, project: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    engine_fields: dict[str, Any] = {"engine": engine}
    if engine == "docker":
        engine_fields["base_url"] = request.getfixturevalue("docker_api")
    else:
        engine_fields["extra_args"] = ["--hostname", "modelbox"]
    script = (
        "{ pwd; id -u; ls /sys/class/net; cat /in/data.csv; echo $CONSIST_OUTPUT_DIR; "
        "hostname; } > {output:seen}"
    )
    shared = project / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # the container's user 1234 writes here
    options = _container(
        image,
        ["sh", "-c", script],
        working_dir="/tmp",
        user="1234:1234",
        network="none",
        input_paths={"raw": "/in/data.csv"},
        output_root="/out",
        volumes={str(shared): "/shared"},
        **engine_fields,
    )
    result = tracker.run(
        name=f"options_{engine}",
        inputs={"raw": project / "raw.csv"},
        output_paths={"seen": shared / "seen.txt"},
        execution_options=options,
    )
    lines = Path(result.outputs["seen"].abs_path).read_text().splitlines()
    assert lines[:3] == ["/tmp", "1234", "lo"]  # working_dir, user, network="none"
    assert lines[3:6] == ["a,b", "1,2", "/out"]  # input_paths, output_root
    if engine == "podman":
        assert lines[6] == "modelbox"  # extra_args
    else:
        with pytest.raises(ValueError, match="extra_args"):
            tracker.run(
                name="refused",
                inputs={"raw": project / "raw.csv"},
                output_paths={"seen": "seen.txt"},
                execution_options=_container(image, extra_args=["--x"], **engine_fields),
            )


def test_a_scenario_records_lineage_from_a_python_step_to_a_container_step(
    tracker: Tracker, image: str, project: Path
) -> None:
    def prepare(raw: Path) -> Path:
        out = project / "prepared.csv"
        out.write_text(raw.read_text().upper())
        return out

    with tracker.scenario("baseline") as sc:
        sc.run(prepare, inputs={"raw": project / "raw.csv"}, outputs=["prepared"])
        result = sc.run(
            name="simulate",
            inputs={"raw": "prepared"},  # the coupler hands over the Python step's output
            output_paths={"copy": "simulated.csv"},
            execution_options=_container(image),
        )
    assert Path(result.outputs["copy"].abs_path).read_text() == "A,B\n1,2\n"
    assert [s.name for s in sc.steps] == ["prepare", "simulate"]
    lineage = tracker.get_artifact_lineage(result.outputs["copy"])
    producers = _producer_names(lineage)
    assert {"simulate", "prepare"} <= producers
    assert tracker.get_run(result.run_id).parent_run_id == sc.run_id


def _producer_names(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            run = item.get("producing_run") or item.get("run")
            if run is not None:
                found.add(getattr(run, "model_name", None) or run.get("model_name"))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def test_a_sweep_of_container_steps_runs_each_config_once(
    tracker: Tracker, image: str, project: Path
) -> None:
    options = _container(image, ["sh", "-c", "echo {config:scale} > {output:copy}"])
    kwargs = {
        "name": "scaled",
        "inputs": {"raw": project / "raw.csv"},
        "output_paths": {"copy": "scale.txt"},
        "execution_options": options,
    }
    configs = [{"scale": n} for n in (1, 2, 3)]
    results = tracker.sweep(None, configs, max_workers=2, **kwargs)
    results.raise_for_failures()
    texts = [Path(r.outputs["copy"].abs_path).read_text() for r in results]
    assert texts == ["1\n", "2\n", "3\n"]
    again = tracker.sweep(None, configs, max_workers=2, **kwargs)
    assert [r.cache_hit for r in again] == [True, True, True]


# -- refused before anything is written ---------------------------------------------


def _nothing_written(project: Path) -> None:
    assert container_files(project / "runs") == []
    assert not (project / "provenance.duckdb").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fn": None}, "fn is required"),
        ({"execution_options": "container-without-output-paths"}, "output_paths is required"),
        ({"fn": len}, "fn must be None"),
        ({"outputs": ["copy"]}, "outputs= has no meaning"),
        ({"runtime_kwargs": {"threads": 4}}, "runtime_kwargs= has no meaning"),
        ({"output_paths": {"copy": "../escape.csv"}}, "cannot leave it"),
        ({"output_paths": {"copy": "/elsewhere/copy.csv"}}, "outside every read-write volume"),
        ({"output_paths": {"container_stdout": "x.log"}}, "reserved"),
        ({"command": ["sh", "-c", "cat {input:nope}"]}, "no input named 'nope'"),
        ({"command": ["echo", "{config:missing}"]}, "no key 'missing'"),
        ({"volumes_ro_output": True}, "read-only volume"),
    ],
)
def test_bad_declarations_raise_before_anything_is_written(
    project: Path, image: str, kwargs: dict[str, Any], message: str
) -> None:
    tracker = Tracker(run_dir=project / "runs", db_path=None)
    args: dict[str, Any] = {
        "name": "copy",
        "inputs": {"raw": project / "raw.csv"},
        "output_paths": {"copy": "copy.csv"},
        "execution_options": _container(image, kwargs.pop("command", COPY)),
    }
    if kwargs.pop("volumes_ro_output", False):
        (project / "ro").mkdir()
        args["execution_options"] = _container(image, volumes={str(project / "ro"): "/ro:ro"})
        args["output_paths"] = {"copy": project / "ro" / "copy.csv"}
    if kwargs.get("fn", 0) is None:
        args.pop("execution_options")
    if kwargs.get("execution_options") == "container-without-output-paths":
        kwargs.pop("execution_options")
        args.pop("output_paths")
    args.update(kwargs)
    fn = args.pop("fn", None)
    with pytest.raises(ValueError, match=message):
        tracker.run(fn, **args)
    assert container_files(project / "runs") == []


def test_container_without_executor_and_executor_without_container_are_refused() -> None:
    with pytest.raises(ValueError, match="needs container="):
        ExecutionOptions(executor="container")
    with pytest.raises(ValueError, match="only used with executor='container'"):
        ExecutionOptions(container={"image": "busybox"})


def test_missing_image_raises_before_anything_is_written(project: Path, podman: str) -> None:
    tracker = Tracker(run_dir=project / "runs", db_path=project / "provenance.duckdb")
    with pytest.raises(ValueError, match="no such image"):
        _copy_step(tracker, "localhost/consist-no-such-image:1", project)
    assert container_files(project / "runs") == []
    assert tracker.find_runs() == []


def test_no_engine_names_what_to_install(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(project / "empty-bin"))
    tracker = Tracker(run_dir=project / "runs", db_path=None)
    with pytest.raises(ContainerEngineError, match="apt-get install podman"):
        _copy_step(
            tracker, "busybox", project, execution_options=_container("busybox", engine="podman")
        )
    assert container_files(project / "runs") == []


def test_in_a_git_project_the_container_is_the_code(image: str, tmp_path: Path) -> None:
    repo = tmp_path / "model"
    repo.mkdir()
    for args in (
        ["init", "-q"],
        ["config", "user.email", "m@example.org"],
        ["config", "user.name", "M"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True)
    (repo / "model.py").write_text("X = 1\n")
    (repo / "raw.csv").write_text("a,b\n1,2\n")
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=repo, check=True)
    tracker = Tracker(run_dir=repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo)
    assert not _copy_step(tracker, image, repo).cache_hit
    (repo / "notes.py").write_text("print('untracked source')\n")  # Python code, not the container
    (repo / "log.txt").write_text("a log\n")
    assert _copy_step(tracker, image, repo).cache_hit
    # Asking for the repository as well folds it in: editing tracked code then misses.
    from consist.options import CacheOptions

    with_repo = CacheOptions(code_identity="repo_git")
    first = _copy_step(tracker, image, repo, cache_options=with_repo)
    assert _copy_step(tracker, image, repo, cache_options=with_repo).cache_hit
    (repo / "model.py").write_text("X = 2\n")
    again = _copy_step(tracker, image, repo, cache_options=with_repo)
    assert not again.cache_hit
    assert again.run.meta["code_identity_mode"] == "container+repo_git"
    assert first.run.meta["code_identity_mode"] == "container+repo_git"
    assert os.path.exists(repo / "runs")
