"""The hub end to end, against real clusters and a real git remote.

What converged is read from the clusters themselves (an independent reader), never from the hub's
own status. The waits are safety nets for a failing hub, not speed assertions.
"""

from __future__ import annotations

import functools
from pathlib import Path

import anyio
import pytest

from fleet.controlplane import LocalProvider, RunningCluster
from fleet.hub.hub import Hub
from fleet.report import History
from tests.hub.hubkit import (
    all_equal,
    configmap,
    deployment,
    drop,
    fleet_yaml,
    hub_settings,
    namespace_doc,
    push_webhook,
    until,
    value_on,
    values,
)
from tests.sources.gitkit import Remote

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]


async def test_join_webhook_pushes_and_leave(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    ns = "hub-e2e"
    remote = Remote(tmp_path / "git")
    remote.commit(
        {
            "app/ns.yaml": namespace_doc(ns),
            "app/cm.yaml": configmap(ns, "v1"),
            "app/deploy.yaml": deployment(ns, "web:1"),
        }
    )
    settings = hub_settings(tmp_path)
    settings.config_path.write_text(fleet_yaml(remote.url, ns))
    first, second = kit_clusters[0], kit_clusters[1]
    drop(first, settings.clusters_dir)
    drop(second, settings.clusters_dir)
    hub = Hub(settings)
    async with anyio.create_task_group() as tg:
        port = await tg.start(hub.run)
        await until(lambda: all_equal(values([first, second], ns), "v1"), limit=60)
        await until(
            lambda: (
                all(c.sync == "Synced" and c.health == "Healthy" for c in hub.board.cells.values())
                and len(hub.board.cells) == 2
            )
        )

        # two pushes in a row, each with its webhook: the last commit wins everywhere
        remote.commit({"app/cm.yaml": configmap(ns, "v2")})
        assert await push_webhook(port, remote.url) == 200
        last = remote.commit({"app/cm.yaml": configmap(ns, "v3")})
        assert await push_webhook(port, remote.url) == 200
        await until(lambda: all_equal(values([first, second], ns), "v3"))
        await until(lambda: all(c.revision == last for c in hub.board.cells.values()))

        # a wrong signature is refused and triggers nothing
        remote.commit({"app/cm.yaml": configmap(ns, "unsigned")})
        assert await push_webhook(port, remote.url, secret="wrong") == 401
        await anyio.sleep(1)
        assert await values([first, second], ns) == ["v3", "v3"]
        # the unsigned commit is superseded by the next one, pushed below

        # a third cluster joins by dropping its kubeconfig: it converges without a restart
        with LocalProvider(kubeconfig_dir=tmp_path / "third", progress=lambda _: None) as kit:
            (third,) = kit.up(["hub-third"])
            drop(third, settings.clusters_dir)
            # the refused push was never listed: the hub knows v3 until a poll or a webhook
            await until(lambda: all_equal(values([third], ns), "v3"))

            # a cluster leaves: its work stops, nothing is deleted there, the others go on
            (settings.clusters_dir / second.kubeconfig.name).unlink()
            await until(lambda: all(c.cluster != second.name for c in hub.board.cells.values()))
            remote.commit({"app/cm.yaml": configmap(ns, "v4")})
            assert await push_webhook(port, remote.url) == 200
            await until(lambda: all_equal(values([first, third], ns), "v4"))
            assert await value_on(second, ns) == "v3"
            hub.stop()
    rows = History(settings.history_path).query(app="web", limit=100)
    assert {r.cluster for r in rows} >= {first.name, second.name, "hub-third"}
    assert any(r.commit_to_applied is not None for r in rows)


async def test_the_hub_listens_before_it_reads_the_cluster_files(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    """`on_listening` hears the port before the first scan of `clusters/` (so 10,000 kubeconfigs
    never delay webhooks); the hub is ready, and its entries known, once the scan is done."""
    remote = Remote(tmp_path / "git")
    remote.commit({"app/cm.yaml": configmap("listen-first", "v1")})
    settings = hub_settings(tmp_path)
    settings.config_path.write_text(fleet_yaml(remote.url, "listen-first"))
    for cluster in kit_clusters[:2]:
        drop(cluster, settings.clusters_dir)
    hub = Hub(settings)
    heard: list[tuple[int, int, bool]] = []

    def listening(port: int) -> None:
        heard.append((port, len(hub.registry.snapshot), hub.readiness()[0]))

    async with anyio.create_task_group() as tg:
        port = await tg.start(functools.partial(hub.run, on_listening=listening))
        assert heard == [(port, 0, False)]  # listening, nothing read yet, not ready
        assert len(hub.registry.snapshot) == 2 and hub.readiness()[0]
        assert await push_webhook(port, remote.url) == 200
        hub.stop()
