"""CSV and table helpers of the ActivitySim config adapter.

Canonical CSV form (what a CSV file's digest is taken of)
---------------------------------------------------------
The file is decoded as UTF-8 (a byte-order mark is ignored) and parsed with
the :mod:`csv` module (comma delimiter, ``"`` quotes), so CRLF and LF line
endings read the same. Every cell is stripped of surrounding whitespace.
Blank lines (every cell empty) and whole-line comments (the first cell starts
with ``#``, which ActivitySim skips when it reads a spec or coefficients
file) are dropped. The digest is :func:`canonical_values_digest` of the
remaining rows (header included) as lists of strings. So line endings,
padding around cells, quoting that does not change a cell, blank lines and
comment lines do not count; any change of a cell's text does (``1.0`` and
``1`` are different cells).

Tables
------
* ``asim_coefficients``: ``file, coefficient_name, value (float), constrain``
  (``constrain`` is the cell's text, ``None`` when the file has no such column).
* ``asim_coefficient_templates``: ``file, row, coefficient_name, columns``
  (a ``COEFFICIENT_TEMPLATE`` file: segment columns as JSON).
* ``asim_specs``: ``file, row, label, description, expression, columns``.
* ``asim_probabilities``: ``file, row, columns``.
* ``asim_constants``: ``file, name, value (JSON text), number (float or None)``.

``row`` counts data rows from 1 (header, blank and comment lines not counted).
In ``columns`` JSON, a cell that reads as a number is a number, any other cell
is its text and an empty cell is ``null``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from consist.core.run.config_plan import ConfigTable, canonical_values_digest

__all__ = [
    "canonical_csv_rows",
    "coefficient_names",
    "constants_table",
    "csv_digest",
    "csv_tables",
    "read_csv_text",
    "rewrite_coefficients",
]


def read_csv_text(path: Path) -> str:
    """The text of a CSV file (UTF-8, a byte-order mark dropped).

    Raises
    ------
    ValueError
        When the file is not UTF-8 text (the message names it).
    """
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc}); save the CSV as UTF-8") from exc


def _is_comment(cells: list[str]) -> bool:
    return bool(cells) and cells[0].lstrip().startswith("#")


def canonical_csv_rows(text: str, where: str) -> list[list[str]]:
    """Rows of a CSV text in canonical form (see the module docstring).

    Parameters
    ----------
    text:
        The file's text.
    where:
        The file, for error messages.

    Raises
    ------
    ValueError
        When the text is not parsable CSV (the message names ``where``).
    """
    rows: list[list[str]] = []
    try:
        for cells in csv.reader(io.StringIO(text, newline="")):
            stripped = [c.strip() for c in cells]
            if not any(stripped) or _is_comment(stripped):
                continue
            rows.append(stripped)
    except csv.Error as exc:
        raise ValueError(f"{where}: cannot be parsed as CSV ({exc})") from exc
    return rows


def csv_digest(rows: list[list[str]]) -> str:
    """Digest of canonical CSV rows (see :func:`canonical_csv_rows`)."""
    return canonical_values_digest({"format": "csv", "rows": rows})


def _cell(text: str) -> Any:
    """A cell as a JSON value: a number when it reads as one, else its text."""
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _header(rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    if not rows:
        return [], []
    return rows[0], rows[1:]


def _column(header: list[str], name: str) -> int | None:
    lowered = [h.lower() for h in header]
    return lowered.index(name) if name in lowered else None


def _at(cells: list[str], index: int | None) -> str | None:
    if index is None or index >= len(cells):
        return None
    return cells[index]


def _rest(header: list[str], cells: list[str], skip: set[int]) -> str:
    out: dict[str, Any] = {}
    for i, value in enumerate(cells):
        if i in skip:
            continue
        key = header[i] if i < len(header) and header[i] else f"column_{i + 1}"
        out[key] = _cell(value)
    return json.dumps(out, ensure_ascii=False, sort_keys=False)


def csv_tables(name: str, role: str, rows: list[list[str]]) -> list[ConfigTable]:
    """The tables one CSV file contributes (see the module docstring).

    Parameters
    ----------
    name:
        The file's name in the effective tree (the ``file`` column).
    role:
        ``"coefficients"``, ``"spec"`` or ``"probabilities"``; other roles
        contribute no table.
    rows:
        Its canonical rows (header first).

    Raises
    ------
    ValueError
        For a coefficients file without a ``coefficient_name`` column or with
        a value that is not a number (the message names the file and row).
    """
    header, data = _header(rows)
    if role == "coefficients":
        return [_coefficients(name, header, data)]
    if role == "spec":
        cols = {c: _column(header, c) for c in ("label", "description", "expression")}
        skip = {i for i in cols.values() if i is not None}
        out = [
            {
                "file": name,
                "row": n,
                "label": _at(cells, cols["label"]),
                "description": _at(cells, cols["description"]),
                "expression": _at(cells, cols["expression"]),
                "columns": _rest(header, cells, skip),
            }
            for n, cells in enumerate(data, start=1)
        ]
        return [ConfigTable("asim_specs", name, out)]
    if role == "probabilities":
        out = [
            {"file": name, "row": n, "columns": _rest(header, cells, set())}
            for n, cells in enumerate(data, start=1)
        ]
        return [ConfigTable("asim_probabilities", name, out)]
    return []


def _coefficients(name: str, header: list[str], data: list[list[str]]) -> ConfigTable:
    name_col = _column(header, "coefficient_name")
    if name_col is None:
        raise ValueError(
            f"{name}: a coefficients file needs a 'coefficient_name' column (header: {header}); "
            "ActivitySim coefficients files have the columns coefficient_name,value,constrain"
        )
    value_col = _column(header, "value")
    if value_col is None:  # a COEFFICIENT_TEMPLATE: segment columns name coefficients
        rows = [
            {
                "file": name,
                "row": n,
                "coefficient_name": _at(cells, name_col),
                "columns": _rest(header, cells, {name_col}),
            }
            for n, cells in enumerate(data, start=1)
        ]
        return ConfigTable("asim_coefficient_templates", name, rows)
    constrain_col = _column(header, "constrain")
    rows = []
    for n, cells in enumerate(data, start=1):
        text = _at(cells, value_col) or ""
        try:
            value = float(text)
        except ValueError:
            raise ValueError(
                f"{name}: data row {n} ({_at(cells, name_col)!r}) has value {text!r}, not a number"
            ) from None
        rows.append(
            {
                "file": name,
                "coefficient_name": _at(cells, name_col),
                "value": value,
                "constrain": _at(cells, constrain_col),
            }
        )
    return ConfigTable("asim_coefficients", name, rows)


def coefficient_names(rows: list[list[str]]) -> set[str]:
    """The coefficient names a coefficients file with a ``value`` column defines."""
    header, data = _header(rows)
    name_col, value_col = _column(header, "coefficient_name"), _column(header, "value")
    if name_col is None or value_col is None:
        return set()
    return {c for cells in data if (c := _at(cells, name_col))}


def rewrite_coefficients(text: str, new_values: Mapping[str, Any], where: str) -> str:
    """The CSV text with the ``value`` cell of the named coefficients replaced.

    Comment and blank lines and every other cell are kept as they are.

    Raises
    ------
    ValueError
        When the file has no ``coefficient_name`` / ``value`` header.
    """
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    header: list[str] | None = None
    name_col = value_col = None
    for cells in csv.reader(io.StringIO(text, newline="")):
        stripped = [c.strip() for c in cells]
        if header is None and any(stripped) and not _is_comment(stripped):
            header = stripped
            name_col = _column(header, "coefficient_name")
            value_col = _column(header, "value")
            if name_col is None or value_col is None:
                raise ValueError(f"{where}: no coefficient_name,value header to override")
        elif header is not None and name_col is not None and value_col is not None:
            name = _at(stripped, name_col)
            if name in new_values and not _is_comment(stripped) and value_col < len(cells):
                cells = list(cells)
                cells[value_col] = _format_number(new_values[name])
        writer.writerow(cells)
    return out.getvalue()


def _format_number(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def constants_table(name: str, constants: Mapping[Any, Any]) -> ConfigTable:
    """``asim_constants`` rows of one file's constants mapping."""
    rows = []
    for key, value in constants.items():
        number = (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )
        rows.append(
            {
                "file": name,
                "name": str(key),
                "value": json.dumps(value, ensure_ascii=False, sort_keys=True, default=str),
                "number": number,
            }
        )
    return ConfigTable("asim_constants", name, rows)
