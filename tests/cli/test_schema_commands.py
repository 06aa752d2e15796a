"""``consist schema export`` and ``consist views create`` on the shared project store.

The project gets run ``zones_1`` from ``test_data_commands.add_table_artifacts``:
three profiled parquet files sharing one schema, with indexed facets ``zone``
and ``year``, an ingested ``trips_hot`` table and a ``notes`` text file.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pytest
from test_data_commands import add_table_artifacts, digest

if TYPE_CHECKING:  # pragma: no cover - the fixture's type, from tests/cli/conftest.py
    from conftest import Project


@pytest.fixture
def tables(project: Project) -> dict[str, Any]:
    return add_table_artifacts(project)


def _query(project: Project, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(project.db_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _class_fields(source: str) -> tuple[str, list[str]]:
    """The class name and annotated field names of an exported stub (parsed, not executed)."""
    tree = ast.parse(source)
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    names = [
        n.target.id
        for n in cls.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    ]
    return cls.name, names


# -- schema export ----------------------------------------------------------------------------


def test_schema_export_by_artifact_key_and_schema_id(
    cli, project: Project, tables: dict[str, Any]
) -> None:
    before = digest(project.db_path)
    out = cli("schema", "export", "links_north_2030", *project.args())
    assert out.code == 0, out.stderr
    assert _class_fields(out.stdout) == ("LinksNorth2030", ["link", "flow"])
    assert "from sqlmodel import" in out.stdout and "SQLModel" in out.stdout

    schema_id = tables["links_north_2030"].meta["schema_id"]
    data = cli("schema", "export", schema_id, *project.args(), "--json").json()
    assert set(data) == {"artifact_id", "schema_id", "out", "source"}
    assert data["artifact_id"] is None and data["schema_id"] == schema_id and data["out"] is None
    assert _class_fields(data["source"])[1] == ["link", "flow"]

    by_id = cli("schema", "export", str(tables["trips_hot"].id), *project.args(), "--json")
    assert by_id.code == 0 and by_id.json()["artifact_id"] == str(tables["trips_hot"].id)
    assert _class_fields(by_id.json()["source"]) == ("TripsHot", ["trip_id", "mode"])
    assert digest(project.db_path) == before  # a read command writes nothing


def test_schema_export_options_and_out_file(
    cli, project: Project, tables: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "models" / "links.py"
    out = cli(
        "schema",
        "export",
        "links_south_2030",
        "--out",
        str(target),
        "--class-name",
        "Link",
        "--table-name",
        "links",
        "--table",
        *project.args(),
    )
    assert out.code == 0, out.stderr
    assert str(target) in out.stdout and "wrote" in out.stdout
    written = target.read_text()
    assert _class_fields(written)[0] == "Link"
    assert "table=True" in written and '__tablename__ = "links"' in written
    data = cli(
        "schema", "export", "links_south_2030", "--out", str(target), *project.args(), "--json"
    ).json()
    assert data["out"] == str(target) and target.read_text() == data["source"]
    with_system = cli(
        "schema",
        "export",
        "trips_hot",
        "--system-columns",
        "--prefer-source",
        "duckdb",
        *project.args(),
    )
    assert with_system.code == 0, with_system.stderr


def test_schema_export_errors(
    cli, project: Project, tables: dict[str, Any], tmp_path: Path
) -> None:
    out = cli("schema", "export", "persons", *project.args())
    assert out.code == 5 and "'persons' has no recorded schema" in out.stderr
    assert "profile_file_schema=True" in out.stderr
    out = cli("schema", "export", "no_such_thing", *project.args())
    assert out.code == 5 and "no_such_thing" in out.stderr
    out = cli("schema", "export", "links_north_2030", "--prefer-source", "csv", *project.args())
    assert out.code == 2 and "--prefer-source 'csv'" in out.stderr
    before = digest(project.db_path)
    out = cli(
        "schema", "export", "links_north_2030", "--out", str(project.db_path), *project.args()
    )
    assert out.code == 2 and "the store itself" in out.stderr
    assert digest(project.db_path) == before
    out = cli("schema", "export", "links_north_2030", "--out", str(tmp_path), *project.args())
    assert out.code == 2 and "is a directory" in out.stderr
    assert "Traceback" not in out.stderr


# -- views create -----------------------------------------------------------------------------


def test_views_create_grouped_view_with_facets(
    cli, project: Project, tables: dict[str, Any]
) -> None:
    schema_id = tables["links_north_2030"].meta["schema_id"]
    out = cli("views", "create", "v_links", "--schema-id", schema_id, *project.args(), "--json")
    assert out.code == 0, out.stderr
    data = out.json()
    assert set(data) == {
        "name",
        "sql",
        "hot_artifacts",
        "cold_artifacts",
        "missing_files",
        "skipped",
        "columns",
    }
    assert data["name"] == "v_links" and data["cold_artifacts"] == 3 and data["hot_artifacts"] == 0
    assert data["columns"][:2] == ["link", "flow"] and "consist_run_id" in data["columns"]
    assert _query(project, "SELECT count(*) FROM v_links") == [(6,)]

    out = cli(
        "views",
        "create",
        "v_north",
        "--schema-id",
        schema_id,
        "--param",
        "zone=north",
        "--param",
        "year>=2035",
        "--attach-facet",
        "year",
        "--no-system-columns",
        *project.args(),
    )
    assert out.code == 0, out.stderr
    assert "created view v_north" in out.stdout and "1 file artifact" in out.stdout
    assert _query(project, "SELECT link, flow, facet_year FROM v_north ORDER BY link") == [
        (1, 2040.0, 2040),
        (2, 3.5, 2040),
    ]
    out = cli(
        "views",
        "create",
        "v_links",
        "--schema-id",
        schema_id,
        "--model",
        "households",
        *project.args(),
    )
    assert out.code == 0 and "0 ingested and 0 file" in out.stdout  # replaced, now empty
    assert _query(project, "SELECT count(*) FROM v_links") == [(0,)]


def test_views_create_missing_files(cli, project: Project, tables: dict[str, Any]) -> None:
    schema_id = tables["links_north_2030"].meta["schema_id"]
    gone = Path(tables["links_south_2030"].abs_path)
    gone.unlink()
    out = cli(
        "views",
        "create",
        "v_strict",
        "--schema-id",
        schema_id,
        "--missing-files",
        "error",
        *project.args(),
    )
    assert out.code == 1 and "--missing-files warn or skip_silent" in out.stderr
    assert _query(
        project, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'v_strict'"
    ) == [(0,)]
    out = cli("views", "create", "v_lenient", "--schema-id", schema_id, *project.args())
    assert out.code == 0, out.stderr
    assert "left out 1 missing file" in out.stdout and "links_south_2030" in out.stdout
    assert "Warning" not in out.stderr
    assert _query(project, "SELECT count(*) FROM v_lenient") == [(4,)]


def test_views_create_errors(cli, project: Project, tables: dict[str, Any]) -> None:
    schema_id = tables["links_north_2030"].meta["schema_id"]
    args = ("views", "create")
    out = cli(*args, "v_x", "--schema-id", "blake3:nope", *project.args())
    assert out.code == 5 and "--schema-id 'blake3:nope'" in out.stderr
    out = cli(*args, "v_x", "--schema-id", schema_id, "--param", "zone", *project.args())
    assert out.code == 2 and "invalid facet predicate 'zone'" in out.stderr
    out = cli(*args, "v_x", "--schema-id", schema_id, "--mode", "warm", *project.args())
    assert out.code == 2 and "--mode 'warm'" in out.stderr
    out = cli(*args, "v_x", "--schema-id", schema_id, "--driver", "xlsx", *project.args())
    assert out.code == 2 and "--driver" in out.stderr
    out = cli(*args, "v_x", *project.args())
    assert out.code == 2 and "--schema-id" in out.stderr
    assert cli(*args, "v_once", "--schema-id", schema_id, *project.args()).code == 0
    out = cli(*args, "v_once", "--schema-id", schema_id, "--if-exists", "error", *project.args())
    assert out.code == 1 and "already exists" in out.stderr and "--if-exists replace" in out.stderr
    out = cli(*args, "v_y", "--schema-id", schema_id, "--db-path", str(project.root / "none.db"))
    assert out.code == 3
    assert "Traceback" not in out.stderr


def test_help_shows_an_example(cli) -> None:
    out = cli("schema", "export", "--help")
    assert out.code == 0 and "Example: consist schema export" in out.stdout
    out = cli("views", "create", "--help")
    assert out.code == 0 and "Example: consist views create" in out.stdout
    assert "--schema-id" in out.stdout and "--param" in out.stdout
