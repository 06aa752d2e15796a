"""Turning paths into artifact records: location, driver, digest, discovery.

This service builds :class:`~consist.models.artifact.Artifact` records; it
does not decide when they are persisted (the lifecycle service batches that).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consist.core.drivers.registry import infer_driver, validate_driver
from consist.core.identity.hashing import ContentHasher
from consist.core.paths import PathResolver
from consist.core.store.metadata_store import MetadataStore
from consist.core.validation import validate_label, validate_metadata, validate_path_name
from consist.models.artifact import Artifact, content_id_for

DIRECTIONS = ("input", "output")


def validate_direction(direction: Any) -> str:
    """``direction`` must be ``"input"`` or ``"output"``."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r} is not supported; use 'input' or 'output'")
    return direction


def validate_key(key: Any, *, param: str = "key", file_name: bool = False) -> str:
    """Check an artifact key.

    Parameters
    ----------
    key:
        The key.
    param:
        The parameter to name in an error.
    file_name:
        Whether the key becomes the artifact's file name (``output_path``,
        a returned table, ``log_dataframe`` without ``path=``): then it must
        be a single path component (:func:`~consist.core.validation.validate_path_name`).
        Otherwise it is only recorded and may hold ``/`` (``"sub/table"``):
        non-empty text of at most 256 characters without control characters.

    Returns
    -------
    str
        ``key`` unchanged.

    Raises
    ------
    TypeError
        If ``key`` is not a string.
    ValueError
        Naming ``param`` and what is allowed.
    """
    if file_name:
        return validate_path_name(key, param=param, purpose="the artifact's file name")
    return validate_label(key, param=param, max_length=256)


@dataclass
class ArtifactRequest:
    """One artifact to log, after argument validation."""

    ref: Any
    key: str | None
    direction: str
    driver: str | None = None
    table_path: str | None = None
    array_path: str | None = None
    content_hash: str | None = None
    force_hash_override: bool = False
    validate_content_hash: bool = False
    meta: dict[str, Any] | None = None
    bind: bool = False  # named input of a step: may bind to a parameter
    # An output whose file may not exist yet: built unhashed, hashed when the
    # run ends (see RunLifecycle.log_artifacts).
    allow_pending: bool = False
    # Inputs only (``reuse_if_unchanged``): link an existing artifact with the
    # same bytes instead of recording a new one; "same_uri" or "any_uri".
    reuse_scope: str | None = None


