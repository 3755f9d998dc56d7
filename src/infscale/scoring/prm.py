"""Process reward models (PRMs): a score per reasoning step, behind one interface.

- `hub`: a Math-Shepherd-style PRM loaded by `from_pretrained` (GPU studies). The solution is written with a
  step tag after every step; a step's score is P(good) / (P(good) + P(bad)) of the label tokens at its tag.
  Tag, label tokens and template are configurable, so RLHFlow-style PRMs fit as well.
- `value_head`: an offline PRM, a logistic value head on a causal LM's last hidden state at each step's end,
  trained on Monte-Carlo rollout labels (`infscale.scoring.prm_train`). When it reads the hidden states of
  the model that generates (tree search), scoring a node costs a dot product: the tree already has them.

Steps are split by `split_steps` (separator configurable; blank pieces join the step before them).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from infscale.compute import ModelDims, sequence_flops
from infscale.io import ResumableJsonlWriter, read_json, read_jsonl

KINDS = ("hub", "value_head")


@dataclass(frozen=True)
class PRMConfig:
    """One entry of the config's `scorers:` section (documented in the schema's `scorer` definition)."""

    name: str
    kind: str
    step_separator: str = "\n"
    batch_size: int = 16                 # paths scored per forward pass
    # hub
    id: str | None = None                # hub id or local folder
    revision: str | None = None
    dtype: str = "auto"
    template: str = "{question} {steps}"
    step_tag: str = "ки"
    good_token: str = "+"
    bad_token: str = "-"
    # value_head: the model whose hidden states it reads and how its training labels are made
    model: str | None = None
    n_rollouts: int = 4                  # sampled solutions per training problem
    n_completions: int = 4               # Monte-Carlo completions per step prefix
    temperature: float = 1.0
    max_new_tokens: int = 64
    stop: list[str] = field(default_factory=lambda: ["\n\n", "Q:"])
    holdout_fraction: float = 0.25       # training problems kept out of the fit, for the quality table
    l2: float = 1e-2                     # ridge penalty of the value head's logistic regression
    prompt: dict[str, Any] = field(default_factory=dict)
    # filled in by the workflow: the trained head / the model spec it reads
    path: str | None = None
    model_spec: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"scorers.{self.name}.kind: expected one of {list(KINDS)}, got {self.kind!r}")
        if self.kind == "hub" and not self.id:
            raise ValueError(f"scorers.{self.name}: a hub PRM needs `id` (hub id or local folder)")
        if self.kind == "value_head" and not self.model:
            raise ValueError(f"scorers.{self.name}: a value-head PRM needs `model` (a name under `models:`)")
        if not self.step_separator:
            raise ValueError(f"scorers.{self.name}.step_separator: must be non-empty")

    @classmethod
    def from_config(cls, name: str, cfg: dict[str, Any]) -> "PRMConfig":
        known = set(cls.__dataclass_fields__) - {"name"}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"scorers.{name}: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(name=name, **cfg)


def split_steps(text: str, separator: str = "\n") -> list[str]:
    """Steps of a solution, each keeping its trailing separator so that "".join(steps) == text.

    Pieces that are only whitespace are glued to the step before them (a blank line is not a step); a
    leading blank piece is glued to the first step. A text with no content is one (empty) step.
    """
    if not separator:
        raise ValueError("step separator must be non-empty")
    pieces, start = [], 0
    while True:
        cut = text.find(separator, start)
        if cut < 0:
            if start < len(text):
                pieces.append(text[start:])
            break
        pieces.append(text[start : cut + len(separator)])
        start = cut + len(separator)
    steps: list[str] = []
    pending = ""
    for piece in pieces:
        if not piece.strip():
            if steps:
                steps[-1] += piece
            else:
                pending += piece
            continue
        steps.append(pending + piece)
        pending = ""
    if not steps:
        return [text]
    return steps


def _step_end_positions(offsets: list[tuple[int, int]], ends: list[int]) -> list[int]:
    """Index of the token holding character `end - 1`, for each end (offsets from a fast tokenizer)."""
    positions, token = [], 0
    for end in ends:
        while token + 1 < len(offsets) and offsets[token + 1][0] < end and offsets[token + 1][1] > offsets[token + 1][0]:
            token += 1
        positions.append(token)
    return positions


class StepScorer(ABC):
    """Scores the steps of solutions. `score_paths` returns per-path step scores and per-path FLOPs."""

    name: str

    @abstractmethod
    def score_paths(self, questions: list[str], prompts: list[str],
                    steps: list[list[str]]) -> tuple[list[list[float]], list[float]]:
        ...

    def score_nodes(self, question: dict[str, Any], prompt: str, nodes: list[Any],
                    children: list[Any]) -> tuple[list[float], float]:
        """Scores of new tree nodes (their last step) and the FLOPs spent; default: rescore each whole path."""
        if not children:
            return [], 0.0
        from infscale.methods.tree import path_of

        paths = [[n.text for n in path_of(nodes, child)] for child in children]
        scores, flops = self.score_paths([question["question"]] * len(paths), [prompt] * len(paths), paths)
        return [s[-1] for s in scores], float(sum(flops))


def _load_lm(path: str, device: str, dtype: str, name: str):
    from infscale.models.hf import load_model

    return load_model({"name": name, "source": "local", "path": path}, device=device, dtype=dtype)


class HubPRM(StepScorer):
    """Math-Shepherd style: P(good) among {good, bad} at the step tag after every step."""

    def __init__(self, cfg: PRMConfig, device: str = "auto", lm: Any = None):
        self.cfg, self.name = cfg, cfg.name
        self.lm = lm or _load_lm(cfg.id, device, cfg.dtype, cfg.name)
        tok = self.lm.tokenizer
        ids = []
        for label in (cfg.good_token, cfg.bad_token):
            encoded = tok.encode(label, add_special_tokens=False)
            if len(encoded) != 1:
                raise ValueError(f"scorers.{cfg.name}: label token {label!r} is {len(encoded)} tokens, need 1")
            ids.append(encoded[0])
        self.label_ids = ids
        self.dims = ModelDims.from_config(self.lm.model.config.to_dict())

    def format(self, question: str, steps: list[str]) -> tuple[str, list[int]]:
        """The PRM's input text and the character end of every step tag in it."""
        body, tag_ends = "", []
        head, _, tail = self.cfg.template.partition("{steps}")
        prefix = head.format(question=question)
        for step in steps:
            body += f"{step.strip()} {self.cfg.step_tag}"
            tag_ends.append(len(prefix) + len(body))
            body += "\n"
        return prefix + body + tail.format(question=question), tag_ends

    @torch.inference_mode()
    def score_paths(self, questions, prompts, steps):
        tok, model = self.lm.tokenizer, self.lm.model
        scores: list[list[float]] = []
        flops: list[float] = []
        for start in range(0, len(steps), self.cfg.batch_size):
            texts, tag_ends = zip(*(self.format(q, s) for q, s in
                                    zip(questions[start : start + self.cfg.batch_size],
                                        steps[start : start + self.cfg.batch_size])))
            enc = tok(list(texts), return_tensors="pt", padding=True, padding_side="right",
                      return_offsets_mapping=True, add_special_tokens=True)
            offsets = enc.pop("offset_mapping").tolist()
            logits = model(**{k: v.to(self.lm.device) for k, v in enc.items()}).logits
            probs = torch.softmax(logits[..., self.label_ids].float(), dim=-1)[..., 0]
            for row, ends in enumerate(tag_ends):
                positions = _step_end_positions(offsets[row], ends)
                scores.append([float(probs[row, p]) for p in positions])
                flops.append(sequence_flops(self.dims, 0, int(enc["attention_mask"][row].sum())))
        return scores, flops


