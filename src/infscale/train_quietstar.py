"""Quiet-STaR training (rule `train_quietstar`): the wrapper's objective on worked solutions, resumable, with an
LM-only fine-tune of the same model on the same texts as the control, and held-out next-token NLLs.

Training text: reasoning-gym questions of the dataset's task drawn with the thinker's own `text.seed`, written
as "Q: {question}\\nA: {worked solution}\\nThe answer is {answer}." (the CoT exemplar format of prompts.py);
questions that appear in the dataset's evaluation split are dropped, so no evaluation question is trained on.
The official run trains on OpenWebMath; the offline pipeline has no web text, hence worked solutions.

Held-out measurement (texts drawn like the training ones, never trained on): per text, the mean next-token NLL
of (a) the Quiet-STaR model with thinking on (mixed logits, one thought per position, `n_talk = 1`), (b) the
same model with thinking off (its base logits), (c) the LM-only control, (d) the untouched model. Differences
are paired per text, with percentile-bootstrap CIs over texts (stats.bootstrap_ci).

`source: official` thinkers train nothing: the thinking parameters of `ezelikman/quietstar-8-ahead` are read
from the model's checkpoint files (methods/quietstar.from_official_state_dict) and saved in the same format.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from infscale.io import atomic_open, read_json, read_jsonl, write_json
from infscale.methods.quietstar import OFFICIAL_THINKING_KEYS, QuietStarLM, ThinkerConfig, wrap

log = logging.getLogger(__name__)

CURVE_COLUMNS = ("step", "loss", "base_nll", "mixed_nll", "reward", "policy_loss", "control_nll", "seconds")


# --- training text --------------------------------------------------------------------------------------------


def training_texts(dataset_cfg: dict[str, Any], text_cfg: dict[str, Any], exclude_questions: set[str],
                   thinker: str) -> tuple[list[str], list[str]]:
    """(train texts, held-out texts): worked solutions of the dataset's reasoning-gym task, none of whose
    questions is in `exclude_questions`."""
    from infscale.data.sample_dataset import DatasetConfig, build_splits
    from infscale.prompts import worked_example

    if dataset_cfg.get("source") not in ("reasoning_gym",):
        raise ValueError(f"thinkers.{thinker}: training text comes from a reasoning_gym dataset's task; "
                         f"dataset source is {dataset_cfg.get('source')!r}")
    n_train, n_heldout = int(text_cfg.get("n_train", 64)), int(text_cfg.get("n_heldout", 32))
    need = n_train + n_heldout
    pool_cfg = DatasetConfig(name=f"{thinker}-text", source="reasoning_gym", task=dataset_cfg["task"],
                             task_config={**dataset_cfg.get("task_config", {}), **text_cfg.get("task_config", {})},
                             seed=int(text_cfg.get("seed", 1234)), n_test=need, n_train=0,
                             pool_size=4 * (need + len(exclude_questions)))
    pool = [r for r in build_splits(pool_cfg)["test"] if r["question"] not in exclude_questions]
    if len(pool) < need:
        raise ValueError(f"thinkers.{thinker}.text: only {len(pool)} questions outside the evaluation split; "
                         f"lower n_train + n_heldout ({need}) or widen the task")
    texts = [worked_example(r) for r in pool[:need]]
    return texts[:n_train], texts[n_train:need]


def batches(tokenizer: Any, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded token ids and attention mask (pad targets are ignored by the loss)."""
    enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length,
                    padding_side="right")
    return enc["input_ids"], enc["attention_mask"]


def per_text_nll(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """Mean next-token NLL of each row over its real target tokens."""
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), ids[:, 1:], reduction="none")
    valid = (mask[:, 1:] & mask[:, :-1]).float()
    return ((nll * valid).sum(1) / valid.sum(1).clamp(min=1)).tolist()


# --- the loop -------------------------------------------------------------------------------------------------


def _schedule(cfg: ThinkerConfig):
    return lambda step: min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0


def _step_rows(step: int, cfg: ThinkerConfig, n_texts: int) -> list[int]:
    """Text indices of a step: a fixed cycle through the texts (so a resumed run sees the same batches)."""
    return [(step * cfg.batch_size + i) % n_texts for i in range(cfg.batch_size)]


