"""Process reward models (PRMs): a score per reasoning step, behind one interface (`StepScorer`).

- `hub`: a Math-Shepherd-style PRM loaded by `from_pretrained` (GPU studies). The solution is written with a
  step tag after every step; a step's score is P(good) / (P(good) + P(bad)) of the label tokens at its tag.
  Tag, label tokens and template are configurable, so RLHFlow-style PRMs fit as well.
- `value_head`: an offline PRM, a logistic value head on what a causal LM makes of each step (its
  `step_surprisal`: log-probabilities of the step's tokens, and/or its last hidden state at the step's end;
  `infscale.scoring.features`), trained on Monte-Carlo rollout labels (`infscale.scoring.train_prm`). When it
  reads the model that generates (tree search), scoring a new step costs a dot product: the search already
  has both (`StepReading`).

A scorer scores step texts (and, for steps the policy just generated, what the policy made of them); it
knows nothing of search trees. Steps are split by `infscale.steps.split_steps`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from infscale.compute import ModelDims, sequence_flops
from infscale.io import read_json
from infscale.scoring.features import StepReading, path_step_features, step_end_positions, step_features
from infscale.schema import defaults


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
    rollout_batch_rows: int = defaults("scorer")["rollout_batch_rows"]   # sequences decoded together
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
        """The entry `scorers.<name>` as the config wrote it (validated by the config schema)."""
        return cls(name=name, **cfg)


@dataclass(frozen=True)
class ScorerFiles:
    """The files a scorer loads besides its config (a job's inputs, rule train_prm / prepare_model): a value
    head's trained weights and the model.json of the model it reads. A hub PRM needs none."""

    head: str | Path | None = None
    model_spec: str | Path | None = None

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, Any]) -> "ScorerFiles":
        """From a job's named inputs `scorer_head` and `scorer_model_spec` (workflow/rules/common.smk,
        `scorer_inputs`); a hub PRM's jobs have neither."""
        return cls(inputs.get("scorer_head"), inputs.get("scorer_model_spec"))


class StepScorer(ABC):
    """Scores the steps of solutions. `score_paths` returns per-path step scores and per-path FLOPs."""

    name: str

    @abstractmethod
    def score_paths(self, questions: list[str], prompts: list[str],
                    steps: list[list[str]]) -> tuple[list[list[float]], list[float]]:
        ...

    def score_last_steps(self, question: str, prompt: str, paths: list[list[str]],
                         readings: list[StepReading]) -> tuple[list[float], float]:
        """Scores of the last step of each path (steps the policy just generated, `readings` what it made of
        them) and the FLOPs spent; default: rescore each whole path."""
        if not paths:
            return [], 0.0
        scores, flops = self.score_paths([question] * len(paths), [prompt] * len(paths), paths)
        return [s[-1] for s in scores], float(sum(flops))


def _load_lm(path: str, device: str, dtype: str, name: str):
    from infscale.models.loading import load_model

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
                positions = step_end_positions(offsets[row], ends)
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

    def score_last_steps(self, question, prompt, paths, readings):
        if not self.reads_policy:
            return super().score_last_steps(question, prompt, paths, readings)
        if not paths:
            return [], 0.0
        decode = self.lm.tokenizer.decode
        features = torch.stack([step_features(r.hidden, r.token_logprobs, [decode([t]) for t in r.token_ids],
                                              self.head.features) for r in readings])
        return self.head(features).tolist(), 2.0 * features.numel()


def load_scorer(cfg: PRMConfig, files: ScorerFiles = ScorerFiles(), policy_model: Any = None,
                device: str = "auto") -> StepScorer:
    """The scorer `cfg` describes, from its `files`. A value head reads `policy_model`'s hidden states when it
    was trained on that model (same checkpoint path), else it loads its own model."""
    if cfg.kind == "hub":
        return HubPRM(cfg, device=device)
    if not files.head or not Path(files.head).exists():
        raise FileNotFoundError(f"scorers.{cfg.name}: trained value head {files.head!r} not found (rule train_prm)")
    if not files.model_spec:
        raise ValueError(f"scorers.{cfg.name}: a value head needs the model.json of {cfg.model!r} it reads")
    spec = read_json(files.model_spec)
    same = policy_model is not None and str(policy_model.spec.get("path")) == str(spec["path"])
    if same:
        lm = policy_model
    else:
        from infscale.models.loading import load_model

        lm = load_model(spec, device=device, dtype=spec.get("dtype", "auto"))
    return ValueHeadPRM(cfg, ValueHead.load(files.head), lm, reads_policy=same)
