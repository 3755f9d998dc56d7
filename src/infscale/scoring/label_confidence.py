"""Confidence labels (seed 001): a labeller LM reads (question, response) and is asked for a confidence digit.

The label comes from the labeller's next-token distribution restricted to the ten digit tokens, read in one
forward pass per (question, response) — nothing is generated, so the label is deterministic and cheap:

    p_i = softmax(logits)[digit_i] / Σ_j softmax(logits)[digit_j]        i = 0..9
    argmax:    confidence = argmax_i p_i / 10          (the study: guided choice of ((0))..((9)), digit i -> i/10)
    expected:  confidence = Σ_i i·p_i / 10             (the default: uses the whole distribution, fewer ties)

An optional squash maps w -> 0.5 − ε + 2ε·w into [0.5 − ε, 0.5 + ε] (the study's "cut tail" w' = 0.1·w + 0.45
is ε = 0.05), which keeps a weighted vote close to a plain majority vote.

The prompt ends with the response, so the instruction and question before it are encoded once per question and
their KV cache shared by all its responses; identical responses are labelled once. The same code labels with the
sampling model itself ("self") or with another model ("proxy": a small model
samples, a larger one labels). Chat models get the question as a user turn and the answer prefix as the start
of their reply; base models get the plain text. Records follow docs/file-formats.md ("Score").
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from infscale.compute import ModelDims, sequence_flops
from infscale.io import ResumableJsonlWriter, read_json, read_jsonl
from infscale.fingerprint import job_fingerprint
from infscale.progress import Progress
from infscale.prompts import uses_chat_template
from infscale.schema import defaults

log = logging.getLogger(__name__)

MODES = ("expected", "argmax")
DIGITS = tuple(str(i) for i in range(10))

# The response comes last, so everything before it (instruction + question) is encoded once per question and its
# KV cache shared by all the question's responses: only the response and the answer prefix are new per label.
DEFAULT_TEMPLATE = (
    "Rate your confidence that the proposed answer to the question below is correct, with a single digit from "
    "0 (certainly wrong) to 9 (certainly correct).\n\n"
    "Question: {question}\n"
    "Proposed answer: {response}"
)
DEFAULT_ANSWER_PREFIX = "Confidence: "


_DEFAULTS = defaults("labelling")   # the schema's bounds and defaults of the `labelling:` section


@dataclass(frozen=True)
class LabellingConfig:
    """The `labelling:` config section (workflow/schemas/config.schema.yaml)."""

    mode: str = _DEFAULTS["mode"]          # expected | argmax
    epsilon: float | None = _DEFAULTS["epsilon"]   # squash into [0.5 − ε, 0.5 + ε]; None: no squash
    template: str = DEFAULT_TEMPLATE       # with {question} and {response}
    answer_prefix: str = DEFAULT_ANSWER_PREFIX  # text right before the digit (start of the labeller's reply)
    chat_template: str = _DEFAULTS["chat_template"]   # auto | always | never (as in prompts)
    batch_size: int = _DEFAULTS["batch_size"]         # (question, response) pairs per forward pass

    def __post_init__(self) -> None:
        # the schema bounds each key; what it cannot say (the template's fields) is checked here
        for key in ("{question}", "{response}"):
            if key not in self.template:
                raise ValueError(f"labelling.template: must contain {key}")

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> "LabellingConfig":
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"labelling: unknown key(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**cfg)


def confidence_from_probs(digit_probs: list[float] | torch.Tensor, mode: str = "expected",
                          epsilon: float | None = None) -> float:
    """A label in [0, 1] from the (normalised) probabilities of digits 0..9, optionally squashed."""
    probs = torch.as_tensor(digit_probs, dtype=torch.float64)
    if probs.shape != (10,):
        raise ValueError(f"digit_probs must hold 10 values, got shape {tuple(probs.shape)}")
    if mode == "argmax":
        value = int(probs.argmax()) / 10
    elif mode == "expected":
        value = float((probs * torch.arange(10, dtype=torch.float64)).sum() / probs.sum()) / 10
    else:
        raise ValueError(f"labelling.mode: expected one of {list(MODES)}, got {mode!r}")
    if epsilon is not None:
        value = 0.5 - epsilon + 2 * epsilon * value
    return value


def build_label_prompt(question: str, response: str, cfg: LabellingConfig, tokenizer: Any) -> str:
    """The labeller's input; the digit is the token that follows it."""
    body = cfg.template.format(question=question.strip(), response=response.strip())
    if uses_chat_template(cfg.chat_template, tokenizer, key="labelling.chat_template"):
        messages = [{"role": "user", "content": body}]
        head = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return head + cfg.answer_prefix
    return f"{body}\n{cfg.answer_prefix}"


