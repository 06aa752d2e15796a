"""Validation of user input to the run lifecycle.

Every check here runs before anything is written, and every failure names
the parameter and how to fix it (DESIGN invariant 4).

Metadata size limits can be raised with environment variables:
``CONSIST_MAX_METADATA_ITEMS`` (default 256 keys per call),
``CONSIST_MAX_METADATA_KEY_LENGTH`` (default 256 characters) and
``CONSIST_MAX_METADATA_VALUE_LENGTH`` (default 65,536 characters of the value's
JSON text). Config string values are limited by
``CONSIST_MAX_CONFIG_VALUE_LENGTH`` (default 1,000,000 characters).

Names that become part of a path
--------------------------------
One rule (:func:`validate_path_name`) covers every key, name or id that the
library joins into a file path: output keys (``outputs=``, ``output_paths``
keys, the key a returned table is written under), ``output_path(key, ext)``,
``log_dataframe`` keys without ``path=``, run ids and scenario names. Such a
value is a single file-name component: a non-empty string without ``/``,
``\\``, NUL or other control characters, not ``.`` or ``..`` and not starting
with ``.``, valid Unicode, and at most 200 bytes in UTF-8 (so ``<key>.<ext>``
fits the 255-byte limit of common filesystems). Keys, model and step names
that are only recorded (``log_artifact(path, key=...)``, input keys, captured
files' relative paths such as ``"sub/table"``) follow the looser
:func:`validate_label`: any non-empty valid Unicode text without control
characters.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MAX_MODEL_LENGTH = 256
MAX_TAG_LENGTH = 256
MAX_TAGS = 256
CACHE_MODES = ("reuse", "overwrite", "readonly")
RESERVED_META_KEYS = ("year", "iteration", "stage", "phase")


def _env_limit(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={raw!r} must be a positive integer") from exc
    if value <= 0:
        raise ValueError(f"environment variable {name}={raw!r} must be a positive integer")
    return value


def metadata_limits() -> tuple[int, int, int]:
    """(max items, max key length, max value length) in force right now."""
    return (
        _env_limit("CONSIST_MAX_METADATA_ITEMS", 256),
        _env_limit("CONSIST_MAX_METADATA_KEY_LENGTH", 256),
        _env_limit("CONSIST_MAX_METADATA_VALUE_LENGTH", 65_536),
    )


MAX_NAME_BYTES = 200
PATH_NAME_RULE = (
    "a single file name: not empty, without '/', '\\\\', NUL or control characters, "
    "not '.' or '..' nor starting with '.', at most 200 bytes in UTF-8"
)


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored and shown faithfully as a name (None if it can)."""
    if value.isascii() and value.isprintable():
        return None  # the common case, checked in C: no NUL, control or surrogate
    if "\0" in value:
        return "contains a NUL character"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "contains control characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (it holds a lone surrogate)"
    return None


def validate_path_name(value: Any, *, param: str, purpose: str = "a file name") -> str:
    """Check a key, name or id that becomes part of a file path.

    The rule (one for every such value) is in the module docstring: a single
    path component, so nothing derived from it can leave its directory.

    Parameters
    ----------
    value:
        The key, name or id.
    param:
        The parameter to name in the error (e.g. ``"outputs"``, ``"run_id"``).
    purpose:
        What the value names on disk, for the error message.

    Returns
    -------
    str
        ``value`` unchanged.

    Raises
    ------
    TypeError
        If ``value`` is not a string.
    ValueError
        If it breaks the rule, naming ``param``, the problem and the rule.
    """
    if not isinstance(value, str):
        raise TypeError(f"{param} must be a string, got {type(value).__name__}: {value!r}")
    problem = None
    if not value.strip():
        problem = "is empty"
    elif "/" in value or "\\" in value:
        problem = "contains a path separator ('/' or '\\\\')"
    elif value in (".", ".."):
        problem = "is a relative directory reference"
    elif value.startswith("."):
        problem = "starts with '.'"
    else:
        problem = _text_problem(value)
    if problem is None and len(value.encode("utf-8")) > MAX_NAME_BYTES:
        problem = f"is {len(value.encode('utf-8'))} bytes long in UTF-8"
    if problem is not None:
        raise ValueError(
            f"{param}={_shown(value)} {problem}; it is used as {purpose}, so it must be "
            f"{PATH_NAME_RULE} (e.g. 'households' or 'zones_2030')"
        )
    return value


def validate_label(value: Any, *, param: str, max_length: int = MAX_MODEL_LENGTH) -> str:
    """Check a name that is recorded but never used as a path on its own.

    Artifact keys given with an explicit path, input keys, model and step
    names: a non-empty string of at most ``max_length`` characters, valid
    Unicode, without NUL or control characters (slashes are allowed).

    Raises
    ------
    TypeError
        If ``value`` is not a string.
    ValueError
        Naming ``param`` and the problem.
    """
    if not isinstance(value, str):
        raise TypeError(f"{param} must be a string, got {type(value).__name__}: {value!r}")
    if not value.strip():
        raise ValueError(f"{param} must be a non-empty string")
    if len(value) > max_length:
        raise ValueError(f"{param} is {len(value)} characters long; use at most {max_length}")
    problem = _text_problem(value)
    if problem is not None:
        raise ValueError(
            f"{param}={_shown(value)} {problem}; use printable text without NUL or control "
            "characters"
        )
    return value


