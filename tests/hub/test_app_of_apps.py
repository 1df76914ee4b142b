"""App of apps: a parent app's path holds Argo CD Applications, which become apps of the hub.

Pure: the children of a render (a kind that is not an Application is reported, a bad document
stops only itself and keeps its last good version, a name twice in one parent is refused), and
the composed config (a child may not take the name of a config app or of another parent's child;
the child that had the name keeps it). End to end: a real hub on a kit cluster; one parent of
plain YAML with two Applications and one Helm chart templating an Application; the children
converge; a commit removing one forgets it and keeps its objects, a child duplicating a fleet.yaml
app is refused naming both, a bad child document does not stop the others.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
import yaml

from fleet.config import Config, loading
from fleet.config.projects import Destination, Project
from fleet.controlplane import RunningCluster
from fleet.errors import FleetError, StalledError
from fleet.hub import appofapps
from fleet.hub.hub import Hub
from fleet.reconcile.desired import Desired
from fleet.types import ClusterRef, RenderedSet
from tests.hub.hubkit import configmap, drop, hub_settings, push_webhook, until, value_on
from tests.render.argokit import helm_binary
from tests.sources.gitkit import GitHttpServer, Remote

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def application(name: str, repo_url: str, cluster: str, *, path: str = "") -> str:
    return f"""apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: {name}, namespace: argocd}}
spec:
  project: default
  source: {{repoURL: "{repo_url}", targetRevision: main, path: {path or name}}}
  destination: {{name: {cluster}, namespace: aoa-{name}}}
  syncPolicy:
    automated: {{prune: true}}
    syncOptions: [CreateNamespace=true]
"""


def _parent(name: str = "parent") -> Any:
    text = f"""apps:
  - name: {name}
    source: {{repoURL: "https://git.example/apps.git", path: parent}}
    destination: {{namespace: argocd}}
