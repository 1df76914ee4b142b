"""kind clusters behind the same interface as :mod:`fleet.controlplane.local`.

Where a Docker engine and the ``kind`` binary are present, ``--provider kind`` (or ``auto``) creates
one kind cluster per name, in parallel, named ``fleet-<name>``; the kubeconfig kind writes is
renamed to the cluster's own name, given its labels, and dropped into the caller's directory.
``down`` deletes the clusters. kind brings a real kubelet and node image, so Pods really run,
where the local kit fakes the node with kwok.

This machine has no Docker engine, so this path is exercised only where one exists; it uses nothing
but ``kind create cluster`` / ``kind delete cluster``, whose flags have been stable since kind 0.11.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import yaml

from fleet.controlplane import binaries, kubeconfig, runstate
from fleet.controlplane.errors import KitError
from fleet.controlplane.local import RunningCluster
from fleet.settings import default_cache_dir

__all__ = ["KindProvider", "available"]

Progress = binaries.Progress


def available() -> bool:
    """True when ``kind`` is on PATH and a Docker engine answers."""
    if shutil.which("kind") is None or shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


class KindProvider:
    """Create and delete kind clusters; a context manager like :class:`LocalProvider`."""

    name = "kind"

    def __init__(
        self,
        *,
        kubeconfig_dir: Path,
        cache_dir: Path | None = None,
        run_root: Path | None = None,
        attached: bool = True,
        node_image: str | None = None,
        progress: Progress = binaries.stderr_progress,
    ) -> None:
        self.kubeconfig_dir = kubeconfig_dir
        self.cache_dir = cache_dir or default_cache_dir()
        self.run_root = run_root or runstate.default_run_root()
        self.attached = attached
        self.node_image = node_image
        self.progress = progress
        self.kit_id = f"kind-{os.getpid()}-{int(time.time())}"
        self.run_dir = self.run_root / self.kit_id
        self.log_dir = self.cache_dir / "controlplane" / "logs" / self.kit_id
        self._names: list[str] = []
        self._state: runstate.KitState | None = None

    def up(
        self,
        names: Sequence[str],
        *,
        labels: Mapping[str, Mapping[str, str]] | None = None,
        timeout: float = 600.0,
    ) -> list[RunningCluster]:
        if shutil.which("kind") is None:
            raise KitError("--provider kind needs the `kind` binary on PATH")
        self.run_dir.mkdir(parents=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._state = runstate.KitState(
            kit_id=self.kit_id,
            provider=self.name,
            attached=self.attached,
            owner_pid=os.getpid(),
            run_dir=str(self.run_dir),
            log_dir=str(self.log_dir),
            kubeconfig_dir=str(self.kubeconfig_dir.resolve()),  # `down` may run elsewhere
        )
        self._state.save()
        self._names = list(names)
        jobs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        try:
            for name in names:
                log = self.log_dir / f"kind-{name}.log"
                command = [
                    "kind",
                    "create",
                    "cluster",
                    "--name",
                    f"fleet-{name}",
                    "--kubeconfig",
                    str(self.run_dir / f"{name}.kind.yaml"),
                    "--wait",
                    f"{int(timeout)}s",
                ]
                if self.node_image:
                    command += ["--image", self.node_image]
                with log.open("wb") as out:
                    jobs.append((name, subprocess.Popen(command, stdout=out, stderr=out), log))
            for name, proc, log in jobs:
                if proc.wait(timeout=timeout + 60) != 0:
                    raise KitError(f"kind create cluster fleet-{name} failed (log: {log})")
            return [self._publish(name, (labels or {}).get(name, {})) for name in names]
        except BaseException:
            for _, proc, _ in jobs:
                proc.kill()
            self.down(keep_logs=True)
            raise

    def _publish(self, name: str, labels: Mapping[str, str]) -> RunningCluster:
        raw = yaml.safe_load((self.run_dir / f"{name}.kind.yaml").read_text())
        document = kubeconfig.rename(raw, name=name, labels=labels)
        path = self.kubeconfig_dir / f"{name}.yaml"
        kubeconfig.write(path, document)
        server = str(document["clusters"][0]["cluster"]["server"])
        port = int(server.rsplit(":", 1)[1])
        assert self._state is not None
        self._state.clusters.append(
            runstate.ClusterRecord(
                name=name, server=server, port=port, kubeconfig=str(path), labels=dict(labels)
            )
        )
        self._state.save()
        return RunningCluster(name, server, port, path, dict(labels))

    def down(self, *, keep_logs: bool = False) -> None:
        for name in self._names:
            subprocess.run(
                ["kind", "delete", "cluster", "--name", f"fleet-{name}"],
                capture_output=True,
                check=False,
            )
        if self._state is not None:
            for record in self._state.clusters:
                runstate.remove_kubeconfig(Path(record.kubeconfig), server=record.server)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if not keep_logs:
            shutil.rmtree(self.log_dir, ignore_errors=True)
        self._names, self._state = [], None

    def __enter__(self) -> KindProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down(keep_logs=exc is not None)
