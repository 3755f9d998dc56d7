"""Locked dependencies: constraints.txt pins the whole default set-up, and this environment matches it."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_every_direct_dependency_is_locked():
    """Of the default set-up (core + `dev`); opt-in extras such as `lmeval` are not part of it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    direct = project["dependencies"] + project["optional-dependencies"]["dev"]
    missing = {canonicalize_name(Requirement(r).name) for r in direct} - set(_constraints())
    assert not missing


def test_locked_versions_satisfy_the_pyproject_ranges():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = _constraints()
    for requirement in map(Requirement, project["dependencies"]):
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)], prereleases=True), requirement


def test_this_environment_has_exactly_the_locked_versions():
    """`make setup` installs with -c constraints.txt; a drifted environment (or lock) fails here."""
    drifted = {}
    for name, version in _constraints().items():
        try:
            installed = metadata.version(name).split("+")[0]   # torch's +cpu label
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            drifted[name] = (installed, version)
    assert not drifted, f"installed vs locked: {drifted} (run `make setup`, or `make lock` to refresh the lock)"


def test_setup_installs_with_the_constraints():
    makefile = (REPO / "Makefile").read_text()
    setup = makefile.split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert "$(CONSTRAINTS)" in setup.splitlines()[0]                 # the stamp depends on the lock
    installs = [line for line in setup.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs and all("-c $(CONSTRAINTS)" in line for line in installs)
