"""Code-aware reruns: a rule's code hash covers exactly the infscale modules its entry point runs."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
import yaml

from infscale.codehash import CodeHashError, code_hash, module_closure
from infscale.methods import METHOD_MODULES, get_method, method_module

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "workflow" / "rules"


def generation_hash(kind: str, root: Path | None = None) -> str:
    """What the generate rule's `code` param is for a method of `kind` (common.smk: generate_code_hash)."""
    kwargs = {"root": root} if root else {}
    return code_hash("infscale.generate", method_module(kind), **kwargs)


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "infscale"
    shutil.copytree(REPO / "src" / "infscale", copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _edit(root: Path, relative: str) -> None:
    path = root / relative
    path.write_text(path.read_text() + "\n# edited\n")


def test_tree_search_generation_runs_grading_but_sampling_does_not():
    for kind in ("rebase", "beam"):   # the tree's finish test calls grading.extract_answer
        assert "infscale.grading" in module_closure("infscale.generate", method_module(kind))
    assert "infscale.grading" not in module_closure("infscale.generate", method_module("sampling"))


def test_editing_grading_reruns_grading_and_tree_search_not_sampling(package_copy):
    before = {kind: generation_hash(kind, package_copy) for kind in METHOD_MODULES}
    grade_before = code_hash("infscale.grading", root=package_copy)
    _edit(package_copy, "grading.py")
    assert code_hash("infscale.grading", root=package_copy) != grade_before
    assert generation_hash("rebase", package_copy) != before["rebase"]
    assert generation_hash("beam", package_copy) != before["beam"]
    assert generation_hash("sampling", package_copy) == before["sampling"]


def test_editing_plots_reruns_no_generation(package_copy):
    before = {kind: generation_hash(kind, package_copy) for kind in METHOD_MODULES}
    plots_before = code_hash("infscale.reports.plots", root=package_copy)
    _edit(package_copy, "reports/plots.py")
    assert {kind: generation_hash(kind, package_copy) for kind in METHOD_MODULES} == before
    assert code_hash("infscale.reports.plots", root=package_copy) != plots_before


def test_editing_the_sampler_reruns_sampling_only(package_copy):
    before = {kind: generation_hash(kind, package_copy) for kind in METHOD_MODULES}
    _edit(package_copy, "methods/sampling.py")
    after = {kind: generation_hash(kind, package_copy) for kind in METHOD_MODULES}
    assert after["sampling"] != before["sampling"]
    assert after["rebase"] == before["rebase"] and after["beam"] == before["beam"]


@pytest.mark.parametrize("entry, needed", [
    # the modules the hand-kept lists had lost (issue 14)
    ("infscale.reports.label_quality", "infscale.stats"),          # label_quality
    ("infscale.reports.prm_quality", "infscale.steps"),            # prm_quality
    ("infscale.scoring.label_confidence", "infscale.prompts"),         # label_confidence
])
def test_closure_follows_imports_through_other_modules(entry, needed):
    assert needed in module_closure(entry)


def test_function_level_and_relative_imports_are_followed(tmp_path):
    root = tmp_path / "infscale"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "a.py").write_text("def f():\n    from infscale.sub import b\n")
    (root / "sub" / "b.py").write_text("from . import c\nfrom .d import thing\n")
    (root / "sub" / "c.py").write_text("import os\n")
    (root / "sub" / "d.py").write_text("thing = 1\n")
    (root / "unused.py").write_text("")
    assert module_closure("infscale.a", root=root) == (
        "infscale", "infscale.a", "infscale.sub", "infscale.sub.b", "infscale.sub.c", "infscale.sub.d")


def test_unknown_entry_point_is_an_error():
    with pytest.raises(CodeHashError, match="infscale.nonexistent"):
        code_hash("infscale.nonexistent")


def test_every_method_kind_in_the_schema_has_a_module():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    kinds = schema["$defs"]["method"]["properties"]["kind"]["enum"]
    assert set(kinds) == set(METHOD_MODULES)
    for kind in kinds:
        assert get_method(kind).kind == kind   # importing the module registers that kind


def _script_entry_points(script: Path) -> set[str]:
    """The infscale modules a workflow script imports (infscale.pipeline only routes its log)."""
    modules = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("infscale"):
            modules.add(node.module)
    return modules - {"infscale.pipeline"}


def _rules() -> list[tuple[str, str, str]]:
    """(rule name, its `code=` param source, its script) of every rule with a script."""
    found = []
    for smk in sorted(RULES.glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0]
            script = re.search(r'script:\s*"\.\./scripts/([\w.]+)"', block)
            code = re.search(r"^\s+code=(.+)$", block, flags=re.M)
            if script:
                found.append((name, code.group(1) if code else "", script.group(1)))
    return found


@pytest.mark.parametrize("rule, code, script", _rules(), ids=[r[0] for r in _rules()])
def test_every_rule_hashes_the_entry_points_its_script_runs(rule, code, script):
    assert code, f"rule {rule} has no code= param"
    named = set(re.findall(r'"(infscale[\w.]*)"', code))
    if code.strip() == "generate_code_hash,":
        named = {"infscale.generate"}     # + the method's module, by kind
    imported = _script_entry_points(REPO / "workflow" / "scripts" / script)
    assert imported <= set(module_closure(*named)), f"{rule}: script imports {imported}, hash covers {named}"
