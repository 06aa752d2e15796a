"""Do the recorded files still exist and hold the digests recorded for them?

The service behind ``Tracker.validate_artifacts`` (and ``consist validate``).
Each artifact's URI is resolved to a local path and checked with
:meth:`~consist.core.identity.hashing.ContentHasher.verify_many`, which judges
a file whose stat identity (device, inode, size, mtime, ctime) equals that of
a trusted stat-cache entry by the entry's digest, without reading it: checking
an unchanged store costs a ``stat`` per file. Everything else is read once.

Statuses
--------
``ok``          the file is there and holds the recorded digest
``missing``     nothing at the resolved path
``changed``     the file is there but its content differs from the record
``unresolved``  the URI names a mount this tracker does not know (pass it)
``unhashed``    no digest was recorded (or one this version cannot compute):
                only existence was checked, and it exists

With ``fix`` the caller records availability in the artifact's metadata:
``missing_since`` (UTC ISO 8601, the first validation that found the file
gone) on missing artifacts, removed again once the file is back.
:func:`availability_patches` computes those patches; the store applies them.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consist.core.identity.hashing import ALGORITHM, ContentHasher
from consist.core.run.artifacts import member_digest
from consist.models.artifact import Artifact

__all__ = [
    "MISSING_SINCE",
    "STATUSES",
    "ArtifactCheck",
    "ArtifactChecker",
    "ValidationReport",
    "availability_patches",
]

MISSING_SINCE = "missing_since"
"""Artifact metadata key set by ``validate_artifacts(fix=True)`` on missing files."""

STATUSES = ("ok", "missing", "changed", "unresolved", "unhashed")
PROBLEM_STATUSES = ("missing", "changed", "unresolved")
_VERIFIABLE = (f"{ALGORITHM}:", "stat:")

Locate = Callable[[Artifact], "str | None"]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ArtifactCheck:
    """The verdict on one recorded artifact.

    Attributes
    ----------
    artifact_id, key, uri, driver, run_id:
        The artifact (``run_id``: the run that produced it, None for an
        external input).
    path:
        The local path its URI resolves to (None when unresolved).
    expected_hash:
        The recorded digest.
    status:
        One of :data:`STATUSES`.
    missing_since:
        The ``missing_since`` flag the artifact carries (after a fix: as
        fixed).
    """

    artifact_id: str
    key: str
    uri: str
    driver: str
    run_id: str | None
    path: str | None
    expected_hash: str | None
    status: str
    missing_since: str | None = None

    @property
    def is_problem(self) -> bool:
        """Whether the file is missing, changed, or could not be located."""
        return self.status in PROBLEM_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return {
            "artifact_id": self.artifact_id,
            "key": self.key,
            "uri": self.uri,
            "driver": self.driver,
            "run_id": self.run_id,
            "path": self.path,
            "expected_hash": self.expected_hash,
            "status": self.status,
            "missing_since": self.missing_since,
        }


@dataclass
class ValidationReport:
    """What ``validate_artifacts`` found (and, with ``fix``, changed).

    Attributes
    ----------
    checks:
        One :class:`ArtifactCheck` per distinct artifact, in the order the
        runs (or the store) list them.
    run_ids:
        The runs whose artifacts were checked (None: every artifact).
    fixed:
        Whether availability flags were written to the store.
    marked_missing:
        Ids of artifacts that got ``missing_since`` in this call.
    cleared:
        Ids of artifacts whose ``missing_since`` was removed (file back).
    """

    checks: list[ArtifactCheck] = field(default_factory=list)
    run_ids: list[str] | None = None
    fixed: bool = False
    marked_missing: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Number of artifacts per status (every status present, zeros included)."""
        found = Counter(c.status for c in self.checks)
        return {status: found.get(status, 0) for status in STATUSES}

    @property
    def problems(self) -> list[ArtifactCheck]:
        """Checks of missing, changed or unresolved artifacts."""
        return [c for c in self.checks if c.is_problem]

    @property
    def ok(self) -> bool:
        """True when no artifact is missing, changed or unresolved."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready): ``ok``, ``counts``, ``checks`` and the fix lists."""
        return {
            "ok": self.ok,
            "run_ids": self.run_ids,
            "counts": self.counts,
            "fixed": self.fixed,
            "marked_missing": list(self.marked_missing),
            "cleared": list(self.cleared),
            "checks": [c.to_dict() for c in self.checks],
        }


