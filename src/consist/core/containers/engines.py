"""Container engines: Podman's CLI, Docker-API engines (``docker`` package), Apptainer.

Each engine answers two questions: the content digest of an image (its
image ID, pulling the image when it is not present) and the exit code of one
container run whose stdout and stderr go to files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Protocol

from consist.core.containers.plan import Invocation
from consist.core.identity.hashing import hash_file
from consist.models.container import ContainerSpec

__all__ = [
    "ApptainerCli",
    "ContainerEngine",
    "ContainerEngineError",
    "DockerApi",
    "PodmanCli",
    "select_engine",
]

_INSTALL_HINT = (
    "install one: Podman (Debian/Ubuntu: apt-get install podman runc), or a Docker-API "
    "engine plus the 'containers' extra (pip install 'consist[containers]'), or Apptainer"
)


class ContainerEngineError(RuntimeError):
    """No usable container engine, or the engine failed outside the container."""


class ContainerEngine(Protocol):
    """What a container step needs from an engine."""

    name: str

    def check(self, spec: ContainerSpec) -> None:
        """Raise ValueError for options this engine cannot honour."""

    def image_id(self, image: str) -> str:
        """The image's content digest (``sha256:...``), pulling it if absent."""

    def run(self, invocation: Invocation, stdout: Path, stderr: Path) -> int:
        """Run the container to completion; return its exit code."""


def select_engine(spec: ContainerSpec) -> ContainerEngine:
    """The engine ``spec.engine`` names, or the first one present for ``"auto"``.

    Raises
    ------
    ContainerEngineError
        When the named engine (or, for ``"auto"``, every engine) is missing,
        naming what to install.
    ImportError
        ``engine="docker"`` without the ``docker`` package (the ``containers`` extra).
    """
    if spec.base_url is not None and spec.engine not in ("auto", "docker"):
        raise ValueError(
            f"container.base_url is a Docker API address; it has no meaning with "
            f"engine={spec.engine!r} (drop it, or use engine='docker')"
        )
    if spec.engine == "podman":
        return PodmanCli.find()
    if spec.engine == "docker":
        return DockerApi(spec.base_url)
    if spec.engine == "apptainer":
        return ApptainerCli.find()
    if spec.base_url is not None:
        return DockerApi(spec.base_url)
    if shutil.which("podman"):
        return PodmanCli.find()
    if DockerApi.available():
        return DockerApi(None)
    if shutil.which("apptainer") or shutil.which("singularity"):
        return ApptainerCli.find()
    raise ContainerEngineError(
        f"no container engine found for executor='container'; {_INSTALL_HINT}"
    )


def _normalized_id(value: str) -> str:
    value = value.strip()
    return value if ":" in value else f"sha256:{value}"


class _CliEngine:
    """An engine driven through its command line (``executable`` + arguments)."""

    name = ""
    commands: tuple[str, ...] = ()

    def __init__(self, executable: str) -> None:
        self.executable = executable

    @classmethod
    def find(cls) -> Any:
        """The engine with the first of ``commands`` found on PATH."""
        for command in cls.commands:
            found = shutil.which(command)
            if found is not None:
                return cls(found)
        raise ContainerEngineError(
            f"engine={cls.name!r} but no {' or '.join(cls.commands)} command is on PATH; "
            f"{_INSTALL_HINT}"
        )

    def command_line(self, inv: Invocation) -> list[str]:  # pragma: no cover - per engine
        raise NotImplementedError

    def _cleanup(self, invocation: Invocation) -> None:
        """Stop what an interrupted run left behind (nothing by default)."""

    def run(self, invocation: Invocation, stdout: Path, stderr: Path) -> int:
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            proc = subprocess.Popen(
                self.command_line(invocation), stdout=out, stderr=err, stdin=subprocess.DEVNULL
            )
            try:
                return proc.wait()
            except BaseException:  # interrupted (Ctrl-C): leave nothing running
                self._cleanup(invocation)
                proc.kill()
                proc.wait()
                raise


class PodmanCli(_CliEngine):
    """Podman through its command line (``podman run --rm ...``)."""

    name = "podman"
    commands = ("podman",)

    def check(self, spec: ContainerSpec) -> None:
        return None

    def _inspect(self, image: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.executable, "image", "inspect", "--format", "{{.Id}}", image],
            capture_output=True,
            text=True,
            check=False,
        )

    def image_id(self, image: str) -> str:
        found = self._inspect(image)
        if found.returncode != 0:
            pulled = subprocess.run(
                [self.executable, "pull", "--quiet", image],
                capture_output=True,
                text=True,
                check=False,
            )
            found = self._inspect(image) if pulled.returncode == 0 else pulled
        if found.returncode != 0:
            raise ValueError(
                f"container.image={image!r}: podman has no such image and could not pull it "
                f"({(found.stderr or '').strip().splitlines()[-1:] or 'no message'}); "
                "build, import or pull it first"
            )
        return _normalized_id(found.stdout.splitlines()[0])

    def command_line(self, inv: Invocation) -> list[str]:
        args = [self.executable, "run", "--rm", "--name", inv.name]
        for mount in inv.mounts:
            suffix = ":ro" if mount.read_only else ""
            args += ["--volume", f"{mount.source}:{mount.target}{suffix}"]
        for key, value in inv.environment.items():
            args += ["--env", f"{key}={value}"]
        if inv.working_dir:
            args += ["--workdir", inv.working_dir]
        if inv.network:
            args += ["--network", inv.network]
        if inv.user:
            args += ["--user", inv.user]
        args += list(inv.extra_args)
        args.append(inv.image)
        args += list(inv.argv or ())
        return args

    def _cleanup(self, invocation: Invocation) -> None:
        subprocess.run(
            [self.executable, "rm", "--force", invocation.name], capture_output=True, check=False
        )


