"""The merge_shards stage: a method's generation shards -> one pool of responses and one timing file."""

from __future__ import annotations

from pathlib import Path

from infscale.io import read_json, read_jsonl, write_json, write_jsonl


def merge_shards(shard_paths: list[str | Path], timing_paths: list[str | Path], output: str | Path,
                 timing_output: str | Path) -> None:
    """Concatenate generation shards (checking no response appears twice) and sum their timings."""
    records, seen = [], set()
    for path in shard_paths:
        for record in read_jsonl(path):
            key = (record["id"], record["sample"])
            if key in seen:
                raise ValueError(f"{path}: response {key} also appears in an earlier shard")
            seen.add(key)
            records.append(record)
    write_jsonl(output, sorted(records, key=lambda r: (r["id"], r["sample"])))
    timings = [read_json(p) for p in timing_paths]
    write_json(timing_output, {
        "load_seconds": sum(t["load_seconds"] for t in timings),
        "generate_seconds": sum(t["generate_seconds"] for t in timings),
        "device": sorted({t["device"] for t in timings}),
        "torch_threads": max(t["torch_threads"] for t in timings),
        "n_shards": len(timings),
        **({"backend": timings[0]["backend"]} if "backend" in timings[0] else {}),
    })
