"""Argo CD Applications, loaded as the hub loads them and rendered through the real pipeline.

Each test commits a chart or a kustomization to a real git remote, writes an Application
document, loads it with :func:`fleet.config.loading.load`, and renders
:func:`fleet.hub.apps.app_source` of it with :class:`fleet.reconcile.desired.DesiredState` (the
real mirror, renderer and cache): the objects are what ``helm template`` / ``kubectl kustomize``
print for the same fields.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleet.cache import CacheSettings, ManifestCache
from fleet.config import loading
from fleet.config.model import App
from fleet.hub import apps
from fleet.reconcile.desired import DesiredState
from fleet.render import (
    DirectoryOptions,
    HelmFileParameter,
    HelmOptions,
    HelmParameter,
    JsonnetOptions,
    JsonnetVar,
    KustomizeOptions,
    KustomizeReplica,
    Renderer,
    RenderSettings,
)
from fleet.sources import Sources, SourceSettings
from fleet.types import ClusterRef, RenderedSet
from tests.render.argokit import by_hand, helm_binary
from tests.sources.gitkit import Remote

CLUSTER = ClusterRef("in-cluster")
CHART_CM = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-cfg
data:
  replicas: {{ .Values.replicas | quote }}
  tag: {{ .Values.image.tag | quote }}
  port: {{ .Values.port | quote }}
"""
DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.25}]
"""
FILES = {
    "charts/web/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "charts/web/values.yaml": "replicas: 1\nimage: {tag: v1}\nport: 80\n",
    "charts/web/templates/cm.yaml": CHART_CM,
    "kust/kustomization.yaml": "resources: [deploy.yaml]\n",
    "kust/deploy.yaml": DEPLOY,
}


def application(remote: Remote, name: str, source: str) -> str:
    """An Application document as a team moving from Argo CD writes it."""
    return f"""apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
  namespace: argocd
spec:
  project: default
  source:
    repoURL: {remote.url}
    targetRevision: main
{source}
  destination:
    server: https://kubernetes.default.svc
    namespace: web
  syncPolicy:
    automated: {{}}
"""


def pipeline(root: Path) -> DesiredState:
    return DesiredState(
        sources=Sources(SourceSettings(cache_dir=root / "cache", interval=0.0)),
        renderer=Renderer(RenderSettings(helm=helm_binary())),
        cache=ManifestCache(CacheSettings(root=root / "renders")),
    )


def load_app(root: Path, document: str) -> App:
    config = root / "config"
    config.mkdir()
    (config / "app.yaml").write_text(document, encoding="utf-8")
    (app,) = loading.load(config).apps
    assert app.destination.clusters.matches(CLUSTER, server="https://127.0.0.1:6443")
    return app


async def render(root: Path, app: App) -> RenderedSet:
    desired = await pipeline(root).desired(apps.app_source(app), CLUSTER)
    assert desired.error is None, desired.error
    assert desired.rendered is not None
    return desired.rendered


@pytest.mark.anyio
async def test_helm_values_text_and_parameters(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.commit(FILES)
    source = """    path: charts/web
    helm:
      values: |
        replicas: 4
        image:
          tag: v9
      parameters:
        - name: image.tag
          value: v10
        - name: port
          value: "8080"
          forceString: true
"""
    app = load_app(tmp_path, application(remote, "example.blue-green", source))
    got = await render(tmp_path, app)
    (cm,) = got.objects
    assert cm["metadata"]["name"] == "example.blue-green-cfg", "no releaseName: the app's name"
    assert cm["data"] == {"replicas": "4", "tag": "v10", "port": "8080"}
    values = tmp_path / "values.yaml"
    values.write_text("replicas: 4\nimage:\n  tag: v9\n")
    hand = by_hand(
        [
            str(helm_binary()),
            "template",
            "example.blue-green",
            str(remote.work / "charts/web"),
            "--namespace",
            "web",
            "--values",
            str(values),
            "--set",
            "image.tag=v10",
            "--set-string",
            "port=8080",
        ]
    )
    assert got == hand


@pytest.mark.anyio
async def test_kustomize_images_and_name_prefix(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.commit(FILES)
    source = """    path: kust
    kustomize:
      images: [nginx=nginx:1.27]
      namePrefix: blue-
      replicas: [{name: web, count: 3}]
