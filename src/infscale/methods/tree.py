"""The tree searches' loop (REBASE, beam search) and its records: grow a question's tree step by step with the
KV-cache engine (`methods/kv_tree.py`), score each new step with the PRM, prune, and share the width left
among the open nodes by the method's rule; then the leaves as response records and the whole tree in sample 0.

A search method only decides how many children each open node gets (its config's `children`, a
`SearchPolicy`: REBASE's `allocate_children` in `rebase.py`, the beam rule in `beam.py`); `run_search` and
`generate_tree` do the rest. Width accounting (REBASE): every finished node uses up one unit of width for
good; the open nodes share what is left; a node scoring at most `min_score` is pruned (neither a leaf nor
expanded, as rebase.py drops it).
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from infscale.compute import ModelDims, seed000_rebase_flops, sequence_flops
from infscale.grading import extract_answer
from infscale.methods import Resources
from infscale.methods.kv_tree import ExpandStats, Node, encode_prompt, expand
from infscale.models.hf import LoadedModel, SamplingParams, stream_generator
from infscale.prompts import PromptConfig, build_prompt
from infscale.scoring.features import StepReading
from infscale.schema import defaults
from infscale.scoring.scorers import PRMConfig, ScorerFiles, StepScorer, load_scorer

_DEFAULTS = defaults("tree_search")   # the schema's bounds and defaults of the search keys

# (scores of the open nodes, width left) -> children per open node, in the order of the scores
SearchPolicy = Callable[[list[float], int], list[int]]


@dataclass(frozen=True)
class TreeSearchConfig:
    """Options shared by every tree-search method (see the schema's `rebase` / `beam` definitions)."""

    width: int = 16                     # leaves the search may finish (REBASE's W; beam search's N)
    scorer: str = ""                    # the PRM: a name under `scorers:` (its entry and files: `load_tree_scorer`)
    temperature: float = 1.0
    top_p: float = 1.0
    max_depth: int = 8                  # steps per path
    max_step_tokens: int = 48           # tokens per step
    max_total_tokens: int = 256         # tokens per path (cumulative over its steps)
    step_separator: str = "\n"          # ends a step; with "{n}" the next step's header, cut off (see step_header)
    step_header: str = ""              # fed before step n >= 2 ("\\nStep {n}:"); part of the step, not sampled
    stop: list[str] = field(default_factory=lambda: ["\n\n", "Q:"])   # ends the whole solution
    final_test: str = _DEFAULTS["final_test"]  # markers: a step stating its answer ends the path | markers_or_number
    final_markers: list[str] = field(default_factory=list)  # strings that end a path wherever they appear
    min_score: float | None = None      # prune children scoring <= this (rebase.py: 0.1)
    shards: int = 1
    batch_rows: int = _DEFAULTS["batch_rows"]  # children decoded in one batch, over questions searched together
    prompt: dict[str, Any] = field(default_factory=dict)

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


# one expansion a search asks for: its frontier and the children of each frontier node
SearchRequest = tuple[list[Node], list[int]]
# the random streams of one question's children: (depth, number of children) -> one stream per child
StreamsOf = Callable[[int, int], list[torch.Generator]]


def search_steps(question: dict[str, Any], prompt: str, lm: LoadedModel, scorer: StepScorer, cfg: TreeSearchConfig,
                 policy: SearchPolicy, dims: ModelDims
                 ) -> Generator[SearchRequest, tuple[list[Node], ExpandStats], tuple[list[Node], dict[str, Any]]]:
    """Grow one question's tree, as a coroutine: it yields each expansion it needs (frontier, children per
    node) and is sent back (children, stats), so that a driver may batch the expansions of many questions
    (`run_searches`) or run them one by one (`run_search`). Returns all nodes (index 0 = the root) and cost
    totals."""
    root_state, n_prompt = encode_prompt(lm, prompt)
    root = Node(index=0, parent=None, depth=0, state=root_state, hidden=root_state.hidden)
    nodes = [root]
    costs = {"n_prompt_tokens": n_prompt, "tokens_fed": n_prompt, "scorer_flops": 0.0, "scorer_seconds": 0.0,
             "prefill_flops": sequence_flops(dims, 0, n_prompt, n_logits=1), "decode_flops": 0.0}
    frontier, counts = [root], [cfg.width]
    width_left = cfg.width
    for depth in range(1, cfg.max_depth + 1):
        children, stats = yield frontier, counts
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
        paths = [[n.text for n in path_of(nodes, child)] for child in children]
        readings = [StepReading(c.hidden, c.token_ids, c.token_logprobs) for c in children]
        scores, flops = scorer.score_last_steps(question["question"], prompt, paths, readings)
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


def _streams(generator: torch.Generator | StreamsOf, depth: int, rows: int) -> list[torch.Generator]:
    return [generator] * rows if isinstance(generator, torch.Generator) else generator(depth, rows)


def run_search(question: dict[str, Any], prompt: str, lm: LoadedModel, scorer: StepScorer, cfg: TreeSearchConfig,
               policy: SearchPolicy, generator: torch.Generator | StreamsOf, dims: ModelDims,
               expand_fn: Callable[..., tuple[list[Node], ExpandStats]] | None = None) -> tuple[list[Node], dict[str, Any]]:
    """Grow one question's tree on its own. Returns all nodes (index 0 = the root) and cost totals.

    `generator`: one stream for all of its children, or the question's `StreamsOf`. `expand_fn` replaces
    `expand` (same signature; benchmarks/rebase_kv_reuse.py passes a re-encoding one)."""
    expand_fn = expand_fn or expand
    search = search_steps(question, prompt, lm, scorer, cfg, policy, dims)
    try:
        frontier, counts = next(search)
        while True:
            streams = _streams(generator, frontier[0].depth + 1 if frontier else 0, sum(counts))
            frontier, counts = search.send(expand_fn(lm, frontier, counts, cfg, streams, dims))
    except StopIteration as done:
        return done.value


@dataclass
class _OpenSearch:
    question: dict[str, Any]
    prompt: str
    search: Generator[SearchRequest, tuple[list[Node], ExpandStats], tuple[list[Node], dict[str, Any]]]
    streams: StreamsOf
    request: SearchRequest | None = None
    seconds: float = 0.0


def run_searches(items: Iterable[tuple[dict[str, Any], str, StreamsOf]], lm: LoadedModel, scorer: StepScorer,
                 cfg: TreeSearchConfig, policy: SearchPolicy, dims: ModelDims
                 ) -> Iterator[tuple[dict[str, Any], str, list[Node], dict[str, Any], float]]:
    """Many questions' searches in lockstep: each round expands the frontiers of all open searches as one
    batch, `cfg.batch_rows // cfg.width` questions at a time (a question's frontier has at most `width`
    children); a question joins as soon as another's search ends. Each child draws from its own stream, so a
    tree does not depend on the questions it was batched with. Yields (question, prompt, nodes, costs,
    seconds) as each search ends; its seconds are its own prompt encoding and scoring plus its share, by tokens
    fed, of the batched expansions (the seconds of all questions add up to the wall time)."""
    pending = iter(items)
    in_flight = max(1, cfg.batch_rows // cfg.width)
    open_searches: list[_OpenSearch] = []
    while True:
        for question, prompt, streams in itertools.islice(pending, in_flight - len(open_searches)):
            began = time.perf_counter()
            search = _OpenSearch(question, prompt, search_steps(question, prompt, lm, scorer, cfg, policy, dims),
                                 streams)
            try:
                search.request = next(search.search)
                search.seconds = time.perf_counter() - began
                open_searches.append(search)
            except StopIteration as done:
                yield question, prompt, *done.value, time.perf_counter() - began
        if not open_searches:
            return
        parents, counts, streams = [], [], []
        for search in open_searches:
            frontier, children_of = search.request
            parents += frontier
            counts += children_of
            streams += search.streams(frontier[0].depth + 1, sum(children_of)) if frontier else []
        began = time.perf_counter()
        children, _ = expand(lm, parents, counts, cfg, streams, dims)
        spent = time.perf_counter() - began
        fed = sum(child.fed for child in children)
        still_open, start = [], 0
        for search in open_searches:
            own = children[start : start + sum(search.request[1])]
            start += len(own)
            stats = ExpandStats.of(own)
            search.seconds += spent * (stats.tokens_fed / fed if fed else
                                       len(own) / len(children) if children else 1 / len(open_searches))
            began = time.perf_counter()
            try:
                search.request = search.search.send((own, stats))
                still_open.append(search)
            except StopIteration as done:
                yield search.question, search.prompt, *done.value, search.seconds + time.perf_counter() - began
                continue
            search.seconds += time.perf_counter() - began
        open_searches = still_open


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
    tokens = round_preserving_sum(share, total_tokens)
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


def load_tree_scorer(lm: LoadedModel, cfg: TreeSearchConfig, resources: Resources) -> dict[str, Any]:
    """The method's `load`: its PRM (`resources.scorer`, the `scorers:` entry `cfg.scorer` names, and its
    files), loaded before generation is timed (its load time is load time)."""
    if resources.scorer is None:
        raise ValueError(f"tree search: the entry of its scorer {cfg.scorer!r} was not given")
    prm = PRMConfig.from_config(cfg.scorer, resources.scorer)
    return {"scorer": load_scorer(prm, ScorerFiles(**resources.scorer_files), policy_model=lm)}


def generate_tree(questions: list[dict[str, Any]], shots: list[dict[str, Any]], lm: LoadedModel,
                  cfg: TreeSearchConfig, seed: int, scorer: StepScorer) -> Iterator[list[dict[str, Any]]]:
    """The `generate` of every tree-search method, whose config's `children` shares out the width: the
    questions' searches batched together (`run_searches`), each question's records as its search ends.
    `scorer` is `load_tree_scorer`'s."""
    prompt_cfg = cfg.prompt_config
    dims = ModelDims.from_config(lm.spec["config"])

    def streams_of(question: dict[str, Any]) -> StreamsOf:
        index = question["meta"]["index"]
        return lambda depth, rows: [stream_generator(seed, index, depth, child, device=lm.device)
                                    for child in range(rows)]

    items = ((question, build_prompt(question["question"], shots, prompt_cfg, lm.tokenizer), streams_of(question))
             for question in questions)
    for question, prompt, nodes, costs, seconds in run_searches(items, lm, scorer, cfg, cfg.children, dims):
        if lm.device.type == "cuda":
            torch.cuda.synchronize()
        records = leaf_records(question, prompt, nodes, costs, seconds, scorer.name)
        # the whole tree travels in sample 0's meta, so resume and shard merging need nothing new
        records[0]["meta"]["tree"] = tree_record(question, nodes, costs, cfg)
        yield records


__all__ = ["TreeSearchConfig", "SearchPolicy", "search_steps", "run_search", "run_searches", "generate_tree", "load_tree_scorer", "leaf_records",
           "tree_record", "is_final", "path_of", "round_preserving_sum"]
