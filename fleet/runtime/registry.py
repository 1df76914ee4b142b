"""The cluster registry: ``clusters/`` is the list of clusters, watched.

Model: a scan reads every cluster file of the directory into a snapshot ``name -> entry``, where an
entry is either a parsed kubeconfig (with the sha256 of the file's bytes) or the error that file
gave. :func:`compare` (pure) turns two snapshots into the changes — joined, changed (the bytes
differ: reconnect), left, broken, repaired — and the registry hands each change to its listener.

Guarantees:
- a new file joins within the debounce of a file event (watchfiles; ~50 ms), and a periodic
  rescan (default 10 s) is the backstop when events are lost (network filesystems, overflow);
- a broken file is an error for that file alone: the rest of the fleet carries on, and a cluster
  whose file breaks *after* it joined keeps its last good connection (nothing is lost on a bad
  edit) while the error is shown until the file is repaired or removed;
- removing a file only stops fleet's work for that cluster; nothing in the cluster is deleted;
- the listener is called from one task, in order, never concurrently.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import watchfiles

from fleet.config import clusters
from fleet.errors import ConfigError

__all__ = ["Change", "ClusterRegistry", "Entry", "compare", "scan"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One file of the directory: its parsed kubeconfig, or the error it gave."""

    path: Path
    digest: str
    cluster: clusters.ClusterFile | None = None
    error: str | None = None


@dataclass(frozen=True)
class Change:
    """What happened to one cluster name between two scans."""

    kind: str  # "joined" | "changed" | "left" | "broken" | "repaired"
    name: str
    entry: Entry | None = None  # None for "left"


Snapshot = Mapping[str, Entry]


def _name(path: Path) -> str:
    return path.stem


def scan(directory: Path) -> dict[str, Entry]:
    """Read every cluster file of `directory` (not recursive)."""
    snapshot: dict[str, Entry] = {}
    try:
        paths = sorted(
            p for p in directory.iterdir() if clusters.is_cluster_file(p) and p.is_file()
        )
    except OSError as exc:
        log.warning("event=registry_scan_failed dir=%s error=%s", directory, exc.strerror)
        return snapshot
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue  # vanished between listing and reading: the next scan settles it
        digest = hashlib.sha256(data).hexdigest()
        name = _name(path)
        if name in snapshot:
            snapshot[name] = Entry(
                path,
                digest,
                error=(f"{path}: cluster {name!r} is also defined by {snapshot[name].path.name}"),
            )
            continue
        try:
            snapshot[name] = Entry(path, digest, cluster=clusters.read(path))
        except ConfigError as exc:
            snapshot[name] = Entry(path, digest, error=str(exc))
    return snapshot


def compare(before: Snapshot, after: Snapshot) -> list[Change]:
    """The changes from snapshot `before` to `after`, sorted by name (pure)."""
    changes: list[Change] = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if new is None:
            changes.append(Change("left", name))
        elif old is None:
            changes.append(Change("broken" if new.error else "joined", name, new))
        elif old.digest == new.digest:
            continue
        elif new.error:
            changes.append(Change("broken", name, new))
        elif old.error:
            changes.append(Change("repaired", name, new))
        else:
            changes.append(Change("changed", name, new))
    return changes


Listener = Callable[[Change], Awaitable[None]]


@dataclass
class ClusterRegistry:
    """Watches `directory` and tells `listener` about every change, in order."""

    directory: Path
    listener: Listener
    rescan_interval: float = 10.0
    snapshot: dict[str, Entry] = field(default_factory=dict)
    _lock: anyio.Lock = field(default_factory=anyio.Lock, repr=False)

    @property
    def errors(self) -> dict[str, str]:
        """The current error of each broken file, by cluster name."""
        return {name: e.error for name, e in self.snapshot.items() if e.error}

    async def refresh(self) -> list[Change]:
        """Rescan now and deliver the changes (one refresh at a time)."""
        async with self._lock:
            current = await anyio.to_thread.run_sync(scan, self.directory)
            changes = compare(self.snapshot, current)
            self.snapshot = current
            for change in changes:
                await self._deliver(change)
        return changes

    async def _deliver(self, change: Change) -> None:
        if change.kind == "broken":
            error = change.entry.error if change.entry else ""
            log.warning("event=cluster_file_broken cluster=%s error=%s", change.name, error)
        else:
            log.info("event=cluster_%s cluster=%s", change.kind, change.name)
        await self.listener(change)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Scan once, report ready, then follow file events with a periodic rescan as backstop."""
        self.directory.mkdir(parents=True, exist_ok=True)
        await self.refresh()
        task_status.started()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch)
            while True:
                await anyio.sleep(self.rescan_interval)
                await self.refresh()

    async def _watch(self) -> None:
        stop = anyio.Event()
        try:
            async for _ in watchfiles.awatch(
                self.directory,
                stop_event=stop,
                debounce=50,
                step=20,
                recursive=False,
                watch_filter=lambda _change, path: clusters.is_cluster_file(Path(path)),
            ):
                await self.refresh()
        except (OSError, RuntimeError) as exc:  # inotify unavailable: the rescan still works
            log.warning("event=registry_watch_failed dir=%s error=%s", self.directory, exc)
        finally:
            stop.set()
