"""Where a running kit keeps its files, and how leftovers of a dead kit are swept.

Each kit gets ``<run_root>/<kit_id>/`` (etcd data, certificates, component kubeconfigs) and a
``state.json`` that says who owns it and which kubeconfigs it wrote into the caller's directory.
An *attached* kit belongs to the Python process that started it; a *detached* one (``up`` on the
command line) lives until ``down``. A run directory is stale when no process carries its marker
and, for an attached kit, its owner is gone: the next kit to start removes it, so even a SIGKILLed
test session leaves nothing behind for long.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fleet.controlplane import processes

__all__ = [
    "ClusterRecord",
    "KitState",
    "default_run_root",
    "load_all",
    "remove_kubeconfig",
    "sweep_stale",
]

STATE_FILE = "state.json"
_GRACE_SECONDS = 60.0


def default_run_root() -> Path:
    """``$FLEET_KIT_RUN_DIR``, else a per-user directory under the system temp dir."""
    explicit = os.environ.get("FLEET_KIT_RUN_DIR")
    if explicit:
        return Path(explicit)
    return Path(tempfile.gettempdir()) / f"fleet-kit-{os.getuid()}"


@dataclass
class ClusterRecord:
    """One running cluster, as a later ``status`` or ``down`` needs it."""

    name: str
    server: str
    port: int
    kubeconfig: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class KitState:
    """The ``state.json`` of one kit."""

    kit_id: str
    provider: str
    attached: bool
    owner_pid: int
    run_dir: str
    log_dir: str
    kubeconfig_dir: str
    clusters: list[ClusterRecord] = field(default_factory=list)

    def save(self) -> None:
        path = Path(self.run_dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> KitState:
        raw: dict[str, Any] = json.loads(path.read_text())
        clusters = [ClusterRecord(**c) for c in raw.pop("clusters", [])]
        return cls(**raw, clusters=clusters)


def load_all(run_root: Path) -> list[KitState]:
    """Every kit with a readable state file under `run_root`."""
    states: list[KitState] = []
    if not run_root.is_dir():
        return states
    for entry in sorted(run_root.iterdir()):
        try:
            states.append(KitState.load(entry / STATE_FILE))
        except (OSError, ValueError, TypeError):
            continue
    return states


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(run_root: Path) -> list[str]:
    """Remove the run directories of dead kits (and kill orphans of dead attached owners).

    Returns the kit ids swept.
    """
    swept: list[str] = []
    if not run_root.is_dir():
        return swept
    marked = processes.find_marked()
    for entry in run_root.iterdir():
        if not entry.is_dir():
            continue
        try:
            state = KitState.load(entry / STATE_FILE)
        except (OSError, ValueError, TypeError):
            state = None
            if time.time() - entry.stat().st_mtime < _GRACE_SECONDS:
                continue  # a kit is being created here right now
        kit_id = state.kit_id if state else entry.name
        live = [pid for pid, kid in marked.items() if kid == kit_id]
        owner_gone = state is None or not state.attached or not _owner_alive(state.owner_pid)
        if state is not None and state.attached and not _owner_alive(state.owner_pid) and live:
            processes.kill_pids(live)
            live = []
        if live or not owner_gone:
            continue
        if state is not None:
            for record in state.clusters:
                remove_kubeconfig(Path(record.kubeconfig), server=record.server)
        shutil.rmtree(entry, ignore_errors=True)
        swept.append(kit_id)
    return swept


def remove_kubeconfig(path: Path, *, server: str) -> None:
    """Remove a kubeconfig the kit wrote, unless someone replaced it since (other server)."""
    try:
        if server in path.read_text():
            path.unlink()
    except OSError:
        pass
