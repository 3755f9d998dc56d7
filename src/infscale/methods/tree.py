"""Shared machinery of the tree-search methods (REBASE, beam search): step-wise expansion of a frontier of
nodes from their cached KV states, PRM scoring of the new nodes, and the records the pipeline expects.

A node is one reasoning step. Expanding a node continues from its saved KV cache (the per-layer key/value
tensors of its whole path), batched across the frontier: the prompt is encoded once per question and every
generated token is fed to the model once, never re-encoded. After a step ends, its last token is fed too, so
the node holds the logits of its first child token and the policy's hidden state at the step end (which the
offline value-head PRM reads, at no extra forward pass).

A search method only decides how many children each open node gets (its config's `children`, a
`SearchPolicy`); `run_search` and `generate_tree` do the rest. Width accounting (REBASE): every finished node
uses up one unit of width for good; the open nodes share what is left; a node scoring at most `min_score` is
pruned (neither a leaf nor expanded, as rebase.py drops it).

Steps end where `scoring.prm.step_end` says (the rule PRM training and scoring split completions by). Stop
strings are looked for in the path's tail plus the new step, so one spanning a step boundary ("\\n\\n" after a
step that ended at "\\n") fires; with "\\n\\n" a stop, any blank line (whitespace between two newlines) is one.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from infscale.compute import ModelDims, seed000_rebase_flops, sequence_flops
from infscale.grading import extract_answer
from infscale.models.hf import LoadedModel, SamplingParams, decode_step, sample_next
from infscale.prompts import PromptConfig, build_prompt
from infscale.scoring.prm import StepScorer, load_scorer, step_end

# (scores of the open nodes, width left) -> children per open node, in the order of the scores
SearchPolicy = Callable[[list[float], int], list[int]]
FINAL_TESTS = ("markers", "markers_or_number")
# how much of a path's text before a new step is searched for stop strings that span the boundary
STOP_TAIL_CHARS = 64
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")


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
    step_separator: str = "\n"          # ends a step; with "{n}" the next step's header, cut off (see step_header)
    step_header: str = ""              # fed before step n >= 2 ("\\nStep {n}:"); part of the step, not sampled
    stop: list[str] = field(default_factory=lambda: ["\n\n", "Q:"])   # ends the whole solution
    final_test: str = "markers"         # markers: a step stating its answer ends the path | markers_or_number
    final_markers: list[str] = field(default_factory=list)  # strings that end a path wherever they appear
    min_score: float | None = None      # prune children scoring <= this (rebase.py: 0.1)
    shards: int = 1
    prompt: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if not self.step_separator:
            raise ValueError("step_separator must be a non-empty string")
        if not self.scorer:
            raise ValueError("a tree-search method needs `scorer:` (the name of an entry under `scorers:`)")
        if self.final_test not in FINAL_TESTS:
            raise ValueError(f"final_test must be one of {list(FINAL_TESTS)}, got {self.final_test!r}")

    def separator(self, depth: int) -> tuple[str, bool]:
        """The text that ends step `depth` and whether it is cut off: a "{n}" separator is the next step's
        header (rebase.py stops at "Step {n+1}" and drops it), which that step's `step_header` feeds again."""
        if "{n}" in self.step_separator:
            return self.step_separator.format(n=depth + 1), True
        return self.step_separator, False

    def header(self, depth: int) -> str:
        return self.step_header.format(n=depth) if self.step_header and depth >= 2 else ""

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
    path_text: str = ""              # the texts of the steps from the root to here
    path_tokens: int = 0             # tokens from the root to here (the budget counts these)
    score: float | None = None
    finished: bool = False
    finish_reason: str | None = None  # stop | budget | length (max depth)
    pruned: bool = False             # scored at most `min_score`: dropped from the search
    flops: float = 0.0               # forward FLOPs spent feeding this step's tokens (measured)
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


def _final_section(text: str) -> str:
    """rebase.py's `find_final_section`: after the last "####", else the last of the last three sentences
    (split at ".") that holds a digit, else the last sentence."""
    if "####" in text:
        return text.split("####")[-1].strip()
    sentences = [s.strip() for s in text.split(".") if s.strip()]
    if not sentences:
        return text
    return next((s for s in reversed(sentences[-3:]) if re.search(r"\d", s)), sentences[-1])


