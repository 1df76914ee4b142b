"""Flux's two controllers as local processes against a management cluster, and its objects there.

:class:`FluxControllers` runs source-controller and kustomize-controller from the binaries
:mod:`bench.flux.build` made, each with ``KUBECONFIG`` naming the management cluster (their
``main`` parses flags with pflag, which does not see controller-runtime's Go ``--kubeconfig``
flag; the environment variable is the same setting), leader election off, every listener on
127.0.0.1 (source-controller's artifact server is what kustomize-controller downloads from), and
JSON logs to a file per controller. ``tuned`` passes Flux's documented scale settings
(``--concurrent``, ``--kube-api-qps``, ``--kube-api-burst``); untuned is each binary's defaults.
CPU seconds are read with psutil, like the hub's (bench/hubproc.py).

:func:`install` puts the CRDs, the namespace, one GitRepository, and a kubeconfig Secret plus a
Kustomization per target cluster on the management cluster; :func:`request_reconcile` does what
Flux's Receiver does on a webhook (a ``requestedAt`` annotation on each object it lists, one
after the other).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import anyio
import psutil
from kubernetes_asyncio import client

from bench.flux import objects

__all__ = ["FluxControllers", "Tuning", "install", "request_reconcile"]


@dataclass(frozen=True)
class Tuning:
    """Flux's scale flags; ``None`` leaves a binary's default."""

    concurrent: int | None = None
    qps: int | None = None
    burst: int | None = None

    def flags(self) -> list[str]:
        out = []
        if self.concurrent is not None:
            out.append(f"--concurrent={self.concurrent}")
        if self.qps is not None:
            out.append(f"--kube-api-qps={self.qps}")
        if self.burst is not None:
            out.append(f"--kube-api-burst={self.burst}")
        return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FluxControllers:
    """source-controller and kustomize-controller on 127.0.0.1, against `kubeconfig`."""

    def __init__(
        self, binaries: Mapping[str, Path], *, kubeconfig: Path, root: Path, tuning: Tuning
    ) -> None:
        self.binaries = dict(binaries)
        self.kubeconfig = kubeconfig
        self.root = root
        self.tuning = tuning
        self.health: dict[str, int] = {}
        self.logs: dict[str, Path] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._ps: dict[str, psutil.Process] = {}

    def _argv(self, name: str) -> list[str]:
        health, metrics = _free_port(), _free_port()
        self.health[name] = health
        argv = [
            str(self.binaries[name]),
            f"--metrics-addr=127.0.0.1:{metrics}",
            f"--health-addr=127.0.0.1:{health}",
            "--events-addr=",
            "--enable-leader-election=false",
            "--log-encoding=json",
            "--log-level=info",
            *self.tuning.flags(),
        ]
        if name == "source-controller":
            storage = _free_port()
            argv += [
                f"--storage-path={self.root / 'storage'}",
                f"--storage-addr=127.0.0.1:{storage}",
                f"--storage-adv-addr=127.0.0.1:{storage}",
            ]
        return argv

    def start(self) -> None:
        (self.root / "storage").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), RUNTIME_NAMESPACE=objects.NAMESPACE)
        for name in self.binaries:
            self.logs[name] = self.root / f"{name}.log"
            with self.logs[name].open("wb") as log:
                proc = subprocess.Popen(
                    self._argv(name), cwd=self.root, env=env, stdout=log, stderr=log
                )
            self._procs[name] = proc
            self._ps[name] = psutil.Process(proc.pid)

    async def wait_ready(self, *, limit: float = 120.0) -> None:
        """Both answer ``/readyz``; a controller that exits raises, naming its log."""
        with anyio.fail_after(limit):
            async with aiohttp.ClientSession() as http:
                for name, port in self.health.items():
                    while True:
                        if self._procs[name].poll() is not None:
                            raise RuntimeError(f"{name} exited: {self.tail(name)}")
                        try:
                            async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                                if r.status == 200:
                                    break
                        except aiohttp.ClientError:
                            pass
                        await anyio.sleep(0.5)

    def tail(self, name: str, lines: int = 5) -> str:
        """The last lines of controller `name`'s log (for an error that outlives its directory)."""
        text = self.logs[name].read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "(empty log)"

    def alive(self) -> bool:
        return all(p.poll() is None for p in self._procs.values())

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self._ps.values():
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        return total

    def rss_mib(self) -> float:
        return sum(p.memory_info().rss for p in self._ps.values()) / 2**20

    def stop(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> FluxControllers:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_PLURALS = {"GitRepository": "gitrepositories", "Kustomization": "kustomizations"}


async def _create(api: client.ApiClient, body: dict[str, Any]) -> None:
    """Create `body` (409: already there, fine)."""
    try:
        if body["kind"] == "CustomResourceDefinition":
            await client.ApiextensionsV1Api(api).create_custom_resource_definition(cast(Any, body))
        elif body["kind"] == "Namespace":
            await client.CoreV1Api(api).create_namespace(cast(Any, body))
        elif body["kind"] == "Secret":
            await client.CoreV1Api(api).create_namespaced_secret(objects.NAMESPACE, cast(Any, body))
        else:
            group, version = body["apiVersion"].split("/")
            await client.CustomObjectsApi(api).create_namespaced_custom_object(
                group, version, objects.NAMESPACE, _PLURALS[body["kind"]], body
            )
    except client.ApiException as exc:
        if exc.status != 409:
            raise


async def _established(api: client.ApiClient, names: Iterable[str], *, limit: float) -> None:
    ext = client.ApiextensionsV1Api(api)
    with anyio.fail_after(limit):
        for name in names:
            while True:
                crd = await ext.read_custom_resource_definition(name)
                conditions = (crd.status.conditions if crd.status else None) or []
                if any(c.type == "Established" and c.status == "True" for c in conditions):
                    break
                await anyio.sleep(0.2)


async def install(
    api: client.ApiClient,
    *,
    crds: list[dict[str, Any]],
    repo_url: str,
    targets: Mapping[str, Path],
    path: str,
    target_namespace: str,
) -> None:
    """CRDs, namespace, the GitRepository, and per target its Secret and Kustomization."""
    for crd in crds:
        await _create(api, crd)
    await _established(api, [c["metadata"]["name"] for c in crds], limit=60)
    await _create(
        api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}
    )
    await _create(api, objects.git_repository(repo_url))
    for cluster, kubeconfig in sorted(targets.items()):
        await _create(api, objects.kubeconfig_secret(cluster, kubeconfig.read_text()))
        await _create(
            api,
            objects.kustomization(cluster, path=path, target_namespace=target_namespace),
        )


async def request_reconcile(api: client.ApiClient, *, clusters: Iterable[str], stamp: str) -> None:
    """As Flux's Receiver: annotate the GitRepository, then each Kustomization, in turn."""
    custom = client.CustomObjectsApi(api)
    patch = objects.requested_at_patch(stamp)
    merge: dict[str, Any] = {"_content_type": "application/merge-patch+json"}  # not in the stubs
    listed = [(objects.SOURCE_API, "gitrepositories", objects.GIT_REPOSITORY)]
    listed += [
        (objects.KUSTOMIZE_API, "kustomizations", objects.kustomization_name(c)) for c in clusters
    ]
    for (group, version), plural, name in listed:
        await custom.patch_namespaced_custom_object(
            group, version, objects.NAMESPACE, plural, name, patch, **merge
        )
