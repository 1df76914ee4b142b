"""The cluster registry: ``clusters/`` is the list of clusters, watched.

Model: a scan reads every cluster file of the directory into a snapshot ``name -> entry``, where an
entry is either a parsed kubeconfig (with the sha256 of the file's bytes) or the error that file
gave. :func:`compare` (pure) turns two snapshots into the changes — joined, changed (the bytes
differ: reconnect), left, broken, repaired — and the registry hands each change to its listener.

A rescan costs a stat per file, not a read and a parse (1,000 kubeconfigs every 10 s were half of
the idle hub's CPU): :func:`scan` is given the previous snapshot and keeps a file's entry as it is
while the file's stamp — device, inode, size, mtime and ctime, stat'ed *through* symlinks, plus the
resolved target of a symlink — is unchanged. A changed stamp means a read; when the bytes hash to
the previous digest the parsed entry is kept too (a ``touch``, a Secret/ConfigMap mount re-published
with the same data). A Kubernetes Secret/ConfigMap volume swaps its ``..data`` symlink to a new
directory: the file link itself never changes, but its target (another inode, another path) does,
so the swap is seen. A stamp is trusted only once its mtime is ``_RACY_NS`` older than the scan
(git's "racily clean" rule): a same-size rewrite within the filesystem's timestamp granularity would
otherwise keep an identical stamp and be missed, so a file written just now is read again next scan.

Guarantees:
- a new file joins within the debounce of a file event (watchfiles; ~50 ms; a mount's ``..data``
  swap is such an event too), and a periodic rescan (default 10 s) is the backstop when events are
  lost (network filesystems, overflow);
- a broken file is an error for that file alone: the rest of the fleet carries on, and a cluster
  whose file breaks *after* it joined keeps its last good connection (nothing is lost on a bad
  edit) while the error is shown until the file is repaired or removed;
- removing a file only stops fleet's work for that cluster; nothing in the cluster is deleted;
- the listener is called from one task, in order, never concurrently.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import watchfiles

from fleet.config import clusters
from fleet.errors import ConfigError

__all__ = ["Change", "ClusterRegistry", "Entry", "Stamp", "compare", "scan"]

log = logging.getLogger(__name__)

# A stamp younger than this is not trusted (timestamps are coarse: ~4 ms locally, 1-2 s on some
# network filesystems); the file is read again on the next scan.
_RACY_NS = 2 * 10**9
_DUPLICATE = "duplicate-of:"

Stamp = tuple[int, int, int, int, int, str]
"""(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns, resolved symlink target or "")."""


@dataclass(frozen=True)
class Entry:
    """One file of the directory: its parsed kubeconfig, or the error it gave."""

    path: Path
    digest: str
    cluster: clusters.ClusterFile | None = None
    error: str | None = None
    stamp: Stamp | None = None  # the file's stamp when read; None: read it again next scan


@dataclass(frozen=True)
class Change:
    """What happened to one cluster name between two scans."""

    kind: str  # "joined" | "changed" | "left" | "broken" | "repaired"
    name: str
    entry: Entry | None = None  # None for "left"


Snapshot = Mapping[str, Entry]


def _name(path: Path) -> str:
    return path.stem


def _stamp(item: os.DirEntry[str]) -> Stamp | None:
    """The stamp of the regular file `item` names, through symlinks; None if it is no such file."""
    st = item.stat()  # follows symlinks: the target's inode, size and times
    if not stat.S_ISREG(st.st_mode):
        return None
    target = os.path.realpath(item.path) if item.is_symlink() else ""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, target)


def _list(directory: Path) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as items:
        return sorted(
            (item for item in items if clusters.is_cluster_file(Path(item.path))),
            key=lambda item: item.name,
        )


def scan(directory: Path, previous: Snapshot | None = None) -> dict[str, Entry]:
    """Every cluster file of `directory` (not recursive), reusing `previous` where a file's stamp
    (or, failing that, its digest) is unchanged."""
    known = {e.path: e for e in (previous or {}).values()}
    started = time.time_ns()
    snapshot: dict[str, Entry] = {}
    try:
        items = _list(directory)
    except OSError as exc:
        log.warning("event=registry_scan_failed dir=%s error=%s", directory, exc.strerror)
        return snapshot
    for item in items:
        path = Path(item.path)
        try:
            stamp = _stamp(item)
        except OSError:
            continue  # vanished, or a dangling symlink: not a cluster file now
        if stamp is None:
            continue
        name = _name(path)
        if name in snapshot:  # never reused: its error depends on the other file
            first = snapshot[name].path.name
            snapshot[name] = Entry(
                path,
                f"{_DUPLICATE}{first}",  # differs from any file digest: compare says broken
                error=f"{path}: cluster {name!r} is also defined by {first}",
            )
            continue
        old = known.get(path)
        if old is not None and old.stamp is not None and old.stamp == stamp:
            snapshot[name] = old
            continue
        trusted = stamp if stamp[3] < started - _RACY_NS else None
        try:
            data = path.read_bytes()
        except OSError:
            continue  # vanished between listing and reading: the next scan settles it
        digest = hashlib.sha256(data).hexdigest()
        if old is not None and old.digest == digest:
            snapshot[name] = dataclasses.replace(old, stamp=trusted)
            continue
        try:
            snapshot[name] = Entry(path, digest, cluster=clusters.read(path), stamp=trusted)
        except ConfigError as exc:
            snapshot[name] = Entry(path, digest, error=str(exc), stamp=trusted)
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

# A Secret/ConfigMap volume publishes by renaming this symlink over the old one; the cluster files
# are links through it and do not change themselves, so its event must trigger a rescan too.
_DATA_LINK = "..data"


def _watched(_change: watchfiles.Change, path: str) -> bool:
    return clusters.is_cluster_file(Path(path)) or Path(path).name == _DATA_LINK


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
            current = await anyio.to_thread.run_sync(scan, self.directory, self.snapshot)
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
                watch_filter=_watched,
            ):
                await self.refresh()
        except (OSError, RuntimeError) as exc:  # inotify unavailable: the rescan still works
            log.warning("event=registry_watch_failed dir=%s error=%s", self.directory, exc)
        finally:
            stop.set()
