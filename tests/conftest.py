"""Shared fixtures: the embedded model prepared once per cache, and Snakemake runs in temp workdirs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from infscale.io import read_jsonl

REPO = Path(__file__).resolve().parents[1]
TEST_CACHE = Path(os.environ.get("INFSCALE_TEST_CACHE", REPO / ".cache-tests"))
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
TINY_CONFIG = REPO / "config" / "test-tiny.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

# --- tests that load a model must be marked slow (`make test-fast` leaves them out) ---

# fixtures that prepare or load a model; a test using one (directly or through another fixture) is slow
MODEL_FIXTURES = {"prepared_smollm2", "prepared_gemma3", "smollm2_checkpoint"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [f"{item.nodeid} (uses {sorted(MODEL_FIXTURES & set(item.fixturenames))})" for item in items
                if item.get_closest_marker("slow") is None and MODEL_FIXTURES & set(getattr(item, "fixturenames", ()))]
    if unmarked:
        raise pytest.UsageError("tests that load a model must be marked @pytest.mark.slow: " + "; ".join(unmarked))


_IN_FAST_TEST: list[str] = []          # node id of the running test when it is not marked slow
_MODEL_READS: list[str] = []           # model files such a test opened


def _model_file(path: str) -> bool:
    """A model's weights, or the config.json of a folder that holds weights (every from_pretrained reads it)."""
    if path.endswith((".safetensors", ".gguf", ".pt")) and "/models/" in path:
        return True
    folder = os.path.dirname(path)
    return path.endswith("config.json") and any(
        name.endswith((".safetensors", ".gguf")) for name in os.listdir(folder or "."))


def _audit_model_reads(event: str, args: tuple) -> None:
    if event == "open" and _IN_FAST_TEST and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        try:
            if _model_file(path):
                _MODEL_READS.append(path)
        except OSError:
            pass


sys.addaudithook(_audit_model_reads)


@pytest.fixture(autouse=True)
def _models_only_in_slow_tests(request: pytest.FixtureRequest):
    """Runtime twin of the collection check: a fast test that opens a model's files fails."""
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    _IN_FAST_TEST.append(request.node.nodeid)
    _MODEL_READS.clear()
    try:
        yield
    finally:
        _IN_FAST_TEST.clear()
    if _MODEL_READS:
        pytest.fail(f"{request.node.nodeid} loads a model ({_MODEL_READS[0]}) but is not marked @pytest.mark.slow")


@pytest.fixture(scope="session")
def prepared_smollm2() -> Path:
    """`resources/models/smollm2-135m` as the prepare_model rule makes it (model.json + checkpoint), cached."""
    from infscale.models import ModelConfig
    from infscale.models.prepare_model import prepare_model

    folder = TEST_CACHE / "models" / "smollm2-135m"
    if not (folder / "model.json").exists():
        # absolute path in model.json, so workdirs that link this folder load the same checkpoint (~20 s once)
        prepare_model(ModelConfig("smollm2-135m", "embedded", "smollm2-135m-instruct"), folder.resolve())
    return folder.resolve()


@pytest.fixture(scope="session")
def prepared_gemma3() -> Path:
    """`resources/models/gemma3-270m` (the embedded Gemma 3 270M base model), prepared once and cached (~1-3 min)."""
    from infscale.models import ModelConfig
    from infscale.models.prepare_model import prepare_model

    folder = TEST_CACHE / "models" / "gemma3-270m"
    if not (folder / "model.json").exists():
        prepare_model(ModelConfig("gemma3-270m", "embedded", "gemma3-270m"), folder.resolve())
    return folder.resolve()


@pytest.fixture(scope="session")
def smollm2_checkpoint(prepared_smollm2: Path) -> Path:
    """Folder of the fp32 HF checkpoint of the embedded SmolLM2-135M-Instruct."""
    return prepared_smollm2 / "checkpoint"


