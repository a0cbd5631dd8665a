"""The import graph of the library (DESIGN.md): no circles, between modules or between packages, the
library never imports the CLI, and scarce's own imports sit at the top of their modules."""

from __future__ import annotations

import ast
from pathlib import Path

import scarce

ROOT = Path(scarce.__file__).parent


def _modules() -> dict[str, Path]:
    return {".".join(("scarce", *p.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__"): p
            for p in ROOT.rglob("*.py")}


def _imports(name: str, path: Path) -> list[tuple[str, bool]]:
    """(imported scarce module or package, whether the import sits inside a function or class)."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        out += [(t, id(node) not in top) for t in targets if t == "scarce" or t.startswith("scarce.")]
    return out


def _graph(level) -> dict[str, set[str]]:
    mods = _modules()
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        for target, _ in _imports(name, path):
            if target in mods:
                a, b = level(name), level(target)
                if a != b:
                    edges.setdefault(a, set()).add(b)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def _package(name: str) -> str:
    return ".".join(name.split(".")[:2])  # scarce.train.trainer -> scarce.train; scarce.rundir stays


def test_no_import_circle_between_modules():
    assert _cycle(_graph(lambda m: m)) is None


def test_no_import_circle_between_packages():
    assert _cycle(_graph(_package)) is None


def test_the_library_never_imports_the_cli():
    offenders = [(name, target) for name, path in _modules().items() if not name.startswith("scarce.cli")
                 for target, _ in _imports(name, path) if target.startswith("scarce.cli")]
    assert offenders == []


def test_scarce_imports_sit_at_the_top():
    inside = [(name, target) for name, path in _modules().items() for target, nested in _imports(name, path) if nested]
    assert inside == []


def test_the_checks_find_what_they_look_for():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None
    assert _package("scarce.train.trainer") == "scarce.train" and _package("scarce.rundir") == "scarce.rundir"
