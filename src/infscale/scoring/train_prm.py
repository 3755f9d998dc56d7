"""Training the offline value-head PRM from Monte-Carlo rollout labels (Math-Shepherd's automatic labels).

On the dataset's train split (disjoint from test; its first `n_shots` questions are the prompt's exemplars
and are not trained on), the model samples `n_rollouts` solutions per problem. Each non-final step prefix is
completed `n_completions` times; its label is the fraction of completions that reach the reference answer
(a final step's label is whether its solution is right). A logistic head on the model's `step_features`
(its surprisal at the step's tokens and/or its last hidden state at the step's end) is fitted to these soft
labels on part of the problems; the rest (by problem) measure it, with bootstrap intervals over problems:

- step AUROC: step score vs "some completion of this prefix is right" (Math-Shepherd's hard estimate);
- reference step AUROC: non-final step scores vs "the steps so far repeat the worked solution";
- final-answer AUROC: the last step's score (and the minimum over steps) vs the solution being right;
- the untrained policy's own step scores (mean and min token log-probability) against both step labels:
  what the head has to beat.
Where the config lists candidate features / l2 values, a validation split of the fit problems chooses.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

import torch

from infscale.stats import auroc, auroc_ci
from infscale.grading import answers_equivalent, extract_answer
from infscale.io import read_json, read_jsonl, write_json
from infscale.models.backend import load_backend
from infscale.models.hf import SamplingParams
from infscale.models.loading import load_model
from infscale.prompts import PromptConfig, build_prompt
from infscale.scoring.features import FEATURES, path_step_features
from infscale.scoring.scorers import PRMConfig, ValueHead
from infscale.steps import split_steps

log = logging.getLogger(__name__)


def _is_right(text: str, reference: str) -> bool:
    return answers_equivalent(extract_answer(text, mode="flexible"), reference)


def rollout_labels(lm: Any, problems: list[dict[str, Any]], shots: list[dict[str, Any]], cfg: PRMConfig,
                   generator: torch.Generator) -> list[dict[str, Any]]:
    """Sampled solutions with per-step Monte-Carlo values: dicts with prompt, steps, values, correct, id."""
    params = SamplingParams(cfg.temperature, 1.0, cfg.max_new_tokens, tuple(cfg.stop))
    completion_temperature = cfg.temperature if cfg.completion_temperature is None else cfg.completion_temperature
    completion_params = SamplingParams(completion_temperature, 1.0, cfg.max_new_tokens, tuple(cfg.stop))
    prompt_cfg = PromptConfig(**cfg.prompt)
    solutions = []
    batch = max(1, cfg.rollout_batch_rows // cfg.n_rollouts)
    for start in range(0, len(problems), batch):
        chunk = problems[start : start + batch]
        prompts = [build_prompt(p["question"], shots, prompt_cfg, lm.tokenizer) for p in chunk]
        # the model's backend: hf draws from `generator`, an engine from its own job stream (seeded at load)
        for problem, prompt, group in zip(chunk, prompts, lm.sample(prompts, cfg.n_rollouts, params, generator)):
            for cont in group:
                steps = split_steps(cont.text, cfg.step_separator)
                right = _is_right(cont.text, problem["answer"])
                solutions.append({"id": problem["id"], "prompt": prompt, "steps": steps, "correct": right,
                                  "values": [None] * (len(steps) - 1) + [float(right)],
                                  "reference": problem["answer"],
                                  "on_reference": follows_reference(steps, problem.get("meta", {}).get("solution"),
                                                                    cfg.step_separator)})
    # every non-final prefix of every solution, completed n_completions times, in batches
    prefixes = [(s, k) for s in solutions for k in range(len(s["steps"]) - 1)]
    log.info("%d solutions (%d right), %d step prefixes to complete %d times", len(solutions),
             sum(s["correct"] for s in solutions), len(prefixes), cfg.n_completions)
    batch = max(1, cfg.rollout_batch_rows // cfg.n_completions)
    for start in range(0, len(prefixes), batch):
        chunk = prefixes[start : start + batch]
        prompts = [s["prompt"] + "".join(s["steps"][: k + 1]) for s, k in chunk]
        groups = lm.sample(prompts, cfg.n_completions, completion_params, generator)
        for (s, k), group in zip(chunk, groups):
            done = "".join(s["steps"][: k + 1])
            s["values"][k] = sum(_is_right(done + c.text, s["reference"]) for c in group) / len(group)
    return solutions


def _normalise_step(step: str) -> str:
    return " ".join(step.split()).rstrip(".")


def follows_reference(steps: list[str], solution: str | None, separator: str = "\n") -> list[bool] | None:
    """For each non-final step: do the steps up to it repeat the reference worked solution's first steps
    (whitespace and a final full stop aside)? None when the problem has no worked solution.

    A label that does not depend on the policy's luck: Monte-Carlo labels of a weak policy are mostly 0 even
    for right prefixes, because their completions fail later."""
    if not solution:
        return None
    reference = [_normalise_step(s) for s in split_steps(solution, separator)]
    labels, on_track = [], True
    for k, step in enumerate(steps[:-1]):
        on_track = on_track and k < len(reference) and _normalise_step(step) == reference[k]
        labels.append(on_track)
    return labels


def fit_value_head(features: torch.Tensor, labels: torch.Tensor, l2: float, names: list[str] | tuple[str, ...],
                   steps: int = 200) -> ValueHead:
    """L2-regularised logistic regression on standardised features, soft labels, full-batch L-BFGS.
    `names`: which `step_features` the columns are (kept with the head, so scoring builds the same ones)."""
    mean = features.mean(0)
    std = features.std(0).clamp(min=1e-6)
    z = (features - mean) / std
    weight = torch.zeros(z.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ weight + bias, labels)
        loss = loss + l2 * weight.pow(2).sum()          # ridge penalty: d ≈ 500 features, a few hundred steps
        loss.backward()
        return loss

    optimiser.step(closure)
    return ValueHead(weight.detach(), float(bias.detach()), mean, std, tuple(names))


def _split(problems: list[Any], fraction: float, seed: int, at_least: int = 2) -> tuple[list[Any], list[Any]]:
    """(kept apart, rest): a seeded random `fraction` of the problems (at least `at_least`), both in input order."""
    order = list(range(len(problems)))
    random.Random(seed).shuffle(order)
    n_apart = max(at_least, round(fraction * len(problems)))
    apart = set(order[:n_apart])
    return [p for i, p in enumerate(problems) if i in apart], [p for i, p in enumerate(problems) if i not in apart]


def _columns(features: torch.Tensor, computed: tuple[str, ...], wanted: tuple[str, ...], d_model: int) -> torch.Tensor:
    """The columns of `wanted` features out of a matrix of `computed` ones (`step_features` order)."""
    widths = {"hidden": d_model, "surprisal": SURPRISAL_COLUMNS}
    start, where = 0, {}
    for name in computed:
        where[name] = slice(start, start + widths[name])
        start += widths[name]
    return torch.cat([features[:, where[name]] for name in wanted], dim=1)


# `step_surprisal`'s columns: mean log-prob of all tokens, of number tokens, min of all, of number tokens
SURPRISAL_COLUMNS = 4
UNTRAINED_SCORES = {"mean": 0, "min": 2}    # the untrained policy's own step scores: surprisal columns


def _step_auroc_labels(solutions: list[dict[str, Any]], by: str) -> tuple[list[list[bool]], list[int]]:
    """Per-solution step labels and the step positions they cover: `step_auroc` labels every step by "some
    Monte-Carlo completion is right"; `reference_step_auroc` non-final steps by "still on the worked solution"."""
    if by == "reference_step_auroc":
        return [s["on_reference"] for s in solutions], [len(s["steps"]) - 1 for s in solutions]
    return [[v > 0 for v in s["values"]] for s in solutions], [len(s["steps"]) for s in solutions]


