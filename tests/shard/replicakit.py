"""The rig of the replica tests and bench: N ``fleet run`` replicas sharing one management cluster.

12 cluster entries (``e<tag>-00`` .. ``e<tag>-11``, the tag this rig's own) are spread over the
kit's API servers, each entry writing into a namespace of its own (``t-<entry>``), as
bench/many_clusters.py does: 12 apiservers would be too much for a shared 2-core machine. One
app, ``web``, applies a ConfigMap ``settings`` whose ``value`` is the commit's marker, read back by
a client of the rig's own. The config repository is served over HTTP (``git http-backend``).
Replicas are subprocesses
(:class:`bench.hubproc.HubProcess`) that share a hub id and differ by ``--replica-id``; each has
its own state and cache directories.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from kubernetes_asyncio import client, config

from bench.hubproc import HubProcess
from fleet import apply
from fleet.controlplane import RunningCluster
from fleet.shard.buckets import BUCKET_PREFIX, bucket_of
from fleet.shard.leases import LeaseStore, cluster_lease_name
from tests.sources.gitkit import GitHttpServer, Remote

__all__ = ["ShardRig", "entry_names"]


def entry_names(count: int = 12, *, tag: str = "") -> list[str]:
    """``e00`` .. ; with a `tag`, ``e<tag>-00`` ..: the kit clusters are shared by the session,
    so each rig's entries (and their ``t-<entry>`` namespaces) must be its own."""
    return [f"e{tag}-{i:02d}" if tag else f"e{i:02d}" for i in range(count)]


_FLEET_YAML = """apps:
  - name: web
    source: {{repoURL: "{url}", targetRevision: main, path: app}}
    destination: {{namespace: "t-{{{{ cluster.name }}}}"}}
    syncPolicy: {{prune: true, selfHeal: true, createNamespace: true, automated: {automated}}}
"""


def _configmap(value: str) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
        f"data: {{value: '{value}'}}\n"
    )


class ShardRig:
    """Replicas under `root`, entries on `kit`, leases in `namespace` of the first kit cluster."""

    def __init__(
        self,
        root: Path,
        kit: list[RunningCluster],
        git: GitHttpServer,
        *,
        namespace: str,
        lease_seconds: float = 6.0,
        entries: int = 12,
        automated: bool = True,
        token: str = "",
        buckets: int = 0,
    ) -> None:
        """`automated` False: the app is applied by ``sync`` calls only; `token` (an admin
        token): the replicas' API needs it (``--api-tokens``), and the rig sends it."""
        self.root = root
        self.kit = kit
        self.management = kit[0]
        self.namespace = namespace
        self.lease_seconds = lease_seconds
        self.names = entry_names(entries, tag=hashlib.sha256(namespace.encode()).hexdigest()[:6])
        self.cluster_of = {name: kit[i % len(kit)] for i, name in enumerate(self.names)}
        self.remote = Remote(git.root, "config")
        self.url = git.url("config.git")
        self.replicas: dict[str, HubProcess] = {}
        self.automated = automated
        self.token = token
        self.buckets = buckets  # --shard-buckets of the replicas started (0: one lease each)

    def commit(self, value: str) -> str:
        return self.remote.commit({"app/settings.yaml": _configmap(value)}, message=value)

    def start(self, replica: str, *, root: str = "", buckets: int | None = None) -> HubProcess:
        """Start replica `replica` (under `root`, default its own name: a fresh directory), with
        the rig's ``--shard-buckets`` unless `buckets` says another."""
        where = self.root / (root or replica)
        (where / "clusters").mkdir(parents=True, exist_ok=True)
        automated = "true" if self.automated else "false"
        (where / "fleet.yaml").write_text(_FLEET_YAML.format(url=self.url, automated=automated))
        tokens: list[str] = []
        if self.token:
            (self.root / "tokens.txt").write_text(f"{self.token}, admin, rig\n")
            tokens = ["--api-tokens", str(self.root / "tokens.txt")]
        for name, cluster in self.cluster_of.items():
            shutil.copyfile(cluster.kubeconfig, where / "clusters" / f"{name}.yaml")
        hub = HubProcess(
            where,
            poll_interval=60.0,  # commits arrive by webhook: the test knows what moved them
            resync_interval=60.0,
            workers=8,
            log_level="INFO",
            start_timeout=180.0,
            extra_args=[
                "--shard-kubeconfig", str(self.management.kubeconfig),
                "--shard-namespace", self.namespace,
                "--shard-lease-seconds", str(self.lease_seconds),
                "--replica-id", replica,
                "--shard-buckets", str(self.buckets if buckets is None else buckets),
                *tokens,
            ],
        )  # fmt: skip
        hub.start()
        self.replicas[replica] = hub
        return hub

    async def shards(self, replica: str) -> dict[str, Any]:
        """``/api/shards`` of `replica`."""
        return await self._api(replica, "/api/shards")

    async def status(self, replica: str) -> dict[str, Any]:
        """``/api/status`` of `replica`."""
        return await self._api(replica, "/api/status")

    async def _api(self, replica: str, path: str) -> dict[str, Any]:
        status, data = await self.call(replica, "GET", path)
        assert status == 200, data
        return data

    async def call(
        self, replica: str, method: str, path: str, *, token: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """`method` `path` on `replica`'s API, with the rig's token (or `token`; "" for none):
        the HTTP status and the JSON answer."""
        port = self.replicas[replica].port
        bearer = self.token if token is None else token
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, f"http://127.0.0.1:{port}{path}", headers=headers) as response,
        ):
            data: dict[str, Any] = await response.json(content_type=None)
            return response.status, data

    async def holders(self) -> dict[str, str]:
        """Each entry's cluster lease holder (its bucket's with buckets), read by the rig's own
        client ("" when free)."""
        async with apply.connect(self.management.kubeconfig) as api:
            leases = await LeaseStore(api, namespace=self.namespace, hub="fleet").list()
        by_name = {lease.name: lease.holder for lease in leases}
        return {n: by_name.get(self.lease_of(n), "") for n in self.names}

    def lease_of(self, name: str) -> str:
        """The name of the lease that fences entry `name`."""
        if self.buckets:
            return BUCKET_PREFIX + str(bucket_of(name, self.buckets))
        return cluster_lease_name(name)

    async def values(self) -> dict[str, str | None]:
        """Each entry's ConfigMap value, read from its API server."""
        found: dict[str, str | None] = {}
        for cluster in self.kit:
            path = str(cluster.kubeconfig)
            async with await config.new_client_from_config(config_file=path) as api:
                core = client.CoreV1Api(api)
                for name, where in self.cluster_of.items():
                    if where is not cluster:
                        continue
                    try:
                        cm = await core.read_namespaced_config_map("settings", f"t-{name}")
                        found[name] = (cm.data or {}).get("value")
                    except client.ApiException as exc:
                        if exc.status != 404:
                            raise
                        found[name] = None
        return found

    async def all_at(self, value: str) -> bool:
        return all(v == value for v in (await self.values()).values())

    def stop(self) -> None:
        for hub in self.replicas.values():
            if hub.alive():
                if _stopped(hub):
                    hub.resume()  # SIGTERM waits for a stopped process
                hub.stop()


def _stopped(hub: HubProcess) -> bool:
    try:
        return hub.proc is not None and hub.proc.status() == "stopped"
    except psutil.Error:
        return False
