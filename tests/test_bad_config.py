"""Bad input, measured: malformed configs each give one line naming the key, exit != 0 and delete nothing;
malformed JSONL names its file and line; extraction and grading survive random and adversarial strings."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, Workflow
from infscale.cli import main

BASE = yaml.safe_load((REPO / "config" / "test-search-tiny.yaml").read_text())   # datasets, model, scorer, 3 methods


def _set(path: str, value):
    """A mutation setting the dotted `path` (list indices as digits) to `value`."""
    def mutate(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value
    return mutate


def _delete(key: str):
    return lambda config: config.pop(key)


def _offline_hub_model(config):
    config["models"]["mistral-7b"] = {"source": "hub", "id": "mistralai/Mistral-7B-v0.1"}
    config["runs"][0]["models"].append("mistral-7b")


def _duplicate_method(text: str) -> str:
    # a second `sample3:` under methods (YAML would otherwise keep the last one silently)
    return text.replace("  sample3:\n", "  sample3:\n    kind: sampling\n  sample3:\n", 1)


# (id, mutation of the config dict or of the YAML text, text the one-line error must contain)
CASES = [
    ("unknown-top-level-key", _set("colour", "blue"), "unknown key colour"),
    ("misspelt-method-key", _set("methods.sample3.temprature", 0.5), "methods.sample3.temprature"),
    ("wrong-type", _set("methods.sample3.n_samples", "four"), "methods.sample3.n_samples"),
    ("wrong-type-seed", _set("seed", "forty-two"), "seed"),
    ("missing-section", _delete("models"), "missing key models"),
    ("undefined-model", _set("runs.0.models", ["gpt-99"]), "runs.0.models: 'gpt-99' is not defined"),
    ("undefined-method", _set("runs.0.methods", ["nope"]), "runs.0.methods: 'nope' is not defined"),
    ("undefined-dataset", _set("runs.0.datasets", ["mmlu"]), "runs.0.datasets: 'mmlu' is not defined"),
    ("undefined-scorer-in-run", _set("runs.0.scorers", ["math-shepherd"]), "runs.0.scorers: 'math-shepherd'"),
    ("undefined-scorer-in-method", _set("methods.rebase3.scorer", "prm"), "methods.rebase3.scorer: 'prm'"),
    ("undefined-labeller", _set("runs.0.labellers", ["gemma"]), "runs.0.labellers: 'gemma' is not defined"),
    ("undefined-scorer-model", _set("scorers.vh.model", "llama"), "scorers.vh.model: 'llama' is not defined"),
    ("undefined-thinker-in-method", _set("methods.qs", {"kind": "quietstar", "thinker": "qs"}),
     "methods.qs.thinker: 'qs' is not defined"),
    ("undefined-thinker-model", _set("thinkers", {"qs": {"model": "llama"}}), "thinkers.qs.model: 'llama' is not defined"),
    ("no-datasets", _set("datasets", {}), "datasets"),
    ("empty-run-list", _set("runs.0.datasets", []), "runs.0.datasets"),
    ("empty-dataset", _set("datasets.chain.n_test", 0), "datasets.chain.n_test"),
    ("width-0", _set("methods.rebase3.width", 0), "methods.rebase3.width"),
    ("negative-temperature", _set("methods.sample3.temperature", -0.5), "methods.sample3.temperature"),
    ("top-p-0", _set("methods.sample3.top_p", 0), "methods.sample3.top_p"),
    ("n-values-above-m", _set("aggregate.n_values", [4, 8]),
     "methods.sample3.n_samples: aggregate.n_values [4, 8] has no N <= M = 3"),
    ("beam-width-above-width", _set("methods.beam4.beam_width", 8), "methods.beam4: beam_width must be in 1..width"),
    ("zero-softmax-temperature", _set("methods.rebase3.softmax_temperature", 0),
     "methods.rebase3.softmax_temperature"),
    ("unknown-method-kind", _set("methods.sample3.kind", "mcts"), "methods.sample3.kind"),
    ("unknown-dataset-source", _set("datasets.chain.source", "mmlu"), "datasets.chain.source"),
    ("unknown-model-source", _set("models.smollm2-135m.source", "ftp"), "models.smollm2-135m.source"),
    ("empty-step-separator", _set("methods.rebase3.step_separator", ""), "methods.rebase3.step_separator"),
    ("unknown-embedded-model", _set("models.smollm2-135m.id", "tiny-gpt"), "models.smollm2-135m.id"),
    ("hub-id-offline", _offline_hub_model, "models.mistral-7b.id"),
    ("bad-device", _set("device", "tpu"), "device"),
    ("threads-0", _set("threads", 0), "threads"),
    ("trust-remote-code-not-bool", _set("models.smollm2-135m.trust_remote_code", "yes"),
     "models.smollm2-135m.trust_remote_code"),
    ("name-listed-twice", _set("runs.0.methods", ["sample3", "sample3"]), "runs.0.methods: 'sample3' is listed twice"),
    ("duplicate-method-name", _duplicate_method, "duplicate key 'sample3'"),
    ("yaml-syntax", lambda text: text.replace("seed: 42", "seed: [42"), "config.yaml:"),
    ("code-as-value", _set("seed", "__import__('os').system('touch PWNED')"), "seed"),
    ("python-yaml-tag", lambda text: "boom: !!python/object/apply:os.system ['touch PWNED']\n" + text, "config.yaml:1"),
    ("yte-template", lambda text: "__use_yte__: true\n" + text, "__use_yte__"),
    ("unknown-backend", _set("models.smollm2-135m.backend", "tgi"), "models.smollm2-135m.backend"),
    ("bad-llamacpp-compute-type", _set("models.smollm2-135m", {"source": "embedded", "id": "smollm2-135m-instruct",
                                                               "backend": "llamacpp", "compute_type": "int8"}),
     "models.smollm2-135m.compute_type"),
    ("llamacpp-on-a-hub-model", _set("models.smollm2-135m", {"source": "hub", "id": "HuggingFaceTB/SmolLM2-135M",
                                                             "backend": "llamacpp"}),
     "models.smollm2-135m"),
    ("compute-type-on-hf", _set("models.smollm2-135m.compute_type", "int8"), "models.smollm2-135m.compute_type"),
    ("bad-ct2-compute-type", _set("models.smollm2-135m", {"source": "embedded", "id": "smollm2-135m-instruct",
                                                          "backend": "ct2", "compute_type": "float16"}),
     "models.smollm2-135m.compute_type"),
]


def _write_case(root: Path, mutate) -> Path:
    """The mutated config in `root/config.yaml`, beside a finished-looking results folder."""
    config_path = root / "config.yaml"
    text = yaml.safe_dump(BASE, sort_keys=False)
    try:
        config = copy.deepcopy(BASE)
        mutate(config)
        text = yaml.safe_dump(config, sort_keys=False)
    except (AttributeError, TypeError):           # a mutation of the YAML text
        text = mutate(text)
    config_path.write_text(text)
    (root / "results" / "metrics").mkdir(parents=True)
    (root / "results" / "metrics" / "kept.json").write_text("{}\n")
    return config_path


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_there_are_at_least_twenty_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("mutate, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_config_gives_one_line_naming_the_key(tmp_path, monkeypatch, capsys, mutate, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    config_path = _write_case(tmp_path, mutate)
    before = _snapshot(tmp_path)
    code = main(["check-config", str(config_path)])
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    assert message in err, err
    assert _snapshot(tmp_path) == before            # nothing deleted, changed or created (no PWNED)


def test_ct2_not_installed_gives_one_line_naming_the_key(tmp_path, monkeypatch, capsys):
    from infscale.models import backend

    monkeypatch.setattr(backend, "ct2_available", lambda: False)
    config_path = _write_case(tmp_path, _set("models.smollm2-135m.backend", "ct2"))
    assert main(["check-config", str(config_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "models.smollm2-135m.backend: ct2 needs CTranslate2" in err, err


def test_llamacpp_not_installed_gives_one_line_naming_the_key(tmp_path, monkeypatch, capsys):
    from infscale.models import backend

    monkeypatch.setattr(backend, "llamacpp_available", lambda: False)
    config_path = _write_case(tmp_path, _set("models.smollm2-135m.backend", "llamacpp"))
    assert main(["check-config", str(config_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "models.smollm2-135m.backend: llamacpp needs llama-cpp-python" in err, err


def test_the_unchanged_base_config_passes(tmp_path, capsys):
    assert main(["check-config", str(_write_case(tmp_path, lambda config: None))]) == 0


def test_check_config_exit_status_from_the_shell(tmp_path):
    config_path = _write_case(tmp_path, _set("methods.rebase3.width", 0))
    proc = subprocess.run([sys.executable, "-m", "infscale.cli", "check-config", str(config_path)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "methods.rebase3.width" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("case", ["duplicate-method-name", "hub-id-offline", "beam-width-above-width"])
def test_snakemake_refuses_the_same_configs(tmp_path, monkeypatch, case):
    """The Snakefile runs the same checks (config files re-read strictly), before any job; nothing deleted."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    mutate, message = next(c[1:] for c in CASES if c[0] == case)
    config_path = _write_case(tmp_path, mutate)
    workflow = Workflow.__new__(Workflow)
    workflow.root, workflow.config_path = tmp_path, config_path
    before = _snapshot(tmp_path)
    proc = workflow.run("--dry-run", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before


# --- malformed JSONL in a stage's input names the file and line ---


def _bad_jsonl(path: Path, good: list[dict], bad_line: str, at: int) -> Path:
    import json

    lines = [json.dumps(r) for r in good]
    lines.insert(at, bad_line)
    path.write_text("\n".join(lines) + "\n")
    return path


GRADED = [{"id": "q1", "sample": s, "completion": "4", "extracted": "4", "correct": True, "reference": "4",
           "n_completion_tokens": 1} for s in range(2)]


@pytest.mark.parametrize("bad_line, what", [('{"id": "q1", "sample": ', "not valid JSON"),
                                             ("[1, 2]", "expected a JSON object")])
def test_malformed_jsonl_names_file_and_line_in_every_reader(tmp_path, bad_line, what):
    from infscale.cli import grade_file, vote_file
    from infscale.grade import grade_responses
    from infscale.io import RecordError
    from infscale.reports.label_quality import labelled_pool

    bad = _bad_jsonl(tmp_path / "bad.jsonl", GRADED, bad_line, at=0)
    questions = _bad_jsonl(tmp_path / "questions.jsonl", [{"id": "q1", "question": "2+2", "answer": "4"}],
                           bad_line, at=0)
    good = tmp_path / "good.jsonl"
    good.write_text("".join(__import__("json").dumps(r) + "\n" for r in GRADED))
    readers = [
        lambda: grade_file(bad, tmp_path / "out.jsonl"),                         # grade (CLI)
        lambda: grade_responses(bad, questions, tmp_path / "out.jsonl"),          # grade (rule): responses
        lambda: grade_responses(good, questions, tmp_path / "out.jsonl"),         # grade (rule): questions
        lambda: vote_file(bad, n=1, rule="majority"),                             # vote (CLI)
        lambda: labelled_pool(good, bad),                                         # label_quality
    ]
    for read in readers:
        with pytest.raises(RecordError, match=rf"{tmp_path}/\w+\.jsonl:1: {what}"):
            read()
    assert not (tmp_path / "out.jsonl").exists()


def test_malformed_jsonl_in_generation_input_names_file_and_line(tmp_path):
    from infscale.generate import run_generation
    from infscale.io import RecordError

    test = _bad_jsonl(tmp_path / "test.jsonl", [{"id": "q1", "question": "2+2", "answer": "4"}] * 3, "oops", at=2)
    with pytest.raises(RecordError, match=rf"{tmp_path}/test.jsonl:3: not valid JSON"):
        run_generation(test, test, tmp_path / "model.json", "m", {"kind": "sampling"}, tmp_path / "out.jsonl",
                       tmp_path / "timing.json")
    assert not (tmp_path / "out.jsonl").exists()


def test_a_bad_line_inside_a_partial_file_is_an_error_not_a_silent_drop(tmp_path):
    """Only a truncated *last* line (a kill mid-write) is dropped on resume; damage elsewhere is reported."""
    from infscale.io import RecordError, ResumableJsonlWriter

    _bad_jsonl(tmp_path / "out.jsonl.partial", GRADED, "garbage", at=1)
    with pytest.raises(RecordError, match="out.jsonl.partial:2"):
        ResumableJsonlWriter(tmp_path / "out.jsonl", key_fields=("id", "sample"))
