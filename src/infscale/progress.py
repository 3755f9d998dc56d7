"""Progress a user can watch on long jobs: questions (or responses) done / total and tokens per second.

A job's `logging` goes to its log file (`pipeline.logged`), so `Progress` writes a progress line there every
`log_every` seconds and at the end (`tail -f logs/...` shows it). When the job was started from a terminal,
a tqdm bar is drawn on that terminal too (the real stderr, which `logged` redirects away from).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from tqdm import tqdm

log = logging.getLogger(__name__)


def _terminal() -> TextIO | None:
    """The process's original stderr when it is an interactive terminal, else None."""
    stream = sys.__stderr__
    try:
        return stream if stream is not None and stream.isatty() else None
    except (AttributeError, ValueError):
        return None


class Progress:
    """`with Progress(total, "smollm2/sample16") as p: ... p.update(n_items, n_tokens)`."""

    def __init__(self, total: int, desc: str, unit: str = "question", log_every: float = 30.0,
                 terminal: TextIO | None = None, clock=time.perf_counter):
        self.total, self.desc, self.unit, self.log_every = int(total), desc, unit, log_every
        self.done = 0
        self.tokens = 0
        self._clock = clock
        self._began = self._last_log = clock()
        stream = terminal if terminal is not None else _terminal()
        self._bar = tqdm(total=self.total, desc=desc, unit=unit, file=stream, disable=stream is None,
                         dynamic_ncols=True)

    def __enter__(self) -> "Progress":
        log.info("%s: %d %ss to do", self.desc, self.total, self.unit)
        return self

    def __exit__(self, *exc) -> None:
        self._bar.close()
        self._log(final=exc[0] is None)

    def tokens_per_second(self) -> float:
        elapsed = self._clock() - self._began
        return self.tokens / elapsed if elapsed > 0 else 0.0

    def update(self, items: int, tokens: int = 0) -> None:
        self.done += int(items)
        self.tokens += int(tokens)
        self._bar.update(int(items))
        self._bar.set_postfix_str(f"{self.tokens_per_second():.1f} tok/s", refresh=False)
        if self._clock() - self._last_log >= self.log_every:
            self._log()

    def line(self) -> str:
        elapsed = self._clock() - self._began
        share = self.done / self.total if self.total else 1.0
        remaining = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        eta = f", ~{remaining:.0f} s left" if self.done and self.done < self.total else ""
        return (f"{self.desc}: {self.done}/{self.total} {self.unit}s ({100 * share:.0f}%), "
                f"{self.tokens} tokens, {self.tokens_per_second():.1f} tokens/s, {elapsed:.0f} s{eta}")

    def _log(self, final: bool = False) -> None:
        self._last_log = self._clock()
        log.info("%s%s", "done: " if final else "", self.line())
