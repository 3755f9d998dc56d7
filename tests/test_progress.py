"""Per-job progress (issue 17): questions done / total and tokens/s in the job log, a bar on a terminal."""

from __future__ import annotations

import io
import logging

from infscale.pipeline import logged
from infscale.progress import Progress


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_logs_counts_and_token_rate(caplog):
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger="infscale.progress"):
        with Progress(4, "smollm2/sample16", log_every=10, clock=clock, terminal=None) as progress:
            clock.now += 5
            progress.update(1, 50)            # 5 s < log_every: no line yet
            clock.now += 5
            progress.update(1, 50)            # 10 s: a line
            assert progress.tokens_per_second() == 10.0
            clock.now += 10
            progress.update(2, 100)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "smollm2/sample16: 4 questions to do"
    assert lines[1].startswith("smollm2/sample16: 2/4 questions (50%), 100 tokens, 10.0 tokens/s, 10 s, ~10 s left")
    assert lines[-1].startswith("done: smollm2/sample16: 4/4 questions (100%), 200 tokens, 10.0 tokens/s, 20 s")
    assert len(lines) == 4  # start, 10 s, 20 s, done


def test_progress_bar_only_on_a_terminal(tmp_path):
    terminal = FakeTerminal()
    with Progress(3, "label gemma3", unit="response", terminal=terminal) as progress:
        progress.update(3, 30)
    assert "label gemma3" in terminal.getvalue() and "3/3" in terminal.getvalue()
    # inside a job (`logged`), progress lines reach the job's log file
    with logged(tmp_path / "job.log"):
        with Progress(2, "score value-head", unit="response", log_every=0) as progress:
            progress.update(2, 10)
    text = (tmp_path / "job.log").read_text()
    assert "score value-head: 2/2 responses (100%), 10 tokens" in text
