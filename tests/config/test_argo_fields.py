"""Argo CD's ``spec.source`` fields (and the same keys under ``source:`` in ``fleet.yaml``) parse
into the config model, with errors naming the field; names with dots and the in-cluster server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fleet.config import loading
from fleet.config.model import (
    App,
    DirectoryOptions,
    HelmFileParameter,
    HelmParameter,
    JsonnetVar,
    KustomizeReplica,
)
from fleet.errors import ConfigError
from fleet.types import ClusterRef


def argo(source: dict[str, object], *, name: str = "web", **spec: object) -> dict[str, object]:
    """An Argo CD Application document with `source` (repoURL and path filled in)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example/repo.git", "path": "app", **source},
            "destination": {"name": "c1", "namespace": "web"},
            **spec,
        },
    }


def load_one(tmp_path: Path, document: dict[str, object]) -> App:
    path = tmp_path / "apps.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    (app,) = loading.load(path).apps
    return app


def refused(tmp_path: Path, document: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as info:
        load_one(tmp_path, document)
    return str(info.value)


def test_helm_fields(tmp_path: Path) -> None:
    app = load_one(
        tmp_path,
        argo(
            {
                "helm": {
                    "valueFiles": ["values-prod.yaml"],
                    "values": "replicas: 4\nimage:\n  tag: v9\n",
                    "valuesObject": {"extra": {"on": True}},
                    "parameters": [
                        {"name": "image.tag", "value": "v10"},
                        {"name": "port", "value": 8080, "forceString": True},
                        {"name": "debug", "value": False},
                    ],
                    "fileParameters": [{"name": "config", "path": "files/app.conf"}],
                    "ignoreMissingValueFiles": True,
                    "skipCrds": True,
                    "kubeVersion": "1.29.0",
                    "apiVersions": ["example.com/v1"],
                }
            }
        ),
    )
    helm = app.source.helm
    assert helm is not None
    assert helm.values == "replicas: 4\nimage:\n  tag: v9\n", "the text is kept for the renderer"
    assert helm.values_object == {"extra": {"on": True}}
    assert helm.parameters == (
        HelmParameter("image.tag", "v10"),
        HelmParameter("port", "8080", force_string=True),
        HelmParameter("debug", "false"),
    )
    assert helm.file_parameters == (HelmFileParameter("config", "files/app.conf"),)
    assert helm.release_name is None, "no releaseName: the engine names the release after the app"
    assert helm.value_files == ("values-prod.yaml",)
    assert helm.ignore_missing_value_files and helm.skip_crds and not helm.skip_tests
    assert helm.kube_version == "1.29.0" and helm.api_versions == ("example.com/v1",)
    assert app.source.directory == DirectoryOptions(), "an Application keeps Argo's defaults"
    assert app.source.kustomize is None and not app.source.plugin


def test_helm_values_as_a_mapping_and_release_name(tmp_path: Path) -> None:
    app = load_one(tmp_path, argo({"helm": {"values": {"replicas": 3}, "releaseName": "web-prod"}}))
    assert app.source.helm is not None
    assert app.source.helm.values == {"replicas": 3}
    assert app.source.helm.release_name == "web-prod"
    assert app.source.helm.values_object is None


@pytest.mark.parametrize(
    ("helm", "field"),
    [
        ({"values": "a: [1\n"}, r"spec.source.helm.values: invalid YAML"),
        ({"values": "- a\n- b\n"}, r"spec.source.helm.values: the YAML text must hold a mapping"),
        ({"values": ["a"]}, r"spec.source.helm.values: expected a string or a mapping, got a list"),
        (
            {"valuesObject": "a: 1"},
            r"spec.source.helm.valuesObject: expected a mapping, got 'a: 1'",
        ),
        ({"parameters": {"name": "a"}}, r"spec.source.helm.parameters: expected a list"),
        ({"parameters": [{"value": "1"}]}, r"spec.source.helm.parameters\[0\].name: required"),
        ({"parameters": [{"name": "a"}]}, r"spec.source.helm.parameters\[0\].value: required"),
        (
            {"parameters": [{"name": "a", "value": "1", "forceString": "yes"}]},
            r"spec.source.helm.parameters\[0\].forceString: expected true/false, got 'yes'",
        ),
        ({"fileParameters": [{"name": "a"}]}, r"spec.source.helm.fileParameters\[0\].path"),
        ({"values": "x: '{{ cluster.zone }}'\n"}, r"spec.source.helm.values: unknown placeholder"),
        (
            {"skipSchemaValidation": True},
            r"spec.source.helm.skipSchemaValidation: unknown field \(fields here: apiVersions, ",
        ),
    ],
)
def test_helm_errors_name_the_field(tmp_path: Path, helm: dict[str, object], field: str) -> None:
    message = refused(tmp_path, argo({"helm": helm}))
    assert re.search(field, message), message
    assert "Application web" in message and "apps.yaml" in message


def test_kustomize_fields(tmp_path: Path) -> None:
    patch = {"target": {"kind": "Deployment"}, "patch": "- op: add\n  path: /x\n  value: 1\n"}
    app = load_one(
        tmp_path,
        argo(
            {
                "kustomize": {
                    "images": ["nginx=nginx:1.27", "redis:7"],
                    "namePrefix": "blue-",
                    "nameSuffix": "-v2",
                    "namespace": "web-blue",
                    "commonLabels": {"team": "a"},
                    "commonAnnotations": {"owner": "ops", "rev": 3},
                    "forceCommonLabels": True,
                    "replicas": [{"name": "web", "count": 4}, {"name": "api", "count": "2"}],
                    "patches": [patch],
                    "components": ["../components/tls"],
                    "ignoreMissingComponents": True,
                }
            }
        ),
    )
    k = app.source.kustomize
    assert k is not None
    assert k.images == ("nginx=nginx:1.27", "redis:7")
    assert (k.name_prefix, k.name_suffix, k.namespace) == ("blue-", "-v2", "web-blue")
    assert k.common_labels == {"team": "a"}
    assert k.common_annotations == {"owner": "ops", "rev": "3"}
    assert k.force_common_labels and not k.force_common_annotations
    assert k.replicas == (KustomizeReplica("web", 4), KustomizeReplica("api", 2))
    assert k.patches == (patch,)
    assert k.components == ("../components/tls",) and k.ignore_missing_components


@pytest.mark.parametrize(
    ("kustomize", "field"),
    [
        ({"images": "nginx:1"}, "spec.source.kustomize.images: expected a list, got 'nginx:1'"),
        (
            {"images": [{"name": "nginx"}]},
            "spec.source.kustomize.images[0]: expected a string, got a mapping",
        ),
        (
            {"replicas": [{"name": "w", "count": -1}]},
            "kustomize.replicas[0].count: expected >= 0, got -1",
        ),
        (
            {"replicas": [{"name": "w", "count": "x"}]},
            "count: expected a non-negative integer, got 'x'",
        ),
        ({"replicas": [{"count": 1}]}, "spec.source.kustomize.replicas[0].name: required"),
        ({"patches": ["x"]}, "spec.source.kustomize.patches[0]: expected a mapping, got 'x'"),
        (
            {"commonLabels": {"a": ["b"]}},
            "spec.source.kustomize.commonLabels.a: expected a string, a number or true/false",
        ),
        ({"namePrefix": "{{ cluster.x }}-"}, "spec.source.kustomize.namePrefix: unknown"),
        (
            {"commonAnnotationsEnvsubst": True},
            "kustomize.commonAnnotationsEnvsubst: unknown field (did you mean commonAnnotations?)",
        ),
    ],
)
def test_kustomize_errors_name_the_field(
    tmp_path: Path, kustomize: dict[str, object], field: str
) -> None:
    message = refused(tmp_path, argo({"kustomize": kustomize}))
    assert field in message, message


def test_directory_fields(tmp_path: Path) -> None:
    app = load_one(
        tmp_path,
        argo(
            {
                "directory": {
                    "recurse": True,
                    "include": "{*.yaml,*.jsonnet}",
                    "exclude": "tests/*",
                    "jsonnet": {
                        "extVars": [{"name": "env", "value": "prod"}],
                        "tlas": [{"name": "replicas", "value": "3", "code": True}],
                        "libs": ["vendor"],
                    },
                }
            }
        ),
    )
    d = app.source.directory
    assert d is not None
    assert d.recurse and d.include == "{*.yaml,*.jsonnet}" and d.exclude == "tests/*"
    assert d.jsonnet_ext_vars == (JsonnetVar("env", "prod"),)
    assert d.jsonnet_tlas == (JsonnetVar("replicas", "3", code=True),)
    assert d.jsonnet_libs == ("vendor",)


@pytest.mark.parametrize(
    ("directory", "field"),
    [
        ({"recurse": "yes"}, "spec.source.directory.recurse: expected true/false, got 'yes'"),
        ({"jsonnet": {"extVars": [{"value": "x"}]}}, "directory.jsonnet.extVars[0].name: required"),
        (
            {"jsonnet": {"libs": "vendor"}},
            "spec.source.directory.jsonnet.libs: expected a list, got 'vendor'",
        ),
        (
            {"jsonnet": {"imports": []}},
            "directory.jsonnet.imports: unknown field (fields here: extVars, libs, tlas)",
        ),
        (
            {"recursive": True},
            "spec.source.directory.recursive: unknown field (did you mean recurse?)",
        ),
    ],
)
def test_directory_errors_name_the_field(
    tmp_path: Path, directory: dict[str, object], field: str
) -> None:
    message = refused(tmp_path, argo({"directory": directory}))
    assert field in message, message


def test_plugin_is_recorded_for_the_renderer_to_refuse(tmp_path: Path) -> None:
    app = load_one(tmp_path, argo({"plugin": {"name": "cdk8s"}}))
    assert app.source.plugin
    assert not load_one(tmp_path, argo({})).source.plugin


def test_helm_repository_chart_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, argo({"chart": "nginx", "targetRevision": "1.2.3"}))
    assert "spec.source.chart: charts from a Helm repository are not supported" in message


