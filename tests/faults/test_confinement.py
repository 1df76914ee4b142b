"""A chart carrying the symlink chain of issue 11, served to the hub as a subprocess.

The chain (``up -> ../…/x``, ``esc -> up/../…/HUB/clusters/test-1.yaml``) aims ``.Files.Get`` at
the hub's own copy of a cluster's kubeconfig, admin client key included; that is what the
report's render put into a ConfigMap. A second app from another repository is good. Asserted
from outside: the hub is alive, the good app converged on every cluster, the bad app's cells carry
an error naming the link, and neither any cluster's ConfigMaps, nor ``/api/status``, nor the
hub's log hold the key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client, config

from fleet.controlplane import RunningCluster
from fleet.controlplane.binaries import ensure_tool
from fleet.settings import default_cache_dir
from tests.faults.faultkit import FaultRig, fault_rig
from tests.hub.hubkit import all_equal, configmap, namespace_doc, until, values
from tests.render.linkkit import chain

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]

GOOD_NS = "fault-confine-good"
BAD_NS = "fault-confine-bad"


def fleet_yaml(good_url: str, bad_url: str) -> str:
    return f"""apps:
  - name: good
    source: {{repoURL: "{good_url}", targetRevision: main, path: app}}
    destination: {{namespace: {GOOD_NS}}}
  - name: leaky
    source: {{repoURL: "{bad_url}", targetRevision: main, path: chart, helm: {{releaseName: web}}}}
    destination: {{namespace: {BAD_NS}}}
    syncPolicy: {{createNamespace: true}}
"""


def client_key(kubeconfig: Path) -> str:
    doc = yaml.safe_load(kubeconfig.read_text())
    key = str(doc["users"][0]["user"]["client-key-data"])
    assert len(key) > 100
    return key


async def configmaps_text(cluster: RunningCluster) -> str:
    """Every ConfigMap on `cluster`, as one JSON text."""
    async with await config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
        items = (await client.CoreV1Api(api).list_config_map_for_all_namespaces()).items
        return json.dumps([{"name": cm.metadata.name, "data": cm.data} for cm in items])


async def leaky_cells(rig: FaultRig) -> list[dict[str, Any]]:
    return [c for c in (await rig.status())["apps"] if c["app"] == "leaky"]


async def test_a_chart_with_the_chain_is_refused_and_the_fleet_carries_on(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    with fault_rig(tmp_path) as rig:
        copies = [rig.drop(cluster) for cluster in kit_clusters]
        key = client_key(copies[0])
        good = rig.remote("good")
        good.commit(
            {"app/ns.yaml": namespace_doc(GOOD_NS), "app/cm.yaml": configmap(GOOD_NS, "v1")}
        )
        bad = rig.remote("charts")
        bad.commit({"chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n"})
        esc = chain(bad, base="chart", target=copies[0].resolve())
        steal = f'{{{{ .Files.Get "{esc.removeprefix("chart/")}" | quote }}}}'
        bad.commit(
            {
                "chart/templates/cm.yaml": (
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stolen}\n"
                    f"data:\n  kubeconfig: {steal}\n"
                )
            }
        )
        rig.write_config(fleet_yaml(rig.url("good"), rig.url("charts")))
        helm = ensure_tool("helm", cache_dir=default_cache_dir())  # `fleet run` finds helm on PATH
        hub = rig.hub(env={"PATH": os.pathsep.join([str(helm.parent), os.environ["PATH"]])})

        await until(lambda: all_equal(values(kit_clusters, GOOD_NS), "v1"))

        async def refused_everywhere() -> bool:
            cells = await leaky_cells(rig)
            return len(cells) == len(kit_clusters) and all(esc in c["error"] for c in cells)

        await until(refused_everywhere, limit=60)
        assert hub.alive()
        for cell in await leaky_cells(rig):
            assert "escapes the repository" in cell["error"], cell
            assert (cell.get("sync"), cell.get("health")) != ("Synced", "Healthy"), cell
        for cluster in kit_clusters:
            assert key not in await configmaps_text(cluster), cluster.name
        status = json.dumps(await rig.status())
        assert key not in status and key[:40] not in rig.log_text()
