"""Which `infscale` code a job runs, and a hash of it, for Snakemake's rerun decisions.

Snakemake's `code` rerun trigger sees a rule's script, not the library code that script imports. A rule puts
`code_hash("infscale.<entry point>")` in its params: the hash covers every `infscale` module the entry point
imports, directly or through other modules (module-level and function-level imports alike), found by reading
the sources with `ast` (nothing is imported). The list of modules is computed, so it cannot drift from the code.

Imports that are not written as import statements (e.g. `importlib.import_module(name)`) are not followed;
`infscale.methods.method_module(kind)` names the module such a lookup loads, so the generate rule adds it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "infscale"
PACKAGE_ROOT = Path(__file__).resolve().parent


class CodeHashError(ValueError):
    """An entry point names a module that is not part of the infscale sources."""


def module_file(module: str, root: Path = PACKAGE_ROOT) -> Path | None:
    """The source file of `module` (`infscale.x.y`) under the package folder `root`, or None."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _parents(module: str) -> list[str]:
    """Packages Python executes before `module` (importing `a.b.c` runs `a` and `a.b` first)."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _imported_modules(module: str, source_file: Path, root: Path) -> set[str]:
    """infscale modules named by the import statements of one source file."""
    tree = ast.parse(source_file.read_text(encoding="utf-8"), filename=str(source_file))
    is_package = source_file.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                package = module.split(".")
                package = package if is_package else package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            # `from pkg import name` loads pkg.name when it is a submodule
            found |= {f"{base}.{alias.name}" for alias in node.names
                      if module_file(f"{base}.{alias.name}", root) is not None}
    return {m for m in found if m.split(".")[0] == PACKAGE and module_file(m, root) is not None}


@functools.lru_cache(maxsize=None)
def module_closure(*entry_points: str, root: Path = PACKAGE_ROOT) -> tuple[str, ...]:
    """Every infscale module the entry points run (themselves included), sorted."""
    todo = []
    for entry in entry_points:
        if module_file(entry, root) is None:
            raise CodeHashError(f"code_hash: {entry!r} is not an {PACKAGE} module under {root}")
        todo += [entry, *_parents(entry)]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for imported in _imported_modules(module, module_file(module, root), root):
            todo += [imported, *_parents(imported)]
    return tuple(sorted(seen))


def code_hash(*entry_points: str, root: Path = PACKAGE_ROOT) -> str:
    """A short hash of the sources of every infscale module the entry points run (see module_closure)."""
    digest = hashlib.sha256()
    for module in module_closure(*sorted(set(entry_points)), root=root):
        digest.update(module.encode() + b"\0")
        digest.update(module_file(module, root).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def package_hash(root: Path = PACKAGE_ROOT) -> str:
    """A hash of every infscale module (for provenance: which code, as a whole, is installed)."""
    modules = [".".join((PACKAGE, *f.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
               for f in sorted(root.rglob("*.py"))]
    return code_hash(*modules, root=root)
