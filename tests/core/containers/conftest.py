"""A real container engine for the container-step tests: Podman with busybox images.

Images are made without a registry: a directory holding a static busybox
(plus symlinks for the shell tools) is piped through ``tar | podman import``.
Each image gets a unique tag and is removed at teardown. The engine config
(runc, cgroupfs, fixed ulimits) is what this kind of VM needs; it is only set
when ``CONTAINERS_CONF`` is not already set.

The tests skip (with the packages to install) only where podman or a static
busybox is missing; ``.ci/run`` installs both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

_CONF = """[containers]
log_driver = "json-file"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""
_TOOLS = (
    "sh",
    "cat",
    "echo",
    "ls",
    "cp",
    "mkdir",
    "wc",
    "env",
    "tr",
    "sleep",
    "test",
    "id",
    "pwd",
    "hostname",
)
_SKIP = "podman is not installed (apt-get install podman runc busybox-static)"


def _static_busybox() -> str | None:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(candidate):
            out = subprocess.run(["file", "-L", candidate], capture_output=True, text=True)
            if "statically linked" in out.stdout or out.returncode != 0:
                return candidate
    return None


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The podman executable, configured for this machine (skips when absent)."""
    exe = shutil.which("podman")
    busybox = _static_busybox()
    if exe is None or busybox is None:
        pytest.skip(_SKIP)
    with pytest.MonkeyPatch.context() as mp:
        if "CONTAINERS_CONF" not in os.environ:
            conf = tmp_path_factory.mktemp("podman") / "containers.conf"
            conf.write_text(_CONF)
            mp.setenv("CONTAINERS_CONF", str(conf))
        yield exe


@pytest.fixture(scope="session")
def make_image(
    podman: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., str]]:
    """``make_image(marker="a", tag=None)`` -> a busybox image reference.

    ``marker`` is written to ``/marker`` in the image, so two markers give two
    images with different content; passing an existing ``tag`` re-tags it.
    """
    busybox = _static_busybox()
    assert busybox is not None
    made: list[str] = []

    def make(marker: str = "a", tag: str | None = None) -> str:
        root = tmp_path_factory.mktemp("rootfs")
        (root / "bin").mkdir()
        (root / "tmp").mkdir()
        shutil.copy2(busybox, root / "bin" / "busybox")
        for tool in _TOOLS:
            (root / "bin" / tool).symlink_to("busybox")
        (root / "marker").write_text(marker + "\n")
        ref = tag or f"localhost/consist-test-{uuid.uuid4().hex[:10]}:latest"
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [podman, "import", "--quiet", "-", ref], stdin=tar.stdout, capture_output=True
        )
        tar.wait()
        assert imported.returncode == 0, imported.stderr.decode()
        made.append(ref)
        return ref

    yield make
    for ref in set(made):
        subprocess.run([podman, "rmi", "--force", ref], capture_output=True)


@pytest.fixture(scope="session")
def image(make_image: Callable[..., str]) -> str:
    """One busybox image shared by the tests that do not change it."""
    return make_image("shared")


@pytest.fixture(scope="session")
def docker_api(podman: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Podman's Docker-compatible API on a unix socket (``base_url`` for the docker engine)."""
    pytest.importorskip("docker", reason="the 'containers' extra (docker package) is missing")
    sock = tmp_path_factory.mktemp("api") / "podman.sock"
    url = f"unix://{sock}"
    proc = subprocess.Popen(
        [podman, "system", "service", "--time=0", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"podman system service did not start: {err}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
