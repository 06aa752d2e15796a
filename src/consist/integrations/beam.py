"""BEAM configuration as provenance: :class:`BeamConfigAdapter`.

A BEAM run is defined by a HOCON file (the *primary* ``.conf``) that
``include``\\ s other HOCON files and refers to input files (networks,
vehicle types, ...) by path. The adapter resolves that tree into a
:class:`~consist.core.run.config_plan.ConfigPlan` (see the ConfigAdapter
protocol) without writing anything:

Files (``plan.files``)
    * the primary file (role ``"primary"``) and every file actually included,
      directly or not (role ``"include"``). Their digest is over their *own*
      parsed content: the file is parsed with its include directives taken
      out and substitutions left unresolved (kept as ``${path}`` tokens), and
      the parsed tree is digested together with the list of its include
      targets as written (``{"values": ..., "includes": [...]}``). Whitespace
      and comment-only edits therefore do not change it; changing a value or
      an include target does.
    * every input file the resolved configuration refers to (role
      ``"input"``): a string value ending in one of ``input_suffixes`` that
      names an existing file inside a config directory (relative values are
      looked up in the directories in order, the first one holding it wins;
      absolute values count when they point inside a config directory).
      Their digest is of their bytes. Paths outside every config directory
      are not part of the tree; values that name no existing file are listed
      in ``plan.missing`` (they may be outputs or relative to BEAM's working
      directory, so they are never an error, even under ``strict``).
    * one synthetic entry, ``<resolved>`` (role ``"resolved"``), whose digest
      is :func:`canonical_values_digest` of the fully resolved configuration.
      Its ``path`` is the primary file's directory (it is no file, so the
      tracker does not log it). It guarantees that any change of a resolved
      value (an include moved, an environment variable used by a
      substitution) changes the run's config identity even when no source
      digest changes.

Identity (``plan.identity``)
    The identity of the *effective* configuration: :func:`plan_identity` over
    the ``<resolved>`` entry and the input files only. It does not depend on
    how the HOCON is split across files, so a tree and its materialized
    bundle (one resolved ``.conf``) have the same identity; the per-file
    digests of ``plan.identity_components()`` still name the source file that
    changed.

Values and tables
    ``plan.values`` is the resolved configuration as a nested dict (so
    ``beam.agentsim.agentSampleSizeAsFractionOfPopulation`` is a queryable
    config value). HOCON durations (``10 seconds``) become text such as
    ``"10 seconds"``. The table ``beam_config`` has one row per resolved leaf
    key: ``key`` (dotted; segments with dots or other special characters are
    quoted), ``value`` (JSON text) and ``source`` (name of the file whose
    setting was last applied, or None when that cannot be told, e.g. for keys
    set by an include nested inside an object).

Includes
    ``include "x.conf"`` and ``include file("x.conf")`` are looked up
    relative to the including file's directory, then in the config
    directories in order; a target without a suffix also tries ``.conf`` and
    ``.json``. A missing include is an error naming it under ``strict`` (and
    always for ``include required(...)``), otherwise it is skipped and listed
    in ``plan.missing``. ``url(...)``, ``classpath(...)`` and ``package(...)``
    includes are rejected (they cannot be tracked as files). The included
    content is placed where the directive stands, so keys included inside an
    object land in that object; substitutions are always resolved from the
    root of the configuration.

Materialize
    :meth:`BeamConfigAdapter.materialize` writes the effective configuration
    as one ``.conf`` under the primary file's name (JSON text, which is
    HOCON, with every include and substitution resolved) plus copies of the
    input files the effective values refer to, under their names. Overrides
    are dotted HOCON keys (``'beam.agentsim.agentSampleSizeAsFractionOfPopulation'``,
    ``'beam."odd.key"'``) that must exist in the resolved configuration.
    Planning the written directory gives the same values and, when inputs are
    referred to by relative paths, the same identity.
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from consist.core.identity.hashing import hash_file
from consist.core.run.config_plan import (
    ConfigAdapterOptions,
    ConfigFile,
    ConfigPlan,
    ConfigTable,
    canonical_values_digest,
    plan_identity,
    resolve_config_dirs,
)
from consist.integrations.beam_hocon import (
    _absolute,
    _blank,
    _check_value,
    _Include,
    _key_text,
    _leaves,
    _plain,
    _read,
    _relative,
    _scan,
    _split_key,
    _strings,
)

__all__ = ["INPUT_SUFFIXES", "RESOLVED_NAME", "TABLE_NAME", "BeamConfigAdapter"]

RESOLVED_NAME = "<resolved>"
TABLE_NAME = "beam_config"
INPUT_SUFFIXES = (".csv", ".csv.gz", ".xml", ".xml.gz", ".json", ".txt")
_INSTALL_HINT = "pip install 'consist[config]'"
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_INCLUDE_KIND = re.compile(r"(required|file|url|classpath|package)[ \t]*\([ \t]*")
_CLOSE_PAREN = re.compile(r"[ \t]*\)")


def _pyhocon() -> Any:
    """pyhocon's parser and tree classes, or an ImportError naming the extra."""
    try:
        from pyhocon.config_parser import ConfigParser
        from pyhocon.config_tree import (
            ConfigQuotedString,
            ConfigSubstitution,
            ConfigTree,
            ConfigValues,
            NoneValue,
        )
    except ImportError as exc:
        raise ImportError(
            f"the BEAM config adapter needs pyhocon to read HOCON files: {_INSTALL_HINT}"
        ) from exc
    return SimpleNamespace(
        ConfigParser=ConfigParser,
        ConfigTree=ConfigTree,
        ConfigValues=ConfigValues,
        ConfigSubstitution=ConfigSubstitution,
        ConfigQuotedString=ConfigQuotedString,
        NoneValue=NoneValue,
    )


