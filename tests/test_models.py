import pytest

from infscale.models import ModelConfig
from infscale.models.prepare_model import prepare_model
from infscale.models.embedded import get_embedded
from infscale.models.loading import HubUnavailableError, load_model, resolve_device, resolve_dtype


def test_hub_model_offline_fails_fast_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = ModelConfig.from_config("mistral-7b", {"source": "hub", "id": "mistralai/Mistral-7B-v0.1"})
    with pytest.raises(HubUnavailableError, match=r"models.mistral-7b: cannot fetch hub model .*smollm2-135m-instruct"):
        prepare_model(cfg, tmp_path / "mistral-7b")
    spec = {"name": "mistral-7b", "source": "hub", "path": "mistralai/Mistral-7B-v0.1"}
    with pytest.raises(HubUnavailableError, match="huggingface-cli download"):
        load_model(spec, device="cpu")
    assert not (tmp_path / "mistral-7b" / "model.json").exists()


def test_model_config_errors_name_the_key(tmp_path):
    # a bad `source` is the schema's to refuse (test_bad_config: "models.x.source"), once
    with pytest.raises(KeyError, match="unknown embedded model 'tiny-gpt'"):
        get_embedded("tiny-gpt")
    with pytest.raises(FileNotFoundError, match="models.mine.id"):
        prepare_model(ModelConfig("mine", "local", str(tmp_path / "nowhere")), tmp_path / "out")


def test_device_and_dtype_resolution():
    import torch

    assert resolve_device("cpu").type == "cpu"
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32   # bf16 matmul is ~500x slower on CPU
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.mark.slow
def test_prepared_embedded_model_spec(prepared_smollm2):
    from infscale.io import read_json

    spec = read_json(prepared_smollm2 / "model.json")
    assert spec["source"] == "embedded" and spec["n_params"] == 134_515_008
    # what generation, aggregation and provenance read (issue 16; the test cache may hold a spec prepared by an
    # older version with more fields, so this checks the read ones are there)
    assert {"name", "source", "path", "revision", "dtype", "n_params", "trust_remote_code", "config"} <= set(spec)
    assert (prepared_smollm2 / "checkpoint" / "model.safetensors").exists()


def test_out_of_memory_names_the_batch_size_to_lower():
    import torch

    from infscale.generate import _explain_out_of_memory
    from infscale.methods.sampling import SamplingConfig

    with pytest.raises(RuntimeError, match=r"lower methods.sample16.batch_size \(now 128\)"):
        with _explain_out_of_memory("sample16", SamplingConfig(batch_size=128)):
            raise torch.OutOfMemoryError("CUDA out of memory")
