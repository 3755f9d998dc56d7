"""Atomic, resumable reading and writing of the pipeline's intermediate files (see docs/file-formats.md)."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


log = logging.getLogger(__name__)


class RecordError(ValueError):
    """A JSONL file has a line that is not a JSON object; the message names the file and line."""


class ResultsNotWritable(OSError):
    """An output cannot be written (read-only folder, disk full, no permission); nothing half-written is left."""


# the errors that mean "this folder cannot take the file", as opposed to a bug
_NOT_WRITABLE = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}


@contextlib.contextmanager
def writing_to(path: Path) -> Iterator[None]:
    """Turn a full disk or read-only folder into one clear error naming the output."""
    try:
        yield
    except OSError as err:
        if err.errno not in _NOT_WRITABLE or isinstance(err, ResultsNotWritable):
            raise
        raise ResultsNotWritable(err.errno, f"cannot write {path}: {os.strerror(err.errno)} (free space or make "
                                            f"the folder writable, then rerun: finished work is kept)") from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    return list(iter_jsonl(path))


def iter_jsonl(path: str | Path, *, skip_truncated_last_line: bool = False) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a JSONL file.

    A bad line raises RecordError naming file and line. With skip_truncated_last_line, an unparseable
    final line (a job killed mid-write) is ignored instead, which is how `.partial` files are resumed.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        lines = handle.readlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if skip_truncated_last_line and number == len(lines):
                return
            raise RecordError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise RecordError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield record


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[Any]:
    """Open a temp file beside `path`; on success fsync and rename it over `path`, else remove it."""
    path = Path(path)
    with writing_to(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with writing_to(path):
            with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    with atomic_open(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_open(path) as handle:
        json.dump(obj, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def read_json(path: str | Path) -> Any:
    with Path(path).open(encoding="utf-8") as handle:
        return json.load(handle)


RESUME_HEADER = "__resume__"     # first line of a partial file: {"__resume__": {"fingerprint": ...}}


def remove_finished_partials(folder: str | Path) -> list[Path]:
    """Delete every `<output>.partial` under `folder` whose output exists (run when a workflow succeeded)."""
    removed = []
    for partial in Path(folder).rglob("*.partial"):
        if partial.with_name(partial.name.removesuffix(".partial")).exists():
            partial.unlink()
            removed.append(partial)
    return removed


class ResumableJsonlWriter:
    """Keep finished records in `<output>.partial`, replaced atomically per batch; `finish()` writes `<output>`.

    On construction the finished keys of an earlier, killed run are read back (`done`), so callers skip
    that work. The partial file always holds whole batches (a kill leaves the previous version), so a
    question is never half there; a truncated last line (from writers before this scheme) is dropped.

    `fingerprint` identifies what the job computes (its code, parameters, inputs, library versions:
    `infscale.provenance.job_fingerprint`); it heads the partial file, and a partial file from a job with
    another fingerprint is discarded, never resumed. `finish()` keeps the (complete) partial file: a kill after
    the output is written but before Snakemake records the job as done makes Snakemake rerun the job, which
    then finds every record here. The workflow removes partial files beside finished outputs when a run
    succeeds (`remove_finished_partials`).
    """

    def __init__(self, output: str | Path, key_fields: tuple[str, ...] = ("id",), fingerprint: str | None = None):
        self.output = Path(output)
        self.partial = self.output.with_name(self.output.name + ".partial")
        self.key_fields = key_fields
        self.fingerprint = fingerprint
        with writing_to(self.output):
            self.output.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict[str, Any]] = []
        if self.partial.exists():
            records = list(iter_jsonl(self.partial, skip_truncated_last_line=True))
            header = records.pop(0)[RESUME_HEADER] if records and RESUME_HEADER in records[0] else None
            if header is not None and header.get("fingerprint") != fingerprint:
                log.warning("%s: made by a job with other code, parameters or inputs; discarded, not resumed",
                            self.partial)
            else:  # same job, or a partial file from before fingerprints (no header)
                self.records = records
                self._rewrite(self.records)  # without a possibly truncated tail, under this job's header
        self.done = {self.key(r) for r in self.records}
        self.n_resumed = len(self.records)    # finished by an earlier, killed run: kept, not redone

    def _rewrite(self, records: list[dict[str, Any]]) -> None:
        header = [{RESUME_HEADER: {"fingerprint": self.fingerprint}}] if self.fingerprint else []
        write_jsonl(self.partial, header + records)

    def key(self, record: dict[str, Any]) -> tuple:
        return tuple(record[f] for f in self.key_fields)

    def write_many(self, records: Iterable[dict[str, Any]]) -> None:
        """Add one batch. The partial file is rewritten whole (atomic rename): a kill mid-batch keeps the
        file as it was before the batch, never part of it (the rewrite costs O(size) per batch)."""
        records = list(records)
        self._rewrite(self.records + records)
        self.records += records
        self.done |= {self.key(r) for r in records}

    def finish(self, sort_key=None) -> list[dict[str, Any]]:
        records = sorted(self.records, key=sort_key) if sort_key else self.records
        write_jsonl(self.output, records)
        # benchmarks/kill_resume.py reads this line from the job log
        log.info("%s: %d records kept from an earlier run, %d written by this run", self.output, self.n_resumed,
                 len(records) - self.n_resumed)
        return records

    def close(self) -> None:
        """Nothing is held open between batches; kept for callers that stop early."""
