"""Plain manifests: every ``.yaml``, ``.yml`` and ``.json`` file under a directory, recursively.

Files are read in sorted path order (the order does not matter for the result, which is sorted
canonically later, but it makes errors reproducible). Hidden directories are skipped. A symlink
is followed only if it stays inside the checkout; otherwise the render is refused. A ``.jsonnet``
file is refused, naming it: fleet does not evaluate jsonnet, and a directory of jsonnet must not
render to nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleet.errors import StalledError
from fleet.render.documents import DocumentLimits, parse_documents
from fleet.types import Manifest

__all__ = ["load_directory"]

SUFFIXES = (".yaml", ".yml", ".json")


def load_directory(checkout: Path, path: str, *, limits: DocumentLimits) -> list[Manifest]:
    """The objects of repository path `path` (a directory or one file) in `checkout`."""
    root = checkout.resolve()
    start = checkout / path
    files = [start] if start.is_file() else _files(start)
    objects: list[Manifest] = []
    for file in files:
        rel = file.relative_to(checkout).as_posix()
        if rel.endswith(".jsonnet"):
            raise StalledError(
                f"path {rel!r} is a jsonnet file: fleet does not evaluate jsonnet; render it in "
                "CI and commit the YAML"
            )
        real = file.resolve()
        if not real.is_relative_to(root):
            raise StalledError(f"path {rel!r} is a symlink that escapes the repository")
        if not real.is_file():
            raise StalledError(f"path {rel!r} is a dangling symlink")
        size = real.stat().st_size
        if size > limits.max_file_bytes:
            raise StalledError(
                f"path {rel!r}: file is {size} bytes, over the limit of {limits.max_file_bytes}"
            )
        objects.extend(parse_documents(real.read_bytes(), source=rel, limits=limits))
    return objects


def _files(directory: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            Path(dirpath) / n for n in sorted(filenames) if n.endswith((*SUFFIXES, ".jsonnet"))
        )
    return found
