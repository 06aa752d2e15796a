"""HOCON text helpers of the BEAM adapter: include directives and resolved values.

A small lexer finds ``include`` directives (skipping strings and comments) so
that includes can be looked up in the config directories; the value helpers
turn pyhocon trees into plain data and dotted keys. Used by
:mod:`consist.integrations.beam`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_INCLUDE_KIND = re.compile(r"(required|file|url|classpath|package)[ \t]*\([ \t]*")
_CLOSE_PAREN = re.compile(r"[ \t]*\)")


# ---------------------------------------------------------------------------
# Include directives (found by a small lexer: strings and comments skipped)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Include:
    start: int
    end: int
    target: str
    kind: str  # "file", "url", "classpath" or "package"
    required: bool
    root_level: bool
    line: int


@dataclass
class _Scan:
    includes: list[_Include]
    body_start: int
    body_end: int


def _skip_string(text: str, i: int) -> int:
    """Index just after the quoted string starting at ``i``."""
    if text.startswith('"""', i):
        j = text.find('"""', i + 3)
        if j < 0:
            return len(text)
        while j + 3 < len(text) and text[j + 3] == '"':
            j += 1
        return j + 3
    j = i + 1
    while j < len(text) and text[j] not in '"\n':
        j += 2 if text[j] == "\\" else 1
    return j + 1


def _parse_directive(text: str, i: int, origin: Path) -> tuple[int, str, str, bool] | None:
    """Parse an include directive at ``i`` (``include`` keyword): (end, target, kind, required)."""
    j = i + len("include")
    if j >= len(text) or text[j] not in " \t":
        return None
    while j < len(text) and text[j] in " \t":
        j += 1
    kinds: list[str] = []
    while True:
        match = _INCLUDE_KIND.match(text, j)
        if match is None:
            break
        kinds.append(match.group(1))
        j = match.end()
    if j >= len(text) or text[j] != '"':
        if kinds:
            line = text.count("\n", 0, i) + 1
            raise ValueError(
                f"{origin}:{line}: malformed include directive (expected a quoted name)"
            )
        return None
    k = _skip_string(text, j)
    try:
        target = json.loads(text[j:k]) if not text.startswith('"""', j) else text[j + 3 : k - 3]
    except json.JSONDecodeError as exc:
        line = text.count("\n", 0, i) + 1
        raise ValueError(f"{origin}:{line}: malformed include name ({exc})") from exc
    for _ in kinds:
        match = _CLOSE_PAREN.match(text, k)
        if match is None:
            line = text.count("\n", 0, i) + 1
            raise ValueError(f"{origin}:{line}: malformed include directive (missing ')')")
        k = match.end()
    required = bool(kinds) and kinds[0] == "required"
    rest = kinds[1:] if required else kinds
    if len(rest) > 1 or "required" in rest:
        line = text.count("\n", 0, i) + 1
        raise ValueError(f"{origin}:{line}: malformed include directive {text[i:k]!r}")
    kind = rest[0] if rest else "file"
    if kind == "file" and not rest and re.match(r"^(https?|file)://", target):
        kind = "url"
    return k, target, kind, required