# ---------------------------------------------------------------------------
# Resolution of one tree
# ---------------------------------------------------------------------------


@dataclass
class _Resolution:
    """State of resolving one primary file against ordered config directories."""

    dirs: list[Path]
    strict: bool
    hocon: Any
    names: dict[Path, str] = field(default_factory=dict)
    digests: dict[Path, str] = field(default_factory=dict)
    order: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    segments: list[tuple[str, str]] = field(default_factory=list)

    def name_of(self, path: Path, anchor: Path) -> str:
        if path in self.names:
            return self.names[path]
        candidates = [r for r in (_relative(path, d) for d in self.dirs) if r is not None]
        candidates += [Path(os.path.relpath(path, anchor)).as_posix(), path.as_posix()]
        taken = set(self.names.values()) | {RESOLVED_NAME}
        name = next(c for c in candidates if c not in taken)
        self.names[path] = name
        return name

    def locate(self, inc: _Include, including: Path) -> Path | None:
        if inc.kind != "file":
            raise ValueError(
                f"{including}:{inc.line}: include {inc.kind}({inc.target!r}) is not supported "
                "(it cannot be tracked as a file); include a file by a relative path instead"
            )
        target = Path(inc.target)
        bases = [None] if target.is_absolute() else [including.parent, *self.dirs]
        names = (
            [target]
            if target.suffix
            else [target, *(target.with_suffix(s) for s in (".conf", ".json"))]
        )
        for name in names:
            for base in bases:
                candidate = name if base is None else base / name
                if candidate.is_file():
                    return _absolute(candidate)
        if self.strict or inc.required:
            raise FileNotFoundError(
                f"{including}:{inc.line}: included file {inc.target!r} is in none of: "
                f"{[str(including.parent), *map(str, self.dirs)]}"
            )
        self.missing.append(inc.target)
        return None

    def expand(self, path: Path, stack: tuple[Path, ...], anchor: Path, record: bool = True) -> str:
        """The text of ``path`` with every include replaced by the included text.

        ``record``: note the file's root-level segments for :meth:`sources` (not
        for a file included inside an object, whose keys land under a prefix).
        """
        if path.resolve() in {p.resolve() for p in stack}:
            chain = " -> ".join(str(p) for p in (*stack, path))
            raise ValueError(f"include cycle: {chain}")
        text = _read(path)
        scan = _scan(text, path)
        name = self.name_of(path, anchor)
        if path not in self.digests:
            own = _blank(text, scan.includes, 0, len(text))
            try:
                parsed = self.hocon.ConfigParser.parse(own, None, False)
            except Exception as exc:  # pyparsing / pyhocon errors have no common base
                raise ValueError(f"{path}: cannot parse HOCON: {exc}") from exc
            body = {
                "values": _plain(parsed, self.hocon),
                "includes": [i.target for i in scan.includes],
            }
            self.digests[path] = canonical_values_digest(body)
            self.order.append(path)
        pieces: list[str] = []
        pos = seg_pos = scan.body_start
        nested = [i for i in scan.includes if not i.root_level]
        for inc in scan.includes:
            pieces.append(text[pos : inc.start])
            if inc.root_level and record:
                self.segments.append((name, _blank(text, nested, seg_pos, inc.start)))
                seg_pos = inc.end
            found = self.locate(inc, path)
            if found is not None:
                inner = self.expand(found, (*stack, path), anchor, record and inc.root_level)
                pieces.append("\n" + inner + "\n")
            pos = inc.end
        pieces.append(text[pos : scan.body_end])
        if record:
            self.segments.append((name, _blank(text, nested, seg_pos, scan.body_end)))
        return "".join(pieces)

    def sources(self) -> dict[tuple[str, ...], str] | None:
        """Which file last set each key (None when a segment cannot be parsed alone)."""
        found: dict[tuple[str, ...], str] = {}
        for name, segment in self.segments:
            try:
                parsed = self.hocon.ConfigParser.parse(segment, None, False)
            except Exception:  # a segment split at an unusual include cannot stand alone
                return None
            for path, value in _leaves(_plain(parsed, self.hocon)):
                cut = [k for k, part in enumerate(path) if part in ("$concat", "$subst")]
                path = path[: cut[0]] if cut else path  # an unresolved value is one setting
                if path and not isinstance(value, dict):
                    found[path] = name
        return found


