"""Process reward models (PRMs): a score per reasoning step, behind one interface.

- `hub`: a Math-Shepherd-style PRM loaded by `from_pretrained` (GPU studies). The solution is written with a
  step tag after every step; a step's score is P(good) / (P(good) + P(bad)) of the label tokens at its tag.
  Tag, label tokens and template are configurable, so RLHFlow-style PRMs fit as well.
- `value_head`: an offline PRM, a logistic value head on what a causal LM makes of each step (its
  `step_surprisal`: log-probabilities of the step's tokens, and/or its last hidden state at the step's end),
  trained on Monte-Carlo rollout labels (`infscale.scoring.prm_train`). When it reads the model that
  generates (tree search), scoring a node costs a dot product: the tree already has both.

Steps are split by `split_steps` (separator configurable; blank lines join the step after them, as in tree search).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from infscale.compute import ModelDims, sequence_flops
from infscale.io import ResumableJsonlWriter, read_json, read_jsonl
from infscale.fingerprint import job_fingerprint
from infscale.progress import Progress

KINDS = ("hub", "value_head")
# what a value head reads at each step: the hidden state at the step's end and/or `step_surprisal`
FEATURES = ("hidden", "surprisal")


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
    temperature: float = 1.0             # of the sampled training solutions (the policy's)
    completion_temperature: float | None = None   # of the Monte-Carlo completions (None: `temperature`)
    max_new_tokens: int = 64
    stop: list[str] = field(default_factory=lambda: ["\n\n", "Q:"])
    holdout_fraction: float = 0.25       # training problems kept out of the fit, for the quality table
    # ridge penalty of the value head's logistic regression, and what it reads (`FEATURES`); lists of
    # candidates are chosen among on a validation split of the fit problems (never the held-out ones)
    l2: float | list[float] = 1e-2
    features: list[str] | list[list[str]] = field(default_factory=lambda: ["surprisal"])
    validation_fraction: float = 0.25    # of the non-held-out problems, when there are candidates to choose
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
        if any(not names or set(names) - set(FEATURES) for names in self.feature_sets):
            raise ValueError(f"scorers.{self.name}.features: expected a non-empty list of {list(FEATURES)} (or a "
                             f"list of such lists), got {self.features!r}")

    @property
    def feature_sets(self) -> list[tuple[str, ...]]:
        """The candidate feature lists (one unless `features` lists several)."""
        if self.features and all(isinstance(f, (list, tuple)) for f in self.features):
            return [tuple(f) for f in self.features]
        return [tuple(self.features)]

    @property
    def l2_values(self) -> list[float]:
        return [float(v) for v in self.l2] if isinstance(self.l2, (list, tuple)) else [float(self.l2)]

    @classmethod
    def from_config(cls, name: str, cfg: dict[str, Any]) -> "PRMConfig":
        known = set(cls.__dataclass_fields__) - {"name"}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"scorers.{name}: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(name=name, **cfg)


def step_end(text: str, separator: str, start: int = 0) -> int:
    """Where the first step of `text[start:]` ends (just past its separator), or -1 while it goes on.

    A step needs content: a separator with only whitespace before it (a blank line when steps end at "\\n")
    does not end a step, so blank lines join the step after them. The one rule for tree search (a step ends
    here), PRM training and PRM scoring (`split_steps`).
    """
    if not separator:
        raise ValueError("step separator must be non-empty")
    cut = text.find(separator, start)
    while cut >= 0 and not text[start:cut].strip():
        cut = text.find(separator, cut + len(separator))
    return cut + len(separator) if cut >= 0 else -1


def split_steps(text: str, separator: str = "\n") -> list[str]:
    """Steps of a solution, each keeping its trailing separator so that "".join(steps) == text.

    Steps end where `step_end` says, so whitespace-only pieces (blank lines) join the step after them, as
    they do in tree search; trailing whitespace joins the last step. A text with no content is one step.
    """
    steps, start = [], 0
    while True:
        end = step_end(text, separator, start)
        if end < 0:
            break
        steps.append(text[start:end])
        start = end
    rest = text[start:]
    if steps and not rest.strip():
        steps[-1] += rest
    elif rest or not steps:
        steps.append(rest)
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
    """sigmoid(w · (x - mean) / std + b) on a step's feature vector x (`step_features` of `features`)."""

    weight: torch.Tensor
    bias: float
    mean: torch.Tensor
    std: torch.Tensor
    features: tuple[str, ...] = ("surprisal",)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.float().cpu() - self.mean) / self.std
        return torch.sigmoid(z @ self.weight + self.bias)

    def save(self, path: str | Path, **info: Any) -> None:
        from infscale.io import atomic_open

        with atomic_open(path, "wb") as f:
            torch.save({"weight": self.weight, "bias": self.bias, "mean": self.mean, "std": self.std,
                        "features": list(self.features), **info}, f)

    @classmethod
    def load(cls, path: str | Path) -> "ValueHead":
        data = torch.load(path, map_location="cpu")
        return cls(data["weight"], float(data["bias"]), data["mean"], data["std"], tuple(data["features"]))


