"""Test helpers: kubeconfigs of kit clusters rewritten to sit behind an SSH jump host.

:func:`edge_kubeconfig` takes a kit cluster's kubeconfig and writes ``<name>.yaml`` whose server
is ``https://<hidden_host>:<port>`` (a name only the test SSH server resolves), whose
``tls-server-name`` is a name in the apiserver's certificate, and whose ``fleet`` extension carries
an SSH route through the given servers. :func:`client` opens a kubernetes-asyncio client on a
document (the tunnelled one from :func:`fleet.transport.tunneled_document`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import yaml
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config

from fleet.config import clusters
from fleet.config.clusters import ClusterFile
from fleet.controlplane import RunningCluster
from fleet.transport import LinkSettings, TunnelSettings

HIDDEN = "kube.edge.internal"
FAST = TunnelSettings(
    link=LinkSettings(
        keepalive_interval=1.0,
        keepalive_count_max=2,
        connect_timeout=5.0,
        backoff_initial=0.05,
        backoff_cap=0.3,
        backoff_jitter=0.05,
    ),
    accept_wait=5.0,
)


def edge_kubeconfig(
    kit: RunningCluster,
    directory: Path,
    *,
    name: str,
    jumps: Sequence[tuple[int, str]],
    identity: Path,
    known_hosts: Path,
    server_host: str = HIDDEN,
    tls_server_name: str | None = "localhost",
    accept_new: bool = False,
) -> ClusterFile:
    """Write `directory`/`name`.yaml: `kit` reached at `server_host` via `jumps` (port, user)."""
    document: dict[str, Any] = yaml.safe_load(kit.kubeconfig.read_text())
    context = document["contexts"][0]["context"]
    body = document["clusters"][0]["cluster"]
    body["server"] = f"https://{server_host}:{kit.port}"
    if tls_server_name:
        body["tls-server-name"] = tls_server_name
    ssh: dict[str, Any] = {
        "jumps": [{"host": "127.0.0.1", "port": port, "user": user} for port, user in jumps],
        "identityFile": str(identity),
        "knownHosts": str(known_hosts),
    }
    if accept_new:
        ssh["acceptNewHostKeys"] = True
    context["extensions"] = [
        {"name": "fleet", "extension": {"labels": {"env": "edge"}, "ssh": ssh}}
    ]
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return clusters.read(path)


@asynccontextmanager
async def client(document: dict[str, Any]) -> AsyncIterator[k8s.CoreV1Api]:
    api = await config.new_client_from_config_dict(document)
    async with api:
        yield k8s.CoreV1Api(api)


async def put_config_map(core: k8s.CoreV1Api, name: str, data: dict[str, str]) -> None:
    body = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name), data=data)
    try:
        await core.delete_namespaced_config_map(name, "default", _request_timeout=10)
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise
    await core.create_namespaced_config_map("default", body, _request_timeout=10)


async def get_config_map(core: k8s.CoreV1Api, name: str) -> dict[str, str]:
    found = await core.read_namespaced_config_map(name, "default", _request_timeout=10)
    return dict(found.data or {})


async def ping(core: k8s.CoreV1Api) -> str:
    """One cheap authenticated read: the ``default`` namespace's name."""
    found = await core.read_namespace("default", _request_timeout=10)
    return str(found.metadata.name)


async def eventually(condition: Callable[[], bool], *, seconds: float) -> None:
    """Poll `condition` every 20 ms until it holds; fail after `seconds`."""
    for _ in range(int(seconds / 0.02) + 1):
        if condition():
            return
        await anyio.sleep(0.02)
    raise AssertionError(f"not true after {seconds} s")
