"""The package's shape: the import-linter layers contract in pyproject.toml holds, and no import
cycle exists inside src/llmcells, counting imports made inside functions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, [])
            if i < len(targets):
                work.append((node, i + 1))
                target = targets[i]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def _edge_lines(graph: grimp.ImportGraph, component: list[str]) -> list[str]:
    members = set(component)
    lines = []
    for a in component:
        for b in sorted(graph.find_modules_directly_imported_by(a) & members):
            detail = graph.get_import_details(importer=a, imported=b)
            where = f" (line {detail[0]['line_number']})" if detail else ""
            lines.append(f"  {a} -> {b}{where}")
    return lines


def test_the_layers_contract_holds():
    """lint-imports reads [tool.importlinter] from pyproject.toml: each layer imports only the
    layers below it, imports inside functions included."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    run = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import "
                          "lint_imports; sys.exit(lint_imports(no_cache=True))"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "1 kept, 0 broken" in run.stdout, run.stdout[-2000:]


def test_no_import_cycle_inside_the_package():
    graph = grimp.build_graph("llmcells", cache_dir=None)
    assert "llmcells.engine" in graph.modules  # the graph is the package's own
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(
        line for component in cycles for line in _edge_lines(graph, component))


def test_the_cycle_finder_finds_a_cycle():
    """The finder itself: a two-module cycle and a three-module one, beside an acyclic module."""
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c", "p.d", "p.e", "p.f"):
        graph.add_module(module)
    for importer, imported in (("p.a", "p.b"), ("p.b", "p.a"), ("p.c", "p.d"), ("p.d", "p.e"),
                               ("p.e", "p.c"), ("p.f", "p.a")):
        graph.add_import(importer=importer, imported=imported)
    assert sorted(_cycles(graph)) == [["p.a", "p.b"], ["p.c", "p.d", "p.e"]]
