"""The hub end to end, against real clusters and a real git remote.

What converged is read from the clusters themselves (an independent reader), never from the hub's
own status. The waits are safety nets for a failing hub, not speed assertions.
"""

from __future__ import annotations

import functools
from pathlib import Path

import aiohttp
import anyio
import pytest

from fleet.controlplane import LocalProvider, RunningCluster
from fleet.hub import hub as hub_module
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
    post_webhook,
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


async def test_the_hub_listens_before_it_reads_its_config(
    kit_clusters: list[RunningCluster], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server listens before the config is read (a config in git may take a fetch): a
    webhook that comes meanwhile waits for the config and is matched against it; one that waits
    longer than the push wait is answered 202 ``starting``, and the app still converges on the
    pushed commit once the config is read; the control API answers 503 until then."""
    ns = "config-later"
    remote = Remote(tmp_path / "git")
    remote.commit({"app/ns.yaml": namespace_doc(ns), "app/cm.yaml": configmap(ns, "v1")})
    settings = hub_settings(tmp_path)
    settings.config_path.write_text(fleet_yaml(remote.url, ns))
    (cluster,) = kit_clusters[:1]
    drop(cluster, settings.clusters_dir)
    hub = Hub(settings)
    gate = anyio.Event()
    load = hub.config_feed.load

    async def gated() -> object:  # the real load, once the test lets it
        await gate.wait()
        return await load()

    monkeypatch.setattr(hub.config_feed, "load", gated)
    monkeypatch.setattr(hub_module, "PUSH_WAIT", 0.5)
    listening = anyio.Event()
    ports: list[int] = []

    def heard(port: int) -> None:
        ports.append(port)
        listening.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(hub.run, on_listening=heard))
        await listening.wait()
        (port,) = ports
        status, answer = await post_webhook(port, remote.url)
        assert (status, answer["matched"]) == (202, 0) and "still reading" in answer["starting"]
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/api/apps/web") as response,
        ):
            assert response.status == 503 and response.headers["Retry-After"] == "1"
        remote.commit({"app/cm.yaml": configmap(ns, "v2")})
        monkeypatch.setattr(hub_module, "PUSH_WAIT", 60.0)
        answered: list[tuple[int, dict[str, object]]] = []

        async def push() -> None:
            answered.append(await post_webhook(port, remote.url))

        tg.start_soon(push)
        await anyio.sleep(0.5)
        assert not answered  # it waits for the config
        gate.set()
        await until(lambda: bool(answered))
        ((status, answer),) = answered
        assert status in (200, 202) and answer["matched"] == 1
        await until(lambda: all_equal(values([cluster], ns), "v2"))
        hub.stop()
