import json

import pytest

from infscale.io import RecordError, ResumableJsonlWriter, atomic_open, read_jsonl, write_jsonl


def test_atomic_open_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"id": "a"}])
    with pytest.raises(RuntimeError):
        with atomic_open(path) as handle:
            handle.write("half")
            raise RuntimeError("killed")
    assert read_jsonl(path) == [{"id": "a"}]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_bad_line_error_names_file_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"id": 1}\n\n[1, 2]\n')
    with pytest.raises(RecordError, match=r"x.jsonl:3: expected a JSON object"):
        read_jsonl(path)
    path.write_text('{"id": 1}\n{"id": \n{"id": 3}\n')
    with pytest.raises(RecordError, match=r"x.jsonl:2: not valid JSON"):
        read_jsonl(path)


def test_resumable_writer_drops_truncated_tail_and_resumes(tmp_path):
    out = tmp_path / "gen.jsonl"
    writer = ResumableJsonlWriter(out, key_fields=("id", "sample"))
    writer.write_many([{"id": "q1", "sample": 0}, {"id": "q1", "sample": 1}])
    writer.close()
    with writer.partial.open("a") as handle:
        handle.write('{"id": "q2", "sa')                      # killed mid-write
    resumed = ResumableJsonlWriter(out, key_fields=("id", "sample"))
    assert resumed.done == {("q1", 0), ("q1", 1)}
    resumed.write_many([{"id": "q2", "sample": 0}])
    records = resumed.finish(sort_key=lambda r: (r["id"], r["sample"]))
    assert [json.loads(line) for line in out.read_text().splitlines()] == records
    assert [(r["id"], r["sample"]) for r in records] == [("q1", 0), ("q1", 1), ("q2", 0)]
    assert not resumed.partial.exists()
