"""Datasets: seeded, disjoint test/train question files with stable ids (docs/file-formats.md)."""

from infscale.data.sample_dataset import DatasetConfig, build_splits, write_splits

__all__ = ["DatasetConfig", "build_splits", "write_splits"]
