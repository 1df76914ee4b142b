"""Helm: ``helm template`` of a chart in the repository, with Argo CD's ``spec.source.helm`` fields.

The command line follows Argo CD's precedence, lowest first: the chart's ``values.yaml``, value
files (``--values``, in order), the inline values (``values`` text or mapping, or
``valuesObject`` in its place, written to a file in the render's scratch directory and passed last
among ``--values``), then ``parameters`` (``--set``, or ``--set-string`` with ``forceString``;
unescaped commas escaped as Argo CD does, so a value is one value; a later parameter of the same
name wins) and ``fileParameters`` (``--set-file``, a repository file). CRDs are included unless
``skipCrds``; ``--kube-version`` and each ``--api-versions`` are passed when given. The release is
``releaseName``, else the app's name. ``passCredentials`` and a Helm major version other than v3
are refused by name (:func:`check_options`).

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

import json
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleet.errors import StalledError
from fleet.render.documents import DocumentLimits, load_yaml
from fleet.render.spec import HelmOptions

__all__ = [
    "check_dependencies",
    "check_options",
    "escape_set_value",
    "file_parameter_paths",
    "inline_values_text",
    "reads",
    "release_name",
    "template_command",
    "value_file_paths",
]

_DEPENDENCY_FILES = ("Chart.yaml", "requirements.yaml")


def check_options(options: HelmOptions) -> None:
    """Refuse the fields fleet does not honour, naming them, rather than rendering without them."""
    if options.pass_credentials:
        raise StalledError(
            "spec.source.helm.passCredentials is not supported: fleet renders charts from the "
            "repository offline and passes no credential to Helm; remove the field"
        )
    if options.version not in ("", "v3", "3"):
        raise StalledError(
            f"spec.source.helm.version {options.version!r} is not supported: fleet renders with "
            "Helm v3; remove the field or set it to v3"
        )
    for parameter in options.parameters:
        if not parameter.name:
            raise StalledError("spec.source.helm.parameters: a parameter has no name")
    for file_parameter in options.file_parameters:
        if not file_parameter.name or not file_parameter.path:
            raise StalledError("spec.source.helm.fileParameters: each needs a name and a path")


_RELEASE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def release_name(options: HelmOptions, app: str) -> str:
    """``releaseName``, else the app's name (as Argo CD), else ``release``; Helm's rule checked.

    The name is Helm's positional argument, so one that is not a valid release name (a name
    starting with ``-`` would be read as a flag) is refused rather than passed.
    """
    name = options.release or app or "release"
    if len(name) > 53 or not _RELEASE.match(name):
        field = "spec.source.helm.releaseName" if options.release else "the app's name"
        raise StalledError(
            f"{field} {name!r} is not a valid Helm release name (lower-case letters, digits, "
            "'-' and '.', starting and ending with a letter or digit, at most 53 characters); "
            "set spec.source.helm.releaseName"
        )
    return name


def _repo_path(chart: str, name: str, *, field: str) -> str:
    if "://" in name:
        raise StalledError(
            f"{field} {name!r} of chart {chart!r} is a URL: fleet reads values only from the "
            "repository; commit the file and name it relative to the chart"
        )
    target = posixpath.normpath(posixpath.join(chart, name))
    if name.startswith("/") or target == ".." or target.startswith("../"):
        raise StalledError(f"{field} {name!r} of chart {chart!r} escapes the repository")
    return target


def value_file_paths(chart: str, options: HelmOptions) -> list[str]:
    """The repository paths of `options`' value files, in order."""
    return [
        posixpath.normpath(posixpath.join(chart, name))
        if "://" in name
        else _repo_path(chart, name, field="value file")
        for name in options.value_files
    ]


def file_parameter_paths(chart: str, options: HelmOptions) -> list[str]:
    """The repository paths of `options`' file parameters, in order (inside the repository)."""
    return [
        _repo_path(chart, p.path, field=f"spec.source.helm.fileParameters {p.name!r}: path")
        for p in options.file_parameters
    ]


def reads(chart: str, options: HelmOptions) -> list[str]:
    """The chart's path first, then value files and file parameters outside it, sorted."""
    paths = [*value_file_paths(chart, options), *file_parameter_paths(chart, options)]
    outside = {p for p in paths if chart and not (p == chart or p.startswith(chart + "/"))}
    return [chart, *sorted(outside)]


def template_command(
    helm: Path,
    *,
    checkout: Path,
    chart: str,
    namespace: str,
    options: HelmOptions,
    inline_values: Path | None,
    app: str = "",
) -> list[str]:
    """``helm template RELEASE CHART --include-crds --namespace NS --values ... --set ...``."""
    release = release_name(options, app)
    command = [str(helm), "template", release, str(checkout / chart)]
    command += ["--skip-crds"] if options.skip_crds else ["--include-crds"]
    if options.skip_tests:
        command += ["--skip-tests"]
    # values the app chooses are joined to their flag with '=': never read as a flag of their own
    if options.namespace or namespace:
        command += [f"--namespace={options.namespace or namespace}"]
    if options.kube_version:
        command += [f"--kube-version={options.kube_version}"]
    for api_version in options.api_versions:
        command += [f"--api-versions={api_version}"]
    for path in value_file_paths(chart, options):
        command += ["--values", str(checkout / path)]
    if inline_values is not None:
        command += ["--values", str(inline_values)]
    last = {p.name: p for p in options.parameters}  # a later parameter of a name wins
    for parameter in (p for p in last.values() if not p.force_string):
        command += [f"--set={parameter.name}={escape_set_value(parameter.value)}"]
    for parameter in (p for p in last.values() if p.force_string):
        command += [f"--set-string={parameter.name}={escape_set_value(parameter.value)}"]
    names = (p.name for p in options.file_parameters)
    files = dict(zip(names, file_parameter_paths(chart, options), strict=True))
    for name, path in files.items():
        command += [f"--set-file={name}={escape_set_value(str(checkout / path))}"]
    return command


def escape_set_value(value: str) -> str:
    """`value` for ``--set``: commas not yet escaped are escaped, except in a ``{a,b}`` list."""
    if value.startswith("{") and value.endswith("}"):
        return value
    out: list[str] = []
    previous = ""
    for char in value:
        out.append("\\," if char == "," and previous != "\\" else char)
        previous = char
    return "".join(out)


def inline_values_text(options: HelmOptions) -> str | None:
    """The YAML or JSON text of ``valuesObject``, else of ``values``; None when there is none."""
    if options.values_object is not None:
        return json.dumps(_plain(options.values_object)) if options.values_object else None
    if isinstance(options.values, str):
        return options.values if options.values.strip() else None
    return json.dumps(_plain(options.values)) if options.values else None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


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
