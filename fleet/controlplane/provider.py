"""Choosing between the local kit and kind, and stopping kits started by another process.

``auto`` picks kind where a Docker engine answers and ``kind`` is installed, else the local kit
(real kube-apiserver, etcd and kwok built from Go modules). Both providers share one interface:
``up(names, labels=...) -> [RunningCluster]``, ``down()``, and use as a context manager.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Literal, Protocol

from fleet.controlplane import binaries, kind, processes, runstate
from fleet.controlplane.adminapi import AdminApi
from fleet.controlplane.errors import KitError
from fleet.controlplane.local import EtcdMode, LocalProvider, Progress, RunningCluster

__all__ = ["Provider", "ProviderName", "choose", "make", "status_lines", "stop_detached"]

ProviderName = Literal["auto", "local", "kind"]


class Provider(Protocol):
    name: str
    kit_id: str

    def up(
        self,
        names: list[str],
        *,
        labels: dict[str, dict[str, str]] | None = None,
        timeout: float = ...,
    ) -> list[RunningCluster]: ...

    def down(self, *, keep_logs: bool = False) -> None: ...


def choose(requested: ProviderName) -> Literal["local", "kind"]:
    """The provider to use for `requested` on this machine."""
    if requested == "auto":
        return "kind" if kind.available() else "local"
    return requested


def make(
    requested: ProviderName,
    *,
    kubeconfig_dir: Path,
    attached: bool = True,
    etcd: EtcdMode = "shared",
    base_port: int | None = None,
    progress: Progress | None = None,
) -> LocalProvider | kind.KindProvider:
    """A provider ready to ``up``."""
    chosen = choose(requested)
    report = progress or binaries.stderr_progress
    if chosen == "kind":
        return kind.KindProvider(kubeconfig_dir=kubeconfig_dir, attached=attached, progress=report)
    return LocalProvider(
        kubeconfig_dir=kubeconfig_dir,
        attached=attached,
        etcd=etcd,
        base_port=base_port,
        progress=report,
    )


def stop_detached(*, run_root: Path | None = None, kubeconfig_dir: Path | None = None) -> list[str]:
    """Stop the kits that ``up`` left running (all, or those writing into `kubeconfig_dir`)."""
    root = run_root or runstate.default_run_root()
    stopped: list[str] = []
    for state in runstate.load_all(root):
        if kubeconfig_dir and Path(state.kubeconfig_dir).resolve() != kubeconfig_dir.resolve():
            continue
        if state.provider == "kind":
            for record in state.clusters:
                if shutil.which("kind"):
                    subprocess.run(
                        ["kind", "delete", "cluster", "--name", f"fleet-{record.name}"],
                        capture_output=True,
                        check=False,
                    )
        processes.kill_pids(processes.find_marked(state.kit_id))
        for record in state.clusters:
            runstate.remove_kubeconfig(Path(record.kubeconfig), server=record.server)
        shutil.rmtree(state.run_dir, ignore_errors=True)
        shutil.rmtree(state.log_dir, ignore_errors=True)
        stopped.append(state.kit_id)
    runstate.sweep_stale(root)
    return stopped


def status_lines(*, run_root: Path | None = None) -> list[str]:
    """One line per cluster of every kit: name, server, ready or not, kubeconfig."""
    lines: list[str] = []
    for state in runstate.load_all(run_root or runstate.default_run_root()):
        live = len(processes.find_marked(state.kit_id))
        for record in state.clusters:
            ready = "unknown"
            pki = Path(state.run_dir) / record.name / "pki"
            if state.provider == "local":
                if not pki.is_dir():
                    raise KitError(f"kit {state.kit_id}: {pki} is missing")
                api = AdminApi(
                    "127.0.0.1", record.port, pki / "ca.crt", pki / "admin.crt", pki / "admin.key"
                )
                ready = "ready" if api.ready() else "NOT READY"
            lines.append(
                f"{record.name:<16} {ready:<9} {record.server:<26} {state.provider:<5} "
                f"{state.kit_id} ({live} processes) {record.kubeconfig}"
            )
    return lines
