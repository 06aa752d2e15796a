"""PostgreSQL's binary COPY format, written from Arrow record batches with numpy.

``COPY ... FROM STDIN (FORMAT binary)`` spares the server the parsing of
text: on a million-row, five-column numeric file the server's share of an
ingest drops from ~1.1 s (CSV) to ~0.35 s, and encoding in the client costs
~0.1-0.3 s against ~0.7 s for DuckDB writing CSV (2 shared cores). The
encoding is vectorized: every row's fields are laid out at offsets computed
from the values' lengths, and the bytes are scattered there in one numpy
operation per column, so no Python code runs per row.

The format (PostgreSQL documentation, "COPY", binary format): a signature
and two zero 32-bit words; per row a 16-bit field count, then per field a
32-bit length (-1 for NULL) and the value in network byte order; a 16-bit -1
at the end. :data:`BINARY_TYPES` are the column types written this way
(their wire forms: two's complement integers, IEEE floats, one byte for a
boolean, days / microseconds since 2000-01-01 for dates / timestamps, UTF-8
for text, raw bytes for bytea, a version byte 1 then the text for jsonb).
A table with any other column type (numeric, time, interval, uuid...) is
loaded as CSV instead (see :mod:`.pg_hot`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
TRAILER = b"\xff\xff"

# PostgreSQL type -> (Arrow type name to cast to, numpy big-endian dtype or None for bytes)
BINARY_TYPES: dict[str, tuple[str, str | None]] = {
    "boolean": ("bool", "u1"),
    "smallint": ("int16", ">i2"),
    "integer": ("int32", ">i4"),
    "bigint": ("int64", ">i8"),
    "real": ("float32", ">f4"),
    "double precision": ("float64", ">f8"),
    "date": ("int32", ">i4"),
    "timestamp without time zone": ("int64", ">i8"),
    "timestamp with time zone": ("int64", ">i8"),
    "text": ("large_string", None),
    "jsonb": ("large_string", None),
    "bytea": ("large_binary", None),
}
_DAYS_1970_TO_2000 = 10_957
_US_1970_TO_2000 = 946_684_800_000_000
_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)


def supports(pg_types: Sequence[str]) -> bool:
    """Whether every column type can be written in the binary format here."""
    return all(t in BINARY_TYPES for t in pg_types)


def encode_batch(batch: Any, pg_types: Sequence[str]) -> bytes:
    """The rows of an Arrow record batch in binary COPY format (no header or trailer).

    Parameters
    ----------
    batch:
        A ``pyarrow.RecordBatch`` whose columns are in the order of the
        COPY's column list.
    pg_types:
        The PostgreSQL type of each column (keys of :data:`BINARY_TYPES`).

    Returns
    -------
    bytes
    """
    import numpy as np

    n = batch.num_rows
    if n == 0:
        return b""
    fields = [_field(batch.column(i), kind) for i, kind in enumerate(pg_types)]
    sizes = np.full(n, 2, dtype=np.int64)
    for lens, _ in fields:
        sizes += 4 + np.maximum(lens, 0)
    ends = np.cumsum(sizes)
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    pos = ends - sizes
    _put(out, pos, np.full(n, len(fields), dtype=">i2").view(np.uint8).reshape(n, 2))
    pos = pos + 2
    for lens, write in fields:
        _put(out, pos, lens.astype(">i4").view(np.uint8).reshape(n, 4))
        start = pos + 4
        write(out, start, lens >= 0)
        pos = start + np.maximum(lens, 0)
    return out.tobytes()


def _put(out: Any, starts: Any, rows: Any) -> None:
    """Write ``rows`` (k x w bytes) at ``starts`` (k offsets) of ``out``."""
    import numpy as np

    width = rows.shape[1]
    out[starts[:, None] + np.arange(width)] = rows


def _field(column: Any, kind: str) -> tuple[Any, Any]:
    """``(lengths, writer)`` of one column: byte length per row (-1: NULL) and how to write it."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    arrow_type, dtype = BINARY_TYPES[kind]
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    if dtype is not None:
        if kind == "boolean":
            values = pc.fill_null(column.cast(pa.bool_()), False).to_numpy(zero_copy_only=False)
        else:
            if kind == "date":
                column = column.cast(pa.date32()).cast(pa.int32())
            elif kind.startswith("timestamp"):
                column = column.cast(pa.timestamp("us", tz=column.type.tz)).cast(pa.int64())
            values = pc.fill_null(column.cast(getattr(pa, arrow_type)()), 0).to_numpy(
                zero_copy_only=False
            )
            if kind == "date":
                values = values - _DAYS_1970_TO_2000
            elif kind.startswith("timestamp"):
                finite = (values != _INT64_MAX) & (values != _INT64_MIN)  # +-infinity
                values = np.where(finite, values - _US_1970_TO_2000, values)
        width = np.dtype(dtype).itemsize
        data = np.ascontiguousarray(values.astype(dtype)).view(np.uint8).reshape(-1, width)
        lens = np.where(valid, width, -1).astype(np.int64)

        def write_fixed(out: Any, start: Any, present: Any) -> None:
            _put(out, start[present], data[present])

        return lens, write_fixed
    column = column.cast(getattr(pa, arrow_type)())
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int64)[
        column.offset : column.offset + len(column) + 1
    ]
    raw = column.buffers()[2]
    payload = np.frombuffer(raw, dtype=np.uint8) if raw is not None else np.empty(0, np.uint8)
    text_lens = np.diff(offsets)
    prefix = 1 if kind == "jsonb" else 0  # jsonb's binary form: version 1, then the text
    lens = np.where(valid, text_lens + prefix, -1).astype(np.int64)

    def write_bytes(out: Any, start: Any, present: Any) -> None:
        begin = start[present]
        if prefix:
            out[begin] = 1
            begin = begin + 1
        counts = text_lens[present]
        total = int(counts.sum())
        if total == 0:
            return
        within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        out[np.repeat(begin, counts) + within] = payload[
            np.repeat(offsets[:-1][present], counts) + within
        ]

    return lens, write_bytes
