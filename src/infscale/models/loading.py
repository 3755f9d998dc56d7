"""Loading a Hugging Face causal LM for inference (local checkpoint or hub id, one code path): the `hf` backend.

Decoding lives in `infscale.models.hf` (our KV-sharing sampler), other engines in `infscale.models.backend`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from infscale.io import read_json
from infscale.models.hf import LoadedModel


class HubUnavailableError(RuntimeError):
    """A hub model was asked for on a machine that cannot reach the hub."""


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: 'cuda' was configured but torch sees no CUDA device; use 'auto' or 'cpu'")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device: expected auto|cpu|cuda, got {device!r}")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """fp32 on CPU (bf16 matmul is ~500x slower there); bf16 on GPUs that support it, else fp16."""
    if dtype != "auto":
        try:
            return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        except KeyError:
            raise ValueError(f"models.*.dtype: expected auto|float32|bfloat16|float16, got {dtype!r}") from None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set: hub models load only from the local Hugging Face cache."""
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def hub_cached(repo_id: str, revision: str | None = None) -> bool:
    """The hub model `repo_id` (or a local folder of that name) is there without a download."""
    from huggingface_hub import try_to_load_from_cache

    if Path(repo_id).exists():
        return True
    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str)
    except ValueError:  # not a valid repo id
        return False


def load_model(spec: dict[str, Any] | str | Path, device: str = "auto", dtype: str = "auto") -> LoadedModel:
    """Load the model a spec (or `model.json` path) points to, for inference."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not isinstance(spec, dict):
        spec = read_json(spec)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    path = spec["path"]
    if spec["source"] == "hub" and hub_offline() and not hub_cached(path, spec.get("revision")):
        raise HubUnavailableError(
            f"model {spec['name']!r} is the hub id {path!r} but HF_HUB_OFFLINE is set: download it first "
            f"(`huggingface-cli download {path}`) or use an embedded model (source: embedded)"
        )
    start = time.perf_counter()
    # a model repo's own Python code runs only when its config entry says trust_remote_code: true
    remote = bool(spec.get("trust_remote_code", False))
    tokenizer = AutoTokenizer.from_pretrained(path, revision=spec.get("revision"), trust_remote_code=remote)
    model = AutoModelForCausalLM.from_pretrained(path, revision=spec.get("revision"), dtype=torch_dtype,
                                                 trust_remote_code=remote)
    model.to(torch_device).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if torch_device.type == "cuda":
        torch.cuda.synchronize()
    name = torch.cuda.get_device_name(torch_device) if torch_device.type == "cuda" else "cpu"
    return LoadedModel(model, tokenizer, torch_device, spec, time.perf_counter() - start, name)
