"""The bench rig: real clusters, a git remote served over HTTP, the app, and the namespaces.

:class:`Rig` (a context manager) brings up `count` clusters with the control-plane kit
(``--provider local``, the default, or ``kind``/``auto``), or takes every kubeconfig of an existing
directory (``--clusters DIR``). The git remote is a bare repository on disk served by
``git http-backend`` on 127.0.0.1 (:class:`tests.sources.gitkit.GitHttpServer`), which counts
every request: the independent count of the hub's git traffic. The app (:mod:`bench.workload`)
is committed and pushed before the hub starts. Everything stays on 127.0.0.1 and in a temporary
directory; kit processes are stopped on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
from pathlib import Path
from typing import Literal

from kubernetes_asyncio import client, config

from bench.workload import Workload
from fleet.controlplane import RunningCluster, provider
from tests.sources.gitkit import GitHttpServer, Remote

__all__ = ["Rig", "add_rig_arguments", "ensure_namespaces", "fleet_yaml"]

ProviderName = Literal["local", "kind", "auto"]


def add_rig_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--provider", choices=["local", "kind", "auto"], default="local",
        help="where clusters come from (default: the local control-plane kit)",
    )  # fmt: skip
    parser.add_argument(
        "--clusters-from", dest="clusters_from", type=Path, default=None, metavar="DIR",
        help="use the kubeconfigs in DIR (file stem = cluster name) instead of starting clusters",
    )  # fmt: skip


def fleet_yaml(repo_url: str, *, namespace: str, path: str = "app", name: str = "web") -> str:
    return (
        "apps:\n"
        f"  - name: {name}\n"
        f'    source: {{repoURL: "{repo_url}", targetRevision: main, path: "{path}"}}\n'
        f"    destination: {{namespace: {namespace}}}\n"
        "    syncPolicy: {prune: true, selfHeal: true}\n"
    )


async def ensure_namespaces(kubeconfigs: dict[str, Path], names: list[str]) -> None:
    """Create `names` on every cluster (409 is fine)."""
    for path in kubeconfigs.values():
        async with await config.new_client_from_config(config_file=str(path)) as api:
            core = client.CoreV1Api(api)
            for name in names:
                try:
                    await core.create_namespace(
                        client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
                    )
                except client.ApiException as exc:
                    if exc.status != 409:
                        raise


class Rig:
    """Clusters + git remote + app, under `root`."""

    def __init__(
        self,
        root: Path,
        *,
        count: int,
        objects: int,
        provider_name: ProviderName = "local",
        clusters_from: Path | None = None,
        prefix: str = "bench",
    ) -> None:
        self.root = root
        self.count = count
        self.objects = objects
        self.provider_name = provider_name
        self.clusters_from = clusters_from
        self.prefix = prefix
        self.kubeconfigs: dict[str, Path] = {}
        self._stack = contextlib.ExitStack()
        self.remote: Remote | None = None
        self.git_server: GitHttpServer | None = None
        self.workload: Workload | None = None
        self.repo_url = ""

    def __enter__(self) -> Rig:
        try:
            self._clusters()
            self.remote = Remote(self.root / "git", name="app")
            self.git_server = self._stack.enter_context(GitHttpServer(self.root / "git"))
            self.repo_url = self.git_server.url("app.git")
            self.workload = Workload(self.remote.work, objects=self.objects)
            self.workload.write_base()
            self.workload.commit("the app, as a kustomization")
            self.workload.push()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _clusters(self) -> None:
        if self.clusters_from is not None:
            found = sorted(self.clusters_from.glob("*.y*ml"))[: self.count]
            if len(found) < self.count:
                raise SystemExit(
                    f"{self.clusters_from}: {len(found)} kubeconfigs, need {self.count}"
                )
            self.kubeconfigs = {p.stem: p for p in found}
            return
        kit = provider.make(
            self.provider_name, kubeconfig_dir=self.root / "kit", progress=lambda _: None
        )
        self._stack.enter_context(kit)
        names = [f"{self.prefix}-{i}" for i in range(1, self.count + 1)]
        running: list[RunningCluster] = kit.up(names)
        self.kubeconfigs = {c.name: c.kubeconfig for c in running}

    def drop_clusters(self, directory: Path, names: list[str]) -> None:
        """Copy the kubeconfigs of `names` into the hub's ``clusters/``."""
        directory.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(self.kubeconfigs[name], directory / f"{name}.yaml")

    @property
    def git_requests(self) -> int:
        assert self.git_server is not None
        return len(self.git_server.counts.requests)

    @property
    def git_fetches(self) -> int:
        assert self.git_server is not None
        return self.git_server.counts.fetches

    @property
    def git_ref_listings(self) -> int:
        """``GET .../info/refs``: one per ls-remote or fetch (smart HTTP adds a POST to each)."""
        assert self.git_server is not None
        return sum(1 for r in self.git_server.counts.requests if r.endswith("/info/refs"))
