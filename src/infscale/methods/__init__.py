"""Generation methods, one module each, behind one registry keyed by the config's `kind`.

A method turns a batch of questions into response records (docs/file-formats.md). Each registry entry is a
`MethodSpec`: its config dataclass and its `generate(questions, shots, lm, cfg, seed, **loaded) ->
Iterator[list[dict]]`, which yields finished records question batch by question batch so the runner can
checkpoint them. A method that needs more than the policy (a PRM, a Quiet-STaR model) loads it in
`load(lm, cfg, resources) -> loaded`, which the runner times as load time, not generation time; `Resources`
carries the config entries the method names (as the config wrote them) and their files (the job's inputs).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

# method kind (the config's `kind`) -> the module that implements and registers it. Loaded on first use, so a
# job imports only its own method; the generate rule hashes `infscale.generate` + this module
# (infscale.codehash), so editing one method reruns only the generation that uses it. A new kind adds a line.
METHOD_MODULES: dict[str, str] = {
    "sampling": "infscale.methods.sampling",
    "rebase": "infscale.methods.rebase",
    "beam": "infscale.methods.beam",
    "quietstar": "infscale.methods.thinking",
    "quietstar_rebase": "infscale.methods.thinking",
}


def method_module(kind: str) -> str:
    """The module implementing method `kind`."""
    try:
        return METHOD_MODULES[kind]
    except KeyError:
        raise KeyError(f"unknown method kind {kind!r}; known: {sorted(METHOD_MODULES)}") from None


@dataclass(frozen=True)
class Resources:
    """What a method loads besides the policy: the entry of the PRM its `scorer:` names (under `scorers:`) and
    that scorer's files (`head`, `model_spec`: `scoring.scorers.ScorerFiles`), the entry of the Quiet-STaR model
    its `thinker:` names (under `thinkers:`) and its trained weights. Entries as the config wrote them."""

    scorer: dict[str, Any] | None = None
    scorer_files: dict[str, str | Path] = field(default_factory=dict)
    thinker: dict[str, Any] | None = None
    thinker_weights: str | Path | None = None

    @classmethod
    def from_job(cls, inputs: Mapping[str, Any], scorer: dict[str, Any] | None,
                 thinker: dict[str, Any] | None) -> "Resources":
        """A generate job's: the entries in its params (empty: none) and the files among its named inputs
        (`scorer_head`, `scorer_model_spec`, `thinker_weights`; workflow/rules/common.smk, `method_inputs`)."""
        return cls(scorer=scorer or None, thinker=thinker or None, thinker_weights=inputs.get("thinker_weights"),
                   scorer_files={key: inputs[f"scorer_{key}"] for key in ("head", "model_spec")
                                 if f"scorer_{key}" in inputs})


@dataclass(frozen=True)
class MethodSpec:
    kind: str
    config_class: type
    generate: Callable[..., Iterator[list[dict[str, Any]]]]
    load: Callable[[Any, Any, Resources], dict[str, Any]] | None = None


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    METHODS[spec.kind] = spec
    return spec


def get_method(kind: str) -> MethodSpec:
    if kind not in METHODS:
        importlib.import_module(method_module(kind))  # registers it
    return METHODS[kind]


def build_config(name: str, cfg: dict[str, Any]) -> Any:
    """The method's config dataclass from its config.yaml entry (`kind` excluded); unknown keys are errors."""
    spec = get_method(cfg["kind"])
    known = {f.name for f in fields(spec.config_class)}
    unknown = sorted(set(cfg) - known - {"kind"})
    if unknown:
        raise ValueError(f"methods.{name}: unknown key(s) {unknown} for kind {cfg['kind']!r}; known: {sorted(known)}")
    return spec.config_class(**{k: v for k, v in cfg.items() if k != "kind"})

