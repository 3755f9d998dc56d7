"""The `llamacpp` backend: llama.cpp (through llama-cpp-python's C API) on a GGUF of the model, with the `hf`
sampler's record contract and random streams.

llama.cpp only computes logits here. Sampling is the `hf` sampler's own loop (`infscale.models.hf.decode_rows`:
`sample_next` from the same seeded torch streams, the same EOS and stop-string rules), so with an fp32 GGUF a
llamacpp run reproduces the `hf` run up to floating-point ties, and a quantised one differs only where the
quantised logits do (docs/performance.md measures both).

One `sample` call decodes its prompts in one llama.cpp context, one sequence per sample (at most
`MAX_SEQUENCES` rows a context, chunked by prompt beyond): the prompts' shared few-shot prefix is encoded once
and copied to every prompt's sequence, each prompt's own tokens once and copied to its other samples
(`llama_memory_seq_cp`), and finished sequences are dropped as they end, as the `hf` sampler does with its
KV cache.
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infscale.models.hf import Continuation, SamplingParams, decode_rows, eos_token_ids, shared_prefix_length

MAX_SEQUENCES = 256          # llama.cpp's LLAMA_MAX_SEQ: the sequences one context can hold
LLAMACPP_VERSION = "0.3.36"  # llama-cpp-python, built from source by `make setup` (about 3.5 min on 2 cores)
CELL_ROUNDING = 256          # llama.cpp pads a sequence's KV cells to a multiple of 256
GGML_TYPE_F32 = 0            # ggml's type id of float32 (for the KV cache)


def llamacpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


_log_callback: Any = None


def _quiet_logs() -> None:
    """llama.cpp logs every load at length to stderr: pass on its warnings and errors only."""
    global _log_callback
    import llama_cpp

    if _log_callback is not None:
        return

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: Any) -> None:
        if level in (3, 4):                      # GGML_LOG_LEVEL_WARN, GGML_LOG_LEVEL_ERROR
            sys.stderr.write(text.decode(errors="replace"))

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    _log_callback = callback                     # ctypes frees a callback nothing refers to


class LlamaWeights:
    """A GGUF model loaded by llama.cpp (once per job); `context` makes the KV caches that decode with it."""

    def __init__(self, gguf: str | Path, compute_type: str) -> None:
        import llama_cpp

        _quiet_logs()
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        # llama.cpp's AMX matmul, an "extra buffer type" it picks on Sapphire Rapids CPUs, crashed here on
        # SmolLM2's Q4_1, Q4_0 and Q8_0 weights (SIGSEGV in ggml_backend_amx_mul_mat): plain CPU kernels
        params.use_extra_bufts = False
        self.model = llama_cpp.llama_model_load_from_file(str(gguf).encode(), params)
        if not self.model:
            raise ValueError(f"llama.cpp could not load the GGUF {gguf}")
        self.vocab_size = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model))
        self.path = str(gguf)
        # llama.cpp keeps K and V in float16 and its CPU flash attention rounds through float16: float32
        # weights get a float32 cache and plain attention, so the engine computes what fp32 `hf` computes
        # (labels agree to 1e-4 then; with flash attention they differed by 1e-3)
        self.float32_attention = compute_type == "float32"

    def context(self, n_sequences: int, cells_per_sequence: int, threads: int, n_batch: int = 512) -> "LlamaContext":
        return LlamaContext(self, n_sequences, cells_per_sequence, threads, n_batch)

    def __del__(self) -> None:
        if getattr(self, "model", None) and sys.meta_path is not None:    # not while Python shuts down
            import llama_cpp

            llama_cpp.llama_model_free(self.model)
            self.model = None


class LlamaContext:
    """One KV cache of `n_sequences` sequences, `cells_per_sequence` tokens each (one cache stream per sequence:
    measured faster here than llama.cpp's unified cache, whose attention spans every sequence's cells);
    `decode` feeds tokens of any sequences and returns the logits asked for."""

    def __init__(self, weights: LlamaWeights, n_sequences: int, cells_per_sequence: int, threads: int,
                 n_batch: int) -> None:
        import llama_cpp

        if not 1 <= n_sequences <= MAX_SEQUENCES:
            raise ValueError(f"a llama.cpp context holds 1 to {MAX_SEQUENCES} sequences, not {n_sequences}")
        cells = -(-cells_per_sequence // CELL_ROUNDING) * CELL_ROUNDING
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = cells * n_sequences, n_batch, n_batch
        params.n_seq_max, params.kv_unified, params.no_perf = n_sequences, False, True
        params.n_threads = params.n_threads_batch = threads
        if weights.float32_attention:
            params.type_k = params.type_v = GGML_TYPE_F32
            params.flash_attn_type = 0      # LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.weights = weights
        self.ctx = llama_cpp.llama_init_from_model(weights.model, params)
        if not self.ctx:
            raise MemoryError(f"llama.cpp could not make a KV cache of {n_sequences} x {cells} tokens")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_batch = n_batch
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._tokens = np.ctypeslib.as_array(self.batch.token, shape=(n_batch,))
        self._positions = np.ctypeslib.as_array(self.batch.pos, shape=(n_batch,))
        self._wants = np.ctypeslib.as_array(self.batch.logits, shape=(n_batch,))
        np.ctypeslib.as_array(self.batch.n_seq_id, shape=(n_batch,))[:] = 1
        self._sequence_slots = [self.batch.seq_id[i] for i in range(n_batch)]

    def close(self) -> None:
        import llama_cpp

        if self.ctx:
            llama_cpp.llama_batch_free(self.batch)
            llama_cpp.llama_free(self.ctx)
            self.ctx = None

    def __enter__(self) -> "LlamaContext":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def decode(self, tokens: list[int], positions: list[int], sequences: list[int], wants: list[bool]
               ) -> torch.Tensor:
        """Feed token i at `positions[i]` of sequence `sequences[i]`, `n_batch` tokens per llama.cpp call;
        returns the float32 logits [sum(wants), vocab] of the tokens whose `wants` is set, in their order."""
        import llama_cpp

        vocab, out = self.weights.vocab_size, []
        for start in range(0, len(tokens), self.n_batch):
            end = min(start + self.n_batch, len(tokens))
            count = end - start
            self._tokens[:count] = tokens[start:end]
            self._positions[:count] = positions[start:end]
            self._wants[:count] = wants[start:end]
            for slot, sequence in zip(self._sequence_slots, sequences[start:end]):
                slot[0] = sequence
            self.batch.n_tokens = count
            status = llama_cpp.llama_decode(self.ctx, self.batch)
            if status != 0:
                raise RuntimeError(f"llama_decode failed (status {status}; 1 means the KV cache is full)")
            n_out = int(np.count_nonzero(self._wants[:count]))
            if n_out:
                logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(self.ctx), shape=(n_out, vocab))
                out.append(torch.from_numpy(logits.copy()))    # llama.cpp reuses its buffer on the next call
        return torch.cat(out) if out else torch.zeros(0, vocab)

    def copy_sequence(self, source: int, target: int) -> None:
        import llama_cpp

        llama_cpp.llama_memory_seq_cp(self.memory, source, target, -1, -1)

    def drop_sequence(self, sequence: int) -> None:
        import llama_cpp

        llama_cpp.llama_memory_seq_rm(self.memory, sequence, -1, -1)


@dataclass
class LlamaCppModel:
    """A model run by llama.cpp on CPU (the `llamacpp` backend) with the `hf` sampler's loop and record contract."""

    weights: LlamaWeights
    tokenizer: Any
    spec: dict[str, Any]
    load_seconds: float
    compute_type: str
    threads: int
    eos: set[int]
    device_name: str = "cpu"
    backend: str = "llamacpp"
    device: Any = field(default_factory=lambda: torch.device("cpu"))

    @property
    def eos_token_ids(self) -> set[int]:
        return self.eos

    def describe(self) -> dict[str, Any]:
        import llama_cpp

        return {"backend": "llamacpp", "engine_version": f"llama-cpp-python {llama_cpp.__version__}",
                "compute_type": self.compute_type, "threads": self.threads, "gguf": self.weights.path}

    def sample(self, prompts: list[str], n: int, params: SamplingParams, generator: Any = None,
               keys: list[tuple[Any, ...]] | None = None) -> list[list[Continuation]]:
        """`n` continuations of every prompt, drawn as the `hf` sampler draws them (`generator`: one torch
        stream, or one per row, prompt-major; `keys` unused). Prompts are decoded `MAX_SEQUENCES // n` at a
        time; each chunk gets its rows' streams, so a row's draws do not depend on the chunking."""
        if n > MAX_SEQUENCES:
            raise ValueError(f"the llamacpp backend samples at most {MAX_SEQUENCES} continuations of a prompt "
                             f"in one call, not {n}")
        per_chunk = MAX_SEQUENCES // n
        results: list[list[Continuation]] = []
        for start in range(0, len(prompts), per_chunk):
            chunk = prompts[start:start + per_chunk]
            streams = generator[start * n:(start + len(chunk)) * n] if isinstance(generator, list) else generator
            results += self._sample_chunk(chunk, n, params, streams)
        return results

    def _sample_chunk(self, prompts: list[str], n: int, params: SamplingParams, generator: Any
                      ) -> list[list[Continuation]]:
        tok = self.tokenizer
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        lengths = [len(x) for x in ids]
        shared = shared_prefix_length(ids)
        rows = len(prompts) * n
        with self.weights.context(rows, max(lengths) + params.max_new_tokens + 1, self.threads) as ctx:
            # the shared prefix once, into prompt 0's sequence, then copied to every prompt's first row
            if shared:
                ctx.decode(ids[0][:shared], list(range(shared)), [0] * shared, [False] * shared)
                for p in range(1, len(prompts)):
                    ctx.copy_sequence(0, p * n)
            tokens, positions, sequences, wants = [], [], [], []
            for p, x in enumerate(ids):
                own = x[shared:]
                tokens += own
                positions += range(shared, len(x))
                sequences += [p * n] * len(own)
                wants += [False] * (len(own) - 1) + [True]
            logits = ctx.decode(tokens, positions, sequences, wants)
            for p in range(len(prompts)):
                for s in range(1, n):
                    ctx.copy_sequence(p * n, p * n + s)
            logits = logits.repeat_interleave(n, dim=0)
            live = list(range(rows))                              # the sequence of each batch row
            next_positions = [length for length in lengths for _ in range(n)]

            def feed(new: torch.Tensor, keep: list[int]) -> tuple[torch.Tensor, list[int]]:
                nonlocal live, next_positions
                kept = set(keep)
                for batch_row, sequence in enumerate(live):
                    if batch_row not in kept:
                        ctx.drop_sequence(sequence)
                live = [live[b] for b in keep]
                next_positions = [next_positions[b] for b in keep]
                out = ctx.decode(new[keep].tolist(), next_positions, live, [True] * len(keep))
                next_positions = [position + 1 for position in next_positions]
                return out, keep

            return decode_rows(logits, prompts, lengths, shared, n, params, generator, self.eos, tok, feed)

    def next_token_logits(self, prefix_ids: list[int], suffix_ids: list[list[int]]) -> torch.Tensor:
        """Logits [len(suffix_ids), vocab] of the token after prefix + each suffix (labelling): the prefix is
        encoded once and copied to each suffix's sequence."""
        if not prefix_ids or any(not x for x in suffix_ids):
            raise ValueError("next_token_logits: the prefix and every suffix need at least one token")
        longest = len(prefix_ids) + max(len(x) for x in suffix_ids)
        rows = min(len(suffix_ids), MAX_SEQUENCES - 1)
        out = []
        for start in range(0, len(suffix_ids), rows):
            chunk = suffix_ids[start:start + rows]
            with self.weights.context(len(chunk) + 1, longest + 1, self.threads) as ctx:
                ctx.decode(prefix_ids, list(range(len(prefix_ids))), [0] * len(prefix_ids),
                           [False] * len(prefix_ids))
                tokens, positions, sequences, wants = [], [], [], []
                for i, suffix in enumerate(chunk, start=1):
                    ctx.copy_sequence(0, i)
                    tokens += suffix
                    positions += range(len(prefix_ids), len(prefix_ids) + len(suffix))
                    sequences += [i] * len(suffix)
                    wants += [False] * (len(suffix) - 1) + [True]
                out.append(ctx.decode(tokens, positions, sequences, wants))
        return torch.cat(out)


def load_llamacpp(spec: dict[str, Any], gguf: str | Path, compute_type: str, threads: int) -> LlamaCppModel:
    """The llamacpp engine on `gguf` (rule convert_model's file for this compute type), with the checkpoint's
    tokenizer and EOS ids (the GGUF's vocabulary: the embedded checkpoints were made from these GGUFs)."""
    from transformers import AutoTokenizer

    began = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(spec["path"], revision=spec.get("revision"))
    weights = LlamaWeights(gguf, compute_type)
    return LlamaCppModel(weights, tokenizer, spec, time.perf_counter() - began, compute_type, threads,
                         eos_token_ids(tokenizer, spec["path"]))
