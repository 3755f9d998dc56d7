"""REBASE (Wu et al. 2024, seed 002): reward-balanced tree search. The root gets the full width; at every depth
each finished node uses up one unit of width for good, and the open nodes share the rest by the softmax of
their PRM scores (`allocate_children`). Its finished leaves are the responses; the tree is kept in sample 0's
`meta.tree` (docs/file-formats.md)."""

from __future__ import annotations

from dataclasses import dataclass

from infscale.methods import MethodSpec, register
from infscale.methods.tree import TreeSearchConfig, allocate_children, generate_tree, load_tree_scorer


@dataclass(frozen=True)
class RebaseConfig(TreeSearchConfig):
    softmax_temperature: float = 0.2     # of the PRM scores when sharing width among open nodes

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.softmax_temperature <= 0:
            raise ValueError(f"softmax_temperature must be > 0, got {self.softmax_temperature}")

    def children(self, scores: list[float], width: int) -> list[int]:
        return allocate_children(scores, width, self.softmax_temperature)


SPEC = register(MethodSpec(kind="rebase", config_class=RebaseConfig, generate=generate_tree,
                           load=load_tree_scorer))
