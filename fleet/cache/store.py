"""The manifest cache on disk: content-addressed, written atomically, verified on every read.

An entry is ``<root>/<key[:2]>/<key>.json`` holding the key, the canonical objects and their
digest. It is written to a temp file in the same directory and renamed into place, so a reader
sees a whole entry or none. It is not synced to disk: after a crash an entry may be empty or
torn, which its digest tells, and a render costs less than the fsync a thousand tenants' renders
of one commit would each wait for. A read recomputes the digest: an entry that does not match
(a torn disk, a hand edit) is a miss and is removed. A hit touches the file's mtime, so
:meth:`gc` removes entries unused for longer than ``max_age`` and then the least recently used
until the total size is under ``max_bytes``. Everything here can be rebuilt by rendering again.
The keys on disk are listed once and kept in memory, so a miss (every key of a new commit) costs
no read.

Writes are batched: :meth:`ManifestCache.put` holds the entry in memory (a :meth:`get` finds it
there at once) and the caller that finds no write under way writes, in one worker thread, every
entry held by then, and again for those put meanwhile (a few rounds at most; what is left is
written by the next put). A thousand tenants rendering at one commit made a thread hop each; now
the puts that come while one batch is written share the next. An entry that cannot be written is
logged and forgotten (a later get is a miss, a render again), never an error of the put.

In the hub the writes wait for the end of the wave (:meth:`ManifestCache.run`, given the hub's
:class:`~fleet.activity.Activity`): a put only holds its entry, and the writer writes what is
held once no plan, render or sync has run for ``settle`` seconds, or ``at_most`` seconds after
the first entry it waits for. A commit's thousand renders would otherwise have their thousand
files written by a worker thread inside the wave, taking CPU and the interpreter's lock from the
syncs. Held entries are read from memory meanwhile; the hub's stop writes them
(:meth:`ManifestCache.flush`), and one that dies first loses only renders it can redo.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc

from fleet.activity import Activity
from fleet.settings import default_cache_dir
from fleet.types import RenderedSet, canonical_json, digest_of

__all__ = ["CacheSettings", "CacheStats", "ManifestCache"]

log = logging.getLogger(__name__)

_ROUNDS = 4  # batches one put writes at most before leaving the rest to the next put


@dataclass(frozen=True)
class CacheSettings:
    """Where the render cache lives and how much it may keep."""

    root: Path = field(default_factory=lambda: default_cache_dir() / "render")
    max_age: float = 7 * 24 * 3600.0  # seconds since last use
    max_bytes: int = 1024 * 1024 * 1024


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    writes: int = 0


class ManifestCache:
    """Rendered sets by key."""

    def __init__(
        self,
        settings: CacheSettings | None = None,
        *,
        activity: Activity | None = None,
        settle: float = 1.0,
        at_most: float = 30.0,
    ) -> None:
        self.settings = settings or CacheSettings()
        self.stats = CacheStats()
        self._keys: set[str] | None = None  # the keys on disk: listed at first use, then kept
        self._held: dict[str, RenderedSet] = {}  # put, not on disk yet
        self._writing = False  # a put (or the writer) is writing a batch
        self._activity = activity
        self._settle, self._at_most = settle, at_most
        self._writer: anyio.Event | None = None  # set by a put while run() writes for them

    def __len__(self) -> int:
        """Entries held in memory, not on disk yet."""
        return len(self._held)

    def path_of(self, key: str) -> Path:
        return self.settings.root / key[:2] / f"{key}.json"

    async def get(self, key: str) -> RenderedSet | None:
        """The entry for `key`, or ``None`` (missing or corrupt, in which case it is removed)."""
        held = self._held.get(key)
        if held is not None:
            self.stats.hits += 1
            return held
        keys = await self._known()
        found = await anyio.to_thread.run_sync(self._read, key) if key in keys else None
        if found is None:
            keys.discard(key)
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return found

    async def put(self, key: str, rendered: RenderedSet) -> None:
        """Store `rendered` under `key`: readable at once, on disk once its batch is written
        (this caller's, or the one under way; see the module)."""
        (await self._known()).add(key)
        self._held[key] = rendered
        self.stats.writes += 1
        if self._writer is not None:
            self._writer.set()  # run() writes it once the wave is over
            return
        if self._writing:
            return  # the batch under way takes it on its next round
        await self._write_held()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Write the held entries once each wave is over (the hub's service; see the module).
        Without an activity to wait for, the puts write themselves."""
        activity = self._activity
        if activity is None:
            task_status.started()
            await anyio.sleep_forever()
            return
        self._writer = anyio.Event()
        task_status.started()
        try:
            while True:
                await self._writer.wait()
                await activity.quiet(settle=self._settle, at_most=self._at_most)
                self._writer = anyio.Event()
                await self._write_held()
        finally:
            self._writer = None

    async def flush(self) -> None:
        """Write what is held now (the hub's stop)."""
        if not self._writing:
            await self._write_held()

    async def _write_held(self) -> None:
        self._writing = True
        try:
            for _ in range(_ROUNDS):
                batch = dict(self._held)
                if not batch:
                    break
                with anyio.CancelScope(shield=True):  # a batch begun is seen through
                    failed = await anyio.to_thread.run_sync(self._write_batch, batch)
                for written, entry in batch.items():
                    if self._held.get(written) is entry:
                        del self._held[written]
                for lost in failed:
                    self._forget(lost)
        finally:
            self._writing = False

    def _forget(self, key: str) -> None:
        """`key` is not on disk (its write failed), unless put again since."""
        if self._keys is not None and key not in self._held:
            self._keys.discard(key)

    def _write_batch(self, batch: dict[str, RenderedSet]) -> list[str]:
        """Write every entry of `batch`; the keys that could not be written."""
        failed = []
        for key, rendered in batch.items():
            try:
                self._write(key, rendered)
            except OSError as exc:
                log.warning("event=cache_write_failed key=%s error=%s", key, exc)
                failed.append(key)
        return failed

    async def gc(self, *, now: float | None = None) -> int:
        """Remove entries by age, then by total size; the number removed."""
        removed = await anyio.to_thread.run_sync(self._gc, time.time() if now is None else now)
        self._keys = None  # listed again at the next use
        return removed

    async def _known(self) -> set[str]:
        """The keys of the entries on disk: a key not among them is a miss without a read (a
        commit's new keys are all misses). Listed once, then kept by this process's own
        writes, misses and collections; an entry another process wrote is seen after a gc."""
        if self._keys is None:
            self._keys = await anyio.to_thread.run_sync(self._list)
        return self._keys

    def _list(self) -> set[str]:
        return {path.stem for path in self.settings.root.glob("*/*.json")}

    def _read(self, key: str) -> RenderedSet | None:
        path = self.path_of(key)
        try:
            data = json.loads(path.read_bytes())
            objects = tuple(data["objects"])
            ok = data["key"] == key and digest_of(objects) == data["digest"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            self.stats.corrupt += 1
            log.warning("event=cache_corrupt key=%s path=%s", key, path)
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)
        return RenderedSet(objects=objects, digest=data["digest"])

    def _write(self, key: str, rendered: RenderedSet) -> None:
        path = self.path_of(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = canonical_json(
            {"key": key, "digest": rendered.digest, "objects": list(rendered.objects)}
        )
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:12]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:  # no fsync: a torn entry fails its digest
                out.write(body)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _gc(self, now: float) -> int:
        entries: list[tuple[float, int, Path]] = []
        for path in self.settings.root.glob("*/*.json"):
            with contextlib.suppress(OSError):
                stat = path.stat()
                entries.append((stat.st_mtime, stat.st_size, path))
        entries.sort()
        removed = 0
        total = sum(size for _, size, _ in entries)
        for mtime, size, path in entries:
            if now - mtime <= self.settings.max_age and total <= self.settings.max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
                total -= size
        for stale in self.settings.root.glob("*/.*.tmp"):
            with contextlib.suppress(OSError):
                if now - stale.stat().st_mtime > 3600:
                    stale.unlink()
        log.info("event=cache_gc removed=%d bytes=%d", removed, total)
        return removed
