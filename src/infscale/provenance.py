"""What produced the results: `results/provenance.json` (docs/reproducibility.md).

One record per run folder: infscale's version and git commit (with a dirty flag), the Python and library
versions, whether they match constraints.txt, the device and threads, a digest of the config, the code hash
of every stage's entry point, and the digests of the embedded model files. Every metrics file names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from infscale import __version__
from infscale.codehash import package_hash
from infscale.fingerprint import package_versions
from infscale.io import read_json, write_json

# the libraries whose versions decide the numbers (all of them are pinned in constraints.txt)
KEY_PACKAGES = ("torch", "transformers", "snakemake", "accelerate", "numpy", "pandas", "math-verify",
                "reasoning-gym", "datasets", "tokenizers", "safetensors", "gguf", "ctranslate2", "llama-cpp-python",
                "vllm")


def config_digest(config: Mapping[str, Any]) -> str:
    """sha256 of the config as canonical JSON (key order and YAML formatting do not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def git_state(repo: str | Path) -> dict[str, Any]:
    """The commit the code was run from and whether tracked or untracked files differed from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=normal").strip())
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None, "note": f"{repo} is not a git checkout"}
    return {"commit": commit, "dirty": dirty}


def lock_drift(constraints: str | Path) -> dict[str, list[str | None]] | None:
    """Installed vs locked version of every package of constraints.txt that differs (None: no lock file)."""
    path = Path(constraints)
    if not path.exists():
        return None
    drift = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, locked = line.split("==")
            try:
                installed = metadata.version(name).split("+")[0]
            except metadata.PackageNotFoundError:
                installed = None
            if installed != locked:
                drift[name] = [installed, locked]
    return drift


def device_description(device: str, threads: int | None) -> dict[str, Any]:
    import torch

    from infscale.models.loading import resolve_device

    resolved = resolve_device(device)
    name = torch.cuda.get_device_name(resolved) if resolved.type == "cuda" else platform.processor() or "cpu"
    return {"configured": device, "type": resolved.type, "name": name, "torch_threads": threads,
            "cuda": torch.version.cuda, "cpu_count": os.cpu_count()}


def model_files(models_config: Mapping[str, Mapping[str, Any]], model_specs: Sequence[str | Path]) -> dict[str, Any]:
    """Per prepared model: its config entry, and for embedded ones the GGUF digest checked before conversion
    and the digests of the converted checkpoint the jobs loaded."""
    from infscale.models.embedded import file_sha256, get_embedded

    models = {}
    for spec_path in model_specs:
        spec = read_json(spec_path)
        # the config key is the folder of resources/models/{name}/model.json; a spec prepared under another name
        # and linked there (tests) keeps that other `name` inside
        folder = Path(spec_path).parent.name
        name = folder if folder in models_config else spec["name"]
        cfg = models_config[name]
        entry: dict[str, Any] = {"source": cfg["source"], "id": cfg["id"], "revision": cfg.get("revision"),
                                 "trust_remote_code": bool(cfg.get("trust_remote_code", False))}
        # the generation backend (models.backend): hf, or the engine and its compute type
        entry["backend"] = cfg.get("backend", "hf")
        if entry["backend"] != "hf":
            entry["compute_type"] = cfg.get("compute_type")
        if cfg["source"] == "embedded":
            entry["gguf_sha256"] = get_embedded(cfg["id"]).sha256
            checkpoint = Path(spec["path"])
            entry["checkpoint_sha256"] = {p.name: file_sha256(p) for p in sorted(checkpoint.glob("*.safetensors"))}
        models[name] = entry
    return models


def write_provenance(output: str | Path, *, config: Mapping[str, Any], model_specs: Sequence[str | Path],
                     threads: int | None, repo: str | Path, constraints: str | Path) -> dict[str, Any]:
    record = {
        "infscale_version": __version__,
        "git": git_state(repo),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(KEY_PACKAGES),
        "lock": {"file": str(Path(constraints).name), "drift": lock_drift(constraints)},
        "device": device_description(config["device"], threads),
        "config_sha256": config_digest(config),
        "code_sha256": package_hash(),     # every infscale module; rules rerun on their own part (codehash)
        "models": model_files(config["models"], model_specs),
    }
    write_json(output, record)
    return record
