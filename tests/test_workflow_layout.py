"""Find any stage in one hop: a rule, its script shim and its package module share a name, and its log and
benchmark are named after it (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "workflow" / "rules"
SCRIPTS = REPO / "workflow" / "scripts"
PACKAGE = REPO / "src" / "infscale"


def _rules() -> list[tuple[str, str, str]]:
    """(rule file stem, rule name, rule body) of every rule."""
    found = []
    for smk in sorted(RULES.glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            found.append((smk.stem, block.split(":", 1)[0], block))
    return found


RULE_BLOCKS = _rules()


def _entry_module(script: Path, rule: str) -> str:
    """The infscale module a shim calls into: the one named after its rule (infscale.pipeline only routes its log;
    other imports are helpers of the same call, e.g. `methods.Resources`); else the first it imports."""
    modules = [node.module for node in ast.walk(ast.parse(script.read_text()))
               if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("infscale")
               and node.module != "infscale.pipeline"]
    return next((m for m in modules if m.split(".")[-1] == rule), modules[0])


@pytest.mark.parametrize("smk, rule, block", RULE_BLOCKS, ids=[r[1] for r in RULE_BLOCKS])
def test_rule_script_and_module_share_a_name(smk, rule, block):
    script = re.search(r'script:\s*"\.\./scripts/([\w.]+)"', block)
    assert script, f"rule {rule} has no script"
    assert script.group(1) == f"{rule}.py", f"rule {rule} runs {script.group(1)}"
    module = _entry_module(SCRIPTS / script.group(1), rule)
    parts = module.split(".")
    assert parts[-1] == rule, f"rule {rule}: its script calls {module}"
    assert (PACKAGE.joinpath(*parts[1:]).with_suffix(".py")).is_file()
    # the rule file is named after the rule, or after the package its rules' modules live in
    assert smk == rule or smk in parts[1:-1], f"rule {rule} is in {smk}.smk, its module is {module}"


@pytest.mark.parametrize("smk, rule, block", RULE_BLOCKS, ids=[r[1] for r in RULE_BLOCKS])
def test_logs_and_benchmarks_are_named_after_their_rule(smk, rule, block):
    for key in ("log", "benchmark"):
        entry = re.search(rf"^\s+{key}:\s*\n\s+\"([^\"]+)\"", block, flags=re.M)
        if entry:
            prefix = {"log": "logs", "benchmark": "results/benchmarks"}[key]
            assert entry.group(1).startswith(f"{prefix}/{rule}/"), f"rule {rule}: {key} {entry.group(1)}"


def test_every_script_belongs_to_a_rule():
    scripts = {p.name for p in SCRIPTS.glob("*.py")}
    assert scripts == {f"{rule}.py" for _, rule, _ in RULE_BLOCKS if rule != "all"}
