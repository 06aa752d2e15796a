"""The content-addressed blob store: upload on completion, hydration on a hit elsewhere.

S3 is moto's real server on 127.0.0.1 (a free port, started and stopped by a
fixture); the second "machine" is a tracker with another ``run_dir`` on the
same DuckDB store.
"""

from __future__ import annotations

import json
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import consist
from consist import Tracker
from consist.core.identity.hashing import hash_directory, hash_file
from consist.core.store.blob_store import BlobDigestMismatch, BlobStore, BlobStoreError
from consist.core.tracker_config import TrackerConfig
from consist.options import CacheOptions

BUCKET = "consist-blobs"
CREDS = {"key": "testing", "secret": "testing"}
CALLS: list[str] = []
OPTS = CacheOptions(code_identity="callable_source")


def make_table(rows: int) -> Path:
    CALLS.append("make_table")
    out = consist.output_path("table", ext="csv")
    out.write_text("id,value\n" + "".join(f"{i},{i * i}\n" for i in range(rows)))
    return out


def make_tree(rows: int) -> dict[str, Path]:
    CALLS.append("make_tree")
    table = consist.output_path("table", ext="csv")
    table.write_text("id\n" + "".join(f"{i}\n" for i in range(rows)))
    tree = consist.output_path("tree")
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("alpha\n")
    (tree / "sub" / "b.bin").write_bytes(bytes(range(256)) * 4)
    return {"table": table, "tree": tree}


