"""Reading the apps: ``fleet.yaml`` and Argo CD ``Application`` documents, with errors that name
the file, the app and the field.

A config path is a file or a directory of ``.yaml``/``.yml`` files. A file holds one or more YAML
documents, each either a fleet document (``apps: [...]``) or an Argo CD Application
(``apiVersion: argoproj.io/v1alpha1``, ``kind: Application``), so teams can bring what they have.
Argo's ``destination.name`` selects the cluster of that name in ``clusters/``, and
``destination.server`` the cluster whose kubeconfig points at that URL, except Argo CD's own
``https://kubernetes.default.svc`` ("the cluster Argo CD runs in"): a hub has no such cluster, so
that URL selects the cluster *named* ``in-cluster`` (Argo CD's name for it), the one rule a
migrating team can satisfy by naming a kubeconfig; the selector's ``note`` says so, for the error
shown when no cluster of that name exists.

Source fields are Argo CD's ``spec.source`` (the same keys under ``source:`` in ``fleet.yaml``):
``helm`` (``values`` as YAML text or a mapping, ``valuesObject``, ``parameters``,
``fileParameters``, ``releaseName``, ...), ``kustomize`` (``images``, ``namePrefix``,
``nameSuffix``, ``commonLabels``, ``commonAnnotations``, ``replicas``, ``patches``,
``components``, ...), ``directory`` (``recurse``, ``include``, ``exclude``, ``jsonnet``) and
``plugin`` (recorded; the renderer refuses it by name). A key fleet does not read inside those
blocks is refused naming it, as is ``chart`` (Helm repositories), never dropped silently. An
Application without ``directory`` still gets Argo CD's directory defaults (the top directory
only); a ``fleet.yaml`` app without one keeps fleet's recursive plain manifests. App names are
Kubernetes names (DNS subdomains, dots allowed), at most 53 characters as Helm release names.

A fleet document may also declare ``projects: [...]`` (see :mod:`fleet.config.projects`) and
``defaultProject: strict`` (or ``open``, the default), and Argo CD ``AppProject`` documents are
read as projects; each app names its project with
``project:`` (Argo's ``spec.project``), ``default`` otherwise, and is handed its resolved rules.

Validation is complete before anything is returned: one bad field rejects the whole load with a
:class:`ConfigError`, and the caller (the hub) keeps the last good config running.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fleet.config import templates, validation
from fleet.config.model import (
    App,
    ClusterSelector,
    Config,
    Destination,
    DirectoryOptions,
    HelmFileParameter,
    HelmOptions,
    HelmParameter,
    IgnoreRule,
    JsonnetVar,
    KustomizeOptions,
    KustomizeReplica,
    Source,
    SyncPolicy,
)
from fleet.config.projects import (
    OPEN_DEFAULT,
    STRICT_DEFAULT,
    KindRule,
    Project,
)
from fleet.config.projects import (
    Destination as ProjectDestination,
)
from fleet.errors import ConfigError

__all__ = ["load", "load_documents", "parse_documents", "parse_projects"]

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_APP_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")  # a DNS subdomain, as Kubernetes names are
_MAX_CONFIG_BYTES = 4 * 2**20


class _Fields:
    """Typed access to one mapping of the config, raising errors that say where."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.where = where

    def _get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = self.data.get(key, default)
        if value is None and default is None:
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            expected = (
                kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            )
            raise ConfigError(f"{self.where}.{key}: expected {expected}, got {value!r}")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        value = self._get(key, (str, int, float), default)
        if value is None:
            raise ConfigError(f"{self.where}.{key}: required")
        return str(value)

    def flag(self, key: str, default: bool) -> bool:
        value: bool = self._get(key, bool, default)
        return value

    def number(self, key: str, default: float) -> float:
        value = self._get(key, (int, float), default)
        return float(value)

    def sub(self, key: str, *, required: bool = False) -> _Fields:
        if key not in self.data or self.data[key] is None:
            if required:
                raise ConfigError(f"{self.where}.{key}: required")
            return _Fields({}, f"{self.where}.{key}")
        return _Fields(self.data[key], f"{self.where}.{key}")

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._get(key, list, [])
        if not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{self.where}.{key}: expected a list of strings")
        return tuple(value)

    def string_map(self, key: str) -> dict[str, str]:
        value = self._get(key, dict, {})
        if not all(
            isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in value.items()
        ):
            raise ConfigError(f"{self.where}.{key}: expected a mapping of strings")
        return {k: str(v) for k, v in value.items()}

    def mapping(self, key: str) -> dict[str, Any]:
        value: dict[str, Any] = self._get(key, dict, {})
        return value


