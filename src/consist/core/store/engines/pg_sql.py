"""The store's DuckDB SQL, translated for PostgreSQL (psycopg 3) in one place.

The store's modules write one dialect: DuckDB's, with ``?`` positional and
``$name`` named parameters. :func:`translate` turns a statement and its
parameters into what psycopg executes on PostgreSQL:

* **Parameters.** ``?`` becomes ``%s``; ``$name`` becomes ``%(name)s``;
  ``$1`` (DuckDB's numbered form) becomes ``%(_p1)s`` with the positional
  values moved into a mapping; a literal ``%`` becomes ``%%``. Quoted
  strings (``'...'`` with ``''`` escapes), quoted identifiers, comments and
  dollar-quoted bodies (``$tag$...$tag$``) are copied as they are, so a
  ``?`` or ``$x`` inside them is text, not a parameter.
* **List parameters.** psycopg sends a list of strings as an array of
  unknown type, which ``unnest(?)`` cannot resolve; a list parameter with no
  explicit cast after it gets one from its values (``::text[]``,
  ``::bigint[]``, ``::uuid[]``...). Scalars stay untyped, so PostgreSQL
  infers them from the column (a UUID string compared to a ``uuid``).
* **Types.** ``DOUBLE`` -> ``DOUBLE PRECISION``, ``UBIGINT`` ->
  ``NUMERIC(20,0)`` (a 64-bit unsigned inode number does not fit ``BIGINT``),
  ``HUGEINT`` -> ``NUMERIC(39,0)``, ``UINTEGER`` -> ``BIGINT``; in DDL
  ``JSON`` -> ``TEXT`` (the store reads JSON columns as text, as DuckDB
  returns them, and PostgreSQL refuses text into ``json`` without a cast).
* **Constructs.** ``ON CONFLICT DO UPDATE`` without a target gets the
  table's primary key (looked up by the caller); ``INSERT ... SELECT
  unnest(?), ...`` (one list per column, DuckDB's fast bulk insert) becomes
  one ``VALUES`` row per element, executed with ``executemany`` in a stable
  row order (two writers lock shared rows in the same order: no deadlock);
  ``QUALIFY row_number() OVER (PARTITION BY p ORDER BY o) = 1`` at the end
  of a query becomes ``DISTINCT ON (p) ... ORDER BY p, o`` (``<= n``: a
  subquery numbering the rows, filtered outside); ``arg_max(x, y)``
  becomes ``(array_agg(x ORDER BY y DESC))[1]``; DuckDB's list comprehension
  over ``tags`` in ``search_runs`` becomes an ``EXISTS`` over ``unnest``.
* **Functions.** DuckDB functions the store uses that PostgreSQL lacks
  (``list_has_all``, ``list_has_any``, ``list_contains``, ``contains``,
  ``json_extract``, ``json_extract_string``) are created in the database as
  SQL functions of the same name (:data:`COMPAT_FUNCTIONS`, installed with
  migration 1).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

# -- tokenizing -----------------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    """One parameter placeholder: ``kind`` is "pos" (``?``), "name" or "num" (``$1``)."""

    kind: str
    key: str | int
    cast_follows: bool


_IDENT_START = re.compile(r"[A-Za-z_]")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = re.compile(r"[0-9]+")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_CAST_AFTER = re.compile(r"\s*::")

_QUERY_TYPES = {
    "DOUBLE": "DOUBLE PRECISION",
    "UBIGINT": "NUMERIC(20,0)",
    "HUGEINT": "NUMERIC(39,0)",
    "UINTEGER": "BIGINT",
}
_DDL_TYPES = {**_QUERY_TYPES, "JSON": "TEXT"}


def _tokenize(sql: str, types: Mapping[str, str]) -> tuple[list[str], list[_Slot]]:
    """Split ``sql`` into text chunks around parameter slots (``len(chunks) == len(slots) + 1``).

    Type names in ``types`` are replaced outside quoted text; ``%`` is doubled.
    """
    chunks: list[str] = []
    slots: list[_Slot] = []
    out: list[str] = []
    i, n, position = 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c == "'" or c == '"':
            end = i + 1
            while True:
                end = sql.find(c, end)
                if end < 0:
                    end = n
                    break
                if end + 1 < n and sql[end + 1] == c:  # doubled quote: an escaped one
                    end += 2
                    continue
                end += 1
                break
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif c == "?":
            chunks.append("".join(out))
            out = []
            slots.append(_Slot("pos", position, bool(_CAST_AFTER.match(sql, i + 1))))
            position += 1
            i += 1
        elif c == "$":
            tag = _DOLLAR_TAG.match(sql, i)
            digits = _DIGITS.match(sql, i + 1)
            name = _IDENT.match(sql, i + 1)
            if tag is not None:  # $$...$$ or $tag$...$tag$: a quoted body
                close = sql.find(tag.group(0), tag.end())
                end = n if close < 0 else close + len(tag.group(0))
                out.append(sql[i:end].replace("%", "%%"))
                i = end
            elif digits is not None:
                chunks.append("".join(out))
                out = []
                end = digits.end()
                slots.append(_Slot("num", int(digits.group(0)), bool(_CAST_AFTER.match(sql, end))))
                i = end
            elif name is not None:
                chunks.append("".join(out))
                out = []
                end = name.end()
                slots.append(_Slot("name", name.group(0), bool(_CAST_AFTER.match(sql, end))))
                i = end
            else:
                out.append(c)
                i += 1
        elif c == "%":
            out.append("%%")
            i += 1
        elif _IDENT_START.match(c) and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            word = _IDENT.match(sql, i)
            assert word is not None
            text = word.group(0)
            replacement = types.get(text.upper())
            if replacement is not None and not sql[word.end() :].lstrip().upper().startswith(
                "PRECISION"
            ):
                out.append(replacement)
            else:
                out.append(text)
            i = word.end()
        else:
            out.append(c)
            i += 1
    chunks.append("".join(out))
    return chunks, slots


# -- DuckDB constructs ------------------------------------------------------------

_QUALIFY = re.compile(
    r"^(?P<head>\s*SELECT\s+)(?P<cols>.*?)\s+FROM\s+(?P<body>.*?)\s+QUALIFY\s+"
    r"(?P<window>row_number\(\)\s+OVER\s*\(\s*PARTITION\s+BY\s+(?P<part>[^()]*?)\s+"
    r"ORDER\s+BY\s+(?P<order>[^()]*?)\s*\))\s*(?P<op><=|=|<)\s*(?P<bound>\?|[0-9]+)\s*$",
    re.IGNORECASE | re.DOTALL,
)
_OUTPUT_NAME = re.compile(r"(?:.*\s+AS\s+|[A-Za-z_]\w*\.)?([A-Za-z_]\w*)\s*$", re.IGNORECASE)
_ARG_MAX = re.compile(r"\barg_max\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)", re.IGNORECASE)
_TAG_COMPREHENSION = (
    "coalesce(list_bool_or([contains(lower(t), ?) FOR t IN tags]), false)",
    "EXISTS (SELECT 1 FROM unnest(tags) AS t WHERE contains(lower(t), ?))",
)
_CONFLICT_NO_TARGET = re.compile(r"\bON\s+CONFLICT\s+DO\s+UPDATE\b", re.IGNORECASE)
_INSERT_TABLE = re.compile(r"^\s*INSERT\s+INTO\s+([A-Za-z_][\w.]*)", re.IGNORECASE)
_UNNEST_INSERT = re.compile(
    r"^\s*(?P<head>INSERT\s+INTO\s+[A-Za-z_][\w.]*\s*\([^()]*\))\s+SELECT\s+"
    r"(?P<cols>unnest\(\?(?:::[A-Za-z_ ]+\[\])?\)(?:\s*,\s*unnest\(\?(?:::[A-Za-z_ ]+\[\])?\))*)"
    r"(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_UNNEST_COL = re.compile(r"unnest\(\?(?:::(?P<kind>[A-Za-z_ ]+)\[\])?\)", re.IGNORECASE)


_DUCKDB_ONLY_STATEMENT = re.compile(
    r"^\s*(DESCRIBE|SUMMARIZE|ATTACH|DETACH|PRAGMA|INSTALL|LOAD|FORCE\s+INSTALL|"
    r"EXPORT\s+DATABASE|IMPORT\s+DATABASE|CHECKPOINT|USE)\b",
    re.IGNORECASE,
)
_DUCKDB_ONLY_CALL = re.compile(
    r"\b(duckdb_\w+|pragma_\w+|read_parquet|read_csv(?:_auto)?|read_json(?:_auto)?|"
    r"parquet_scan|glob)\s*\(",
    re.IGNORECASE,
)


def _refuse_duckdb_only(sql: str) -> None:
    """Raise for statements that only DuckDB can run (the feature is not ported yet)."""
    found = _DUCKDB_ONLY_STATEMENT.match(sql) or _DUCKDB_ONLY_CALL.search(sql)
    if found is not None:
        raise NotImplementedError(
            f"the feature running this statement is not supported yet with a PostgreSQL store "
            f"(db_url): it needs DuckDB's {found.group(1).strip()!r} "
            f"({' '.join(sql.split())[:160]}); use a DuckDB store (db_path=...) for it"
        )


def _rewrite_constructs(sql: str) -> str:
    """DuckDB-only constructs -> PostgreSQL equivalents (see the module docs)."""
    _refuse_duckdb_only(sql)
    while (at := _qualify_at(sql)) >= 0:
        start, end = _enclosing(sql, at)
        sql = sql[:start] + _rewrite_qualify(sql[start:end]) + sql[end:]
    if "arg_max" in sql.lower():
        sql = _ARG_MAX.sub(r"(array_agg(\1 ORDER BY \2 DESC))[1]", sql)
    if _TAG_COMPREHENSION[0] in sql:
        sql = sql.replace(*_TAG_COMPREHENSION)
    return sql


_QUALIFY_WORD = re.compile(r"\bQUALIFY\b", re.IGNORECASE)


def _qualify_at(sql: str) -> int:
    found = _QUALIFY_WORD.search(sql)
    return -1 if found is None else found.start()


def _enclosing(sql: str, at: int) -> tuple[int, int]:
    """The bounds of the innermost parenthesized text around ``at`` (else all of ``sql``)."""
    start, depth = 0, 0
    for i in range(at - 1, -1, -1):
        if sql[i] == ")":
            depth += 1
        elif sql[i] == "(":
            if depth == 0:
                start = i + 1
                break
            depth -= 1
    end, depth = len(sql), 0
    for i in range(at, len(sql)):
        if sql[i] == "(":
            depth += 1
        elif sql[i] == ")":
            if depth == 0:
                end = i
                break
            depth -= 1
    return start, end


def _rewrite_qualify(sql: str) -> str:
    """``QUALIFY row_number() OVER (PARTITION BY p ORDER BY o) = 1 / <= n`` at a query's end.

    ``= 1`` becomes ``DISTINCT ON (p) ... ORDER BY p, o``; a bound becomes a
    subquery numbering the rows, filtered outside (its columns named as the
    inner select list names them).
    """
    match = _QUALIFY.match(sql)
    if match is None:
        raise NotImplementedError(
            "this query uses DuckDB's QUALIFY in a form the PostgreSQL engine (db_url) "
            f"does not translate yet: {sql.strip()[:200]}"
        )
    cols, body, part = match.group("cols"), match.group("body"), match.group("part")
    op, bound = match.group("op"), match.group("bound")
    if op == "=" and bound == "1":
        return (
            f"{match.group('head')}DISTINCT ON ({part}) {cols} FROM {body} "
            f"ORDER BY {part}, {match.group('order')}"
        )
    names = [_OUTPUT_NAME.match(item) for item in _split_top_level(cols)]
    if any(name is None for name in names):
        raise NotImplementedError(
            "this query uses DuckDB's QUALIFY with computed columns, which the PostgreSQL "
            f"engine (db_url) does not translate yet: {sql.strip()[:200]}"
        )
    outer = ", ".join(name.group(1) for name in names if name is not None)
    return (
        f"{match.group('head')}{outer} FROM (SELECT {cols}, {match.group('window')} "
        f"AS _consist_rn FROM {body}) AS _consist_q WHERE _consist_rn {op} {bound}"
    )


def _split_top_level(text: str) -> list[str]:
    """``text`` split at commas outside parentheses."""
    items, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item.strip() for item in items]


# -- translation --------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """A statement ready for psycopg.

    Attributes
    ----------
    sql:
        psycopg SQL (``%s`` / ``%(name)s`` placeholders).
    params:
        The parameters: a sequence, a mapping, or (``many``) a list of rows.
    many:
        Execute once per row of ``params`` (``executemany``).
    """

    sql: str
    params: Any
    many: bool = False


class Translator:
    """Translates statements for one database (caches its primary keys and texts).

    Parameters
    ----------
    primary_key:
        ``table -> primary-key column names`` (queried by the caller from
        the database the first time a table needs it).
    """

    def __init__(self, primary_key: Any) -> None:
        self._primary_key = primary_key
        self._texts: dict[str, tuple[list[str], list[_Slot]]] = {}
        self._lock = threading.Lock()

    def translate(self, sql: str, params: Any = None) -> Statement:
        """The psycopg statement for DuckDB ``sql`` with ``params``.

        Raises
        ------
        NotImplementedError
            For a DuckDB construct this engine does not translate (named in
            the message).
        ValueError
            If the parameters do not match the placeholders.
        """
        bulk = _UNNEST_INSERT.match(sql)
        if bulk is not None and isinstance(params, Sequence) and not isinstance(params, str):
            return self._bulk_insert(bulk, params)
        chunks, slots = self._parsed(sql)
        return _render(chunks, slots, params)

    def _parsed(self, sql: str) -> tuple[list[str], list[_Slot]]:
        found = self._texts.get(sql)
        if found is None:
            text = _rewrite_constructs(sql)
            if _CONFLICT_NO_TARGET.search(text):
                table = _INSERT_TABLE.match(text)
                if table is None:
                    raise NotImplementedError(f"ON CONFLICT without a target outside INSERT: {sql}")
                key = ", ".join(self._primary_key(table.group(1)))
                text = _CONFLICT_NO_TARGET.sub(f"ON CONFLICT ({key}) DO UPDATE", text, count=1)
            found = _tokenize(text, _QUERY_TYPES)
            with self._lock:
                if len(self._texts) > 4096:
                    self._texts.clear()
                self._texts[sql] = found
        return found

    def _bulk_insert(self, match: re.Match[str], columns: Sequence[Any]) -> Statement:
        kinds = [m.group("kind") for m in _UNNEST_COL.finditer(match.group("cols"))]
        if len(kinds) != len(columns):
            raise ValueError(f"{len(kinds)} unnest(?) columns but {len(columns)} parameters")
        values = ", ".join("?" if kind is None else f"?::{kind}" for kind in kinds)
        sql = f"{match.group('head')} VALUES ({values}){match.group('rest')}"
        rows = [list(row) for row in zip(*columns, strict=True)]
        # Lock shared rows in one order in every process: concurrent upserts of
        # the same keys then queue instead of deadlocking.
        rows.sort(key=lambda row: tuple("" if v is None else str(v) for v in row[:3]))
        chunks, slots = self._parsed(sql)
        if rows:
            first = _render(chunks, slots, rows[0])
            return Statement(first.sql, rows, many=True)
        return Statement(_render(chunks, slots, [None] * len(kinds)).sql, [], many=True)


def _render(chunks: list[str], slots: list[_Slot], params: Any) -> Statement:
    """Join ``chunks`` with psycopg placeholders for ``params``."""
    if not slots:
        if params:
            raise ValueError(f"parameters given to a statement without placeholders: {params!r}")
        return Statement(chunks[0], None)
    kinds = {slot.kind for slot in slots}
    if "pos" in kinds and len(kinds) > 1:
        raise ValueError("a statement mixes ? with $ parameters")
    parts = [chunks[0]]
    if kinds == {"pos"}:
        values = list(params or ())
        if len(values) != len(slots):
            raise ValueError(f"{len(slots)} placeholders but {len(values)} parameters")
        for slot, chunk in zip(slots, chunks[1:], strict=True):
            parts.append("%s" + _array_cast(values[slot.key], slot) + chunk)  # type: ignore[index]
        return Statement("".join(parts), values)
    mapping: dict[str, Any] = {}
    for slot, chunk in zip(slots, chunks[1:], strict=True):
        if slot.kind == "num":
            if not isinstance(params, Sequence) or isinstance(params, str):
                raise ValueError(f"${slot.key} needs positional parameters")
            index = int(slot.key) - 1
            if not 0 <= index < len(params):
                raise ValueError(f"${slot.key} has no parameter ({len(params)} given)")
            name, value = f"_p{slot.key}", params[index]
        else:
            if not isinstance(params, Mapping) or slot.key not in params:
                raise ValueError(f"named parameter ${slot.key} is not given")
            name, value = str(slot.key), params[slot.key]
        mapping[name] = value
        parts.append(f"%({name})s" + _array_cast(value, slot) + chunk)
    return Statement("".join(parts), mapping)


def _array_cast(value: Any, slot: _Slot) -> str:
    """``::type[]`` for a list parameter without an explicit cast (else "")."""
    if slot.cast_follows or not isinstance(value, list | tuple):
        return ""
    return f"::{_element_type(value)}[]"


def _element_type(values: Sequence[Any]) -> str:
    kinds = {type(v) for v in values if v is not None}
    if not kinds or kinds <= {str}:
        return "text"
    if kinds <= {bool}:
        return "boolean"
    if kinds <= {int}:
        return "bigint"
    if kinds <= {int, float, Decimal}:
        return "double precision"
    if kinds <= {uuid.UUID}:
        return "uuid"
    if kinds <= {datetime}:
        return "timestamp"
    if kinds <= {date}:
        return "date"
    return "text"


# -- DDL ----------------------------------------------------------------------------


def translate_ddl(statement: str) -> str:
    """A migration statement (DuckDB DDL) as PostgreSQL DDL (see the module docs)."""
    chunks, slots = _tokenize(statement, _DDL_TYPES)
    if slots:
        raise ValueError(f"DDL with parameters: {statement.strip()[:120]}")
    return chunks[0].replace("%%", "%")


# DuckDB functions the store's SQL calls, created in the database (migration 1).
COMPAT_FUNCTIONS: tuple[str, ...] = (
    "CREATE OR REPLACE FUNCTION list_has_all(anycompatiblearray, anycompatiblearray) "
    "RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 @> $2'",
    "CREATE OR REPLACE FUNCTION list_has_any(anycompatiblearray, anycompatiblearray) "
    "RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 && $2'",
    "CREATE OR REPLACE FUNCTION list_contains(anycompatiblearray, anycompatible) "
    "RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $2 = ANY($1)'",
    "CREATE OR REPLACE FUNCTION contains(text, text) "
    "RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT strpos($1, $2) > 0'",
    # '$.a.b' -> path {a,b}; a JSON null is SQL NULL (as DuckDB's casts treat it).
    "CREATE OR REPLACE FUNCTION json_extract(text, text) RETURNS jsonb LANGUAGE sql IMMUTABLE "
    "AS $$SELECT nullif(($1::jsonb) #> string_to_array(substr($2, 3), '.'), "
    "'null'::jsonb)$$",
    "CREATE OR REPLACE FUNCTION json_extract_string(text, text) RETURNS text "
    "LANGUAGE sql IMMUTABLE "
    "AS $$SELECT ($1::jsonb) #>> string_to_array(substr($2, 3), '.')$$",
)
