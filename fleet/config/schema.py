"""The JSON Schema (draft 2020-12) of every config document fleet reads, written as data.

One schema covers the three kinds of document a config file may hold: a fleet document
(``apps:``, ``projects:``, ``defaultProject:``, ``notifications:``), an Argo CD ``Application``
and an Argo CD ``AppProject``; the document's ``kind`` picks one (``if``/``then``). Every mapping
is closed (``additionalProperties: false``), so a misspelt key is an error, never a silently
dropped setting, and every property carries a ``description``: the reference of
``docs/config.md`` is generated from them (:mod:`fleet.config.reference`). The builders are in
:mod:`fleet.config.schemabuild`, the ``source:`` mapping in :mod:`fleet.config.sourceschema`.

Three conventions the validator (:mod:`fleet.config.validation`) reads back:

- a property whose schema is :func:`refused` (``not: {}``) is a field fleet knows and does not
  support; its ``description`` is the error shown (what to do instead);
- a ``pattern`` has its sentence in :data:`PATTERN_MESSAGES`;
- ``notifications`` items are only required to be mappings here: the notifier
  (:mod:`fleet.notify.settings`, a layer above this one) checks them field by field, and
  ``fleet schema`` splices its ``notifications_schema()`` in with :func:`document_schema`.

Values fleet reads as text must be YAML strings: ``targetRevision: 1.10`` is the number 1.1, so
an unquoted number is refused rather than turned into the wrong text.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fleet.config.schemabuild import (
    APP_NAME_PATTERN,
    ARGO_API_PATTERN,
    PATTERN_MESSAGES,
    POINTER_PATTERN,
    Schema,
    flag,
    labels,
    list_of,
    mapping,
    name_field,
    ref,
    refused,
    text,
    texts,
)
from fleet.config.sourceschema import SOURCE

__all__ = ["APP_NAME_PATTERN", "PATTERN_MESSAGES", "document_schema", "refused"]


_AUTOMATED = {
    "prune": flag("delete objects that left git"),
    "selfHeal": flag("undo changes made on the cluster"),
    "allowEmpty": flag("let an empty render prune everything"),
}

_SYNC_POLICY = mapping(
    "how far fleet may go on its own",
    {
        "automated": {
            "type": ["boolean", "object"],
            "description": "apply changes by itself: true/false in fleet.yaml (default true), "
            "a mapping (maybe empty) in an Application, where it is off without one",
            "additionalProperties": False,
            "properties": {
                **_AUTOMATED,
                "enabled": flag(
                    "Argo CD 3: false turns automated sync off, keeping the settings",
                    default=True,
                ),
            },
        },
        **_AUTOMATED,
        "forceConflicts": flag(
            "take over fields hand-edited on this app's own objects", default=True
        ),
        "pruneLimit": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "default": 0.5,
            "description": "the share of the app's objects one sync may prune, in (0, 1]",
        },
        "pruneKinds": texts("kinds pruned although risky (Namespace, CustomResourceDefinition)"),
        "createNamespace": flag("apply the destination namespace too"),
        "syncOptions": texts(
            "Argo CD sync options, each read: CreateNamespace and Prune=false act, those fleet "
            "already does are accepted, others are refused naming the option"
        ),
        "adopt": flag("take over existing objects that no fleet app owns"),
        "deleteAdopted": flag("delete adopted objects that leave git (default: release)"),
        "retry": {
            "type": "object",
            "description": "Argo CD's retry: accepted, fleet retries with its own back-off",
        },
        "managedNamespaceMetadata": refused(
            "not supported by fleet; put the Namespace object in git instead"
        ),
    },
)

_IGNORE_RULE = mapping(
    "JSON pointers on the objects that match",
    {
        "group": text("API group of the objects ('' is core)"),
        "kind": text("kind of the objects"),
        "name": text("name of the object"),
        "namespace": text("namespace of the objects"),
        "jsonPointers": {
            "type": "array",
            "description": "the fields, as JSON pointers (/spec/replicas)",
            "items": {"type": "string", "pattern": POINTER_PATTERN},
        },
        "jqPathExpressions": refused("not supported by fleet; use jsonPointers"),
        "managedFieldsManagers": refused("not supported by fleet; use jsonPointers"),
    },
)


_SELECTOR = mapping(
    "which clusters (of clusters/) the app goes to; none given: every cluster",
    {
        "names": texts("cluster names"),
        "matchLabels": labels("labels a cluster must have, all of them"),
    },
)

_FLEET_APP = mapping(
    "one app: a source, a destination, a sync policy",
    {
        "name": name_field("the app's name, unique in the config (a Kubernetes name, <= 53 chars)"),
        "project": text("the project the app belongs to (default: default)"),
        "applications": flag(
            "a parent (app of apps): its path holds Argo CD Applications and AppProjects, each "
            "an app of the hub; the parent itself is applied nowhere"
        ),
        "source": ref("Source", "where the manifests are: a repository, a revision and a path"),
        "destination": mapping(
            "where the app goes",
            {
                "namespace": text("namespace of the app's namespaced objects; placeholders"),
                "clusters": _SELECTOR,
            },
            "namespace",
        ),
        "syncPolicy": ref("SyncPolicy", "how far fleet may go on its own"),
        "ignoreDifferences": list_of(
            "fields left out of diff and drift", ref("IgnoreRule", "one rule")
        ),
    },
    "name",
    "source",
    "destination",
)

_KIND_RULES = list_of(
    "API kinds, by group and kind ('*' for any)",
    mapping(
        "a group and a kind",
        {"group": text("API group ('' is core, default *)"), "kind": text("kind (default *)")},
    ),
)

_PROJECT_RULES = {
    "sourceRepos": texts("globs of the repositories the project's apps may use"),
    "clusterResourceWhitelist": _KIND_RULES | {"description": "cluster-scoped kinds allowed"},
    "namespaceResourceBlacklist": _KIND_RULES | {"description": "namespaced kinds refused"},
    "pruneKinds": _KIND_RULES | {"description": "kinds the project's apps may prune"},
    "description": text("what the project is for"),
}

_FLEET_PROJECT = mapping(
    "a project: the repositories, destinations and kinds its apps may use",
    {
        "name": name_field("the project's name"),
        **_PROJECT_RULES,
        "destinations": list_of(
            "where the project's apps may go",
            mapping(
                "clusters and namespaces",
                {
                    "clusters": {
                        "type": ["array", "object"],
                        "description": "cluster name globs, or a selector {names, matchLabels}",
                        "items": {"type": "string"},
                        "additionalProperties": False,
                        "properties": _SELECTOR["properties"],
                    },
                    "namespaces": texts("namespace globs (e.g. [team-a-*])"),
                },
                "namespaces",
            ),
        ),
    },
    "name",
)

_METADATA = mapping(
    "the document's Kubernetes metadata",
    {
        "name": name_field("the Application's name (the app's name in fleet)"),
        "namespace": text("Argo CD's namespace (not used by fleet)"),
        "labels": labels("labels (not used by fleet)"),
        "annotations": labels("annotations (not used by fleet)"),
        "finalizers": texts("finalizers (not used by fleet)"),
        **{
            key: {"description": "written by Kubernetes; not used by fleet"}
            for key in (
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "managedFields",
                "ownerReferences",
            )
        },
    },
    "name",
)

_KIND = {"type": "string", "description": "the document's kind"}
_API = text("argoproj.io/v1alpha1", pattern=ARGO_API_PATTERN)
_STATUS = {"description": "written by Argo CD; not read by fleet"}

_APPLICATION = mapping(
    "an Argo CD Application, read as one app",
    {
        "apiVersion": _API,
        "kind": _KIND,
        "metadata": ref("Metadata", "the document's Kubernetes metadata"),
        "spec": mapping(
            "the Application's spec",
            {
                "project": text("the project (AppProject) the app belongs to"),
                "source": ref("Source", "where the manifests are (as in fleet.yaml)"),
                "sources": refused("multi-source Applications are not supported; use source"),
                "destination": mapping(
                    "the cluster (by name or API server URL) and namespace",
                    {
                        "name": text("a cluster of clusters/ by name"),
                        "server": text(
                            "a cluster by its API server URL; https://kubernetes.default.svc "
                            "is the cluster named in-cluster"
                        ),
                        "namespace": text("namespace of the app's namespaced objects"),
                    },
                    "namespace",
                ),
                "syncPolicy": ref("SyncPolicy", "how far fleet may go on its own"),
                "ignoreDifferences": list_of(
                    "fields left out of diff and drift", ref("IgnoreRule", "one rule")
                ),
                "info": {"type": "array", "description": "Argo CD's info links (not used)"},
                "revisionHistoryLimit": {
                    "type": "integer",
                    "description": "Argo CD's history length (fleet keeps its own)",
                },
            },
            "source",
            "destination",
        ),
        "status": _STATUS,
        "operation": refused("an Argo CD operation is not read; sync with `fleet sync`"),
    },
    "apiVersion",
    "kind",
    "metadata",
    "spec",
)

_APP_PROJECT = mapping(
    "an Argo CD AppProject, read as a project",
    {
        "apiVersion": _API,
        "kind": _KIND,
        "metadata": ref("Metadata", "the document's Kubernetes metadata"),
        "spec": mapping(
            "the AppProject's spec",
            {
                **_PROJECT_RULES,
                "destinations": list_of(
                    "where the project's apps may go",
                    mapping(
                        "a cluster (by name glob) and a namespace glob",
                        {
                            "name": text("cluster name glob (default *)"),
                            "server": text("only * (name the cluster instead)"),
                            "namespace": text("namespace glob"),
                        },
                        "namespace",
                    ),
                ),
                **{
                    key: refused(f"{key} is not supported by fleet; remove it")
                    for key in (
                        "namespaceResourceWhitelist",
                        "clusterResourceBlacklist",
                        "roles",
                        "syncWindows",
                        "signatureKeys",
                        "orphanedResources",
                        "sourceNamespaces",
                        "destinationServiceAccounts",
                    )
                },
            },
        ),
        "status": _STATUS,
    },
    "apiVersion",
    "kind",
    "metadata",
)

_NOTIFICATIONS = {
    "type": "array",
    "description": "where fleet tells people what happened (webhook, slack, commit statuses)",
    "items": {"type": "object"},
}

_FLEET_DOCUMENT = mapping(
    "a fleet document: apps, projects and notification sinks",
    {
        "apps": list_of("the apps", ref("App", "one app")),
        "projects": list_of("the projects apps may name", ref("Project", "one project")),
        "defaultProject": {
            "type": "string",
            "enum": ["open", "strict"],
            "default": "open",
            "description": "the project `default`: open allows everything, strict nothing",
        },
        "notifications": _NOTIFICATIONS,
        "kind": refused(
            "expected `apps:` or an Argo CD Application (kind Application or AppProject, "
            "apiVersion argoproj.io/v1alpha1)"
        ),
    },
)
_FLEET_DOCUMENT["minProperties"] = 1


def _kind_is(kind: str) -> Schema:
    return {"required": ["kind"], "properties": {"kind": {"const": kind}}}


def document_schema(*, notifications: Mapping[str, Any] | None = None) -> Schema:
    """The schema of one config document; `notifications` replaces the loose schema of the
    ``notifications:`` list (the notifier's full one, for ``fleet schema``)."""
    fleet_document = copy.deepcopy(_FLEET_DOCUMENT)
    if notifications is not None:
        fleet_document["properties"]["notifications"] = dict(notifications)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "fleet config",
        "description": "a document of fleet.yaml: apps, an Argo CD Application or AppProject",
        "type": "object",
        "if": _kind_is("Application"),
        "then": {"$ref": "#/$defs/Application"},
        "else": {
            "if": _kind_is("AppProject"),
            "then": {"$ref": "#/$defs/AppProject"},
            "else": {"$ref": "#/$defs/FleetDocument"},
        },
        "$defs": {
            "FleetDocument": fleet_document,
            "App": copy.deepcopy(_FLEET_APP),
            "Project": copy.deepcopy(_FLEET_PROJECT),
            "Application": copy.deepcopy(_APPLICATION),
            "Source": copy.deepcopy(SOURCE),
            "SyncPolicy": copy.deepcopy(_SYNC_POLICY),
            "IgnoreRule": copy.deepcopy(_IGNORE_RULE),
            "Metadata": copy.deepcopy(_METADATA),
            "AppProject": copy.deepcopy(_APP_PROJECT),
        },
    }