class Workflow:
    """A Snakemake workdir with the prepared model linked in; `run` invokes the real snakemake CLI."""

    def __init__(self, root: Path, config: dict, models: dict[str, Path] | None = None):
        """`models`: prepared model folders (e.g. the `prepared_smollm2` fixture) linked in as
        `resources/models/{name}`, so the workflow reuses them instead of converting again."""
        self.root = root
        self.config_path = root / "config.yaml"
        for name, folder in (models or {}).items():
            link = root / "resources" / "models" / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(folder, target_is_directory=True)
        self.write_config(config)

    def write_config(self, config: dict) -> None:
        self.config = config
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def run(self, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
        cmd = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(self.root),
               "--configfile", str(self.config_path), "--cores", "2", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
        return proc

    def dry_run_jobs(self, *args: str) -> dict[str, int]:
        """Rule -> job count of what a real run would execute now (from the dry run's job stats table)."""
        proc = self.run("--dry-run", *args)
        out = proc.stdout + proc.stderr
        if "Nothing to be done" in out:
            return {}
        stats = out.split("Job stats:", 1)[1]
        jobs = {}
        for line in stats.splitlines()[3:]:
            match = re.match(r"^(\w+)\s+(\d+)\s*$", line.strip())
            if not match:
                break
            if match.group(1) != "total":
                jobs[match.group(1)] = int(match.group(2))
        return jobs

    def path(self, relative: str) -> Path:
        return self.root / relative


@pytest.fixture
def tiny_workflow(tmp_path: Path, prepared_smollm2: Path) -> Workflow:
    return Workflow(tmp_path, yaml.safe_load(TINY_CONFIG.read_text()), models={"smollm2-135m": prepared_smollm2})


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, prepared_smollm2: Path) -> Workflow:
    """The tiny config run once end to end; tests read its outputs (and must not modify them)."""
    return run_config(tmp_path_factory.mktemp("tiny-run"), TINY_CONFIG, {"smollm2-135m": prepared_smollm2})


def run_config(root: Path, config_path: Path, models: dict[str, Path]) -> Workflow:
    """A workflow of `config_path`'s config in `root` with `models` linked, run once end to end."""
    workflow = Workflow(root, yaml.safe_load(config_path.read_text()), models=models)
    workflow.run()
    return workflow


def copy_workflow(source: Workflow, destination: Path) -> Workflow:
    """An independent copy of a finished workdir (outputs and Snakemake metadata), to change and rerun."""
    shutil.copytree(source.root, destination, symlinks=True)
    return Workflow(destination, source.config)


# --- shared by test_grading.py and the tests of the modules that use it ---


GSM8K_TEST = Path(__file__).resolve().parents[1] / "data" / "gsm8k" / "test.jsonl"


@pytest.fixture(scope="module")
def gsm8k_rows() -> list[dict]:
    return read_jsonl(GSM8K_TEST)


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


RESPONSES = [
    {"id": "a", "sample": 0, "completion": " 18\nQ: more", "answer": "18"},
    {"id": "a", "sample": 1, "completion": "The answer is 17.", "answer": "18"},
    {"id": "b", "sample": 0, "completion": "It is 3/4, I think", "answer": "0.75"},
    {"id": "c", "sample": 0, "completion": "no idea", "answer": "B"},
]


# --- shared by test_estimators.py and the tests of the modules that use it ---


POOL_SPEC = {  # question -> (extracted answers, confidences, reference)
    "q1": (["4", "4", "5", None], [0.9, 0.2, 0.8, 0.1], "4"),
    "q2": (["x", "y", "y", "y"], [0.3, 0.6, 0.1, 0.2], "x"),
    "q3": ([None, "7", "7", "8"], [0.5, 0.5, 0.4, 0.9], "7"),
}


def _pool_frame() -> pd.DataFrame:
    return pd.DataFrame([
        {"id": qid, "sample": sample, "extracted": a, "correct": a == reference, "confidence": c}
        for qid, (answers, conf, reference) in POOL_SPEC.items()
        for sample, (a, c) in enumerate(zip(answers, conf))
    ])


def _write_votes(path, pool: pd.DataFrame, drop_confidence_at: int | None = None):
    with open(path, "w", encoding="utf-8") as handle:
        for i, r in enumerate(pool.itertuples()):
            answer = None if pd.isna(r.extracted) else r.extracted  # pandas stores None as NaN
            record = {"question_id": r.id, "answer": answer, "correct": bool(r.correct), "confidence": r.confidence}
            if i == drop_confidence_at:
                del record["confidence"]
            handle.write(json.dumps(record) + "\n")


# --- shared by test_efficiency.py and the tests of the modules that use it ---


SEED000 = [
    ("Baseline", 10.16, 11.22, 52.47, 0.91, 0.19, 17.29),
    ("QuietSTaR", 32.03, 12.73, 554.66, 2.52, 0.06, 15.12),
    ("REBASE+QuietSTaR", 9.38, 4.25, 143.66, 2.21, 0.07, 15.47),
    ("REBASE w=3", 10.94, 2.35, 8.47, 4.66, 1.29, 601.14),
    ("REBASE w=6", 10.16, 4.96, 17.82, 2.05, 0.57, 116.85),
    ("REBASE w=16", 12.50, 13.57, 46.90, 0.92, 0.27, 24.84),
]


def _seed_inputs() -> pd.DataFrame:
    return pd.DataFrame([row[:4] for row in SEED000], columns=["method", "accuracy", "tflops", "seconds"])


# --- shared by test_cot_scaling.py and the tests of the modules that use it ---


STUDY_TABLE = Path(__file__).parent / "data" / "seed004" / "study_models.csv"
