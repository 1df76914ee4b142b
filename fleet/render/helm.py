"""Helm: ``helm template`` of a chart in the repository, with value files and inline values.

Value files are named relative to the chart's directory (as Argo CD does) and may lie outside it,
e.g. ``../values/prod.yaml``; :func:`reads` lists them with the chart so they are extracted and
keyed. A reference that leaves the repository is refused. Charts must vendor their dependencies
(``charts/``): fleet renders offline and Helm's own directories live in the render's temp dir.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from fleet.errors import StalledError
from fleet.render.spec import HelmOptions

__all__ = ["reads", "template_command", "value_file_paths"]


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
