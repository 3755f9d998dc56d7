"""Stage `convert_model`: a prepared model converted for CTranslate2 (the `ct2` backend), int8 or float32 weights."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

from infscale.io import read_json

log = logging.getLogger(__name__)


def ct2_convert(checkpoint: str | Path, out_dir: str | Path, quantization: str) -> Path:
    """Convert an HF checkpoint for CTranslate2 (seconds for a 135M model), atomically: a killed conversion leaves
    no half-written folder; a finished one is kept."""
    from ctranslate2.converters import TransformersConverter

    out_dir = Path(out_dir)
    if (out_dir / "model.bin").exists():
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
        staging = Path(tmp) / "model"
        TransformersConverter(str(checkpoint)).convert(str(staging), quantization=quantization)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    return out_dir


def convert_model(spec_path: str | Path, out_dir: str | Path, quantization: str) -> Path:
    """The `convert_model` rule: the model of `spec_path` (model.json) converted for CTranslate2 into `out_dir`."""
    spec = read_json(spec_path)
    began = time.perf_counter()
    folder = ct2_convert(spec["path"], out_dir, quantization)
    log.info("converted %s for CTranslate2 (%s) in %.1f s", spec["name"], quantization, time.perf_counter() - began)
    return folder
