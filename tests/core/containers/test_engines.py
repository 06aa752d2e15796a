"""Engine selection and the engines' own errors (real executables, no stand-ins)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from consist import Tracker
from consist.core.containers.engines import (
    ApptainerCli,
    ContainerEngineError,
    DockerApi,
    PodmanCli,
    select_engine,
)
from consist.models.container import ContainerSpec
from consist.options import ExecutionOptions


def test_auto_prefers_podman_when_it_is_on_path(podman: str) -> None:
    engine = select_engine(ContainerSpec(image="x"))
    assert isinstance(engine, PodmanCli) and engine.executable == podman


def test_auto_with_a_base_url_uses_the_docker_api(docker_api: str) -> None:
    engine = select_engine(ContainerSpec(image="x", base_url=docker_api))
    assert isinstance(engine, DockerApi)


def test_image_ids_agree_between_the_cli_and_the_api(image: str, docker_api: str) -> None:
    via_cli = PodmanCli.find().image_id(image)
    via_api = DockerApi(docker_api).image_id(image)
    assert via_cli == via_api and via_cli.startswith("sha256:")


def test_a_docker_url_nobody_serves_says_how_to_start_one(tmp_path: Path) -> None:
    pytest.importorskip("docker")
    with pytest.raises(ContainerEngineError, match="podman system service"):
        DockerApi(f"unix://{tmp_path}/nobody.sock")


def test_base_url_with_a_cli_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="base_url"):
        select_engine(ContainerSpec(image="x", engine="podman", base_url="unix:///x.sock"))


@pytest.mark.skipif(
    bool(shutil.which("apptainer") or shutil.which("singularity")),
    reason="apptainer is installed here",
)
def test_apptainer_missing_names_what_to_install() -> None:
    with pytest.raises(ContainerEngineError, match="apptainer"):
        select_engine(ContainerSpec(image="x.sif", engine="apptainer"))


def test_apptainer_command_line_binds_mounts_with_their_modes(tmp_path: Path) -> None:
    from consist.core.containers.plan import Invocation, Mount

    engine = ApptainerCli("apptainer")
    invocation = Invocation(
        image="model.sif",
        argv=("run-model", "--fast"),
        environment={"A": "1"},
        working_dir="/work",
        mounts=[Mount("/data/in.csv", "/inputs/raw/in.csv", True), Mount("/o", "/outputs", False)],
        network=None,
        user=None,
        extra_args=(),
        name="n",
    )
    assert engine.command_line(invocation) == [
        "apptainer", "exec", "--cleanenv", "--no-home",
        "--bind", "/data/in.csv:/inputs/raw/in.csv:ro", "--bind", "/o:/outputs:rw",
        "--env", "A=1", "--pwd", "/work", "model.sif", "run-model", "--fast",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="user"):
        engine.check(ContainerSpec(image="model.sif", user="1000"))
    with pytest.raises(ValueError, match=r"local \.sif"):
        engine.image_id(str(tmp_path / "missing.sif"))


@pytest.mark.skipif(
    not (shutil.which("apptainer") or shutil.which("singularity")),
    reason="apptainer/singularity is not installed (Debian 12 does not package it)",
)
def test_apptainer_runs_a_step_from_a_local_image(tmp_path: Path) -> None:
    exe = shutil.which("apptainer") or shutil.which("singularity")
    busybox = shutil.which("busybox")
    assert exe is not None and busybox is not None
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for tool in ("sh", "cat"):
        (root / "bin" / tool).symlink_to("busybox")
    sif = tmp_path / "model.sif"
    subprocess.run([exe, "build", str(sif), str(root)], check=True, capture_output=True)
    (tmp_path / "raw.csv").write_text("a\n1\n")
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=tmp_path / "p.duckdb")
    spec = ContainerSpec(
        image=str(sif), engine="apptainer", command=["sh", "-c", "cat {input:raw} > {output:c}"]
    )
    kwargs = {
        "name": "copy",
        "inputs": {"raw": tmp_path / "raw.csv"},
        "output_paths": {"c": "c.csv"},
        "execution_options": ExecutionOptions(executor="container", container=spec),
    }
    first = tracker.run(**kwargs)
    assert Path(first.outputs["c"].abs_path).read_text() == "a\n1\n"
    assert tracker.run(**kwargs).cache_hit
