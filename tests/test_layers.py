"""Layers point one way (docs/architecture.md): ``inspector → labeling → ml``, the simulation
harness on top of all three, and no import circle between any two modules.

The graph is read from the source (every ``import``, function-local ones included, since a
local import hides a circle rather than removing it), so this test needs no Django.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("labeling", "inspector", "ml", "simulation")
# What each package may import from the others (third-party imports are free except below).
ALLOWED = {
    "ml": {"ml"},
    "labeling": {"labeling", "ml"},
    "inspector": {"inspector", "labeling", "ml"},
    "simulation": {"simulation", "labeling", "ml"},
}
# ml/ is plain PyTorch + numpy: usable from a notebook, a benchmark or a GPU box without Django.
ML_FORBIDDEN_THIRD_PARTY = ("django", "rest_framework", "celery", "kombu", "drf_spectacular")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def _imported_names(path: Path, module: str) -> list[str]:
    """Every dotted name the module imports, anywhere in its body."""
    names = []
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names.append(source)
            # ``from package import module`` imports the module.
            names.extend(f"{source}.{alias.name}" for alias in node.names)
    return names


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Edges between our modules, and each module's third-party top-level imports."""
    modules = _modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    external: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        own_ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        for imported in _imported_names(path, name):
            top = imported.split(".")[0]
            if top not in PACKAGES:
                external[name].add(top)
                continue
            if imported not in modules:
                continue  # ``from module import function``: the module itself is listed too
            # Python runs each enclosing package's __init__ first (those of the importer's own
            # packages are already running).
            parts = imported.split(".")
            for i in range(1, len(parts) + 1):
                target = ".".join(parts[:i])
                if target in modules and target != name and target not in own_ancestors:
                    edges[name].add(target)
    return edges, external


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_whole_code():
    edges, _ = _graph()
    assert {"labeling.machine.predict", "ml.thresholds", "inspector.views.queue"} <= set(edges)
    # A function-local import counts: item_finalize's module is reached from the router.
    assert "labeling.answers" in edges["labeling.machine.predict"]


def test_no_import_cycles():
    cycles = _cycles(_graph()[0])
    assert cycles == [], "import circles: " + "; ".join(" ↔ ".join(c) for c in cycles)


@pytest.mark.parametrize("package", PACKAGES)
def test_layers_point_one_way(package):
    edges, _ = _graph()
    wrong = sorted(
        f"{module} → {target}"
        for module, targets in edges.items()
        if module.split(".")[0] == package
        for target in targets
        if target.split(".")[0] not in ALLOWED[package]
    )
    assert wrong == []


def test_ml_imports_neither_django_nor_the_apps():
    _, external = _graph()
    wrong = sorted(
        f"{module} → {name}"
        for module, names in external.items()
        if module.split(".")[0] == "ml"
        for name in names
        if name in ML_FORBIDDEN_THIRD_PARTY
    )
    assert wrong == []


def test_the_checker_catches_a_cycle_and_a_hidden_one():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_web_process_does_not_load_torch():
    # Pages and the API never run a model; loading torch would cost every web worker ~0.5 GB
    # and seconds at start. Workers import ml.inference / ml.training where they run a model.
    import subprocess
    import sys

    code = (
        "import os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'labeling.settings');"
        "import django; django.setup(); import labeling.urls, labeling.wsgi;"
        "print(sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
