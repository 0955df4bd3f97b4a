"""The package's shape: dependencies run one way, no import cycles, private modules stay
private, and every module imports on its own.

The import graph is read from the source (function-level and ``TYPE_CHECKING`` imports
included), so a cycle hidden behind a late import fails here too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import batchtag

ROOT = Path(batchtag.__file__).parent
TESTS = Path(__file__).parent

# Each unit (a top-level module or a subpackage of batchtag) and its layer: a unit imports
# only units of a lower layer. CLI and Python API -> commands -> stages -> gcore/model/
# tabular -> base. The sandbox stands apart: the tests' oracle shares no code with the client.
LAYERS = {
    "errors": 0,
    "lazy": 0,
    "config": 1,
    "logs": 1,
    "memory": 1,
    "model": 2,
    "tabular": 3,
    "defaults": 4,
    "gcore": 5,
    "record": 6,
    "manifest": 7,
    "diff": 8,
    "read": 9,
    "send": 10,
    "inventory": 11,
    "policy": 12,
    "commands": 13,
    "api": 14,
    "options": 14,
    "cli": 15,
    "__main__": 16,
    "__init__": 16,
    "sandbox": 1,
    "testing": 15,
}
SANDBOX_MAY_IMPORT = {"errors"}
TOP_LEVEL_MODULES_AT_MOST = 10


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def unit_of(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def imports_of(path: Path) -> set[str]:
    """Every batchtag module `path` imports, wherever the import statement stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("batchtag"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            if not base.startswith("batchtag"):
                continue
            for alias in node.names:  # `from batchtag.x import _y` imports a module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if module_path(candidate) else base)
    return {m for m in found if module_path(m)}


def module_path(module: str) -> Path | None:
    rel = Path(*module.split("."))
    for path in (ROOT.parent / rel.with_suffix(".py"), ROOT.parent / rel / "__init__.py"):
        if path.exists():
            return path
    return None


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}


def test_every_unit_has_a_layer():
    assert {unit_of(m) for m in MODULES} <= set(LAYERS)


def test_dependencies_run_one_way():
    upward = []
    for module, targets in GRAPH.items():
        source = unit_of(module)
        for target in targets:
            dest = unit_of(target)
            if dest == source or target == "batchtag":
                continue  # `__version__` from the package root, which imports only errors
            if source == "sandbox":
                if dest not in SANDBOX_MAY_IMPORT:
                    upward.append(f"{module} -> {target} (the sandbox stands apart)")
            elif LAYERS[dest] >= LAYERS[source]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycles_between_modules():
    # Tarjan's strongly connected components over the module graph
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH.get(node, ()):
            if nxt == "batchtag" or nxt.endswith("__init__"):
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for module in GRAPH:
        if module not in index and module != "batchtag":
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def private_module(module: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in module.split("."))


def test_private_modules_are_imported_only_inside_their_package():
    leaks = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if private_module(target) and unit_of(target) != unit_of(module)
    ]
    assert not leaks, "\n".join(sorted(leaks))


# Tests that reach a private module on purpose: to shrink a fast path's chunk sizes (or
# the small-manifest reader's cut-over) or to replace a function the run calls
# (monkeypatch needs the module that looks it up).
TESTS_REACHING_INSIDE = {
    "test_progress.py",
    "test_plan_columns.py",
    "test_layout.py",
    "manifest_helpers.py",
}


def test_tests_import_the_public_surface():
    inside = []
    for path in sorted(TESTS.glob("*.py")):
        if path.name in TESTS_REACHING_INSIDE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            inside += [
                f"{path.name}: {n}"
                for n in names
                if n.startswith("batchtag.") and private_module(n)
            ]
    assert not inside, "\n".join(inside)


def test_the_top_level_holds_only_the_front_doors():
    top = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(top) <= TOP_LEVEL_MODULES_AT_MOST, top


FRESH_IMPORTS = """
import os, sys
import aiohttp, click, numpy, pandas, pyarrow, pyarrow.parquet  # third party: loaded once
failed = []
for module in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:  # a child with no batchtag module loaded yet
        try:
            __import__(module)
        except BaseException as error:
            print(f"{module}: {type(error).__name__}: {error}", flush=True)
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1]:
        failed.append(module)
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_first_in_a_fresh_interpreter():
    # (pip-tools' check) a cycle between modules fails whichever of them is imported first
    modules = sorted(m for m in MODULES if not m.endswith("__main__"))
    done = subprocess.run(
        [sys.executable, "-c", FRESH_IMPORTS, *modules], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_the_public_names_are_pinned():
    assert sorted(batchtag.__all__) == sorted(
        [
            "AbortRun",
            "ApiError",
            "ApplyOptions",
            "BatchtagError",
            "Client",
            "Interrupted",
            "ManifestError",
            "PolicyError",
            "Problem",
            "UsageError",
            "Validation",
            "__version__",
            "apply",
            "apply_async",
            "enforce",
            "enforce_async",
            "export",
            "export_async",
            "keys",
            "keys_async",
            "plan",
            "plan_async",
            "read_changes",
            "read_inventory",
            "read_report",
            "sandbox",
            "undo",
            "undo_async",
            "validate",
            "write_changes",
            "write_report",
        ]
    )
    for name in batchtag.__all__:
        assert getattr(batchtag, name) is not None


def test_every_stage_lists_its_public_names():
    for init in sorted(ROOT.glob("*/__init__.py")):
        package = module_name(init)
        module = __import__(package, fromlist=["__all__"])
        assert module.__all__, package
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{package}.{name}"