@dataclass
class ValueHead:
    """sigmoid(w · (h - mean) / std + b) on a hidden state h."""

    weight: torch.Tensor
    bias: float
    mean: torch.Tensor
    std: torch.Tensor

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        z = (hidden.float().cpu() - self.mean) / self.std
        return torch.sigmoid(z @ self.weight + self.bias)

    def save(self, path: str | Path, **info: Any) -> None:
        from infscale.io import atomic_open

        with atomic_open(path, "wb") as f:
            torch.save({"weight": self.weight, "bias": self.bias, "mean": self.mean, "std": self.std, **info}, f)

    @classmethod
    def load(cls, path: str | Path) -> "ValueHead":
        data = torch.load(path, map_location="cpu")
        return cls(data["weight"], float(data["bias"]), data["mean"], data["std"])


@torch.inference_mode()
def step_end_hidden(lm: Any, prompts: list[str], steps: list[list[str]], batch_size: int = 16
                    ) -> tuple[list[torch.Tensor], list[float]]:
    """The last-layer hidden state at the end of every step of `prompt + "".join(steps)`, one
    [n_steps, d_model] tensor per path, and the forward FLOPs each path cost.

    Paths that share a prompt (a question's samples) share one encoding of it: the prompt is encoded once
    and its KV cache repeated for their completions, which are tokenized on their own, as during generation.
    The prompt's FLOPs go to the first path of its group.
    """
    from transformers import DynamicCache

    tok, model = lm.tokenizer, lm.model
    dims = ModelDims.from_config(model.config.to_dict())
    features: list[torch.Tensor | None] = [None] * len(prompts)
    flops = [0.0] * len(prompts)
    groups: dict[str, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(prompt, []).append(i)
    for prompt, members in groups.items():
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(lm.device)
        out = model(input_ids=ids, use_cache=True, output_hidden_states=True, logits_to_keep=1)
        prompt_kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        prompt_last = out.hidden_states[-1][0, -1].float().cpu()
        n_prompt = ids.shape[1]
        flops[members[0]] += sequence_flops(dims, 0, n_prompt, n_logits=0)
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            texts = ["".join(steps[i]) for i in chunk]
            enc = tok(texts, return_tensors="pt", padding=True, padding_side="right", return_offsets_mapping=True,
                      add_special_tokens=False)
            offsets = enc.pop("offset_mapping").tolist()
            width = enc["input_ids"].shape[1]
            hidden = None
            if width:
                rows = len(chunk)
                cache = DynamicCache(ddp_cache_data=[(k.expand(rows, -1, -1, -1).contiguous(),
                                                      v.expand(rows, -1, -1, -1).contiguous()) for k, v in prompt_kv])
                mask = torch.cat([torch.ones(rows, n_prompt, dtype=torch.long), enc["attention_mask"]], dim=-1)
                positions = torch.arange(n_prompt, n_prompt + width).expand(rows, -1)
                hidden = model(input_ids=enc["input_ids"].to(lm.device), attention_mask=mask.to(lm.device),
                               position_ids=positions.to(lm.device), past_key_values=cache, use_cache=True,
                               output_hidden_states=True, logits_to_keep=1).hidden_states[-1].float().cpu()
            for row, i in enumerate(chunk):
                n_tokens = int(enc["attention_mask"][row].sum()) if width else 0
                flops[i] += sequence_flops(dims, n_prompt, n_tokens, n_logits=0)
                ends, cut = [], 0
                for step in steps[i]:
                    cut += len(step)
                    ends.append(cut)
                real = offsets[row][:n_tokens]
                vectors = []
                for end, position in zip(ends, _step_end_positions(real, ends) if real else [0] * len(ends)):
                    # a step with no token of its own (empty text) ends where the prompt does
                    vectors.append(hidden[row, position] if real and real[0][0] < end else prompt_last)
                features[i] = torch.stack(vectors)
    return features, flops


class ValueHeadPRM(StepScorer):
    """The offline PRM: a trained `ValueHead` on `lm`'s hidden states at step ends."""

    def __init__(self, cfg: PRMConfig, head: ValueHead, lm: Any, reads_policy: bool):
        self.cfg, self.name, self.head, self.lm = cfg, cfg.name, head, lm
        self.reads_policy = reads_policy
        self.dims = ModelDims.from_config(lm.model.config.to_dict())

    def score_paths(self, questions, prompts, steps):
        features, flops = step_end_hidden(self.lm, prompts, steps, self.cfg.batch_size)
        scores = [self.head(f).tolist() for f in features]
        # the forward passes (no logits), plus the head's dot products
        return scores, [f + 2.0 * feats.numel() for f, feats in zip(flops, features)]

    def score_nodes(self, question, prompt, nodes, children):
        if not self.reads_policy:
            return super().score_nodes(question, prompt, nodes, children)
        if not children:
            return [], 0.0
        hidden = torch.stack([c.hidden for c in children])
        return self.head(hidden).tolist(), 2.0 * hidden.numel()


def load_scorer(cfg: dict[str, Any] | PRMConfig, policy_model: Any = None, device: str = "auto") -> StepScorer:
    """The scorer a resolved `scorers:` entry describes. A value head reads `policy_model`'s hidden states
    when it was trained on that model (same checkpoint path), else it loads its own model."""
    if isinstance(cfg, dict):
        cfg = PRMConfig.from_config(cfg.get("name", "prm"), {k: v for k, v in cfg.items() if k != "name"})
    if cfg.kind == "hub":
        return HubPRM(cfg, device=device)
    if not cfg.path or not Path(cfg.path).exists():
        raise FileNotFoundError(f"scorers.{cfg.name}: trained value head {cfg.path!r} not found (rule train_prm)")
    if not cfg.model_spec:
        raise ValueError(f"scorers.{cfg.name}: model_spec (the model.json of {cfg.model!r}) was not resolved")
    spec = read_json(cfg.model_spec)
    same = policy_model is not None and str(policy_model.spec.get("path")) == str(spec["path"])
    if same:
        lm = policy_model
    else:
        from infscale.models.hf import load_model

        lm = load_model(spec, device=device, dtype=spec.get("dtype", "auto"))
    return ValueHeadPRM(cfg, ValueHead.load(cfg.path), lm, reads_policy=same)


def score_responses(samples_path: str | Path, questions_path: str | Path, scorer_cfg: dict[str, Any],
                    output: str | Path, device: str = "auto", threads: int | None = None) -> None:
    """Step scores for every response of a generation pool (resumable). Responses that already carry step
    scores from this very scorer (tree search scored its nodes while searching) are copied, at no cost: their
    scoring FLOPs are already in the response's `flops.scorer`."""
    if threads:
        torch.set_num_threads(threads)
    cfg = PRMConfig.from_config(scorer_cfg.get("name", "prm"), {k: v for k, v in scorer_cfg.items() if k != "name"})
    records = read_jsonl(samples_path)
    question_text = {q["id"]: q["question"] for q in read_jsonl(questions_path)}
    writer = ResumableJsonlWriter(output, key_fields=("id", "sample"))
    todo = [r for r in records if (r["id"], r["sample"]) not in writer.done]
    copied = [r for r in todo if r.get("step_scores") is not None and r.get("meta", {}).get("scorer") == cfg.name]
    writer.write_many([{"id": r["id"], "sample": r["sample"], "scorer": cfg.name, "step_scores": r["step_scores"],
                        "score": r["step_scores"][-1], "flops": 0.0, "seconds": 0.0} for r in copied])
    todo = [r for r in todo if not (r.get("step_scores") is not None and r.get("meta", {}).get("scorer") == cfg.name)]
    if todo:
        scorer = load_scorer(cfg, device=device)
        for start in range(0, len(todo), cfg.batch_size):
            batch = todo[start : start + cfg.batch_size]
            steps = [r.get("steps") or split_steps(r["completion"], cfg.step_separator) for r in batch]
            began = time.perf_counter()
            scores, flops = scorer.score_paths([question_text[r["id"]] for r in batch], [r["prompt"] for r in batch],
                                               steps)
            seconds = time.perf_counter() - began
            writer.write_many([{
                "id": r["id"], "sample": r["sample"], "scorer": cfg.name, "step_scores": s, "score": s[-1],
                "flops": f, "seconds": seconds / len(batch)} for r, s, f in zip(batch, scores, flops)])
    writer.finish(sort_key=lambda r: (r["id"], r["sample"]))


def auroc(scores: list[float], labels: list[bool]) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties count half); NaN when one class is absent."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return math.nan
    ranked = sorted((s, i) for i, s in enumerate(scores))
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[ranked[k][1]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, labels) if y)
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
