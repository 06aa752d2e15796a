"""The first rows of loaded data, as plain columns, types and values (for previews)."""

from __future__ import annotations

from typing import Any


def first_rows(loaded: Any, rows: int) -> tuple[list[str], list[str], list[list[Any]]]:
    """Column names, types and the first ``rows`` rows of what ``Tracker.load`` returned.

    Parameters
    ----------
    loaded:
        A DuckDB relation (tables), a pandas/GeoPandas DataFrame (HDF5
        tables, layers: geometries as WKT) or an xarray Dataset (arrays: the
        first ``rows`` positions along each dimension, flattened to rows).
    rows:
        How many rows at most.

    Returns
    -------
    tuple
        ``(columns, types, values)``: the column names, their types as text
        (DuckDB or pandas dtypes) and one list of values per row (missing
        values of a DataFrame as None).

    Raises
    ------
    TypeError
        For anything else (a whole HDF5 container, a numpy array).
    """
    if hasattr(loaded, "limit") and hasattr(loaded, "fetchall"):
        head = loaded.limit(rows)
        return list(head.columns), [str(t) for t in head.types], [list(r) for r in head.fetchall()]
    if hasattr(loaded, "data_vars") and hasattr(loaded, "head"):  # xarray Dataset
        loaded = loaded.head(rows).to_dataframe().reset_index()
    if hasattr(loaded, "iloc") and hasattr(loaded, "dtypes"):
        frame = loaded.iloc[:rows].copy()
        for column in frame.columns:
            if str(frame[column].dtype) == "geometry":
                frame[column] = frame[column].to_wkt()
        values = frame.astype(object).where(frame.notna(), None).values.tolist()
        return [str(c) for c in frame.columns], [str(t) for t in frame.dtypes], values
    raise TypeError(f"it loads as {type(loaded).__name__}, which has no rows")
