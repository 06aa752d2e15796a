"""Model configuration as provenance: the ``ConfigAdapter`` protocol and its records.

An ActivitySim or BEAM run is defined by a tree of YAML/CSV or HOCON files
more than by Python arguments. A *config adapter* knows one model's layout:
given ordered config directories it resolves the effective tree and returns
a :class:`ConfigPlan`, without writing anything:

* ``files``: every file the effective configuration is made of, each with
  the digest of its *canonical* content (YAML/HOCON parsed and re-serialised,
  so whitespace and comments do not count; other files by their bytes);
* ``tables``: queryable slices (coefficients, constants, specs) as rows;
* ``values``: the resolved settings as a nested mapping (the run's facet, so
  every key is a queryable config value);
* ``identity``: one digest over the files' canonical digests.

The tracker folds the per-file digests into the config side of a run's
identity (so a miss explanation names the file that changed), logs the files
as inputs with ``meta["config_role"] = "config"`` once the run has begun,
writes a bundle of the effective tree (``meta["config_role"] = "bundle"``)
and ingests the tables. Adapters live in :mod:`consist.integrations`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from consist.core.identity.hashing import hash_bytes

__all__ = [
    "CONFIG_PLAN_DOMAIN",
    "ConfigAdapter",
    "ConfigAdapterOptions",
    "ConfigContribution",
    "ConfigFile",
    "ConfigPlan",
    "ConfigTable",
    "canonical_values_digest",
    "plan_facet",
    "plan_identity",
    "resolve_config_dirs",
]

CONFIG_PLAN_DOMAIN = b"consist-config-plan/1\0"


@dataclass(frozen=True)
class ConfigAdapterOptions:
    """Options shared by every adapter.

    Attributes
    ----------
    strict:
        A file the configuration references but that no config directory
        holds is an error naming it (otherwise it is skipped and listed in
        ``ConfigPlan.missing``).
    ingest:
        Ingest the plan's tables into the store when the plan is applied.
    profile_schema:
        Profile the schema of ingested tables.
    """

    strict: bool = False
    ingest: bool = True
    profile_schema: bool = False


@dataclass(frozen=True)
class ConfigFile:
    """One file of the effective configuration.

    Attributes
    ----------
    name:
        Its name in the effective tree (POSIX, relative), e.g.
        ``"trip_mode_choice_coefficients.csv"``; unique within a plan.
    path:
        Where it was found (the first config directory that holds it).
    role:
        What it is for the model (``"settings"``, ``"model"``, ``"spec"``,
        ``"coefficients"``, ``"constants"``, ``"include"``, ...).
    digest:
        Digest of its canonical content (``blake3:...``).
    """

    name: str
    path: Path
    role: str
    digest: str


@dataclass(frozen=True)
class ConfigTable:
    """A queryable slice of the configuration, ingested per run.

    Attributes
    ----------
    name:
        Table name in the store (``[a-z0-9_]``), e.g. ``"asim_coefficients"``;
        tables of one name share columns across files.
    source:
        ``ConfigFile.name`` of the file the rows came from.
    rows:
        The rows, as dicts of plain values.
    """

    name: str
    source: str
    rows: list[dict[str, Any]]


@dataclass
class ConfigPlan:
    """What a config adapter resolved from ordered config directories (nothing written).

    Attributes
    ----------
    adapter:
        The adapter's name (``"activitysim"``, ``"beam"``).
    config_dirs:
        The directories, in search order.
    files, tables, values:
        See the module docstring.
    missing:
        Referenced files no directory holds (only when not strict).
    identity:
        Digest over the files' canonical digests (see :func:`plan_identity`).
    """

    adapter: str
    config_dirs: list[Path]
    files: list[ConfigFile]
    tables: list[ConfigTable] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    identity: str = ""

    def __post_init__(self) -> None:
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            raise ValueError(f"config plan of {self.adapter!r} names a file twice: {names}")
        if not self.identity:
            self.identity = plan_identity(self.adapter, self.files)

    def identity_components(self) -> dict[str, str]:
        """``{"<adapter>:<file name>": canonical digest}``: what joins a run's identity."""
        return {f"{self.adapter}:{f.name}": f.digest for f in self.files}


