"""Rancher Fleet bundles through the hub, on kit clusters, from a real git remote over HTTP.

One app of fleet's config points at a path holding a Rancher Fleet ``fleet.yaml``; the kit's two
clusters carry different labels (``index: "1"`` and ``"2"``), and the bundle's
``targetCustomizations`` give each its own Helm values: what lands on each cluster is what
``helm template`` prints for the values Rancher Fleet would merge for it, in the bundle's
``defaultNamespace``. A commit that changes one target's values changes that cluster only.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from fleet.controlplane import RunningCluster
from fleet.hub.hub import Hub
from tests.hub.hubkit import drop, hub_settings, push_webhook, until, value_on, values
from tests.render.argokit import by_hand, helm_binary
from tests.sources.gitkit import GitHttpServer, Remote

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]

NS = "rf-web"
CHART = {
    "bundles/web/chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "bundles/web/chart/values.yaml": "value: chart-default\ntier: none\n",
    "bundles/web/chart/templates/ns.yaml": (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + NS + "}\n"
    ),
    "bundles/web/chart/templates/cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
        "data:\n  value: {{ .Values.value | quote }}\n  tier: {{ .Values.tier | quote }}\n"
        "  release: {{ .Release.Name | quote }}\n"
    ),
    "bundles/web/one.yaml": "tier: gold\n",
}


def bundle(two: str) -> str:
    return f"""\
defaultNamespace: {NS}
helm:
  chart: ./chart
  releaseName: shop
  values: {{value: bundle-default}}
targetCustomizations:
- name: first
  clusterSelector:
    matchLabels: {{index: "1"}}
  helm:
    values: {{value: 'one-${{ .ClusterName }}'}}
    valuesFiles: [one.yaml]
- name: second
  clusterSelector:
    matchExpressions:
    - {{key: index, operator: In, values: ["2", "3"]}}
  helm:
    values: {{value: {two}}}
"""


def config(url: str) -> str:
    # the destination namespace is not where the objects go: the bundle's defaultNamespace is
    return f"""apps:
  - name: web
    source: {{repoURL: "{url}", targetRevision: main, path: bundles/web}}
    destination: {{namespace: rf-unused}}
    syncPolicy: {{prune: true, selfHeal: true}}
"""


def settled(hub: Hub, app: str, cluster: RunningCluster) -> bool:
    """Green, or stopped on an error that no retry mends (then the test says which)."""
    cell = hub.board.cell(app, cluster.name)
    return cell.ready or cell.error_reason in ("RenderFailed", "SyncFailed")


def live_data(
    cluster: RunningCluster, name: str = "settings", namespace: str = NS
) -> dict[str, str]:
    out = by_hand(
        [
            "kubectl",
            f"--kubeconfig={cluster.kubeconfig}",
            "get",
            "configmap",
            name,
            f"--namespace={namespace}",
            "-o",
            "yaml",
        ]
    )
    (cm,) = out.objects
    return dict(cm["data"])


def templated(work: Path, values: dict[str, str]) -> dict[str, str]:
    """The ConfigMap data ``helm template`` prints for `values` (the merge done by hand)."""
    file = work.parent / "hand-values.yaml"
    file.write_text(json.dumps(values))
    chart = str(work / "bundles" / "web" / "chart")
    out = by_hand([str(helm_binary()), "template", "shop", chart, "--values", str(file)])
    (cm,) = [o for o in out.objects if o["kind"] == "ConfigMap"]
    return dict(cm["data"])


async def test_targets_give_each_cluster_its_values(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    one, two = kit_clusters[0], kit_clusters[1]
    assert (one.labels["index"], two.labels["index"]) == ("1", "2")
    root = tmp_path / "git"
    remote = Remote(root, "bundles")
    with GitHttpServer(root) as server:
        url = server.url("bundles.git")
        remote.commit({**CHART, "bundles/web/fleet.yaml": bundle("two-v1")})
        settings = hub_settings(tmp_path, helm=helm_binary())
        settings.config_path.write_text(config(url))
        for cluster in (one, two):
            drop(cluster, settings.clusters_dir)
        hub = Hub(settings)
        async with anyio.create_task_group() as tg:
            port = await tg.start(hub.run)
            for cluster in (one, two):
                await until(lambda c=cluster: settled(hub, "web", c), limit=180)  # type: ignore[misc]
                cell = hub.board.cell("web", cluster.name)
                assert cell.ready, cell.error
            assert await values([one, two], NS) == [f"one-{one.name}", "two-v1"]
            assert live_data(one) == templated(
                remote.work, {"value": f"one-{one.name}", "tier": "gold"}
            )
            assert live_data(two) == templated(remote.work, {"value": "two-v1"})
            assert await value_on(one, "rf-unused") is None

            # a commit changing the second target's values moves the second cluster only
            remote.commit({"bundles/web/fleet.yaml": bundle("two-v2")})
            assert await push_webhook(port, url) == 200

            async def moved() -> bool:
                return await value_on(two, NS) == "two-v2"

            await until(moved, limit=180)
            assert await value_on(one, NS) == f"one-{one.name}"
            cell = hub.board.cell("web", one.name)
            assert cell.ready and cell.sync == "Synced"
            hub.stop()


RAW_NS = "rf-raw"
RAW = {
    "bundles/raw/ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {RAW_NS}}}\n",
    "bundles/raw/settings.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
        "data: {value: base, keep: 'yes'}\n"
    ),
    "bundles/raw/overlays/prod/settings_patch.yaml": "data: {value: patched}\n",
    "bundles/raw/overlays/prod/extra.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\ndata: {value: added}\n"
    ),
    "bundles/raw/fleet.yaml": f"defaultNamespace: {RAW_NS}\nyaml: {{overlays: [prod]}}\n",
}


async def test_raw_bundle_overlays_reach_every_cluster(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    """A bundle without targets renders once for all clusters (no cluster input in its key)."""
    clusters = kit_clusters[:2]
    root = tmp_path / "git"
    remote = Remote(root, "bundles")
    with GitHttpServer(root) as server:
        url = server.url("bundles.git")
        remote.commit(RAW)
        settings = hub_settings(tmp_path)
        settings.config_path.write_text(
            config(url).replace("name: web", "name: raw").replace("bundles/web", "bundles/raw")
        )
        for cluster in clusters:
            drop(cluster, settings.clusters_dir)
        hub = Hub(settings)
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            for cluster in clusters:
                await until(lambda c=cluster: settled(hub, "raw", c), limit=180)  # type: ignore[misc]
                cell = hub.board.cell("raw", cluster.name)
                assert cell.ready, cell.error
                assert live_data(cluster, namespace=RAW_NS) == {"value": "patched", "keep": "yes"}
                assert live_data(cluster, "extra", RAW_NS) == {"value": "added"}
            assert hub.desired.renderer.renders == 1  # one render served both clusters
            hub.stop()
