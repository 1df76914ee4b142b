"""Argo CD's directory source: plain manifests of one directory, or a tree when ``recurse``.

What is read, as Argo CD reads it: files named ``*.yaml``, ``*.yml``, ``*.json`` (and
``*.jsonnet``) in the app's directory, and in its subdirectories only with ``recurse``; each
file's path relative to the app's directory must not match ``exclude`` and, when ``include`` is
given, must match it (:mod:`fleet.render.globs`). A YAML file that yields no Kubernetes object and
does not look like one (it lacks any of ``apiVersion:``, ``kind:``, ``metadata:``) is someone
else's file (a values file, a CI config) and is skipped, as Argo CD does; one that looks like an
object but does not decode is an error naming it.

A ``.jsonnet`` file that would be read is handed to the caller to evaluate
(:mod:`fleet.render.jsonnet`); where the Jsonnet bindings are not installed it is refused, naming
it (never a directory rendered to nothing), as is any ``directory.jsonnet`` option. Where fleet
is stricter than silence: a kustomization or a ``Chart.yaml`` in a subdirectory that
would be read is refused, naming it (Argo CD's documentation: a directory app fails on kustomize
or Helm files; fleet does not read their templates as manifests). Links were checked by
:func:`fleet.render.confine.check_tree` before this runs; each file is still checked here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fleet.errors import StalledError
from fleet.render import globs
from fleet.render.documents import DocumentLimits, parse_documents
from fleet.render.spec import DirectoryOptions, JsonnetOptions
from fleet.types import Manifest

__all__ = ["load_directory", "selected_files"]

log = logging.getLogger(__name__)

_MANIFEST = (".yaml", ".yml", ".json", ".jsonnet")
_TOOL_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization", "Chart.yaml")
_MARKS = (b"apiVersion:", b"kind:", b"metadata:")


def selected_files(root: Path, options: DirectoryOptions) -> list[str]:
    """The paths, relative to `root`, that `options` select, sorted (see the module docstring)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if not options.recurse:
            dirnames.clear()
        base = Path(dirpath)
        for name in sorted(filenames):
            if not name.endswith(_MANIFEST) and name != "Kustomization":
                continue
            rel = (base / name).relative_to(root).as_posix()
            if options.exclude and globs.matches(
                options.exclude, rel, field="spec.source.directory.exclude"
            ):
                continue
            if options.include and not globs.matches(
                options.include, rel, field="spec.source.directory.include"
            ):
                continue
            found.append(rel)
    return found


def load_directory(
    checkout: Path,
    path: str,
    options: DirectoryOptions,
    *,
    limits: DocumentLimits,
    jsonnet_files: list[str] | None = None,
) -> list[Manifest]:
    """The objects of the directory at repository path `path` of `checkout`, per `options`.

    The repository paths of the jsonnet files to read are appended to `jsonnet_files` for the
    caller to evaluate (:mod:`fleet.render.jsonnet`); without that list they are refused.
    """
    if jsonnet_files is None and options.jsonnet != JsonnetOptions():
        raise StalledError(
            "spec.source.directory.jsonnet is not supported here: the Jsonnet bindings (PyPI "
            "jsonnet) are not installed; install them, or render it in CI and commit the YAML"
        )
    start = checkout / path
    if start.is_file():
        return _load(checkout, start, limits=limits)
    objects: list[Manifest] = []
    for rel in selected_files(start, options):
        file = start / rel
        repo_rel = file.relative_to(checkout).as_posix()
        if file.name.endswith(".jsonnet") and jsonnet_files is not None:
            jsonnet_files.append(repo_rel)
            continue
        if file.name.endswith(".jsonnet"):
            raise StalledError(
                f"path {repo_rel!r} is a jsonnet file and the Jsonnet bindings (PyPI jsonnet) are "
                "not installed; install them, render it in CI and commit the YAML, or exclude it "
                "with spec.source.directory.exclude"
            )
        if file.name in _TOOL_FILES and "/" in rel:
            kind = "Helm chart" if file.name == "Chart.yaml" else "kustomization"
            raise StalledError(
                f"path {repo_rel!r} is a {kind} inside the directory app at {path!r}: a "
                "directory app renders plain manifests only (Argo CD fails on it too); point "
                "an app at its directory, or exclude it with spec.source.directory.exclude"
            )
        objects.extend(_load(checkout, file, limits=limits))
    return objects


def _load(checkout: Path, file: Path, *, limits: DocumentLimits) -> list[Manifest]:
    rel = file.relative_to(checkout).as_posix()
    real = file.resolve()
    if not real.is_relative_to(checkout.resolve()):
        raise StalledError(f"path {rel!r} is a symlink that escapes the repository")
    if not real.is_file():
        raise StalledError(f"path {rel!r} is a dangling symlink or not a file")
    size = real.stat().st_size
    if size > limits.max_file_bytes:
        raise StalledError(
            f"path {rel!r}: file is {size} bytes, over the limit of {limits.max_file_bytes}"
        )
    data = real.read_bytes()
    try:
        return parse_documents(data, source=rel, limits=limits)
    except StalledError:
        if rel.endswith(".json") or all(mark in data for mark in _MARKS):
            raise
        log.info("event=directory_file_skipped path=%s reason=not_a_manifest", rel)
        return []
