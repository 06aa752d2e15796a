"""Coupler: a scenario-local map of artifact keys, so step N+1 takes step N's output by name.

A :class:`~consist.core.workflow.scenario.ScenarioContext` owns one coupler. After
every step it registers the step's outputs under their output keys (a later
step producing the same key replaces the earlier entry: in a multi-year loop
``coupler["population"]`` is always the newest year's table), and
``sc.add_input(path, key=...)`` registers scenario inputs. A step input given
as a string is looked up here first.

The coupler holds records only; it never reads, copies or deletes files.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from consist.models.artifact import Artifact

_SEPARATOR = "/"


class Coupler:
    """A key -> :class:`~consist.models.artifact.Artifact` map with namespaced views.

    Parameters
    ----------
    initial:
        Entries to start with (key -> Artifact).

    Notes
    -----
    ``namespace("asim")`` returns a view sharing the same storage whose keys
    are relative to the prefix ``"asim/"``: ``view.set("trips", art)`` stores
    ``"asim/trips"``, ``view.keys()`` lists only keys under the prefix (with
    the prefix removed). Namespaces nest (``namespace("a").namespace("b")``
    is ``"a/b/"``). Mapping-style access (``coupler[key]``, ``key in
    coupler``, ``len``, iteration) works on every view.

    Examples
    --------
    >>> coupler = Coupler()
    >>> coupler.set("households", result.outputs["households"])  # doctest: +SKIP
    >>> coupler.path("households")                               # doctest: +SKIP
    PosixPath('/work/runs/outputs/synth/synth_.../households.parquet')
    """

    def __init__(self, initial: Mapping[str, Artifact] | None = None) -> None:
        self._data: dict[str, Artifact] = {}
        self._prefix = ""
        if initial is not None:
            self.update(initial)

    # -- views ------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        """The key prefix of this view (``""`` for the root coupler)."""
        return self._prefix

    def namespace(self, name: str) -> Coupler:
        """A view of the keys under ``name/`` (sharing storage with this coupler).

        Raises
        ------
        ValueError
            If ``name`` is empty or starts/ends with ``/``.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"namespace name must be a non-empty string, got {name!r}")
        if name.startswith(_SEPARATOR) or name.endswith(_SEPARATOR):
            raise ValueError(f"namespace name {name!r} must not start or end with '/'")
        view = Coupler.__new__(Coupler)
        view._data = self._data
        view._prefix = f"{self._prefix}{name}{_SEPARATOR}"
        return view

    # -- writes -----------------------------------------------------------------

    def set(self, key: str, artifact: Artifact) -> Artifact:
        """Register ``artifact`` under ``key`` (replacing an existing entry).

        Returns
        -------
        Artifact
            The artifact, for chaining.

        Raises
        ------
        TypeError
            If ``artifact`` is not an Artifact (log a file first, e.g. with
            ``sc.add_input(path, key=...)``), or ``key`` is not a string.
        ValueError
            If ``key`` is empty.
        """
        full = self._full_key(key)
        if not isinstance(artifact, Artifact):
            raise TypeError(
                f"coupler.set({key!r}, ...) needs an Artifact, got {type(artifact).__name__}; "
                "log the file first (sc.add_input(path, key=...) or a step's outputs)"
            )
        self._data[full] = artifact
        return artifact

    def update(self, entries: Mapping[str, Artifact]) -> None:
        """Register several entries (see :meth:`set`)."""
        if not isinstance(entries, Mapping):
            raise TypeError(f"update expects a mapping key -> Artifact, got {type(entries)}")
        for key, artifact in entries.items():
            self.set(key, artifact)

    def pop(self, key: str, default: Any = None) -> Any:
        """Remove ``key`` and return its artifact (``default`` when absent)."""
        return self._data.pop(self._full_key(key), default)

    # -- reads ------------------------------------------------------------------

    def get(self, key: str, default: Artifact | None = None) -> Artifact | None:
        """The artifact registered under ``key``, or ``default``."""
        return self._data.get(self._full_key(key), default)

    def require(self, key: str) -> Artifact:
        """The artifact registered under ``key``.

        Raises
        ------
        KeyError
            If ``key`` is absent; the message lists the available keys.
        """
        artifact = self._data.get(self._full_key(key))
        if artifact is None:
            raise KeyError(
                f"coupler has no key {key!r}{self._where()}; available keys: {self.keys()}"
            )
        return artifact

    def path(self, key: str) -> Path:
        """The local path of the artifact registered under ``key``.

        Raises
        ------
        KeyError
            If ``key`` is absent (listing the available keys).
        FileNotFoundError
            If the artifact has no local path on this machine.
        """
        artifact = self.require(key)
        if artifact.abs_path is None:
            raise FileNotFoundError(
                f"coupler key {key!r} ({artifact.uri}) has no local path; resolve it with "
                "tracker.resolve_uri(artifact.uri)"
            )
        return Path(artifact.abs_path)

    def keys(self) -> list[str]:
        """Keys of this view (relative to its prefix), in insertion order."""
        n = len(self._prefix)
        return [k[n:] for k in self._data if k.startswith(self._prefix)]

    def items(self) -> list[tuple[str, Artifact]]:
        """``(key, artifact)`` pairs of this view, in insertion order."""
        n = len(self._prefix)
        return [(k[n:], a) for k, a in self._data.items() if k.startswith(self._prefix)]

    def values(self) -> list[Artifact]:
        """Artifacts of this view, in insertion order."""
        return [a for _, a in self.items()]

    def to_dict(self) -> dict[str, Artifact]:
        """A plain ``{key: artifact}`` copy of this view."""
        return dict(self.items())

    # -- mapping protocol -----------------------------------------------------------

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(key) and (self._prefix + key) in self._data

    def __getitem__(self, key: str) -> Artifact:
        return self.require(key)

    def __setitem__(self, key: str, artifact: Artifact) -> None:
        self.set(key, artifact)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __repr__(self) -> str:
        where = f" prefix={self._prefix!r}" if self._prefix else ""
        return f"<Coupler{where} keys={self.keys()}>"

    # -- helpers ------------------------------------------------------------------

    def _full_key(self, key: str) -> str:
        if not isinstance(key, str):
            raise TypeError(f"coupler keys must be strings, got {type(key).__name__}: {key!r}")
        if not key.strip():
            raise ValueError("coupler keys must be non-empty strings")
        return self._prefix + key

    def _where(self) -> str:
        return f" in namespace {self._prefix[:-1]!r}" if self._prefix else ""
