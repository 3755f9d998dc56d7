"""profiles/slurm on a real single-node Slurm (scripts/slurm/local_slurm.sh): the tiny config runs
with every job submitted through sbatch, the GPU rules get a (fake) GPU, and the results equal a
local run's."""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY_CONFIG, Workflow
from infscale.io import read_json, read_jsonl

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SCRIPT = REPO / "scripts" / "slurm" / "local_slurm.sh"
PROFILE = REPO / "profiles" / "slurm"
# The rules profiles/slurm gives a GPU; every other rule must run without one.
GPU_RULES = {"generate", "score_prm", "label_confidence", "train_prm"}
# Fields that measure wall time: they differ between any two runs, local or not.
TIMING_KEYS = {"seconds", "load_seconds", "generate_seconds"}
# The plugin waits for Slurm forever when status queries fail; a hung run must still end the test.
RUN_TIMEOUT_S = 1200


def _slurm_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the local Slurm runs its daemons as root"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "Slurm is not installed and apt-get is not available to install it"
    return None


def _script(action: str, state: Path, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), action, str(state)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def local_slurm(tmp_path_factory: pytest.TempPathFactory):
    """A running single-node Slurm with accounting; its state folder. Stopped (by PID) at the end
    unless it was already running ($INFSCALE_SLURM_DIR names a cluster you started yourself)."""
    reason = _slurm_unavailable()
    if reason:
        pytest.skip(reason)
    own_state = not os.environ.get("INFSCALE_SLURM_DIR")
    state = tmp_path_factory.mktemp("slurm") if own_state else Path(os.environ["INFSCALE_SLURM_DIR"])
    already_running = _script("status", state).returncode == 0
    try:
        # first use on a fresh machine: apt-get install (~30 s) + start (~5 s)
        start = _script("start", state, timeout=600)
        if start.returncode != 0:
            logs = "".join(f"\n--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted((state / "log").glob("*.log")))
            pytest.fail(f"local Slurm did not start:\n{start.stdout}\n{start.stderr}{logs}")
        with pytest.MonkeyPatch.context() as env:
            env.setenv("SLURM_CONF", str(state / "etc" / "slurm.conf"))
            yield state
    finally:
        if not already_running:  # also after a failed start: whatever did start is stopped
            stop = _script("stop", state)
            assert stop.returncode == 0, stop.stderr
            if own_state:  # the accounting database (~100 MB); logs and configuration stay for inspection
                shutil.rmtree(state / "mysql", ignore_errors=True)


class SlurmRun:
    """The tiny config run with profiles/slurm, and Slurm's accounting records of its jobs."""

    def __init__(self, workflow: Workflow, proc: subprocess.CompletedProcess, expected_jobs: dict[str, int]):
        self.workflow = workflow
        self.log = proc.stdout + proc.stderr
        self.expected_jobs = expected_jobs
        match = re.search(r"SLURM run ID: (\S+)", self.log)
        assert match, f"no SLURM run ID in snakemake's output:\n{self.log[-4000:]}"
        self.run_id = match.group(1)
        self.records = self._sacct()

    def _sacct(self) -> list[dict[str, str]]:
        # The plugin names every job of a run after its run ID and comments it rule_<rule>_wildcards_<...>.
        fields = ["JobIDRaw", "JobName", "Comment", "State", "AllocTRES"]
        out = subprocess.run(
            ["sacct", "-X", "-P", "-n", "--starttime", "now-2days", "--name", self.run_id,
             "--format", ",".join(fields)],
            capture_output=True, text=True, check=True, timeout=60).stdout
        return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def slurm_run(local_slurm: Path, tmp_path_factory: pytest.TempPathFactory, prepared_smollm2: Path) -> SlurmRun:
    root = tmp_path_factory.mktemp("slurm-run")
    workflow = Workflow(root, yaml.safe_load(TINY_CONFIG.read_text()), models={"smollm2-135m": prepared_smollm2})
    expected_jobs = workflow.dry_run_jobs()
    # The only change to the profile: first status check after 5 s, not 20 s (jobs here take seconds).
    proc = workflow.run("--profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", "5",
                        timeout=RUN_TIMEOUT_S)
    return SlurmRun(workflow, proc, expected_jobs)


def _rule_of(record: dict[str, str]) -> str:
    match = re.fullmatch(r"rule_(\w+?)(_wildcards_.*)?", record["Comment"])
    assert match, f"unexpected job comment {record['Comment']!r}"
    return match.group(1)


def test_every_job_went_through_sbatch(slurm_run):
    assert slurm_run.records, f"Slurm has no jobs named {slurm_run.run_id}"
    assert {r["State"] for r in slurm_run.records} == {"COMPLETED"}
    submitted = Counter(_rule_of(r) for r in slurm_run.records)
    # `all` only collects inputs: Snakemake finishes it itself, with nothing to submit.
    expected = {rule: n for rule, n in slurm_run.expected_jobs.items() if rule != "all"}
    assert dict(submitted) == expected
    assert len(slurm_run.records) == slurm_run.log.count("has been submitted with SLURM jobid")


def test_gpu_rules_get_a_gpu_and_others_none(slurm_run):
    rules = {_rule_of(r) for r in slurm_run.records}
    assert "generate" in rules
    for record in slurm_run.records:
        tres = dict(item.split("=", 1) for item in record["AllocTRES"].split(","))
        if _rule_of(record) in GPU_RULES:
            assert tres.get("gres/gpu") == "1", record
            assert tres["mem"] == "32000M", record  # the profile's GPU-job memory
        else:
            assert "gres/gpu" not in tres, record
            assert tres["mem"] == "4000M", record  # the profile's default-resources


def _without_timing(value):
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def _same(a, b) -> bool:
    """Equal, with floats compared to 1e-9 relative (sums of per-sample FLOPs and times)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _records(root: Path, relative: str):
    path = root / relative
    if path.suffix == ".jsonl":
        return [_without_timing(r) for r in read_jsonl(path)]
    if path.suffix == ".json":
        return _without_timing(read_json(path))
    with path.open(newline="") as f:
        return [_without_timing(row) for row in csv.DictReader(f)]


def test_results_equal_a_local_run(slurm_run, tiny_run):
    """Generation is seeded, so every record matches the local run's except wall-time fields (and
    the efficiency table, whose ranking is built on wall time)."""
    local, remote = tiny_run.root, slurm_run.workflow.root
    compared = sorted(
        str(p.relative_to(local)) for pattern in ("results/**/*.jsonl", "results/gen/**/*.json",
                                                  "results/metrics/**/*.json", "results/tables/accuracy.csv")
        for p in local.glob(pattern))
    assert any("/gen/" in p for p in compared) and any("/graded/" in p for p in compared)
    for relative in compared:
        assert (remote / relative).exists(), f"the Slurm run did not write {relative}"
        a, b = _records(local, relative), _records(remote, relative)
        assert _same(a, b), f"{relative} differs between the local and the Slurm run"
