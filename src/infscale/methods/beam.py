"""PRM beam search (search-and-learn style): each depth keeps the top width/beam_width open paths by PRM score
and expands each `beam_width` times (`beam_children`); finished paths leave the beam and use up width, as in
REBASE. Shares the search loop (`methods/tree.py`), so records, trees and costs have REBASE's format."""

from __future__ import annotations

from dataclasses import dataclass

from infscale.methods import MethodSpec, register
from infscale.methods.tree import TreeSearchConfig, generate_tree, load_tree_scorer


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


@dataclass(frozen=True)
class BeamConfig(TreeSearchConfig):
    beam_width: int = 4                  # children per kept path (search-and-learn's M)

    def __post_init__(self) -> None:
        # the schema bounds each key; that they fit together is checked here
        if self.beam_width > self.width:
            raise ValueError(f"beam_width must be in 1..width ({self.width}), got {self.beam_width}")

    def children(self, scores: list[float], width: int) -> list[int]:
        return beam_children(scores, width, self.beam_width)


SPEC = register(MethodSpec(kind="beam", config_class=BeamConfig, generate=generate_tree,
                           load=load_tree_scorer))
