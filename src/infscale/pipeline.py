"""Glue for `workflow/scripts/*.py`: route a job's logging, warnings and progress bars to its log file."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from infscale.io import writing_to


@contextlib.contextmanager
def logged(log_path: str | Path) -> Iterator[logging.Logger]:
    """Send stdout, stderr (tqdm), warnings and `logging` of the job to `log_path`; log failures with traceback."""
    log_path = Path(log_path)
    with writing_to(log_path):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = log_path.open("w", encoding="utf-8")
    with handle, contextlib.redirect_stdout(handle), \
            contextlib.redirect_stderr(handle):
        logging.basicConfig(stream=handle, level=logging.INFO, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.captureWarnings(True)
        logger = logging.getLogger("infscale.job")
        began = time.perf_counter()
        try:
            yield logger
        except BaseException:
            logger.exception("job failed")
            raise
        finally:
            logger.info("finished in %.1f s", time.perf_counter() - began)
            handle.flush()
    sys.stderr.flush()
