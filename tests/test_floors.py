"""The house's floors, checked over every first-party import (module level and inside functions).

    floor 0  core/                         ground: storage, artifacts, errors, configs, Ray, loopback,
                                           the stage lifecycle, input checks — imports nothing of ours
    floor 1  queries/ pipeline/ trainer/   the stages — import the ground and earlier stages
    floor 2  wit/                          the `wit` command, the demo, the planner — import anything

An import may point down or sideways along the data flow (queries -> pipeline -> trainer), never up
and never in a circle. ARCHITECTURE.md draws the same picture. A handler named by
`core.commands.command("module", "handler")` counts as an import of that module for the floors: it
is imported when the command runs. It is left out of the cycle check: a cli.py names its commands
module, which imports the cli's option -> config builders, and the name is resolved only after both
are loaded.
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


def _command_modules(tree: ast.AST) -> set[str]:
    """The modules of `command("module", "handler")` calls (core.commands), imported when one runs."""
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "command" and node.args
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)}


def _imports(path: Path, module: str, modules: dict[str, Path], lazy: bool = True) -> set[str]:
    """What `module` imports, as module names; `from pkg import mod` names pkg.mod, not pkg. With `lazy`,
    also the modules its commands name."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    found = _command_modules(tree) if lazy else set()
    for node in ast.walk(tree):
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


def import_graph(lazy: bool = True) -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        targets = {_resolve(name, modules) for name in _imports(path, module, modules, lazy)}
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
    assert _cycles(import_graph(lazy=False)) == []


def test_the_floors_see_the_commands_a_cli_names():
    """A handler's module, named as a string for core.commands, is still an edge the floors check."""
    graph = import_graph()
    assert "pipeline.commands" in graph["pipeline.cli"] and "wit.plan.commands" in graph["wit.plan.cli"]
    assert "pipeline.commands" not in import_graph(lazy=False)["pipeline.cli"]


def test_the_checks_see_a_wrong_import():
    """The graph reader itself: an upward and a circular edge in a made-up graph are caught."""
    assert _wrong_way("core.storage", "pipeline.match")
    assert _wrong_way("trainer.fit", "wit.demo.run")
    assert _wrong_way("queries.build", "pipeline.match")
    assert not _wrong_way("pipeline.match", "queries.normalize")
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