def is_final(cfg: TreeSearchConfig, question: str, node: Node) -> bool:
    """Whether a new step ends its path. `markers`: the step states an answer ("The answer is 7.") or holds
    one of `final_markers`. `markers_or_number` (rebase.py's `_is_answer_complete`): the question plus the
    path holds a marker, or its final section a number."""
    if cfg.final_test == "markers":
        return extract_answer(node.text, mode="strict") is not None or any(m in node.text for m in cfg.final_markers)
    text = question + node.path_text
    return any(m in text for m in cfg.final_markers) or re.search(r"\b\d+\b", _final_section(text)) is not None


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
    # a step's header tokens go in first, one per decoding step like sampled ones
    headers = [tok(cfg.header(c.depth), add_special_tokens=False)["input_ids"] if cfg.header(c.depth) else []
               for c in children]
    tails = [p.path_text[-STOP_TAIL_CHARS:] for p in rows_parent]
    header_chars = [len(tok.decode(ids, skip_special_tokens=True)) for ids in headers]  # as the step decodes
    while active:
        tokens = sample_next(logits, params, generator)
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
        tokens = torch.tensor(token_list, device=device)
        rows_now = [active[r] for r in feed]
        logits, hidden, mask, position = decode_step(model, cache, mask, position, tokens, feed, output_hidden=True)
        n_ctx = (mask.sum(-1) - 1).tolist()      # positions each fed token attended to before itself
        stats.tokens_fed += len(rows_now)
        if dims is not None:
            for child_i, c in zip(rows_now, n_ctx):
                flops = sequence_flops(dims, int(c), 1)
                children[child_i].flops += flops
                stats.flops += flops
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
            child.path_text = nodes[child.parent].path_text + child.text
            nodes.append(child)
            if child.finish_reason in (None, "budget") and is_final(cfg, question["question"], child):
                child.finished, child.finish_reason, child.state = True, "stop", None
        began = time.perf_counter()
        scores, flops = scorer.score_nodes(question, prompt, nodes, children)
        costs["scorer_seconds"] += time.perf_counter() - began
        costs["scorer_flops"] += flops
        for child, score in zip(children, scores):
            child.score = float(score)
            if cfg.min_score is not None and child.score <= cfg.min_score:
                child.pruned, child.state = True, None
        if depth == cfg.max_depth:
            for child in children:
                if not child.finished:
                    child.finished, child.finish_reason = True, "length"
        width_left -= sum(c.leaf for c in children)
        open_nodes = [c for c in children if not c.finished and not c.pruned]
        if width_left <= 0 or not open_nodes:
            break
        counts = policy([c.score for c in open_nodes], width_left)
        frontier = [c for c, n in zip(open_nodes, counts) if n > 0]
        counts = [n for n in counts if n > 0]
    for node in nodes:
        node.state, node.hidden = None, None
    # seed 000's count, reported beside ours: rebase.py charges every node it keeps (pruned ones it never
    # inserts) the step cap times its depth
    costs["flops_seed000"] = seed000_rebase_flops(dims, cfg.max_step_tokens,
                                                  [n.depth for n in nodes[1:] if not n.pruned])
    return nodes, costs


def path_of(nodes: list[Node], leaf: Node) -> list[Node]:
    path = []
    node: Node | None = leaf
    while node is not None and node.parent is not None:
        path.append(node)
        node = nodes[node.parent]
    return path[::-1]


def _round_preserving_sum(values: list[float], total: int) -> list[int]:
    """Integers that sum to `total`, each the floor of its value plus one for the largest remainders."""
    floors = [math.floor(v + 1e-9) for v in values]
    order = sorted(range(len(values)), key=lambda i: floors[i] - values[i])
    for i in order[: total - sum(floors)]:
        floors[i] += 1
    return floors


