"""A content-addressed blob store for run outputs, on any fsspec file system.

Team mode: a run that executed uploads its output files here, keyed by their
BLAKE3 digest; another machine whose cache lookup hits that run fetches the
files it lacks and verifies them before they are used.

Layout under the store's root (``s3://bucket/prefix`` or a local directory)::

    blake3/<hex[:2]>/<hex>            a file's bytes, keyed by its content digest
    blake3/<hex[:2]>/<hex>.dir.json   a directory: {"files": {relpath: digest}}

A directory's digest is the Merkle digest of its files (see
:func:`~consist.core.identity.hashing.hash_directory`); each file is stored
under its own digest, and the manifest is written last, so a manifest that
exists names files that exist. Objects are immutable: :meth:`BlobStore.put`
skips an object that is already there.

Every download lands in a temporary name beside its destination and is
verified (its BLAKE3 digest, a directory's Merkle digest) before it is renamed
into place; a mismatch raises :class:`BlobDigestMismatch`, leaves nothing at the
destination, and removes the bad object from the store (content addressing
makes an object whose bytes do not hash to its key garbage by definition), so
the next upload of the real content replaces it.

Shapefile bundles (a ``.shp`` digested with its sidecars) and tables inside
containers (digest of a member, not of the file) are not content-addressable
as one file: :func:`blob_digest` returns None for them and they are neither
uploaded nor fetched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from consist.core.identity.file_bundles import is_shp
from consist.core.identity.hashing import ALGORITHM, ContentHasher, hash_directory, hash_file
from consist.models.artifact import Artifact

__all__ = ["BlobDigestMismatch", "BlobStore", "BlobStoreError", "blob_digest"]

_PREFIX = f"{ALGORITHM}:"
_HEX = frozenset("0123456789abcdef")
_MANIFEST_SUFFIX = ".dir.json"
_PART = ".consist-blob-part"


class BlobStoreError(OSError):
    """The blob store could not be read or written (unreachable, no such object)."""


class BlobDigestMismatch(BlobStoreError):
    """Downloaded bytes do not hash to the digest they are stored under."""


def blob_digest(artifact: Artifact) -> str | None:
    """The digest ``artifact`` is stored under in a blob store, or None if it cannot be.

    Only a BLAKE3 content digest of a whole file or directory qualifies: not a
    ``stat:`` digest, a digest given by the user in another form, a table
    inside a container, or a Shapefile bundle.
    """
    digest = artifact.hash
    if not digest or not digest.startswith(_PREFIX):
        return None
    if artifact.table_path or artifact.array_path:
        return None
    path = artifact.abs_path or artifact.uri
    if path and is_shp(path):
        return None
    return digest


def _hex_of(digest: str) -> str:
    if not isinstance(digest, str) or not digest.startswith(_PREFIX):
        raise ValueError(
            f"digest={digest!r} is not a {ALGORITHM} content digest ('{_PREFIX}<hex>')"
        )
    hex_part = digest[len(_PREFIX) :]
    if len(hex_part) != 64 or not set(hex_part) <= _HEX:
        raise ValueError(
            f"digest={digest!r} is not '{_PREFIX}' followed by 64 lowercase hex digits"
        )
    return hex_part


class BlobStore:
    """Content-addressed objects under one fsspec URL.

    Parameters
    ----------
    url:
        ``"s3://bucket/prefix"`` (any protocol fsspec knows), or a local
        directory path (relative paths are taken from the current directory
        when the store is opened; created on first upload).
    storage_options:
        Passed to the fsspec file system, e.g. for S3
        ``{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"},
        "key": ..., "secret": ...}``. None: fsspec's usual configuration
        (environment variables, ``~/.aws``, fsspec config files).
    hasher:
        Digests local files before upload (its stat cache spares reading a
        large output that was just hashed). Default: read them.

    Raises
    ------
    ValueError
        If ``url`` is empty or not a string/path.
    ImportError
        If fsspec, or the package of the URL's protocol (s3fs), is missing.
    """

    def __init__(
        self,
        url: str | os.PathLike[str],
        storage_options: Mapping[str, Any] | None = None,
        *,
        hasher: ContentHasher | None = None,
    ) -> None:
        if isinstance(url, os.PathLike):
            url = os.fspath(url)
        if not isinstance(url, str) or not url.strip():
            raise ValueError(
                f"blob_store={url!r} must be a URL such as 's3://bucket/prefix' or a local "
                "directory path"
            )
        try:
            import fsspec.core
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("blob_store needs fsspec: pip install 'consist[blobs]'") from exc
        if "://" not in url:
            url = os.path.abspath(os.path.expanduser(url))
        try:
            fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
        except ImportError as exc:
            raise ImportError(
                f"blob_store={url!r} needs a package fsspec could not import ({exc}): "
                "pip install 'consist[blobs]'"
            ) from exc
        self.url = url
        self._fs = fs
        self._root = str(root).rstrip("/")
        protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
        self._local = "file" in protocols or "local" in protocols
        self._hasher = hasher

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r})"

    # -- keys -------------------------------------------------------------------------

    def key_for(self, digest: str) -> str:
        """The object key (path in the file system) of a file's bytes."""
        hex_part = _hex_of(digest)
        return f"{self._root}/{ALGORITHM}/{hex_part[:2]}/{hex_part}"

    def manifest_key_for(self, digest: str) -> str:
        """The object key of a directory's manifest."""
        return self.key_for(digest) + _MANIFEST_SUFFIX

    # -- queries ----------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        """Whether the store holds ``digest`` (a file's bytes or a directory's manifest).

        Raises
        ------
        ValueError
            If ``digest`` is not a BLAKE3 content digest.
        BlobStoreError
            If the store cannot be asked (unreachable, no permission).
        """
        return self._exists(self.key_for(digest)) or self._exists(self.manifest_key_for(digest))

    def _exists(self, key: str) -> bool:
        try:
            return bool(self._fs.exists(key))
        except Exception as exc:
            raise BlobStoreError(f"blob store {self.url}: could not check {key}: {exc}") from exc

    # -- upload -----------------------------------------------------------------------

    def put(self, path: str | os.PathLike[str], digest: str) -> bool:
        """Upload a file or directory under ``digest``; skip it when already stored.

        The content is digested first: a file whose bytes no longer hash to
        ``digest`` (changed since it was recorded) is not uploaded.

        Returns
        -------
        bool
            True if anything was uploaded, False if the store already had it.

        Raises
        ------
        ValueError
            If ``digest`` is not a BLAKE3 content digest.
        BlobDigestMismatch
            If the content at ``path`` does not hash to ``digest``.
        BlobStoreError
            If the store cannot be written.
        FileNotFoundError
            If ``path`` does not exist.
        """
        local = os.fspath(path)
        if os.path.isdir(local):
            return self._put_directory(local, digest)
        if self._exists(self.key_for(digest)):
            return False
        actual = self._digest(local)
        if actual != digest:
            raise BlobDigestMismatch(
                f"{local} now hashes to {actual}, not the recorded {digest}; not uploaded"
            )
        self._upload_file(local, self.key_for(digest))
        return True

    def _put_directory(self, local: str, digest: str) -> bool:
        manifest_key = self.manifest_key_for(digest)
        if self._exists(manifest_key):
            return False
        files: dict[str, str] = {}

        def record(file_path: Path) -> str:
            file_digest = self._digest(str(file_path))
            files[file_path.relative_to(local).as_posix()] = file_digest
            return file_digest

        actual = hash_directory(local, file_digest=record)
        if actual != digest:
            raise BlobDigestMismatch(
                f"directory {local} now hashes to {actual}, not the recorded {digest}; not uploaded"
            )
        for rel, file_digest in sorted(files.items()):
            key = self.key_for(file_digest)
            if not self._exists(key):
                self._upload_file(os.path.join(local, *rel.split("/")), key)
        body = json.dumps({"digest": digest, "files": files}, sort_keys=True).encode()
        self._write_bytes(manifest_key, body)
        return True

    def _digest(self, local: str) -> str:
        if self._hasher is not None and self._hasher.strategy == "full":
            return self._hasher.digest(local)
        return hash_file(local)

    def _upload_file(self, local: str, key: str) -> None:
        try:
            if self._local:
                # A reader never sees a partial object: write aside, then rename.
                os.makedirs(os.path.dirname(key), exist_ok=True)
                part = f"{key}.{uuid.uuid4().hex}{_PART}"
                self._fs.put_file(local, part)
                os.replace(part, key)
            else:
                self._fs.put_file(local, key)  # one object PUT: atomic for readers
        except Exception as exc:
            raise BlobStoreError(f"blob store {self.url}: could not upload {local}: {exc}") from exc

    def _write_bytes(self, key: str, body: bytes) -> None:
        try:
            if self._local:
                os.makedirs(os.path.dirname(key), exist_ok=True)
                part = f"{key}.{uuid.uuid4().hex}{_PART}"
                self._fs.pipe_file(part, body)
                os.replace(part, key)
            else:
                self._fs.pipe_file(key, body)
        except Exception as exc:
            raise BlobStoreError(f"blob store {self.url}: could not write {key}: {exc}") from exc

    def upload(self, artifacts: Iterable[Artifact]) -> tuple[list[str], dict[str, str]]:
        """Upload every artifact that has a content digest and a local file.

        Returns
        -------
        (uploaded, failed)
            Keys of the artifacts uploaded now (already stored ones are not
            listed), and ``{key: error message}`` of those that failed.
            Artifacts without a blob digest or a local file are skipped.
        """
        uploaded: list[str] = []
        failed: dict[str, str] = {}
        for art in artifacts:
            digest = blob_digest(art)
            path = art.abs_path
            if digest is None or path is None or not os.path.exists(path):
                continue
            try:
                if self.put(path, digest):
                    uploaded.append(art.key)
            except Exception as exc:  # reported to the caller; never raised past a run
                failed[art.key] = f"{type(exc).__name__}: {exc}"
        return uploaded, failed

    # -- download ---------------------------------------------------------------------

    def fetch(self, digest: str, dest: str | os.PathLike[str]) -> Path:
        """Download ``digest`` to ``dest``, verified before it is put in place.

        A file replaces whatever file is at ``dest``; a directory requires
        that nothing is there.

        Returns
        -------
        Path
            ``dest``.

        Raises
        ------
        ValueError
            If ``digest`` is not a BLAKE3 content digest.
        BlobDigestMismatch
            If the downloaded content does not hash to ``digest`` (nothing is
            left at ``dest``; the bad object is removed from the store).
        BlobStoreError
            If the store has no such object or cannot be read.
        FileExistsError
            If ``dest`` exists and the object is a directory.
        """
        target = Path(dest)
        key = self.key_for(digest)
        if self._exists(key):
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.parent / f".{target.name}.{uuid.uuid4().hex}{_PART}"
            try:
                self._fetch_file(key, digest, part)
                os.replace(part, target)
            finally:
                part.unlink(missing_ok=True)
            return target
        manifest_key = self.manifest_key_for(digest)
        if not self._exists(manifest_key):
            raise BlobStoreError(f"blob store {self.url} has no object for {digest}")
        if os.path.lexists(target):
            raise FileExistsError(f"cannot fetch directory {digest} to {target}: it exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.parent / f".{target.name}.{uuid.uuid4().hex}{_PART}"
        try:
            part.mkdir()
            for rel, file_digest in self._read_manifest(manifest_key, digest).items():
                self._fetch_file(self.key_for(file_digest), file_digest, part.joinpath(rel))
            actual = hash_directory(part)
            if actual != digest:
                self._discard(manifest_key)
                raise BlobDigestMismatch(
                    f"blob store {self.url}: directory manifest {manifest_key} rebuilds a tree "
                    f"hashing to {actual}, not {digest}; removed it from the store"
                )
            os.replace(part, target)
        finally:
            if part.exists():
                shutil.rmtree(part, ignore_errors=True)
        return target

    def _fetch_file(self, key: str, digest: str, part: Path) -> None:
        part.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._fs.get_file(key, str(part))
        except FileNotFoundError as exc:
            raise BlobStoreError(f"blob store {self.url} has no object {key}") from exc
        except Exception as exc:
            raise BlobStoreError(f"blob store {self.url}: could not download {key}: {exc}") from exc
        actual = hash_file(part)
        if actual != digest:
            part.unlink(missing_ok=True)
            self._discard(key)
            raise BlobDigestMismatch(
                f"blob store {self.url}: object {key} hashes to {actual}, not {digest}; "
                "refused it and removed it from the store"
            )

    def _read_manifest(self, key: str, digest: str) -> dict[str, str]:
        try:
            data = json.loads(self._fs.cat_file(key))
            files = data["files"]
            if not isinstance(files, dict):
                raise TypeError("'files' is not a mapping")
        except Exception as exc:
            raise BlobStoreError(
                f"blob store {self.url}: unreadable manifest {key}: {exc}"
            ) from exc
        for rel, file_digest in files.items():
            parts = PurePosixPath(rel).parts
            if not isinstance(rel, str) or not parts or rel.startswith("/") or ".." in parts:
                self._discard(key)
                raise BlobDigestMismatch(
                    f"blob store {self.url}: manifest {key} of {digest} names the path {rel!r} "
                    "outside its directory; removed it from the store"
                )
            try:
                _hex_of(file_digest)
            except ValueError as exc:
                self._discard(key)
                raise BlobDigestMismatch(
                    f"blob store {self.url}: manifest {key} of {digest} is corrupt ({exc}); "
                    "removed it from the store"
                ) from exc
        return files

    def _discard(self, key: str) -> None:
        """Remove an object whose bytes do not match its key (best effort)."""
        with contextlib.suppress(Exception):  # the mismatch is what gets reported
            self._fs.rm_file(key)