"""
    path = Path(f"/nonexistent/{name}.yaml")
    (app,) = loading.parse_documents(list(yaml.safe_load_all(text)), origin=str(path))
    return app


def _docs(*texts: str) -> list[dict[str, Any]]:
    return [yaml.safe_load(t) for t in texts]


def test_children_of_a_render() -> None:
    url = "https://git.example/apps.git"
    objects = _docs(
        application("child-a", url, "c1"),
        application("child-b", url, "c1").replace("destination:", "destinaton:"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stray}\n",
        application("child-c", url, "c1"),
        application("child-c", url, "c2"),
        application("nested", url, "c1").replace(
            "namespace: argocd}",
            'namespace: argocd, annotations: {fleet.dev/applications: "true"}}',
        ),
    )
    found = appofapps.children_of(_parent(), objects, commit=COMMIT, config=Config())
    assert sorted(found.apps) == ["child-a", "child-c"]
    assert found.apps["child-a"].origin.startswith("parent app parent at ")
    text = "\n".join(found.errors)
    assert "ConfigMap stray" in text and "applied nowhere" in text
    assert "Application child-b" in text and COMMIT[:12] in text and "it is not added" in text
    assert "did you mean destination?" in text  # the schema of fleet.yaml's Applications
    assert "declared twice by this parent" in text
    assert "(Application nested): a parent app of a parent app" in text

    # the bad document of a child seen before keeps its last good version
    again = appofapps.children_of(
        _parent(),
        _docs(application("child-a", url, "c1").replace("path: child-a", "path: ../up")),
        commit=COMMIT,
        config=Config(),
        previous=found.apps,
    )
    assert again.apps == {"child-a": found.apps["child-a"]}
    assert "last good version stays in use" in again.errors[0]


class _Renders:
    """Stands in for the render pipeline: each parent renders the objects the test gives it."""

    def __init__(self) -> None:
        self.objects: dict[str, list[dict[str, Any]]] = {}

        self.error: FleetError | None = None

    async def desired(self, app: Any, cluster: ClusterRef) -> Desired:
        if self.error is not None:
            return Desired(app.name, cluster.name, None, error=self.error)
        rendered = RenderedSet.of(self.objects[app.name])
        return Desired(app.name, cluster.name, rendered, commit=COMMIT)


@pytest.mark.anyio
async def test_a_child_keeps_its_name_against_a_newcomer() -> None:
    url = "https://git.example/apps.git"
    renders = _Renders()
    parents = appofapps.Parents(desired=renders, sources=None, hub="fleet")  # type: ignore[arg-type]
    one, two = _parent("zeta"), _parent("alpha")
    base = Config(apps=(one, two))
    renders.objects = {"zeta": _docs(application("shared", url, "c1")), "alpha": []}
    assert await parents.refresh([one, two], config=base, moved=set(), force=True)
    config, problems = parents.compose(base, parents=frozenset({"zeta", "alpha"}))
    assert [a.name for a in config.apps] == ["shared"] and not problems

    renders.objects["alpha"] = _docs(
        application("shared", url, "c2"), application("zeta", url, "c1")
    )
    assert await parents.refresh([one, two], config=base, moved=set(), force=True)
    config, problems = parents.compose(base, parents=frozenset({"zeta", "alpha"}))
    assert [a.name for a in config.apps] == ["shared"]
    assert config.apps[0].destination.clusters.names == ("c1",)  # zeta's, the first owner
    text = "\n".join(problems)
    assert "app shared of parent app alpha" in text and "parent app zeta" in text
    assert "app zeta of parent app alpha" in text and "/nonexistent/zeta.yaml" in text
    status = {p["app"]: p for p in parents.status()}
    assert status["zeta"]["children"] == 1 and status["alpha"]["children"] == 0
    assert status["alpha"]["refused"] == ["shared", "zeta"]

    # a render that fails keeps the last good children, and says so
    renders.error = StalledError("repo apps commit 0123456789ab: invalid YAML in parent/x.yaml")
    assert await parents.refresh([one, two], config=base, moved=set(), force=True)
    config, problems = parents.compose(base, parents=frozenset({"zeta", "alpha"}))
    assert [a.name for a in config.apps] == ["shared"]
    text = "\n".join(problems)
    assert "parent app zeta: repo apps commit 0123456789ab: invalid YAML" in text
    assert "its last good children stay" in text
    assert not await parents.refresh([one, two], config=base, moved=set(), force=False)


def test_a_child_stays_in_its_parents_project() -> None:
    url = "https://git.example/apps.git"
    team = Project(name="team", source_repos=("*",), destinations=(Destination(namespaces=("*",)),))
    parent = dataclasses.replace(_parent(), project="team", project_rules=team)
    found = appofapps.children_of(
        parent,
        _docs(
            application("escapes", url, "c1"),  # project: default, which allows everything
            application("stays", url, "c1").replace("project: default", "project: team"),
        ),
        commit=COMMIT,
        config=Config(projects=(team,)),
    )
    assert list(found.apps) == ["stays"] and found.apps["stays"].project_rules == team
    assert "app 'escapes' names project 'default', but its parent app parent" in found.errors[0]


def test_declared_parents(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(
        """apps:
  - {name: plain, source: {repoURL: x}, destination: {namespace: a}}
  - {name: parent, applications: true, source: {repoURL: x}, destination: {namespace: a}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: argo-parent, annotations: {fleet.dev/applications: "true"}}
spec: {source: {repoURL: x}, destination: {name: c, namespace: a}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: argo-plain}
spec: {source: {repoURL: x}, destination: {name: c, namespace: a}}
"""
    )
    assert appofapps.parents(loading.load(tmp_path)) == {"parent", "argo-parent"}


CHART = {
    "parent/chart/Chart.yaml": "apiVersion: v2\nname: children\nversion: 0.1.0\n",
    "parent/chart/values.yaml": "repoURL: ''\ncluster: ''\nchildren: []\n",
    "parent/chart/templates/apps.yaml": """{{- range .Values.children }}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {{ . }}
