"""The package's import graph: no circle, and no arrow from a lower layer up to a higher one (docs/architecture.md).

Imports are read with `ast` from every module (module-level and function-level imports alike), nothing is
imported. A new module must be given a layer in LAYERS, by its name or its package's.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "infscale"

# bottom to top; a module may import its own layer and those below it, never one above
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("io", "codehash", "fingerprint", "progress", "pipeline", "lock", "compute", "prompts",
                    "grading", "steps", "stats", "estimators", "figures", "schema")),
    ("data", ("data",)),
    ("models", ("models",)),
    ("scoring", ("scoring",)),
    ("methods", ("methods",)),
    ("stages", ("generate", "merge_shards", "grade", "aggregate", "train_quietstar", "provenance")),
    ("reports", ("reports",)),
    ("entry points", ("config", "cli")),
]


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        parts = path.relative_to(PACKAGE_ROOT).with_suffix("").parts
        name = ".".join(("infscale", *parts)).removesuffix(".__init__")
        modules[name] = path
    return modules


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    """The infscale modules `module` names in its import statements (relative ones resolved)."""
    found = set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module or ""
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name in MODULES and name != "infscale"}


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for index, (_, names) in enumerate(LAYERS):
        if top in names:
            return index
    raise KeyError(f"{module} has no layer: add it (or its package) to LAYERS and docs/architecture.md")


def test_every_module_has_a_layer():
    for module in MODULES:
        if module != "infscale":
            layer_of(module)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "infscale"))
def test_no_upward_import(module):
    upward = sorted(m for m in GRAPH[module] if layer_of(m) > layer_of(module))
    assert not upward, (f"{module} ({LAYERS[layer_of(module)][0]}) imports "
                        + ", ".join(f"{m} ({LAYERS[layer_of(m)][0]})" for m in upward))


def test_import_graph_has_no_cycle():
    state: dict[str, int] = {}   # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(GRAPH[module]):
            if state.get(imported) == 1:
                cycle = path[path.index(imported):] + [imported]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if imported not in state:
                visit(imported, path + [imported])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_the_walker_sees_function_level_and_relative_imports(tmp_path):
    (tmp_path / "infscale" / "sub").mkdir(parents=True)
    source = tmp_path / "infscale" / "sub" / "a.py"
    source.write_text("def f():\n    from infscale.io import read_json\n    from . import b\n    from ..steps import x\n")
    assert _imports("infscale.sub.a", source) >= {"infscale.io", "infscale.steps"}


def test_a_cycle_or_an_upward_arrow_would_be_caught():
    """The layer order itself: the tree search reads PRMs (scoring below methods), never the other way."""
    assert "infscale.scoring.scorers" in GRAPH["infscale.methods.tree"]
    assert not any(m.startswith("infscale.methods") for s in GRAPH if s.startswith("infscale.scoring")
                   for m in GRAPH[s])
    assert layer_of("infscale.scoring.scorers") < layer_of("infscale.methods.tree") < layer_of("infscale.generate")
