"""infscale.config: strict config loading, schema validation with one-line named errors, run helpers."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import REPO, SCHEMA
from infscale.config import (ConfigError, check_config_file, check_config_files, cot_scaling_pairs, load_config,
                             run_triples, validate_config)

DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.mark.parametrize("text, message", [
    ("seed: 1\nseed: 2\n", r"c.yaml:2: duplicate key 'seed' \(first on line 1\)"),
    ("__use_yte__: true\nseed: 1\n", "YTE templates"),
    ("- 1\n- 2\n", "expected a mapping"),
    ("seed: [1\n", "not valid YAML"),
])
def test_load_config_refuses_duplicate_keys_yte_and_non_mappings(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        check_config_files([tmp_path / "c.yaml"])


def test_a_merge_key_may_be_overridden(tmp_path):
    (tmp_path / "c.yaml").write_text("a: &x {b: 1}\nc:\n  <<: *x\n  b: 2\n")
    assert load_config(tmp_path / "c.yaml")["c"] == {"b": 2}


def test_the_default_config_is_valid_and_errors_are_one_named_line(tmp_path):
    assert check_config_file(REPO / "config.yaml", SCHEMA) == DEFAULT
    config = copy.deepcopy(DEFAULT)
    config["aggregate"] = {"n_boot": 10}
    with pytest.raises(ConfigError) as err:
        validate_config(config, SCHEMA)
    assert "\n" not in str(err.value) and str(err.value).startswith("config: aggregate.n_boot")


def test_references_are_checked_after_the_schema():
    config = copy.deepcopy(DEFAULT)
    config["runs"][0]["methods"] = [config["runs"][0]["methods"][0]] * 2
    with pytest.raises(ConfigError, match="is listed twice"):
        validate_config(config, SCHEMA)


def test_run_triples_in_config_order_without_repeats():
    config = {"runs": [{"datasets": ["d"], "models": ["a", "b"], "methods": ["m"]},
                       {"datasets": ["d"], "models": ["a"], "methods": ["m", "n"]}]}
    assert run_triples(config) == [("d", "a", "m"), ("d", "b", "m"), ("d", "a", "n")]


def test_cot_scaling_pairs_need_both_styles():
    config = {"methods": {"std": {}, "cot": {}}, "cot_scaling": {"standard": "std", "cot": "cot"},
              "runs": [{"datasets": ["d"], "models": ["a"], "methods": ["std", "cot"]}]}
    assert cot_scaling_pairs(config) == [("d", "a")]
    assert cot_scaling_pairs({"runs": []}) == []
    config["runs"][0]["methods"] = ["std"]
    with pytest.raises(ConfigError, match="runs the standard method 'std' but not the CoT method 'cot'"):
        cot_scaling_pairs(config)
