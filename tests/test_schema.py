"""infscale.schema: the config schema is the one source of defaults; the dataclasses and the workflow read it."""

from __future__ import annotations

import dataclasses

import pytest

from infscale.schema import defaults, load_schema, setting


def test_defaults_of_a_definition_include_its_parts():
    assert defaults("prompt") == {"style": "fewshot", "n_shots": 3, "chat_template": "auto", "question_prefix": "Q: ",
                                  "bos": False}
    assert defaults("rebase")["final_test"] == "markers"            # from its tree_search part
    assert defaults("aggregate") == {"exact_limit": 1000, "n_monte_carlo": 1000, "n_boot": 2000}   # a section


def test_setting_reads_the_config_else_the_schema():
    assert setting({"aggregate": {"n_boot": 500}}, "aggregate", "n_boot") == 500
    assert setting({}, "aggregate", "n_boot") == 2000
    assert setting({"report": None}, "report", "seed_rounding") is False
    with pytest.raises(KeyError):
        setting({}, "aggregate", "nope")


@pytest.mark.parametrize("definition, cls", [
    ("prompt", "infscale.prompts.PromptConfig"),
    ("sampling_options", "infscale.methods.sampling.SamplingConfig"),
    ("rebase", "infscale.methods.rebase.RebaseConfig"),
    ("dataset", "infscale.data.sample_dataset.DatasetConfig"),
    ("model", "infscale.models.ModelConfig"),
    ("labelling", "infscale.scoring.label_confidence.LabellingConfig"),
])
def test_config_dataclasses_take_the_schemas_defaults(definition, cls):
    import importlib

    module, name = cls.rsplit(".", 1)
    fields = {f.name: f.default for f in dataclasses.fields(getattr(importlib.import_module(module), name))}
    for key, value in defaults(definition).items():
        if key in fields:
            assert fields[key] == value, f"{name}.{key}"
    assert set(defaults(definition)) & set(fields)


def test_a_thinker_entry_is_completed_from_the_schema():
    from infscale.methods.quietstar import ThinkerConfig

    cfg = ThinkerConfig.from_config("qs", {"model": "m", "steps": 3})
    assert cfg.steps == 3 and cfg.n_thought_tokens == defaults("thinker")["n_thought_tokens"] == 9
    assert dataclasses.asdict(cfg) == {"name": "qs", "model": "m", "text": {}, **defaults("thinker"), "steps": 3}


def test_the_schema_is_read_once():
    assert load_schema() is load_schema()