def plan_identity(adapter: str, files: Sequence[ConfigFile]) -> str:
    """The digest of a plan: its adapter and each file's name and canonical digest."""
    payload = json.dumps(
        {"adapter": adapter, "files": sorted([f.name, f.digest] for f in files)},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hash_bytes(CONFIG_PLAN_DOMAIN + payload.encode())


@dataclass
class ConfigContribution:
    """What applying a plan added to a run.

    Attributes
    ----------
    identity:
        The plan's identity digest.
    artifacts:
        The config files logged as inputs (``meta["config_role"] == "config"``).
    bundle:
        The bundle artifact of the effective tree, if one was written.
    tables:
        Rows ingested per table name.
    """

    identity: str
    artifacts: list[Any] = field(default_factory=list)
    bundle: Any = None
    tables: dict[str, int] = field(default_factory=dict)


@runtime_checkable
class ConfigAdapter(Protocol):
    """A model's configuration layout (see the module docstring).

    Adapters are plain objects constructed with keyword arguments only, all
    optional; ``root_dirs`` are the config directories used when a call
    gives none.
    """

    name: str
    root_dirs: list[Path]

    def plan(self, config_dirs: Sequence[Path], options: ConfigAdapterOptions) -> ConfigPlan:
        """Resolve the effective configuration of ``config_dirs`` (writes nothing).

        Raises
        ------
        FileNotFoundError
            Under ``options.strict``, for a referenced file no directory holds
            (the message names it).
        ValueError
            For a file that cannot be parsed (the message names it).
        """
        ...


def resolve_config_dirs(
    adapter: ConfigAdapter, config_dirs: Sequence[str | Path] | None, param: str = "config_dirs"
) -> list[Path]:
    """The directories a call names, else the adapter's ``root_dirs``; each must exist.

    Raises
    ------
    ValueError
        When neither gives any directory (the message says how to give them).
    FileNotFoundError
        For a directory that does not exist.
    """
    if isinstance(config_dirs, str | Path):
        raise TypeError(f"{param} must be a list of directories, e.g. [{str(config_dirs)!r}]")
    given = list(config_dirs) if config_dirs is not None else list(adapter.root_dirs or [])
    if not given:
        raise ValueError(
            f"adapter {adapter.name!r} has no config directories: construct it with "
            f"root_dirs=[...] or pass {param}=[...] (in search order, overriding first)"
        )
    dirs = [Path(d).expanduser().resolve() for d in given]
    for d in dirs:
        if not d.is_dir():
            raise FileNotFoundError(f"{param}: {d} is not a directory")
    return dirs


def plan_facet(values: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """A plan's resolved values as a run facet, and whether to index them as key/values.

    Values become plain JSON data (dates and paths as text). They are indexed
    (so ``get_config_value`` and facet queries see every key) when they fit
    the facet index limits; a larger configuration is kept whole as the
    run's JSON facet, without the warning an explicit facet would give, and
    its tables stay queryable in ``global_tables``.
    """
    from consist.core.run.run_facet import facet_index_limits
    from consist.core.store.flatten import flatten

    plain = json.loads(json.dumps(dict(values), default=str))
    max_keys, max_bytes = facet_index_limits()
    fits = len(flatten(plain)) <= max_keys and len(json.dumps(plain)) <= max_bytes
    return plain, fits


def canonical_values_digest(values: Mapping[str, Any] | list[Any] | Any) -> str:
    """Digest of parsed configuration values (key order, whitespace and comments do not count)."""
    from consist.core.identity.canonical import canonical_bytes

    return hash_bytes(canonical_bytes(values))
