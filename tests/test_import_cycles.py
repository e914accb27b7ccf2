"""The packages of `shared/` import one another without cycles, and so do its modules: any package can be read,
tested and changed with what it depends on and nothing that depends on it. Every import counts, at module
level or inside a function alike: a lazy import is still a dependency, and a function body is where a cycle
usually hides. The graph is read from the source with `ast`, so importing nothing can mask an edge."""

from __future__ import annotations

import ast
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "shared"
EXEMPT = (SHARED / "migrations",)  # Alembic loads these by path; they are not imported by anything

# Imports known to close a cycle, as (importer, imported) modules; each must still exist and still close its
# cycle, so an entry is deleted once its cycle is gone. There are none: the job-kind table that imports every
# domain's handlers is `shared/registry.py`, above the domains, and the runner is handed it.
KNOWN_CYCLE_EDGES: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    site: str  # path:line, for the failure message


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, *, is_package: bool) -> list[tuple[str, int]]:
    """Every name an import statement anywhere in `source` may load as a module, with its line: `import a.b`
    gives a.b; `from a import b` gives a and a.b (b may be a module); relative imports are resolved."""
    package = module if is_package else module.rpartition(".")[0]
    names: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names.append((base, node.lineno))
            names += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return names


@cache
def shared_imports() -> tuple[Import, ...]:
    paths = [p for p in sorted(SHARED.rglob("*.py")) if not any(p.is_relative_to(e) for e in EXEMPT)]
    modules = {module_name(p): p for p in paths}
    found = []
    for module, path in modules.items():
        source = path.read_text(encoding="utf-8")
        for name, line in imported_names(source, module, is_package=path.name == "__init__.py"):
            if name in modules and name != module:
                found.append(Import(module, name, f"{path.relative_to(ROOT).as_posix()}:{line}"))
    return tuple(found)


def package_of(module: str) -> str | None:
    """`shared.<package>` for a module inside a package, `shared.<module>` for a top-level one."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else None


Graph = dict[str, dict[str, list[str]]]  # node -> neighbour -> import sites


def graph(imports: Iterable[Import], *, packages: bool = False) -> Graph:
    edges: Graph = defaultdict(lambda: defaultdict(list))
    for imp in imports:
        a, b = (package_of(imp.importer), package_of(imp.imported)) if packages else (imp.importer, imp.imported)
        if a is not None and b is not None and a != b and imp.site not in edges[a][b]:
            edges[a][b].append(imp.site)
    return edges


def cycles(edges: Graph) -> list[list[str]]:
    """One shortest cycle per strongly connected component of more than one node (Tarjan, then a BFS)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_shortest_cycle(edges, component) for component in components]


def _shortest_cycle(edges: Graph, component: set[str]) -> list[str]:
    start = min(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(edges.get(node, {})):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if nxt in component and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start}")  # unreachable for a strongly connected component


def describe(edges: Graph, cycle: list[str]) -> str:
    steps = [cycle[0]]
    for a, b in pairwise(cycle):
        steps.append(f"-> {b} ({', '.join(edges[a][b][:3])})")
    return " ".join(steps)


def _without_known(imports: Iterable[Import]) -> list[Import]:
    return [imp for imp in imports if (imp.importer, imp.imported) not in KNOWN_CYCLE_EDGES]


def test_the_reader_sees_every_kind_of_import() -> None:
    source = """
import shared.db
from shared.jobs import service as jobs, kinds
from . import sibling
from ..ledger.lots import insert_lots

def lazy():
    from shared.runs import handlers
"""
    names = {name for name, _ in imported_names(source, "shared.inventory.receipts", is_package=False)}
    assert {
        "shared.db",
        "shared.jobs",
        "shared.jobs.service",
        "shared.jobs.kinds",
        "shared.inventory.sibling",
        "shared.ledger.lots",
        "shared.runs.handlers",
    } <= names
    assert ("shared.inventory.checks", 4) in imported_names(
        "\n\n\nfrom .checks import refusal", "shared.inventory", is_package=True
    )
    assert cycles(graph([Import("a.x", "a.y", "1"), Import("a.y", "a.x", "2"), Import("a.y", "a.z", "3")])) == [
        ["a.x", "a.y", "a.x"]
    ]


def test_the_graph_covers_shared() -> None:
    importers = {imp.importer for imp in shared_imports()}
    assert {"shared.db", "shared.inventory.master", "shared.jobs.service", "shared.cli.main"} <= importers
    assert not any(name.startswith("shared.migrations") for name in importers)


def test_no_cycles_between_the_packages_of_shared() -> None:
    edges = graph(_without_known(shared_imports()), packages=True)
    found = [describe(edges, cycle) for cycle in cycles(edges)]
    assert not found, "import cycles between packages of shared/:\n" + "\n".join(found)


def test_no_cycles_between_the_modules_of_shared() -> None:
    edges = graph(_without_known(shared_imports()))
    found = [describe(edges, cycle) for cycle in cycles(edges)]
    assert not found, "import cycles between modules of shared/:\n" + "\n".join(found)


def test_every_known_cycle_is_still_there() -> None:
    edges = graph(shared_imports())
    stale = []
    for importer, imported in sorted(KNOWN_CYCLE_EDGES):
        if imported not in edges.get(importer, {}):
            stale.append(f"{importer} no longer imports {imported}")
        elif not _reaches(edges, imported, importer):
            stale.append(f"{importer} -> {imported} no longer closes a cycle")
    assert not stale, "remove from KNOWN_CYCLE_EDGES: " + "; ".join(stale)


def _reaches(edges: Graph, start: str, goal: str) -> bool:
    seen, queue = {start}, deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            return True
        for nxt in edges.get(node, {}):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return False
