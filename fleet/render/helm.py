"""Helm: ``helm template`` of a chart in the repository, with value files and inline values.

Value files are named relative to the chart's directory (as Argo CD does) and may lie outside it,
e.g. ``../values/prod.yaml``; :func:`reads` lists them with the chart so they are extracted and
keyed. A reference that leaves the repository is refused. Charts must vendor their dependencies
(``charts/``): fleet renders offline and Helm's own directories live in the render's temp dir.

Offline means: the chart is named by its absolute path in the checkout (so Helm never looks it up
in a repository), no ``--dependency-update``, ``--repo`` or ``--verify``, value files are local
paths, and Helm's repository, registry and plugin settings are the scratch's (see
:func:`fleet.render.tools.tool_env`). :func:`check_dependencies` refuses a ``file://`` dependency
of ``Chart.yaml`` (or ``requirements.yaml``) that leaves the repository, naming it; Helm would
not read it when templating, but a chart that declares one was written for a machine where it
points at something, and that something is not the app's. A vendored subchart that is a link out
of the checkout is refused before Helm runs, with every other link (:mod:`fleet.render.confine`).
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from fleet.errors import StalledError
from fleet.render.documents import DocumentLimits, load_yaml
from fleet.render.spec import HelmOptions

__all__ = ["check_dependencies", "reads", "template_command", "value_file_paths"]

_DEPENDENCY_FILES = ("Chart.yaml", "requirements.yaml")


def value_file_paths(chart: str, options: HelmOptions) -> list[str]:
    """The repository paths of `options`' value files, in order."""
    paths = []
    for name in options.value_files:
        target = posixpath.normpath(posixpath.join(chart, name))
        if name.startswith("/") or target == ".." or target.startswith("../"):
            raise StalledError(f"value file {name!r} of chart {chart!r} escapes the repository")
        paths.append(target)
    return paths


def reads(chart: str, options: HelmOptions) -> list[str]:
    """The chart's path first, then value files outside it, sorted."""
    outside = {
        p
        for p in value_file_paths(chart, options)
        if chart and not (p == chart or p.startswith(chart + "/"))
    }
    return [chart, *sorted(outside)]


def template_command(
    helm: Path,
    *,
    checkout: Path,
    chart: str,
    namespace: str,
    options: HelmOptions,
    inline_values: Path | None,
) -> list[str]:
    """``helm template RELEASE CHART --namespace NS --include-crds -f ...``."""
    command = [str(helm), "template", options.release, str(checkout / chart), "--include-crds"]
    if namespace:
        command += ["--namespace", namespace]
    for path in value_file_paths(chart, options):
        command += ["--values", str(checkout / path)]
    if inline_values is not None:
        command += ["--values", str(inline_values)]
    return command


def check_dependencies(checkout: Path, chart: str, *, limits: DocumentLimits) -> None:
    """Refuse a ``file://`` dependency of chart `chart` in `checkout` that leaves the repository."""
    for name in _DEPENDENCY_FILES:
        rel = posixpath.join(chart, name) if chart else name
        file = checkout / rel
        if not file.is_file():
            continue
        if file.stat().st_size > limits.max_file_bytes:
            raise StalledError(f"path {rel!r}: file is over the limit of {limits.max_file_bytes}")
        docs = load_yaml(file.read_bytes(), source=rel, limits=limits)
        doc: Any = docs[0] if docs else {}
        dependencies = doc.get("dependencies") if isinstance(doc, dict) else None
        for entry in dependencies if isinstance(dependencies, list) else []:
            repository = entry.get("repository") if isinstance(entry, dict) else None
            if isinstance(repository, str) and repository.startswith("file://"):
                _check_local_dependency(rel, chart, repository, entry.get("name"))


def _check_local_dependency(rel: str, chart: str, repository: str, name: object) -> None:
    local = repository.removeprefix("file://")
    target = posixpath.normpath(posixpath.join(chart, local))
    if local.startswith("/") or target == ".." or target.startswith("../"):
        raise StalledError(
            f"path {rel!r}: dependency {str(name)!r} has repository {repository!r}, which escapes "
            "the repository; vendor the chart into charts/ from inside the repository"
        )
