"""Computes the identity of a run from its parts (config, inputs, code, dims)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from consist.core.identity.canonical import canonical_bytes
from consist.core.identity.hashing import ContentHasher, hash_bytes
from consist.core.identity.signature import InputIdentity, RunIdentity
from consist.models.artifact import Artifact

CALLABLE_MODES = ("callable_module", "callable_source")
_CONTAINER_DOMAIN = b"consist-code-container-v1\0"

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.identity.code_identity import CodeIdentityResolver
    from consist.core.store.metadata_store import MetadataStore


def _defining_file(fn: Callable[..., Any]) -> str | None:
    """The source file of the module that defines ``fn`` (None if unknown)."""
    import functools
    import inspect
    import sys

    from consist.core.identity.callable_identity import _unwrap_callable

    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    target = _unwrap_callable(target)
    code = getattr(target, "__code__", None)
    filename = getattr(code, "co_filename", None)
    if filename is not None:
        cached = _FILE_OF_CODE.get(filename)
        if cached is not None:
            return cached
    try:
        path = inspect.getsourcefile(target) or inspect.getfile(target)
    except (TypeError, OSError):
        module = sys.modules.get(getattr(target, "__module__", "") or "")
        path = getattr(module, "__file__", None)
    real = os.path.realpath(path) if path else None
    if filename is not None and real is not None and os.path.isfile(real):
        if len(_FILE_OF_CODE) > 4096:
            _FILE_OF_CODE.clear()
        _FILE_OF_CODE[filename] = real
    return real


# Code compiled from a file names that file (``co_filename``) for its whole
# life: resolving it (inspect + realpath, ~25 us) once per file name keeps it
# off the path of every run. Only the location is cached, and only for files
# that exist; their content is still proven unchanged on every run.
_FILE_OF_CODE: dict[str, str] = {}


def _real_root(root: str) -> str:
    """``os.path.realpath(root)``, cached per (path, device, inode) of the directory.

    One ``stat`` on every run instead of an ``lstat`` per path component; a
    root whose path now leads to another directory has another inode.
    """
    try:
        st = os.stat(root)
    except OSError:  # gone meanwhile: answer as realpath does, uncached
        return os.path.realpath(root)
    key = (root, st.st_dev, st.st_ino)
    real = _REAL_ROOTS.get(key)
    if real is None:
        real = os.path.realpath(root)
        if len(_REAL_ROOTS) > 256:
            _REAL_ROOTS.clear()
        _REAL_ROOTS[key] = real
    return real


_REAL_ROOTS: dict[tuple[str, int, int], str] = {}


def _distribution_version(fn: Callable[..., Any]) -> str | None:
    """``name==version`` of the installed distribution providing ``fn``'s module."""
    from importlib import metadata

    top = (getattr(fn, "__module__", "") or "").split(".")[0]
    if not top:
        return None
    try:
        names = metadata.packages_distributions().get(top) or [top]
        return f"{names[0]}=={metadata.version(names[0])}"
    except metadata.PackageNotFoundError:
        return None


def callable_name(fn: Callable[..., Any] | None) -> str | None:
    """``module:qualname`` of the code a callable runs, plus its bound arguments.

    Arguments bound with ``functools.partial`` change what the step computes,
    so they join the identity (canonicalised; a value that cannot be hashed
    faithfully raises). Values captured by closures are not part of it: pass
    such settings through ``config``.
    """
    if fn is None:
        return None
    import functools

    from consist.core.identity.callable_identity import _unwrap_callable

    bound: list[Any] = []
    target: Any = fn
    while isinstance(target, functools.partial):
        bound.append({"args": list(target.args), "keywords": dict(target.keywords)})
        target = target.func
    target = _unwrap_callable(target)
    module = getattr(target, "__module__", None) or "?"
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    name = f"{module}:{qualname}"
    if bound:
        digest = hash_bytes(canonical_bytes(bound, where="functools.partial arguments"))
        name += f"[partial {digest}]"
    return name


