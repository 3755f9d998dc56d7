"""PRM beam search (search-and-learn style): each depth keeps the top width/beam_width open paths by PRM score
and expands each `beam_width` times; finished paths leave the beam and use up width, as in REBASE. Shares the
tree machinery (`methods/tree.py`), so records, trees and costs have REBASE's format."""

from __future__ import annotations

from dataclasses import dataclass

from infscale.methods import MethodSpec, register
from infscale.methods.tree import TreeSearchConfig, beam_children, generate_tree, load_tree_scorer


@dataclass(frozen=True)
class BeamConfig(TreeSearchConfig):
    beam_width: int = 4                  # children per kept path (search-and-learn's M)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.beam_width <= self.width:
            raise ValueError(f"beam_width must be in 1..width ({self.width}), got {self.beam_width}")

    def children(self, scores: list[float], width: int) -> list[int]:
        return beam_children(scores, width, self.beam_width)


SPEC = register(MethodSpec(kind="beam", config_class=BeamConfig, generate=generate_tree,
                           load=load_tree_scorer))
