"""Helpers for the hub's end-to-end tests: manifests, a fleet.yaml, hub settings, webhook pushes,
and an independent reader of what converged on each cluster."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import inspect
import json
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from kubernetes_asyncio import client, config

from fleet.controlplane import RunningCluster
from fleet.hub.server import ServerSettings
from fleet.hub.settings import HubSettings

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
    status, _ = await post_webhook(port, repo_url, secret=secret)
    return status


async def post_webhook(
    port: int, repo_url: str, *, secret: str = SECRET
) -> tuple[int, dict[str, Any]]:
    """A signed GitHub push of `repo_url`'s main: the hub's status and JSON answer."""
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
        answer = await response.json() if response.content_type == "application/json" else {}
        return response.status, answer


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


async def all_equal(pending: Awaitable[list[str | None]], value: str) -> bool:
    return all(v == value for v in await pending)


async def fleet_cli(*args: str) -> tuple[int, str, str]:
    """``fleet ARGS`` in a subprocess: exit code, stdout, stderr."""
    result = await anyio.run_process([sys.executable, "-m", "fleet.cli.main", *args], check=False)
    return result.returncode, result.stdout.decode(), result.stderr.decode()
