"""Config validation against workflow/schemas/config.schema.yaml, and helpers the Snakefile uses."""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from infscale.schema import load_schema


class ConfigError(ValueError):
    """The config is invalid; the message, one line, names the offending key."""


class _StrictLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (plain YAML keeps the last silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":   # `<<: *anchor` entries may be overridden
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"{key_node.start_mark.name}:{key_node.start_mark.line + 1}: duplicate key {key!r} "
                              f"(first on line {seen[key] + 1})")
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_config(path: str | Path) -> dict[str, Any]:
    """A config file as data (YAML, safe: tags that build Python objects are refused), duplicate keys rejected."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            config = yaml.load(handle, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(config).__name__}")
    if "__use_yte__" in config:
        # Snakemake's loader runs YTE templates (Python expressions) in files that opt in with this key
        raise ConfigError(f"{path}: __use_yte__: YTE templates evaluate Python; infscale configs are plain data")
    return config


def check_config_file(path: str | Path, schema_path: str | Path) -> dict[str, Any]:
    """Load and validate one config file (what `infscale check-config` and the Snakefile run); return it."""
    config = load_config(path)
    validate_config(config, schema_path)
    return config


def _key_path(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    where = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        keys = ", ".join(_key_path(where + [k]) for k in extra)
        return f"unknown key {keys} (allowed here: {', '.join(allowed)})"
    if error.validator == "unevaluatedProperties":  # how methods composed of shared parts ($ref) report extra keys
        extra = re.findall(r"'([^']+)'", error.message.partition("(")[2])
        return f"unknown key {', '.join(_key_path(where + [k]) for k in extra)}"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"missing key {_key_path(where + [missing])}"
    return f"{_key_path(where)}: {error.message}"


def _leaves(errors: Iterable[jsonschema.ValidationError]) -> Iterator[jsonschema.ValidationError]:
    for error in errors:
        if error.context:
            yield from _leaves(error.context)
        else:
            yield error


def _most_precise(errors: list[jsonschema.ValidationError]) -> jsonschema.ValidationError:
    """The error naming the deepest key. A failed `allOf` part also makes unevaluatedProperties list every
    key of that part as unexpected, which misleads; it is reported only when nothing else is wrong."""
    leaves = list(_leaves(errors))
    precise = [e for e in leaves if e.validator != "unevaluatedProperties"] or leaves
    return max(precise, key=lambda e: (len(e.absolute_path), e.validator != "required"))


def validate_config(config: dict[str, Any], schema_path: str | Path) -> None:
    """Raise ConfigError naming the first bad key, then check cross references (runs -> names)."""
    schema = load_schema(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(list(e.absolute_path)), list(e.absolute_path)))
    if errors:
        raise ConfigError(" ".join(f"config: {_describe(_most_precise(errors))}".split()))
    _check_references(config)
    _check_methods(config)
    _check_models(config)


def _undefined(key: str, name: Any, section: str, config: dict[str, Any]) -> ConfigError:
    return ConfigError(f"config: {key}: {name!r} is not defined under `{section}:` "
                       f"(defined: {sorted(config.get(section, {}))})")


def _check_references(config: dict[str, Any]) -> None:
    """Every name a run, method, scorer or thinker uses is defined, and no run lists a name twice."""
    for index, run in enumerate(config["runs"]):
        for key, section in (("datasets", "datasets"), ("models", "models"), ("methods", "methods"),
                             ("scorers", "scorers"), ("labellers", "models")):
            names = run.get(key, [])
            for name in names:
                if name not in config.get(section, {}):
                    raise _undefined(f"runs.{index}.{key}", name, section, config)
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ConfigError(f"config: runs.{index}.{key}: {repeated[0]!r} is listed twice")
    for name, method in config["methods"].items():
        for key, section in (("scorer", "scorers"), ("thinker", "thinkers")):
            if key in method and method[key] not in config.get(section, {}):
                raise _undefined(f"methods.{name}.{key}", method[key], section, config)
    for section in ("scorers", "thinkers"):
        for name, entry in config.get(section, {}).items():
            if "model" in entry and entry["model"] not in config["models"]:
                raise _undefined(f"{section}.{name}.model", entry["model"], "models", config)


def _check_methods(config: dict[str, Any]) -> None:
    """Each method's own checks (its config dataclass, e.g. beam_width <= width) and, for sampled pools, that
    `aggregate.n_values` has an N its M samples support (the aggregation's own check), named by its key."""
    from infscale.aggregate import n_grid
    from infscale.methods import build_config

    n_values = config.get("aggregate", {}).get("n_values")
    for name, method in config["methods"].items():
        try:
            built = build_config(name, method)
            if n_values and hasattr(built, "n_samples"):
                n_grid(n_values, built.n_samples, where=f"methods.{name}.n_samples")
        except (ValueError, TypeError) as err:
            message = str(err) if str(err).startswith(f"methods.{name}") else f"methods.{name}: {err}"
            raise ConfigError(" ".join(f"config: {message}".split())) from None


def _check_models(config: dict[str, Any]) -> None:
    """Embedded models exist; hub models can load (HF_HUB_OFFLINE set: only from the local cache)."""
    from infscale.models.embedded import EMBEDDED_MODELS
    from infscale.models.loading import hub_cached, hub_offline

    for name, model in config["models"].items():
        if model["source"] == "embedded" and model["id"] not in EMBEDDED_MODELS:
            raise ConfigError(f"config: models.{name}.id: {model['id']!r} is not an embedded model "
                              f"(embedded: {sorted(EMBEDDED_MODELS)})")
        if model["source"] == "hub" and hub_offline() and not hub_cached(model["id"], model.get("revision")):
            raise ConfigError(f"config: models.{name}.id: hub model {model['id']!r} is not in the local Hugging Face "
                              f"cache and HF_HUB_OFFLINE is set (download it first, or use an embedded model)")
        _check_backend(name, model)
        if model.get("trust_remote_code"):
            warnings.warn(f"config: models.{name}.trust_remote_code is true: loading it runs code from "
                          f"{model['id']!r}", stacklevel=2)


def _check_backend(name: str, model: dict[str, Any]) -> None:
    """A model's backend can run here and its compute type fits it (one line naming the key)."""
    from infscale.models.backend import check_backend

    backend, compute_type = model.get("backend", "hf"), model.get("compute_type")
    if backend == "hf" and compute_type is not None:
        raise ConfigError(f"config: models.{name}.compute_type: set for backend hf, which uses models.{name}.dtype "
                          "(compute_type is for ct2 / llamacpp / vllm)")
    if backend == "llamacpp" and model["source"] != "embedded":
        raise ConfigError(f"config: models.{name}.backend: llamacpp runs an embedded model's GGUF; this model's source "
                          f"is {model['source']} (use hf, ct2 or vllm)")
    try:
        check_backend(name, backend, compute_type if backend in ("ct2", "llamacpp") else None)
    except ValueError as err:
        raise ConfigError(f"config: {err}") from None


def check_config_files(paths: Iterable[str | Path]) -> None:
    """The config files Snakemake read, re-read strictly (duplicate keys, which Snakemake's loader keeps)."""
    for path in paths:
        load_config(path)


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

