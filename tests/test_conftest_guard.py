"""The suite's own guard: a test that loads a model without the `slow` mark is refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run_pytest(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    (tmp_path / "test_probe.py").write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path)


def test_unmarked_test_using_a_model_fixture_is_refused_at_collection(tmp_path):
    proc = _run_pytest(tmp_path, """
        def test_forgot_the_mark(prepared_smollm2):
            pass
    """)
    assert proc.returncode != 0
    assert "must be marked @pytest.mark.slow" in proc.stdout + proc.stderr
    assert "test_forgot_the_mark" in proc.stdout + proc.stderr


def test_unmarked_test_opening_model_files_fails(tmp_path):
    proc = _run_pytest(tmp_path, """
        import json
        import pytest

        def _fake_checkpoint(folder):
            folder.mkdir()
            (folder / "model.safetensors").write_bytes(b"")
            (folder / "config.json").write_text("{}")
            return folder

        def test_reads_a_checkpoint(tmp_path):
            json.loads((_fake_checkpoint(tmp_path / "ckpt") / "config.json").read_text())

        @pytest.mark.slow
        def test_marked_may(tmp_path):
            json.loads((_fake_checkpoint(tmp_path / "ckpt") / "config.json").read_text())
    """)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "1 error" in out and "failed" not in out, out   # the fast one errs at teardown
    assert "test_reads_a_checkpoint" in out and "not marked @pytest.mark.slow" in out
