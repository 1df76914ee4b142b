"""The two references fleet is measured against, in the same run and on the same clusters.

**Floor** (:class:`Floor`): the commit's manifests, rendered *before* the clock starts
(``kubectl kustomize``), applied to every cluster at once by a minimal loop over the same client
fleet uses (:func:`fleet.apply.apply_objects`: one server-side-apply PATCH per object, the same
per-cluster concurrency of 8, long-lived connections). No git, no render, no plan, no inventory,
no health: the least any tool built on that client can do. It writes to a namespace of its own.

**Baseline** (:class:`Baseline`): what a shell script in CI would do, per cluster in turn: ``git
fetch`` + ``git reset`` of a checkout of its own, then ``kubectl apply --server-side -k``. Its own
namespace too. Both are observed by the same independent watcher as fleet.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import anyio
import yaml

from fleet import apply
from fleet.types import ObjectKey
from tests.sources.gitkit import git

__all__ = ["Baseline", "Clients", "Floor", "Target", "render"]


@dataclass(frozen=True)
class Target:
    """What :func:`fleet.apply.apply_objects` needs of one object."""

    key: ObjectKey
    api_version: str
    manifest: dict[str, Any]
    verify: bool = False


def render(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of `directory` (done before the floor's clock starts)."""
    import subprocess

    out = subprocess.run(
        ["kubectl", "kustomize", str(directory)], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _targets(objects: list[dict[str, Any]], namespace: str) -> list[Target]:
    targets = []
    for obj in objects:
        manifest = json.loads(json.dumps(obj))
        manifest.setdefault("metadata", {})["namespace"] = namespace
        key = ObjectKey.of(manifest)
        targets.append(Target(key, str(manifest["apiVersion"]), manifest))
    return targets


class Clients:
    """One long-lived :class:`fleet.apply.Cluster` per cluster, as the hub keeps them, and the
    floor's field manager (forcing, as fleet does)."""

    def __init__(self, kubeconfigs: dict[str, Path]) -> None:
        self.kubeconfigs = kubeconfigs
        self.clusters: dict[str, apply.Cluster] = {}
        self._stack = AsyncExitStack()
        self.options = apply.ApplyOptions(field_manager="bench-floor", force=True)

    async def __aenter__(self) -> Self:
        for name, path in self.kubeconfigs.items():
            self.clusters[name] = await self._stack.enter_async_context(
                apply.connect(path, name=name)
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()


class Floor(Clients):
    """The commit's objects applied to every cluster at once, into `namespace`."""

    def __init__(self, kubeconfigs: dict[str, Path], *, namespace: str) -> None:
        super().__init__(kubeconfigs)
        self.namespace = namespace

    async def apply(self, objects: list[dict[str, Any]]) -> int:
        """Apply `objects` (pre-rendered) to every cluster concurrently; failures counted."""
        targets = _targets(objects, self.namespace)
        failed = 0

        async def one(cluster: apply.Cluster) -> None:
            nonlocal failed
            changes = await apply.apply_objects(cluster, targets, options=self.options)
            failed += sum(1 for c in changes if c.outcome is apply.Outcome.FAILED)

        async with anyio.create_task_group() as group:
            for cluster in self.clusters.values():
                group.start_soon(one, cluster)
        return failed


class Baseline:
    """A checkout per cluster; ``fetch`` then ``kubectl apply --server-side -k``, in turn."""

    def __init__(
        self, kubeconfigs: dict[str, Path], *, repo_url: str, root: Path, namespace: str
    ) -> None:
        self.kubeconfigs = kubeconfigs
        self.namespace = namespace
        self.checkouts: dict[str, Path] = {}
        root.mkdir(parents=True, exist_ok=True)
        for name in kubeconfigs:
            checkout = root / name
            git("clone", "--quiet", repo_url, str(checkout), cwd=root)
            self.checkouts[name] = checkout

    async def run(self) -> None:
        for name, path in self.kubeconfigs.items():
            checkout = self.checkouts[name]
            await anyio.run_process(["git", "-C", str(checkout), "fetch", "--quiet", "origin"])
            await anyio.run_process(
                ["git", "-C", str(checkout), "reset", "--quiet", "--hard", "origin/main"]
            )
            await anyio.run_process(
                [
                    "kubectl", "--kubeconfig", str(path), "apply", "--server-side",
                    "--force-conflicts", "--field-manager", "bench-baseline",
                    "-n", self.namespace, "-k", str(checkout / "app"),
                ]
            )  # fmt: skip
