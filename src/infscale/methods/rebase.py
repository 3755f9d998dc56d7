"""REBASE (Wu et al. 2024, seed 002): reward-balanced tree search. The root gets the full width; at every depth
each finished node uses up one unit of width for good, and the open nodes share the rest by the softmax of
their PRM scores (`allocate_children`). Its finished leaves are the responses; the tree is kept in sample 0's
`meta.tree` (docs/file-formats.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from infscale.methods import MethodSpec, register
from infscale.methods.tree import TreeSearchConfig, generate_tree, load_tree_scorer


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


@dataclass(frozen=True)
class RebaseConfig(TreeSearchConfig):
    softmax_temperature: float = 0.2     # of the PRM scores when sharing width among open nodes

    def children(self, scores: list[float], width: int) -> list[int]:
        return allocate_children(scores, width, self.softmax_temperature)


SPEC = register(MethodSpec(kind="rebase", config_class=RebaseConfig, generate=generate_tree,
                           load=load_tree_scorer))
