"""Shared machinery of the tree-search methods (REBASE, beam search): step-wise expansion of a frontier of
nodes from their cached KV states, PRM scoring of the new nodes, and the records the pipeline expects.

A node is one reasoning step. Expanding a node continues from its saved KV cache (the per-layer key/value
tensors of its whole path), batched across the frontier: the prompt is encoded once per question and every
generated token is fed to the model once, never re-encoded. After a step ends, its last token is fed too, so
the node holds the logits of its first child token and the policy's hidden state at the step end (which the
offline value-head PRM reads, at no extra forward pass).

A search method only decides how many children each open node gets (its config's `children`, a
`SearchPolicy`); `run_search` and `generate_tree` do the rest. Width accounting (REBASE): every finished node uses up one unit of width for good; the open nodes
share what is left.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from infscale.compute import ModelDims, sequence_flops
from infscale.grading import extract_answer
from infscale.models.hf import LoadedModel, SamplingParams, decode_step, sample_next
from infscale.prompts import PromptConfig, build_prompt
from infscale.scoring.prm import StepScorer, load_scorer

# (scores of the open nodes, width left) -> children per open node, in the order of the scores
SearchPolicy = Callable[[list[float], int], list[int]]


@dataclass(frozen=True)
class TreeSearchConfig:
    """Options shared by every tree-search method (see the schema's `rebase` / `beam` definitions)."""

    width: int = 16                     # leaves the search may finish (REBASE's W; beam search's N)
    scorer: dict[str, Any] = field(default_factory=dict)   # the PRM: resolved `scorers:` entry (+ its path)
    temperature: float = 1.0
    top_p: float = 1.0
    max_depth: int = 8                  # steps per path
    max_step_tokens: int = 48           # tokens per step
    max_total_tokens: int = 256         # tokens per path (cumulative over its steps)
    step_separator: str = "\n"          # ends a step
    stop: list[str] = field(default_factory=lambda: ["\n\n", "Q:"])   # ends the whole solution
    shards: int = 1
    prompt: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if not self.step_separator:
            raise ValueError("step_separator must be a non-empty string")
        if not self.scorer:
            raise ValueError("a tree-search method needs `scorer:` (the name of an entry under `scorers:`)")

    def children(self, scores: list[float], width: int) -> list[int]:
        """The method's `SearchPolicy`: children per open node (in the order of `scores`) for `width` left."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to share width among open nodes")

    @property
    def prompt_config(self) -> PromptConfig:
        return PromptConfig(**self.prompt)

    @property
    def params(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.max_step_tokens, ())


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
    path_tokens: int = 0             # tokens from the root to here (the budget counts these)
    score: float | None = None
    finished: bool = False
    finish_reason: str | None = None  # stop | budget | length (max depth)
    state: NodeState | None = field(default=None, repr=False)      # open nodes: what expanding them needs
    hidden: torch.Tensor | None = field(default=None, repr=False)  # policy hidden state at the step's end
    token_ids: list[int] = field(default_factory=list, repr=False)         # the step's tokens
    token_logprobs: list[float] = field(default_factory=list, repr=False)  # the policy's log P of each

    @property
    def tokens(self) -> int:
        """Tokens of this step."""
        return len(self.token_ids)

    def record(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("index", "parent", "depth", "text", "tokens", "path_tokens", "score",
                                              "finished", "finish_reason")}


@dataclass
class ExpandStats:
    tokens_fed: int = 0              # tokens run through the model (the KV-reuse benchmark counts these)
    flops: float = 0.0


def _stack_states(states: list[NodeState], device: torch.device):
    """Left-pad the nodes' KV tensors to one length and stack them into a batch cache."""
    from transformers import DynamicCache

    longest = max(s.length for s in states)
    layers = []
    for layer in range(len(states[0].kv)):
        keys, values = [], []
        for s in states:
            k, v = s.kv[layer]
            pad = longest - k.shape[-2]
            keys.append(torch.nn.functional.pad(k, (0, 0, pad, 0)))
            values.append(torch.nn.functional.pad(v, (0, 0, pad, 0)))
        layers.append((torch.cat(keys), torch.cat(values)))
    mask = torch.zeros(len(states), longest, dtype=torch.long, device=device)
    for row, s in enumerate(states):
        mask[row, longest - s.length:] = 1
    return DynamicCache(ddp_cache_data=layers), mask


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


def _is_final(step: str) -> bool:
    # a step that states the answer ("The answer is 7.") ends the solution
    return extract_answer(step, mode="strict") is not None


@torch.inference_mode()
def expand(lm: LoadedModel, parents: list[Node], counts: list[int], cfg: TreeSearchConfig,
           generator: torch.Generator | None, dims: ModelDims | None = None) -> tuple[list[Node], ExpandStats]:
    """Sample `counts[i]` one-step children of `parents[i]`, all in one batch, from the parents' cached states.

    Returns the children (index/depth/parent set, `index` still -1-free: callers renumber) with their states
    when they are open, and the tokens fed / FLOPs spent.
    """
    tok, model, device = lm.tokenizer, lm.model, lm.device
    rows_parent = [p for p, c in zip(parents, counts) for _ in range(c)]
    stats = ExpandStats()
    if not rows_parent:
        return [], stats
    states = [p.state for p in rows_parent]
    cache, mask = _stack_states(states, device)
    logits = torch.stack([s.logits for s in states])
    position = torch.tensor([s.length for s in states], device=device)
    rows = len(rows_parent)
    children = [Node(index=-1, parent=p.index, depth=p.depth + 1, path_tokens=p.path_tokens) for p in rows_parent]
    active = list(range(rows))          # child index of each batch row
    eos = lm.eos_token_ids
    params = cfg.params
    last_hidden = [p.state.hidden for p in rows_parent]   # hidden state at each row's last fed token
    while active:
        tokens = sample_next(logits, params, generator)
        # the policy's own (untempered) log-probability of each sampled token: the value head reads it
        logprobs = (logits.float().gather(-1, tokens[:, None])[:, 0] - logits.float().logsumexp(-1)).tolist()
        feed, ending = [], set()        # batch rows whose token goes through the model; of those, the last ones
        for batch_row, (child_i, token, logprob) in enumerate(zip(active, tokens.tolist(), logprobs)):
            child = children[child_i]
            if token in eos:            # nothing to feed: the node's hidden state is its last token's
                child.finished, child.finish_reason = True, "stop"
                child.text = tok.decode(child.token_ids, skip_special_tokens=True)
                child.hidden = last_hidden[child_i]
                continue
            child.token_ids.append(token)
            child.token_logprobs.append(logprob)
            child.path_tokens += 1
            text = tok.decode(child.token_ids, skip_special_tokens=True)
            stops = [text.find(s) for s in cfg.stop if s and s in text]
            step_end = text.find(cfg.step_separator)
            if stops:                   # the text ends before the stop string: not fed, like EOS
                child.text, child.finished, child.finish_reason = text[: min(stops)], True, "stop"
                child.hidden = last_hidden[child_i]
                continue
            if step_end >= 0 or child.tokens >= cfg.max_step_tokens:
                child.text = text if step_end < 0 else text[: step_end + len(cfg.step_separator)]
                if _is_final(child.text):
                    child.finished, child.finish_reason = True, "stop"
                elif child.path_tokens >= cfg.max_total_tokens:
                    child.finished, child.finish_reason = True, "budget"
            elif child.path_tokens >= cfg.max_total_tokens:
                child.text, child.finished, child.finish_reason = text, True, "budget"
            if child.finished or child.text:
                ending.add(batch_row)   # its last token is fed once more: open nodes need the next logits
            feed.append(batch_row)
        if not feed:
            break
        rows_now = [active[r] for r in feed]
        logits, hidden, mask, position = decode_step(model, cache, mask, position, tokens, feed, output_hidden=True)
        n_ctx = (mask.sum(-1) - 1).tolist()      # positions each fed token attended to before itself
        stats.tokens_fed += len(rows_now)
        if dims is not None:
            stats.flops += sum(sequence_flops(dims, int(c), 1) for c in n_ctx)
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
        active = [rows_now[i] for i in keep]
        if active and len(keep) < len(rows_now):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            logits, mask, position = logits[index], mask[index], position[index]
    for child_i, child in enumerate(children):
        if not child.finished and child.state is None:     # cannot happen: every open child was snapshotted
            raise RuntimeError(f"tree expansion lost the state of child {child_i}")
    return children, stats


def allocate_children(scores: list[float], width: int, softmax_temperature: float) -> list[int]:
    """REBASE's allocation: `width` children over nodes by the softmax of their scores at `softmax_temperature`.

    Nodes are visited in decreasing score; node i gets n_i = ceil(W_rem * w_i / S_rem) with w_i = exp(s_i / T),
    then W_rem -= n_i and S_rem -= w_i. The counts sum to `width` exactly. Result in the order of `scores`.
    """
    if width < 0:
        raise ValueError(f"width must be >= 0, got {width}")
    if softmax_temperature <= 0:
        raise ValueError(f"softmax_temperature must be > 0, got {softmax_temperature}")
    if not scores:
        return []
    order = sorted(range(len(scores)), key=lambda i: -scores[i])        # stable: ties keep input order
    top = scores[order[0]]
    weights = [math.exp((s - top) / softmax_temperature) for s in scores]  # shifted: no overflow, same ratios
    counts = [0] * len(scores)
    remaining_width, remaining_weight = width, sum(weights)
    for rank, i in enumerate(order):
        if remaining_width <= 0:
            break
        if rank == len(order) - 1:
            n = remaining_width          # the last node takes what is left (S_rem == w_i up to rounding)
        else:
            # a relative epsilon keeps float round-up (e.g. 3 * 0.333..34 / 1.0) from stealing a child
            share = remaining_width * weights[i] / remaining_weight
            n = min(remaining_width, math.ceil(share - 1e-9 * max(1.0, share)))
        counts[i] = n
        remaining_width -= n
        remaining_weight -= weights[i]
    return counts


def beam_children(scores: list[float], width: int, beam_width: int) -> list[int]:
    """Beam search: the top floor(width / beam_width) nodes get `beam_width` children each (at least the best
    node gets min(width, beam_width)); the others none. Ties keep input order."""
    if not scores or width <= 0:
        return [0] * len(scores)
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    counts = [0] * len(scores)
    n_keep = max(1, width // beam_width)
    for i in order[:n_keep]:
        counts[i] = min(beam_width, width - sum(counts))
    return counts


def run_search(question: dict[str, Any], prompt: str, lm: LoadedModel, scorer: StepScorer, cfg: TreeSearchConfig,
               policy: SearchPolicy, generator: torch.Generator, dims: ModelDims,
               expand_fn: Callable[..., tuple[list[Node], ExpandStats]] | None = None) -> tuple[list[Node], dict[str, Any]]:
    """Grow one question's tree. Returns all nodes (index 0 = the root) and cost totals.

    `expand_fn` replaces `expand` (same signature; benchmarks/rebase_kv_reuse.py passes a re-encoding one)."""
    expand_fn = expand_fn or expand
    root_state, n_prompt = encode_prompt(lm, prompt)
    root = Node(index=0, parent=None, depth=0, state=root_state, hidden=root_state.hidden)
    nodes = [root]
    costs = {"n_prompt_tokens": n_prompt, "tokens_fed": n_prompt, "scorer_flops": 0.0, "scorer_seconds": 0.0,
             "prefill_flops": sequence_flops(dims, 0, n_prompt, n_logits=1), "decode_flops": 0.0}
    frontier, counts = [root], [cfg.width]
    width_left = cfg.width
    for depth in range(1, cfg.max_depth + 1):
        children, stats = expand_fn(lm, frontier, counts, cfg, generator, dims)
        for parent in frontier:
            parent.state, parent.hidden = None, None  # its children hold what they need
        costs["tokens_fed"] += stats.tokens_fed
        costs["decode_flops"] += stats.flops
        for child in children:
            child.index = len(nodes)
            nodes.append(child)
        began = time.perf_counter()
        scores, flops = scorer.score_nodes(question, prompt, nodes, children)
        costs["scorer_seconds"] += time.perf_counter() - began
        costs["scorer_flops"] += flops
        for child, score in zip(children, scores):
            child.score = float(score)
        if depth == cfg.max_depth:
            for child in children:
                if not child.finished:
                    child.finished, child.finish_reason = True, "length"
        width_left -= sum(c.finished for c in children)
        open_nodes = [c for c in children if not c.finished]
        if width_left <= 0 or not open_nodes:
            break
        counts = policy([c.score for c in open_nodes], width_left)
        frontier = [c for c, n in zip(open_nodes, counts) if n > 0]
        counts = [n for n in counts if n > 0]
    for node in nodes:
        node.state, node.hidden = None, None
    return nodes, costs


def path_of(nodes: list[Node], leaf: Node) -> list[Node]:
    path = []
    node: Node | None = leaf
    while node is not None and node.parent is not None:
        path.append(node)
        node = nodes[node.parent]
    return path[::-1]


def round_preserving_sum(values: list[float], total: int) -> list[int]:
    """Integers that sum to `total`, each the floor of its value plus one for the largest remainders."""
    floors = [math.floor(v + 1e-9) for v in values]
    order = sorted(range(len(values)), key=lambda i: floors[i] - values[i])
    for i in order[: total - sum(floors)]:
        floors[i] += 1
    return floors


def leaf_records(question: dict[str, Any], prompt: str, nodes: list[Node], costs: dict[str, Any],
                 seconds: float, scorer_name: str) -> list[dict[str, Any]]:
    """The finished leaves as response records. Shared costs are split so that sums over a question's records
    equal the tree's totals: a node's tokens, FLOPs and time go in equal shares to the leaves below it (nodes
    with no finished leaf below, i.e. pruned ones, to all leaves); the prompt's prefill goes to sample 0."""
    leaves = [n for n in nodes if n.finished]
    below: dict[int, list[int]] = {n.index: [] for n in nodes}
    for leaf_i, leaf in enumerate(leaves):
        for node in path_of(nodes, leaf):
            below[node.index].append(leaf_i)
    share = [0.0] * len(leaves)
    for node in nodes[1:]:
        owners = below[node.index] or list(range(len(leaves)))
        for leaf_i in owners:
            share[leaf_i] += node.tokens / len(owners)
    total_tokens = sum(n.tokens for n in nodes[1:])
    tokens = round_preserving_sum(share, total_tokens)
    records = []
    for sample, leaf in enumerate(leaves):
        path = path_of(nodes, leaf)
        fraction = share[sample] / (total_tokens or 1)
        records.append({
            "id": question["id"], "sample": sample, "prompt": prompt,
            "completion": "".join(n.text for n in path),
            "n_prompt_tokens": costs["n_prompt_tokens"],
            "n_prefill_tokens": costs["n_prompt_tokens"] if sample == 0 else 0,
            "n_completion_tokens": tokens[sample], "n_thought_tokens": 0,
            "finish_reason": leaf.finish_reason,
            "seconds": seconds * fraction,
            "flops": {"prefill": costs["prefill_flops"] if sample == 0 else 0.0,
                      "decode": costs["decode_flops"] * fraction, "thought": 0.0,
                      "scorer": costs["scorer_flops"] * fraction},
            "steps": [n.text for n in path],
            "step_scores": [n.score for n in path],
            "meta": {"leaf": leaf.index, "path_tokens": leaf.path_tokens, "depth": leaf.depth,
                     "scorer": scorer_name, "n_leaves": len(leaves), "n_nodes": len(nodes)},
        })
    return records


def tree_record(question: dict[str, Any], nodes: list[Node], costs: dict[str, Any], cfg: TreeSearchConfig) -> dict[str, Any]:
    return {"id": question["id"], "width": cfg.width, "max_total_tokens": cfg.max_total_tokens,
            "tokens_fed": costs["tokens_fed"], "nodes": [n.record() for n in nodes]}


def generate_tree(questions: list[dict[str, Any]], shots: list[dict[str, Any]], lm: LoadedModel,
                  cfg: TreeSearchConfig, seed: int) -> Iterator[list[dict[str, Any]]]:
    """The `generate` of every tree-search method, whose config's `children` shares out the width: one
    question at a time (its frontier is the batch)."""
    prompt_cfg = cfg.prompt_config
    dims = ModelDims.from_config(lm.spec["config"])
    scorer = load_scorer(cfg.scorer, policy_model=lm)
    for question in questions:
        prompt = build_prompt(question["question"], shots, prompt_cfg, lm.tokenizer)
        generator = torch.Generator(device=lm.device).manual_seed(seed * 1_000_003 + question["meta"]["index"])
        began = time.perf_counter()
        nodes, costs = run_search(question, prompt, lm, scorer, cfg, cfg.children, generator, dims)
        if lm.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
        records = leaf_records(question, prompt, nodes, costs, seconds, scorer.name)
        # the whole tree travels in sample 0's meta, so resume and shard merging need nothing new
        records[0]["meta"]["tree"] = tree_record(question, nodes, costs, cfg)
        yield records


__all__ = ["TreeSearchConfig", "Node", "NodeState", "allocate_children", "beam_children", "expand", "run_search",
           "generate_tree", "encode_prompt", "leaf_records"]
