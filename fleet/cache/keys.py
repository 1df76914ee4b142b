"""The cache key: a digest of everything that decides a render's output, and nothing else.

Inputs: the renderer and its version, the git object id of every repository path the render
reads (the app's path and what it reaches outside it), and the renderer's own inputs (path,
release, namespace, values, and the per-cluster inputs actually used). A commit that leaves those
paths alone leaves the key alone; clusters that differ only in what the app does not read share it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from fleet.types import canonical_json

__all__ = ["render_key"]

_FORMAT = 1  # bump when the meaning of a key changes


def render_key(
    *, renderer: str, version: str, trees: Mapping[str, str], inputs: Mapping[str, Any]
) -> str:
    """The hex sha256 key of one render (pure)."""
    material = {
        "format": _FORMAT,
        "renderer": renderer,
        "version": version,
        "trees": dict(sorted(trees.items())),
        "inputs": inputs,
    }
    return hashlib.sha256(canonical_json(material)).hexdigest()
