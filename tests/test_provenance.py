"""results/provenance.json: what produced the results, named by every metrics file."""

from __future__ import annotations

import json
import subprocess

import pytest

from infscale.io import read_json, write_json
from infscale.models.embedded import EMBEDDED_MODELS, EmbeddedModel, EmbeddedModelMismatch, file_sha256, verify_gguf
from infscale.provenance import config_digest, git_state, lock_drift, write_provenance
from conftest import REPO

CONFIG = {"seed": 1, "device": "cpu", "threads": 1,
          "models": {"tiny": {"source": "embedded", "id": "smollm2-135m-instruct"},
                     "big": {"source": "hub", "id": "org/big", "revision": "abc"}}}


def test_provenance_records_versions_commit_device_config_and_model_digests(tmp_path):
    checkpoint = tmp_path / "tiny" / "checkpoint"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    write_json(tmp_path / "tiny" / "model.json", {"name": "tiny", "source": "embedded", "path": str(checkpoint)})
    write_json(tmp_path / "big.json", {"name": "big", "source": "hub", "path": "org/big"})
    record = write_provenance(tmp_path / "provenance.json", config=CONFIG, threads=1, repo=REPO,
                              model_specs=[tmp_path / "tiny" / "model.json", tmp_path / "big.json"],
                              constraints=REPO / "constraints.txt")
    assert read_json(tmp_path / "provenance.json") == json.loads(json.dumps(record))
    assert record["infscale_version"] and record["python"].count(".") == 2
    assert {"torch", "transformers", "snakemake"} <= {k for k, v in record["packages"].items() if v}
    assert len(record["git"]["commit"]) == 40 and isinstance(record["git"]["dirty"], bool)
    assert record["device"]["type"] == "cpu" and record["device"]["torch_threads"] == 1
    assert record["config_sha256"] == config_digest(CONFIG)
    tiny = record["models"]["tiny"]
    assert tiny["gguf_sha256"] == EMBEDDED_MODELS["smollm2-135m-instruct"].sha256
    assert tiny["checkpoint_sha256"] == {"model.safetensors": file_sha256(checkpoint / "model.safetensors")}
    assert record["models"]["big"] == {"source": "hub", "id": "org/big", "revision": "abc", "trust_remote_code": False,
                                       "backend": "hf"}
    assert record["lock"]["drift"] == {}          # this environment is the locked one


def test_config_digest_ignores_key_order_but_not_values():
    reordered = dict(reversed(list(CONFIG.items())))
    assert config_digest(reordered) == config_digest(CONFIG)
    assert config_digest({**CONFIG, "seed": 2}) != config_digest(CONFIG)


def test_dirty_flag_follows_the_working_tree(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "a.txt").write_text("b")
    assert git_state(tmp_path)["dirty"] is True
    assert git_state(tmp_path / "nowhere")["commit"] is None


def test_lock_drift_names_the_differing_packages(tmp_path):
    lock = tmp_path / "constraints.txt"
    lock.write_text("# header\npytest==0.0.1\nno-such-package-xyz==1.0\n")
    drift = lock_drift(lock)
    assert drift["pytest"][1] == "0.0.1" and drift["no-such-package-xyz"] == [None, "1.0"]


def test_embedded_files_are_checked_against_recorded_digests(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"not the model")
    entry = EmbeddedModel("m", "pkg", "m.gguf", "pip install pkg", "MIT", sha256="0" * 64)
    with pytest.raises(EmbeddedModelMismatch, match=r"'m': .*m.gguf has sha256 [0-9a-f]{64}, expected 0{64}"):
        verify_gguf(entry, gguf)
    verify_gguf(EmbeddedModel("m", "pkg", "m.gguf", "", "MIT", sha256=file_sha256(gguf)), gguf)


def test_the_installed_smollm2_gguf_matches_its_recorded_digest():
    from infscale.models.embedded import _package_dir

    entry = EMBEDDED_MODELS["smollm2-135m-instruct"]
    verify_gguf(entry, _package_dir(entry.package, entry.install_hint) / entry.gguf_file)


@pytest.mark.slow
def test_every_metrics_file_names_the_provenance_file(tiny_run):
    provenance = read_json(tiny_run.path("results/provenance.json"))
    assert provenance["config_sha256"] == config_digest(tiny_run.config)
    assert set(provenance["models"]) == {"smollm2-135m"}
    for metrics in tiny_run.path("results/metrics").rglob("*.json"):
        assert read_json(metrics)["provenance"] == "results/provenance.json"