class ArtifactBuilder:
    """Builds artifact records for the active run.

    Parameters
    ----------
    paths:
        Maps local paths to portable URIs and back.
    hasher:
        Content digests (with the stat cache).
    store:
        The metadata store, used to link inputs to the runs that produced
        them; None in journal-only mode.
    """

    def __init__(
        self, paths: PathResolver, hasher: ContentHasher, store: MetadataStore | None
    ) -> None:
        self.paths = paths
        self.hasher = hasher
        self.store = store

    def build(self, requests: Sequence[ArtifactRequest], run_id: str) -> list[Artifact]:
        """Validate and build one artifact per request, hashing files in one batch.

        Raises
        ------
        ValueError
            If a path-like has no key, or a given content hash does not match
            the file when ``validate_content_hash`` is set.
        FileNotFoundError
            If a path does not exist and no ``content_hash`` was given (an
            output request with ``allow_pending`` is built unhashed instead).
        """
        # One plan per request: (request, abs path or None, uri or None).
        plans: list[tuple[ArtifactRequest, str | None, str | None]] = []
        # A table inside a container is verified by its own digest, not the file's.
        member_digests: dict[tuple[str, Any], str | None] = {}
        for req in requests:
            validate_direction(req.direction)
            if req.driver is not None:
                validate_driver(req.driver)
            req.meta = validate_metadata(req.meta or {}, param="meta")
            if isinstance(req.ref, Artifact):
                if req.key is not None:
                    validate_key(req.key)
                local = req.ref.abs_path or self.local_path(req.ref)
                # An input artifact whose file is here is re-verified: edited
                # bytes must never pass for the recorded ones.
                verify = req.direction == "input" and local and os.path.isfile(local)
                plans.append((req, local if verify else None, req.ref.uri if verify else None))
                if verify and (req.ref.table_path or req.ref.array_path):
                    member_digests[local, req.ref.id] = member_digest(local, req.ref)
                continue
            if not isinstance(req.ref, str | os.PathLike):
                raise TypeError(
                    f"path must be a str, Path or Artifact, got {type(req.ref).__name__}"
                )
            if req.key is None:
                raise ValueError(
                    f"key is required when logging a path ({os.fspath(req.ref)!r}); "
                    "pass key='households' or similar"
                )
            validate_key(req.key)
            abs_path = os.path.abspath(os.fspath(req.ref))
            pending = req.allow_pending and req.direction == "output"
            if not os.path.exists(abs_path) and req.content_hash is None and not pending:
                raise FileNotFoundError(
                    f"cannot log {req.direction} {req.key!r}: {abs_path} does not exist "
                    "(write the file first, or pass content_hash= for a file kept elsewhere)"
                )
            plans.append((req, abs_path, self.paths.virtualize(abs_path)))

        to_hash = sorted(
            {
                path
                for req, path, _ in plans
                if path is not None
                and (
                    (isinstance(req.ref, Artifact) and (path, req.ref.id) not in member_digests)
                    or (not isinstance(req.ref, Artifact) and req.content_hash is None)
                    or (not isinstance(req.ref, Artifact) and req.validate_content_hash)
                )
                and (not req.allow_pending or os.path.exists(path))
            }
        )
        digests = dict(zip(to_hash, self.hasher.digest_many(to_hash), strict=True))
        producers: dict[str, Artifact] = {}
        if self.store is not None:
            input_uris = {
                uri
                for req, _, uri in plans
                if uri is not None
                and req.direction == "input"
                and not isinstance(req.ref, Artifact)
            }
            if input_uris:
                producers = self.store.latest_outputs_at(sorted(input_uris))

        results: list[Artifact] = []
        for req, path, uri in plans:
            if isinstance(req.ref, Artifact):
                art: Artifact = req.ref
                if (path, art.id) in member_digests:
                    now = member_digests[path, art.id]
                    if art.hash is None or now == art.hash:
                        results.append(self._from_existing(req, run_id))
                    else:
                        results.append(self._changed_member(req, art, path, now, run_id))
                    continue
                if path is None or art.hash is None or digests[path] == art.hash:
                    results.append(self._from_existing(req, run_id))
                    continue
                # The file changed since it was recorded: it is new content.
                stale = ArtifactRequest(
                    ref=path,
                    key=req.key or art.key,
                    direction=req.direction,
                    driver=req.driver or art.driver,
                    meta={**(req.meta or {}), "stale_artifact_id": str(art.id)},
                )
                results.append(
                    self._from_path(stale, path, uri or art.uri, digests[path], None, run_id)
                )
                continue
            assert path is not None and uri is not None
            reused = self._reusable(req, uri, digests.get(path), producers.get(uri))
            if reused is not None:
                stand_in = ArtifactRequest(
                    ref=reused.with_local_path(path),
                    key=req.key,
                    direction=req.direction,
                    meta=req.meta,
                )
                results.append(self._from_existing(stand_in, run_id))
                continue
            results.append(
                self._from_path(req, path, uri, digests.get(path), producers.get(uri), run_id)
            )
        return results

    def _reusable(
        self, req: ArtifactRequest, uri: str, digest: str | None, producer: Artifact | None
    ) -> Artifact | None:
        """An already recorded artifact with these bytes (``reuse_if_unchanged``).

        ``same_uri`` takes the newest artifact at the same location whose
        digest matches; ``any_uri`` any artifact with the same content
        (preferring one at the same location). An earlier run's output at
        this location is linked by input discovery anyway.
        """
        if req.reuse_scope is None or self.store is None or digest is None:
            return None
        if producer is not None and producer.hash == digest:
            return None  # input discovery links the producing run's artifact
        same = self.store.get_artifact_by_uri(
            uri, table_path=req.table_path, array_path=req.array_path
        )
        if same is not None and same.hash == digest:
            return same
        if req.reuse_scope == "any_uri":
            content_id = content_id_for(digest)
            for candidate in self.store.artifacts_with_content(content_id, limit=1):
                if candidate.hash == digest:
                    return candidate
        return None

    def _from_path(
        self,
        req: ArtifactRequest,
        abs_path: str,
        uri: str,
        computed: str | None,
        producer: Artifact | None,
        run_id: str,
    ) -> Artifact:
        digest = computed
        if req.content_hash is not None:
            if req.validate_content_hash and computed != req.content_hash:
                raise ValueError(
                    f"content_hash for {req.key!r} does not match the file on disk "
                    f"(given {req.content_hash}, computed {computed}); fix the hash or drop "
                    "validate_content_hash"
                )
            digest = req.content_hash
        # Automatic input discovery: an input at the location of an earlier
        # output *is* that output (same id, so lineage links), but only while
        # its bytes are unchanged.
        if (
            producer is not None
            and producer.hash is not None
            and producer.hash == digest
            and req.table_path is None
            and req.array_path is None
        ):
            return self._run_view(producer, req).with_local_path(abs_path)
        size = os.path.getsize(abs_path) if os.path.isfile(abs_path) else None
        if req.driver is not None:
            driver = req.driver
        else:
            driver = infer_driver(abs_path)
            if driver == "other" and os.path.isdir(abs_path):
                driver = "directory"
        meta = dict(req.meta or {})
        if (
            producer is not None
            and producer.hash != digest
            and req.table_path is None
            and req.array_path is None
        ):
            meta.setdefault("stale_producer_artifact_id", str(producer.id))
        artifact = Artifact(
            key=req.key,
            uri=uri,
            driver=driver,
            hash=digest,
            content_id=content_id_for(digest),
            table_path=req.table_path,
            array_path=req.array_path,
            size_bytes=size,
            run_id=run_id,
            meta=meta,
        )
        return artifact.with_local_path(abs_path)

    def _changed_member(
        self, req: ArtifactRequest, art: Artifact, path: str, now: str | None, run_id: str
    ) -> Artifact:
        """A table inside a container whose content changed since it was recorded: new content.

        Raises
        ------
        FileNotFoundError
            If the container no longer holds the table.
        """
        member = art.table_path or art.array_path
        if now is None:
            raise FileNotFoundError(f"input {art.key!r}: {path} no longer holds {member!r}")
        changed = Artifact(
            key=req.key or art.key,
            uri=art.uri,
            driver=art.driver,
            hash=now,
            content_id=content_id_for(now),
            table_path=art.table_path,
            array_path=art.array_path,
            run_id=run_id,
            meta={**art.meta, **(req.meta or {}), "stale_artifact_id": str(art.id)},
        )
        return changed.with_local_path(path)

    def _from_existing(self, req: ArtifactRequest, run_id: str) -> Artifact:
        art: Artifact = req.ref
        if req.content_hash is not None and req.content_hash != art.hash:
            if req.force_hash_override:
                art = art.model_copy(
                    update={
                        "hash": req.content_hash,
                        "content_id": content_id_for(req.content_hash),
                    }
                )
            else:
                warnings.warn(
                    f"content_hash for artifact {art.key!r} differs from its recorded hash; "
                    "keeping the recorded hash (pass force_hash_override=True to replace it)",
                    UserWarning,
                    stacklevel=4,
                )
        if req.key is not None:
            validate_key(req.key)
        view = self._run_view(art, req)
        return view.with_local_path(art.abs_path or self.local_path(art))

    @staticmethod
    def _run_view(art: Artifact, req: ArtifactRequest) -> Artifact:
        """The artifact as this run sees it: same id, the run's key and metadata.

        The stored artifact row is never rewritten; the run-local key and
        metadata live on the run's link to it.
        """
        update: dict[str, Any] = {}
        if req.key is not None and req.key != art.key:
            update["key"] = req.key
        if req.meta:
            update["meta"] = {**art.meta, **req.meta}
        if not update:
            return art
        view = art.model_copy(update=update, deep=True)
        view._run_local = True
        return view

    def local_path(self, artifact: Artifact) -> str | None:
        """Resolve an artifact's URI to a local absolute path (None if impossible)."""
        try:
            resolved = self.paths.resolve_uri(artifact.uri)
        except ValueError:
            return None
        return resolved if os.path.isabs(resolved) else None


