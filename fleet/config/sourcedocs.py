"""A ``source:`` (Argo CD's ``spec.source``) into :class:`~fleet.config.model.Source`.

The same keys in ``fleet.yaml`` and in an Application: ``helm`` (``values`` as YAML text or a
mapping, ``valuesObject``, ``parameters``, ``fileParameters``, ``releaseName``, ...),
``kustomize`` (``images``, ``namePrefix``, ``replicas``, ``patches``, ``components``, ...),
``directory`` (``recurse``, ``include``, ``exclude``, ``jsonnet``) and ``plugin`` (recorded; the
renderer refuses it by name). The schema has refused unknown keys and wrong types; here the
values are read, their placeholders checked and the path kept inside the repository. An
Application without ``directory`` gets Argo CD's directory defaults (the top directory only); a
``fleet.yaml`` app without one keeps fleet's recursive plain manifests.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleet import yamlsafe
from fleet.config import templates
from fleet.config.fields import Fields, entries, scalar, template
from fleet.config.model import (
    DirectoryOptions,
    HelmFileParameter,
    HelmOptions,
    HelmParameter,
    JsonnetVar,
    KustomizeOptions,
    KustomizeReplica,
    Source,
)
from fleet.errors import ConfigError

__all__ = ["source"]


def _templates_in(values: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Every string inside Helm `values`, with its dotted path."""
    found: list[tuple[str, str]] = []
    if isinstance(values, str):
        found.append((prefix or ".", values))
    elif isinstance(values, Mapping):
        for key, item in values.items():
            found += _templates_in(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(values, list):
        for index, item in enumerate(values):
            found += _templates_in(item, f"{prefix}[{index}]")
    return found


def _helm_values(fields: Fields) -> Mapping[str, Any] | str:
    """``helm.values``: a mapping, or YAML text (Argo CD's usual form) that holds a mapping."""
    raw = fields.data.get("values")
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            documents = yamlsafe.load_yaml(raw, source=f"{fields.where}.values")
        except yamlsafe.YamlRefused as exc:
            raise ConfigError(str(exc)) from None
        if len(documents) > 1:
            raise ConfigError(f"{fields.where}.values: expected one YAML document, got several")
        parsed = documents[0] if documents else None
        if parsed is not None and not isinstance(parsed, Mapping):
            raise ConfigError(
                f"{fields.where}.values: the YAML text must hold a mapping of values, got "
                f"{type(parsed).__name__}"
            )
        templates.validate(raw, where=f"{fields.where}.values")
        return raw
    values = fields.mapping("values")
    for name, item in _templates_in(values):
        templates.validate(item, where=f"{fields.where}.values.{name}")
    return values


def _helm(fields: Fields) -> HelmOptions | None:
    if not fields.data:
        return None
    values_object: dict[str, Any] | None = None
    if fields.data.get("valuesObject") is not None:
        values_object = fields.mapping("valuesObject")
        for name, item in _templates_in(values_object):
            templates.validate(item, where=f"{fields.where}.valuesObject.{name}")
    value_files = fields.strings("valueFiles")
    for index, name in enumerate(value_files):
        templates.validate(name, where=f"{fields.where}.valueFiles[{index}]")
    return HelmOptions(
        value_files=value_files,
        values=_helm_values(fields),
        release_name=template(fields, "releaseName") or None,
        values_object=values_object,
        parameters=tuple(
            HelmParameter(
                name=item.text("name"),
                value=scalar(item, "value"),
                force_string=item.flag("forceString", False),
            )
            for item in entries(fields, "parameters")
        ),
        file_parameters=tuple(
            HelmFileParameter(name=item.text("name"), path=template(item, "path", None))
            for item in entries(fields, "fileParameters")
        ),
        ignore_missing_value_files=fields.flag("ignoreMissingValueFiles", False),
        skip_crds=fields.flag("skipCrds", False),
        skip_tests=fields.flag("skipTests", False),
        namespace=template(fields, "namespace"),
        kube_version=fields.text("kubeVersion", ""),
        api_versions=fields.strings("apiVersions"),
        version=fields.text("version", ""),
        pass_credentials=fields.flag("passCredentials", False),
    )


def _replica_count(fields: Fields) -> int:
    """``replicas[].count``: a non-negative integer, or its decimal text (Argo's int-or-string)."""
    value = fields.data.get("count")
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ConfigError(f"{fields.where}.count: expected a non-negative integer, got {value!r}")


def _kustomize(fields: Fields) -> KustomizeOptions | None:
    if not fields.data:
        return None
    images = fields.strings("images")
    for index, image in enumerate(images):
        templates.validate(image, where=f"{fields.where}.images[{index}]")
    labels, annotations = fields.string_map("commonLabels"), fields.string_map("commonAnnotations")
    for key, kind in (("commonLabels", labels), ("commonAnnotations", annotations)):
        for name, item in kind.items():
            templates.validate(item, where=f"{fields.where}.{key}.{name}")
    patches = fields.data.get("patches") or []
    if not isinstance(patches, list) or not all(isinstance(p, Mapping) for p in patches):
        raise ConfigError(
            f"{fields.where}.patches: expected a list of mappings (patch or path, target)"
        )
    return KustomizeOptions(
        images=images,
        name_prefix=template(fields, "namePrefix"),
        name_suffix=template(fields, "nameSuffix"),
        namespace=template(fields, "namespace"),
        common_labels=labels,
        common_annotations=annotations,
        force_common_labels=fields.flag("forceCommonLabels", False),
        force_common_annotations=fields.flag("forceCommonAnnotations", False),
        label_without_selector=fields.flag("labelWithoutSelector", False),
        label_include_templates=fields.flag("labelIncludeTemplates", False),
        replicas=tuple(
            KustomizeReplica(name=item.text("name"), count=_replica_count(item))
            for item in entries(fields, "replicas")
        ),
        patches=tuple(dict(p) for p in patches),
        components=fields.strings("components"),
        ignore_missing_components=fields.flag("ignoreMissingComponents", False),
        version=fields.text("version", ""),
    )


def _jsonnet_vars(fields: Fields, key: str) -> tuple[JsonnetVar, ...]:
    return tuple(
        JsonnetVar(name=item.text("name"), value=item.text("value"), code=item.flag("code", False))
        for item in entries(fields, key)
    )


def _directory(fields: Fields, *, argo: bool) -> DirectoryOptions | None:
    """``source.directory``; absent, Argo CD's defaults for an Application, else None."""
    if not fields.data:
        return DirectoryOptions() if argo else None
    jsonnet = fields.sub("jsonnet")
    return DirectoryOptions(
        recurse=fields.flag("recurse", False),
        include=fields.text("include", ""),
        exclude=fields.text("exclude", ""),
        jsonnet_ext_vars=_jsonnet_vars(jsonnet, "extVars"),
        jsonnet_tlas=_jsonnet_vars(jsonnet, "tlas"),
        jsonnet_libs=jsonnet.strings("libs"),
    )


def source(fields: Fields, *, argo: bool = False) -> Source:
    path = fields.text("path", ".")
    templates.validate(path, where=f"{fields.where}.path")
    if path.startswith("/") or ".." in Path(path).parts:
        raise ConfigError(f"{fields.where}.path: {path!r} must stay inside the repository")
    if fields.data.get("chart"):
        raise ConfigError(
            f"{fields.where}.chart: charts from a Helm repository are not supported; commit the "
            "chart to a git repository and name it with repoURL and path"
        )
    revision = fields.text("targetRevision", "HEAD")
    return Source(
        repo_url=fields.text("repoURL"),
        target_revision=revision or "HEAD",
        path=path,
        helm=_helm(fields.sub("helm")),
        kustomize=_kustomize(fields.sub("kustomize")),
        directory=_directory(fields.sub("directory"), argo=argo),
        plugin="plugin" in fields.data,
    )