spec:
  source: {repoURL: {{ $.Values.repoURL | quote }}, targetRevision: main, path: {{ . }}}
  destination: {name: {{ $.Values.cluster }}, namespace: aoa-{{ . }}}
  syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
{{- end }}
""",
}


def _config(apps_url: str, cluster: str) -> str:
    return f"""apps:
  - name: web
    source: {{repoURL: "{apps_url}", targetRevision: main, path: web}}
    destination: {{namespace: aoa-web}}
    syncPolicy: {{prune: true, createNamespace: true}}
  - name: parent-plain
    applications: true
    source: {{repoURL: "{apps_url}", targetRevision: main, path: parent/plain}}
    destination: {{namespace: argocd}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: parent-helm
  annotations: {{fleet.dev/applications: "true"}}
spec:
  source:
    repoURL: "{apps_url}"
    targetRevision: main
    path: parent/chart
    helm:
      valuesObject: {{repoURL: "{apps_url}", cluster: {cluster}, children: [child-c]}}
  destination: {{name: in-cluster, namespace: argocd}}
"""


@pytest.mark.anyio
async def test_app_of_apps(kit_clusters: list[RunningCluster], tmp_path: Path) -> None:
    cluster = kit_clusters[0]
    root = tmp_path / "git"
    apps = Remote(root, "apps")
    with GitHttpServer(root) as server:
        url = server.url("apps.git")
        apps.commit(
            {
                **{f"{n}/cm.yaml": configmap(f"aoa-{n}", "v1") for n in ("child-a", "child-b")},
                "child-c/cm.yaml": configmap("aoa-child-c", "v1"),
                "web/cm.yaml": configmap("aoa-web", "v1"),
                "parent/plain/a.yaml": application("child-a", url, cluster.name),
                "parent/plain/b.yaml": application("child-b", url, cluster.name),
                **CHART,
            }
        )
        settings = hub_settings(tmp_path, helm=helm_binary())
        settings.config_path.write_text(_config(url, cluster.name))
        drop(cluster, settings.clusters_dir)
        hub = Hub(settings)
        async with anyio.create_task_group() as tg:
            port = await tg.start(hub.run)
            for name in ("web", "child-a", "child-b", "child-c"):
                await until(lambda n=name: hub.board.cell(n, cluster.name).ready)  # type: ignore[misc]
            for namespace in ("aoa-web", "aoa-child-a", "aoa-child-b", "aoa-child-c"):
                assert await value_on(cluster, namespace) == "v1"
            assert not hub.board.config_error
            assert {a.name for a in hub.reconciler.config.apps} == {
                "web",
                "child-a",
                "child-b",
                "child-c",
            }
            assert not hub.targets.of_app("parent-plain")  # a parent is applied nowhere
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/api/status") as response,
            ):
                parents = {p["app"]: p for p in (await response.json())["parents"]}
            assert parents["parent-plain"]["children"] == 2
            assert parents["parent-helm"]["children"] == 1
            assert parents["parent-helm"]["names"] == ["child-c"]

            # one child leaves, one duplicates a fleet.yaml app, one is bad, one goes bad
            second = apps.commit(
                {
                    "parent/plain/b.yaml": None,
                    "parent/plain/dup.yaml": application("web", url, cluster.name, path="child-a"),
                    "parent/plain/bad.yaml": application("child-bad", url, cluster.name).replace(
                        "destination:", "destinaton:"
                    ),
                    "parent/plain/a.yaml": application("child-a", url, cluster.name).replace(
                        "path: child-a", "path: ../child-a"
                    ),
                }
            )
            assert await push_webhook(port, url) == 200
            await until(lambda: hub.reconciler.config.app("child-b") is None)
            assert not hub.targets.of_app("child-b")
            assert await value_on(cluster, "aoa-child-b") == "v1"  # forgotten, objects kept
            error = hub.board.config_error
            assert "app web of parent app parent-plain" in error
            assert f"app web of {settings.config_path}" in error  # both named
            assert "Application child-bad" in error and second[:12] in error
            assert "Application child-a" in error and "last good version stays in use" in error
            web = hub.reconciler.config.app("web")
            assert web is not None and web.source.path == "web"
            child_a = hub.reconciler.config.app("child-a")
            assert child_a is not None and child_a.source.path == "child-a"
            assert hub.reconciler.config.app("child-c") is not None
            assert hub.board.config_status["parents"][1]["children"] == 1  # parent-plain
            hub.stop()
