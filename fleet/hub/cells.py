"""A cell per cluster: its shared watches (one per kind), its live caches, and drift from them.

For each connected cluster the hub holds a :class:`Cell`: two
:class:`~fleet.apply.informer.LiveCache` instances, run in a cancel scope of their own inside the
hub's task group (cancelled when the cluster leaves or its connection is replaced):

- **objects**: every fleet-managed object of the kinds some target uses (selector
  ``app.kubernetes.io/managed-by=fleet``), one list-then-watch per kind, shared by every target
  on the cluster, however many cluster entries or apps share its API server;
- **inventories**: the inventory ConfigMaps, so a sync reads its inventory without a request.

Cluster entries that reach one API server with one identity (aliases, several entries of a
shared app, tunnels to one cluster) share one cell: its watches are opened once, whatever the
number of entries, and each target still hears only of its own objects (subscriptions are by
tracking id, which names the entry). The cell runs on the client of one of its entries; when that
entry leaves, the cell starts again on another's.

Syncs read through the cell (:class:`~fleet.reconcile.reading.CachedReader`). After each sync a
target watches what it applied (:meth:`Cells.watch`): its objects' expected content and the
pointers its app ignores, subscribed by its tracking id and its keys. An event on one of them is
compared in the cell's own task with what the target applied (:func:`fleet.plan.in_sync`): only
a real difference, someone else's change or a deletion, is drift, handed to ``on_drift(key, n)``;
fleet's own writes compare equal and cost nothing. A target that drifted and then gets an event
whose objects compare equal again, with the cache showing every one of its objects as applied
(:meth:`Cells.in_sync`), was put back by hand: ``on_in_sync(key, health)`` is called once, with
the health judged from the same cached objects (a Deployment deleted and re-created by hand may be
starting: never green on the health it had before), so its drift is cleared at once rather than at
the next resync (only targets the cell saw drift are compared whole, so a status update of a
healthy object costs no more than before).

While a target syncs (:meth:`Cells.syncing`, held from before its first write until it watches
what it applied) its events are not judged: they are its own writes arriving, compared against
what it applied before, and would read as drift, a false "changed outside fleet" on every
commit. A change by someone else in that window is caught by the next resync, which compares the
cache with what was applied. No dry-run, no read per event, and a target never hears of another
target's objects. :meth:`Cells.in_sync` answers the periodic resync from the cache (no request)
while every kind of the target is warm.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import anyio
import anyio.abc

from fleet import apply, plan
from fleet.apply.informer import Kind, LiveCache
from fleet.apply.subscribing import Subscription
from fleet.health import assess, worst
from fleet.reconcile.reading import CachedReader
from fleet.types import Manifest, ObjectKey

__all__ = ["Cell", "Cells", "Expected"]

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (cluster, app)
_INVENTORY_SELECTOR = "app.kubernetes.io/component=fleet-inventory"


@dataclass(frozen=True)
class Expected:
    """What a target applied to one object: the content, the pointers its app ignores."""

    api_version: str
    manifest: Manifest
    ignore: tuple[str, ...] = ()


@dataclass
class Cell:
    """One API server's live caches and the targets watching them."""

    name: str  # the entry whose client the cell runs on
    objects: LiveCache
    inventories: LiveCache
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    identity: str = ""
    running: bool = False  # its caches run: subscriptions may be made
    woken: set[str] = field(default_factory=set)
    wake: anyio.Event = field(default_factory=anyio.Event)

    @property
    def reader(self) -> CachedReader:
        return CachedReader(objects=self.objects, inventories=self.inventories)


def _owner(key: Key) -> str:
    return f"{key[1]}@{key[0]}"


