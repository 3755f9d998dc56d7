"""Config validation against workflow/schemas/config.schema.yaml, and helpers the Snakefile uses."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """The config is invalid; the message names the offending key."""


def _key_path(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    where = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        keys = ", ".join(_key_path(where + [k]) for k in extra)
        return f"unknown key {keys} (allowed here: {', '.join(allowed)})"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"missing key {_key_path(where + [missing])}"
    return f"{_key_path(where)}: {error.message}"


def validate_config(config: dict[str, Any], schema_path: str | Path) -> None:
    """Raise ConfigError naming the first bad key, then check cross references (runs -> names)."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(list(e.absolute_path)), list(e.absolute_path)))
    if errors:
        # the deepest error under an if/then names the precise key; prefer it
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(f"config: {_describe(best)}")
    for index, run in enumerate(config["runs"]):
        for section in ("datasets", "models", "methods"):
            for name in run[section]:
                if name not in config[section]:
                    raise ConfigError(f"config: runs.{index}.{section}: {name!r} is not defined under `{section}:` "
                                      f"(defined: {sorted(config[section])})")


def cot_scaling_pairs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(dataset, model) of every run with seed 004's standard method; each must also run the CoT method."""
    section = config.get("cot_scaling")
    if not section:
        return []
    for key in ("standard", "cot"):
        if section[key] not in config["methods"]:
            raise ConfigError(f"config: cot_scaling.{key}: {section[key]!r} is not defined under `methods:` "
                              f"(defined: {sorted(config['methods'])})")
    triples = run_triples(config)
    pairs = [(d, m) for d, m, method in triples if method == section["standard"]]
    for dataset, model in pairs:
        if (dataset, model, section["cot"]) not in triples:
            raise ConfigError(f"config: cot_scaling: dataset {dataset!r} / model {model!r} runs the standard method "
                              f"{section['standard']!r} but not the CoT method {section['cot']!r}")
    if not pairs:
        raise ConfigError(f"config: cot_scaling.standard: no run uses method {section['standard']!r}")
    return pairs


def run_triples(config: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every (dataset, model, method) the config asks for, in config order, without repeats."""
    triples = []
    for run in config["runs"]:
        for triple in itertools.product(run["datasets"], run["models"], run["methods"]):
            if triple not in triples:
                triples.append(triple)
    return triples


def code_hash(*modules: str) -> str:
    """A short hash of the source of `modules` (packages: all their .py files).

    Snakemake's `code` rerun trigger sees only shell/run bodies, not imported library code; putting this
    hash in a rule's params makes the rule rerun when the library code it runs changes.
    """
    digest = hashlib.sha256()
    for module in sorted(modules):
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise ConfigError(f"code_hash: module {module!r} not found")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for file in files:
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]