def test_fleet_yaml_reads_the_same_fields(tmp_path: Path) -> None:
    document = {
        "apps": [
            {
                "name": "plain",
                "source": {"repoURL": "https://git.example/r.git", "path": "m"},
                "destination": {"namespace": "a"},
            },
            {
                "name": "kust",
                "source": {
                    "repoURL": "https://git.example/r.git",
                    "path": "k",
                    "kustomize": {"images": ["nginx:1.27"], "namePrefix": "p-"},
                    "directory": {"recurse": True},
                },
                "destination": {"namespace": "a"},
            },
            {
                "name": "chart",
                "source": {
                    "repoURL": "https://git.example/r.git",
                    "path": "c",
                    "helm": {"values": "a: 1\n", "parameters": [{"name": "a", "value": "2"}]},
                },
                "destination": {"namespace": "a"},
            },
        ]
    }
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    config = loading.load(path)
    plain, kust, chart = config.apps
    assert plain.source.directory is None, "fleet.yaml keeps fleet's recursive plain manifests"
    assert kust.source.kustomize is not None and kust.source.kustomize.name_prefix == "p-"
    assert kust.source.directory == DirectoryOptions(recurse=True)
    assert chart.source.helm is not None
    assert chart.source.helm.parameters == (HelmParameter("a", "2"),)
    document["apps"][1]["source"]["kustomize"]["nameprefix"] = "x"  # type: ignore[index]
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(
        ConfigError,
        match=r"fleet.yaml: apps\[1\].source.kustomize.nameprefix: unknown field "
        r"\(did you mean namePrefix\?\)",
    ):
        loading.load(path)


