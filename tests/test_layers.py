"""The layers import only downward: no import circle anywhere in the project, lazy imports included.

The graph is read from the source (every ``import`` outside ``if TYPE_CHECKING:``, at module
level or inside a function), so a circle fails here before it bites at run time. The engine
never imports Jupyter, and the notebook layer and the server use only the engine's public API.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"kokoro_engine": ROOT / "engine" / "kokoro_engine", "kokoro_nb": ROOT / "kokoro_nb"}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {t for t in targets if t in known and t != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle, or [] (a package's __init__ importing its own modules is fine)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def edges(name: str) -> set[str]:
        return {t for t in graph[name] if not name.startswith(t + ".")}

    def visit(name: str) -> list[str]:
        state[name] = 1
        stack.append(name)
        for target in sorted(edges(name)):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[name] = 2
        return []

    for name in sorted(graph):
        if name not in state and (found := visit(name)):
            return found
    return []


def test_no_import_circle() -> None:
    graph = _graph()
    assert len(graph) > 40
    assert _cycle(graph) == []


def test_the_circle_finder_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycle(graph) == ["a", "b", "c", "a"]


def test_the_engine_knows_nothing_of_jupyter() -> None:
    for name, path in _modules().items():
        if not name.startswith("kokoro_engine"):
            continue
        source = path.read_text(encoding="utf-8")
        for word in ("IPython", "ipywidgets", "anywidget", "kokoro_nb", "jupyter"):
            assert f"import {word}" not in source and f"from {word}" not in source, name


def test_the_notebook_layer_uses_only_the_public_engine() -> None:
    engine = {n for n in _modules() if n.startswith("kokoro_engine")}
    for name, targets in _graph().items():
        if name.startswith("kokoro_nb"):
            private = {t for t in targets & engine if t != "kokoro_engine"}
            assert not private, f"{name} imports {private}"


def test_every_module_imports() -> None:
    names = [n for n in sorted(_modules()) if not n.endswith("__main__")]
    script = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    done = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
