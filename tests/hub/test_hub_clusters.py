"""The hub end to end, against real clusters and a real git remote.

What converged is read from the clusters themselves (an independent reader), never from the hub's
own status. The waits are safety nets for a failing hub, not speed assertions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import inspect
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from kubernetes_asyncio import client, config

from fleet.controlplane import LocalProvider, RunningCluster
from fleet.hub.hub import Hub
from fleet.hub.server import ServerSettings
from fleet.hub.settings import HubSettings
from fleet.report import History
from tests.sources.gitkit import Remote

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]

SECRET = "hub-test-secret"


def configmap(namespace: str, value: str) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\n"
        f"metadata: {{name: settings, namespace: {namespace}}}\n"
        f"data: {{value: '{value}'}}\n"
    )


def deployment(namespace: str, image: str) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {namespace}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "{image}"}}]
"""


def namespace_doc(name: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"


def fleet_yaml(repo_url: str, namespace: str, *, extra: str = "") -> str:
    return f"""apps:
  - name: web
    source: {{repoURL: "{repo_url}", targetRevision: main, path: app}}
    destination: {{namespace: {namespace}}}
    syncPolicy: {{prune: true, selfHeal: true}}
{extra}"""


async def value_on(cluster: RunningCluster, namespace: str) -> str | None:
    async with await config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
        try:
            cm = await client.CoreV1Api(api).read_namespaced_config_map("settings", namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return str(cm.data["value"])


async def until(check: Callable[[], Awaitable[bool] | bool], *, limit: float = 90) -> None:
    """Poll `check` until it holds (a safety net against a hung hub, not a speed limit)."""
    with anyio.fail_after(limit):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await anyio.sleep(0.1)


async def values(clusters: list[RunningCluster], namespace: str) -> list[str | None]:
    return [await value_on(c, namespace) for c in clusters]


async def push_webhook(port: int, repo_url: str, *, secret: str = SECRET) -> int:
    body = json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": repo_url}}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{port}/webhooks/github",
            data=body,
            headers={
                "X-GitHub-Event": "push",
                "X-Hub-Signature-256": signature,
            },
        ) as response,
    ):
        return response.status


def hub_settings(tmp_path: Path, **extra: Any) -> HubSettings:
    settings = HubSettings(
        config_path=tmp_path / "fleet.yaml",
        clusters_dir=tmp_path / "clusters",
        state_dir=tmp_path / "state",
        cache_dir=tmp_path / "cache",
        server=ServerSettings(port=0, github_secret=SECRET),
        poll_interval=3600,  # only webhooks move it, so the test knows what triggered what
        resync_interval=3600,
        registry_rescan=1,
        config_check_interval=0.2,
    )
    return dataclasses.replace(settings, **extra)


def drop(cluster: RunningCluster, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / cluster.kubeconfig.name
    shutil.copyfile(cluster.kubeconfig, target)
    return target


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
        await until(lambda: _all_equal(values([first, second], ns), "v1"), limit=60)
        await until(
            lambda: (
                all(c.sync == "Synced" and c.health == "Healthy" for c in hub.board.cells.values())
                and len(hub.board.cells) == 2
            )
        )

        # two pushes in a row, each with its webhook: the last commit wins everywhere
        remote.commit({"app/cm.yaml": configmap(ns, "v2")})
        assert await push_webhook(port, remote.url) == 202
        last = remote.commit({"app/cm.yaml": configmap(ns, "v3")})
        assert await push_webhook(port, remote.url) == 202
        await until(lambda: _all_equal(values([first, second], ns), "v3"))
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
            await until(lambda: _all_equal(values([third], ns), "v3"))

            # a cluster leaves: its work stops, nothing is deleted there, the others go on
            (settings.clusters_dir / second.kubeconfig.name).unlink()
            await until(lambda: all(c.cluster != second.name for c in hub.board.cells.values()))
            remote.commit({"app/cm.yaml": configmap(ns, "v4")})
            assert await push_webhook(port, remote.url) == 202
            await until(lambda: _all_equal(values([first, third], ns), "v4"))
            assert await value_on(second, ns) == "v3"
            hub.stop()
    rows = History(settings.history_path).query(app="web", limit=100)
    assert {r.cluster for r in rows} >= {first.name, second.name, "hub-third"}
    assert any(r.commit_to_applied is not None for r in rows)


async def _all_equal(pending: Awaitable[list[str | None]], value: str) -> bool:
    return all(v == value for v in await pending)
