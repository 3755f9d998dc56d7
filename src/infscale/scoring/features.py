"""What a value-head PRM reads at each step: the reading model's hidden state at the step's end and/or its
surprise at the step's tokens (`step_surprisal`), for whole paths (`path_step_features`: one forward pass per
batch, the prompt encoded once per question) or for one step the policy just generated (`StepReading`: tree
search already holds its hidden state and log-probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from infscale.compute import ModelDims, sequence_flops

# what a value head reads at each step: the hidden state at the step's end and/or `step_surprisal`
FEATURES = ("hidden", "surprisal")


@dataclass
class StepReading:
    """What the policy made of one step it generated: its hidden state at the step's end, and its tokens with
    their log-probabilities (tree search keeps these, so scoring the step costs no forward pass)."""

    hidden: torch.Tensor
    token_ids: list[int] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)


def step_end_positions(offsets: list[tuple[int, int]], ends: list[int]) -> list[int]:
    """Index of the token holding character `end - 1`, for each end (offsets from a fast tokenizer)."""
    positions, token = [], 0
    for end in ends:
        while token + 1 < len(offsets) and offsets[token + 1][0] < end and offsets[token + 1][1] > offsets[token + 1][0]:
            token += 1
        positions.append(token)
    return positions


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
                for end, position in zip(ends, step_end_positions(real, ends) if real else [0] * len(ends)):
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


