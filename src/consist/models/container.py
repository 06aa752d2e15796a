"""A container step's definition (``ExecutionOptions(executor="container", container=...)``)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ContainerEngineName = Literal["auto", "podman", "docker", "apptainer"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ContainerSpec(BaseModel):
    """An image and the command to run in it, as one cached, recorded step.

    ``tracker.run(fn=None, execution_options=ExecutionOptions(executor="container",
    container=ContainerSpec(...)), inputs=..., output_paths=...)`` runs the
    command in a fresh container. What joins the run's identity (its code
    side) is everything below except ``engine`` and ``base_url`` (the same
    image and command give the same results on any engine), plus the image's
    content digest as the engine reports it (its image ID), so a re-tagged
    image with new content is a miss. Inputs count by content, as for
    function steps.

    Inside the container:

    - each named input is mounted read-only: a file at
      ``{input_root}/{key}/{file name}``, a directory at ``{input_root}/{key}``
      (or where ``input_paths[key]`` says);
    - the run's output directory (on the host, ``<run_dir>/outputs/...`` as
      for function steps) is mounted read-write at ``output_root``; a
      relative ``output_paths`` entry names a file or folder under it (the
      command writes ``/outputs/skims.omx`` for ``{"skims": "skims.omx"}``);
      an absolute ``output_paths`` entry must lie inside a ``volumes`` entry
      mounted read-write and is written at the matching container path;
    - environment variables ``CONSIST_INPUT_<KEY>`` and ``CONSIST_OUTPUT_<KEY>``
      (key upper-cased, non-alphanumerics as ``_``) hold those container
      paths, and ``CONSIST_OUTPUT_DIR`` the output root;
    - the run's config, exactly as recorded, is a read-only JSON file at
      ``/consist/config.json`` (``CONSIST_CONFIG``); config keys never reach
      the container any other way, so what is recorded is what it received;
    - in ``command`` arguments, ``{input:KEY}``, ``{output:KEY}``,
      ``{output_dir}`` and ``{config}`` are replaced by those paths, and
      ``{config:KEY}`` (dotted for nested keys) by the config value (JSON for
      lists and mappings); other braces are left alone.

    stdout and stderr are written to ``container-stdout.log`` and
    ``container-stderr.log`` in the run's output directory and logged as the
    outputs ``container_stdout`` / ``container_stderr``.

    Attributes
    ----------
    image:
        Image reference (``"localhost/beam:0.9"``, ``"ghcr.io/org/model@sha256:..."``;
        for apptainer, a local ``.sif`` file). Pulled when not present locally.
    command:
        Arguments run in the image: a list, or a string split like a shell
        would (``shlex.split``; no shell runs unless you call one, e.g.
        ``["sh", "-c", "..."]``). None runs the image's default command.
    environment:
        Extra environment variables (names must be valid identifiers).
    working_dir:
        Working directory inside the container (absolute).
    volumes:
        Extra bind mounts ``{host_path: container_path}``; append ``":ro"`` or
        ``":rw"`` (default) to the container path. Their content is not
        hashed: declare files that change results as ``inputs``.
    input_paths:
        Container path per input key, overriding the default layout.
    input_root, output_root:
        Where inputs and the output directory are mounted (``/inputs``,
        ``/outputs``).
    network:
        Network mode (``"none"`` to run offline, ``"host"``...); None is the
        engine's default.
    user:
        User (``"1000:1000"``) to run as; None is the image's default.
    extra_args:
        Further arguments for the engine's ``run`` command line (podman and
        apptainer only; the docker engine refuses them).
    engine:
        ``"auto"`` (default): podman when its command is on PATH, else a Docker
        API engine through the ``docker`` package (``DOCKER_HOST`` or
        ``base_url``; Podman's API socket works too), else apptainer /
        singularity. Or name one of ``"podman"``, ``"docker"``, ``"apptainer"``.
    base_url:
        Docker API address (``"unix:///run/podman/podman.sock"``); only with
        ``engine="docker"`` or ``"auto"``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str
    command: tuple[str, ...] | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    working_dir: str | None = None
    volumes: dict[str, str] = Field(default_factory=dict)
    input_paths: dict[str, str] = Field(default_factory=dict)
    input_root: str = "/inputs"
    output_root: str = "/outputs"
    network: str | None = None
    user: str | None = None
    extra_args: tuple[str, ...] = ()
    engine: ContainerEngineName = "auto"
    base_url: str | None = None

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() for c in value):
            raise ValueError(f"must name an image without spaces, got {value!r}")
        return value

    @field_validator("command", mode="before")
    @classmethod
    def _command(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = shlex.split(value)
        if not isinstance(value, list | tuple) or not value:
            raise ValueError("must be a non-empty list of arguments or a command string")
        if not all(isinstance(v, str) for v in value):
            raise ValueError("every argument must be a string")
        return tuple(value)

    @field_validator("environment", mode="before")
    @classmethod
    def _environment(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError("must be a mapping of variable name -> value")
        out = {}
        for name, item in value.items():
            if not isinstance(name, str) or not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
            if name.startswith("CONSIST_"):
                raise ValueError(f"{name!r}: names starting with CONSIST_ are set by consist")
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise ValueError(f"{name}: values must be strings or numbers")
            out[name] = str(item)
        return out

    @field_validator("working_dir", "input_root", "output_root")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None:
            _container_path(value)
        return value

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, value: dict[str, str]) -> dict[str, str]:
        for host, target in value.items():
            if not host:
                raise ValueError("host paths must be non-empty")
            split_mount(target)
        return value

    @field_validator("input_paths")
    @classmethod
    def _input_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for target in value.values():
            _container_path(target)
        return value

    @model_validator(mode="after")
    def _roots_differ(self) -> ContainerSpec:
        if self.input_root.rstrip("/") == self.output_root.rstrip("/"):
            raise ValueError("input_root and output_root must differ")
        return self


def split_mount(target: str) -> tuple[str, str]:
    """``"/data:ro"`` -> ``("/data", "ro")``; the mode defaults to ``"rw"``."""
    path, _, mode = target.rpartition(":") if target.endswith((":ro", ":rw")) else (target, "", "")
    _container_path(path)
    return path, mode or "rw"


def _container_path(value: str) -> str:
    if not value.startswith("/") or "\0" in value or ".." in value.split("/"):
        raise ValueError(f"container paths must be absolute without '..', got {value!r}")
    if value.rstrip("/") == "":
        raise ValueError("the container's root directory cannot be a mount point")
    return value
