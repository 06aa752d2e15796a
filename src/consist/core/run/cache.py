"""Cache lookup, validation of cached outputs, hydration and miss explanations."""

from __future__ import annotations

import os
import shutil
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consist.core.identity.hashing import ContentHasher
from consist.core.run.artifacts import ArtifactBuilder, member_digest
from consist.core.store.blob_store import BlobDigestMismatch, BlobStore, blob_digest
from consist.core.store.flatten import flatten
from consist.core.store.metadata_store import MetadataStore
from consist.models.artifact import Artifact
from consist.models.run import Run

MAX_CANDIDATES = 5
VALIDATION_MODES = ("lazy", "eager", "none")
# Digests the hasher can recompute (content, or stat identity under "fast").
VERIFIABLE_LABELS = ("blake3:", "stat:")
RECENT_LIMIT = 50_000


@dataclass
class CacheHit:
    """A completed run whose outputs can stand in for executing again.

    Attributes
    ----------
    source:
        The run that produced the outputs.
    outputs:
        Its output artifacts by the key it logged them with (local paths set).
    """

    source: Run
    outputs: dict[str, Artifact]
    inputs: dict[str, Artifact] = field(default_factory=dict)


# The lookup reason when no completed run had the signature at all (as opposed
# to runs whose outputs were gone or changed).
NO_RUN_WITH_SIGNATURE = "no completed run with this signature"


@dataclass
class LookupResult:
    """Outcome of a cache lookup: a hit, or why there is none."""

    hit: CacheHit | None
    reason: str | None = None
    # Files proved changed or unreadable, by (path, digest): a second lookup
    # of the same signature (single-flight) need not read them again.
    refuted: frozenset[tuple[str, str]] = frozenset()


