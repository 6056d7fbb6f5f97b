"""The package tree tells the flow of a message: imports point down it, never back.

A newcomer reads `ls maildesk/` and follows a message through the packages in FLOW
order; these tests keep it that way (no import back up the flow, no cycle, no file
too long to hold in one's head, no module shadowing the standard library).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "maildesk"

# Each package may import only the packages before it.
FLOW = (
    "common",
    "intake",
    "triage",
    "rules",
    "decide",
    "store",
    "outgoing",
    "service",
    "report",
    "cli",
)
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every maildesk module `name` imports, anywhere in the file (lazy imports too)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FLOW else None


def test_every_module_lives_in_a_stage_package():
    loose = [
        m for m in _modules() if _stage(m) is None and m not in ("maildesk", "maildesk.__main__")
    ]
    assert loose == [], f"modules outside the stage packages {FLOW}: {loose}"


def test_imports_point_down_the_flow():
    backwards = []
    for module, imported in _graph().items():
        stage = _stage(module)
        if stage is None:
            continue
        allowed = set(FLOW[: FLOW.index(stage) + 1])
        for target in imported:
            target_stage = _stage(target)
            if target_stage is not None and target_stage not in allowed:
                backwards.append(f"{module} -> {target}")
    assert backwards == [], "imports against the flow:\n" + "\n".join(sorted(backwards))


def test_no_import_cycles():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for module in graph:
        if module not in index:
            visit(module)
    # A package's __init__ re-exporting its own modules is not a cycle of concerns.
    cycles = [c for c in cycles if len({m.rsplit(".", 1)[0] for m in c} - set(c)) > 1]
    assert cycles == [], f"import cycles: {cycles}"


def test_files_fit_in_a_head():
    long = {
        str(path.relative_to(PACKAGE.parent)): n
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts and (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"files over {MAX_LINES} lines: {long}"


def test_no_module_shadows_the_standard_library():
    shadowing = sorted(
        name for name in _modules() if name.rsplit(".", 1)[-1] in sys.stdlib_module_names
    )
    assert shadowing == []


def test_each_package_says_what_it_is_for():
    for stage in FLOW:
        init = PACKAGE / stage / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc) > 60 and "import" in doc.lower(), (
            f"{init}: say what it is for and what it imports"
        )


def test_flow_order_matches_the_readme():
    readme = (PACKAGE.parent / "README.md").read_text()
    positions = [readme.find(f"`maildesk/{stage}/`") for stage in FLOW]
    assert all(p >= 0 for p in positions), "README's architecture table names every package"
    assert positions == sorted(positions), "README lists the packages in flow order"


def test_no_duplicate_module_names_hide_their_difference():
    # Pairs that differ by a suffix (render/rendering, decide/decision) read as one thing.
    names = defaultdict(list)
    for module in _modules():
        names[module.rsplit(".", 1)[-1]].append(module)
    base = {n for n in names}
    clashes = sorted(
        (a, b)
        for a in base
        for b in base
        if a < b and (b.startswith(a) and b[len(a) :] in ("ing", "ion", "s", "er"))
    )
    assert clashes == [], f"module names that differ by a suffix: {clashes}"
