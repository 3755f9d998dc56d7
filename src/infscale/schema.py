"""The config schema (workflow/schemas/config.schema.yaml): the one source of every config key's constraints and
defaults. `infscale.config` validates configs against it; the config dataclasses (prompts, methods, datasets,
models, thinkers, labelling) take their defaults from it (`defaults`), and the workflow reads a section's
unset keys from it (`setting`), so no default or bound is written twice."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


@functools.cache
def load_schema(path: str | Path = SCHEMA) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def _properties(definition: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a definition, its `allOf` parts' included."""
    found: dict[str, Any] = {}
    for part in definition.get("allOf", []):
        if "$ref" in part:
            found.update(_properties(schema["$defs"][part["$ref"].rsplit("/", 1)[-1]], schema))
    found.update(definition.get("properties", {}))
    return found


def defaults(definition: str, path: str | Path = SCHEMA) -> dict[str, Any]:
    """The `default` of every key of `$defs.<definition>` (e.g. "prompt", "sampling_options", "thinker") or, when
    no such definition exists, of the top-level section `definition` (e.g. "aggregate")."""
    schema = load_schema(path)
    node = schema["$defs"].get(definition) or schema["properties"][definition]
    return {key: spec["default"] for key, spec in _properties(node, schema).items()
            if isinstance(spec, Mapping) and "default" in spec}


def setting(config: Mapping[str, Any], section: str, key: str) -> Any:
    """`config[section][key]`, or the schema's default for it when the config leaves it out."""
    given = config.get(section) or {}
    return given[key] if key in given else defaults(section)[key]