_SLOT = "\x00RESPONSE\x00"


def split_label_prompt(question: str, response: str, cfg: LabellingConfig, tokenizer: Any) -> tuple[str, str]:
    """(prefix, suffix) of the labelling prompt around the start of the response: the prefix depends on the
    question only, so its KV cache is shared by every response to it. prefix + suffix == build_label_prompt."""
    with_slot = build_label_prompt(question, _SLOT, cfg, tokenizer)
    prefix, rest = with_slot.split(_SLOT, 1)
    return prefix, response.strip() + rest


def digit_token_ids(tokenizer: Any, prompt: str) -> list[int]:
    """Ids of the tokens "0".."9" as they follow `prompt`: tokenising prompt + digit must give the prompt's own
    tokens plus exactly one more (else the labeller could not answer with one token, and the label is undefined)."""
    base = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = []
    for digit in DIGITS:
        full = tokenizer(prompt + digit, add_special_tokens=False)["input_ids"]
        if len(full) != len(base) + 1 or full[: len(base)] != base:
            tail = tokenizer.convert_ids_to_tokens(full[len(base) - 1:])
            raise ValueError(f"labeller tokenizer: digit {digit!r} after the prompt's end {prompt[-20:]!r} is not "
                             f"one token (got {tail}); change labelling.answer_prefix (e.g. drop or add a space)")
        ids.append(full[-1])
    if len(set(ids)) != 10:
        raise ValueError(f"labeller tokenizer: digits 0-9 map to repeated token ids {ids}")
    return ids


def prefix_token_ids(tokenizer: Any, prefix: str) -> list[int]:
    """The prefix's tokens, with the tokenizer's BOS token in front when it uses one (Gemma does and degrades
    without it; SmolLM2's adds none) and the text does not already start with it (a chat template's BOS)."""
    ids = tokenizer(prefix, add_special_tokens=True)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and ids[:2] == [bos, bos]:
        ids = ids[1:]
    # special tokens the tokenizer appends at the end (EOS) would break the continuation
    plain = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    start = ids.index(plain[0]) if plain and plain[0] in ids else 0
    return ids[:start] + plain