def step_surprisal(token_logprobs: list[float], token_texts: list[str]) -> list[float]:
    """The reading model's surprise at one step: mean and min log-probability of its tokens, then of its tokens
    that hold a digit (0 where there are none).

    A linear head on hidden states cannot form these: a token's log-probability pairs the hidden state before
    it with that token's embedding, and an arithmetic slip ("6 - 8 = 1") is a number the model itself found
    unlikely. Number tokens get their own pair because the words around them are surprising for other reasons.
    """
    numbers = [lp for lp, text in zip(token_logprobs, token_texts) if any(ch.isdigit() for ch in text)]
    return [sum(group) / len(group) if group else 0.0 for group in (token_logprobs, numbers)] + \
           [min(group) if group else 0.0 for group in (token_logprobs, numbers)]


def step_features(hidden: torch.Tensor, token_logprobs: list[float], token_texts: list[str],
                  features: tuple[str, ...] | list[str]) -> torch.Tensor:
    """A value head's input for one step, in the order of `features` (`FEATURES`): the hidden state at the
    step's end ([d_model]) and/or its `step_surprisal` ([4])."""
    parts = {"hidden": lambda: hidden.float().cpu(),
             "surprisal": lambda: torch.tensor(step_surprisal(token_logprobs, token_texts))}
    return torch.cat([parts[name]() for name in features])