"""
    app = load_app(tmp_path, application(remote, "web", source))
    got = await render(tmp_path, app)
    (deploy,) = got.objects
    assert deploy["metadata"]["name"] == "blue-web"
    assert deploy["spec"]["replicas"] == 3
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    hand_tree = tmp_path / "hand"
    hand_tree.mkdir()
    (hand_tree / "deploy.yaml").write_text(DEPLOY)
    (hand_tree / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": ["deploy.yaml"],
                "images": [{"name": "nginx", "newName": "nginx", "newTag": "1.27"}],
                "namePrefix": "blue-",
                "replicas": [{"name": "web", "count": 3}],
            }
        )
    )
    assert got == by_hand(["kubectl", "kustomize", str(hand_tree)])


@pytest.mark.anyio
async def test_application_reads_only_the_top_directory(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\n"
    remote.commit({"plain/top.yaml": cm % "top", "plain/sub/deep.yaml": cm % "deep"})
    top = load_app(tmp_path, application(remote, "plain", "    path: plain\n"))
    assert [o["metadata"]["name"] for o in (await render(tmp_path / "a", top)).objects] == ["top"]
    (tmp_path / "config" / "app.yaml").write_text(
        application(remote, "plain", "    path: plain\n    directory: {recurse: true}\n")
    )
    (deep,) = loading.load(tmp_path / "config").apps
    names = sorted(o["metadata"]["name"] for o in (await render(tmp_path / "b", deep)).objects)
    assert names == ["deep", "top"]


@pytest.mark.anyio
async def test_plugin_source_is_an_error_naming_the_field(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.commit(FILES)
    source = "    path: kust\n    plugin: {name: cdk8s}\n"
    app = load_app(tmp_path, application(remote, "web", source))
    desired = await pipeline(tmp_path).desired(apps.app_source(app), CLUSTER)
    assert desired.error is not None and desired.rendered is None
    assert "spec.source.plugin" in str(desired.error)


def test_app_source_translates_every_field(tmp_path: Path) -> None:
    document = """apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: all}
spec:
  source:
    repoURL: https://git.example/r.git
    path: app
    helm:
      valueFiles: [v.yaml]
      values: {a: 1}
      valuesObject: {b: 2}
      parameters: [{name: c, value: "3", forceString: true}]
      fileParameters: [{name: d, path: d.txt}]
      releaseName: rel
      ignoreMissingValueFiles: true
      skipCrds: true
      skipTests: true
      namespace: other
      kubeVersion: 1.30.0
      apiVersions: [x/v1]
      version: v3
      passCredentials: true
  destination: {name: c1, namespace: web}
"""
    config = tmp_path / "a.yaml"
    config.write_text(document)
    (app,) = loading.load(config).apps
    source = apps.app_source(app)
    assert source.helm == HelmOptions(
        release="rel",
        value_files=("v.yaml",),
        values={"a": 1},
        values_object={"b": 2},
        parameters=(HelmParameter("c", "3", force_string=True),),
        file_parameters=(HelmFileParameter("d", "d.txt"),),
        ignore_missing_value_files=True,
        skip_crds=True,
        skip_tests=True,
        namespace="other",
        kube_version="1.30.0",
        api_versions=("x/v1",),
        version="v3",
        pass_credentials=True,
    )
    assert source.directory == DirectoryOptions() and source.kustomize is None
    assert (source.name, source.revision, source.path, source.namespace) == (
        "all",
        "HEAD",
        "app",
        "web",
    )
    kustomize = document.split("    helm:", maxsplit=1)[0] + (
        "    kustomize:\n"
        "      images: [a:1]\n      namePrefix: p-\n      nameSuffix: -s\n"
        "      namespace: n\n      commonLabels: {l: v}\n      commonAnnotations: {a: v}\n"
        "      forceCommonLabels: true\n      forceCommonAnnotations: true\n"
        "      labelWithoutSelector: true\n      labelIncludeTemplates: true\n"
        "      replicas: [{name: w, count: 2}]\n      patches: [{path: p.yaml}]\n"
        "      components: [c]\n      ignoreMissingComponents: true\n      version: v5\n"
        "    directory:\n      recurse: true\n      include: '*.yaml'\n      exclude: x/*\n"
        "      jsonnet: {extVars: [{name: e, value: '1', code: true}], tlas: [{name: t, "
        "value: v}], libs: [lib]}\n"
        "    plugin: {name: p}\n"
        "  destination: {name: c1, namespace: web}\n"
    )
    config.write_text(kustomize)
    (app,) = loading.load(config).apps
    source = apps.app_source(app)
    assert source.helm is None and source.plugin
    assert source.kustomize == KustomizeOptions(
        images=("a:1",),
        name_prefix="p-",
        name_suffix="-s",
        namespace="n",
        common_labels={"l": "v"},
        common_annotations={"a": "v"},
        force_common_labels=True,
        force_common_annotations=True,
        label_without_selector=True,
        label_include_templates=True,
        replicas=(KustomizeReplica("w", 2),),
        patches=({"path": "p.yaml"},),
        components=("c",),
        ignore_missing_components=True,
        version="v5",
    )
    assert source.directory == DirectoryOptions(
        recurse=True,
        include="*.yaml",
        exclude="x/*",
        jsonnet=JsonnetOptions(
            ext_vars=(JsonnetVar("e", "1", code=True),),
            tlas=(JsonnetVar("t", "v"),),
            libs=("lib",),
        ),
    )


def test_no_release_name_stays_empty(tmp_path: Path) -> None:
    config = tmp_path / "a.yaml"
    config.write_text(
        "apps:\n- name: web\n  source: {repoURL: https://git.example/r.git, path: c, "
        "helm: {values: 'a: 1'}}\n  destination: {namespace: web}\n"
    )
    (app,) = loading.load(config).apps
    source = apps.app_source(app)
    assert source.helm is not None and source.helm.release == ""
    assert source.helm.values == "a: 1" and source.directory is None