def leaf_records(question: dict[str, Any], prompt: str, nodes: list[Node], costs: dict[str, Any],
                 seconds: float, scorer_name: str) -> list[dict[str, Any]]:
    """The leaves (finished, not pruned) as response records. Shared costs are split so that sums over a
    question's records equal the tree's totals: a node's tokens, measured decode FLOPs and time go in equal
    shares to the leaves below it (nodes with no leaf below, e.g. pruned ones, to all leaves); the prompt's
    prefill goes to sample 0. A tree whose every path was pruned gives one empty response (finish_reason
    `pruned`, no answer) that carries its costs, as rebase.py counts such a question wrong."""
    leaves = [n for n in nodes if n.leaf]
    if not leaves:   # a stand-in leaf: the root's (empty) path
        leaves = [Node(index=0, parent=None, depth=0, finished=True, finish_reason="pruned")]
    below: dict[int, list[int]] = {n.index: [] for n in nodes}
    for leaf_i, leaf in enumerate(leaves):
        for node in path_of(nodes, leaf):
            below[node.index].append(leaf_i)
    share = [0.0] * len(leaves)
    decode_flops = [0.0] * len(leaves)
    for node in nodes[1:]:
        owners = below[node.index] or list(range(len(leaves)))
        for leaf_i in owners:
            share[leaf_i] += node.tokens / len(owners)
            decode_flops[leaf_i] += node.flops / len(owners)
    total_tokens = sum(n.tokens for n in nodes[1:])
    tokens = _round_preserving_sum(share, total_tokens)
    records = []
    for sample, leaf in enumerate(leaves):
        path = path_of(nodes, leaf)
        fraction = share[sample] / total_tokens if total_tokens else 1 / len(leaves)
        records.append({
            "id": question["id"], "sample": sample, "prompt": prompt,
            "completion": "".join(n.text for n in path),
            "n_prompt_tokens": costs["n_prompt_tokens"],
            "n_prefill_tokens": costs["n_prompt_tokens"] if sample == 0 else 0,
            "n_completion_tokens": tokens[sample], "n_thought_tokens": 0,
            "finish_reason": leaf.finish_reason,
            "seconds": seconds * fraction,
            "flops": {"prefill": costs["prefill_flops"] if sample == 0 else 0.0,
                      "decode": decode_flops[sample], "thought": 0.0,
                      "scorer": costs["scorer_flops"] * fraction},
            "flops_seed000": costs["flops_seed000"] * fraction,
            # the stand-in of a fully pruned tree: one empty step, scored 0 (it states no answer either way)
            "steps": [n.text for n in path] or [""],
            "step_scores": [n.score for n in path] or [0.0],
            "meta": {"leaf": leaf.index, "path_tokens": leaf.path_tokens, "depth": leaf.depth,
                     "scorer": scorer_name, "n_leaves": len(leaves), "n_nodes": len(nodes)},
        })
    return records


def tree_record(question: dict[str, Any], nodes: list[Node], costs: dict[str, Any], cfg: TreeSearchConfig) -> dict[str, Any]:
    return {"id": question["id"], "width": cfg.width, "max_step_tokens": cfg.max_step_tokens,
            "max_total_tokens": cfg.max_total_tokens, "tokens_fed": costs["tokens_fed"],
            "nodes": [n.record() for n in nodes]}


def load_tree_scorer(lm: LoadedModel, cfg: TreeSearchConfig) -> dict[str, Any]:
    """The method's `load`: its PRM, loaded before generation is timed (its load time is load time)."""
    return {"scorer": load_scorer(cfg.scorer, policy_model=lm)}


def generate_tree(questions: list[dict[str, Any]], shots: list[dict[str, Any]], lm: LoadedModel,
                  cfg: TreeSearchConfig, seed: int, scorer: StepScorer | None = None) -> Iterator[list[dict[str, Any]]]:
    """The `generate` of every tree-search method, whose config's `children` shares out the width: one
    question at a time (its frontier is the batch). `scorer` is `load_tree_scorer`'s (loaded here if None)."""
    prompt_cfg = cfg.prompt_config
    dims = ModelDims.from_config(lm.spec["config"])
    scorer = scorer or load_tree_scorer(lm, cfg)["scorer"]
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
           "generate_tree", "load_tree_scorer", "encode_prompt", "leaf_records", "is_final"]