class DockerApi:
    """A Docker-API engine (Docker, or Podman's API socket) through the ``docker`` package."""

    name = "docker"

    def __init__(self, base_url: str | None) -> None:
        try:
            import docker
        except ImportError as exc:
            raise ImportError(
                "engine='docker' needs the 'containers' extra: pip install 'consist[containers]'"
            ) from exc
        self._docker = docker
        self.base_url = base_url
        try:
            if base_url is not None:
                self.client = docker.DockerClient(base_url=base_url)
            else:
                self.client = docker.from_env()
            self.client.ping()
        except Exception as exc:
            where = base_url or os.environ.get("DOCKER_HOST") or "the default socket"
            raise ContainerEngineError(
                f"no Docker API engine answers at {where} ({exc}); start one (dockerd, or "
                "'podman system service --time=0 unix:///PATH/podman.sock') and set "
                "container.base_url or DOCKER_HOST"
            ) from exc

    @staticmethod
    def available() -> bool:
        """Whether the ``docker`` package is installed and a daemon answers by default."""
        try:
            import docker
        except ImportError:
            return False
        try:
            docker.from_env().ping()
        except Exception:
            return False
        return True

    def check(self, spec: ContainerSpec) -> None:
        if spec.extra_args:
            raise ValueError(
                "container.extra_args are command-line arguments; the Docker API engine "
                "cannot pass them (use engine='podman', or drop extra_args)"
            )

    def image_id(self, image: str) -> str:
        errors = self._docker.errors
        try:
            return _normalized_id(self.client.images.get(image).id)
        except errors.ImageNotFound:
            pass
        try:
            return _normalized_id(self.client.images.pull(image).id)
        except errors.APIError as exc:
            raise ValueError(
                f"container.image={image!r}: the engine has no such image and could not pull "
                f"it ({exc.explanation or exc}); build, import or pull it first"
            ) from exc

    def run(self, invocation: Invocation, stdout: Path, stderr: Path) -> int:
        types = self._docker.types
        mounts = [
            types.Mount(m.target, m.source, type="bind", read_only=m.read_only)
            for m in invocation.mounts
        ]
        options: dict[str, Any] = {
            "command": list(invocation.argv) if invocation.argv is not None else None,
            "environment": invocation.environment,
            "working_dir": invocation.working_dir,
            "mounts": mounts,
            "name": invocation.name,
            "detach": True,
        }
        if invocation.network:
            options["network_mode"] = invocation.network
        if invocation.user:
            options["user"] = invocation.user
        container = self.client.containers.create(invocation.image, **options)
        try:
            container.start()
            status = container.wait()
            stdout.write_bytes(container.logs(stdout=True, stderr=False))
            stderr.write_bytes(container.logs(stdout=False, stderr=True))
            return int(status.get("StatusCode", 1))
        finally:
            with contextlib.suppress(self._docker.errors.APIError):
                container.remove(force=True)


class ApptainerCli(_CliEngine):
    """Apptainer / Singularity by command line; images are local ``.sif`` files."""

    name = "apptainer"
    commands = ("apptainer", "singularity")

    def check(self, spec: ContainerSpec) -> None:
        if spec.user is not None:
            raise ValueError(
                "container.user: apptainer runs as the calling user; drop user= or use podman"
            )

    def image_id(self, image: str) -> str:
        if not os.path.isfile(image):
            raise ValueError(
                f"container.image={image!r}: with apptainer the image must be a local .sif file "
                "(its bytes are the image's identity); 'apptainer pull' it first"
            )
        return hash_file(image)

    def command_line(self, inv: Invocation) -> list[str]:
        verb = "exec" if inv.argv is not None else "run"
        args = [self.executable, verb, "--cleanenv", "--no-home"]
        for mount in inv.mounts:
            mode = "ro" if mount.read_only else "rw"
            args += ["--bind", f"{mount.source}:{mount.target}:{mode}"]
        for key, value in inv.environment.items():
            args += ["--env", f"{key}={value}"]
        if inv.working_dir:
            args += ["--pwd", inv.working_dir]
        if inv.network:
            args += ["--net", "--network", inv.network]
        args += list(inv.extra_args)
        args.append(inv.image)
        args += list(inv.argv or ())
        return args