class IdentityService:
    """Builds :class:`RunIdentity` objects.

    Parameters
    ----------
    hasher:
        Digests identity-only inputs.
    code:
        Resolves code identity (git state or callable source).
    store:
        Looks up the signatures of runs that produced input artifacts (None
        in journal-only mode: inputs then count by content only).
    """

    def __init__(
        self,
        hasher: ContentHasher,
        code: CodeIdentityResolver,
        store: MetadataStore | None,
    ) -> None:
        self.hasher = hasher
        self.code = code
        self.store = store

    def compute(
        self,
        *,
        model: str,
        config: Mapping[str, Any],
        inputs: Sequence[Artifact],
        identity_inputs: Sequence[tuple[str, str]] = (),
        fn: Callable[..., Any] | None = None,
        code_identity: str | None = None,
        code_identity_extra_deps: Sequence[str] = (),
        code_identity_source_suffixes: Sequence[str] | None = None,
        year: int | None = None,
        iteration: int | None = None,
        cache_version: int | None = None,
        cache_epoch: int | None = None,
        run_id: str | None = None,
        code_exclude_dirs: Sequence[str] = (),
        container: Mapping[str, Any] | None = None,
    ) -> RunIdentity:
        """Digest every component; raises if config or code cannot be hashed faithfully.

        ``code_exclude_dirs``: work-tree changes there do not count as code
        (see :meth:`CodeIdentityResolver.resolve`). ``container``: a container
        step's definition and image digest
        (:meth:`~consist.core.containers.plan.ContainerPlan.identity`), which
        is its code; an explicit ``code_identity`` mode is folded in as well.
        """
        config_hash = hash_bytes(canonical_bytes(config))
        producers: dict[Any, str] = {}
        if self.store is not None:
            candidates = [a.id for a in inputs if a.run_id and a.run_id != run_id]
            if candidates:
                producers = self.store.producer_signatures(candidates)
        input_ids = {
            a.key: InputIdentity(digest=a.hash, producer_signature=producers.get(a.id))
            for a in inputs
        }
        named = {}
        if identity_inputs:
            digests = self.hasher.digest_many([p for _, p in identity_inputs])
            named = {name: d for (name, _), d in zip(identity_inputs, digests, strict=True)}
        if container is not None:
            code_digest, code_mode, details = self._container_code(
                container, code_identity, code_identity_extra_deps, code_identity_source_suffixes
            )
        elif fn is None and code_identity in CALLABLE_MODES:
            # begin_run / trace have no callable to scope identity to: the run
            # is recorded without a cache key (never a hit, never a source).
            code_digest, code_mode = None, "unavailable"
            details = {
                "fallback_reason": f"code_identity={code_identity!r} needs a function, and "
                "begin_run/start_run/trace run none; use 'repo_git' or tracker.run(fn=...)"
            }
        else:
            code = self.code.resolve(
                code_identity,
                fn,
                list(code_identity_extra_deps),
                source_suffixes=code_identity_source_suffixes,
                exclude_dirs=code_exclude_dirs,
            )
            code_digest, code_mode = code.digest, code.mode
            details = _compact_details(code.details)
            if code_mode == "repo_git" and fn is not None and code_digest is not None:
                code_digest = self._fold_outside_callable(fn, code_digest, details)
            if code.fallback_reason:
                details["fallback_reason"] = code.fallback_reason
        return RunIdentity(
            model=model,
            callable_name=callable_name(fn),
            config_hash=config_hash,
            inputs=input_ids,
            identity_inputs=named,
            code_digest=code_digest,
            code_mode=code_mode,
            code_details=details,
            year=year,
            iteration=iteration,
            cache_version=cache_version,
            cache_epoch=cache_epoch,
        )

    def _container_code(
        self,
        container: Mapping[str, Any],
        mode: str | None,
        extra_deps: Sequence[str],
        suffixes: Sequence[str] | None,
    ) -> tuple[str, str, dict[str, Any]]:
        """A container step's code: the container, plus the repository if ``mode`` asks."""
        own = hash_bytes(_CONTAINER_DOMAIN + canonical_bytes(dict(container)))
        details: dict[str, Any] = {"container": dict(container)}
        if mode is None and not extra_deps:
            return own, "container", details
        code = self.code.resolve(mode, None, list(extra_deps), source_suffixes=suffixes)
        if code.digest is None:
            from consist.core.identity.code_identity import CodeIdentityError

            raise CodeIdentityError(
                f"code_identity={mode!r} is unavailable for this container step "
                f"({code.fallback_reason}); drop code_identity to use the container alone"
            )
        details.update(_compact_details(code.details))
        folded = hash_bytes(_CONTAINER_DOMAIN + f"{own}\0{code.digest}".encode())
        return folded, f"container+{code.mode}", details

    def _cell_source(self, fn: Callable[..., Any], path: str | None) -> dict[str, Any] | None:
        """Identity of a function defined where no module file exists (a cell)."""
        if path is not None and os.path.exists(path):
            return None  # a real file that callable_module refused: not a cell
        try:
            own = self.code.resolve("callable_source", fn, [])
        except (ValueError, OSError, TypeError):
            return None
        return {"mode": "callable_source", "digest": own.digest, "file": path}

    def _fold_outside_callable(
        self, fn: Callable[..., Any], repo_digest: str, details: dict[str, Any]
    ) -> str:
        """Fold in the code of a step function defined outside the repository.

        ``repo_git`` identity only sees the repository, so a function from an
        installed package (or any file elsewhere) would keep its cache hits
        after that code changed. Its module file is hashed too
        (``callable_module``). A function whose module has no file but whose
        source Python still holds (a notebook cell, ``exec``'d code) folds in
        its own source (``callable_source``), so editing and re-running the
        cell is a miss and re-running it unchanged a hit. A compiled
        extension contributes its installed distribution's version.

        Raises
        ------
        CodeIdentityError
            If neither can be determined (fail closed).
        """
        root = details.get("root")
        path = _defining_file(fn)
        if path is not None and root and _is_within(path, _real_root(root)):
            return repo_digest
        extra: dict[str, Any] | None
        try:
            outside = self.code.resolve("callable_module", fn, [])
            extra = {"mode": "callable_module", "digest": outside.digest, "file": path}
        except ValueError:
            extra = self._cell_source(fn, path)
        if extra is None:
            version = _distribution_version(fn)
            if version is None:
                from consist.core.identity.code_identity import CodeIdentityError

                raise CodeIdentityError(
                    f"code_identity: {callable_name(fn)} is defined outside the repository "
                    f"({path or 'no source file'}) and has no hashable source or installed "
                    "version; wrap it in a function defined in your project, or pass "
                    "code_identity='callable_source' / code_identity_extra_deps"
                ) from None
            extra = {"mode": "distribution", "version": version}
        details["outside_repo_callable"] = extra
        payload = f"{repo_digest}\0{extra.get('digest') or extra.get('version')}".encode()
        return hash_bytes(b"consist-code-repo+callable-v1\0" + payload)


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


MAX_LISTED_FILES = 200


def _compact_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """Code identity details small enough to store with every run.

    The digest covers every changed file; the stored explanation lists at most
    ``MAX_LISTED_FILES`` of them (plus a digest of the whole list), so a
    repository with thousands of untracked files does not bloat each run.
    """
    out = dict(details)
    for section in ("dirty", "extra_deps"):
        files = out.get(section)
        if isinstance(files, Mapping) and len(files) > MAX_LISTED_FILES:
            items = sorted(files.items())
            listing = "\n".join(f"{k}\0{v}" for k, v in items).encode()
            out[section] = dict(items[:MAX_LISTED_FILES])
            out[f"{section}_truncated"] = {"count": len(items), "digest": hash_bytes(listing)}
    untracked = out.get("untracked")
    if isinstance(untracked, list) and len(untracked) > MAX_LISTED_FILES:
        # Only the listed dirty paths need their untracked flag.
        listed = out.get("dirty") or {}
        out["untracked"] = [rel for rel in untracked if rel in listed]
    return out
