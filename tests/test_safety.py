"""Safety: config values are data, never code; remote model code runs only when a model entry asks for it."""

from __future__ import annotations

import ast
import copy
import logging
from pathlib import Path

import pytest
import yaml

from infscale.config import validate_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CODE_RUNNERS = {"eval", "exec", "compile", "__import__"}


def _sources():
    yield from sorted((REPO / "src" / "infscale").rglob("*.py"))
    yield from sorted((REPO / "workflow" / "scripts").glob("*.py"))


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(REPO)))
def test_no_source_evaluates_strings_as_code(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            # the builtins (re.compile and model.eval() are not them)
            assert not (isinstance(node.func, ast.Name) and name in CODE_RUNNERS), f"{path}:{node.lineno}: {name}()"
            # yaml.load without a safe loader builds arbitrary Python objects
            if name in {"load", "load_all", "unsafe_load", "full_load"} and getattr(node.func, "value", None) is not None \
                    and getattr(node.func.value, "id", "") == "yaml":
                loader = next((k.value for k in node.keywords if k.arg == "Loader"), None)
                assert name in {"load", "load_all"} and loader is not None and "Safe" in ast.unparse(loader) \
                    or "Strict" in ast.unparse(loader), f"{path}:{node.lineno}: unsafe yaml.{name}"


class Refuse(Exception):
    """Raised by a stand-in loader once it has seen its arguments."""


def _capturing(seen: list):
    """A stand-in for a transformers `from_pretrained` that records `trust_remote_code` and stops."""

    def capture(path, **kwargs):
        seen.append(kwargs.get("trust_remote_code"))
        raise Refuse

    return capture


def test_trust_remote_code_is_off_unless_the_model_entry_sets_it(tmp_path, monkeypatch):
    import transformers

    from infscale.models.loading import load_model

    seen = []
    capture = _capturing(seen)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", capture)
    for spec, expected in (({"name": "m", "source": "local", "path": str(tmp_path)}, False),
                           ({"name": "m", "source": "local", "path": str(tmp_path), "trust_remote_code": True}, True)):
        with pytest.raises(Refuse):
            load_model(spec, device="cpu")
        assert seen.pop() is expected


def test_trust_remote_code_in_a_config_is_warned_about(recwarn):
    config = yaml.safe_load((REPO / "config" / "test-tiny.yaml").read_text())
    validate_config(config, SCHEMA)
    assert not [w for w in recwarn if "trust_remote_code" in str(w.message)]
    config = copy.deepcopy(config)
    config["models"]["smollm2-135m"]["trust_remote_code"] = True
    with pytest.warns(UserWarning, match=r"models.smollm2-135m.trust_remote_code is true"):
        validate_config(config, SCHEMA)


def test_prepare_model_passes_and_records_trust_remote_code(tmp_path, monkeypatch, caplog):
    import transformers

    from infscale.models import ModelConfig
    from infscale.models.prepare_model import prepare_model

    calls = []
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", _capturing(calls))
    (tmp_path / "ckpt").mkdir()
    for trust in (False, True):
        with caplog.at_level(logging.WARNING), pytest.raises(Refuse):
            prepare_model(ModelConfig("m", "local", str(tmp_path / "ckpt"), trust_remote_code=trust), tmp_path / "out")
    assert calls == [False, True]
    assert sum("trust_remote_code is true" in r.message for r in caplog.records) == 1