class ArtifactChecker:
    """Checks artifacts' files against their recorded digests.

    Parameters
    ----------
    hasher:
        The tracker's hasher (its stat cache spares reading unchanged files).
    locate:
        Resolves an artifact's URI to a local absolute path (None when it
        cannot, e.g. an unknown mount).
    batch_size:
        Files verified per ``verify_many`` call (one stat-cache lookup each);
        progress is reported after every batch.
    """

    def __init__(self, hasher: ContentHasher, locate: Locate, *, batch_size: int = 64) -> None:
        self._hasher = hasher
        self._locate = locate
        self._batch = max(1, int(batch_size))

    def check(
        self, artifacts: Iterable[Artifact], on_progress: Progress | None = None
    ) -> list[ArtifactCheck]:
        """One check per distinct artifact (by id), in order.

        ``on_progress(done, total)`` is called once before any work and after
        every batch.
        """
        unique: dict[str, Artifact] = {}
        for art in artifacts:
            unique.setdefault(str(art.id), art)
        arts = list(unique.values())
        total = len(arts)
        if on_progress is not None:
            on_progress(0, total)
        out: list[ArtifactCheck] = []
        for start in range(0, total, self._batch):
            out.extend(self._check_batch(arts[start : start + self._batch]))
            if on_progress is not None:
                on_progress(len(out), total)
        return out

    def _check_batch(self, arts: Sequence[Artifact]) -> list[ArtifactCheck]:
        paths = [self._path_of(a) for a in arts]
        statuses: list[str | None] = [None] * len(arts)
        to_verify: list[int] = []
        for i, (art, path) in enumerate(zip(arts, paths, strict=True)):
            if path is None:
                statuses[i] = "unresolved"
            elif not os.path.exists(path):
                statuses[i] = "missing"
            elif not art.hash or not art.hash.startswith(_VERIFIABLE):
                statuses[i] = "unhashed"
            elif art.table_path or art.array_path:
                # A table inside a container: its own digest, not the file's.
                statuses[i] = "ok" if member_digest(path, art) == art.hash else "changed"
            else:
                to_verify.append(i)
        if to_verify:
            verdicts = self._hasher.verify_many(
                [(paths[i], arts[i].hash) for i in to_verify]  # type: ignore[misc]
            )
            for i, same in zip(to_verify, verdicts, strict=True):
                # verify_many also answers False for a file removed meanwhile.
                statuses[i] = "ok" if same else self._changed_or_missing(paths[i])
        return [
            ArtifactCheck(
                artifact_id=str(art.id),
                key=art.key,
                uri=art.uri,
                driver=art.driver,
                run_id=art.run_id,
                path=path,
                expected_hash=art.hash,
                status=status or "missing",
                missing_since=_flag(art),
            )
            for art, path, status in zip(arts, paths, statuses, strict=True)
        ]

    def _path_of(self, art: Artifact) -> str | None:
        path = art.abs_path or self._locate(art)
        return path if path and os.path.isabs(path) else None

    @staticmethod
    def _changed_or_missing(path: str | None) -> str:
        return "changed" if path is not None and os.path.exists(path) else "missing"


def _flag(art: Artifact) -> str | None:
    value = art.meta.get(MISSING_SINCE) if isinstance(art.meta, dict) else None
    return str(value) if value is not None else None


def availability_patches(checks: Sequence[ArtifactCheck], now: str) -> dict[str, dict[str, Any]]:
    """Metadata patches that record availability: ``{artifact_id: patch}``.

    A missing artifact without the flag gets ``{"missing_since": now}`` (an
    existing flag keeps its earlier date); an artifact whose file is there
    again (ok, changed or unhashed) loses the flag (``{"missing_since":
    None}``, a JSON merge-patch removal). Unresolved artifacts are left alone:
    nothing is known about their files.
    """
    patches: dict[str, dict[str, Any]] = {}
    for check in checks:
        if check.status == "missing" and check.missing_since is None:
            patches[check.artifact_id] = {MISSING_SINCE: now}
        elif check.status in ("ok", "changed", "unhashed") and check.missing_since is not None:
            patches[check.artifact_id] = {MISSING_SINCE: None}
    return patches
