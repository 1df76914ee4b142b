"""Kustomize overlays over a shared base and a Helm chart with per-cluster values render to
exactly what ``kubectl kustomize`` and ``helm template`` give by hand."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from fleet.cache import CacheSettings, ManifestCache
from fleet.controlplane.binaries import ensure_tool
from fleet.reconcile.desired import AppSource, DesiredState
from fleet.render import HelmOptions, Renderer, RenderSettings
from fleet.settings import default_cache_dir
from fleet.sources import Sources, SourceSettings
from fleet.types import ClusterRef, RenderedSet
from tests.sources.gitkit import Remote

FILES = {
    "base/kustomization.yaml": "resources: [deploy.yaml]\ncommonLabels: {app: web}\n",
    "base/deploy.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n"
        "  template:\n    metadata: {labels: {app: web}}\n"
        "    spec: {containers: [{name: web, image: 'nginx:1'}]}\n"
    ),
    "overlays/prod/kustomization.yaml": (
        "resources: [../../base]\nnamePrefix: prod-\npatches: [{path: replicas.yaml}]\n"
    ),
    "overlays/prod/replicas.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n"
    ),
    "overlays/dev/kustomization.yaml": "resources: [../../base]\nnamePrefix: dev-\n",
    "charts/web/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "charts/web/values.yaml": "replicas: 1\ncluster: none\n",
    "charts/web/templates/cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\n"
        "  namespace: {{ .Release.Namespace }}\n"
        "data:\n  replicas: {{ .Values.replicas | quote }}\n  cluster: {{ .Values.cluster }}\n"
    ),
    "values/prod.yaml": "replicas: 5\n",
    "values/dev.yaml": "replicas: 2\n",
}


def by_hand(command: list[str]) -> RenderedSet:
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return RenderedSet.of([d for d in yaml.safe_load_all(out) if d])


@pytest.mark.anyio
async def test_kustomize_and_helm_match_by_hand(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.commit(FILES)
    helm = ensure_tool("helm", cache_dir=default_cache_dir())
    state = DesiredState(
        sources=Sources(SourceSettings(cache_dir=tmp_path / "cache")),
        renderer=Renderer(RenderSettings(helm=helm)),
        cache=ManifestCache(CacheSettings(root=tmp_path / "render")),
    )
    kust = AppSource(name="web", repo_url=remote.url, path="overlays/{{ cluster.labels.env }}")
    chart = AppSource(
        name="chart",
        repo_url=remote.url,
        path="charts/web",
        namespace="apps",
        helm=HelmOptions(
            release="web",
            value_files=("../../values/{{ cluster.labels.env }}.yaml",),
            values={"cluster": "{{ cluster.name }}"},
        ),
    )
    for env in ("prod", "dev"):
        cluster = ClusterRef(f"{env}-1", {"env": env})
        got = await state.desired(kust, cluster)
        assert got.error is None
        assert got.rendered == by_hand(
            ["kubectl", "kustomize", str(remote.work / "overlays" / env)]
        )
        got = await state.desired(chart, cluster)
        assert got.error is None
        expected = by_hand(
            [
                str(helm),
                "template",
                "web",
                str(remote.work / "charts/web"),
                "--include-crds",
                "--namespace",
                "apps",
                "--values",
                str(remote.work / f"values/{env}.yaml"),
                "--set",
                f"cluster={env}-1",
            ]
        )
        assert got.rendered == expected
        assert got.rendered.objects[0]["data"]["cluster"] == f"{env}-1"