# ---------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------


class BeamConfigAdapter:
    """BEAM's HOCON configuration: includes, substitutions and referenced inputs.

    See the module docstring for what a plan holds and how digests are made.

    Parameters
    ----------
    root_dirs : Sequence[str | Path] | None
        Config directories in search order, used when a call gives none.
    primary_config : str | Path | None
        The main ``.conf``. A relative name is looked up in the config
        directories in order; when absent, the single ``*.conf`` of the first
        directory that holds exactly one is used.
    input_suffixes : Sequence[str] | None
        Suffixes of values that name input files (default
        :data:`INPUT_SUFFIXES`).

    Raises
    ------
    ImportError
        If pyhocon is not installed (``pip install 'consist[config]'``).
    """

    name = "beam"

    def __init__(
        self,
        *,
        root_dirs: Sequence[str | Path] | None = None,
        primary_config: str | Path | None = None,
        input_suffixes: Sequence[str] | None = None,
    ) -> None:
        _pyhocon()
        if isinstance(root_dirs, str | Path):
            raise TypeError(f"root_dirs must be a list of directories, e.g. [{str(root_dirs)!r}]")
        self.root_dirs: list[Path] = [Path(d) for d in (root_dirs or [])]
        self.primary_config: Path | None = None if primary_config is None else Path(primary_config)
        suffixes = INPUT_SUFFIXES if input_suffixes is None else tuple(input_suffixes)
        if not all(isinstance(s, str) and s.startswith(".") for s in suffixes):
            raise ValueError(f"input_suffixes must be suffixes such as '.csv', got {suffixes!r}")
        self.input_suffixes: tuple[str, ...] = tuple(s.lower() for s in suffixes)

    def __repr__(self) -> str:
        return (
            f"BeamConfigAdapter(root_dirs={[str(d) for d in self.root_dirs]!r}, "
            f"primary_config={None if self.primary_config is None else str(self.primary_config)!r})"
        )

    # -- plan -------------------------------------------------------------

    def find_primary(self, config_dirs: Sequence[Path]) -> tuple[Path, str]:
        """The primary file and its name in the effective tree.

        Parameters
        ----------
        config_dirs : Sequence[Path]
            The config directories, in search order.

        Returns
        -------
        tuple[Path, str]
            The resolved path and its name (relative, POSIX).

        Raises
        ------
        FileNotFoundError
            If ``primary_config`` names a file no directory holds.
        ValueError
            If ``primary_config`` is not given and no directory holds exactly
            one ``*.conf``.
        """
        dirs = [Path(d) for d in config_dirs]
        if self.primary_config is not None:
            given = self.primary_config
            if given.is_absolute():
                if not given.is_file():
                    raise FileNotFoundError(f"primary_config: {given} does not exist")
                return _absolute(given), given.name
            for d in dirs:
                if (d / given).is_file():
                    return _absolute(d / given), given.as_posix()
            raise FileNotFoundError(
                f"primary_config {given.as_posix()!r} is in none of the config directories "
                f"{[str(d) for d in dirs]}"
            )
        for d in dirs:
            confs = sorted(p for p in d.glob("*.conf") if p.is_file())
            if len(confs) == 1:
                return _absolute(confs[0]), confs[0].name
        raise ValueError(
            f"no config directory of {[str(d) for d in dirs]} holds exactly one *.conf; "
            "pass primary_config=... (e.g. BeamConfigAdapter(primary_config='beam.conf'))"
        )

    def plan(
        self, config_dirs: Sequence[Path] | None, options: ConfigAdapterOptions | None = None
    ) -> ConfigPlan:
        """Resolve the primary file of ``config_dirs`` into a plan (writes nothing).

        Parameters
        ----------
        config_dirs : Sequence[Path] | None
            Config directories in search order; None uses ``root_dirs``.
        options : ConfigAdapterOptions | None
            ``strict`` makes a missing include an error.

        Returns
        -------
        ConfigPlan
            Files, the ``beam_config`` table, resolved values and identity.

        Raises
        ------
        FileNotFoundError
            For a missing directory or primary file, or (strict, or
            ``include required(...)``) a missing include; the message names it.
        ValueError
            For a file that cannot be parsed, an include cycle, an
            unsupported include or an unresolvable substitution.
        ImportError
            If pyhocon is not installed.
        """
        hocon = _pyhocon()
        opts = options or ConfigAdapterOptions()
        dirs = resolve_config_dirs(self, config_dirs)
        primary, primary_name = self.find_primary(dirs)
        state = _Resolution(dirs=dirs, strict=opts.strict, hocon=hocon)
        state.names[primary] = primary_name
        combined = state.expand(primary, (), primary.parent)
        try:
            resolved = hocon.ConfigParser.parse(combined, None, True)
        except Exception as exc:  # unresolved substitutions, type clashes after includes
            raise ValueError(f"{primary}: cannot resolve the configuration: {exc}") from exc
        values = _plain(resolved, hocon)
        if not isinstance(values, dict):
            raise ValueError(f"{primary}: the configuration's root must be an object")
        files = [
            ConfigFile(
                name=state.names[p],
                path=p,
                role="primary" if p == primary else "include",
                digest=state.digests[p],
            )
            for p in state.order
        ]
        inputs, missing = self._inputs(values, dirs, set(state.names.values()))
        resolved_entry = ConfigFile(
            name=RESOLVED_NAME,
            path=primary.parent,
            role="resolved",
            digest=canonical_values_digest(values),
        )
        effective = [resolved_entry, *inputs]
        sources = state.sources() or {}
        rows = []
        for path, value in _leaves(values):
            source = next(
                (sources[path[:k]] for k in range(len(path), 0, -1) if path[:k] in sources), None
            )
            rows.append(
                {
                    "key": _key_text(path),
                    "value": json.dumps(value, ensure_ascii=False, sort_keys=True),
                    "source": source,
                }
            )
        return ConfigPlan(
            adapter=self.name,
            config_dirs=list(dirs),
            files=[*files, *effective],
            tables=[ConfigTable(name=TABLE_NAME, source=primary_name, rows=rows)],
            values=values,
            missing=list(dict.fromkeys([*state.missing, *missing])),
            identity=plan_identity(self.name, effective),
        )

    def _inputs(
        self, values: dict[str, Any], dirs: Sequence[Path], taken: set[str]
    ) -> tuple[list[ConfigFile], list[str]]:
        """Input files the values refer to (inside a config directory), and the missing ones."""
        found: dict[str, ConfigFile] = {}
        missing: list[str] = []
        for text, hit in self._refs(values, dirs):
            if hit is False:
                missing.append(text)
                continue
            if hit is None or hit is True:
                continue
            name, where = hit
            if name in taken or (name in found and found[name].path == where):
                continue
            if name in found:
                raise ValueError(
                    f"two input files are both named {name!r} in the effective tree: "
                    f"{found[name].path} and {where}; refer to them by relative paths"
                )
            found[name] = ConfigFile(name=name, path=where, role="input", digest=hash_file(where))
        return [found[k] for k in sorted(found)], missing

    def _refs(
        self, values: Any, dirs: Sequence[Path]
    ) -> list[tuple[str, tuple[str, Path] | bool | None]]:
        """Each path-like string value with :func:`_locate_input`'s answer for it."""
        return [
            (text, _locate_input(text, dirs))
            for text in _strings(values)
            if text.lower().endswith(self.input_suffixes)
        ]

    # -- materialize ------------------------------------------------------

    def materialize(
        self,
        plan: ConfigPlan,
        output_dir: str | Path,
        overrides: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write the effective configuration (a resolved ``.conf``, inputs) into ``output_dir``.

        The ``.conf`` is written under the primary file's name, as JSON (which
        is HOCON) with every include and substitution resolved, so
        ``plan([output_dir])`` with the same primary name gives the same
        values (and identity, when the inputs are referenced by relative
        paths). Input files the effective values refer to are copied under
        their names.

        Parameters
        ----------
        plan : ConfigPlan
            A plan of this adapter.
        output_dir : str | Path
            Target directory; must not exist or be empty.
        overrides : Mapping[str, Any] | None
            Dotted HOCON keys (``"beam.agentsim.agentSampleSizeAsFractionOfPopulation"``)
            to plain values; each replaces the value at that key (an object
            is replaced, not merged). Every key must exist in the resolved
            configuration.

        Returns
        -------
        Path
            ``output_dir``.

        Raises
        ------
        KeyError
            For an override key the resolved configuration does not have.
        ValueError
            If the plan is not a BEAM plan, a key is malformed or goes
            through a non-object value, or an input file of the plan changed
            since the plan was made.
        TypeError
            If an override value is not a plain value.
        FileExistsError
            If ``output_dir`` exists and is not an empty directory.
        """
        if not isinstance(plan, ConfigPlan) or plan.adapter != self.name:
            raise ValueError(
                f"plan must be a ConfigPlan made by the {self.name!r} adapter, got {plan!r}"
            )
        if overrides is not None and not isinstance(overrides, Mapping):
            raise TypeError("overrides must be a mapping of dotted HOCON keys to values")
        primary = next((f for f in plan.files if f.role == "primary"), None)
        if primary is None:
            raise ValueError("plan has no primary file (role 'primary')")
        values = copy.deepcopy(plan.values)
        for key, value in (overrides or {}).items():
            parts = _split_key(key)
            _check_value(key, value)
            node = values
            for depth, part in enumerate(parts):
                here = _key_text(parts[: depth + 1])
                if not isinstance(node, dict):
                    raise ValueError(
                        f"overrides[{key!r}]: {_key_text(parts[:depth])!r} is a value, "
                        "not an object"
                    )
                if part not in node:
                    raise KeyError(
                        f"overrides[{key!r}]: {here!r} is not in the resolved configuration "
                        "(a misspelt key would be ignored by BEAM); set it in the base "
                        "configuration first"
                    )
                if depth == len(parts) - 1:
                    node[part] = copy.deepcopy(value)
                else:
                    node = node[part]
        out = Path(output_dir)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise FileExistsError(f"output_dir {out} exists and is not an empty directory")
        name = primary.name
        if name.startswith("/") or ".." in Path(name).parts:
            name = Path(primary.name).name
        copies = [hit for _, hit in self._refs(values, plan.config_dirs) if isinstance(hit, tuple)]
        for rel in [name, *(n for n, _ in copies)]:
            if Path(rel).is_absolute() or _relative(out / rel, out) in (None, "."):
                raise ValueError(f"refusing to write {rel!r} outside output_dir {out}")
        planned = {f.name: f.digest for f in plan.files if f.role == "input"}
        for rel, source in copies:
            if rel in planned and hash_file(source) != planned[rel]:
                raise ValueError(
                    f"input file {rel!r} ({source}) changed since the plan was made; plan again"
                )
        out.mkdir(parents=True, exist_ok=True)
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        header = "# Effective BEAM configuration (includes and substitutions resolved).\n"
        target.write_text(
            header + json.dumps(values, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        for rel, source in copies:
            dest = out / rel
            if dest.exists():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
        return out


def _locate_input(text: str, dirs: Sequence[Path]) -> tuple[str, Path] | bool | None:
    """(name, path) of an input in a config directory; None: exists elsewhere; False: missing."""
    path = Path(text)
    if path.is_absolute():
        for d in dirs:
            rel = _relative(path, d)
            if rel is not None and path.is_file():
                return rel, _absolute(path)
        return None if path.is_file() else False
    norm = posixpath.normpath(path.as_posix())
    escapes = norm == ".." or norm.startswith("../")
    for d in dirs:
        candidate = d / norm
        if candidate.is_file():
            return None if escapes else (norm, _absolute(candidate))
    return False
