"""The house's floors, checked over every first-party import (module level and inside functions).

    floor 0  core/                         ground: storage, artifacts, errors, configs, Ray, loopback,
                                           the stage lifecycle, input checks — imports nothing of ours
    floor 1  queries/ pipeline/ trainer/   the stages — import the ground and earlier stages
    floor 2  wit/                          the `wit` command, the demo, the planner — import anything

An import may point down or sideways along the data flow (queries -> pipeline -> trainer), never up
and never in a circle. ARCHITECTURE.md draws the same picture.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOOR = {"core": 0, "queries": 1, "pipeline": 1, "trainer": 1, "wit": 2}
FLOW = {"queries": 0, "pipeline": 1, "trainer": 2}  # within the stage floor: only along the data flow


def _modules() -> dict[str, Path]:
    return {
        ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f
        for top in FLOOR
        for f in (ROOT / top).rglob("*.py")
    }


def _imports(path: Path, module: str, modules: dict[str, Path]) -> set[str]:
    """What `module` imports, as module names; `from pkg import mod` names pkg.mod, not pkg."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {name for name in found if name.split(".")[0] in FLOOR}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        targets = {_resolve(name, modules) for name in _imports(path, module, modules)}
        graph[module] = {t for t in targets if t and t != module}
    return graph


def _wrong_way(src: str, dst: str) -> bool:
    a, b = src.split(".")[0], dst.split(".")[0]
    if FLOOR[dst.split(".")[0]] > FLOOR[a]:
        return True
    return a in FLOW and b in FLOW and FLOW[b] > FLOW[a]


def test_no_import_runs_up_a_floor():
    graph = import_graph()
    upward = sorted(f"{src} -> {dst}" for src, dsts in graph.items() for dst in dsts if _wrong_way(src, dst))
    assert not upward, "imports that run up a floor or against the data flow:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    assert _cycles(import_graph()) == []


def test_the_checks_see_a_wrong_import():
    """The graph reader itself: an upward and a circular edge in a made-up graph are caught."""
    assert _wrong_way("core.storage", "pipeline.match")
    assert _wrong_way("trainer.fit", "wit.demo.run")
    assert _wrong_way("queries.build", "pipeline.match")
    assert not _wrong_way("pipeline.match", "queries.normalize")
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