@pytest.fixture(autouse=True)
def _reset_calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def s3() -> Iterator[dict[str, Any]]:
    """moto's S3 server on a free loopback port, with an empty bucket."""
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=CREDS["key"],
            aws_secret_access_key=CREDS["secret"],
        )
        client.create_bucket(Bucket=BUCKET)
        options = {
            **CREDS,
            "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
        yield {"client": client, "options": options, "url": f"s3://{BUCKET}/team"}
    finally:
        server.stop()


def _tracker(root: Path, run_dir: str, **options: Any) -> Tracker:
    return Tracker(run_dir=root / run_dir, db_path=root / "shared.duckdb", **options)


def _s3_options(s3: dict[str, Any]) -> dict[str, Any]:
    return {"blob_store": s3["url"], "blob_store_options": s3["options"]}


def _object_key(digest: str, suffix: str = "") -> str:
    hex_part = digest.split(":", 1)[1]
    return f"team/blake3/{hex_part[:2]}/{hex_part}{suffix}"


def _run_table(tracker: Tracker, cache_options: CacheOptions = OPTS) -> Any:
    return tracker.run(
        make_table, outputs=["table"], config={"rows": 50}, cache_options=cache_options
    )


# -- end to end against moto's S3 -------------------------------------------------


def test_a_hit_in_another_run_dir_hydrates_outputs_from_s3(
    tmp_path: Path, s3: dict[str, Any]
) -> None:
    first = _tracker(tmp_path, "machine_a", **_s3_options(s3))
    produced = first.run(
        make_tree, outputs=["table", "tree"], config={"rows": 20}, cache_options=OPTS
    )
    first.close()
    assert not produced.cache_hit and CALLS == ["make_tree"]
    table, tree = produced.outputs["table"], produced.outputs["tree"]
    client = s3["client"]
    # Objects are keyed by digest: the file's bytes, the tree's files and manifest.
    body = client.get_object(Bucket=BUCKET, Key=_object_key(table.hash))["Body"].read()
    assert body == Path(table.abs_path).read_bytes()
    manifest = json.loads(
        client.get_object(Bucket=BUCKET, Key=_object_key(tree.hash, ".dir.json"))["Body"].read()
    )
    assert set(manifest["files"]) == {"a.txt", "sub/b.bin"}
    for digest in manifest["files"].values():
        client.head_object(Bucket=BUCKET, Key=_object_key(digest))

    second = _tracker(tmp_path, "machine_b", **_s3_options(s3))
    hit = second.run(make_tree, outputs=["table", "tree"], config={"rows": 20}, cache_options=OPTS)
    assert hit.cache_hit and CALLS == ["make_tree"]  # the function did not execute
    assert hit.run.meta["cache_source"] == produced.run.id
    got_table, got_tree = Path(hit.outputs["table"].abs_path), Path(hit.outputs["tree"].abs_path)
    assert (tmp_path / "machine_b") in got_table.parents and got_tree.is_dir()
    assert got_table.read_bytes() == Path(table.abs_path).read_bytes()
    assert hash_file(got_table) == table.hash
    assert hash_directory(got_tree) == tree.hash
    assert (got_tree / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 4
    second.close()


def test_outputs_all_hydrates_into_the_new_runs_folder(tmp_path: Path, s3: dict[str, Any]) -> None:
    first = _tracker(tmp_path, "machine_a", **_s3_options(s3))
    produced = _run_table(first)
    first.close()
    second = _tracker(tmp_path, "machine_b", **_s3_options(s3))
    hit = second.run(
        make_table,
        outputs=["table"],
        config={"rows": 50},
        cache_options=CacheOptions(code_identity="callable_source", cache_hydration="outputs-all"),
    )
    assert hit.cache_hit and CALLS == ["make_table"]
    path = Path(hit.outputs["table"].abs_path)
    assert path.parent == second.run_artifact_dir(hit.run)
    assert path.read_bytes() == Path(produced.outputs["table"].abs_path).read_bytes()
    second.close()


def test_a_corrupted_object_is_refused_and_the_step_executes_again(
    tmp_path: Path, s3: dict[str, Any]
) -> None:
    first = _tracker(tmp_path, "machine_a", **_s3_options(s3))
    produced = _run_table(first)
    first.close()
    digest = produced.outputs["table"].hash
    good = Path(produced.outputs["table"].abs_path).read_bytes()
    client = s3["client"]
    client.put_object(Bucket=BUCKET, Key=_object_key(digest), Body=b"id,value\n0,999\n")

    second = _tracker(tmp_path, "machine_b", **_s3_options(s3))
    would_be = Path(second.artifacts.local_path(produced.outputs["table"]))
    with pytest.warns(RuntimeWarning, match="refused"):
        again = _run_table(second)
    assert not again.cache_hit and CALLS == ["make_table", "make_table"]
    assert "could not hydrate" in json.dumps(again.run.meta["cache_miss_explanation"])
    assert not would_be.exists()  # nothing wrong landed where the hit would have put it
    if would_be.parent.exists():  # no temporary download left behind either
        assert list(would_be.parent.iterdir()) == []
    assert Path(again.outputs["table"].abs_path).read_bytes() == good
    # The bad object was removed and the re-execution uploaded the real bytes.
    assert client.get_object(Bucket=BUCKET, Key=_object_key(digest))["Body"].read() == good
    second.close()


def test_without_a_blob_store_another_run_dir_misses(tmp_path: Path) -> None:
    first = _tracker(tmp_path, "machine_a")
    _run_table(first)
    first.close()
    second = _tracker(tmp_path, "machine_b")
    again = _run_table(second)
    assert not again.cache_hit and CALLS == ["make_table", "make_table"]
    assert "missing" in again.run.meta["cache_miss_explanation"]["cached_outputs"]
    second.close()


def test_load_of_an_artifact_missing_here_fetches_it(tmp_path: Path, s3: dict[str, Any]) -> None:
    first = _tracker(tmp_path, "machine_a", **_s3_options(s3))
    produced = _run_table(first)
    first.close()
    second = _tracker(tmp_path, "machine_b", **_s3_options(s3))
    art = second.get_run_outputs(produced.run.id)["table"]
    assert (tmp_path / "machine_b") in Path(art.abs_path).parents
    assert not Path(art.abs_path).exists()
    frame = second.load_df(art)
    assert frame["value"].tolist() == [i * i for i in range(50)]
    assert Path(art.abs_path).read_bytes() == Path(produced.outputs["table"].abs_path).read_bytes()
    assert CALLS == ["make_table"]
    second.close()


def test_load_refuses_a_corrupted_object(tmp_path: Path, s3: dict[str, Any]) -> None:
    first = _tracker(tmp_path, "machine_a", **_s3_options(s3))
    produced = _run_table(first)
    first.close()
    key = _object_key(produced.outputs["table"].hash)
    s3["client"].put_object(Bucket=BUCKET, Key=key, Body=b"id,value\n1,1\n")
    second = _tracker(tmp_path, "machine_b", **_s3_options(s3))
    art = second.get_run_outputs(produced.run.id)["table"]
    with pytest.warns(RuntimeWarning, match="hashes to"), pytest.raises(FileNotFoundError):
        second.load_df(art)
    assert not Path(art.abs_path).exists()
    second.close()


def test_a_read_only_tracker_fetches_nothing(tmp_path: Path) -> None:
    first = _tracker(tmp_path, "machine_a", blob_store=tmp_path / "blobs")
    produced = _run_table(first)
    first.close()
    reader = _tracker(tmp_path, "machine_b", blob_store=tmp_path / "blobs", read_only=True)
    art = reader.get_run_outputs(produced.run.id)["table"]
    with pytest.raises(FileNotFoundError):
        reader.load_df(art)
    assert not (tmp_path / "machine_b").exists()
    reader.close()


# -- a local directory as the blob store ------------------------------------------


def test_a_local_directory_blob_store_works_the_same(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    first = _tracker(tmp_path, "machine_a", blob_store=str(blobs))
    produced = first.run(
        make_tree, outputs=["table", "tree"], config={"rows": 7}, cache_options=OPTS
    )
    first.close()
    digest = produced.outputs["table"].hash
    stored = blobs / _object_key(digest).removeprefix("team/")
    assert stored.read_bytes() == Path(produced.outputs["table"].abs_path).read_bytes()

    second = _tracker(tmp_path, "machine_b", blob_store=blobs)
    hit = second.run(make_tree, outputs=["table", "tree"], config={"rows": 7}, cache_options=OPTS)
    assert hit.cache_hit and CALLS == ["make_tree"]
    for key in ("table", "tree"):
        assert (tmp_path / "machine_b") in Path(hit.outputs[key].abs_path).parents
    assert hash_directory(hit.outputs["tree"].abs_path) == produced.outputs["tree"].hash
    assert Path(hit.outputs["table"].abs_path).read_bytes() == stored.read_bytes()
    second.close()


def test_a_hit_the_blob_store_cannot_serve_stays_as_validated(tmp_path: Path) -> None:
    first = _tracker(tmp_path, "machine_a")  # no blob store: nothing uploaded
    produced = _run_table(first)
    first.close()
    second = _tracker(tmp_path, "machine_b", blob_store=tmp_path / "blobs")
    unchecked = CacheOptions(code_identity="callable_source", validate_cached_outputs="none")
    hit = _run_table(second, cache_options=unchecked)
    assert hit.cache_hit and CALLS == ["make_table"]  # as without a blob store
    assert hit.run.meta["cache_source"] == produced.run.id
    checked = _run_table(second)  # "lazy": the file is missing here and not in the store
    assert not checked.cache_hit and CALLS == ["make_table", "make_table"]
    assert "not in the blob store" in checked.run.meta["cache_miss_explanation"]["cached_outputs"]
    second.close()


def test_an_upload_failure_keeps_the_run_recorded(tmp_path: Path) -> None:
    blocked = tmp_path / "not_a_dir"
    blocked.write_text("a file where the blob store should be\n")
    tracker = _tracker(tmp_path, "machine_a", blob_store=str(blocked))
    with pytest.warns(RuntimeWarning, match="not uploaded"):
        result = _run_table(tracker)
    assert result.run.status == "completed"
    stored = tracker.get_run(result.run.id)
    assert stored is not None and stored.status == "completed"
    assert "table" in stored.meta["blob_upload_failed"]
    tracker.close()


# -- BlobStore itself ----------------------------------------------------------------


def test_fetch_verifies_before_anything_reaches_the_destination(tmp_path: Path) -> None:
    src = tmp_path / "data.bin"
    src.write_bytes(b"real bytes" * 100)
    digest = hash_file(src)
    store = BlobStore(tmp_path / "blobs")
    assert store.put(src, digest) is True
    assert store.put(src, digest) is False  # already stored: skipped
    dest = tmp_path / "out" / "data.bin"
    store.fetch(digest, dest)
    assert dest.read_bytes() == src.read_bytes()

    Path(store.key_for(digest)).write_bytes(b"tampered")
    other = tmp_path / "out" / "again.bin"
    with pytest.raises(BlobDigestMismatch):
        store.fetch(digest, other)
    assert sorted(p.name for p in other.parent.iterdir()) == ["data.bin"]
    assert not store.exists(digest)  # the bad object is gone
    with pytest.raises(BlobStoreError, match="no object"):
        store.fetch(digest, other)


def test_put_refuses_content_that_no_longer_matches(tmp_path: Path) -> None:
    src = tmp_path / "data.txt"
    src.write_text("before\n")
    digest = hash_file(src)
    src.write_text("after\n")
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(BlobDigestMismatch, match="not uploaded"):
        store.put(src, digest)
    assert not store.exists(digest)


def test_a_manifest_naming_a_path_outside_its_directory_is_refused(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_text("a\n")
    digest = hash_directory(tree)
    store = BlobStore(tmp_path / "blobs")
    store.put(tree, digest)
    manifest = Path(store.manifest_key_for(digest))
    data = json.loads(manifest.read_text())
    data["files"] = {"../escape.txt": data["files"]["a.txt"]}
    manifest.write_text(json.dumps(data))
    with pytest.raises(BlobDigestMismatch, match="outside"):
        store.fetch(digest, tmp_path / "out" / "tree")
    assert not (tmp_path / "out" / "escape.txt").exists()
    assert not (tmp_path / "out" / "tree").exists()


def test_config_errors_name_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="blob_store_options is given without blob_store"):
        TrackerConfig(run_dir=tmp_path, blob_store_options={"anon": True})
    with pytest.raises(ValueError, match="hashing_strategy='full'"):
        TrackerConfig(run_dir=tmp_path, blob_store=str(tmp_path), hashing_strategy="fast")
    with pytest.raises(ValueError, match="blob_store"):
        TrackerConfig(run_dir=tmp_path, blob_store="  ")
    with pytest.raises(ValueError, match="not a blake3 content digest"):
        BlobStore(tmp_path).key_for("stat:" + "0" * 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert TrackerConfig(run_dir=tmp_path, blob_store=tmp_path).blob_store == str(tmp_path)