def validate_run_id(run_id: Any, *, param: str = "run_id") -> str:
    """A run id names its journal file and artifact directory: see :func:`validate_path_name`."""
    return validate_path_name(
        run_id, param=param, purpose="the name of the run's journal file and artifact directory"
    )


def validate_model(model: Any, *, param: str = "model") -> str:
    """The model (or step) name: recorded text, see :func:`validate_label`.

    It reaches the default artifact directory only through
    ``default_run_subdir``, which replaces unsafe characters, so slashes are
    allowed.
    """
    if isinstance(model, str) and not model.strip():
        raise ValueError(f"{param} must be a non-empty string, e.g. {param}='activitysim'")
    return validate_label(model, param=param, max_length=MAX_MODEL_LENGTH)


def validate_tags(tags: Any) -> list[str]:
    """Tags: a list of non-empty, length-limited strings (not a bare string)."""
    if tags is None:
        return []
    if isinstance(tags, str | bytes):
        raise TypeError(f"tags must be a list of strings, not a single string: use tags=[{tags!r}]")
    if not isinstance(tags, Iterable):
        raise TypeError(f"tags must be a list of strings, got {type(tags).__name__}")
    result: list[str] = []
    for tag in tags:
        if not isinstance(tag, str):
            raise TypeError(f"tags must contain only strings, got {type(tag).__name__}: {tag!r}")
        if not tag.strip():
            raise ValueError("tags must not contain empty strings")
        if len(tag) > MAX_TAG_LENGTH:
            raise ValueError(f"tag {tag[:40]!r}... is longer than {MAX_TAG_LENGTH} characters")
        if tag not in result:
            result.append(tag)
    if len(result) > MAX_TAGS:
        raise ValueError(f"tags has {len(result)} entries; use at most {MAX_TAGS}")
    return result


def validate_optional_int(value: Any, param: str) -> int | None:
    """``year`` / ``iteration``: an int (not a bool) or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np  # numpy ints are common in model loops

            if isinstance(value, np.integer):
                return int(value)
        except ImportError:  # pragma: no cover
            pass
        raise TypeError(f"{param} must be an int or None, got {type(value).__name__}: {value!r}")
    return value


def validate_optional_str(value: Any, param: str, max_length: int = MAX_MODEL_LENGTH) -> str | None:
    """``stage`` / ``phase`` / ``description``: a string or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{param} must be a string or None, got {type(value).__name__}")
    if len(value) > max_length:
        raise ValueError(f"{param} is {len(value)} characters long; use at most {max_length}")
    return value


def validate_cache_mode(cache_mode: Any) -> str:
    """``cache_mode`` must be one of reuse / overwrite / readonly."""
    if cache_mode not in CACHE_MODES:
        raise ValueError(
            f"cache_mode={cache_mode!r} is not supported; use one of {', '.join(CACHE_MODES)}"
        )
    return cache_mode


def _json_size(value: Any, param: str, key: str) -> int:
    try:
        return len(json.dumps(value, allow_nan=True, default=_reject))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{param}[{key!r}] is not JSON-serialisable ({exc}); "
            "pass plain str/int/float/bool/None values, lists or dicts of them"
        ) from exc