def _choose_head(fit: list[dict[str, Any]], x_fit: torch.Tensor, validation: list[dict[str, Any]],
                 x_validation: list[torch.Tensor], computed: tuple[str, ...], d_model: int,
                 cfg: PRMConfig) -> tuple[tuple[str, ...], float, str, list[dict[str, Any]]]:
    """The candidate (features, l2) whose head, fitted on `fit`, ranks `validation`'s steps best: by the
    worked-solution labels where every validation problem has them, else by the Monte-Carlo labels."""
    by = ("reference_step_auroc" if all(s["on_reference"] is not None for s in validation) else "step_auroc")
    labels, n_steps = _step_auroc_labels(validation, by)
    y_fit = torch.tensor([v for s in fit for v in s["values"]], dtype=torch.float32)
    tried = []
    for names in cfg.feature_sets:
        for l2 in cfg.l2_values:
            head = fit_value_head(_columns(x_fit, computed, names, d_model), y_fit, l2, names)
            scores = [head(_columns(f, computed, names, d_model)).tolist()[:n] for f, n in zip(x_validation, n_steps)]
            tried.append({"features": "+".join(names), "l2": l2,
                          "validation_auroc": auroc([v for s in scores for v in s], [v for s in labels for v in s])})
    finite = [t for t in tried if t["validation_auroc"] == t["validation_auroc"]]   # NaN: one class only
    best = max(finite, key=lambda t: t["validation_auroc"]) if finite else tried[0]
    return tuple(best["features"].split("+")), best["l2"], by, tried


