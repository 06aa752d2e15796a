"""Notebook HTML of runs, run results, lineage trees and run diffs: complete, and escaped."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from consist import Tracker
from consist.models.html import MAX_TREE_NODES, LineageTree, RunDiff, lineage_html
from consist.models.run import Run

SCRIPT = "<script>alert('x')</script>"


class _Tags(HTMLParser):
    """Collects start tags and text of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(fragment: str) -> _Tags:
    parser = _Tags()
    parser.feed(fragment)
    parser.close()
    return parser


def step_one(raw: pd.DataFrame, note: str) -> pd.DataFrame:
    return raw.assign(b=raw["a"] * 2)


def step_two(one: pd.DataFrame) -> pd.DataFrame:
    return one.assign(c=one["b"] + 1)


def step_three(two: pd.DataFrame) -> pd.DataFrame:
    return two.assign(d=two["c"] * 3)


@pytest.fixture
def chain(tmp_path: Path):
    raw = tmp_path / "raw.csv"
    pd.DataFrame({"a": [1, 2]}).to_csv(raw, index=False)
    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "p.duckdb", project_root=tmp_path)
    r1 = tracker.run(
        fn=step_one,
        name="one",
        config={"note": SCRIPT},
        inputs={"raw": raw},
        outputs=["one"],
        description=f"first {SCRIPT}",
    )
    r1b = tracker.run(
        fn=step_one,
        name="one",
        config={"note": "plain"},
        inputs={"raw": raw},
        outputs=["one"],
    )
    r2 = tracker.run(fn=step_two, name="two", inputs={"one": r1.outputs["one"]}, outputs=["two"])
    r3 = tracker.run(
        fn=step_three, name="three", inputs={"two": r2.outputs["two"]}, outputs=["three"]
    )
    yield tracker, (r1, r1b, r2, r3)
    tracker.close()


def test_run_html_shows_fields_and_escapes(chain) -> None:
    tracker, (r1, *_rest) = chain
    run = tracker.get_run(r1.run.id)
    fragment = run._repr_html_()
    assert SCRIPT not in fragment and "<script" not in fragment
    assert "first &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in fragment
    text = "".join(parsed(fragment).text)
    assert f"first {SCRIPT}" in text  # the browser shows the text as written
    for value in (run.id, run.model_name, run.status, run.config_hash, run.signature):
        assert value in text
    assert "script" not in parsed(fragment).tags


def test_failed_run_html_shows_the_error_escaped() -> None:
    run = Run(id="r<1>", model_name="m&m", status="failed", meta={"error": f"boom {SCRIPT}"})
    fragment = run._repr_html_()
    assert "<script" not in fragment and "r&lt;1&gt;" in fragment and "m&amp;m" in fragment
    assert f"boom {SCRIPT}" in "".join(parsed(fragment).text)
    assert 'class="failed"' in fragment


def test_run_result_html_lists_outputs(chain) -> None:
    _, (r1, _r1b, r2, _r3) = chain
    fragment = r2._repr_html_()
    text = "".join(parsed(fragment).text)
    out = r2.outputs["two"]
    assert "executed" in text and out.uri in text and out.hash in text and r2.run.id in text
    assert "<script" not in r1._repr_html_()


def test_lineage_tree_is_a_dict_and_renders_every_node(chain) -> None:
    tracker, (_r1, _r1b, r2, r3) = chain
    tree = tracker.get_artifact_lineage(r3.outputs["three"].id)
    assert isinstance(tree, LineageTree) and isinstance(tree, dict)
    assert json.loads(json.dumps(tree)) == tree  # still plain JSON
    fragment = tree._repr_html_()
    text = "".join(parsed(fragment).text)
    for key in ("three", "two", "one", "raw"):
        assert key in text
    for run_id in (r3.run.id, r2.run.id):
        assert run_id in text
    assert "(raw input)" in text
    assert parsed(fragment).tags.count("li") == 7  # 4 artifacts + 3 producing runs


def test_run_lineage_tree_renders(chain) -> None:
    tracker, (_r1, _r1b, _r2, r3) = chain
    tree = tracker.get_run_lineage(r3.run.id)
    assert isinstance(tree, LineageTree)
    text = "".join(parsed(tree._repr_html_()).text)
    assert r3.run.id in text and "two" in text and "raw" in text


def test_large_lineage_tree_says_what_it_left_out() -> None:
    node = {"key": "leaf", "uri": "./leaf", "producing_run": None}
    root = {
        "key": "root",
        "uri": "./root",
        "producing_run": {
            "id": "r",
            "model_name": "m",
            "status": "completed",
            "inputs": [dict(node, key=f"in{i}") for i in range(MAX_TREE_NODES + 5)],
        },
    }
    fragment = lineage_html(root)
    assert "6 more node(s) not shown" in fragment


def test_diff_html_escapes_config_values(chain) -> None:
    tracker, (r1, r1b, _r2, _r3) = chain
    diff = tracker.diff_runs(r1.run.id, r1b.run.id, config_source="snapshot", include_inputs=True)
    assert isinstance(diff, RunDiff) and isinstance(diff, dict)
    assert diff["changes"]["note"] == {"a": SCRIPT, "b": "plain", "status": "changed"}
    fragment = diff._repr_html_()
    assert "<script" not in fragment
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in fragment
    cells = parsed(fragment).text
    assert SCRIPT in cells and "plain" in cells and "changed" in cells
    assert "no input differ" in "".join(cells)


def test_runset_config_diffs_still_accept_the_on_key(chain) -> None:
    tracker, _ = chain
    diff = tracker.diff_runs(*[r.id for r in tracker.find_runs(model="one")][:2])
    diff["on"] = {"year": None}
    assert "aligned on" in diff._repr_html_()
