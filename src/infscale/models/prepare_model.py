"""The prepare_model stage: a `models:` entry -> `resources/models/<name>/model.json`, the spec generation loads
(docs/file-formats.md): where the checkpoint is, how to load it, its parameter count N and its HF config.
Embedded models are converted from their GGUF once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from infscale.io import write_json
from infscale.models import ModelConfig
from infscale.models.loading import HubUnavailableError, hub_offline

log = logging.getLogger(__name__)


def count_parameters(hf_config: Any) -> int:
    """Total parameter count N, from the architecture alone (built on the meta device)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    return sum(p.numel() for p in model.parameters())


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
    from transformers import AutoConfig

    out_dir = Path(out_dir)
    remote = {"trust_remote_code": cfg.trust_remote_code}
    if cfg.trust_remote_code:
        log.warning("models.%s.trust_remote_code is true: loading it runs Python code from %r", cfg.name, cfg.id)
    if cfg.source == "embedded":
        from infscale.models.embedded import convert_embedded

        convert_embedded(cfg.id, out_dir / "checkpoint")
        path = str(out_dir / "checkpoint")
        hf_config = AutoConfig.from_pretrained(path)
    elif cfg.source == "local":
        if not Path(cfg.id).is_dir():
            raise FileNotFoundError(f"models.{cfg.name}.id: local checkpoint folder {cfg.id!r} does not exist")
        path = cfg.id
        hf_config = AutoConfig.from_pretrained(path, **remote)
    else:
        path = cfg.id
        hf_config = _hub_reachable_config(cfg)
    spec = {
        "name": cfg.name, "source": cfg.source, "path": path, "revision": cfg.revision, "dtype": cfg.dtype,
        "n_params": count_parameters(hf_config), "trust_remote_code": cfg.trust_remote_code,
        "config": hf_config.to_dict(),
    }
    if cfg.backend != "hf":      # hf specs stay as they were before backends existed
        spec.update({"backend": cfg.backend, "compute_type": cfg.compute_type})
    write_json(out_dir / "model.json", spec)
    return spec