def train_value_head(train_path: str | Path, model_spec_path: str | Path, scorer_name: str, scorer_cfg: dict[str, Any],
                     head_output: str | Path, quality_output: str | Path, *, dataset: str, seed: int = 42,
                     device: str = "auto", threads: int | None = None) -> dict[str, Any]:
    """Rollouts, labels, fit and held-out quality of a value-head PRM; writes the head and quality JSON.

    Training problems split three ways: held-out ones (`holdout_fraction`) only measure the final head; where
    the config lists candidate features or l2 values, a validation part of the rest (`validation_fraction`)
    chooses among them (`_choose_head`) and the chosen head is refitted on fit + validation problems."""
    if threads:
        torch.set_num_threads(threads)
    cfg = PRMConfig.from_config(scorer_name, scorer_cfg)
    prompt_cfg = PromptConfig(**cfg.prompt)
    questions = read_jsonl(train_path)
    n_shots = prompt_cfg.n_shots if prompt_cfg.style.startswith("fewshot") else 0
    shots, problems = questions[:n_shots], questions[n_shots:]
    choosing = len(cfg.feature_sets) * len(cfg.l2_values) > 1
    if len(problems) < (6 if choosing else 4):
        raise ValueError(f"{train_path}: {len(problems)} training problems after {n_shots} exemplars; "
                         f"raise datasets.{dataset}.n_train")
    held, rest = _split(problems, cfg.holdout_fraction, seed)
    validation, fit = _split(rest, cfg.validation_fraction, seed + 1) if choosing else ([], rest)

    spec = read_json(model_spec_path)
    lm = load_model(spec, device=device, dtype=spec.get("dtype", "auto"))   # features: hidden states, on hf
    # the rollouts on the model's backend (hf: this same model)
    sampler = lm if spec.get("backend", "hf") == "hf" else load_backend(spec, model_spec_path, device=device,
                                                                          threads=threads, seed=seed)
    d_model = lm.model.config.hidden_size
    generator = torch.Generator(device=lm.device).manual_seed(seed)
    began = time.perf_counter()
    fit_solutions = rollout_labels(sampler, fit, shots, cfg, generator)
    validation_solutions = rollout_labels(sampler, validation, shots, cfg, generator) if validation else []
    held_solutions = rollout_labels(sampler, held, shots, cfg, generator)
    rollout_seconds = time.perf_counter() - began
    log.info("rollouts: %d + %d + %d solutions in %.1f s", len(fit_solutions), len(validation_solutions),
             len(held_solutions), rollout_seconds)

    # every feature any candidate reads, plus the surprisal the untrained scores are, computed once
    wanted = {name for names in cfg.feature_sets for name in names} | {"surprisal"}
    computed = tuple(name for name in FEATURES if name in wanted)

    def featurise(solutions):
        feats, _ = path_step_features(lm, [s["prompt"] for s in solutions], [s["steps"] for s in solutions],
                                      computed, cfg.batch_size)
        return feats

    fit_features = featurise(fit_solutions)
    selection: list[dict[str, Any]] = []
    selected_by = None
    if choosing:
        validation_features = featurise(validation_solutions)
        names, l2, selected_by, selection = _choose_head(fit_solutions, torch.cat(fit_features), validation_solutions,
                                                         validation_features, computed, d_model, cfg)
        log.info("chose features %s, l2 %g by validation %s: %s", names, l2, selected_by, selection)
        fit_solutions, fit_features = fit_solutions + validation_solutions, fit_features + validation_features
    else:
        names, l2 = cfg.feature_sets[0], cfg.l2_values[0]
    x = _columns(torch.cat(fit_features), computed, names, d_model)
    y = torch.tensor([v for s in fit_solutions for v in s["values"]], dtype=torch.float32)
    head = fit_value_head(x, y, l2, names)
    head.save(head_output, scorer=cfg.name, dataset=dataset, model=cfg.model, model_path=spec["path"])

    held_features = featurise(held_solutions)
    held_scores = [head(_columns(f, computed, names, d_model)).tolist() for f in held_features]
    # the untrained policy's own step scores (mean / min token log-probability): what the head must beat
    offset = d_model if computed[0] == "hidden" else 0
    untrained = {kind: [f[:, offset + column].tolist() for f in held_features]
                 for kind, column in UNTRAINED_SCORES.items()}
    problem = [s["id"] for s in held_solutions]
    step_labels = [[v > 0 for v in s["values"]] for s in held_solutions]
    final_right = [[s["correct"]] for s in held_solutions]
    # where the problems come with a step-wise worked solution: non-final steps vs "still on the reference path"
    referenced = [i for i, s in enumerate(held_solutions) if s["on_reference"] is not None]

    def vs_reference(scores):
        return ([scores[i][:-1] for i in referenced], [held_solutions[i]["on_reference"] for i in referenced],
                [problem[i] for i in referenced])

    measures = {   # name: (scores per path, labels per path, problem of each path)
        "step_auroc": (held_scores, step_labels, problem),
        "reference_step_auroc": vs_reference(held_scores),
        "final_auroc_last": ([[s[-1]] for s in held_scores], final_right, problem),
        "final_auroc_min": ([[min(s)] for s in held_scores], final_right, problem),
    }
    for kind, scores in untrained.items():
        measures[f"untrained_{kind}_step_auroc"] = (scores, step_labels, problem)
        measures[f"untrained_{kind}_reference_step_auroc"] = vs_reference(scores)
    quality = {
        "scorer": cfg.name, "dataset": dataset, "model": cfg.model, "features": "+".join(names), "l2": l2,
        "selected_by": selected_by, "selection": selection,
        "n_fit_problems": len(fit) + len(validation), "n_validation_problems": len(validation),
        "n_heldout_problems": len(held),
        "n_fit_steps": int(len(y)), "n_heldout_steps": sum(map(len, step_labels)),
        "heldout_solution_accuracy": 100.0 * sum(r for [r] in final_right) / len(final_right),
        "heldout_positive_steps": 100.0 * sum(map(sum, step_labels)) / sum(map(len, step_labels)),
        "fit_step_auroc": auroc(head(x).tolist(), [v > 0 for v in y.tolist()]),
        "rollout_seconds": rollout_seconds, "seconds": time.perf_counter() - began,
    }
    for name, (scores, labels, groups) in measures.items():
        quality[name] = auroc([v for s in scores for v in s], [v for s in labels for v in s])
        quality[f"{name}_lo"], quality[f"{name}_hi"] = auroc_ci(scores, labels, groups, seed=seed)
    write_json(quality_output, quality)
    return quality
