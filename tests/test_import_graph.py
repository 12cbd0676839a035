"""No import circles among the modules of perception_ws, nor among the sub-packages of perception_ws.sim.

The graph is read from the source (no imports run): every ``import`` and ``from … import`` anywhere in a
module counts, also those inside functions or under ``TYPE_CHECKING``, since a circle hidden that way
still ties two modules into one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import perception_ws

ROOT = Path(perception_ws.__file__).parent
PACKAGE = "perception_ws"
#: circles known today (none); an entry here must name a circle that still exists.
KNOWN_CIRCLES: list[set[str]] = []


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package by its ``__init__.py``)."""
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _known(name: str, modules: Mapping[str, Path]) -> str | None:
    """``name`` or the nearest package above it that is one of ``modules`` (``a.b.func`` -> ``a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The package's modules that module ``name`` imports, wherever in the file the import stands."""
    found: set[str] = set()
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package ``level - 1`` steps above this module's
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import func`` the module mod
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(t for t in (_known(t, modules) for t in targets) if t and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def circles(graph: Mapping[str, Iterable[str]]) -> list[set[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph.get(start, ())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(graph.get(step, ()))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_circle_finder_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e", "d"}}
    assert circles(graph) == [{"a", "b", "c"}]


def test_function_local_and_relative_imports_count(tmp_path: Path) -> None:
    modules = {"p": tmp_path / "__init__.py", "p.a": tmp_path / "a.py", "p.b": tmp_path / "b.py"}
    modules["p.a"].write_text("def f():\n    from p.b import g\n")
    modules["p.b"].write_text("from . import a\nfrom .a import f\n")
    assert imports_of("p.a", modules["p.a"], modules) == {"p.b"}
    assert imports_of("p.b", modules["p.b"], modules) == {"p.a"}


def test_no_import_circles_among_modules() -> None:
    found = circles(import_graph())
    assert [c for c in found if c not in KNOWN_CIRCLES] == []
    assert [c for c in KNOWN_CIRCLES if c not in found] == [], "a known circle is gone: remove it from KNOWN_CIRCLES"


def test_no_import_circles_among_the_simulator_sub_packages() -> None:
    """Each module of perception_ws.sim counted as its sub-package (world, sensor, …) or itself at the top."""
    prefix = f"{PACKAGE}.sim."

    def group(name: str) -> str:
        return prefix + name[len(prefix) :].split(".")[0] if name.startswith(prefix) else name

    graph: dict[str, set[str]] = {}
    for name, targets in import_graph().items():
        if name.startswith(prefix):
            graph.setdefault(group(name), set()).update(group(t) for t in targets if group(t) != group(name))
    assert circles(graph) == []
