"""ActivitySim configuration as provenance: :class:`ActivitySimConfigAdapter`.

Resolution (what :meth:`ActivitySimConfigAdapter.plan` reads)
-------------------------------------------------------------
* **Directories** are searched in order, as ActivitySim does with
  ``-c local -c base``: for every file name the first directory that holds it
  wins. A referenced name may have subdirectories (``specs/x.csv``) but must
  be relative and must not contain ``..``.
* **Inheritance** (``settings.yaml`` and every other YAML the adapter reads):
  ``inherit_settings: true`` merges the same file name from the *next*
  directory that holds it under the file (found after the file's own
  directory; when none does, nothing is inherited). A string or list of
  strings names the files to inherit from, each resolved through all
  directories (a file naming its own name means the next directory, as
  ``true``); earlier names win over later ones. Inherited files may inherit
  in turn. The merge is by top-level key (the inheriting file's key replaces
  the inherited one whole, as ActivitySim merges settings). The effective
  content never keeps ``inherit_settings``.
* **Models**: for each step of the merged settings' ``models:`` list, the
  YAML ``<step>.yaml`` (``model_files`` maps steps to other names, ``None``
  for steps that read no YAML; by default ``compute_accessibility`` reads
  ``accessibility.yaml`` and ``write_tables`` / ``track_skim_usage`` none).
* **References** in model YAMLs (any depth, including YAMLs they reference):
  every string value ending in ``.csv`` is a CSV file and every string value
  ending in ``.yaml`` / ``.yml`` a YAML file (read with inheritance and
  scanned in turn, e.g. ``LOGSUM_SETTINGS: tour_mode_choice.yaml``); a bare
  name under ``SPEC``, ``COEFFICIENTS``, ``COEFFICIENT_TEMPLATE`` or a key
  ending in ``_SPEC`` / ``_COEFFICIENTS`` gets ``.csv`` appended (ActivitySim
  does the same for ``SPEC: annotate_persons``). ``settings.yaml`` and the
  ``extra_files`` are not scanned (their ``.csv`` names are data files).
* **Roles** from the key: ``PROBS``/``PROBABILIT...`` -> probabilities,
  ``COEFFICIENT...`` -> coefficients, ``CONSTANTS`` -> constants, ``SPEC...``
  -> spec; other CSVs whose header has ``coefficient_name`` and ``value`` ->
  coefficients, else ``other``; YAMLs -> ``model`` (``settings`` for the
  settings file, ``constants`` for ``constants.yaml``).
* **Digests**: YAML by its parsed, merged content
  (:func:`canonical_values_digest`; keys compared as text), CSV by its
  canonical rows (see :mod:`consist.integrations.activitysim_tables`).
* **Values**: ``{"settings": merged settings, "models": {step: model YAML},
  "files": {name: every other YAML}}`` (``settings`` has its own ``models``
  list, so the two are kept apart); the dotted keys are the override
  selectors' (``settings.sample_size``).

Overrides (:meth:`ActivitySimConfigAdapter.materialize`)
--------------------------------------------------------
``"settings.<dotted.key>"`` sets a settings key (missing keys are created);
``"models.<step>.<dotted.key>"`` a model YAML key; ``"constants.<NAME>"``
every definition of a constant (``CONSTANTS:`` in settings or model YAMLs,
``constants.yaml`` and constants files; unknown: ``KeyError``);
``"coefficients.<coefficient_name>"`` the value in every coefficients file
that defines it (unknown: ``KeyError``).
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from consist.core.run.config_plan import (
    ConfigAdapterOptions,
    ConfigFile,
    ConfigPlan,
    ConfigTable,
    canonical_values_digest,
    plan_identity,
    resolve_config_dirs,
)
from consist.integrations.activitysim_tables import (
    canonical_csv_rows,
    coefficient_names,
    constants_table,
    csv_digest,
    csv_tables,
    read_csv_text,
    rewrite_coefficients,
)

__all__ = ["ActivitySimConfigAdapter"]

DEFAULT_MODEL_FILES: dict[str, str | None] = {
    "compute_accessibility": "accessibility.yaml",
    "write_tables": None,
    "track_skim_usage": None,
}
DEFAULT_EXTRA_FILES = ("constants.yaml", "network_los.yaml", "shadow_pricing.yaml")
_EXTRA_ROLES = {"constants.yaml": "constants"}
_BARE_NAME_KEYS = ("SPEC", "COEFFICIENTS", "COEFFICIENT_TEMPLATE")
_YAML_SUFFIXES = (".yaml", ".yml")
_INSTALL_HINT = "pip install 'consist[config]'"


def _yaml() -> Any:
    try:
        import yaml
    except ImportError as exc:
        raise ImportError(
            f"the ActivitySim config adapter reads YAML with PyYAML: {_INSTALL_HINT}"
        ) from exc
    return yaml


def _text_keys(value: Any) -> Any:
    """``value`` with every mapping key as text (YAML ``1:`` and ``"1":`` are one key)."""
    if isinstance(value, Mapping):
        return {str(k): _text_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_text_keys(v) for v in value]
    return value


@dataclass
class _Yaml:
    """One effective YAML file: its merged content and the files it was merged from."""

    name: str
    path: Path
    role: str
    data: dict[Any, Any]
    layers: list[Path]
    rewrite: bool  # the file's bytes are not its effective content (merged, inherit key)

    def digest(self) -> str:
        return canonical_values_digest(_text_keys(self.data))


@dataclass
class _Csv:
    name: str
    path: Path
    role: str
    rows: list[list[str]]


@dataclass
class _Tree:
    """Everything resolved from the directories (the plan and what materialize needs)."""

    dirs: list[Path]
    settings: _Yaml | None = None
    yamls: dict[str, _Yaml] = field(default_factory=dict)
    csvs: dict[str, _Csv] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)  # step -> YAML name
    order: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


class ActivitySimConfigAdapter:
    """Config adapter for ActivitySim's layered YAML/CSV configuration directories.

    See the module docstring for how the tree is resolved, digested and
    overridden.

    Parameters
    ----------
    root_dirs:
        Config directories in search order (overriding first, e.g.
        ``[configs_local, configs]``), used when a call gives none.
    settings_file:
        The settings file name (``settings.yaml``).
    model_files:
        Step name -> YAML file name (``None``: the step reads no YAML), on
        top of the defaults for ``compute_accessibility``, ``write_tables``
        and ``track_skim_usage``.
    extra_files:
        YAML files read (with inheritance, not scanned) when a directory
        holds them, though no model names them (default ``constants.yaml``, ``network_los.yaml``,
        ``shadow_pricing.yaml``).

    Raises
    ------
    TypeError
        For ``root_dirs`` given as one path instead of a list.
    """

    name = "activitysim"

    def __init__(
        self,
        *,
        root_dirs: Sequence[str | Path] | None = None,
        settings_file: str = "settings.yaml",
        model_files: Mapping[str, str | None] | None = None,
        extra_files: Sequence[str] = DEFAULT_EXTRA_FILES,
    ) -> None:
        if isinstance(root_dirs, str | Path):
            raise TypeError(f"root_dirs must be a list of directories, e.g. [{str(root_dirs)!r}]")
        self.root_dirs: list[Path] = [Path(d) for d in (root_dirs or [])]
        self.settings_file = _check_name(settings_file, "settings_file")
        self.model_files: dict[str, str | None] = {
            str(step): None if file is None else _check_name(file, f"model_files[{step!r}]")
            for step, file in {**DEFAULT_MODEL_FILES, **(model_files or {})}.items()
        }
        self.extra_files = [_check_name(n, "extra_files") for n in extra_files]

    def __repr__(self) -> str:
        return f"ActivitySimConfigAdapter(root_dirs={[str(d) for d in self.root_dirs]!r})"

    # ------------------------------------------------------------------ plan
    def plan(
        self,
        config_dirs: Sequence[str | Path] | None = None,
        options: ConfigAdapterOptions | None = None,
    ) -> ConfigPlan:
        """Resolve the effective configuration of ``config_dirs`` (writes nothing).

        Parameters
        ----------
        config_dirs:
            Config directories in search order; ``None`` uses ``root_dirs``.
        options:
            ``strict`` makes a referenced file that no directory holds an
            error (otherwise it is listed in ``ConfigPlan.missing``).

        Returns
        -------
        ConfigPlan
            Files with canonical digests, tables, values and identity.

        Raises
        ------
        FileNotFoundError
            Under ``strict``, naming the missing file, who references it and
            the directories searched; for a config directory that does not exist.
        ValueError
            For a file that cannot be parsed (named), a malformed
            ``inherit_settings``, an inheritance cycle or an unsafe reference.
        """
        options = options or ConfigAdapterOptions()
        tree = self._resolve(self._dirs(config_dirs), options.strict)
        return self._plan_of(tree)

    def _dirs(self, config_dirs: Sequence[str | Path] | None) -> list[Path]:
        if isinstance(config_dirs, str | Path):
            raise TypeError(
                f"config_dirs must be a list of directories, e.g. [{str(config_dirs)!r}]"
            )
        return resolve_config_dirs(self, None if config_dirs is None else list(config_dirs))

    def _plan_of(self, tree: _Tree) -> ConfigPlan:
        files: list[ConfigFile] = []
        tables: list[ConfigTable] = []
        values: dict[str, Any] = {"settings": {}, "models": {}, "files": {}}
        step_of = {yaml_name: step for step, yaml_name in tree.models.items()}
        for name in tree.order:
            if name in tree.yamls:
                doc = tree.yamls[name]
                files.append(ConfigFile(name, doc.path, doc.role, doc.digest()))
                content = _text_keys(doc.data)
                if doc is tree.settings:
                    values["settings"] = content
                elif name in step_of:
                    values["models"][step_of[name]] = content
                else:
                    values["files"][name] = content
                for where in _constants_of(doc):
                    tables.append(constants_table(name, where))
            else:
                item = tree.csvs[name]
                files.append(ConfigFile(name, item.path, item.role, csv_digest(item.rows)))
                tables.extend(csv_tables(name, item.role, item.rows))
        return ConfigPlan(
            adapter=self.name,
            config_dirs=list(tree.dirs),
            files=files,
            tables=tables,
            values=values,
            missing=list(tree.missing),
            identity=plan_identity(self.name, files),
        )

    # ------------------------------------------------------------ resolution
    def _resolve(self, dirs: list[Path], strict: bool) -> _Tree:
        tree = _Tree(dirs=dirs)
        resolver = _Resolver(tree, strict)
        settings = resolver.yaml_file(self.settings_file, "settings", "the settings file")
        tree.settings = settings
        steps = settings.data.get("models") if settings is not None else None
        if steps is not None and not isinstance(steps, list):
            raise ValueError(
                f"{settings.path if settings else self.settings_file}: 'models' must be a list "
                f"of step names, not {type(steps).__name__}"
            )
        for step in steps or []:
            step_name = str(step)
            yaml_name = self.model_files.get(step_name, f"{step_name}.yaml")
            if yaml_name is None:
                continue
            doc = resolver.yaml_file(yaml_name, "model", f"step {step_name!r} in 'models'")
            if doc is not None:
                tree.models[step_name] = yaml_name
                resolver.scan(doc)
        for extra in self.extra_files:
            if extra not in tree.yamls and resolver.find(extra) is not None:
                resolver.yaml_file(extra, _EXTRA_ROLES.get(extra, "other"), "extra_files")
        return tree

    def sources(self, plan: ConfigPlan) -> dict[str, list[Path]]:
        """Every file each effective file of ``plan`` was read from, winning layer first.

        A YAML merged through ``inherit_settings`` lists all its layers (the
        plan's ``ConfigFile.path`` is only the first); other files list one.
        """
        tree = self._resolve(list(plan.config_dirs), strict=False)
        return {
            n: list(tree.yamls[n].layers) if n in tree.yamls else [tree.csvs[n].path]
            for n in tree.order
        }

    # ---------------------------------------------------------- materialize
    def materialize(
        self,
        plan: ConfigPlan,
        output_dir: str | Path,
        overrides: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write the effective tree of ``plan`` into ``output_dir``, with ``overrides``.

        The tree is flat (one directory, no layering): ``settings.yaml`` and
        every other YAML with inheritance merged and ``inherit_settings``
        removed; files that need no change are copied byte for byte. So
        ``plan([output_dir])`` has the same identity (with no overrides).

        Parameters
        ----------
        plan:
            A plan of this adapter; its directories are read again and must
            still give the same identity.
        output_dir:
            Where to write; must not exist or be empty.
        overrides:
            Selector -> new value (see the module docstring), e.g.
            ``{"settings.sample_size": 100, "constants.CBD_THRESHOLD": 2,
            "coefficients.coef_ivt": -0.03}``.

        Returns
        -------
        Path
            ``output_dir``.

        Raises
        ------
        ValueError
            For a plan of another adapter, a tree changed since the plan, an
            unknown selector form, or a non-empty ``output_dir``.
        KeyError
            For a constant, coefficient or model step no file defines (named).
        TypeError
            For a coefficient value that is not a number.
        """
        if plan.adapter != self.name:
            raise ValueError(f"plan is of adapter {plan.adapter!r}, not {self.name!r}")
        out = Path(output_dir).expanduser().resolve()
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ValueError(f"output_dir {out} exists and is not empty; give a new directory")
        tree = self._resolve(list(plan.config_dirs), strict=False)
        now = self._plan_of(tree).identity
        if now != plan.identity:
            raise ValueError(
                f"the files under {[str(d) for d in plan.config_dirs]} changed since the plan "
                f"was made (identity {plan.identity} -> {now}), or the plan came from an "
                "adapter with other model_files/extra_files; plan again before materializing"
            )
        dumps, coefficient_edits = _apply_overrides(tree, dict(overrides or {}))
        out.mkdir(parents=True, exist_ok=True)
        yaml = _yaml()
        for name in tree.order:
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if name in tree.yamls:
                doc = tree.yamls[name]
                if doc.rewrite or name in dumps:
                    text = yaml.safe_dump(
                        doc.data, sort_keys=False, default_flow_style=False, allow_unicode=True
                    )
                    target.write_text(text, encoding="utf-8")
                else:
                    shutil.copyfile(doc.path, target)
            elif name in coefficient_edits:
                item = tree.csvs[name]
                text = rewrite_coefficients(
                    read_csv_text(item.path), coefficient_edits[name], str(item.path)
                )
                target.write_text(text, encoding="utf-8", newline="")
            else:
                shutil.copyfile(tree.csvs[name].path, target)
        return out


def _check_name(name: str, param: str) -> str:
    """A referenced file name: relative POSIX, no ``..`` (so it stays inside a tree)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{param}: a file name must be a non-empty string, not {name!r}")
    pure = PurePosixPath(name.strip().replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or Path(name).is_absolute():
        raise ValueError(
            f"{param}: {name!r} must be a path relative to the config directories "
            "(no absolute path, no '..')"
        )
    return pure.as_posix()


def _constants_of(doc: _Yaml) -> list[Mapping[Any, Any]]:
    """The constants mappings a YAML file defines (its top level for a constants file)."""
    if doc.role == "constants":
        return [doc.data]
    found = doc.data.get("CONSTANTS")
    return [found] if isinstance(found, Mapping) else []


def _role_of(key: str | None, name: str) -> str:
    upper = (key or "").upper()
    if name.lower().endswith(_YAML_SUFFIXES):
        return "constants" if "CONSTANTS" in upper else "model"
    if "PROBS" in upper or "PROBABILIT" in upper:
        return "probabilities"
    if "COEFFICIENT" in upper:
        return "coefficients"
    if "CONSTANTS" in upper:
        return "constants"
    if upper.startswith("SPEC") or upper.endswith("_SPEC"):
        return "spec"
    return "other"


def _reference(key: str | None, value: str) -> str | None:
    """The file a YAML string value names, if it names one (see the module docstring)."""
    text = value.strip()
    lower = text.lower()
    if lower.endswith(".csv") or lower.endswith(_YAML_SUFFIXES):
        return text
    upper = (key or "").upper()
    bare = text and not any(c.isspace() for c in text) and "." not in PurePosixPath(text).name
    named = upper in _BARE_NAME_KEYS or upper.endswith(("_SPEC", "_COEFFICIENTS"))
    if bare and named and "@" not in text:
        return f"{text}.csv"
    return None


class _Resolver:
    """Reads files through the directories into a :class:`_Tree`."""

    def __init__(self, tree: _Tree, strict: bool) -> None:
        self.tree = tree
        self.strict = strict
        self.yaml = _yaml()

    def find(self, name: str, start: int = 0) -> tuple[int, Path] | None:
        for i in range(start, len(self.tree.dirs)):
            candidate = self.tree.dirs[i] / name
            if candidate.is_file():
                return i, candidate
        return None

    def absent(self, name: str, referrer: str) -> None:
        if self.strict:
            raise FileNotFoundError(
                f"{name} (referenced by {referrer}) is in none of the config directories "
                f"{[str(d) for d in self.tree.dirs]}; add it, fix the reference, or plan "
                "with strict=False to list it in ConfigPlan.missing"
            )
        if name not in self.tree.missing:
            self.tree.missing.append(name)

    def load(self, path: Path) -> dict[Any, Any]:
        try:
            data = self.yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        except (self.yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot be parsed as YAML ({exc})") from exc
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ValueError(
                f"{path}: an ActivitySim YAML file must hold a mapping of keys, "
                f"not a {type(data).__name__}"
            )
        return data

    def layered(
        self, name: str, start: int, chain: tuple[Path, ...]
    ) -> tuple[dict[Any, Any], list[Path], bool] | None:
        """The merged content of ``name`` found from directory ``start`` on."""
        hit = self.find(name, start)
        if hit is None:
            return None
        index, path = hit
        if path in chain:
            loop = " -> ".join(str(p) for p in (*chain, path))
            raise ValueError(f"inherit_settings forms a cycle: {loop}")
        own = self.load(path)
        had_key = "inherit_settings" in own
        inherit = own.pop("inherit_settings", None)
        parents: list[tuple[str, int, bool]] = []  # (name, start, must exist)
        if inherit is True:
            parents = [(name, index + 1, False)]
        elif isinstance(inherit, str | list):
            names = [inherit] if isinstance(inherit, str) else inherit
            for item in names:
                if not isinstance(item, str):
                    raise ValueError(
                        f"{path}: inherit_settings lists {item!r}; give file names (strings)"
                    )
                other = _check_name(item, f"{path}: inherit_settings")
                same = other == name
                parents.append((other, index + 1 if same else 0, not same))
        elif inherit not in (None, False):
            raise ValueError(
                f"{path}: inherit_settings must be true/false, a file name or a list of "
                f"file names, not {inherit!r}"
            )
        merged = dict(own)
        layers = [path]
        for parent, parent_start, must in parents:
            found = self.layered(parent, parent_start, (*chain, path))
            if found is None:
                if must:
                    self.absent(parent, f"inherit_settings in {path}")
                continue
            data, more, _ = found
            for key, value in data.items():
                merged.setdefault(key, value)
            layers.extend(more)
        return merged, layers, had_key or len(layers) > 1

    def yaml_file(self, name: str, role: str, referrer: str) -> _Yaml | None:
        if name in self.tree.yamls:
            return self.tree.yamls[name]
        if name in self.tree.csvs:
            raise ValueError(f"{name} is referenced both as a CSV and as a YAML file")
        found = self.layered(name, 0, ())
        if found is None:
            self.absent(name, referrer)
            return None
        data, layers, rewrite = found
        doc = _Yaml(name, layers[0], role, data, layers, rewrite)
        self.tree.yamls[name] = doc
        self.tree.order.append(name)
        return doc

    def csv_file(self, name: str, role: str, referrer: str) -> None:
        if name in self.tree.csvs:
            return
        hit = self.find(name)
        if hit is None:
            self.absent(name, referrer)
            return
        path = hit[1]
        rows = canonical_csv_rows(read_csv_text(path), str(path))
        if role == "other" and rows:
            header = [h.lower() for h in rows[0]]
            if "coefficient_name" in header and "value" in header:
                role = "coefficients"
        self.tree.csvs[name] = _Csv(name, path, role, rows)
        self.tree.order.append(name)

    def scan(self, doc: _Yaml) -> None:
        """Resolve the files ``doc`` references, and theirs (YAMLs are scanned in turn)."""
        pending = [doc]
        while pending:
            current = pending.pop(0)
            for key, value in _strings(current.data, None):
                ref = _reference(key, value)
                if ref is None:
                    continue
                where = f"{key or 'a list'} in {current.name}"
                name = _check_name(ref, where)
                role = _role_of(key, name)
                if name.lower().endswith(_YAML_SUFFIXES):
                    known = name in self.tree.yamls
                    found = self.yaml_file(name, role, where)
                    if found is not None and not known:
                        pending.append(found)
                else:
                    self.csv_file(name, role, where)


def _strings(node: Any, key: str | None) -> list[tuple[str | None, str]]:
    """Every string in a parsed YAML tree with the nearest mapping key above it."""
    found: list[tuple[str | None, str]] = []
    if isinstance(node, Mapping):
        for k, v in node.items():
            found.extend(_strings(v, str(k)))
    elif isinstance(node, list | tuple):
        for item in node:
            found.extend(_strings(item, key))
    elif isinstance(node, str):
        found.append((key, node))
    return found


# ------------------------------------------------------------------ overrides
def _apply_overrides(
    tree: _Tree, overrides: dict[str, Any]
) -> tuple[set[str], dict[str, dict[str, Any]]]:
    """Apply ``overrides`` to the tree in memory; the YAMLs to rewrite and CSV edits."""
    dumps: set[str] = set()
    edits: dict[str, dict[str, Any]] = {}
    for selector, value in overrides.items():
        if not isinstance(selector, str) or "." not in selector:
            raise ValueError(f"override selector {selector!r}: {_SELECTOR_HELP}")
        kind, _, rest = selector.partition(".")
        if not rest:
            raise ValueError(f"override selector {selector!r} names no key: {_SELECTOR_HELP}")
        if kind == "settings":
            if tree.settings is None:
                raise KeyError(f"{selector}: the plan has no settings file to override")
            if rest.split(".")[0] == "inherit_settings":
                raise ValueError(f"{selector}: the materialized tree is flat; nothing to inherit")
            _set_dotted(tree.settings.data, rest.split("."), copy.deepcopy(value), selector)
            dumps.add(tree.settings.name)
        elif kind == "models":
            step, _, key = rest.partition(".")
            if step not in tree.models:
                raise KeyError(f"{selector}: no model step {step!r} with a YAML in the plan")
            if not key:
                raise ValueError(f"{selector}: name a key, e.g. models.{step}.SAMPLE_SIZE")
            name = tree.models[step]
            _set_dotted(tree.yamls[name].data, key.split("."), copy.deepcopy(value), selector)
            dumps.add(name)
        elif kind == "constants":
            hits = [
                doc.name
                for doc in tree.yamls.values()
                for where in _constants_of(doc)
                if _set_existing(where, rest, copy.deepcopy(value))
            ]
            if not hits:
                raise KeyError(f"{selector}: no file of the plan defines the constant {rest!r}")
            dumps.update(hits)
        elif kind == "coefficients":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{selector}: a coefficient value must be a number, not {value!r}")
            names = [
                item.name
                for item in tree.csvs.values()
                if item.role == "coefficients" and rest in coefficient_names(item.rows)
            ]
            if not names:
                raise KeyError(f"{selector}: no coefficients file of the plan defines {rest!r}")
            for name in names:
                edits.setdefault(name, {})[rest] = value
        else:
            raise ValueError(f"override selector {selector!r}: {_SELECTOR_HELP}")
    return dumps, edits


_SELECTOR_HELP = (
    "use 'settings.<dotted.key>', 'models.<step>.<dotted.key>', 'constants.<NAME>' "
    "or 'coefficients.<coefficient_name>'"
)


def _key_in(mapping: Mapping[Any, Any], text: str) -> Any:
    """The key of ``mapping`` whose text is ``text`` (YAML keys may be numbers)."""
    for key in mapping:
        if str(key) == text:
            return key
    return text


def _set_dotted(data: dict[Any, Any], parts: list[str], value: Any, selector: str) -> None:
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        key = _key_in(node, part)
        if key not in node:
            node[key] = {}
        node = node[key]
        if not isinstance(node, dict):
            where = ".".join(parts[: i + 1])
            raise ValueError(f"{selector}: {where} is a {type(node).__name__}, not a mapping")
    node[_key_in(node, parts[-1])] = value


def _set_existing(mapping: Any, name: str, value: Any) -> bool:
    if not isinstance(mapping, dict):
        return False
    key = _key_in(mapping, name)
    if key not in mapping:
        return False
    mapping[key] = value
    return True
