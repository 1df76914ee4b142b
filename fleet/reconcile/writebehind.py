"""Inventory records that only move the revision, written once the commit's wave is over.

An inventory (:mod:`fleet.apply.inventory`) says which objects an app instance applied, which is
what a prune may delete, and the revision and digest it applied last, which is how a rewind is
recognised. The usual commit (an image bump) changes objects but not which objects: its sync
would rewrite the inventory for the revision alone, one write more per cluster entry in the
commit's wave, half of the wave's writes when an app's change is one object. So a sync of the hub
*holds* such a record here (:meth:`WriteBehind.hold`) and this writes it when the wave is over.
What pruning depends on is never held: the set of objects is written at once, before any object
it adds is created (step 6 of :mod:`fleet.reconcile.syncing`), and at the end of the sync when it
shrinks or how an object is held changes.

- The hub's next sync of the target sees the held record as what the cluster says
  (:meth:`applied`): a rewind is measured from the revision last applied, held or written, and a
  record equal to the held one is not held again.
- Held records are written once the wave is over (no sync of the hub runs, no plan or render
  of a new input either (:class:`fleet.activity.Activity`), and none of them ran or held a
  record for ``settle`` seconds), or when the oldest is ``max_age`` seconds old, whichever comes
  first; ``limit`` at a time, through the client that made them, each fenced like every
  inventory write by the version it was computed from. A conflict means another writer wrote
  after it (the next sync, another hub): dropped.
- No record is written while a sync of its target runs (:meth:`syncing`, which also waits for a
  write of the target already under way): that sync takes the record over (writes its own, or
  holds a newer one), and never meets a conflict of ours.
- A write that fails otherwise is tried again in a later round, at most ``tries`` times, then
  dropped with a warning (``event=inventory_record_dropped``): the cluster keeps the revision
  before, and the next hub to read it (after a restart) syncs the target again and writes it.
- The hub's stop writes what is held (:meth:`flush`, bounded by the caller).

What a hub that dies with records held leaves: inventories whose revision is the one before (at
most ``max_age`` seconds of commits). The objects they list are right, so pruning is; a restarted
hub finds those targets changed and syncs them (nothing else differs: one write, the record).
A rewind to a commit inside that window is not recognised as one. Records of apps with hooks are
never held (whether the hooks of a revision ran is what the record says, and it says it at once).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import anyio
import anyio.abc

from fleet import apply
from fleet.activity import Activity
from fleet.errors import describe

__all__ = ["WriteBehind", "only_revision_moves"]

log = logging.getLogger(__name__)

_Key = tuple[str, str]  # cluster entry, inventory id


def only_revision_moves(inventory: apply.Inventory, previous: apply.Inventory | None) -> bool:
    """Whether `inventory` differs from `previous` (read from the cluster) in its revision or
    digest alone: the same objects, held the same way."""
    if previous is None or inventory.same_as(previous):
        return False
    return replace(inventory, revision=previous.revision, digest=previous.digest).same_as(previous)


@dataclass
class _Held:
    cluster: apply.Cluster
    inventory: apply.Inventory
    previous: apply.Inventory  # as read from the cluster: the write's fence
    manager: str
    since: float
    tries: int = 0


class WriteBehind:
    """The hub's held inventory records (see the module)."""

    def __init__(
        self,
        *,
        settle: float = 1.0,
        max_age: float = 30.0,
        limit: int = 8,
        tries: int = 3,
        write_limit: float = 30.0,
        activity: Activity | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settle = settle
        self.max_age = max_age
        self.tries = tries
        self.write_limit = write_limit
        self._limit = anyio.CapacityLimiter(limit)
        self._now = now
        self.activity = activity or Activity(now=now)  # the hub's plans, renders and syncs
        self._held: dict[_Key, _Held] = {}
        self._busy: dict[_Key, int] = {}  # syncs running, per target
        self._writing: dict[_Key, anyio.Event] = {}
        self._last_hold = 0.0
        self._last_round = 0.0
        self._wake = anyio.Event()
        self.written = 0  # records written here (tests, the bench)

    def __len__(self) -> int:
        return len(self._held)

    def applied(
        self, cluster: str, app: str, on_cluster: apply.Inventory | None
    ) -> apply.Inventory | None:
        """`on_cluster` (the inventory read) with the revision and digest of the record held for
        it; a record computed from another version than the one read is dropped (someone wrote
        after it)."""
        held = self._held.get((cluster, app))
        if held is None:
            return on_cluster
        base = held.previous.resource_version
        if on_cluster is None or on_cluster.resource_version != base:
            del self._held[(cluster, app)]
            return on_cluster
        return replace(on_cluster, revision=held.inventory.revision, digest=held.inventory.digest)

    def hold(
        self,
        cluster: apply.Cluster,
        inventory: apply.Inventory,
        *,
        previous: apply.Inventory,
        field_manager: str,
    ) -> None:
        """Hold `inventory` for `cluster`, to be written over `previous` (as read) later."""
        key = (cluster.name, inventory.app)
        now = self._now()
        older = self._held.get(key)  # its age goes on: a target under steady commits still ages
        since = older.since if older is not None else now
        self._held[key] = _Held(cluster, inventory, previous, field_manager, since=since)
        self._last_hold = now
        self._wake.set()

    def superseded(self, cluster: str, app: str) -> None:
        """A sync wrote the target's inventory itself: what was held for it is older."""
        self._held.pop((cluster, app), None)

    @contextlib.asynccontextmanager
    async def syncing(self, cluster: str, app: str) -> AsyncIterator[None]:
        """While a sync of the target runs: its record is not written here (a write already
        under way is waited for first)."""
        key = (cluster, app)
        writing = self._writing.get(key)
        if writing is not None:
            await writing.wait()
        self._busy[key] = self._busy.get(key, 0) + 1
        try:
            with self.activity.working():
                yield
        finally:
            self._busy[key] -= 1
            if not self._busy[key]:
                del self._busy[key]

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Write the held records in rounds, each when it is due (see the module)."""
        task_status.started()
        while True:
            await self._due()
            await self._round()
            self._last_round = self._now()

    async def flush(self) -> None:
        """Write every held record now (a stop): those of running syncs too."""
        await self._round(everything=True)

    async def _due(self) -> None:
        while True:
            if not self._held:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            now = self._now()
            aged = min(h.since for h in self._held.values()) + self.max_age
            # the wave is over once no work runs and none ran or held a record for `settle` s
            if self._busy or self.activity.busy:
                quiet = aged
            else:
                quiet = max(self._last_hold, now - self.activity.idle_for()) + self.settle
            due = max(min(quiet, aged), self._last_round + self.settle)  # a round left some
            if now >= due:
                return
            await anyio.sleep(min(due - now, self.settle))  # a sync may end meanwhile

    async def _round(self, *, everything: bool = False) -> None:
        keys = [k for k in self._held if everything or k not in self._busy]
        async with anyio.create_task_group() as group:
            for key in keys:
                group.start_soon(self._write, key, everything)

    async def _write(self, key: _Key, everything: bool) -> None:
        async with self._limit:
            if key in self._busy and not everything:
                return  # a sync of the target began meanwhile: it takes the record over
            held = self._held.pop(key, None)
            if held is None:
                return
            done = self._writing[key] = anyio.Event()
            try:
                await self._write_held(key, held)
            finally:
                del self._writing[key]
                done.set()

    async def _write_held(self, key: _Key, held: _Held) -> None:
        try:
            with anyio.CancelScope(shield=True), anyio.fail_after(self.write_limit):
                await apply.write_inventory(
                    held.cluster,
                    held.inventory,
                    previous=held.previous,
                    field_manager=held.manager,
                )
        except apply.InventoryConflict:
            return  # a newer record was written meanwhile
        except Exception as exc:  # one record's failure is that record's alone
            held.tries += 1
            if held.tries < self.tries and key not in self._held:
                self._held[key] = held
                return
            log.warning(
                "event=inventory_record_dropped cluster=%s inventory=%s revision=%s tries=%d "
                "error=%s (the cluster keeps the revision before; a restarted hub syncs it again)",
                key[0],
                key[1],
                held.inventory.revision[:12],
                held.tries,
                describe(exc),
            )
            return
        self.written += 1
