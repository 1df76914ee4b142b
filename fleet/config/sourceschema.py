"""The schema of ``source:`` (Argo CD's ``spec.source``): repository, revision, path and the
options of each renderer (``helm``, ``kustomize``, ``directory``; ``plugin`` recorded only).

The same mapping in ``fleet.yaml`` apps and in Applications (``$defs/Source`` of
:func:`fleet.config.schema.document_schema`); :mod:`fleet.config.sourcedocs` reads it.
"""

from __future__ import annotations

from fleet.config.schemabuild import (
    COUNT_PATTERN,
    Schema,
    flag,
    labels,
    list_of,
    mapping,
    refused,
    text,
    texts,
)

__all__ = ["SOURCE"]

_NAME_VALUE = {
    "name": text("the variable's name"),
    "value": {"type": ["string", "number"], "description": "its value (text)"},
    "code": flag("the value is jsonnet code, not a string"),
}

_HELM = mapping(
    "render with `helm template` (Argo CD's source.helm)",
    {
        "valueFiles": texts("values files, relative to the chart's path; placeholders allowed"),
        "values": {
            "type": ["string", "object"],
            "description": "values as YAML text (Argo CD's usual form) or a mapping",
        },
        "valuesObject": {
            "type": "object",
            "description": "values as a mapping; takes the place of `values` when given",
        },
        "parameters": list_of(
            "`--set name=value` overrides",
            mapping(
                "one `--set`",
                {
                    "name": text("the value's dotted name"),
                    "value": {
                        "type": ["string", "number", "boolean"],
                        "description": "the value; placeholders allowed",
                    },
                    "forceString": flag("pass with `--set-string`"),
                },
                "name",
                "value",
            ),
        ),
        "fileParameters": list_of(
            "`--set-file name=path` overrides",
            mapping(
                "one `--set-file`",
                {
                    "name": text("the value's dotted name"),
                    "path": text("the file, relative to the chart"),
                },
                "name",
                "path",
            ),
        ),
        "releaseName": text("the Helm release name (default: the app's name)"),
        "ignoreMissingValueFiles": flag("skip valueFiles that do not exist"),
        "skipCrds": flag("leave out the chart's crds/ directory"),
        "skipTests": flag("leave out the chart's test hooks"),
        "namespace": text("the release namespace (default: the destination's)"),
        "kubeVersion": text("the Kubernetes version the chart sees (`--kube-version`)"),
        "apiVersions": texts("API versions the chart sees as available (`--api-versions`)"),
        "version": text("the Helm major version (v3)"),
        "passCredentials": flag("pass repository credentials to every domain"),
    },
)

_KUSTOMIZE = mapping(
    "edits to the kustomization before `kustomize build` (Argo CD's source.kustomize)",
    {
        "images": texts("image overrides, `name=newName:tag` or `name:tag`"),
        "namePrefix": text("prefix of every object's name"),
        "nameSuffix": text("suffix of every object's name"),
        "namespace": text("namespace set on every namespaced object"),
        "commonLabels": labels("labels added to every object (and selectors)"),
        "commonAnnotations": labels("annotations added to every object"),
        "forceCommonLabels": flag("overwrite labels the objects already have"),
        "forceCommonAnnotations": flag("overwrite annotations the objects already have"),
        "labelWithoutSelector": flag("add commonLabels to metadata only, not selectors"),
        "labelIncludeTemplates": flag("with labelWithoutSelector: label pod templates too"),
        "replicas": list_of(
            "replica counts by workload name",
            mapping(
                "one workload's replicas",
                {
                    "name": text("the workload's name"),
                    "count": {
                        "type": ["integer", "string"],
                        "minimum": 0,
                        "pattern": COUNT_PATTERN,
                        "description": "the replica count (an integer or its decimal text)",
                    },
                },
                "name",
                "count",
            ),
        ),
        "patches": list_of(
            "patches appended to the kustomization's own",
            mapping(
                "one patch: an inline `patch` or a `path`, and the objects it targets",
                {
                    "patch": text("the patch, inline (strategic merge or JSON 6902)"),
                    "path": text("a patch file, relative to the app's path"),
                    "target": mapping(
                        "the objects patched",
                        {
                            key: text(f"the target's {key}")
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
                    "options": mapping(
                        "kustomize patch options",
                        {
                            "allowNameChange": flag("the patch may change the name"),
                            "allowKindChange": flag("the patch may change the kind"),
                        },
                    ),
                },
            ),
        ),
        "components": texts("kustomize components added, relative to the app's path"),
        "ignoreMissingComponents": flag("skip components that do not exist"),
        "version": text("the kustomize version (fleet uses its own)"),
    },
)

_DIRECTORY = mapping(
    "plain manifests (Argo CD's source.directory)",
    {
        "recurse": flag("read subdirectories too (an Application reads the top one only)"),
        "include": text("a glob (or {a,b}) of the files read"),
        "exclude": text("a glob (or {a,b}) of the files left out"),
        "jsonnet": mapping(
            "inputs of .jsonnet files",
            {
                "extVars": list_of(
                    "external variables", mapping("one variable", _NAME_VALUE, "name", "value")
                ),
                "tlas": list_of(
                    "top-level arguments", mapping("one argument", _NAME_VALUE, "name", "value")
                ),
                "libs": texts("library directories, relative to the repository"),
            },
        ),
    },
)

SOURCE: Schema = mapping(
    "where the manifests are: a repository, a revision and a path",
    {
        "repoURL": text("the git repository (https://, ssh:// or file://)"),
        "targetRevision": text("a branch, tag or commit (default HEAD)", default="HEAD"),
        "path": text(
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