_HELM_FIELDS = frozenset(
    {
        "valueFiles",
        "values",
        "valuesObject",
        "parameters",
        "fileParameters",
        "releaseName",
        "ignoreMissingValueFiles",
        "skipCrds",
        "skipTests",
        "namespace",
        "kubeVersion",
        "apiVersions",
        "version",
        "passCredentials",
    }
)
_KUSTOMIZE_FIELDS = frozenset(
    {
        "images",
        "namePrefix",
        "nameSuffix",
        "namespace",
        "commonLabels",
        "commonAnnotations",
        "forceCommonLabels",
        "forceCommonAnnotations",
        "labelWithoutSelector",
        "labelIncludeTemplates",
        "replicas",
        "patches",
        "components",
        "ignoreMissingComponents",
        "version",
    }
)
_DIRECTORY_FIELDS = frozenset({"recurse", "include", "exclude", "jsonnet"})
_JSONNET_FIELDS = frozenset({"extVars", "tlas", "libs"})
IN_CLUSTER_SERVER = "https://kubernetes.default.svc"
IN_CLUSTER_NAME = "in-cluster"


def _known(fields: _Fields, known: frozenset[str]) -> None:
    """Refuse a field fleet does not read, rather than drop it silently."""
    for key in fields.data:
        if key not in known:
            raise ConfigError(
                f"{fields.where}.{key}: not supported by fleet (supported: "
                f"{', '.join(sorted(known))}); remove the field"
            )


def _entries(fields: _Fields, key: str) -> list[_Fields]:
    """The mappings of the list `key`, each named by its index."""
    value = fields.data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{fields.where}.{key}: expected a list, got {value!r}")
    return [_Fields(item, f"{fields.where}.{key}[{i}]") for i, item in enumerate(value)]


def _template(fields: _Fields, key: str, default: str | None = "") -> str:
    """A string field that may hold ``{{ cluster.* }}`` placeholders, checked."""
    value = fields.text(key, default)
    templates.validate(value, where=f"{fields.where}.{key}")
    return value


def _scalar(fields: _Fields, key: str) -> str:
    """A Helm parameter value: a string, or a YAML number or boolean written as Helm reads it."""
    value = fields.data.get(key)
    if isinstance(value, bool):
        value = "true" if value else "false"
    if not isinstance(value, (str, int, float)):
        raise ConfigError(f"{fields.where}.{key}: required, a string, got {value!r}")
    text = str(value)
    templates.validate(text, where=f"{fields.where}.{key}")
    return text


def _helm_values(fields: _Fields) -> Mapping[str, Any] | str:
    """``helm.values``: a mapping, or YAML text (Argo CD's usual form) that holds a mapping."""
    raw = fields.data.get("values")
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            parsed = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{fields.where}.values: invalid YAML: {_short(exc)}") from exc
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


def _helm(fields: _Fields) -> HelmOptions | None:
    if not fields.data:
        return None
    _known(fields, _HELM_FIELDS)
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
        release_name=_template(fields, "releaseName") or None,
        values_object=values_object,
        parameters=tuple(
            HelmParameter(
                name=item.text("name"),
                value=_scalar(item, "value"),
                force_string=item.flag("forceString", False),
            )
            for item in _entries(fields, "parameters")
        ),
        file_parameters=tuple(
            HelmFileParameter(name=item.text("name"), path=_template(item, "path", None))
            for item in _entries(fields, "fileParameters")
        ),
        ignore_missing_value_files=fields.flag("ignoreMissingValueFiles", False),
        skip_crds=fields.flag("skipCrds", False),
        skip_tests=fields.flag("skipTests", False),
        namespace=_template(fields, "namespace"),
        kube_version=fields.text("kubeVersion", ""),
        api_versions=fields.strings("apiVersions"),
        version=fields.text("version", ""),
        pass_credentials=fields.flag("passCredentials", False),
    )