@torch.inference_mode()
def label_group(lm: Any, prefix: str, suffixes: list[str], digit_ids: list[int]):
    """Digit distributions after prefix + each suffix: the prefix is encoded once and its KV cache repeated for the
    left-padded suffixes (their padding sits between prefix and suffix and is masked out).

    Returns (normalised digit probabilities [B, 10], digit mass [B], prefix tokens, suffix tokens per row).
    """
    if getattr(lm, "backend", "hf") != "hf":       # an engine (models.backend): the same tokens, its logits
        ids = prefix_token_ids(lm.tokenizer, prefix)
        suffix_ids = [lm.tokenizer(x, add_special_tokens=False)["input_ids"] for x in suffixes]
        probs = torch.softmax(lm.next_token_logits(ids, suffix_ids), dim=-1)[:, digit_ids]
        mass = probs.sum(-1)
        return probs / mass[:, None], mass, len(ids), [len(x) for x in suffix_ids]
    tok, model, device = lm.tokenizer, lm.model, lm.device
    prefix_ids = torch.tensor([prefix_token_ids(tok, prefix)], device=device)
    n_prefix = prefix_ids.shape[1]
    cache = model(input_ids=prefix_ids, use_cache=True, logits_to_keep=1).past_key_values
    cache.batch_repeat_interleave(len(suffixes))
    enc = tok(suffixes, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    suffix_mask = enc["attention_mask"].to(device)
    mask = torch.cat([suffix_mask.new_ones(len(suffixes), n_prefix), suffix_mask], dim=-1)
    positions = n_prefix + (suffix_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=enc["input_ids"].to(device), attention_mask=mask, position_ids=positions,
                   past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1, :].float()
    probs = torch.softmax(logits, dim=-1)[:, digit_ids]
    mass = probs.sum(-1)
    return (probs / mass[:, None]).cpu(), mass.cpu(), n_prefix, enc["attention_mask"].sum(-1).tolist()


def label_records(lm: Any, dims: ModelDims, questions: dict[str, str], responses: list[dict[str, Any]],
                  cfg: LabellingConfig, scorer: str):
    """Yield score records for `responses` (each with id, sample, completion), one batch per question chunk.

    Per question, the prompt prefix (instruction + question) is encoded once and shared; each distinct response
    then costs only its own tokens and the answer prefix. Identical (question, response) pairs — frequent when
    M samples of a short answer agree — are labelled once. The first response of a chunk carries the prefix's
    FLOPs, every distinct response its own suffix's, duplicates none (as generation charges a shared prompt's
    prefill to sample 0); seconds are split the same way, by tokens.
    """
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}   # prefix -> suffix -> responses, in input order
    for r in responses:
        if r["id"] not in questions:
            raise ValueError(f"response ({r['id']!r}, {r['sample']}) has no question in the questions file")
        prefix, suffix = split_label_prompt(questions[r["id"]], r.get("completion") or "", cfg, lm.tokenizer)
        groups.setdefault(prefix, {}).setdefault(suffix, []).append(r)
    digit_ids = None
    for prefix, by_suffix in groups.items():
        if digit_ids is None:
            first_suffix = next(iter(by_suffix))
            digit_ids = digit_token_ids(lm.tokenizer, prefix + first_suffix)
        suffixes = list(by_suffix)
        for start in range(0, len(suffixes), cfg.batch_size):
            chunk = suffixes[start:start + cfg.batch_size]
            began = time.perf_counter()
            probs, mass, n_prefix, lengths = label_group(lm, prefix, chunk, digit_ids)
            if lm.device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - began
            total_tokens = n_prefix + sum(lengths)
            prefix_flops = sequence_flops(dims, 0, n_prefix, n_logits=0)
            records = []
            for k, (suffix, p, m, n_tokens) in enumerate(zip(chunk, probs, mass, lengths)):
                label = {
                    "scorer": scorer,
                    "confidence": confidence_from_probs(p, cfg.mode, cfg.epsilon),
                    "digit_probs": [round(float(x), 6) for x in p],
                    "digit_mass": float(m),  # share of next-token mass on digits: low = the labeller ignored the ask
                    "n_tokens": n_prefix + int(n_tokens),
                }
                own_tokens = int(n_tokens) + (n_prefix if k == 0 else 0)
                own_flops = sequence_flops(dims, n_prefix, int(n_tokens), n_logits=1) + (prefix_flops if k == 0 else 0)
                for d, r in enumerate(by_suffix[suffix]):
                    records.append({"id": r["id"], "sample": r["sample"], **label,
                                    "flops": own_flops if d == 0 else 0.0,
                                    "seconds": seconds * own_tokens / total_tokens if d == 0 else 0.0})
            yield records


def run_labelling(samples_path: str | Path, questions_path: str | Path, labeller_spec_path: str | Path,
                  output: str | Path, cfg: LabellingConfig | dict[str, Any] | None = None, *,
                  device: str = "auto", threads: int | None = None) -> list[dict[str, Any]]:
    """The `label_confidence` stage: a confidence label for every response; a killed run resumes."""
    if not isinstance(cfg, LabellingConfig):
        cfg = LabellingConfig.from_config(cfg)
    if threads:
        torch.set_num_threads(threads)
    from infscale.models.backend import load_backend

    spec = read_json(labeller_spec_path)
    dims = ModelDims.from_config(spec["config"])
    questions = {q["id"]: q["question"] for q in read_jsonl(questions_path)}
    responses = read_jsonl(samples_path)
    fingerprint = job_fingerprint(("infscale.scoring.label_confidence",), {"cfg": asdict(cfg), "device": device},
                                  [samples_path, questions_path, labeller_spec_path])
    writer = ResumableJsonlWriter(output, key_fields=("id", "sample"), fingerprint=fingerprint)
    todo = [r for r in responses if (r["id"], r["sample"]) not in writer.done]
    log.info("labeller %s: %d responses, %d already labelled", spec["name"], len(responses), len(responses) - len(todo))
    try:
        lm = load_backend(spec, labeller_spec_path, device=device, threads=threads)    # models.<name>.backend
        log.info("loaded %s on %s in %.1f s", spec["name"], lm.device_name, lm.load_seconds)
        began = time.perf_counter()
        with Progress(len(todo), f"label {spec['name']}", unit="response") as progress:
            for records in label_records(lm, dims, questions, todo, cfg, f"conf-{spec['name']}"):
                writer.write_many(records)
                progress.update(len(records), sum(r.get("n_tokens", 0) for r in records))
        log.info("labelled %d responses in %.1f s", len(todo), time.perf_counter() - began)
    except BaseException:
        writer.close()
        raise
    return writer.finish(sort_key=lambda r: (r["id"], r["sample"]))