def requests_from_mapping(
    outputs: Mapping[str, Any],
    direction: str,
    *,
    driver: str | None,
    metadata_by_key: Mapping[str, Mapping[str, Any]] | None,
    shared_meta: Mapping[str, Any],
    extra_meta_by_key: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[ArtifactRequest]:
    """Validate a ``log_artifacts`` mapping and turn it into requests."""
    if not isinstance(outputs, Mapping):
        raise TypeError(
            f"log_artifacts expects a mapping of key -> path, got {type(outputs).__name__}; "
            "e.g. log_artifacts({'persons': 'out/persons.parquet'})"
        )
    for key in outputs:
        if not isinstance(key, str):
            raise TypeError(f"log_artifacts mapping keys must be strings, got {key!r}")
    metadata_by_key = metadata_by_key or {}
    unknown = sorted(set(metadata_by_key) - set(outputs))
    if unknown:
        raise ValueError(
            f"metadata_by_key has keys not present in outputs: {unknown}; "
            "use the same keys as the mapping you log"
        )
    requests = []
    for key, ref in outputs.items():
        meta = {**shared_meta, **(metadata_by_key.get(key) or {})}
        if extra_meta_by_key and key in extra_meta_by_key:
            meta.update(extra_meta_by_key[key])
        requests.append(
            ArtifactRequest(ref=ref, key=key, direction=direction, driver=driver, meta=meta)
        )
    return requests


def ensure_path(value: Any) -> Path:
    """``Path`` of a str / PathLike (helper for callers)."""
    return Path(os.fspath(value))


def begin_input_requests(inputs: Iterable[Any] | None) -> list[ArtifactRequest]:
    """Input requests of ``begin_run(inputs=...)``: a mapping, or paths/Artifacts.

    Unnamed paths are keyed by their stem (their file name when two stems
    collide).

    Raises
    ------
    TypeError
        For a single path, or an entry that is neither a path nor an Artifact.
    """
    if inputs is None:
        return []
    if isinstance(inputs, str | bytes | os.PathLike):
        raise TypeError("inputs must be a list of paths or Artifacts, not a single path")
    if isinstance(inputs, Mapping):
        items = list(inputs.items())
    else:
        items = []
        used: set[str] = set()
        for ref in inputs:
            if isinstance(ref, Artifact):
                items.append((None, ref))
                continue
            if not isinstance(ref, str | os.PathLike):
                raise TypeError(
                    f"inputs must contain paths or Artifacts, got {type(ref).__name__}: {ref!r}"
                )
            path = Path(os.fspath(ref))
            key = path.stem or path.name
            if key in used:
                key = path.name
            used.add(key)
            items.append((key, ref))
    return [ArtifactRequest(ref=ref, key=key, direction="input") for key, ref in items]


def member_digest(path: str, artifact: Artifact) -> str | None:
    """The current digest of a table or array inside a container file (None: unknown kind).

    Only HDF5 tables have one today (``consist.core.drivers.hdf5``).
    """
    if artifact.driver == "h5_table":
        from consist.core.drivers.hdf5 import current_digest

        return current_digest(path, artifact)
    return artifact.hash  # no member hashing for this kind: trust the record