def _replica_count(fields: _Fields) -> int:
    """``replicas[].count``: a non-negative integer, or its decimal text (Argo's int-or-string)."""
    value = fields.data.get("count")
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ConfigError(f"{fields.where}.count: expected a non-negative integer, got {value!r}")


def _kustomize(fields: _Fields) -> KustomizeOptions | None:
    if not fields.data:
        return None
    _known(fields, _KUSTOMIZE_FIELDS)
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
        name_prefix=_template(fields, "namePrefix"),
        name_suffix=_template(fields, "nameSuffix"),
        namespace=_template(fields, "namespace"),
        common_labels=labels,
        common_annotations=annotations,
        force_common_labels=fields.flag("forceCommonLabels", False),
        force_common_annotations=fields.flag("forceCommonAnnotations", False),
        label_without_selector=fields.flag("labelWithoutSelector", False),
        label_include_templates=fields.flag("labelIncludeTemplates", False),
        replicas=tuple(
            KustomizeReplica(name=item.text("name"), count=_replica_count(item))
            for item in _entries(fields, "replicas")
        ),
        patches=tuple(dict(p) for p in patches),
        components=fields.strings("components"),
        ignore_missing_components=fields.flag("ignoreMissingComponents", False),
        version=fields.text("version", ""),
    )


def _jsonnet_vars(fields: _Fields, key: str) -> tuple[JsonnetVar, ...]:
    return tuple(
        JsonnetVar(name=item.text("name"), value=item.text("value"), code=item.flag("code", False))
        for item in _entries(fields, key)
    )


def _directory(fields: _Fields, *, argo: bool) -> DirectoryOptions | None:
    """``source.directory``; absent, Argo CD's defaults for an Application, else None."""
    if not fields.data:
        return DirectoryOptions() if argo else None
    _known(fields, _DIRECTORY_FIELDS)
    jsonnet = fields.sub("jsonnet")
    _known(jsonnet, _JSONNET_FIELDS)
    return DirectoryOptions(
        recurse=fields.flag("recurse", False),
        include=fields.text("include", ""),
        exclude=fields.text("exclude", ""),
        jsonnet_ext_vars=_jsonnet_vars(jsonnet, "extVars"),
        jsonnet_tlas=_jsonnet_vars(jsonnet, "tlas"),
        jsonnet_libs=jsonnet.strings("libs"),
    )


def _short(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())[:300]


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


def _source(fields: _Fields, *, argo: bool = False) -> Source:
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


def _sync_policy(fields: _Fields, *, argo: bool = False) -> SyncPolicy:
    """fleet.yaml apps are automated unless ``automated: false``; an Argo CD Application only
    with ``syncPolicy.automated`` (a mapping, maybe empty), as Argo CD means it."""
    raw = fields.data.get("automated") if isinstance(fields.data, Mapping) else None
    if isinstance(raw, bool):
        is_automated = raw
    elif raw is None:
        is_automated = not argo
    elif isinstance(raw, Mapping):
        is_automated = True
    else:
        raise ConfigError(f"{fields.where}.automated: expected a mapping or true/false")
    automated = fields.sub("automated") if isinstance(raw, Mapping) else _Fields({}, fields.where)
    source = automated if automated.data else fields
    limit = fields.number("pruneLimit", 0.5)
    if not 0 < limit <= 1:
        raise ConfigError(f"{fields.where}.pruneLimit: expected a share in (0, 1], got {limit}")
    return SyncPolicy(
        prune=source.flag("prune", False),
        self_heal=source.flag("selfHeal", False),
        allow_empty=source.flag("allowEmpty", False),
        force_conflicts=fields.flag("forceConflicts", True),
        prune_limit=limit,
        prune_kinds=fields.strings("pruneKinds"),
        create_namespace=fields.flag("createNamespace", False)
        or "CreateNamespace=true" in fields.strings("syncOptions"),
        adopt=fields.flag("adopt", False),
        delete_adopted=fields.flag("deleteAdopted", False),
        automated=is_automated,
    )


