"""infscale.merge_shards: a method's generation shards -> one pool and one timing file."""

from __future__ import annotations

import pytest

from infscale.io import read_json, read_jsonl, write_json, write_jsonl
from infscale.merge_shards import merge_shards


def _shard(tmp_path, k, keys, seconds, device="cpu"):
    write_jsonl(tmp_path / f"s{k}.jsonl", [{"id": i, "sample": s} for i, s in keys])
    write_json(tmp_path / f"s{k}.timing.json", {"load_seconds": 1.0, "generate_seconds": seconds, "device": device,
                                                "torch_threads": k + 1})
    return tmp_path / f"s{k}.jsonl", tmp_path / f"s{k}.timing.json"


def test_shards_are_concatenated_sorted_and_their_timings_summed(tmp_path):
    (a, ta), (b, tb) = _shard(tmp_path, 0, [("q2", 0), ("q2", 1)], 2.0), _shard(tmp_path, 1, [("q1", 0)], 3.0, "cuda:0")
    merge_shards([a, b], [ta, tb], tmp_path / "all.jsonl", tmp_path / "timing.json")
    assert [(r["id"], r["sample"]) for r in read_jsonl(tmp_path / "all.jsonl")] == [("q1", 0), ("q2", 0), ("q2", 1)]
    assert read_json(tmp_path / "timing.json") == {"load_seconds": 2.0, "generate_seconds": 5.0,
                                                   "device": ["cpu", "cuda:0"], "torch_threads": 2, "n_shards": 2}


def test_a_response_in_two_shards_is_an_error(tmp_path):
    (a, ta), (b, tb) = _shard(tmp_path, 0, [("q1", 0)], 1.0), _shard(tmp_path, 1, [("q1", 0)], 1.0)
    with pytest.raises(ValueError, match=r"s1.jsonl: response \('q1', 0\) also appears in an earlier shard"):
        merge_shards([a, b], [ta, tb], tmp_path / "all.jsonl", tmp_path / "timing.json")
