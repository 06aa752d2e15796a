"""W3C PROV export: documents read back with ``prov`` hold the exact runs, artifacts, relations."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import prov
import pytest
from prov.model import (
    ProvActivity,
    ProvAgent,
    ProvAssociation,
    ProvCommunication,
    ProvDocument,
    ProvEntity,
    ProvGeneration,
    ProvInfluence,
    ProvStart,
    ProvUsage,
)

from consist.core.exports.prov_export import ARTIFACT_NS, CONSIST_NS, RUN_NS

RUN = RUN_NS
ART = ARTIFACT_NS


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def pairs(doc: ProvDocument, cls: type) -> set[tuple[str, str]]:
    """``(first, second)`` formal arguments (as URIs) of every ``cls`` record."""
    out = set()
    for record in doc.get_records(cls):
        first, second = record.args[0], record.args[1]
        out.add((first.uri, second.uri if second is not None else None))
    return out


def identifiers(doc: ProvDocument, cls: type) -> set[str]:
    return {record.identifier.uri for record in doc.get_records(cls)}


def attribute(record: Any, name: str) -> Any:
    """The one value of ``consist:<name>`` (or ``prov:<name>``) on a record."""
    wanted = {CONSIST_NS + name, "http://www.w3.org/ns/prov#" + name}
    values = [v for qn, v in record.attributes if qn.uri in wanted]
    assert len(values) == 1, (name, values)
    return values[0]


def by_id(doc: ProvDocument, cls: type, uri: str) -> Any:
    found = [r for r in doc.get_records(cls) if r.identifier.uri == uri]
    assert len(found) == 1, uri
    return found[0]


def chain_expectations(recorded: Any) -> dict[str, Any]:
    """The exact entities and relations of the three-step chain."""
    raw = recorded.inputs("clean")["raw"]
    clean_art = recorded.outputs("clean")["clean"]
    feat = recorded.outputs("features")["feat"]
    pred = recorded.outputs("predict")["pred"]
    c, f, p = (RUN + recorded.runs[k] for k in ("clean", "features", "predict"))
    return {
        "entities": {ART + str(a.id) for a in (raw, clean_art, feat, pred)},
        "activities": {c, f, p},
        "used": {
            (c, ART + str(raw.id)),
            (f, ART + str(clean_art.id)),
            (p, ART + str(feat.id)),
        },
        "generated": {
            (ART + str(clean_art.id), c),
            (ART + str(feat.id), f),
            (ART + str(pred.id), p),
        },
        "informed": {(f, c), (p, f)},
        "artifacts": {"raw": raw, "clean": clean_art, "feat": feat, "pred": pred},
    }


@pytest.mark.parametrize(
    ("fmt", "read"),
    [
        ("json", lambda path: prov.read(str(path), format="json")),
        (
            "ttl",
            lambda path: ProvDocument.deserialize(str(path), format="rdf", rdf_format="turtle"),
        ),
    ],
)
def test_three_step_chain_reads_back_with_exact_relations(recorded, tmp_path, fmt, read) -> None:
    out = recorded.tracker.export_prov(recorded.chain, tmp_path / f"chain.{fmt}", format=fmt)
    assert out == tmp_path / f"chain.{fmt}" and out.is_file()
    doc = read(out)
    want = chain_expectations(recorded)
    assert identifiers(doc, ProvEntity) == want["entities"]
    assert identifiers(doc, ProvActivity) == want["activities"]
    assert pairs(doc, ProvUsage) == want["used"]
    assert pairs(doc, ProvGeneration) == want["generated"]
    assert pairs(doc, ProvCommunication) == want["informed"]
    # Each run is associated with its model, a software agent.
    models = {"clean", "features", "predict"}
    assert {uri.rsplit(":", 1)[-1] for uri in identifiers(doc, ProvAgent)} == models
    assert {(a, b.rsplit(":", 1)[-1]) for a, b in pairs(doc, ProvAssociation)} == {
        (RUN + recorded.runs[m], m) for m in models
    }


def test_attributes_carry_digests_sizes_hashes_and_times(recorded, tmp_path) -> None:
    doc = prov.read(str(recorded.tracker.export_prov(recorded.chain, tmp_path / "p.json")), "json")
    feat = chain_expectations(recorded)["artifacts"]["feat"]
    entity = by_id(doc, ProvEntity, ART + str(feat.id))
    assert attribute(entity, "digest") == feat.hash and feat.hash.startswith("blake3:")
    assert int(attribute(entity, "sizeBytes")) == feat.size_bytes > 0
    assert attribute(entity, "key") == "feat"
    assert attribute(entity, "uri") == feat.uri
    run = recorded.tracker.get_run(recorded.runs["features"])
    activity = by_id(doc, ProvActivity, RUN + run.id)
    assert attribute(activity, "configHash") == run.config_hash
    assert attribute(activity, "signature") == run.signature
    assert attribute(activity, "status") == "completed"
    assert activity.get_startTime() == run.created_at
    assert activity.get_endTime() == run.ended_at
    # The usage carries the key the run used as its role.
    usage = next(iter(doc.get_records(ProvUsage)))
    assert {str(v) for v in usage.get_attribute("prov:role")} <= {"raw", "clean", "feat"}


def test_cache_hit_is_informed_by_its_source_and_does_not_generate(recorded, tmp_path) -> None:
    first, hit = recorded.runs["clean"], recorded.runs["hit"]
    doc = prov.read(str(recorded.tracker.export_prov([hit, first], tmp_path / "h.json")), "json")
    clean_art = recorded.outputs("clean")["clean"]
    assert recorded.outputs("hit")["clean"].id == clean_art.id
    assert pairs(doc, ProvGeneration) == {(ART + str(clean_art.id), RUN + first)}
    assert (RUN + hit, RUN + first) in pairs(doc, ProvCommunication)
    assert pairs(doc, ProvInfluence) == {(RUN + hit, ART + str(clean_art.id))}
    hit_activity = by_id(doc, ProvActivity, RUN + hit)
    assert attribute(hit_activity, "cacheSource") == first
    assert attribute(hit_activity, "cacheHit") is True


def test_failed_run_is_an_activity_with_its_error_and_no_generation(recorded, tmp_path) -> None:
    failed = recorded.runs["failed"]
    out = recorded.tracker.export_prov(failed, tmp_path / "f.ttl", format="ttl")
    doc = ProvDocument.deserialize(str(out), format="rdf", rdf_format="turtle")
    activity = by_id(doc, ProvActivity, RUN + failed)
    assert attribute(activity, "status") == "failed"
    assert "solver diverged" in attribute(activity, "error")
    raw = recorded.inputs("failed")["raw"]
    assert pairs(doc, ProvUsage) == {(RUN + failed, ART + str(raw.id))}
    assert pairs(doc, ProvGeneration) == set()


def test_scenario_selects_header_and_steps_started_by_it(recorded, tmp_path) -> None:
    doc = prov.read(
        str(recorded.tracker.export_prov(path=tmp_path / "s.json", scenario="baseline")), "json"
    )
    header, prep, dem = (RUN + recorded.runs[k] for k in ("scenario", "prepare", "demand"))
    assert identifiers(doc, ProvActivity) == {header, prep, dem}
    assert pairs(doc, ProvStart) == {(prep, None), (dem, None)}
    starters = {r.args[0].uri: r.args[2].uri for r in doc.get_records(ProvStart)}
    assert starters == {prep: header, dem: header}
    persons = recorded.outputs("prepare")["persons"]
    trips = recorded.outputs("demand")["trips"]
    assert (ART + str(persons.id), prep) in pairs(doc, ProvGeneration)
    assert (ART + str(trips.id), dem) in pairs(doc, ProvGeneration)
    assert (dem, ART + str(persons.id)) in pairs(doc, ProvUsage)
    assert (dem, prep) in pairs(doc, ProvCommunication)


def test_provn_names_every_relation(recorded, tmp_path) -> None:
    out = recorded.tracker.export_prov(recorded.chain, tmp_path / "p.provn", format="provn")
    text = out.read_text()
    assert text.startswith("document") and text.rstrip().endswith("endDocument")
    feat = recorded.outputs("features")["feat"]
    run = recorded.runs["predict"]
    assert f"used(consist_run:{run}, consist_artifact:{feat.id}" in text
    assert (
        f"wasGeneratedBy(consist_artifact:{feat.id}, consist_run:{recorded.runs['features']}"
        in (text)
    )


def test_same_run_twice_and_single_id_string(recorded, tmp_path) -> None:
    one = recorded.runs["clean"]
    doc = prov.read(str(recorded.tracker.export_prov([one, one], tmp_path / "o.json")), "json")
    assert identifiers(doc, ProvActivity) == {RUN + one}


def test_existing_file_is_replaced(recorded, tmp_path) -> None:
    target = tmp_path / "p.json"
    target.write_text("old")
    recorded.tracker.export_prov(recorded.runs["clean"], target)
    assert prov.read(str(target), format="json") is not None
    assert listing(tmp_path) == ["p.json"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "run_ids .*or scenario"),
        ({"run_ids": "x", "scenario": "baseline"}, ValueError, "not both"),
        ({"run_ids": []}, ValueError, "run_ids is empty"),
        ({"run_ids": 5}, TypeError, "run_ids must be"),
        ({"run_ids": ["ok", 3]}, TypeError, "run_ids must hold"),
        ({"run_ids": "no-such-run"}, KeyError, "run_ids: no run 'no-such-run'"),
        ({"scenario": "no-such-scenario"}, KeyError, "scenario: no scenario"),
        ({"scenario": 3}, TypeError, "scenario must be"),
        ({"run_ids": "RUN", "format": "xml"}, ValueError, "format must be one of"),
    ],
)
def test_bad_arguments_raise_before_writing(recorded, tmp_path, kwargs, error, match) -> None:
    if kwargs.get("run_ids") == "RUN":
        kwargs = {**kwargs, "run_ids": recorded.runs["clean"]}
    with pytest.raises(error, match=match):
        recorded.tracker.export_prov(path=tmp_path / "p.json", **kwargs)
    assert listing(tmp_path) == []


def test_bad_paths_raise_before_writing(recorded, tmp_path) -> None:
    run = recorded.runs["clean"]
    (tmp_path / "adir").mkdir()
    with pytest.raises(ValueError, match=r"path=.*is a directory"):
        recorded.tracker.export_prov(run, tmp_path / "adir")
    with pytest.raises(ValueError, match="does not exist"):
        recorded.tracker.export_prov(run, tmp_path / "missing" / "p.json")
    with pytest.raises(ValueError, match="path is required"):
        recorded.tracker.export_prov(run)
    assert listing(tmp_path) == ["adir"]


def test_tracker_without_database_refuses(tmp_path) -> None:
    from consist import Tracker

    tracker = Tracker(tmp_path / "runs")
    try:
        with pytest.raises(ValueError, match="need a database"):
            tracker.export_prov("x", tmp_path / "p.json")
    finally:
        tracker.close()
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize(
    ("module", "call"),
    [
        ("prov.model", lambda t, run, p: t.export_prov(run, p / "x.json")),
        ("rdflib", lambda t, run, p: t.export_prov(run, p / "x.ttl", format="ttl")),
        ("rocrate.rocrate", lambda t, run, p: t.export_rocrate(run, p / "c")),
        ("openlineage.client.event_v2", lambda t, run, p: t.export_openlineage(run, p / "e")),
    ],
)
def test_missing_extra_names_it_and_writes_nothing(
    recorded, tmp_path, monkeypatch, module, call
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if the package were not installed
    with pytest.raises(ImportError, match=r"needs the 'exports' extra: pip install 'consist\[exp"):
        call(recorded.tracker, recorded.runs["clean"], tmp_path)
    assert listing(tmp_path) == []
