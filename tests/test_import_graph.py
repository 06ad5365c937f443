"""Dependencies point one way: no import cycle among the project's modules, and the simulator
never imports the contract suite (contract_tests -> simulator only). Read from the source with
``ast``, so a function-local import counts as much as a top-level one; imports under
``if TYPE_CHECKING:`` are annotations, not dependencies, and are left out."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("simulator", "contract_tests")


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of import nodes inside ``if TYPE_CHECKING:`` blocks."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    return skip


def _targets(name: str, is_package: bool, node: ast.AST, modules: dict) -> set[str]:
    """The project modules an import statement loads (the nearest enclosing known module)."""
    if isinstance(node, ast.Import):
        wanted = [alias.name for alias in node.names]
    else:
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[:len(base) - node.level + 1] if node.level else []
        module = ".".join(base + ([node.module] if node.module else []))
        wanted = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module
                  for a in node.names]
    found = set()
    for target in wanted:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    """{module: project modules it imports}."""
    modules = _modules()
    graph = {}
    for name, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_only(tree)
        graph[name] = set().union(*(
            _targets(name, is_package, node, modules) for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skip))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_no_module_imports_itself_back_through_others():
    assert cycles(import_graph()) == []


def test_the_simulator_never_imports_the_contract_suite():
    back = sorted(f"{module} -> {target}" for module, targets in import_graph().items()
                  if module.split(".")[0] == "simulator"
                  for target in targets if target.split(".")[0] == "contract_tests")
    assert back == []


def test_schoology_takes_no_rules_from_the_control_api():
    schoology = {m: t for m, t in import_graph().items() if m.startswith("simulator.schoology")}
    assert schoology and not any(t.startswith("simulator.control") for ts in schoology.values()
                                  for t in ts)


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set(), "c": {"b"}}, []),
])
def test_cycle_finder_finds_exactly_the_cycles(graph, expected):
    assert cycles(graph) == expected


def test_the_graph_sees_relative_function_local_and_type_checking_imports(tmp_path, monkeypatch):
    package = tmp_path / "simulator"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from .sub import b\n")
    (package / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import a\n"
        "from contract_tests import x\n")
    (tmp_path / "contract_tests").mkdir()
    (tmp_path / "contract_tests" / "__init__.py").write_text("")
    (tmp_path / "contract_tests" / "x.py").write_text("import simulator.a\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    graph = import_graph()
    assert graph["simulator.a"] == {"simulator.sub.b"}
    assert graph["simulator.sub.b"] == {"contract_tests.x"}
    assert cycles(graph) == [["contract_tests.x", "simulator.a", "simulator.sub.b"]]


def test_tests_import_their_helpers_by_one_name():
    """``tests`` is no package: pytest puts the folder on ``sys.path`` and loads ``conftest``
    under that name, so helpers come ``from conftest import …`` (a ``tests.conftest`` import
    would load a second copy of the module beside it)."""
    other_way = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            if any(name.split(".")[0] == "tests" for name in names):
                other_way.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert other_way == [], "import test helpers as `from conftest import …`: " + ", ".join(other_way)


# --- the store is a repository behind the backends -----------------------------------------

# Who may hold the store: the store itself, the runtime that owns it, the two backends over
# it, and the snapshot module's DatabaseState (a database opened without a simulator).
STORE_HOLDERS = {"simulator.store", "simulator.sim", "simulator.clever.backend",
                 "simulator.schoology.backend", "simulator.snapshot"}


def _simulator_sources() -> dict[str, ast.AST]:
    return {name: ast.parse(path.read_text(encoding="utf-8"))
            for name, (path, _) in _modules().items() if name.split(".")[0] == "simulator"}


def _is_route_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last == "routes" or last.endswith("_routes")


def store_uses(trees: dict[str, ast.AST]) -> list[str]:
    """``module:line`` of every ``x.store`` outside the store's holders."""
    return sorted(f"{name}:{node.lineno}" for name, tree in trees.items()
                  if name not in STORE_HOLDERS for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and node.attr == "store")


def store_importers(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} -> simulator.store" for module, targets in graph.items()
                  if "simulator.store" in targets and module not in STORE_HOLDERS)


def test_route_modules_reach_state_through_the_backends_never_the_store():
    trees = _simulator_sources()
    routes = {name for name in trees if _is_route_module(name)}
    assert {"simulator.control.routes", "simulator.clever.oauth_routes",
            "simulator.gradebook.routes", "simulator.schoology.routes"} <= routes
    assert store_uses({name: trees[name] for name in routes}) == []


def test_only_the_backends_sim_and_snapshots_touch_the_store():
    assert store_uses(_simulator_sources()) == []
    assert store_importers(import_graph()) == []


def test_the_store_checks_find_a_route_that_reaches_into_the_store():
    tree = ast.parse("def view():\n    return sim().store.get_app('x')\n")
    assert store_uses({"simulator.control.routes": tree}) == ["simulator.control.routes:2"]
    assert store_uses({"simulator.clever.backend": tree}) == []
    graph = {"simulator.inspector.routes": {"simulator.store"}, "simulator.sim": {"simulator.store"}}
    assert store_importers(graph) == ["simulator.inspector.routes -> simulator.store"]