def test_names_with_dots(tmp_path: Path) -> None:
    assert load_one(tmp_path, argo({}, name="example.blue-green")).name == "example.blue-green"
    for bad in ("Example", "a..b", ".a", "a.", "a_b", "a" * 54):
        message = refused(tmp_path, argo({}, name=bad))
        assert "metadata.name" in message and "not a valid name" in message, message


def test_in_cluster_server_selects_the_cluster_named_in_cluster(tmp_path: Path) -> None:
    document = argo({})
    document["spec"]["destination"] = {  # type: ignore[index]
        "server": "https://kubernetes.default.svc",
        "namespace": "web",
    }
    selector = load_one(tmp_path, document).destination.clusters
    assert selector.matches(ClusterRef("in-cluster"), server="https://10.0.0.1:6443")
    assert not selector.matches(ClusterRef("prod"), server="https://kubernetes.default.svc")
    assert "clusters/in-cluster.yaml" in selector.note
    assert "destination.server" in selector.note
    document["spec"]["destination"] = {"server": "https://10.0.0.9:6443", "namespace": "w"}  # type: ignore[index]
    other = load_one(tmp_path, document).destination.clusters
    assert other.matches(ClusterRef("x"), server="https://10.0.0.9:6443") and not other.note
    assert not other.matches(ClusterRef("in-cluster"), server="https://10.0.0.1:6443")
