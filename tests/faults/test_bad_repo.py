"""One refused repository hurts only itself: the hub lives, the other apps converge and heal.

Round 1's hub ended when one repository's credential was refused (a StalledError out of the poll
loop), and again 10 s after every restart. Here one app reads a repository whose credential is
wrong, another reads a good one, and a third names its password in the repoURL; the hub, a
``fleet run`` subprocess, must stay up, apply every commit of the good repository, heal drift, show
the refused repository as failed with its cause, and refuse the third app at load without ever
showing its password.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import yaml
from kubernetes_asyncio import client, config

from fleet.controlplane import RunningCluster
from tests.faults.faultkit import fault_rig
from tests.hub.hubkit import configmap, until, value_on

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]

USER, PASSWORD = "fleet", "good-password-4711"
URL_PASSWORD = "pw-in-url-0815"


async def _edit_by_hand(cluster: RunningCluster, namespace: str) -> None:
    async with await config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
        await client.CoreV1Api(api).patch_namespaced_config_map(
            "settings", namespace, {"data": {"value": "by-hand"}}
        )


async def test_a_refused_credential_ends_nothing(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    with fault_rig(tmp_path, auth=(USER, PASSWORD)) as rig:
        good, bad = rig.remote("good"), rig.remote("bad")
        good.commit({"app/cm.yaml": configmap("fault-good", "v0")})
        bad.commit({"app/cm.yaml": configmap("fault-bad", "v0")})
        credentials = tmp_path / "credentials.yaml"
        credentials.write_text(
            yaml.safe_dump(
                {
                    "credentials": [
                        {"url": rig.url("good"), "username": USER, "password": PASSWORD},
                        {"url": rig.url("bad"), "username": USER, "password": "wrong"},
                    ]
                }
            )
        )
        leaky = rig.url("bad").replace("http://", f"http://{USER}:{URL_PASSWORD}@")
        rig.write_config(
            f"""apps:
  - name: good
    source: {{repoURL: "{rig.url("good")}", targetRevision: main, path: app}}
    destination: {{namespace: fault-good}}
    syncPolicy: {{selfHeal: true, createNamespace: true}}
  - name: bad
    source: {{repoURL: "{rig.url("bad")}", targetRevision: main, path: app}}
    destination: {{namespace: fault-bad}}
    syncPolicy: {{createNamespace: true}}
  - name: leaky
    source: {{repoURL: "{leaky}", targetRevision: main, path: app}}
    destination: {{namespace: fault-leaky}}
"""
        )
        for cluster in kit_clusters:
            rig.drop(cluster)
        hub = rig.hub(
            poll_interval=0.5, resync_interval=2.0, extra_args=["--credentials", str(credentials)]
        )

        async def good_is(value: str) -> bool:
            return all([await value_on(c, "fault-good") == value for c in kit_clusters])

        await until(lambda: good_is("v0"))
        for round_ in range(1, 5):  # every commit to the good repo lands while the bad one fails
            good.commit({"app/cm.yaml": configmap("fault-good", f"v{round_}")})
            await until(lambda: good_is(f"v{round_}"))  # noqa: B023 - awaited in the loop
            assert hub.alive()
        await _edit_by_hand(kit_clusters[0], "fault-good")
        await until(lambda: good_is("v4"))  # drift healed meanwhile

        data = await rig.status()
        repos = {r["repo"]: r for r in data["repos"]}
        bad_repo = next(r for key, r in repos.items() if key.endswith("/bad"))
        assert bad_repo["state"] == "failed" and bad_repo["error"]
        assert "leaky" in data["config_error"] and "credentials file" in data["config_error"]
        bad_cells = [c for c in data["apps"] if c["app"] == "bad"]
        assert all(not c["ready"] for c in bad_cells)
        assert not data["summary"]["green"]
        for cluster in kit_clusters:
            assert await value_on(cluster, "fault-bad") is None  # nothing of it applied
        await anyio.sleep(2)  # a few more polls of the failing repo: still alive
        assert hub.alive()
        _, metrics = await rig.get("/metrics")
        _, page = await rig.get("/")
        hub.stop()
        seen = [rig.log_text(), str(data), str(metrics), str(page)]
        seen.append((tmp_path / "state" / "history.sqlite").read_bytes().decode(errors="replace"))
        assert not [text for text in seen if URL_PASSWORD in text]
