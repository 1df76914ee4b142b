"""Reading the config: ``fleet.yaml`` and Argo CD ``Application``/``AppProject`` documents, from
disk (:func:`load`) or from text read from git (:func:`load_documents`), into
:class:`~fleet.config.model.Config`.

A config path is a file or a directory of ``.yaml``/``.yml`` files. A file holds one or more YAML
documents, each a fleet document (``apps:``, ``projects:``, ``defaultProject:``,
``notifications:``), an Argo CD Application or an AppProject, so teams can bring what they have.
Each file is first checked against the schema (:mod:`fleet.config.schema`,
:mod:`fleet.config.validation`): every unknown key and wrong type of the file is reported at
once, with its path and a "did you mean". Then the documents are read into the model: sources by
:mod:`fleet.config.sourcedocs`, projects by :mod:`fleet.config.projectdocs`, apps here, with the
checks a schema cannot make (placeholders, paths inside the repository, unique names, declared
projects).

Argo's ``destination.name`` selects the cluster of that name in ``clusters/``, and
``destination.server`` the cluster whose kubeconfig points at that URL, except Argo CD's own
``https://kubernetes.default.svc`` ("the cluster Argo CD runs in"): a hub has no such cluster, so
that URL selects the cluster *named* ``in-cluster`` (Argo CD's name for it); the selector's
``note`` says so, for the error shown when no cluster of that name exists. App names are
Kubernetes names (DNS subdomains, dots allowed), at most 53 characters as Helm release names.
A parent app (app of apps) says so with ``applications: true`` or, on an Application, the
annotation ``fleet.dev/applications: "true"``.

YAML is decoded within the limits of :mod:`fleet.yamlsafe` (file size, nodes after alias
expansion), so a "billion laughs" file is refused naming it. ``syncPolicy.syncOptions`` are read
one by one (:mod:`fleet.config.syncoptions`): acted on, accepted, or refused naming the option.

Validation is complete before anything is returned: one bad field rejects the whole load with a
:class:`ConfigError`, and the caller (the hub) keeps the last good config running.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fleet import yamlsafe
from fleet.config import projectdocs, sourcedocs, syncoptions, templates, validation
from fleet.config.fields import Fields, check_name
from fleet.config.model import (
    App,
    ClusterSelector,
    Config,
    Destination,
    IgnoreRule,
    SyncPolicy,
)
from fleet.config.projects import Project
from fleet.errors import ConfigError

__all__ = ["load", "load_documents", "parse_documents", "parse_projects"]

log = logging.getLogger(__name__)

LIMITS = yamlsafe.YamlLimits(max_file_bytes=4 * 2**20)  # per config file


PARENT_ANNOTATION = "fleet.dev/applications"  # an Application that is a parent (app of apps)
IN_CLUSTER_SERVER = "https://kubernetes.default.svc"
IN_CLUSTER_NAME = "in-cluster"


def _sync_policy(fields: Fields, *, argo: bool = False) -> SyncPolicy:
    """fleet.yaml apps are automated unless ``automated: false``; an Argo CD Application only
    with ``syncPolicy.automated`` (a mapping, maybe empty), as Argo CD means it. ``prune``,
    ``selfHeal`` and ``allowEmpty`` are read under ``automated`` (Argo CD's place) and beside it
    (fleet's), merged key by key: one written under ``automated`` wins."""
    raw = fields.data.get("automated") if isinstance(fields.data, Mapping) else None
    if isinstance(raw, bool):
        is_automated = raw
    elif raw is None:
        is_automated = not argo
    elif isinstance(raw, Mapping):
        is_automated = raw.get("enabled") is not False  # Argo CD 3's automated.enabled
    else:
        raise ConfigError(f"{fields.where}.automated: expected a mapping or true/false")
    automated = fields.sub("automated") if isinstance(raw, Mapping) else Fields({}, fields.where)

    def flag(key: str) -> bool:  # Argo CD's place (automated.KEY) wins over fleet's (KEY)
        return (automated if key in automated.data else fields).flag(key, False)

    options = syncoptions.parse(fields.strings("syncOptions"), where=fields.where)
    for warning in options.warnings:
        log.warning("event=config_sync_option_differs warning=%s", warning)
    limit = fields.number("pruneLimit", 0.5)
    if not 0 < limit <= 1:
        raise ConfigError(f"{fields.where}.pruneLimit: expected a share in (0, 1], got {limit}")
    return SyncPolicy(
        prune=flag("prune") and options.prune is not False,
        self_heal=flag("selfHeal"),
        allow_empty=flag("allowEmpty"),
        force_conflicts=fields.flag("forceConflicts", True),
        prune_limit=limit,
        prune_kinds=fields.strings("pruneKinds"),
        create_namespace=fields.flag("createNamespace", False) or bool(options.create_namespace),
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
        fields = Fields(item, f"{where}[{index}]")
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


def _fleet_app(data: Any, where: str, origin: str) -> App:
    fields = Fields(data, where)
    name = fields.text("name")
    check_name(name, where)
    where = f"{where} ({name})"
    fields = Fields(data, where)
    destination = fields.sub("destination", required=True)
    templates.validate(destination.text("namespace"), where=f"{destination.where}.namespace")
    clusters = destination.sub("clusters")
    return App(
        name=name,
        source=sourcedocs.source(fields.sub("source", required=True)),
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
        applications=fields.flag("applications", False),
    )


def _argo_app(data: Mapping[str, Any], where: str, origin: str) -> App:
    metadata = Fields(data.get("metadata"), f"{where}.metadata")
    name = metadata.text("name")
    check_name(name, f"{where}.metadata")
    where = f"{where} (Application {name})"
    spec = Fields(data.get("spec"), f"{where}.spec")
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
        source=sourcedocs.source(spec.sub("source", required=True), argo=True),
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
        applications=str(metadata.sub("annotations").data.get(PARENT_ANNOTATION)) == "true",
    )


def _apps_in(documents: Sequence[Any], *, origin: str) -> list[App]:
    """The apps of the YAML `documents` of `origin`, which the schema has checked."""
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
            continue  # read by projectdocs.projects_in
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


def parse_documents(documents: Sequence[Any], *, origin: str) -> list[App]:
    """The apps declared in the YAML `documents` of `origin`, checked against the schema (every
    error at once); projects are not resolved (see :func:`load`)."""
    validation.check(documents, origin=origin)
    return _apps_in(documents, origin=origin)


def parse_projects(documents: Sequence[Any], *, origin: str) -> tuple[list[Project], str | None]:
    """The projects declared in the YAML `documents` of `origin` and its ``defaultProject``,
    checked against the schema."""
    validation.check(documents, origin=origin)
    return projectdocs.projects_in(documents, origin=origin)


def _parse(text: str, origin: str) -> list[Any]:
    """The YAML documents of `text`, read from `origin`, within the limits of
    :mod:`fleet.yamlsafe` (size, and nodes after alias expansion: a YAML bomb is refused)."""
    try:
        return yamlsafe.load_yaml(text, source=origin, limits=LIMITS)
    except yamlsafe.YamlRefused as exc:
        raise ConfigError(str(exc)) from None


def _read(path: Path) -> list[Any]:
    try:
        if (size := path.stat().st_size) > LIMITS.max_file_bytes:
            raise ConfigError(
                f"{path}: file is {size} bytes, over the limit of {LIMITS.max_file_bytes}"
            )
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
        apps += _apps_in(documents, origin=origin)
        declared, default = projectdocs.projects_in(documents, origin=origin)
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
    apps = projectdocs.resolve(apps, projects, defaults)
    return Config(apps=tuple(apps), projects=tuple(projects))


def read_documents(path: Path) -> list[tuple[str, list[Any]]]:
    """The YAML documents of each config file of `path` (a file, or every ``.yaml``/``.yml``
    file under a directory), with the file they came from; raises ConfigError naming a file
    that cannot be read or decoded."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    else:
        files = [path]
    return [(str(file), _read(file)) for file in files]


def assemble(sources: list[tuple[str, list[Any]]]) -> Config:
    """The config of :func:`read_documents`' answer (each file checked against the schema)."""
    return _assemble(sources)


def load(path: Path) -> Config:
    """Every app of the file or directory `path`; app names must be unique across all files."""
    return _assemble(read_documents(path))


def load_documents(text: str, origin: str) -> Config:
    """The config held in the YAML `text` (one or more documents) read from `origin`.

    For configs that do not live on disk (a file at a commit of a repository): `origin` names
    where the text came from in every error and in each app's ``origin``, e.g.
    ``repo@sha:apps/x.yaml``. The same validation as :func:`load` of one file.
    """
    return _assemble([(origin, _parse(text, origin))])
