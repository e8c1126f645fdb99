"""The house stays easy to change: no import cycles, and no import hidden in a function to dodge one.

Two graphs are checked, both built by grimp from the source:
- modules: no module reaches itself through the modules it imports (any import counts, those under
  `if TYPE_CHECKING:` and inside functions included);
- packages: the domain code (every module but the HTTP edge: controllers, the auth dependencies, the
  app factory, the command line and the services container) layers strictly, so that a domain never
  depends on one that depends on it (members below orders below payments below the channels).
"""

import ast
from pathlib import Path

import grimp
import pytest

BACKEND = Path(__file__).resolve().parent.parent / "backend"
EDGE_MODULES = {"backend.app", "backend.cli", "backend.services", "backend.__main__"}
EDGE_NAMES = {"controllers", "auth"}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("backend", cache_dir=None)


def cycles(nodes: list[str], edges) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one node: the cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges(node):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in nodes:
        if node not in index:
            visit(node)
    return found


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def is_edge(module: str) -> bool:
    return module in EDGE_MODULES or module.rsplit(".", 1)[-1] in EDGE_NAMES


def test_no_module_imports_itself_through_others(graph):
    found = cycles(sorted(graph.modules), lambda module: sorted(graph.find_modules_directly_imported_by(module)))
    shown = [" -> ".join(graph.find_shortest_chain(cycle[0], cycle[1]) or cycle) for cycle in found]
    assert found == [], "import cycles:\n" + "\n".join(shown)


def test_the_domain_packages_layer_without_a_cycle(graph):
    domain = [module for module in graph.modules if not is_edge(module)]
    depends: dict[str, set[str]] = {}
    for module in domain:
        for imported in graph.find_modules_directly_imported_by(module):
            if package_of(imported) != package_of(module):
                depends.setdefault(package_of(module), set()).add(package_of(imported))
    packages = sorted({package_of(module) for module in domain})
    found = cycles(packages, lambda package: sorted(depends.get(package, ())))
    assert found == [], f"packages that depend on each other: {found}"


def _imports_in_functions(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            lines += [inner.lineno for inner in ast.walk(node) if isinstance(inner, ast.Import | ast.ImportFrom)]
    return lines


def _type_checking_imports(tree: ast.Module) -> list[int]:
    return [node.lineno for node in tree.body if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)]


def test_every_import_is_at_the_top_of_its_module():
    hidden = []
    for path in sorted(BACKEND.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        relative = path.relative_to(BACKEND.parent)
        hidden += [f"{relative}:{line} imports inside a function" for line in _imports_in_functions(tree)]
        hidden += [f"{relative}:{line} imports under TYPE_CHECKING" for line in _type_checking_imports(tree)]
    assert hidden == []


def test_the_checks_see_a_cycle_and_a_hidden_import():
    assert cycles(["a", "b", "c"], {"a": ["b"], "b": ["c"], "c": ["a"]}.get) == [["a", "b", "c"]]
    assert cycles(["a", "b"], {"a": ["b"], "b": []}.get) == []
    tree = ast.parse("import os\n\ndef f():\n    from backend import app\n")
    assert _imports_in_functions(tree) == [4]
    assert _type_checking_imports(ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x\n")) == [
        2
    ]
