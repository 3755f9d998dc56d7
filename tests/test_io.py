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
    # the partial file stays, complete, until the workflow succeeds (remove_finished_partials)
    assert {(r["id"], r["sample"]) for r in read_jsonl(resumed.partial)} == {(r["id"], r["sample"]) for r in records}


def _fail_with(monkeypatch, target: str, code: int):
    import errno
    import os

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(target, fail)
    return errno


@pytest.mark.parametrize("where, code", [("os.fsync", 28), ("tempfile.mkstemp", 30), ("os.replace", 13)],
                         ids=["disk-full", "read-only", "no-permission"])
def test_unwritable_results_give_one_clear_error_and_no_half_file(tmp_path, monkeypatch, where, code):
    from infscale.io import ResultsNotWritable, write_json

    final = tmp_path / "metrics.json"
    write_json(final, {"before": True})
    _fail_with(monkeypatch, where, code)
    with pytest.raises(ResultsNotWritable, match=rf"cannot write {final}: ") as info:
        write_jsonl(final, [{"id": i} for i in range(1000)])
    assert "\n" not in str(info.value)
    monkeypatch.undo()
    assert json.loads(final.read_text()) == {"before": True}          # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]   # no temp file left


def test_disk_full_mid_run_keeps_the_finished_batches(tmp_path, monkeypatch):
    from infscale.io import ResultsNotWritable

    out = tmp_path / "gen.jsonl"
    writer = ResumableJsonlWriter(out, key_fields=("id", "sample"))
    writer.write_many([{"id": "q1", "sample": 0}, {"id": "q1", "sample": 1}])
    _fail_with(monkeypatch, "os.fsync", 28)
    with pytest.raises(ResultsNotWritable, match="gen.jsonl.partial"):
        writer.write_many([{"id": "q2", "sample": 0}, {"id": "q2", "sample": 1}])
    monkeypatch.undo()
    assert not out.exists()
    resumed = ResumableJsonlWriter(out, key_fields=("id", "sample"))
    assert resumed.done == {("q1", 0), ("q1", 1)}                    # whole batches only, nothing of q2


def test_a_kill_mid_batch_leaves_the_partial_as_it_was(tmp_path, monkeypatch):
    """The partial file is replaced per batch, so a kill while writing never leaves half a batch."""
    out = tmp_path / "gen.jsonl"
    writer = ResumableJsonlWriter(out, key_fields=("id", "sample"))
    writer.write_many([{"id": "q1", "sample": 0}])
    before = writer.partial.read_bytes()

    class Killed(BaseException):
        pass

    def killed_mid_write(*args):
        raise Killed
    monkeypatch.setattr("os.fsync", killed_mid_write)
    with pytest.raises(Killed):
        writer.write_many([{"id": "q2", "sample": s} for s in range(4)])
    monkeypatch.undo()
    assert writer.partial.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen.jsonl.partial"]


def test_a_partial_file_from_another_job_is_discarded_not_resumed(tmp_path):
    out = tmp_path / "gen.jsonl"
    first = ResumableJsonlWriter(out, key_fields=("id", "sample"), fingerprint="temperature-1.0")
    first.write_many([{"id": "q1", "sample": 0, "text": "old"}])
    same = ResumableJsonlWriter(out, key_fields=("id", "sample"), fingerprint="temperature-1.0")
    assert same.done == {("q1", 0)}
    other = ResumableJsonlWriter(out, key_fields=("id", "sample"), fingerprint="temperature-0.7")
    assert other.done == set()                       # changed parameters: nothing stale is kept
    other.write_many([{"id": "q1", "sample": 0, "text": "new"}])
    assert other.finish() == [{"id": "q1", "sample": 0, "text": "new"}]


def test_a_kill_after_finishing_resumes_everything(tmp_path):
    """Killed after the output is written but before Snakemake records the job: the rerun redoes nothing."""
    out = tmp_path / "gen.jsonl"
    writer = ResumableJsonlWriter(out, key_fields=("id", "sample"), fingerprint="f")
    writer.write_many([{"id": "q1", "sample": 0}, {"id": "q1", "sample": 1}])
    writer.finish()
    out.unlink()                                      # Snakemake removes an incomplete output before the rerun
    again = ResumableJsonlWriter(out, key_fields=("id", "sample"), fingerprint="f")
    assert again.n_resumed == 2 and again.done == {("q1", 0), ("q1", 1)}


def test_remove_finished_partials_keeps_those_of_unfinished_outputs(tmp_path):
    from infscale.io import remove_finished_partials

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "done.jsonl").write_text("")
    (tmp_path / "a" / "done.jsonl.partial").write_text("")
    (tmp_path / "a" / "killed.jsonl.partial").write_text("")
    assert remove_finished_partials(tmp_path) == [tmp_path / "a" / "done.jsonl.partial"]
    assert (tmp_path / "a" / "killed.jsonl.partial").exists()
