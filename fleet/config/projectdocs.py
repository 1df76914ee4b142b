"""Projects of the config: ``projects:`` of fleet documents and Argo CD ``AppProject``
documents into :class:`~fleet.config.projects.Project`, and each app's project resolved.

An AppProject's destinations name clusters by glob (a destination by server URL is refused: name
the cluster instead) and namespaces; ``defaultProject: strict`` (or ``open``, the default) says
what the project ``default`` allows. Names are unique across the files of a config, and every
app must name a declared project (or ``default``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from fleet.config.fields import Fields, check_name
from fleet.config.model import App
from fleet.config.projects import OPEN_DEFAULT, STRICT_DEFAULT, KindRule, Project
from fleet.config.projects import Destination as ProjectDestination
from fleet.errors import ConfigError

__all__ = ["projects_in", "resolve"]


def _kind_rules(data: Any, where: str) -> tuple[KindRule, ...]:
    if not isinstance(data, list):
        raise ConfigError(f"{where}: expected a list of {{group, kind}}")
    rules = []
    for index, item in enumerate(data):
        fields = Fields(item, f"{where}[{index}]")
        rules.append(KindRule(group=fields.text("group", "*"), kind=fields.text("kind", "*")))
    return tuple(rules)


def _project(data: Any, where: str, origin: str) -> Project:
    fields = Fields(data, where)
    name = fields.text("name")
    check_name(name, where)
    where = f"{where} ({name})"
    fields = Fields(data, where)
    destinations = []
    raw = fields.data.get("destinations") or []
    if not isinstance(raw, list):
        raise ConfigError(f"{where}.destinations: expected a list")
    for index, item in enumerate(raw):
        dest = Fields(item, f"{where}.destinations[{index}]")
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
    name = Fields(data.get("metadata"), f"{where}.metadata").text("name")
    where = f"{where} (AppProject {name})"
    spec = Fields(data.get("spec") or {}, f"{where}.spec")
    destinations = []
    for index, item in enumerate(spec.data.get("destinations") or []):
        dest = Fields(item, f"{spec.where}.destinations[{index}]")
        cluster, server = dest.text("name", "*"), dest.text("server", "*")
        if server != "*" and cluster == "*":
            raise ConfigError(f"{dest.where}.server: name the cluster (name:) instead of a server")
        names = [] if cluster == "*" else [cluster]
        destinations.append({"clusters": names or None, "namespaces": [dest.text("namespace")]})
    return _project({**spec.data, "name": name, "destinations": destinations}, where, origin)


def projects_in(documents: Sequence[Any], *, origin: str) -> tuple[list[Project], str | None]:
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
        fields = Fields(document, where)
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


def resolve(apps: list[App], projects: list[Project], defaults: dict[str, str]) -> list[App]:
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