class Cells:
    """Every connected cluster's cell, and what each target watches."""

    def __init__(
        self,
        *,
        group: anyio.abc.TaskGroup,
        on_drift: Callable[[Key, int], None],
        on_in_sync: Callable[[Key, str], None] = lambda _key, _health: None,
    ) -> None:
        self._group = group
        self._on_drift = on_drift
        self._on_in_sync = on_in_sync
        self._drifted: set[Key] = set()  # targets this cell saw drift, not yet seen put back
        self._cells: dict[str, Cell] = {}  # by identity (see `open`)
        self._identity: dict[str, str] = {}  # entry name -> identity
        self._clients: dict[str, apply.Cluster] = {}  # entry name -> its client
        self._watched: dict[Key, dict[ObjectKey, Expected]] = {}
        self._tracking: dict[Key, str] = {}
        self._owners: dict[str, Key] = {}
        self._subscriptions: dict[Key, Subscription] = {}
        self._syncing: dict[Key, int] = {}  # targets between their first write and watch()

    # -- clusters -------------------------------------------------------------------------------

    def open(self, name: str, cluster: apply.Cluster, *, identity: str = "") -> None:
        """Entry `name` is connected through `cluster`; entries of one `identity` (API server and
        credentials) share a cell. The targets watching it subscribe again."""
        self.close(name)
        identity = identity or name
        self._identity[name] = identity
        self._clients[name] = cluster
        if identity not in self._cells:
            self._start(identity, name)  # its run subscribes the watching targets
            return
        cell = self._cells[identity]
        if cell.running:
            for key in [k for k in self._watched if k[0] == name]:
                self._subscribe(cell, key)

    def close(self, name: str) -> None:
        identity = self._identity.pop(name, None)
        self._clients.pop(name, None)
        if identity is None:
            return
        cell = self._cells.get(identity)
        if cell is None or cell.name != name:
            return  # the cell runs on another entry's client
        cell.scope.cancel()
        del self._cells[identity]
        others = sorted(n for n, i in self._identity.items() if i == identity)
        if others:  # move the cell onto another entry's client; its run subscribes again
            self._start(identity, others[0])

    def _start(self, identity: str, name: str) -> None:
        cluster = self._clients[name]
        cell = Cell(
            name=name,
            identity=identity,
            objects=LiveCache(
                cluster,
                label_selector=f"{plan.MANAGED_BY_LABEL}={plan.MANAGED_BY_VALUE}",
                tracking_annotation=plan.TRACKING_ANNOTATION,
            ),
            inventories=LiveCache(cluster, label_selector=_INVENTORY_SELECTOR),
        )
        self._cells[identity] = cell
        self._group.start_soon(self._run, cell, name=f"fleet-cell-{name}")

    def _cell_of(self, name: str) -> Cell | None:
        identity = self._identity.get(name)
        return None if identity is None else self._cells.get(identity)

    def reader(self, name: str) -> CachedReader | None:
        """The cell's reader while its caches run; None (read the API) while it starts."""
        cell = self._cell_of(name)
        return cell.reader if cell is not None and cell.running else None

    def cell(self, name: str) -> Cell | None:
        return self._cell_of(name)

    async def _run(self, cell: Cell) -> None:
        with cell.scope:
            try:
                async with anyio.create_task_group() as group:
                    await group.start(cell.objects.run)
                    await group.start(cell.inventories.run)
                    cell.running = True
                    for key in [
                        k for k in self._watched if self._identity.get(k[0]) == cell.identity
                    ]:
                        self._subscribe(cell, key)
                    group.start_soon(self._check, cell)
            except Exception:  # the caches supervise their own streams: this is a bug of fleet
                log.exception("event=cell_failed cluster=%s", cell.name)

    # -- targets --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def syncing(self, key: Key) -> Iterator[None]:
        """While held, events on `key`'s objects are its own writes landing, not drift."""
        self._syncing[key] = self._syncing.get(key, 0) + 1
        try:
            yield
        finally:
            self._syncing[key] -= 1
            if not self._syncing[key]:
                del self._syncing[key]

    def watch(self, key: Key, *, tracking: str, expected: Mapping[ObjectKey, Expected]) -> None:
        """From now on, `key` owns `expected` on its cluster (replacing what it watched)."""
        cell = self._cell_of(key[0])
        before = self._watched.get(key)
        if before is not None and cell is not None and cell.running:
            left = _kinds(before) - _kinds(expected)
            for kind in left:  # kinds it no longer has: one user fewer
                cell.objects.release(kind, user=_owner(key))
        self._watched[key] = dict(expected)
        self._tracking[key] = tracking
        self._owners[_owner(key)] = key
        if cell is not None and cell.running:
            self._subscribe(cell, key)

    def unwatch(self, key: Key) -> None:
        expected = self._watched.pop(key, None)
        self._tracking.pop(key, None)
        self._owners.pop(_owner(key), None)
        self._subscriptions.pop(key, None)
        self._drifted.discard(key)
        cell = self._cell_of(key[0])
        if cell is not None and cell.running:
            cell.objects.unsubscribe(_owner(key))
            for kind in _kinds(expected or {}):
                cell.objects.release(kind, user=_owner(key))

    def unwatch_where(self, predicate: Callable[[Key], bool]) -> None:
        for key in [k for k in self._watched if predicate(k)]:
            self.unwatch(key)

    def in_sync(self, key: Key) -> bool | None:
        """Whether the cache shows every object of `key` as it applied it; None while cold."""
        expected = self._watched.get(key)
        cell = self._cell_of(key[0])
        if expected is None or cell is None:
            return None
        if not all(cell.objects.is_warm(kind) for kind in _kinds(expected)):
            return None
        return not _drifted(cell.objects, expected, expected)

    def _subscribe(self, cell: Cell, key: Key) -> None:
        expected = self._watched[key]
        owner = _owner(key)
        for item_key, item in expected.items():  # counted once per target (a named user)
            cell.objects.ensure(item.api_version, item_key.kind, user=owner)

        def woken(who: str) -> None:
            cell.woken.add(who)
            cell.wake.set()

        self._subscriptions[key] = cell.objects.subscribe(
            owner, keys=expected, tracking=self._tracking[key], notify=woken
        )

    async def _check(self, cell: Cell) -> None:
        """The cell's drift checker: compares what woke each target with what it applied."""
        while True:
            await cell.wake.wait()
            cell.wake = anyio.Event()
            owners, cell.woken = cell.woken, set()
            for owner in owners:
                key = self._owners.get(owner)
                subscription = self._subscriptions.get(key) if key else None
                if key is None or subscription is None:
                    continue
                events = subscription.take()
                if key in self._syncing:
                    continue  # its own writes landing (see the module)
                expected = self._watched.get(key, {})
                changed = {e.key for e in events if e.key in expected}
                drifted = _drifted(cell.objects, expected, changed)
                if drifted:
                    log.info(
                        "event=drift_seen cluster=%s app=%s objects=%d", key[0], key[1], drifted
                    )
                    self._drifted.add(key)
                    self._on_drift(key, drifted)
                elif changed and key in self._drifted and self.in_sync(key) is True:
                    self._drifted.discard(key)
                    health = _health(cell.objects, expected)
                    log.info(
                        "event=drift_undone cluster=%s app=%s health=%s", key[0], key[1], health
                    )
                    self._on_in_sync(key, health)


def _health(objects: LiveCache, expected: Mapping[ObjectKey, Expected]) -> str:
    """Worst-of health of `expected` as the cache holds them (gone: Missing), as the record
    spells it (``Healthy``, ``Progressing``, ...)."""
    return worst(assess(k.group, k.kind, objects.get(k)) for k in expected).status.value


def _kinds(expected: Mapping[ObjectKey, Expected]) -> set[Kind]:
    return {Kind.of(e.api_version, k.kind) for k, e in expected.items()}


def _drifted(
    objects: LiveCache, expected: Mapping[ObjectKey, Expected], keys: Iterable[ObjectKey]
) -> int:
    """How many of `keys` differ, live, from what was applied (gone counts as different)."""
    count = 0
    for object_key in keys:
        item = expected[object_key]
        live = objects.get(object_key)
        if live is None or not plan.in_sync(item.manifest, live, ignore=item.ignore):
            count += 1
    return count
