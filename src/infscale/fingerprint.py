"""What a resumable job computes, as one string: a `.partial` file is resumed only by the same job."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from infscale.codehash import code_hash

# libraries whose upgrade may change a job's records: part of every resumable job's fingerprint
RESULT_PACKAGES = ("torch", "transformers", "tokenizers", "math-verify")


def job_fingerprint(entry_points: Sequence[str], params: Any, files: Sequence[str | Path]) -> str:
    """What a resumable job computes: the code its entry points run, its parameters (JSON), the bytes of its
    input files and the versions of the libraries that shape its records. A `.partial` file is resumed only
    by a job with the same fingerprint (infscale.io.ResumableJsonlWriter)."""
    digest = hashlib.sha256(code_hash(*entry_points).encode())
    digest.update(json.dumps([params, package_versions(RESULT_PACKAGES)], sort_keys=True, default=str).encode())
    for path in files:
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()[:32]


def package_versions(names: Sequence[str]) -> dict[str, str | None]:
    """Installed version of each distribution (None: not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