def train(lm: Any, cfg: ThinkerConfig, texts: list[str], checkpoint: Path,
          seed: int) -> tuple[QuietStarLM, Any, list[dict]]:
    """Train the wrapper and (when configured) the LM-only control for cfg.steps, resuming from `checkpoint`.
    Returns the wrapper, the control model (or None) and the per-step curves."""
    import copy

    device = lm.device
    model = lm.model.train()
    control = copy.deepcopy(model) if cfg.control else None
    torch.manual_seed(seed)         # the talk head's random first layers
    qs = QuietStarLM(model, tokenizer=lm.tokenizer, **cfg.wrapper_settings()).to(device).train()
    opt = torch.optim.AdamW(qs.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg))
    control_opt = control_sched = None
    if control is not None:
        control_opt = torch.optim.AdamW(control.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        control_sched = torch.optim.lr_scheduler.LambdaLR(control_opt, _schedule(cfg))
    ids, mask = batches(lm.tokenizer, texts, cfg.max_length)
    curves: list[dict] = []
    start = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        qs.load_state_dict(state["qs"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        if control is not None:
            control.load_state_dict(state["control"])
            control_opt.load_state_dict(state["control_opt"])
            control_sched.load_state_dict(state["control_sched"])
        start, curves = state["step"], state["curves"]
        log.info("resumed %s at step %d", cfg.name, start)
    for step in range(start, cfg.steps):
        began = time.perf_counter()
        rows = torch.tensor(_step_rows(step, cfg, len(texts)))
        x, m = ids[rows].to(device), mask[rows].to(device)
        # one generator per step: a resumed run draws the same thoughts
        generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)
        opt.zero_grad()
        terms = qs.loss_terms(x, generator=generator, attention_mask=m)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(qs.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        seconds = time.perf_counter() - began      # the Quiet-STaR step alone (the control's is not counted)
        row = {k: float(v) for k, v in terms.items()}
        row["control_nll"] = math.nan
        if control is not None:
            control_opt.zero_grad()
            labels = x.masked_fill(m == 0, -100)
            control_loss = control(input_ids=x, attention_mask=m, labels=labels).loss
            control_loss.backward()
            torch.nn.utils.clip_grad_norm_(control.parameters(), cfg.max_grad_norm)
            control_opt.step()
            control_sched.step()
            row["control_nll"] = float(control_loss)
        curves.append({"step": step + 1, **row, "seconds": seconds})
        log.info("step %d/%d: %s", step + 1, cfg.steps, {k: round(v, 4) for k, v in row.items()})
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            state = {"qs": qs.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                     "step": step + 1, "curves": curves}
            if control is not None:
                state |= {"control": control.state_dict(), "control_opt": control_opt.state_dict(),
                          "control_sched": control_sched.state_dict()}
            with atomic_open(checkpoint, "wb") as handle:
                torch.save(state, handle)
    return qs.eval(), (control.eval() if control is not None else None), curves


@torch.no_grad()
def heldout_nll(qs: QuietStarLM, control: Any, original: Any, tokenizer: Any, texts: list[str], cfg: ThinkerConfig,
                seed: int) -> dict[str, list[float]]:
    """Per held-out text: NLL with thinking on / off, of the control and of the untouched model."""
    out: dict[str, list[float]] = {"thinking_on": [], "thinking_off": [], "control": [], "original": []}
    generator = torch.Generator(device=qs.model.device).manual_seed(seed)
    for start in range(0, len(texts), cfg.batch_size):
        ids, mask = batches(tokenizer, texts[start : start + cfg.batch_size], cfg.max_length)
        ids, mask = ids.to(qs.model.device), mask.to(qs.model.device)
        result = qs(ids, generator=generator, n_talk=1)
        out["thinking_on"] += per_text_nll(result.logits, ids, mask)
        out["thinking_off"] += per_text_nll(result.base_logits, ids, mask)
        if control is not None:
            out["control"] += per_text_nll(control(input_ids=ids, attention_mask=mask).logits, ids, mask)
        out["original"] += per_text_nll(original(input_ids=ids, attention_mask=mask).logits, ids, mask)
    return {k: v for k, v in out.items() if v}


def paired_differences(nll: dict[str, list[float]], n_boot: int = 2000) -> dict[str, dict[str, float]]:
    """Mean per-text differences with paired bootstrap CIs (negative = the first one predicts better)."""
    from infscale.stats import bootstrap_ci

    pairs = {"thinking_on_minus_off": ("thinking_on", "thinking_off"),
             "quietstar_minus_control": ("thinking_on", "control"),
             "quietstar_minus_original": ("thinking_on", "original"),
             "control_minus_original": ("control", "original")}
    result = {}
    for name, (a, b) in pairs.items():
        if a in nll and b in nll:
            diff = [x - y for x, y in zip(nll[a], nll[b])]
            low, high = bootstrap_ci(diff, n_boot=n_boot)
            result[name] = {"mean": sum(diff) / len(diff), "ci_low": low, "ci_high": high,
                            "distinguishable_from_zero": not (low <= 0.0 <= high), "n_texts": len(diff)}
    return result


def plot_curves(curves: list[dict], png_path: str | Path, title: str) -> None:
    from infscale.figures import plt, save_figure  # headless backend

    steps = [c["step"] for c in curves]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, label in (("base_nll", "base NLL"), ("mixed_nll", "mixed NLL (thinking)"), ("control_nll", "control NLL")):
        axes[0].plot(steps, [c[key] for c in curves], label=label)
    axes[0].set(xlabel="step", ylabel="NLL (nats/token)")
    axes[0].legend()
    axes[1].plot(steps, [c["reward"] for c in curves])
    axes[1].set(xlabel="step", ylabel="reward (Σ log p_mixed − log p_base)")
    axes[2].plot(steps, [c["policy_loss"] for c in curves])
    axes[2].set(xlabel="step", ylabel="policy loss (unweighted)")
    fig.suptitle(title)
    save_figure(fig, png_path)


def _write_curves(curves: list[dict], path: str | Path) -> None:
    with atomic_open(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=CURVE_COLUMNS)
        writer.writeheader()
        writer.writerows({k: c.get(k) for k in CURVE_COLUMNS} for c in curves)


def extract_official(spec: dict[str, Any], weights_output: str | Path) -> dict[str, Any]:
    """The thinking parameters of an official checkpoint (safetensors files of the model's folder)."""
    from huggingface_hub import snapshot_download
    from safetensors import safe_open

    folder = Path(spec["path"])
    if not folder.is_dir():
        folder = Path(snapshot_download(spec["path"], revision=spec.get("revision"), allow_patterns=["*.safetensors*"]))
    state = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            state |= {k: handle.get_tensor(k) for k in OFFICIAL_THINKING_KEYS if k in handle.keys()}
    missing = [k for k in OFFICIAL_THINKING_KEYS if k not in state]
    if missing:
        raise KeyError(f"{folder}: not a Quiet-STaR checkpoint, missing {missing}")
    with atomic_open(weights_output, "wb") as handle:
        torch.save(state, handle)
    return {"source": "official", "checkpoint": str(folder), "keys": sorted(state)}


def run_training(model_spec_path: str | Path, dataset_cfg: dict[str, Any], exclude_paths: list[str | Path],
                 thinker_name: str, thinker_cfg: dict[str, Any], weights_output: str | Path, curves_output: str | Path,
                 plot_output: str | Path, heldout_output: str | Path, *, seed: int = 42, device: str = "auto",
                 threads: int | None = None) -> dict[str, Any]:
    """The rule's job: train (or extract) a thinker; write weights, curves (CSV + PNG) and held-out NLLs."""
    from infscale.models.loading import load_model

    if threads:
        torch.set_num_threads(threads)
    name = thinker_name
    cfg = ThinkerConfig.from_config(name, thinker_cfg)
    spec = read_json(model_spec_path)
    if cfg.source == "official":
        summary = {"thinker": asdict(cfg), **extract_official(spec, weights_output)}
        _write_curves([], curves_output)
        plot_curves([], plot_output, f"{name}: official checkpoint, not trained here")
        write_json(heldout_output, summary)
        return summary
    exclude = {q["question"] for path in exclude_paths for q in read_jsonl(path)}
    train_texts, held_texts = training_texts(dataset_cfg, cfg.text, exclude, name)
    lm = load_model(spec, device=device, dtype=spec.get("dtype", "auto"))   # auto: fp32 on CPU
    checkpoint = Path(weights_output).with_name("resume.pt")
    began = time.perf_counter()
    qs, control, curves = train(lm, cfg, train_texts, checkpoint, seed)
    train_seconds = time.perf_counter() - began
    qs.save(weights_output)
    _write_curves(curves, curves_output)
    plot_curves(curves, plot_output, f"Quiet-STaR {name}: {cfg.steps} steps, lr {cfg.learning_rate:g}")
    original = load_model(spec, device=device, dtype=spec.get("dtype", "auto")).model
    nll = heldout_nll(qs, control, original, lm.tokenizer, held_texts, cfg, seed)
    summary = {"thinker": asdict(cfg), "model": spec["name"], "n_train_texts": len(train_texts),
               "n_heldout_texts": len(held_texts), "train_seconds": train_seconds,
               "seconds_per_step": sum(c["seconds"] for c in curves) / max(len(curves), 1),
               "mean_nll": {k: sum(v) / len(v) for k, v in nll.items()}, "differences": paired_differences(nll),
               "per_text_nll": nll}
    write_json(heldout_output, summary)
    checkpoint.unlink(missing_ok=True)
    return summary