@torch.inference_mode()
def path_step_features(lm: Any, prompts: list[str], steps: list[list[str]], features: tuple[str, ...] | list[str],
                       batch_size: int = 16) -> tuple[list[torch.Tensor], list[float]]:
    """`step_features` of every step of `prompt + "".join(steps)`, one [n_steps, n_features] tensor per
    path, and the forward FLOPs each path cost.

    Paths that share a prompt (a question's samples) share one encoding of it: the prompt is encoded once
    and its KV cache repeated for their completions, which are tokenized on their own, as during generation.
    The prompt's FLOPs go to the first path of its group.
    """
    from transformers import DynamicCache

    tok, model = lm.tokenizer, lm.model
    dims = ModelDims.from_config(model.config.to_dict())
    needs_logprobs = "surprisal" in features
    per_path: list[torch.Tensor | None] = [None] * len(prompts)
    flops = [0.0] * len(prompts)
    groups: dict[str, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(prompt, []).append(i)
    for prompt, members in groups.items():
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(lm.device)
        out = model(input_ids=ids, use_cache=True, output_hidden_states=True, logits_to_keep=1)
        prompt_kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        prompt_last = out.hidden_states[-1][0, -1].float().cpu()
        prompt_logprobs = torch.log_softmax(out.logits[0, -1].float(), -1).cpu()
        n_prompt = ids.shape[1]
        flops[members[0]] += sequence_flops(dims, 0, n_prompt, n_logits=1)
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            texts = ["".join(steps[i]) for i in chunk]
            enc = tok(texts, return_tensors="pt", padding=True, padding_side="right", return_offsets_mapping=True,
                      add_special_tokens=False)
            offsets = enc.pop("offset_mapping").tolist()
            width = enc["input_ids"].shape[1]
            hidden = token_logprobs = None
            if width:
                rows = len(chunk)
                cache = DynamicCache(ddp_cache_data=[(k.expand(rows, -1, -1, -1).contiguous(),
                                                      v.expand(rows, -1, -1, -1).contiguous()) for k, v in prompt_kv])
                mask = torch.cat([torch.ones(rows, n_prompt, dtype=torch.long), enc["attention_mask"]], dim=-1)
                positions = torch.arange(n_prompt, n_prompt + width).expand(rows, -1)
                # logits at every position only when the features need log-probabilities (0 keeps them all)
                out = model(input_ids=enc["input_ids"].to(lm.device), attention_mask=mask.to(lm.device),
                            position_ids=positions.to(lm.device), past_key_values=cache, use_cache=True,
                            output_hidden_states=True, logits_to_keep=0 if needs_logprobs else 1)
                hidden = out.hidden_states[-1].float().cpu()
                token_logprobs = torch.zeros(rows, width)
                if needs_logprobs:
                    # log P(token j) comes from the logits at j - 1; the first token's from the prompt's last
                    logits = out.logits[:, :-1].float()
                    following = enc["input_ids"][:, 1:].to(logits.device)
                    later = (logits.gather(-1, following[..., None])[..., 0] - logits.logsumexp(-1)).cpu()
                    first = prompt_logprobs[enc["input_ids"][:, 0]]
                    token_logprobs = torch.cat([first[:, None], later], dim=-1)
            for row, i in enumerate(chunk):
                n_tokens = int(enc["attention_mask"][row].sum()) if width else 0
                flops[i] += sequence_flops(dims, n_prompt, n_tokens,
                                           n_logits=n_tokens if needs_logprobs else min(1, n_tokens))
                ends, cut = [], 0
                for step in steps[i]:
                    cut += len(step)
                    ends.append(cut)
                real = offsets[row][:n_tokens]
                token_texts = [tok.decode([t]) for t in enc["input_ids"][row, :n_tokens].tolist()]
                vectors, first_token = [], 0
                for end, position in zip(ends, _step_end_positions(real, ends) if real else [0] * len(ends)):
                    if real and real[0][0] < end and position >= first_token:
                        vectors.append(step_features(hidden[row, position],
                                                     token_logprobs[row, first_token : position + 1].tolist(),
                                                     token_texts[first_token : position + 1], features))
                        first_token = position + 1
                    else:   # a step with no token of its own ends where the path before it does
                        vectors.append(step_features(hidden[row, position] if real and real[0][0] < end
                                                     else prompt_last, [], [], features))
                per_path[i] = torch.stack(vectors)
    return per_path, flops


class ValueHeadPRM(StepScorer):
    """The offline PRM: a trained `ValueHead` on `lm`'s hidden states at step ends."""

    def __init__(self, cfg: PRMConfig, head: ValueHead, lm: Any, reads_policy: bool):
        self.cfg, self.name, self.head, self.lm = cfg, cfg.name, head, lm
        self.reads_policy = reads_policy
        self.dims = ModelDims.from_config(lm.model.config.to_dict())

    def score_paths(self, questions, prompts, steps):
        features, flops = path_step_features(self.lm, prompts, steps, self.head.features, self.cfg.batch_size)
        scores = [self.head(f).tolist() for f in features]
        # the forward passes (logits only where the features read log-probabilities), plus the dot products
        return scores, [f + 2.0 * feats.numel() for f, feats in zip(flops, features)]

    def score_nodes(self, question, prompt, nodes, children):
        if not self.reads_policy:
            return super().score_nodes(question, prompt, nodes, children)
        if not children:
            return [], 0.0
        decode = self.lm.tokenizer.decode
        features = torch.stack([step_features(c.hidden, c.token_logprobs, [decode([t]) for t in c.token_ids],
                                              self.head.features) for c in children])
        return self.head(features).tolist(), 2.0 * features.numel()


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
    scorer_files = [f for f in (scorer_cfg.get("path"), scorer_cfg.get("model_spec")) if f and Path(f).is_file()]
    fingerprint = job_fingerprint(("infscale.scoring.prm",), {"scorer": scorer_cfg, "device": device},
                                  [samples_path, questions_path, *scorer_files])
    writer = ResumableJsonlWriter(output, key_fields=("id", "sample"), fingerprint=fingerprint)
    todo = [r for r in records if (r["id"], r["sample"]) not in writer.done]
    copied = [r for r in todo if r.get("step_scores") is not None and r.get("meta", {}).get("scorer") == cfg.name]
    writer.write_many([{"id": r["id"], "sample": r["sample"], "scorer": cfg.name, "step_scores": r["step_scores"],
                        "score": r["step_scores"][-1], "flops": 0.0, "seconds": 0.0} for r in copied])
    todo = [r for r in todo if not (r.get("step_scores") is not None and r.get("meta", {}).get("scorer") == cfg.name)]
    if todo:
        scorer = load_scorer(cfg, device=device)
        with Progress(len(todo), f"score {cfg.name}", unit="response") as progress:
            for start in range(0, len(todo), cfg.batch_size):
                batch = todo[start : start + cfg.batch_size]
                steps = [r.get("steps") or split_steps(r["completion"], cfg.step_separator) for r in batch]
                began = time.perf_counter()
                scores, flops = scorer.score_paths([question_text[r["id"]] for r in batch],
                                                   [r["prompt"] for r in batch], steps)
                seconds = time.perf_counter() - began
                writer.write_many([{
                    "id": r["id"], "sample": r["sample"], "scorer": cfg.name, "step_scores": s, "score": s[-1],
                    "flops": f, "seconds": seconds / len(batch)} for r, s, f in zip(batch, scores, flops)])
                progress.update(len(batch), sum(r.get("n_completion_tokens", 0) for r in batch))  # tokens scored
    writer.finish(sort_key=lambda r: (r["id"], r["sample"]))
