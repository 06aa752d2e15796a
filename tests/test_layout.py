"""The package's shape: imports point down the layers, no module imports in a circle.

Reads the source with ``ast`` (imports needed only by the type checker, under
``if TYPE_CHECKING:``, are not coupling at run time and are skipped).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import consist

SRC = Path(consist.__file__).parent

# Lowest first; a package may import packages of a lower or equal rank only.
RANKS = {
    "consist.models": 0,
    "consist.core.identity": 1,
    "consist.options": 2,
    "consist.core.validation": 3,
    "consist.core.paths": 3,
    "consist.core.drivers": 5,  # format modules may use the store's record vocabulary
    "consist.core.store": 4,
    "consist.core.containers": 5,  # container engines and mount plans (below run)
    "consist.core.run": 5,
    "consist.core.query": 5,
    "consist.core.exports": 5,  # PROV, RO-Crate, OpenLineage documents from the store
    "consist.core.hot": 5,
    "consist.core.workflow": 6,
    "consist.core.facade": 7,
    "consist.core.tracker_config": 1,
    "consist.core.tracker": 8,
    "consist.api": 9,
    "consist.integrations": 9,
    "consist.ui": 9,  # the local web page (reads through the Tracker)
    "consist.cli": 10,
    "consist": 10,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "consist" or name.startswith("consist.")}


def _layer(module: str) -> str:
    best = ""
    for layer in RANKS:
        if (module == layer or module.startswith(layer + ".")) and len(layer) > len(best):
            best = layer
    return best


MODULES = {_module_name(p): p for p in SRC.rglob("*.py")}


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = set()
        for imported in _runtime_imports(path):
            while imported and imported not in MODULES:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def test_every_module_belongs_to_a_ranked_layer() -> None:
    unranked = sorted(name for name in MODULES if not _layer(name))
    assert unranked == []


def test_imports_point_down_the_layers() -> None:
    upward = []
    for name, targets in _graph().items():
        if name == "consist":  # the lazy public surface may name anything
            continue
        for target in targets:
            if target == "consist" or _layer(target) == _layer(name):
                continue
            if RANKS[_layer(target)] > RANKS[_layer(name)]:
                upward.append(f"{name} -> {target}")
    assert sorted(upward) == []


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert cycles == []


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("consist.core.tracker", "Tracker"),
        ("consist.core.tracker_config", "TrackerConfig"),
    ],
)
def test_import_paths_the_spec_names(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is getattr(consist, name)


def test_the_ranks_catch_an_upward_import() -> None:
    """The check itself: a store module importing the facade would be reported."""
    assert RANKS[_layer("consist.core.facade.steps")] > RANKS[_layer("consist.core.store.journal")]
    assert _layer("consist.core.tracker_config") == "consist.core.tracker_config"
    assert _layer("consist.core.tracker") == "consist.core.tracker"
