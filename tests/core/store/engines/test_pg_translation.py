"""DuckDB SQL translated for psycopg/PostgreSQL (engines/pg_sql.py), and checked on a server."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from consist.core.store.engines.pg_sql import Translator, translate_ddl
from consist.core.store.engines.postgres import check_url, redact


def _keys(table: str) -> list[str]:
    return {"t": ["a", "b"]}[table]


T = Translator(_keys)


def test_placeholders_outside_quoted_text_only() -> None:
    st = T.translate(
        "SELECT '?', \"odd?col\", x LIKE 'a%' -- what? $x\n, ? /* ? */ FROM t WHERE y = ?",
        [1, 2],
    )
    assert st.sql == (
        "SELECT '?', \"odd?col\", x LIKE 'a%%' -- what? $x\n, %s /* ? */ FROM t WHERE y = %s"
    )
    assert st.params == [1, 2]


def test_named_and_numbered_parameters() -> None:
    st = T.translate(
        "SELECT $run, $run, $$a $b ?$$, 'it''s $x' WHERE d < $limit", {"run": "r", "limit": 3}
    )
    assert st.sql == "SELECT %(run)s, %(run)s, $$a $b ?$$, 'it''s $x' WHERE d < %(limit)s"
    assert st.params == {"run": "r", "limit": 3}
    st = T.translate("SELECT $2, $1, $2", ["a", "b"])
    assert st.sql == "SELECT %(_p2)s, %(_p1)s, %(_p2)s"
    assert st.params == {"_p1": "a", "_p2": "b"}
    with pytest.raises(ValueError, match=r"\$limit"):
        T.translate("SELECT $limit", {"other": 1})
    with pytest.raises(ValueError, match="2 placeholders but 1"):
        T.translate("SELECT ?, ?", [1])


def test_list_parameters_get_an_array_type_unless_cast() -> None:
    st = T.translate("SELECT * FROM t WHERE id IN (SELECT unnest(?)) AND n = ANY(?)", [["a"], [1]])
    assert "unnest(%s::text[])" in st.sql and "ANY(%s::bigint[])" in st.sql
    st = T.translate("SELECT unnest(?::UUID[])", [[str(uuid.uuid4())]])
    assert st.sql == "SELECT unnest(%s::UUID[])"
    assert T.translate("SELECT ?", [[uuid.uuid4()]]).sql == "SELECT %s::uuid[]"


def test_duckdb_types_and_constructs() -> None:
    assert T.translate("SELECT CAST(x AS DOUBLE), y::DOUBLE PRECISION").sql == (
        "SELECT CAST(x AS DOUBLE PRECISION), y::DOUBLE PRECISION"
    )
    st = T.translate(
        "INSERT INTO t (a, b, c) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET c = 1", [1, 2, 3]
    )
    assert "ON CONFLICT (a, b) DO UPDATE" in st.sql
    st = T.translate(
        "SELECT l.id, r.sig FROM l JOIN r ON r.id = l.rid WHERE l.x IN (SELECT unnest(?)) "
        "QUALIFY row_number() OVER (PARTITION BY l.id ORDER BY r.created_at DESC) = 1",
        [["x"]],
    )
    assert st.sql.startswith("SELECT DISTINCT ON (l.id) l.id, r.sig FROM")
    assert st.sql.endswith("ORDER BY l.id, r.created_at DESC")
    st = T.translate(
        "SELECT run_id, key, value_num FROM kv WHERE run_id IN (?, ?) "
        "QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY key) <= ?",
        ["a", "b", 2],
    )
    assert st.sql == (
        "SELECT run_id, key, value_num FROM (SELECT run_id, key, value_num, row_number() OVER "
        "(PARTITION BY run_id ORDER BY key) AS _consist_rn FROM kv WHERE run_id IN (%s, %s)) "
        "AS _consist_q WHERE _consist_rn <= %s"
    )
    assert T.translate("SELECT arg_max(id, created_at) FROM run").sql == (
        "SELECT (array_agg(id ORDER BY created_at DESC))[1] FROM run"
    )
    with pytest.raises(NotImplementedError, match="db_url"):
        T.translate("SELECT x FROM t QUALIFY rank() OVER (ORDER BY x) = 1")


def test_column_list_insert_becomes_rows_in_a_stable_order() -> None:
    st = T.translate(
        "INSERT INTO t (a, b, m) SELECT unnest(?), unnest(?::UUID[]), unnest(?::DOUBLE[]) "
        "ON CONFLICT DO NOTHING",
        [["b", "a"], ["u2", "u1"], [2.0, 1.0]],
    )
    assert st.many
    assert st.sql == (
        "INSERT INTO t (a, b, m) VALUES (%s, %s::UUID, %s::DOUBLE PRECISION) ON CONFLICT DO NOTHING"
    )
    assert st.params == [["a", "u1", 1.0], ["b", "u2", 2.0]]


def test_ddl() -> None:
    ddl = translate_ddl(
        "CREATE TABLE x (a UBIGINT NOT NULL, m JSON, d DOUBLE, t VARCHAR[], j_json VARCHAR)"
    )
    assert ddl == (
        "CREATE TABLE x (a NUMERIC(20,0) NOT NULL, m TEXT, d DOUBLE PRECISION, t VARCHAR[], "
        "j_json VARCHAR)"
    )


def test_urls() -> None:
    assert check_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert check_url("postgresql+psycopg://u:pw@h:5/db")
    for bad in ("sqlite:///x.db", "postgresql+psycopg2://h/db", "/tmp/x.duckdb", None):
        with pytest.raises(ValueError, match="db_url"):
            check_url(bad)
    with pytest.raises(ValueError, match="no database"):
        check_url("postgresql://u@h:5432")
    assert redact("postgresql://u:secret@h:5/db") == "postgresql://u:***@h:5/db"


def test_translated_statements_run_on_postgresql(pg_url: str) -> None:
    """The translations above are valid PostgreSQL with the store's parameter values."""
    from consist.core.store.engines.pg_store import PostgresMetadataStore

    store = PostgresMetadataStore(pg_url)
    store.ensure_schema()
    with store.connections.transaction() as con:
        con.execute(
            "INSERT INTO stat_cache (path, dev, ino, size, mtime_ns, ctime_ns, digest, "
            "recorded_ns) SELECT unnest(?), unnest(?), unnest(?), unnest(?), unnest(?), "
            "unnest(?), unnest(?), unnest(?)",
            [["b", "a"], [1, 1], [2**64 - 1, 3], [1, 1], [1, 1], [1, 1], ["d", "e"], [0, 0]],
        )
        row = con.execute("SELECT ino FROM stat_cache WHERE path = ? AND '?' = '?'", ["b"])
        assert row.fetchone() == (2**64 - 1,)
        assert con.execute(
            "SELECT count(*) FROM stat_cache WHERE path IN (SELECT unnest(?))", [["a", "b", "c"]]
        ).fetchone() == (2,)
        assert con.execute(
            "SELECT list_has_all(?::VARCHAR[], ?::VARCHAR[]), list_contains(?::VARCHAR[], 'x'), "
            "contains('abc', ?), json_extract('{\"a\": {\"b\": true}}', '$.a.b')::BOOLEAN, "
            "json_extract_string('{\"a\": 5}', '$.a'), json_extract('{\"a\": null}', '$.a')",
            [["x", "y"], ["y"], ["x"], "b"],
        ).fetchone() == (True, True, True, True, "5", None)
    with store.connections.connection() as con, pytest.raises(psycopg.errors.UndefinedTable):
        con.execute("SELECT * FROM no_such_table")
    store.close()


