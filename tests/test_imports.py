"""The package's import graph: no circles, and inference free of training."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vocals2song"
#: what predicting a song must not load
TRAINING = ("vocals2song.train", "vocals2song.data", "vocals2song.callbacks")


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports, at module level or inside functions."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "vocals2song":
                    found |= {a.name for a in node.names if a.name in modules}
                elif node.module.startswith("vocals2song."):
                    found.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("vocals2song.")}
        graph[path.stem] = found - {path.stem, "__init__"}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every chain of imports that leads from a module back to itself (one per strongly connected group)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_no_chain_of_imports_leads_back_to_where_it_started():
    assert cycles(import_graph()) == []


def test_the_circle_finder_finds_a_planted_circle():
    graph = import_graph()
    graph["gate"] = graph["gate"] | {"predict"}  # predict -> gate already: gate -> predict closes a circle
    assert any({"gate", "predict"} <= set(group) for group in cycles(graph))


@pytest.mark.slow
def test_predicting_loads_no_training_module():
    """In a fresh interpreter (starts a process): importing predict, and loading a run, load no training code."""
    fixture = Path(__file__).parent / "fixtures" / "old_runs" / "additive"
    code = ("import sys, vocals2song.predict as p; p.load_predictor(sys.argv[1]); "
            f"print(sorted(m for m in {TRAINING!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(fixture)], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_training_modules_are_what_the_check_looks_for():
    """The names the check above looks for are the package's training modules (a rename would void it)."""
    assert {f"vocals2song.{p.stem}" for p in PACKAGE.glob("*.py")} >= set(TRAINING)
