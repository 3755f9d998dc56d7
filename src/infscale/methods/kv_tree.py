"""The KV-cache tree engine of the tree searches: grow one reasoning step below each of a frontier of nodes,
batched, from the nodes' cached KV states.

A node is one reasoning step. Expanding a node continues from its saved KV cache (the per-layer key/value
tensors of its whole path), batched across the frontier and across questions (`methods/tree.py:
run_searches`): the prompt is encoded once per question and every generated token is fed to the model once,
never re-encoded. After a step ends, its last token is fed too, so
the node holds the logits of its first child token and the policy's hidden state at the step end (which the
offline value-head PRM reads, at no extra forward pass).

Steps end where `infscale.steps.step_end` says (the rule PRM training and scoring split completions by). Stop
strings are looked for in the path's tail plus the new step, so one spanning a step boundary ("\\n\\n" after a
step that ended at "\\n") fires; with "\\n\\n" a stop, any blank line (whitespace between two newlines) is one.
What to search (how many children, scoring, pruning, when a path is final) is the search loop's
(`methods/tree.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from infscale.compute import ModelDims, sequence_flops
from infscale.models.hf import LoadedModel, SamplingParams, decode_step, sample_next
from infscale.models.kv_cache import compaction_order, stacked_cache
from infscale.steps import step_end

# how much of a path's text before a new step is searched for stop strings that span the boundary
STOP_TAIL_CHARS = 64
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")


class StepRules(Protocol):
    """How a step is decoded and where it ends (a search method's config, `methods.tree.TreeSearchConfig`)."""

    max_step_tokens: int
    max_total_tokens: int
    stop: list[str]

    @property
    def params(self) -> SamplingParams: ...

    def separator(self, depth: int) -> tuple[str, bool]: ...

    def header(self, depth: int) -> str: ...


@dataclass
class NodeState:
    """What continuing a node needs: its path's KV tensors (one (key, value) per layer, batch 1, no
    padding), the logits of its next token, and the hidden state at its last token."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    logits: torch.Tensor
    hidden: torch.Tensor

    @property
    def length(self) -> int:
        return self.kv[0][0].shape[-2]


@dataclass
class Node:
    index: int
    parent: int | None
    depth: int
    text: str = ""
    path_text: str = ""              # the texts of the steps from the root to here
    path_tokens: int = 0             # tokens from the root to here (the budget counts these)
    score: float | None = None
    finished: bool = False
    finish_reason: str | None = None  # stop | budget | length (max depth)
    pruned: bool = False             # scored at most `min_score`: dropped from the search
    flops: float = 0.0               # forward FLOPs spent feeding this step's tokens (measured)
    fed: int = 0                     # tokens fed to the model for this step (its header, sampled tokens, last again)
    header_ids: list[int] = field(default_factory=list, repr=False)        # `step_header` tokens fed first
    state: NodeState | None = field(default=None, repr=False)      # open nodes: what expanding them needs
    hidden: torch.Tensor | None = field(default=None, repr=False)  # policy hidden state at the step's end
    token_ids: list[int] = field(default_factory=list, repr=False)         # the step's tokens
    token_logprobs: list[float] = field(default_factory=list, repr=False)  # the policy's log P of each

    @property
    def tokens(self) -> int:
        """Tokens of this step."""
        return len(self.token_ids)

    def record(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in ("index", "parent", "depth", "text", "tokens", "path_tokens",
                                                 "score", "finished", "finish_reason", "pruned", "flops")},
                "header_tokens": len(self.header_ids)}

    @property
    def leaf(self) -> bool:
        return self.finished and not self.pruned


@dataclass
class ExpandStats:
    tokens_fed: int = 0              # tokens run through the model (the KV-reuse benchmark counts these)
    flops: float = 0.0

    @classmethod
    def of(cls, children: list[Node]) -> ExpandStats:
        """What growing these children cost: the sums of their own counts."""
        return cls(sum(child.fed for child in children), sum(child.flops for child in children))


def _stack_states(states: list[NodeState], device: torch.device, room: int):
    """Left-pad the nodes' KV tensors to one length and stack them into a batch cache with `room` positions
    free for the step (decoding then writes in place instead of copying the cache at every token)."""
    cache, pads = stacked_cache([s.kv for s in states], room)
    longest = pads[0] + states[0].length
    mask = torch.ones(len(states), longest, dtype=torch.long, device=device)
    for row, pad in enumerate(pads):
        mask[row, :pad] = 0
    return cache, mask


def _snapshot(cache: Any, row: int, mask_row: torch.Tensor, logits: torch.Tensor, hidden: torch.Tensor) -> NodeState:
    start = int((mask_row == 0).sum())        # padding is always on the left
    kv = [(layer.keys[row : row + 1, :, start:].clone(), layer.values[row : row + 1, :, start:].clone())
          for layer in cache.layers]
    return NodeState(kv, logits[row].clone(), hidden[row].clone())


@torch.inference_mode()
def encode_prompt(lm: LoadedModel, prompt: str) -> tuple[NodeState, int]:
    """The root's state: the prompt encoded once. Returns it and the prompt's token count."""
    ids = lm.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(lm.device)
    out = lm.model(input_ids=ids, use_cache=True, output_hidden_states=True, logits_to_keep=1)
    cache = out.past_key_values
    kv = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
    return NodeState(kv, out.logits[0, -1], out.hidden_states[-1][0, -1]), ids.shape[1]


def _first_stop(text: str, start: int, stops: list[str]) -> int:
    """Where the first stop string in `text` that ends past `start` begins (-1 if none); "\\n\\n" matches any
    blank line."""
    found = []
    for stop in stops:
        if not stop:
            continue
        if stop == "\n\n":
            match = next((m for m in _BLANK_LINE.finditer(text) if m.end() > start), None)
            found += [match.start()] if match else []
        else:
            at = text.find(stop, max(0, start - len(stop) + 1))
            found += [at] if at >= 0 else []
    return min(found, default=-1)


@torch.inference_mode()
def expand(lm: LoadedModel, parents: list[Node], counts: list[int], cfg: StepRules,
           generator: torch.Generator | list[torch.Generator] | None, dims: ModelDims | None = None
           ) -> tuple[list[Node], ExpandStats]:
    """Sample `counts[i]` one-step children of `parents[i]`, all in one batch, from the parents' cached states.

    `generator`: one random stream for the batch, or one per child (parent-major, as the children are
    returned), which makes each child's tokens independent of the rows it shares the batch with.
    Returns the children (index/depth/parent set, `index` still -1-free: callers renumber) with their states
    when they are open, and the tokens fed / FLOPs spent.
    """
    tok, model, device = lm.tokenizer, lm.model, lm.device
    rows_parent = [p for p, c in zip(parents, counts) for _ in range(c)]
    if not rows_parent:
        return [], ExpandStats()
    states = [p.state for p in rows_parent]
    logits = torch.stack([s.logits for s in states])
    position = torch.tensor([s.length for s in states], device=device)
    rows = len(rows_parent)
    if isinstance(generator, list) and len(generator) != rows:
        raise ValueError(f"{rows} children to sample but {len(generator)} random streams")
    children = [Node(index=-1, parent=p.index, depth=p.depth + 1, path_tokens=p.path_tokens) for p in rows_parent]
    active = list(range(rows))          # child index of each batch row
    eos = lm.eos_token_ids
    params = cfg.params
    last_hidden = [p.state.hidden for p in rows_parent]   # hidden state at each row's last fed token
    # a step's header tokens go in first, one per decoding step like sampled ones
    headers = [tok(cfg.header(c.depth), add_special_tokens=False)["input_ids"] if cfg.header(c.depth) else []
               for c in children]
    # a step feeds its header, at most max_step_tokens sampled tokens, and its last token once more
    cache, mask = _stack_states(states, device, max(map(len, headers)) + cfg.max_step_tokens + 1)
    tails = [p.path_text[-STOP_TAIL_CHARS:] for p in rows_parent]
    header_chars = [len(tok.decode(ids, skip_special_tokens=True)) for ids in headers]  # as the step decodes
    while active:
        streams = [generator[child_i] for child_i in active] if isinstance(generator, list) else generator
        tokens = sample_next(logits, params, streams)
        # the policy's own (untempered) log-probability of each sampled token: the value head reads it
        logprobs = (logits.float().gather(-1, tokens[:, None])[:, 0] - logits.float().logsumexp(-1)).tolist()
        token_list = tokens.tolist()
        feed, ending = [], set()        # batch rows whose token goes through the model; of those, the last ones
        for batch_row, (child_i, logprob) in enumerate(zip(active, logprobs)):
            child = children[child_i]
            if len(child.header_ids) < len(headers[child_i]):
                token_list[batch_row] = headers[child_i][len(child.header_ids)]
                child.header_ids.append(token_list[batch_row])
                feed.append(batch_row)
                continue
            token = token_list[batch_row]
            if token in eos:            # nothing to feed: the node's hidden state is its last token's
                child.finished, child.finish_reason = True, "stop"
                child.text = tok.decode(child.header_ids + child.token_ids, skip_special_tokens=True)
                child.hidden = last_hidden[child_i]
                continue
            child.token_ids.append(token)
            child.token_logprobs.append(logprob)
            child.path_tokens += 1
            text = tok.decode(child.header_ids + child.token_ids, skip_special_tokens=True)
            sampled_from = min(header_chars[child_i], len(text))  # where the sampled text begins
            tail = tails[child_i]
            stop_at = _first_stop(tail + text, len(tail) + sampled_from, cfg.stop)
            separator, cut_separator = cfg.separator(child.depth)
            end = step_end(text, separator, sampled_from)
            if stop_at >= 0:            # the text ends before the stop string: not fed, like EOS
                child.text = text[: max(stop_at - len(tail), 0)]
                child.finished, child.finish_reason = True, "stop"
                child.hidden = last_hidden[child_i]
                continue
            step_done = end >= 0 or child.tokens >= cfg.max_step_tokens
            if step_done:
                child.text = text if end < 0 else text[: end - len(separator) if cut_separator else end]
            if child.path_tokens >= cfg.max_total_tokens:
                child.text = child.text if step_done else text
                child.finished, child.finish_reason = True, "budget"
            if step_done or child.finished:
                ending.add(batch_row)   # its last token is fed once more: open nodes need the next logits
            feed.append(batch_row)
        if not feed:
            break
        feed = compaction_order(feed, len(active))     # the rows that stop are dropped moving the fewest
        tokens = torch.tensor(token_list, device=device)
        rows_now = [active[r] for r in feed]
        logits, hidden, mask, position = decode_step(model, cache, mask, position, tokens, feed, output_hidden=True)
        n_ctx = (mask.sum(-1) - 1).tolist()      # positions each fed token attended to before itself
        for child_i, c in zip(rows_now, n_ctx):
            children[child_i].fed += 1
            if dims is not None:
                children[child_i].flops += sequence_flops(dims, int(c), 1)
        keep = []
        for i, (batch_row, child_i) in enumerate(zip(feed, rows_now)):
            last_hidden[child_i] = hidden[i]
            if batch_row not in ending:
                keep.append(i)
            elif children[child_i].finished:
                children[child_i].hidden = hidden[i].clone()
            else:
                children[child_i].state = _snapshot(cache, i, mask[i], logits, hidden)
                children[child_i].hidden = children[child_i].state.hidden
        if keep and len(keep) < len(rows_now):
            keep = compaction_order(keep, len(rows_now))   # the rows that ended are dropped moving the fewest
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            logits, mask, position = logits[index], mask[index], position[index]
        active = [rows_now[i] for i in keep]
    for child_i, child in enumerate(children):
        if not child.finished and child.state is None:     # cannot happen: every open child was snapshotted
            raise RuntimeError(f"tree expansion lost the state of child {child_i}")
    return children, ExpandStats.of(children)


__all__ = ["StepRules", "Node", "NodeState", "ExpandStats", "encode_prompt", "expand"]
