"""Atomic, resumable reading and writing of the pipeline's intermediate files (see docs/file-formats.md)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class RecordError(ValueError):
    """A JSONL file has a line that is not a JSON object; the message names the file and line."""


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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


class ResumableJsonlWriter:
    """Append records to `<output>.partial`, flushing per batch; `finish()` renames it to `<output>`.

    On construction the finished keys of an earlier, killed run are read back (`done`), so callers skip
    that work. A truncated last line from a kill mid-write is dropped.
    """

    def __init__(self, output: str | Path, key_fields: tuple[str, ...] = ("id",)):
        self.output = Path(output)
        self.partial = self.output.with_name(self.output.name + ".partial")
        self.key_fields = key_fields
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict[str, Any]] = []
        if self.partial.exists():
            self.records = list(iter_jsonl(self.partial, skip_truncated_last_line=True))
            # rewrite without a possibly truncated tail so appends start on a clean line
            write_jsonl(self.partial, self.records)
        self.done = {self.key(r) for r in self.records}
        self._handle = self.partial.open("a", encoding="utf-8")

    def key(self, record: dict[str, Any]) -> tuple:
        return tuple(record[f] for f in self.key_fields)

    def write_many(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.records.append(record)
            self.done.add(self.key(record))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def finish(self, sort_key=None) -> list[dict[str, Any]]:
        self._handle.close()
        records = sorted(self.records, key=sort_key) if sort_key else self.records
        write_jsonl(self.output, records)
        self.partial.unlink()
        return records

    def close(self) -> None:
        self._handle.close()
