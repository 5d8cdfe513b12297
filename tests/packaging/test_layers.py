"""The layout is the architecture: every top-level folder is one layer, and imports only go one way.

Parses every module of the extension (imports inside functions included) and fails on an import against the layer
order, on any import cycle, on the engine importing bpy or anything outside engine/, on a Python module left loose
at the root, and on a production function over 80 lines. No Blender needed: it reads the source."""

from __future__ import annotations

import ast
import os

import pytest
from common import ROOT

# Each layer may import itself and the layers before it, never one after it.
LAYERS = ("engine", "settings", "engine_link", "timeline", "bake", "run", "operators", "panels", "")
# Not part of the extension's code (not shipped, or built; presets/ holds preset files that Blender's preset menus
# run as scripts, data rather than a layer).
SKIP = {"tests", "bench", "scripts", "wheels", "build", "docs", "out", "requirements", "presets"}
LONG_FUNCTION = 80


def _modules() -> dict[str, str]:
    """Dotted module name (relative to the extension root; '' is the root __init__) -> file path."""
    found = {}
    for folder, dirs, files in os.walk(ROOT):
        rel = os.path.relpath(folder, ROOT)
        parts = [] if rel == "." else rel.split(os.sep)
        if parts and (parts[0] in SKIP or parts[0].startswith(".")):
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
        for name in files:
            if name.endswith(".py"):
                stem = name[:-3]
                dotted = ".".join(parts if stem == "__init__" else parts + [stem])
                found[dotted] = os.path.join(folder, name)
    return found


MODULES = _modules()


def _package(module: str, path: str) -> list[str]:
    parts = module.split(".") if module else []
    return parts if path.endswith("__init__.py") else parts[:-1]


def _imports(module: str, path: str) -> list[tuple[str, int]]:
    """(target, line) for every import in the file: our own modules as dotted names, others as 'ext:NAME'."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = _package(module, path)
    targets = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                # An absolute import of one of our own top-level names would load a second copy of it.
                targets.append((f"abs:{alias.name}" if top in LAYERS[:-1] else f"ext:{alias.name}", node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                top = node.module.split(".")[0]
                targets.append((f"abs:{node.module}" if top in LAYERS[:-1] else f"ext:{node.module}", node.lineno))
                continue
            if node.level - 1 > len(package):
                targets.append(("outside:" + "." * node.level + (node.module or ""), node.lineno))
                continue
            base = package[:len(package) - (node.level - 1)]
            base = base + (node.module.split(".") if node.module else [])
            for alias in node.names:
                sub = ".".join(base + [alias.name])
                targets.append((sub if sub in MODULES else ".".join(base), node.lineno))
    return targets


def _layer(module: str) -> str:
    return module.split(".")[0] if module.split(".")[0] in LAYERS else ""


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_the_layers_are_the_folders_and_nothing_is_loose_at_the_root():
    loose = [m for m in MODULES if m and "." not in m and not os.path.isdir(os.path.join(ROOT, m))]
    assert loose == [], f"modules loose at the root: {loose}; put each in its layer's folder"
    for layer in LAYERS[:-1]:
        init = os.path.join(ROOT, layer, "__init__.py")
        assert os.path.isfile(init), f"{layer}/ is not a package"
        doc = ast.get_docstring(ast.parse(open(init).read()))
        assert doc, f"{layer}/__init__.py has no docstring saying what the layer is for"
    folders = {m.split(".")[0] for m in MODULES if m}
    assert folders <= set(LAYERS), f"folders that are no layer: {folders - set(LAYERS)}"


def test_imports_go_one_way():
    wrong = []
    for module, targets in GRAPH.items():
        rank = LAYERS.index(_layer(module))
        for target, line in targets:
            if target.startswith(("ext:", "abs:", "outside:")):
                continue
            if target not in MODULES:
                wrong.append(f"{MODULES[module]}:{line}: imports {target}, which does not exist")
            elif LAYERS.index(_layer(target)) > rank:
                wrong.append(f"{MODULES[module]}:{line}: {_layer(module) or 'root'} imports {target} "
                             f"({_layer(target)} comes later)")
    assert wrong == []


def test_no_absolute_import_of_our_own_modules():
    wrong = [f"{MODULES[m]}:{line}: {t}" for m, ts in GRAPH.items() for t, line in ts if t.startswith(("abs:",
                                                                                                        "outside:"))]
    assert wrong == [], "use relative imports inside the extension: " + "; ".join(wrong)


def test_the_engine_imports_neither_bpy_nor_anything_outside_it():
    wrong = []
    for module, targets in GRAPH.items():
        if _layer(module) != "engine":
            continue
        for target, line in targets:
            name = target.removeprefix("ext:")
            if name.split(".")[0] in ("bpy", "bpy_extras", "mathutils", "bmesh", "gpu", "aud") or \
                    (not target.startswith("ext:") and _layer(target) != "engine"):
                wrong.append(f"{MODULES[module]}:{line}: {name}")
    assert wrong == []


def _cycle() -> list[str] | None:
    """One import cycle among our modules (imports inside functions count), or None."""
    edges = {m: sorted({t for t, _ in ts if t in MODULES and t != m}) for m, ts in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in edges[m]:
            # A package's __init__ importing its own submodules is how packages are built, not a cycle.
            if m == "" or (m and t.startswith(m + ".") and MODULES[m].endswith("__init__.py")):
                continue
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycle():
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(c or "__init__" for c in cycle)


def test_the_cycle_check_finds_a_cycle():
    """The check itself can fail: a made-up edge back from the engine to the run layer is a cycle."""
    saved = GRAPH["engine.plan"]
    GRAPH["engine.plan"] = saved + [("run.generate", 1)]
    try:
        assert _cycle() is not None
    finally:
        GRAPH["engine.plan"] = saved


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) in ("engine", "")))
def test_engine_modules_use_relative_imports_only(module):
    # The engine is imported both as `engine` and as the extension's subpackage.
    assert not [t for t, _ in GRAPH[module] if t.startswith("abs:")]


def test_production_functions_are_short():
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > LONG_FUNCTION:
                    long.append(f"{path}:{node.lineno} {node.name} ({length} lines)")
    assert long == [], "split these into named stages: " + "; ".join(long)
