"""The rig of the fault tests: the hub as a ``fleet run`` subprocess, real git over HTTP, kit
clusters.

A fault test sets up what a hostile input needs (a repository, a credentials file, a kubeconfig)
through :class:`FaultRig`, starts the hub with :meth:`FaultRig.hub`, provokes the fault, then
asserts on the outcome from outside, as an operator would: the hub process is alive, the other
apps converged on the clusters (read back by an independent client), nothing leaked into the log
or the API, nothing was deleted. The hub's own log is ``rig.root / "hub.log"``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.hubproc import SECRET, HubProcess
from fleet.controlplane import RunningCluster
from tests.sources.gitkit import GitHttpServer, Remote

__all__ = ["SECRET", "FaultRig", "fault_rig"]


class FaultRig:
    """One fault test's world under `root`: remotes served over HTTP, fleet.yaml, clusters/."""

    def __init__(self, root: Path, git: GitHttpServer) -> None:
        self.root = root
        self.git = git
        self.remotes_dir = git.root
        self.config = root / "fleet.yaml"
        self.clusters = root / "clusters"
        self.clusters.mkdir(parents=True, exist_ok=True)
        self._hub: HubProcess | None = None

    def remote(self, name: str) -> Remote:
        """A new bare repository `name`, served at :meth:`url`."""
        return Remote(self.remotes_dir, name)

    def url(self, name: str) -> str:
        """The HTTP URL of remote `name` (``git http-backend``)."""
        return self.git.url(f"{name}.git")

    def write_config(self, text: str) -> None:
        self.config.write_text(text)

    def drop(self, cluster: RunningCluster) -> Path:
        """Copy `cluster`'s kubeconfig into the rig's clusters/ (the cluster joins)."""
        target = self.clusters / cluster.kubeconfig.name
        shutil.copyfile(cluster.kubeconfig, target)
        return target

    def hub(
        self,
        *,
        poll_interval: float = 1.0,
        resync_interval: float = 30.0,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log_level: str = "INFO",
    ) -> HubProcess:
        """Start ``fleet run`` on the rig (stopped by the rig's context at the latest)."""
        assert self._hub is None, "one hub per rig"
        self._hub = HubProcess(
            self.root,
            poll_interval=poll_interval,
            resync_interval=resync_interval,
            workers=8,
            log_level=log_level,
            extra_args=extra_args,
            env=env,
        )
        self._hub.start()
        return self._hub

    def log_text(self) -> str:
        path = self.root / "hub.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def get(self, path: str) -> tuple[int, Any]:
        """GET `path` of the running hub: (status, parsed JSON or text)."""
        assert self._hub is not None
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self._hub.port}{path}") as response,
        ):
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    async def status(self) -> dict[str, Any]:
        """The hub's ``/api/status``."""
        code, data = await self.get("/api/status")
        assert code == 200, (code, data)
        assert isinstance(data, dict)
        return data

    def close(self) -> None:
        if self._hub is not None:
            self._hub.stop()


@contextlib.contextmanager
def fault_rig(root: Path, *, auth: tuple[str, str] | None = None) -> Iterator[FaultRig]:
    """A :class:`FaultRig` under `root` whose git server may require basic `auth`."""
    remotes = root / "remotes"
    remotes.mkdir(parents=True, exist_ok=True)
    with GitHttpServer(remotes, auth=auth) as git:
        rig = FaultRig(root, git)
        try:
            yield rig
        finally:
            rig.close()
