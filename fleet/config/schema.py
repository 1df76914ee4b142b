"""The JSON Schema (draft 2020-12) of every config document fleet reads, written as data.

One schema covers the three kinds of document a config file may hold: a fleet document
(``apps:``, ``projects:``, ``defaultProject:``, ``notifications:``), an Argo CD ``Application``
and an Argo CD ``AppProject``; the document's ``kind`` picks one (``if``/``then``). Every mapping
is closed (``additionalProperties: false``), so a misspelt key is an error, never a silently
dropped setting, and every property carries a ``description``: the reference of
``docs/config.md`` is generated from them (:mod:`fleet.config.reference`).

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

__all__ = ["APP_NAME_PATTERN", "PATTERN_MESSAGES", "document_schema", "refused"]

_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
APP_NAME_PATTERN = f"^{_LABEL}(\\.{_LABEL})*$"  # a DNS subdomain, as Kubernetes names are
_ARGO_API = "^argoproj\\.io/"
_POINTER = "^/"
_COUNT = "^[0-9]+$"

PATTERN_MESSAGES = {  # {value} is the value refused, as written
    APP_NAME_PATTERN: (
        "{value} is not a valid name (lowercase letters, digits, '-' and '.', starting and "
        "ending with a letter or digit, <= 53 chars as Helm releases are)"
    ),
    _ARGO_API: "needs apiVersion argoproj.io/v1alpha1, got {value}",
    _POINTER: "{value} must start with '/' (a JSON pointer, e.g. /spec/replicas)",
    _COUNT: "expected a non-negative integer, got {value}",
}

Schema = dict[str, Any]


def _text(description: str, **more: Any) -> Schema:
    return {"type": "string", "description": description, **more}


def _flag(description: str, *, default: bool = False) -> Schema:
    return {"type": "boolean", "description": description, "default": default}


def _texts(description: str) -> Schema:
    return {"type": "array", "description": description, "items": {"type": "string"}}


def _labels(description: str) -> Schema:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": {"type": ["string", "number", "boolean"]},
    }


def _mapping(description: str, properties: Mapping[str, Schema], *required: str) -> Schema:
    schema: Schema = {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "properties": dict(properties),
    }
    if required:
        schema["required"] = list(required)
    return schema


def _list(description: str, items: Schema) -> Schema:
    return {"type": "array", "description": description, "items": items}


def _ref(name: str, description: str) -> Schema:
    return {"$ref": f"#/$defs/{name}", "description": description}


def refused(why: str) -> Schema:
    """A field fleet knows and does not support: present, it is an error saying `why`."""
    return {"not": {}, "description": why}


def _name(description: str) -> Schema:
    return _text(description, pattern=APP_NAME_PATTERN, maxLength=53)


_NAME_VALUE = {
    "name": _text("the variable's name"),
    "value": {"type": ["string", "number"], "description": "its value (text)"},
    "code": _flag("the value is jsonnet code, not a string"),
}

_HELM = _mapping(
    "render with `helm template` (Argo CD's source.helm)",
    {
        "valueFiles": _texts("values files, relative to the chart's path; placeholders allowed"),
        "values": {
            "type": ["string", "object"],
            "description": "values as YAML text (Argo CD's usual form) or a mapping",
        },
        "valuesObject": {
            "type": "object",
            "description": "values as a mapping; takes the place of `values` when given",
        },
        "parameters": _list(
            "`--set name=value` overrides",
            _mapping(
                "one `--set`",
                {
                    "name": _text("the value's dotted name"),
                    "value": {
                        "type": ["string", "number", "boolean"],
                        "description": "the value; placeholders allowed",
                    },
                    "forceString": _flag("pass with `--set-string`"),
                },
                "name",
                "value",
            ),
        ),
        "fileParameters": _list(
            "`--set-file name=path` overrides",
            _mapping(
                "one `--set-file`",
                {
                    "name": _text("the value's dotted name"),
                    "path": _text("the file, relative to the chart"),
                },
                "name",
                "path",
            ),
        ),
        "releaseName": _text("the Helm release name (default: the app's name)"),
        "ignoreMissingValueFiles": _flag("skip valueFiles that do not exist"),
        "skipCrds": _flag("leave out the chart's crds/ directory"),
        "skipTests": _flag("leave out the chart's test hooks"),
        "namespace": _text("the release namespace (default: the destination's)"),
        "kubeVersion": _text("the Kubernetes version the chart sees (`--kube-version`)"),
        "apiVersions": _texts("API versions the chart sees as available (`--api-versions`)"),
        "version": _text("the Helm major version (v3)"),
        "passCredentials": _flag("pass repository credentials to every domain"),
    },
)

_KUSTOMIZE = _mapping(
    "edits to the kustomization before `kustomize build` (Argo CD's source.kustomize)",
    {
        "images": _texts("image overrides, `name=newName:tag` or `name:tag`"),
        "namePrefix": _text("prefix of every object's name"),
        "nameSuffix": _text("suffix of every object's name"),
        "namespace": _text("namespace set on every namespaced object"),
        "commonLabels": _labels("labels added to every object (and selectors)"),
        "commonAnnotations": _labels("annotations added to every object"),
        "forceCommonLabels": _flag("overwrite labels the objects already have"),
        "forceCommonAnnotations": _flag("overwrite annotations the objects already have"),
        "labelWithoutSelector": _flag("add commonLabels to metadata only, not selectors"),
        "labelIncludeTemplates": _flag("with labelWithoutSelector: label pod templates too"),
        "replicas": _list(
            "replica counts by workload name",
            _mapping(
                "one workload's replicas",
                {
                    "name": _text("the workload's name"),
                    "count": {
                        "type": ["integer", "string"],
                        "minimum": 0,
                        "pattern": _COUNT,
                        "description": "the replica count (an integer or its decimal text)",
                    },
                },
                "name",
                "count",
            ),
        ),
        "patches": _list(
            "patches appended to the kustomization's own",
            _mapping(
                "one patch: an inline `patch` or a `path`, and the objects it targets",
                {
                    "patch": _text("the patch, inline (strategic merge or JSON 6902)"),
                    "path": _text("a patch file, relative to the app's path"),
                    "target": _mapping(
                        "the objects patched",
                        {
                            key: _text(f"the target's {key}")
                            for key in (
                                "group",
                                "version",
                                "kind",
                                "name",
                                "namespace",
                                "labelSelector",
                                "annotationSelector",
                            )
                        },
                    ),
                    "options": _mapping(
                        "kustomize patch options",
                        {
                            "allowNameChange": _flag("the patch may change the name"),
                            "allowKindChange": _flag("the patch may change the kind"),
                        },
                    ),
                },
            ),
        ),
        "components": _texts("kustomize components added, relative to the app's path"),
        "ignoreMissingComponents": _flag("skip components that do not exist"),
        "version": _text("the kustomize version (fleet uses its own)"),
    },
)

_DIRECTORY = _mapping(
    "plain manifests (Argo CD's source.directory)",
    {
        "recurse": _flag("read subdirectories too (an Application reads the top one only)"),
        "include": _text("a glob (or {a,b}) of the files read"),
        "exclude": _text("a glob (or {a,b}) of the files left out"),
        "jsonnet": _mapping(
            "inputs of .jsonnet files",
            {
                "extVars": _list(
                    "external variables", _mapping("one variable", _NAME_VALUE, "name", "value")
                ),
                "tlas": _list(
                    "top-level arguments", _mapping("one argument", _NAME_VALUE, "name", "value")
                ),
                "libs": _texts("library directories, relative to the repository"),
            },
        ),
    },
)

_SOURCE = _mapping(
    "where the manifests are: a repository, a revision and a path",
    {
        "repoURL": _text("the git repository (https://, ssh:// or file://)"),
        "targetRevision": _text("a branch, tag or commit (default HEAD)", default="HEAD"),
        "path": _text(
            "the directory inside the repository (default .); {{ cluster.name }} and "
            "{{ cluster.labels.X }} allowed",
            default=".",
        ),
        "helm": _HELM,
        "kustomize": _KUSTOMIZE,
        "directory": _DIRECTORY,
        "plugin": {
            "type": "object",
            "description": "a config management plugin: recorded, and refused when rendered",
        },
        "chart": refused(
            "charts from a Helm repository are not supported; commit the chart to a git "
            "repository and name it with repoURL and path"
        ),
    },
    "repoURL",
)

_AUTOMATED = {
    "prune": _flag("delete objects that left git"),
    "selfHeal": _flag("undo changes made on the cluster"),
    "allowEmpty": _flag("let an empty render prune everything"),
}

_SYNC_POLICY = _mapping(
    "how far fleet may go on its own",
    {
        "automated": {
            "type": ["boolean", "object"],
            "description": "apply changes by itself: true/false in fleet.yaml (default true), "
            "a mapping (maybe empty) in an Application, where it is off without one",
            "additionalProperties": False,
            "properties": {
                **_AUTOMATED,
                "enabled": _flag(
                    "Argo CD 3: false turns automated sync off, keeping the settings",
                    default=True,
                ),
            },
        },
        **_AUTOMATED,
        "forceConflicts": _flag(
            "take over fields hand-edited on this app's own objects", default=True
        ),
        "pruneLimit": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "default": 0.5,
            "description": "the share of the app's objects one sync may prune, in (0, 1]",
        },
        "pruneKinds": _texts("kinds pruned although risky (Namespace, CustomResourceDefinition)"),
        "createNamespace": _flag("apply the destination namespace too"),
        "syncOptions": _texts("Argo CD sync options; fleet reads CreateNamespace=true"),
        "adopt": _flag("take over existing objects that no fleet app owns"),
        "deleteAdopted": _flag("delete adopted objects that leave git (default: release)"),
        "retry": {
            "type": "object",
            "description": "Argo CD's retry: accepted, fleet retries with its own back-off",
        },
        "managedNamespaceMetadata": refused(
            "not supported by fleet; put the Namespace object in git instead"
        ),
    },
)

_IGNORE_RULE = _mapping(
    "JSON pointers on the objects that match",
    {
        "group": _text("API group of the objects ('' is core)"),
        "kind": _text("kind of the objects"),
        "name": _text("name of the object"),
        "namespace": _text("namespace of the objects"),
        "jsonPointers": {
            "type": "array",
            "description": "the fields, as JSON pointers (/spec/replicas)",
            "items": {"type": "string", "pattern": _POINTER},
        },
        "jqPathExpressions": refused("not supported by fleet; use jsonPointers"),
        "managedFieldsManagers": refused("not supported by fleet; use jsonPointers"),
    },
)


_SELECTOR = _mapping(
    "which clusters (of clusters/) the app goes to; none given: every cluster",
    {
        "names": _texts("cluster names"),
        "matchLabels": _labels("labels a cluster must have, all of them"),
    },
)

_FLEET_APP = _mapping(
    "one app: a source, a destination, a sync policy",
    {
        "name": _name("the app's name, unique in the config (a Kubernetes name, <= 53 chars)"),
        "project": _text("the project the app belongs to (default: default)"),
        "applications": _flag(
            "a parent (app of apps): its path holds Argo CD Applications and AppProjects, each "
            "an app of the hub; the parent itself is applied nowhere"
        ),
        "source": _ref("Source", "where the manifests are: a repository, a revision and a path"),
        "destination": _mapping(
            "where the app goes",
            {
                "namespace": _text("namespace of the app's namespaced objects; placeholders"),
                "clusters": _SELECTOR,
            },
            "namespace",
        ),
        "syncPolicy": _ref("SyncPolicy", "how far fleet may go on its own"),
        "ignoreDifferences": _list(
            "fields left out of diff and drift", _ref("IgnoreRule", "one rule")
        ),
    },
    "name",
    "source",
    "destination",
)

_KIND_RULES = _list(
    "API kinds, by group and kind ('*' for any)",
    _mapping(
        "a group and a kind",
        {"group": _text("API group ('' is core, default *)"), "kind": _text("kind (default *)")},
    ),
)

_PROJECT_RULES = {
    "sourceRepos": _texts("globs of the repositories the project's apps may use"),
    "clusterResourceWhitelist": _KIND_RULES | {"description": "cluster-scoped kinds allowed"},
    "namespaceResourceBlacklist": _KIND_RULES | {"description": "namespaced kinds refused"},
    "pruneKinds": _KIND_RULES | {"description": "kinds the project's apps may prune"},
    "description": _text("what the project is for"),
}

_FLEET_PROJECT = _mapping(
    "a project: the repositories, destinations and kinds its apps may use",
    {
        "name": _name("the project's name"),
        **_PROJECT_RULES,
        "destinations": _list(
            "where the project's apps may go",
            _mapping(
                "clusters and namespaces",
                {
                    "clusters": {
                        "type": ["array", "object"],
                        "description": "cluster name globs, or a selector {names, matchLabels}",
                        "items": {"type": "string"},
                        "additionalProperties": False,
                        "properties": _SELECTOR["properties"],
                    },
                    "namespaces": _texts("namespace globs (e.g. [team-a-*])"),
                },
                "namespaces",
            ),
        ),
    },
    "name",
)

_METADATA = _mapping(
    "the document's Kubernetes metadata",
    {
        "name": _name("the Application's name (the app's name in fleet)"),
        "namespace": _text("Argo CD's namespace (not used by fleet)"),
        "labels": _labels("labels (not used by fleet)"),
        "annotations": _labels("annotations (not used by fleet)"),
        "finalizers": _texts("finalizers (not used by fleet)"),
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
_API = _text("argoproj.io/v1alpha1", pattern=_ARGO_API)
_STATUS = {"description": "written by Argo CD; not read by fleet"}

_APPLICATION = _mapping(
    "an Argo CD Application, read as one app",
    {
        "apiVersion": _API,
        "kind": _KIND,
        "metadata": _ref("Metadata", "the document's Kubernetes metadata"),
        "spec": _mapping(
            "the Application's spec",
            {
                "project": _text("the project (AppProject) the app belongs to"),
                "source": _ref("Source", "where the manifests are (as in fleet.yaml)"),
                "sources": refused("multi-source Applications are not supported; use source"),
                "destination": _mapping(
                    "the cluster (by name or API server URL) and namespace",
                    {
                        "name": _text("a cluster of clusters/ by name"),
                        "server": _text(
                            "a cluster by its API server URL; https://kubernetes.default.svc "
                            "is the cluster named in-cluster"
                        ),
                        "namespace": _text("namespace of the app's namespaced objects"),
                    },
                    "namespace",
                ),
                "syncPolicy": _ref("SyncPolicy", "how far fleet may go on its own"),
                "ignoreDifferences": _list(
                    "fields left out of diff and drift", _ref("IgnoreRule", "one rule")
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

_APP_PROJECT = _mapping(
    "an Argo CD AppProject, read as a project",
    {
        "apiVersion": _API,
        "kind": _KIND,
        "metadata": _ref("Metadata", "the document's Kubernetes metadata"),
        "spec": _mapping(
            "the AppProject's spec",
            {
                **_PROJECT_RULES,
                "destinations": _list(
                    "where the project's apps may go",
                    _mapping(
                        "a cluster (by name glob) and a namespace glob",
                        {
                            "name": _text("cluster name glob (default *)"),
                            "server": _text("only * (name the cluster instead)"),
                            "namespace": _text("namespace glob"),
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

_FLEET_DOCUMENT = _mapping(
    "a fleet document: apps, projects and notification sinks",
    {
        "apps": _list("the apps", _ref("App", "one app")),
        "projects": _list("the projects apps may name", _ref("Project", "one project")),
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
            "Source": copy.deepcopy(_SOURCE),
            "SyncPolicy": copy.deepcopy(_SYNC_POLICY),
            "IgnoreRule": copy.deepcopy(_IGNORE_RULE),
            "Metadata": copy.deepcopy(_METADATA),
            "AppProject": copy.deepcopy(_APP_PROJECT),
        },
    }