def _scan(text: str, origin: Path) -> _Scan:
    """Find the include directives of a HOCON text and its root object's braces."""
    includes: list[_Include] = []
    stack: list[str] = []
    at_statement = True
    first_significant: int | None = None
    root_close: int | None = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "#" or text.startswith("//", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
            continue
        if c in " \t\r\ufeff":
            i += 1
            continue
        if first_significant is None and c != "\n":
            first_significant = i
        if c == "\n" or c == ",":
            at_statement = True
            i += 1
        elif c == '"':
            i = _skip_string(text, i)
            at_statement = False
        elif c in "{[":
            stack.append(c)
            at_statement = c == "{"
            i += 1
        elif c in "}]":
            if stack:
                stack.pop()
            braced = first_significant is not None and text[first_significant] == "{"
            if not stack and c == "}" and braced and root_close is None:
                root_close = i
            at_statement = False
            i += 1
        elif at_statement and (not stack or stack[-1] == "{") and text.startswith("include", i):
            parsed = _parse_directive(text, i, origin)
            if parsed is None:
                at_statement = False
                i += 1
                continue
            end, target, kind, required = parsed
            braced = first_significant is not None and text[first_significant] == "{"
            root_level = len(stack) == (1 if braced else 0)
            line = text.count("\n", 0, i) + 1
            includes.append(_Include(i, end, target, kind, required, root_level, line))
            i = end
            at_statement = False
        else:
            at_statement = False
            i += 1
    if first_significant is not None and text[first_significant] == "{" and root_close is not None:
        return _Scan(includes, first_significant + 1, root_close)
    return _Scan(includes, 0, n)


def _blank(text: str, spans: Sequence[_Include], start: int, end: int) -> str:
    """``text[start:end]`` with the given directives replaced by spaces (lines kept)."""
    out = list(text[start:end])
    for inc in spans:
        for k in range(max(inc.start, start), min(inc.end, end)):
            if out[k - start] != "\n":
                out[k - start] = " "
    return "".join(out)


# ---------------------------------------------------------------------------
# Parsed HOCON to plain values
# ---------------------------------------------------------------------------


def _period_text(value: Any) -> str:
    """A HOCON duration (timedelta / relativedelta) as text, e.g. ``"90 minutes"``."""
    months = 12 * int(getattr(value, "years", 0) or 0) + int(getattr(value, "months", 0) or 0)
    if isinstance(value, timedelta):
        micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    else:
        micros = (
            ((int(value.days or 0) * 24 + int(value.hours or 0)) * 60 + int(value.minutes or 0))
            * 60
            + int(value.seconds or 0)
        ) * 1_000_000 + int(value.microseconds or 0)
    parts = []
    if months:
        parts.append(f"{months} months")
    if micros or not parts:
        for unit, size in (
            ("days", 86_400_000_000),
            ("hours", 3_600_000_000),
            ("minutes", 60_000_000),
            ("seconds", 1_000_000),
            ("milliseconds", 1000),
            ("microseconds", 1),
        ):
            if micros % size == 0:
                parts.append(f"{micros // size} {unit}")
                break
    return " ".join(parts)


def _key(raw: str) -> str:
    """A ConfigTree key without its HOCON quotes."""
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            return str(json.loads(raw))
        except json.JSONDecodeError:
            return raw[1:-1]
    return raw


def _plain(node: Any, hocon: Any) -> Any:
    """Parsed HOCON as plain JSON values; unresolved substitutions become ``{"$subst": ...}``."""
    tree = hocon.ConfigTree
    if isinstance(node, tree):
        return {_key(k): _plain(v, hocon) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, hocon) for v in node]
    if isinstance(node, hocon.ConfigValues):
        return {"$concat": [_plain(t, hocon) for t in node.tokens]}
    if isinstance(node, hocon.ConfigSubstitution):
        return {"$subst": node.variable, "optional": bool(node.optional), "ws": node.ws or ""}
    if isinstance(node, hocon.ConfigQuotedString):
        return node.value
    if isinstance(node, hocon.NoneValue) or node is None:
        return None
    if isinstance(node, bool | int | float):
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, timedelta) or hasattr(node, "normalized"):
        return _period_text(node)
    return str(node)


def _key_text(path: Sequence[str]) -> str:
    """A key path as dotted HOCON text (special segments quoted)."""
    return ".".join(p if _BARE_KEY.match(p) else json.dumps(p, ensure_ascii=False) for p in path)


def _leaves(values: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) of every leaf (a non-object value, or an empty object)."""
    if isinstance(values, dict) and (values or not prefix):
        out: list[tuple[tuple[str, ...], Any]] = []
        for k, v in values.items():
            out.extend(_leaves(v, (*prefix, k)))
        return out
    return [(prefix, values)]


def _strings(values: Any) -> list[str]:
    """Every string value, at any depth of objects and lists."""
    if isinstance(values, str):
        return [values]
    items = values.values() if isinstance(values, dict) else values
    if isinstance(values, dict | list):
        return [s for v in items for s in _strings(v)]
    return []


def _split_key(key: Any) -> list[str]:
    """A dotted HOCON key (``a.b."c.d"``) as its segments."""
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"overrides: keys are dotted HOCON keys such as 'beam.x.y', got {key!r}")
    parts: list[str] = []
    i, n = 0, len(key)
    while i <= n:
        if i < n and key[i] == '"':
            end = _skip_string(key, i)
            try:
                segment = json.loads(key[i:end])
            except json.JSONDecodeError as exc:
                raise ValueError(f"overrides: malformed quoted key {key!r}") from exc
            i = end
        else:
            end = key.find(".", i)
            end = n if end < 0 else end
            segment = key[i:end].strip()
            i = end
        if not segment:
            raise ValueError(f"overrides: key {key!r} has an empty segment")
        parts.append(segment)
        if i < n and key[i] != ".":
            raise ValueError(f"overrides: malformed key {key!r}")
        i += 1
    return parts


def _check_value(key: str, value: Any) -> None:
    if value is None or isinstance(value, bool | int | float | str):
        return
    if isinstance(value, list):
        for v in value:
            _check_value(key, v)
        return
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        for v in value.values():
            _check_value(key, v)
        return
    raise TypeError(
        f"overrides[{key!r}]: values are None, bool, int, float, str, lists and dicts "
        f"with str keys; got {type(value).__name__} (convert it, e.g. str(path))"
    )


def _absolute(path: Path) -> Path:
    """``path`` made absolute and normalised lexically (symlinks kept)."""
    return Path(os.path.normpath(path.absolute()))


def _relative(path: Path, root: Path) -> str | None:
    """``path`` relative to ``root`` (lexically, else with symlinks resolved), or None."""
    for a, b in ((_absolute(path), _absolute(root)), (path.resolve(), root.resolve())):
        try:
            return a.relative_to(b).as_posix()
        except ValueError:
            continue
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 HOCON file ({exc})") from exc