def _ignore_rules(data: Any, where: str) -> tuple[IgnoreRule, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ConfigError(f"{where}: expected a list")
    rules = []
    for index, item in enumerate(data):
        fields = _Fields(item, f"{where}[{index}]")
        pointers = fields.strings("jsonPointers")
        for pointer in pointers:
            if not pointer.startswith("/"):
                raise ConfigError(f"{fields.where}.jsonPointers: {pointer!r} must start with '/'")
        rules.append(
            IgnoreRule(
                json_pointers=pointers,
                group=fields.text("group", ""),
                kind=fields.text("kind", ""),
                name=fields.text("name", ""),
                namespace=fields.text("namespace", ""),
            )
        )
    return tuple(rules)


def _check_name(name: str, where: str) -> None:
    if len(name) > 53 or not _APP_NAME.fullmatch(name):
        raise ConfigError(
            f"{where}.name: {name!r} is not a valid name (lowercase letters, digits, '-' and "
            "'.', starting and ending with a letter or digit, <= 53 chars as Helm releases are)"
        )


def _fleet_app(data: Any, where: str, origin: str) -> App:
    fields = _Fields(data, where)
    name = fields.text("name")
    _check_name(name, where)
    where = f"{where} ({name})"
    fields = _Fields(data, where)
    destination = fields.sub("destination", required=True)
    templates.validate(destination.text("namespace"), where=f"{destination.where}.namespace")
    clusters = destination.sub("clusters")
    return App(
        name=name,
        source=_source(fields.sub("source", required=True)),
        destination=Destination(
            namespace=destination.text("namespace"),
            clusters=ClusterSelector(
                names=clusters.strings("names"), match_labels=clusters.string_map("matchLabels")
            ),
        ),
        sync_policy=_sync_policy(fields.sub("syncPolicy")),
        ignore_differences=_ignore_rules(
            fields.data.get("ignoreDifferences"), f"{where}.ignoreDifferences"
        ),
        origin=origin,
        project=fields.text("project", "default") or "default",
    )


def _argo_app(data: Mapping[str, Any], where: str, origin: str) -> App:
    metadata = _Fields(data.get("metadata"), f"{where}.metadata")
    name = metadata.text("name")
    _check_name(name, f"{where}.metadata")
    where = f"{where} (Application {name})"
    spec = _Fields(data.get("spec"), f"{where}.spec")
    if "sources" in spec.data:
        raise ConfigError(f"{spec.where}.sources: multi-source Applications are not supported")
    destination = spec.sub("destination", required=True)
    cluster_name = destination.text("name", "")
    server = destination.text("server", "")
    if not cluster_name and not server:
        raise ConfigError(f"{destination.where}: needs name or server")
    note = ""
    if not cluster_name and server.rstrip("/") == IN_CLUSTER_SERVER:
        cluster_name, server = IN_CLUSTER_NAME, ""
        note = (
            f"{destination.where}.server {IN_CLUSTER_SERVER} is Argo CD's in-cluster "
            f"destination: fleet sends it to the cluster named {IN_CLUSTER_NAME!r}; add "
            f"clusters/{IN_CLUSTER_NAME}.yaml (the kubeconfig of that cluster) or set "
            "destination.name to a cluster of clusters/"
        )
    return App(
        name=name,
        source=_source(spec.sub("source", required=True), argo=True),
        destination=Destination(
            namespace=destination.text("namespace"),
            clusters=ClusterSelector(
                names=(cluster_name,) if cluster_name else (),
                servers=(server,) if server and not cluster_name else (),
                note=note,
            ),
        ),
        sync_policy=_sync_policy(spec.sub("syncPolicy"), argo=True),
        ignore_differences=_ignore_rules(
            spec.data.get("ignoreDifferences"), f"{spec.where}.ignoreDifferences"
        ),
        origin=origin,
        project=spec.text("project", "default") or "default",
    )


def parse_documents(documents: list[Any], *, origin: str) -> list[App]:
    """The apps declared in the YAML `documents` of file `origin`."""
    apps: list[App] = []
    for index, document in enumerate(documents):
        where = f"{origin}" if len(documents) == 1 else f"{origin} (document {index + 1})"
        if document is None:
            continue
        if not isinstance(document, Mapping):
            raise ConfigError(f"{where}: expected a mapping at the top")
        if document.get("kind") == "Application":
            if not str(document.get("apiVersion", "")).startswith("argoproj.io/"):
                raise ConfigError(
                    f"{where}: kind Application needs apiVersion argoproj.io/v1alpha1"
                )
            apps.append(_argo_app(document, where, origin))
            continue
        if document.get("kind") == "AppProject":
            continue  # read by parse_projects
        if "apps" not in document:
            if {"projects", "defaultProject", "notifications"} & set(document):
                continue
            raise ConfigError(f"{where}: expected `apps:` or an Argo CD Application")
        entries = document["apps"] or []
        if not isinstance(entries, list):
            raise ConfigError(f"{where}.apps: expected a list")
        apps += [
            _fleet_app(entry, f"{where}: apps[{i}]", origin) for i, entry in enumerate(entries)
        ]
    return apps


def _kind_rules(data: Any, where: str) -> tuple[KindRule, ...]:
    if not isinstance(data, list):
        raise ConfigError(f"{where}: expected a list of {{group, kind}}")
    rules = []
    for index, item in enumerate(data):
        fields = _Fields(item, f"{where}[{index}]")
        rules.append(KindRule(group=fields.text("group", "*"), kind=fields.text("kind", "*")))
    return tuple(rules)


def _project(data: Any, where: str, origin: str) -> Project:
    fields = _Fields(data, where)
    name = fields.text("name")
    _check_name(name, where)
    where = f"{where} ({name})"
    fields = _Fields(data, where)
    destinations = []
    raw = fields.data.get("destinations") or []
    if not isinstance(raw, list):
        raise ConfigError(f"{where}.destinations: expected a list")
    for index, item in enumerate(raw):
        dest = _Fields(item, f"{where}.destinations[{index}]")
        clusters = dest.data.get("clusters")
        names: tuple[str, ...] = ()
        labels: dict[str, str] = {}
        if isinstance(clusters, list):  # clusters: [names]
            names = dest.strings("clusters")
        elif clusters is not None:
            selector = dest.sub("clusters")
            names, labels = selector.strings("names"), selector.string_map("matchLabels")
        namespaces = dest.strings("namespaces")
        if not namespaces:
            raise ConfigError(f"{dest.where}.namespaces: required (globs, e.g. [team-a-*])")
        destinations.append(
            ProjectDestination(names=names, match_labels=labels, namespaces=namespaces)
        )
    prune_kinds = None
    if fields.data.get("pruneKinds") is not None:
        prune_kinds = _kind_rules(fields.data["pruneKinds"], f"{where}.pruneKinds")
    return Project(
        name=name,
        source_repos=fields.strings("sourceRepos"),
        destinations=tuple(destinations),
        cluster_resource_whitelist=_kind_rules(
            fields.data.get("clusterResourceWhitelist") or [], f"{where}.clusterResourceWhitelist"
        ),
        namespace_resource_blacklist=_kind_rules(
            fields.data.get("namespaceResourceBlacklist") or [],
            f"{where}.namespaceResourceBlacklist",
        ),
        prune_kinds=prune_kinds,
        origin=origin,
    )


def _argo_project(data: Mapping[str, Any], where: str, origin: str) -> Project:
    """An Argo CD AppProject: its destinations name clusters (globs) and namespaces; a
    destination by server URL is refused (name the cluster instead)."""
    if not str(data.get("apiVersion", "")).startswith("argoproj.io/"):
        raise ConfigError(f"{where}: kind AppProject needs apiVersion argoproj.io/v1alpha1")
    name = _Fields(data.get("metadata"), f"{where}.metadata").text("name")
    where = f"{where} (AppProject {name})"
    spec = _Fields(data.get("spec") or {}, f"{where}.spec")
    destinations = []
    for index, item in enumerate(spec.data.get("destinations") or []):
        dest = _Fields(item, f"{spec.where}.destinations[{index}]")
        cluster, server = dest.text("name", "*"), dest.text("server", "*")
        if server != "*" and cluster == "*":
            raise ConfigError(f"{dest.where}.server: name the cluster (name:) instead of a server")
        names = [] if cluster == "*" else [cluster]
        destinations.append({"clusters": names or None, "namespaces": [dest.text("namespace")]})
    return _project({**spec.data, "name": name, "destinations": destinations}, where, origin)


def parse_projects(documents: list[Any], *, origin: str) -> tuple[list[Project], str | None]:
    """The projects declared in the YAML `documents` of `origin`, and its ``defaultProject``."""
    projects: list[Project] = []
    default: str | None = None
    for index, document in enumerate(documents):
        where = f"{origin}" if len(documents) == 1 else f"{origin} (document {index + 1})"
        if not isinstance(document, Mapping) or document.get("kind") == "Application":
            continue
        if document.get("kind") == "AppProject":
            projects.append(_argo_project(document, where, origin))
            continue
        fields = _Fields(document, where)
        if "defaultProject" in document:
            default = fields.text("defaultProject")
            if default not in ("open", "strict"):
                raise ConfigError(
                    f"{where}.defaultProject: expected open or strict, got {default!r}"
                )
        entries = document.get("projects") or []
        if not isinstance(entries, list):
            raise ConfigError(f"{where}.projects: expected a list")
        projects += [
            _project(entry, f"{where}: projects[{i}]", origin) for i, entry in enumerate(entries)
        ]
    return projects, default


def _resolve_projects(
    apps: list[App], projects: list[Project], defaults: dict[str, str]
) -> list[App]:
    seen: dict[str, str] = {}
    for project in projects:
        if project.name in seen:
            raise ConfigError(
                f"{project.origin}: project {project.name!r} is also declared in "
                f"{seen[project.name]}"
            )
        seen[project.name] = project.origin
    if len(set(defaults.values())) > 1:
        raise ConfigError(
            "defaultProject is set differently in "
            + ", ".join(f"{o} ({v})" for o, v in sorted(defaults.items()))
        )
    strict = "strict" in defaults.values()
    by_name = {p.name: p for p in projects}
    by_name.setdefault("default", STRICT_DEFAULT if strict else OPEN_DEFAULT)
    resolved = []
    for app in apps:
        rules = by_name.get(app.project)
        if rules is None:
            raise ConfigError(
                f"{app.origin}: app {app.name!r} names project {app.project!r}, which is not "
                f"declared (declared: {', '.join(sorted(by_name))})"
            )
        resolved.append(dataclasses.replace(app, project_rules=rules))
    return resolved


def _parse(text: str, origin: str) -> list[Any]:
    """The YAML documents of `text`, read from `origin`."""
    if len(text.encode("utf-8", "surrogatepass")) > _MAX_CONFIG_BYTES:
        raise ConfigError(f"{origin}: larger than {_MAX_CONFIG_BYTES} bytes")
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: invalid YAML: {exc}") from exc


def _read(path: Path) -> list[Any]:
    try:
        if path.stat().st_size > _MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {_MAX_CONFIG_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    return _parse(text, str(path))


def _assemble(sources: list[tuple[str, list[Any]]]) -> Config:
    """The config of the YAML documents of each (origin, documents); app names must be unique."""
    apps: list[App] = []
    projects: list[Project] = []
    defaults: dict[str, str] = {}
    for origin, documents in sources:
        validation.check(documents, origin=origin)
        apps += parse_documents(documents, origin=origin)
        declared, default = parse_projects(documents, origin=origin)
        projects += declared
        if default is not None:
            defaults[origin] = default
    seen: dict[str, str] = {}
    for app in apps:
        if app.name in seen:
            raise ConfigError(
                f"{app.origin}: app {app.name!r} is also declared in {seen[app.name]}"
            )
        seen[app.name] = app.origin
    apps = _resolve_projects(apps, projects, defaults)
    return Config(apps=tuple(apps), projects=tuple(projects))


def load(path: Path) -> Config:
    """Every app of the file or directory `path`; app names must be unique across all files."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    else:
        files = [path]
    return _assemble([(str(file), _read(file)) for file in files])


def load_documents(text: str, origin: str) -> Config:
    """The config held in the YAML `text` (one or more documents) read from `origin`.

    For configs that do not live on disk (a file at a commit of a repository): `origin` names
    where the text came from in every error and in each app's ``origin``, e.g.
    ``repo@sha:apps/x.yaml``. The same validation as :func:`load` of one file.
    """
    return _assemble([(origin, _parse(text, origin))])