def test_missing_driver_names_the_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from consist.core.store.engines.pg_store import PostgresMetadataStore\n"
        "try:\n"
        "    PostgresMetadataStore('postgresql://u@127.0.0.1:1/db')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'consist[postgres]'" in out.stdout
    assert "db_url" in out.stdout


@pytest.mark.parametrize(
    "sql",
    [
        "DESCRIBE SELECT 1",
        "ATTACH 'x.duckdb' AS x",
        "SELECT * FROM duckdb_tables()",
        "SELECT * FROM read_parquet('a.parquet')",
        "  pragma table_info('run')",
    ],
)
def test_duckdb_only_statements_raise_naming_db_url(sql: str) -> None:
    with pytest.raises(NotImplementedError, match=r"not supported yet.*\(db_url\)"):
        T.translate(sql)


def test_duckdb_only_connection_methods_raise_naming_db_url(pg_url: str) -> None:
    from consist.core.store.engines.pg_store import PostgresMetadataStore

    store = PostgresMetadataStore(pg_url)
    try:
        with store.connections.connection() as con:
            with pytest.raises(NotImplementedError, match=r"register\(\).*db_url"):
                con.register("frame", object())
            with pytest.raises(NotImplementedError, match=r"sql\(\).*db_url"):
                con.sql("SELECT 1")
    finally:
        store.close()


def test_qualify_inside_a_subquery() -> None:
    st = T.translate(
        "SELECT r.id, k.key FROM run r LEFT JOIN (SELECT run_id, key FROM kv WHERE run_id IN "
        "(?, ?) QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY key) <= ?) k "
        "ON k.run_id = r.id WHERE r.id IN (?, ?)",
        ["a", "b", 1, "a", "b"],
    )
    assert st.sql == (
        "SELECT r.id, k.key FROM run r LEFT JOIN (SELECT run_id, key FROM (SELECT run_id, key, "
        "row_number() OVER (PARTITION BY run_id ORDER BY key) AS _consist_rn FROM kv WHERE "
        "run_id IN (%s, %s)) AS _consist_q WHERE _consist_rn <= %s) k ON k.run_id = r.id "
        "WHERE r.id IN (%s, %s)"
    )


def test_duckdb_only_methods_look_missing_to_hasattr(pg_url: str) -> None:
    from consist.core.store.engines.pg_store import PostgresMetadataStore

    store = PostgresMetadataStore(pg_url)
    try:
        with store.connections.connection() as con:
            assert not hasattr(con, "register")
            assert getattr(con, "complete", None) is None
            assert hasattr(con, "execute")
    finally:
        store.close()
