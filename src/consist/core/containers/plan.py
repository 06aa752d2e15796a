"""Where a container step's inputs and outputs appear inside the container (pure).

:class:`ContainerPlan` turns a :class:`~consist.models.container.ContainerSpec`,
the step's ``output_paths`` and its recorded input artifacts into the mounts,
environment and arguments of one container invocation, and into the payload
that joins the run's identity. Nothing here touches an engine or the disk
beyond ``os.path`` checks.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consist.models.artifact import Artifact
from consist.models.container import ContainerSpec, split_mount

__all__ = [
    "LOG_KEYS",
    "ContainerPlan",
    "Invocation",
    "Mount",
    "env_suffix",
]

# The run's own outputs holding the container's stdout and stderr.
LOG_KEYS = {"stdout": "container_stdout", "stderr": "container_stderr"}
LOG_FILES = {"stdout": "container-stdout.log", "stderr": "container-stderr.log"}

_PLACEHOLDER = re.compile(r"\{(input|output|config):([^{}]+)\}|\{(output_dir|config)\}")
# The run's config, as recorded, is mounted read-only here (CONSIST_CONFIG).
CONFIG_TARGET = "/consist/config.json"
_IDENTITY_VERSION = "consist-container-v1"


@dataclass(frozen=True)
class Mount:
    """One bind mount: ``source`` on the host at ``target`` in the container."""

    source: str
    target: str
    read_only: bool


@dataclass
class Invocation:
    """Everything an engine needs to start one container."""

    image: str
    argv: tuple[str, ...] | None
    environment: dict[str, str]
    working_dir: str | None
    mounts: list[Mount]
    network: str | None
    user: str | None
    extra_args: tuple[str, ...]
    name: str


@dataclass
class _Output:
    key: str
    container_path: str
    relative: str | None  # under the run's output directory
    host_path: Path | None  # absolute, inside a read-write volume


@dataclass
class ContainerPlan:
    """A container step's layout, validated before anything is written.

    Parameters
    ----------
    spec:
        The container definition.
    output_paths:
        ``output_paths`` as the user passed them (relative entries are under
        the run's output directory; see :class:`ContainerSpec`).

    Raises
    ------
    ValueError
        For an output path the container could not write, a reserved or
        colliding key, or a placeholder naming an unknown key.
    """

    spec: ContainerSpec
    output_paths: Mapping[str, Any]
    config: Mapping[str, Any] = field(default_factory=dict)
    _outputs: dict[str, _Output] = field(init=False, default_factory=dict)
    _inputs: dict[str, tuple[str, str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not self.output_paths:
            raise ValueError(
                "output_paths is required for executor='container': name what the container "
                "writes, e.g. output_paths={'skims': 'skims.omx'} (written at /outputs/skims.omx)"
            )
        volumes = [(os.path.realpath(h), *split_mount(t)) for h, t in self.spec.volumes.items()]
        for key, raw in self.output_paths.items():
            if key in LOG_KEYS.values():
                raise ValueError(
                    f"output_paths[{key!r}]: {key!r} is reserved for the container's log; "
                    "choose another key"
                )
            self._outputs[key] = self._plan_output(key, raw, volumes)
        _check_env_keys(self.output_paths, "output_paths")

    def _plan_output(self, key: str, raw: Any, volumes: list[tuple[str, str, str]]) -> _Output:
        if isinstance(raw, Artifact):
            raw = raw.abs_path or raw.uri
        if not isinstance(raw, str | os.PathLike):
            raise TypeError(f"output_paths[{key!r}] must be a path")
        text = os.path.expanduser(os.fspath(raw))
        if not os.path.isabs(text):
            rel = posixpath.normpath(Path(text).as_posix())
            if rel in (".", "") or rel.startswith("../") or rel == "..":
                raise ValueError(
                    f"output_paths[{key!r}]={text!r}: a relative path names a file or folder "
                    "under the run's output directory and cannot leave it; use a path such "
                    "as 'results/out.csv', or an absolute path inside a read-write volume"
                )
            target = posixpath.join(self.spec.output_root, rel)
            return _Output(key, target, rel, None)
        host = os.path.realpath(text)
        for source, target, mode in volumes:
            if host == source or host.startswith(source.rstrip(os.sep) + os.sep):
                if mode != "rw":
                    raise ValueError(
                        f"output_paths[{key!r}]={text!r} is inside the read-only volume "
                        f"{source}; mount it ':rw' to let the container write there"
                    )
                inner = Path(os.path.relpath(host, source)).as_posix()
                path = target if inner == "." else posixpath.join(target, inner)
                return _Output(key, path, None, Path(host))
        raise ValueError(
            f"output_paths[{key!r}]={text!r} is outside every read-write volume, so the "
            "container cannot write it; give a relative path (under the run's output "
            "directory, mounted at "
            f"{self.spec.output_root}) or add a volume: volumes={{'/host/dir': '/data'}}"
        )

    # -- before the run starts ------------------------------------------------------

    def host_output_paths(self, output_dir: Path) -> dict[str, Path]:
        """Where each output lands on the host, given the run's output directory."""
        return {
            key: (out.host_path if out.host_path is not None else output_dir / out.relative)
            for key, out in self._outputs.items()
        }

    def identity(self, inputs: Sequence[Artifact], image_id: str) -> dict[str, Any]:
        """The container's contribution to run identity (also lays out the inputs).

        Host paths of inputs and outputs are not part of it (inputs count by
        content); where they appear inside the container is.
        """
        self._inputs = {}
        for art in inputs:
            self._inputs[art.key] = (self._input_target(art), _local(art))
        _check_env_keys(self._inputs, "inputs")
        spec = self.spec
        mounts = [
            {"target": t, "read_only": True, "source": f"input:{k}"}
            for k, (t, _) in sorted(self._inputs.items())
        ]
        mounts.append({"target": spec.output_root, "read_only": False, "source": "outputs"})
        mounts.append({"target": CONFIG_TARGET, "read_only": True, "source": "config"})
        for host, target in sorted(spec.volumes.items()):
            path, mode = split_mount(target)
            mounts.append({"target": path, "read_only": mode == "ro", "source": host})
        return {
            "version": _IDENTITY_VERSION,
            "image": spec.image,
            "image_id": image_id,
            "command": list(self.argv()) if spec.command is not None else None,
            "environment": dict(sorted(self.environment().items())),
            "working_dir": spec.working_dir,
            "mounts": mounts,
            "outputs": {k: o.container_path for k, o in sorted(self._outputs.items())},
            "network": spec.network,
            "user": spec.user,
            "extra_args": list(spec.extra_args),
        }

    def _input_target(self, art: Artifact) -> str:
        if art.key in self.spec.input_paths:
            return self.spec.input_paths[art.key]
        local = _local(art)
        base = posixpath.join(self.spec.input_root, _safe_segment(art.key))
        if os.path.isdir(local):
            return base
        return posixpath.join(base, os.path.basename(local))

    # -- the invocation --------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """The user's variables plus ``CONSIST_INPUT_*``, ``CONSIST_OUTPUT_*``."""
        env = dict(self.spec.environment)
        env["CONSIST_OUTPUT_DIR"] = self.spec.output_root
        env["CONSIST_CONFIG"] = CONFIG_TARGET
        for key, (target, _) in self._inputs.items():
            env[f"CONSIST_INPUT_{env_suffix(key)}"] = target
        for key, out in self._outputs.items():
            env[f"CONSIST_OUTPUT_{env_suffix(key)}"] = out.container_path
        return env

    def argv(self) -> tuple[str, ...] | None:
        """``command`` with ``{input:KEY}``, ``{output:KEY}``, ``{output_dir}`` replaced."""
        if self.spec.command is None:
            return None
        return tuple(_PLACEHOLDER.sub(self._replace, arg) for arg in self.spec.command)

    def _replace(self, match: re.Match[str]) -> str:
        kind, key = match.group(1), match.group(2)
        if kind is None:
            return self.spec.output_root if match.group(3) == "output_dir" else CONFIG_TARGET
        if kind == "config":
            return _config_value(self.config, key)
        if kind == "input":
            if key not in self._inputs:
                raise ValueError(
                    f"container.command uses {{input:{key}}} but the step has no input named "
                    f"{key!r} (inputs: {sorted(self._inputs)})"
                )
            return self._inputs[key][0]
        if key not in self._outputs:
            raise ValueError(
                f"container.command uses {{output:{key}}} but output_paths has no key {key!r} "
                f"(keys: {sorted(self._outputs)})"
            )
        return self._outputs[key].container_path

    def invocation(self, output_dir: Path, name: str, config_file: Path) -> Invocation:
        """The container to start (after :meth:`identity` laid out the inputs).

        ``config_file`` holds the run's config as JSON (mounted at ``CONSIST_CONFIG``).
        """
        mounts = [Mount(host, target, True) for target, host in self._inputs.values()]
        mounts.append(Mount(str(config_file), CONFIG_TARGET, True))
        mounts.append(Mount(str(output_dir), self.spec.output_root, False))
        for host, target in self.spec.volumes.items():
            path, mode = split_mount(target)
            mounts.append(Mount(os.path.realpath(host), path, mode == "ro"))
        return Invocation(
            image=self.spec.image,
            argv=self.argv(),
            environment=self.environment(),
            working_dir=self.spec.working_dir,
            mounts=mounts,
            network=self.spec.network,
            user=self.spec.user,
            extra_args=self.spec.extra_args,
            name=name,
        )


def env_suffix(key: str) -> str:
    """``"land-use.2030"`` -> ``"LAND_USE_2030"`` (the part after ``CONSIST_INPUT_``)."""
    return re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def _check_env_keys(keys: Mapping[str, Any], param: str) -> None:
    seen: dict[str, str] = {}
    for key in keys:
        suffix = env_suffix(key)
        if suffix in seen:
            raise ValueError(
                f"{param} keys {seen[suffix]!r} and {key!r} would share the environment "
                f"variable suffix {suffix}; rename one"
            )
        seen[suffix] = key


def _config_value(config: Mapping[str, Any], dotted: str) -> str:
    """``{config:a.b}``: the value at ``a.b`` (JSON for lists and mappings)."""
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise ValueError(
                f"container.command uses {{config:{dotted}}} but the config has no key "
                f"{dotted!r} (top-level keys: {sorted(config)})"
            )
        value = value[part]
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _safe_segment(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", key).lstrip(".") or "input"


def _local(art: Artifact) -> str:
    if art.abs_path is None or not os.path.exists(art.abs_path):
        raise ValueError(
            f"inputs[{art.key!r}] ({art.uri}) has no local file to mount into the container; "
            "pass a path that exists on this machine"
        )
    return os.fspath(art.abs_path)