class CacheService:
    """Finds reusable runs and materialises their outputs.

    Parameters
    ----------
    store:
        The metadata store.
    artifacts:
        Resolves artifact URIs to local paths.
    hasher:
        Verifies cached outputs against their recorded digests.
    is_ingested:
        Tells whether an artifact's rows were ingested into the store; a
        lazy lookup accepts such an output when its file is gone.
    """

    def __init__(
        self,
        store: MetadataStore,
        artifacts: ArtifactBuilder,
        hasher: ContentHasher,
        *,
        is_ingested: Callable[[Artifact], bool] | None = None,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.hasher = hasher
        # Whether an artifact's rows are held in the store (``ingest``): such
        # an output stays loadable after its file is deleted.
        self.is_ingested = is_ingested
        # Completed runs this process recorded, by signature. A completed run
        # never changes, so serving a lookup from here is as correct as the
        # database; outputs are still validated on disk every time.
        self._recent: OrderedDict[str, CacheHit] = OrderedDict()
        self._latest_by_model: dict[str, tuple[Run, dict[str, Any] | None]] = {}
        # Team mode (TrackerConfig.blob_store): outputs missing here but held
        # there are fetched on a hit (see fetch_missing).
        self.blobs: BlobStore | None = None

    def nearest(self, model: str, exclude_id: str) -> tuple[Run, dict[str, Any] | None] | None:
        """The newest completed run of ``model`` to explain a miss against.

        This process's own latest run of the model when it has one (it is
        what the user just ran), else the store's newest.
        """
        local = self._latest_by_model.get(model)
        if local is not None and local[0].id != exclude_id:
            return local
        return self.store.nearest_completed_run(model, exclude_id=exclude_id)

    def remember(
        self,
        run: Run,
        outputs: Mapping[str, Artifact],
        manifest: dict[str, Any] | None,
        *,
        is_source: bool = True,
    ) -> None:
        """Note a run this process just completed (speeds up later lookups).

        ``is_source=False`` (a cache hit) only updates the latest run of the
        model: hits keep pointing at the run that produced the outputs.
        """
        if run.status != "completed":
            return
        self._latest_by_model[run.model_name] = (run, manifest)
        if run.signature is None or not is_source:
            return
        self._recent[run.signature] = CacheHit(source=run, outputs=dict(outputs))
        self._recent.move_to_end(run.signature)
        while len(self._recent) > RECENT_LIMIT:
            self._recent.popitem(last=False)

    def lookup(
        self, signature: str, *, validate: str = "lazy", refuted: Iterable[tuple[str, str]] = ()
    ) -> LookupResult:
        """The newest completed run with ``signature`` whose outputs are intact.

        ``lazy`` requires every output to exist as a file holding its
        recorded digest (proved by an unchanged stat identity, or by reading
        the file when that changed), or as rows ingested into the store when
        the file is gone; ``eager`` requires the file and reads it all to
        compare digests; ``none`` checks nothing. Older runs with the same
        signature are tried when the newest one's outputs are gone or changed.

        ``refuted``: ``(path, digest)`` pairs an earlier lookup proved wrong
        (a changed file never changes back to its recorded digest unnoticed:
        it is only skipped, never trusted).

        Raises
        ------
        ValueError
            For an unknown ``validate`` mode.
        """
        if validate not in VALIDATION_MODES:
            raise ValueError(
                f"validate_cached_outputs={validate!r} is not supported; use one of "
                f"{', '.join(VALIDATION_MODES)} ('strict' is an alias of 'eager')"
            )
        reasons = []
        # Verdicts by (path, digest): runs with one signature often share files
        # (a hit links its source's outputs), so each file is proved once.
        verdicts: dict[tuple[str, str], bool] = dict.fromkeys(refuted, False)
        recent = self._recent.get(signature)
        if recent is not None:
            problem = self._validate(recent.outputs, validate, verdicts)
            if problem is None:
                return LookupResult(CacheHit(source=recent.source, outputs=dict(recent.outputs)))
            reasons.append(f"run {recent.source.id}: {problem}")
        candidates = [
            c
            for c in self.store.find_cache_candidates(signature, limit=MAX_CANDIDATES)
            if recent is None or c[0].id != recent.source.id
        ]
        if not candidates:
            return LookupResult(
                None, "; ".join(reasons) or NO_RUN_WITH_SIGNATURE, _refuted(verdicts)
            )
        for run, artifacts in candidates:
            outputs = {
                art.key: art.with_local_path(self.artifacts.local_path(art)) for art in artifacts
            }
            problem = self._validate(outputs, validate, verdicts)
            if problem is None:
                return LookupResult(CacheHit(source=run, outputs=outputs))
            reasons.append(f"run {run.id}: {problem}")
        return LookupResult(None, "; ".join(reasons), _refuted(verdicts))

    def _validate(
        self,
        outputs: Mapping[str, Artifact],
        mode: str,
        verdicts: dict[tuple[str, str], bool] | None = None,
    ) -> str | None:
        """Why ``outputs`` cannot be handed back (None when they can).

        Every mode but ``none`` proves that each output file still holds the
        digest recorded when it was produced: ``lazy`` trusts an unchanged
        stat identity (see ``ContentHasher.verify_many``), ``eager`` reads
        every byte. A file changed in place is never a hit with other bytes.
        """
        if mode == "none":
            return None
        to_verify: list[tuple[str, Artifact, str]] = []
        for key, art in outputs.items():
            path = art.abs_path
            if path is None or not os.path.exists(path):
                if mode == "lazy" and self._ingested(art):
                    continue
                problem = self._remote_problem(art, path)
                if problem is None:  # fetched from the blob store on the hit
                    continue
                return f"cached output {key!r} is missing ({art.uri}){problem}"
            if art.hash and (art.table_path or art.array_path):
                # A table inside a container: its own digest, not the file's.
                if member_digest(path, art) != art.hash:
                    return f"cached output {key!r} ({art.table_path}) changed in {path}"
            elif art.hash and art.hash.startswith(VERIFIABLE_LABELS):
                to_verify.append((key, art, path))
            # else: a digest given by the user in another form (content_hash=)
            # cannot be recomputed here; the file's existence is all we check.
        if not to_verify:
            return None
        known = verdicts if verdicts is not None else {}
        todo = sorted({(path, art.hash or "") for _, art, path in to_verify} - set(known))
        if todo:
            answers = self.hasher.verify_many(todo, trust_stat=mode == "lazy")
            known.update(zip(todo, answers, strict=True))
        for key, art, path in to_verify:
            if not known[(path, art.hash or "")]:
                return (
                    f"cached output {key!r} changed on disk since it was recorded: {path} no "
                    f"longer has the digest {art.hash}"
                )
        return None

    def _remote_problem(self, art: Artifact, path: str | None) -> str | None:
        """Why a missing output cannot be fetched ("" without a blob store; None: it can)."""
        digest = blob_digest(art)
        if self.blobs is None or path is None or digest is None:
            return ""
        try:
            return None if self.blobs.exists(digest) else " and not in the blob store"
        except OSError as exc:
            return f" and the blob store could not be asked: {exc}"

    def _ingested(self, art: Artifact) -> bool:
        if self.is_ingested is None:
            return bool(art.meta.get("is_ingested"))
        try:
            return bool(self.is_ingested(art))
        except Exception:  # a store that cannot answer makes no promise
            return False

    # -- hydration ----------------------------------------------------------------

    def copy_outputs(
        self,
        outputs: Mapping[str, Artifact],
        destinations: Mapping[str, Path],
    ) -> dict[str, Artifact]:
        """Copy cached outputs to ``destinations`` (key -> path).

        Returns the copied artifacts: same id and content, with ``.path`` at
        the new location. Raises FileNotFoundError when a source is gone.
        """
        copied: dict[str, Artifact] = {}
        for key, dest in destinations.items():
            art = outputs[key]
            src = art.abs_path
            if src is None or not os.path.exists(src):
                raise FileNotFoundError(f"cached output {key!r} is missing ({art.uri})")
            dest = Path(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if os.path.abspath(src) != os.path.abspath(dest):
                if os.path.isdir(src):
                    shutil.copytree(src, dest, dirs_exist_ok=True)
                else:
                    shutil.copy2(src, dest)
            copied[key] = art.model_copy(deep=True).with_local_path(str(dest))
        return copied

    def fetch_missing(
        self,
        outputs: Mapping[str, Artifact],
        destinations: Mapping[str, Path] | None = None,
    ) -> dict[str, Artifact]:
        """Fetch from the blob store the outputs whose files are missing here.

        Each goes to its destination (default: where its URI resolves in this
        tracker's ``run_dir``) and is verified before it is put in place.
        Returns the fetched artifacts by key, at their new location; without a
        blob store, nothing.

        Raises
        ------
        BlobStoreError
            (an ``OSError``) If an object is missing from the store, cannot be
            read, or does not hash to its digest (it is then refused, with a
            warning, and nothing is left at the destination).
        """
        fetched: dict[str, Artifact] = {}
        if self.blobs is None:
            return fetched
        for key, art in outputs.items():
            dest = (destinations or {}).get(key) or art.abs_path
            digest = blob_digest(art)
            if dest is None or digest is None or (art.abs_path and os.path.exists(art.abs_path)):
                continue
            # Not there: the hit stands as validated (ingested rows, or "none").
            if not self.blobs.exists(digest):
                continue
            try:
                self.blobs.fetch(digest, dest)
            except BlobDigestMismatch as exc:
                warnings.warn(f"cached output {key!r} refused: {exc}", RuntimeWarning, stacklevel=4)
                raise
            fetched[key] = art.model_copy(deep=True).with_local_path(str(dest))
        return fetched

    def restore_missing_inputs(self, requests: list[Any]) -> None:
        """``cache_hydration="inputs-missing"``: bring back inputs whose file is gone.

        Each request naming a missing file (or an Artifact whose file is
        missing) is restored from another recorded copy of its content.
        """
        for req in requests:
            art = req.ref if isinstance(req.ref, Artifact) else None
            dest = None
            if art is not None:
                dest = art.abs_path or self.artifacts.local_path(art)
            elif isinstance(req.ref, str | os.PathLike):
                dest = os.path.abspath(os.fspath(req.ref))
                if not os.path.exists(dest):
                    uri = self.artifacts.paths.virtualize(dest)
                    art = self.store.get_artifact_by_uri(uri)
            if art is None or dest is None or os.path.exists(dest):
                continue
            self.restore_missing_input(art, dest)

    def restore_missing_input(self, art: Artifact, dest: str) -> bool:
        """Restore a missing input file from another recorded copy of its content."""
        if art.content_id is None:
            return False
        for other in self.store.artifacts_with_content(art.content_id):
            src = self.artifacts.local_path(other)
            if src and os.path.isfile(src) and self.hasher.digest(src) == art.hash:
                Path(dest).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
                return True
        return False


def explain_difference(
    nearest: Run | None,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    lookup_reason: str | None = None,
) -> dict[str, Any]:
    """Why a run missed: what differs from the nearest completed run of its model.

    Parameters
    ----------
    nearest:
        The newest completed run of the same model (None if there is none).
    old, new:
        Identity manifests of ``nearest`` and of the new run.
    lookup_reason:
        Why no run with the same signature was usable. Reported (as
        ``cached_outputs``) only when such runs existed and their outputs were
        gone or changed, not when no run had the signature.
    """
    if lookup_reason == NO_RUN_WITH_SIGNATURE:
        lookup_reason = None
    if nearest is None:
        return {
            "nearest_run_id": None,
            "summary": f"no earlier completed run of model {new.get('model')!r}",
        }
    result: dict[str, Any] = {"nearest_run_id": nearest.id}
    if old is None:
        result["summary"] = f"run {nearest.id} has no stored identity to compare with"
        return result
    if lookup_reason and old.get("config_hash") == new.get("config_hash"):
        result["cached_outputs"] = lookup_reason
    config = _diff_maps(flatten(old.get("config") or {}), flatten(new.get("config") or {}))
    if config:
        result["config"] = config
    inputs = _diff_maps(
        {k: v.get("digest") for k, v in (old.get("inputs") or {}).items()},
        {k: v.get("digest") for k, v in (new.get("inputs") or {}).items()},
    )
    producers = _diff_maps(
        {k: v.get("producer_signature") for k, v in (old.get("inputs") or {}).items()},
        {k: v.get("producer_signature") for k, v in (new.get("inputs") or {}).items()},
    )
    for key in producers:
        inputs.setdefault(key, {"old": "same bytes", "new": "same bytes, other producer"})
    if inputs:
        result["inputs"] = inputs
    identity_inputs = _diff_maps(old.get("identity_inputs") or {}, new.get("identity_inputs") or {})
    if identity_inputs:
        result["identity_inputs"] = identity_inputs
    code = _diff_code(old.get("code") or {}, new.get("code") or {})
    if code:
        result["code"] = code
    other = {
        name: {"old": old.get(name), "new": new.get(name)}
        for name in ("callable", "year", "iteration", "cache_version", "cache_epoch")
        if old.get(name) != new.get(name)
    }
    if other:
        result["other"] = other
    parts = []
    for section in ("config", "inputs", "identity_inputs", "code", "other"):
        if section == "code" and "code" in result:
            parts.append(_code_summary(result["code"]))
        elif section in result:
            keys = list(result[section])[:5]
            parts.append(f"{section}: {', '.join(map(str, keys))}")
    if not parts and lookup_reason:
        parts.append(f"cached outputs unusable: {lookup_reason}")
    result["summary"] = "; ".join(parts) if parts else "identical identity"
    return result


def _diff_maps(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(old) | set(new)):
        if key not in old:
            out[key] = {"old": None, "new": new[key], "change": "added"}
        elif key not in new:
            out[key] = {"old": old[key], "new": None, "change": "removed"}
        elif old[key] != new[key]:
            out[key] = {"old": old[key], "new": new[key], "change": "changed"}
    return out


def _diff_code(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """What differs between two code identities: ``head``, ``files`` and others.

    ``files`` maps each repository-relative path whose state made the git
    identity differ to ``{"old", "new", "change"}``: ``"added"`` (a new
    untracked source file), ``"removed"`` (deleted, or an untracked source file
    gone) or ``"changed"`` (edited, reverted to ``HEAD``, or now committed);
    extra dependencies are listed the same way.
    """
    if old.get("digest") == new.get("digest") and old.get("mode") == new.get("mode"):
        return {}
    out: dict[str, Any] = {}
    if old.get("mode") != new.get("mode"):
        out["mode"] = {"old": old.get("mode"), "new": new.get("mode")}
    od, nd = old.get("details") or {}, new.get("details") or {}
    if od.get("head") != nd.get("head") and ("head" in od or "head" in nd):
        out["head"] = {"old": od.get("head"), "new": nd.get("head")}
    old_untracked = set(od.get("untracked") or ())
    new_untracked = set(nd.get("untracked") or ())
    for path, change in _diff_maps(od.get("dirty") or {}, nd.get("dirty") or {}).items():
        gone = change["new"] is None and path in old_untracked and "head" not in out
        if change["new"] == "deleted" or gone:
            change["change"] = "removed"
        elif change["old"] is None and path in new_untracked:
            change["change"] = "added"
        else:
            change["change"] = "changed"
        out.setdefault("files", {})[path] = change
    extra = _diff_maps(od.get("extra_deps") or {}, nd.get("extra_deps") or {})
    if extra:
        out.setdefault("files", {}).update(extra)
    for key in ("dirty_truncated", "extra_deps_truncated"):
        if od.get(key) != nd.get(key):
            out.setdefault("truncated", {})[key] = {"old": od.get(key), "new": nd.get(key)}
    if od.get("outside_repo_callable") != nd.get("outside_repo_callable"):
        out["outside_repo_callable"] = {
            "old": od.get("outside_repo_callable"),
            "new": nd.get("outside_repo_callable"),
        }
    old_box, new_box = od.get("container") or {}, nd.get("container") or {}
    for name in sorted(set(old_box) | set(new_box)):
        if old_box.get(name) != new_box.get(name):
            out.setdefault("container", {})[name] = {
                "old": old_box.get(name),
                "new": new_box.get(name),
            }
    for name in ("file_digest", "source_digest", "qualname", "module"):
        if od.get(name) != nd.get(name) and (name in od or name in nd):
            out[name] = {"old": od.get(name), "new": nd.get(name)}
            if name == "file_digest" and nd.get("file"):
                out.setdefault("files", {})[nd["file"]] = {"change": "changed"}
    if not out:
        out["digest"] = {"old": old.get("digest"), "new": new.get("digest")}
    return out


def _code_summary(code: Mapping[str, Any]) -> str:
    """One line naming what made the code identity differ (HEAD, files)."""
    parts = []
    head = code.get("head")
    if head:
        old, new = (str(head.get(k) or "none")[:12] for k in ("old", "new"))
        parts.append(f"HEAD {old} -> {new}")
    files = code.get("files") or {}
    if files:
        names = [f"{path} ({change.get('change', 'changed')})" for path, change in files.items()]
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        parts.append("files " + ", ".join(names[:5]) + more)
    if code.get("container"):
        parts.append("container " + ", ".join(code["container"]))
    parts += [key for key in code if key not in ("head", "files", "container")]
    return "code: " + "; ".join(parts)


def _refuted(verdicts: Mapping[tuple[str, str], bool]) -> frozenset[tuple[str, str]]:
    return frozenset(key for key, ok in verdicts.items() if not ok)