def _reject(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def validate_metadata(meta: Mapping[str, Any], *, param: str = "metadata") -> dict[str, Any]:
    """Metadata: string keys, JSON values, within the size limits."""
    max_items, max_key, max_value = metadata_limits()
    if len(meta) > max_items:
        raise ValueError(
            f"{param} has {len(meta)} keys; the limit is {max_items} "
            "(raise it with CONSIST_MAX_METADATA_ITEMS)"
        )
    clean: dict[str, Any] = {}
    for key, value in meta.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{param} keys must be non-empty strings, got {key!r}")
        if len(key) > max_key:
            raise ValueError(
                f"{param} key {key[:40]!r}... is {len(key)} characters; the limit is {max_key} "
                "(raise it with CONSIST_MAX_METADATA_KEY_LENGTH)"
            )
        value = _plain(value)
        size = _json_size(value, param, key)
        if size > max_value:
            raise ValueError(
                f"{param}[{key!r}] is {size} characters as JSON; the limit is {max_value} "
                "(raise it with CONSIST_MAX_METADATA_VALUE_LENGTH, or log large data as an "
                "artifact)"
            )
        clean[key] = value
    return clean


def _plain(value: Any) -> Any:
    """Convert numpy scalars and paths to plain JSON-friendly values."""
    if isinstance(value, float) and not math.isfinite(value):
        return value
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def validate_config(config: Any) -> dict[str, Any]:
    """Config: a dict with string keys (at every level) or a pydantic model.

    What a config may contain is decided in one place,
    :func:`consist.core.identity.canonical.check_recordable`: NaN and
    infinities are recorded faithfully; reference cycles, nesting deeper than
    ``MAX_CONFIG_DEPTH`` (100) levels and values the run's snapshot cannot
    write are refused here, before anything is written.

    Returns
    -------
    dict
        The config as plain data (pydantic models dumped in JSON mode).

    Raises
    ------
    TypeError
        If ``config`` is not a mapping or pydantic model, has a non-string
        key, or holds a value the snapshot cannot record (naming its key path).
    ValueError
        For a cycle, too deep a nesting or too long a string (naming its key
        path).
    """
    from consist.core.identity.canonical import check_recordable

    if config is None:
        return {}
    if hasattr(config, "model_dump") and callable(config.model_dump):
        config = config.model_dump(mode="json")
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict or a pydantic model, got {type(config).__name__}")
    max_string = _env_limit("CONSIST_MAX_CONFIG_VALUE_LENGTH", 1_000_000)
    check_recordable(config, "config", max_string=max_string)
    return dict(config)


#: ``CacheOptions`` fields that ``begin_run`` / ``start_run`` take as keywords.
BEGIN_CACHE_FIELDS = ("cache_hydration", "validate_cached_outputs", "cache_version", "cache_epoch")

_CACHE_FIELD_HINTS = {
    "cache_hydration": "use None, 'metadata', 'outputs-requested', 'outputs-all' or "
    "'inputs-missing'",
    "validate_cached_outputs": "use 'lazy', 'eager' (alias 'strict') or 'none'",
    "cache_version": "use an int or None",
    "cache_epoch": "use an int or None",
}


def validate_begin_cache_options(
    cache_mode: str, cache_options: Any, flat: Mapping[str, Any]
) -> Any:
    """The ``CacheOptions`` of a ``begin_run``: ``cache_options`` and flat keywords.

    Parameters
    ----------
    cache_mode:
        The validated ``cache_mode`` argument (used when ``cache_options`` is None).
    cache_options:
        A ``CacheOptions`` or None.
    flat:
        ``BEGIN_CACHE_FIELDS`` given as keywords; they override ``cache_options``.

    Returns
    -------
    CacheOptions
        The merged options.

    Raises
    ------
    TypeError
        If ``cache_options`` is not a ``CacheOptions``.
    ValueError
        Naming the keyword whose value is not valid, and the valid values.
    """
    from consist.options import CacheOptions

    if cache_options is not None and not isinstance(cache_options, CacheOptions):
        raise TypeError(f"cache_options must be a CacheOptions, got {type(cache_options).__name__}")
    for name, value in flat.items():
        try:
            CacheOptions(**{name: value})
        except ValueError as exc:
            raise ValueError(
                f"{name}={value!r} is not a valid cache option: {_CACHE_FIELD_HINTS[name]}"
            ) from exc
    base = cache_options if cache_options is not None else CacheOptions(cache_mode=cache_mode)
    return base.merged(**flat) if flat else base


def validate_named_paths(value: Any, param: str) -> list[tuple[str, str]]:
    """``[path | (name, path)]`` (or a mapping) as absolute ``(name, path)`` pairs.

    Raises
    ------
    TypeError
        For an entry that is neither a path nor a ``(name, path)`` tuple.
    FileNotFoundError
        If a path does not exist.
    """
    if value is None:
        return []
    if isinstance(value, str | os.PathLike):
        value = [value]
    if isinstance(value, Mapping):
        value = list(value.items())
    out: list[tuple[str, str]] = []
    for entry in value:
        if isinstance(entry, tuple) and len(entry) == 2:
            name, path = entry
            if not isinstance(name, str) or not name:
                raise TypeError(f"{param} names must be non-empty strings, got {name!r}")
        elif isinstance(entry, str | os.PathLike):
            path = entry
            name = Path(os.fspath(entry)).name
        else:
            raise TypeError(f"{param} entries must be paths or (name, path) tuples, got {entry!r}")
        path = os.path.abspath(os.fspath(path))
        if not os.path.exists(path):
            raise FileNotFoundError(f"{param} entry {name!r}: {path} does not exist")
        out.append((name, path))
    return out


def validate_path_list(value: Any, param: str) -> list[str]:
    """A list of paths as strings.

    Raises
    ------
    TypeError
        For a single path instead of a list, or a non-path entry.
    """
    if value is None:
        return []
    if isinstance(value, str | os.PathLike):
        raise TypeError(f"{param} must be a list of paths, not a single path")
    out = []
    for entry in value:
        if not isinstance(entry, str | os.PathLike):
            raise TypeError(f"{param} must contain paths, got {entry!r}")
        out.append(os.fspath(entry))
    return out
