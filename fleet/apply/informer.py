"""One shared watch per (cluster, kind) of fleet-managed objects, feeding a live cache.

The shared-informer idea of client-go, in anyio. A :class:`LiveCache` belongs to one cluster and
owns one task group. For each kind some target needs (:meth:`LiveCache.ensure`, reference
counted, by name when the user gives one, so a target that subscribes again after each sync counts
once; :meth:`LiveCache.release` stops the stream when the last user goes), exactly one stream
runs: LIST the objects matching the caller's label selector across all namespaces, then WATCH from
the list's resourceVersion (:mod:`fleet.apply.watching`). Each change updates the kind's
:class:`~fleet.apply.livestore.KindStore` and is offered to the subscribers that own the object
(:mod:`fleet.apply.subscribing`: by key or by tracking annotation; coalesced; never blocking).

Per stream, what the server does and what the cache does:

- the server ends a watch (``timeoutSeconds``): watch again from the last resourceVersion seen
  (bookmarks keep it fresh on a quiet kind); no LIST, the cache stays warm;
- the watch falls silent (no event, no bookmark for ``silence_seconds``: a hung server): the
  kind is cold until a new watch from the same version opens; no LIST;
- 410 Gone (the version is too old): LIST again; the diff against the cache is delivered as
  ``relisted`` events, so nothing that changed in between is lost;
- any other failure (the cluster is down, a refused request, a kind not served yet because its CRD
  is not installed): the kind goes cold, the error and since when are its state
  (:class:`KindState`), and it is retried after an exponential backoff with jitter, relisting
  when it is back. A failure never leaves the stream's task: one kind's trouble is that kind's
  state, never an exception out of the cluster's task group.

A kind is warm (:meth:`LiveCache.is_warm`) once its LIST landed and its watch is open; readers
use :meth:`LiveCache.lookup`, :meth:`LiveCache.get` and :meth:`LiveCache.objects` only while it
is warm and read the API otherwise. Objects are kept whole, as the server sent them (managed
fields included), and handed out without a copy: never change them. An idle kind costs one watch
request per ``watch_seconds`` (300 s by default; measured: 5 requests in 320 s for 5 kinds).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from types import TracebackType

import anyio
from anyio.abc import TaskGroup, TaskStatus

from fleet.apply.kube import Cluster
from fleet.apply.reflecting import InformerSettings, Kind, KindNotServed, KindState, Reflector
from fleet.apply.subscribing import Notify, Subscribers, Subscription
from fleet.types import Manifest, ObjectKey

__all__ = ["InformerSettings", "Kind", "KindNotServed", "KindState", "LiveCache", "Lookup"]


@dataclass(frozen=True)
class Lookup:
    """What :meth:`LiveCache.lookup` knows: objects found, and keys to read from the API."""

    found: dict[ObjectKey, Manifest]
    unknown: list[ObjectKey]


@dataclass(eq=False)
class LiveCache:
    """The live objects of one cluster that match `label_selector`, kept by one stream per kind.

    Use as ``async with LiveCache(cluster, label_selector=...) as cache:`` or start
    ``await group.start(cache.run)``. `tracking_annotation` names the annotation whose value says
    which target owns an object (for :meth:`subscribe` by tracking value). A kind's first LIST is
    delivered too, as ``relisted`` ADDED events, to the subscribers already there.
    """

    cluster: Cluster
    label_selector: str
    tracking_annotation: str = ""
    settings: InformerSettings = field(default_factory=InformerSettings)
    now: Callable[[], float] = time.time
    subscribers: Subscribers = field(init=False)
    _streams: dict[Kind, Reflector] = field(init=False, default_factory=dict)
    _group: TaskGroup | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.subscribers = Subscribers(tracking_annotation=self.tracking_annotation)

    # -- lifetime -------------------------------------------------------------------------------

    async def __aenter__(self) -> LiveCache:
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        group, self._group = self._group, None
        assert group is not None, "LiveCache exited without being entered"
        group.cancel_scope.cancel()
        try:
            return await group.__aexit__(exc_type, exc, tb)
        finally:
            self._streams.clear()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ready (through `task_status`) as soon as kinds can be ensured."""
        async with self:
            task_status.started()
            await anyio.sleep_forever()

    # -- kinds ----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the cache serves (entered, or its run() started): only then may kinds be
        ensured."""
        return self._group is not None

    def ensure(self, api_version: str, kind: str, *, user: str | None = None) -> Kind:
        """Start watching `kind` (or count one more user of its stream); its cache key.

        A named `user` counts once however often it ensures the kind (a target subscribing
        again after each sync, a reader per sync); without a name each call counts one, and
        each wants its own :meth:`release`."""
        if self._group is None:
            raise RuntimeError(
                f"live cache of cluster {self.cluster.name} is not running: enter it "
                "(async with) or start its run() before ensure()"
            )
        key = Kind.of(api_version, kind)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._start(api_version, key)
        if user is None:
            stream.refs += 1
        else:
            stream.users.add(user)
        return key

    def _start(self, api_version: str, key: Kind) -> Reflector:
        assert self._group is not None
        stream = Reflector(
            self.cluster,
            api_version=api_version,
            kind=key,
            label_selector=self.label_selector,
            settings=self.settings,
            publish=self.subscribers.dispatch,
            now=self.now,
        )
        self._streams[key] = stream
        self._group.start_soon(stream.run, name=f"informer {self.cluster.name} {key}")
        return stream

    def release(self, kind: Kind, *, user: str | None = None) -> None:
        """One user of `kind` is done (the named `user`, or one anonymous one); the last one
        stops its stream and drops its objects (without events: the objects did not change,
        nobody watches them any more). Releasing a kind or a user not held does nothing."""
        stream = self._streams.get(kind)
        if stream is None:
            return
        if user is None:
            stream.refs = max(0, stream.refs - 1)
        elif user in stream.users:
            stream.users.discard(user)
        else:
            return
        if stream.refs <= 0 and not stream.users:
            stream.scope.cancel()
            del self._streams[kind]
            stream.warmed.set()  # a wait_warm() on it returns (False)

    def kinds(self) -> list[Kind]:
        return sorted(self._streams)

    def users(self, kind: Kind) -> int:
        """How many users hold `kind` (named ones once each); 0 when it is not watched."""
        stream = self._streams.get(kind)
        return 0 if stream is None else stream.refs + len(stream.users)

    def is_warm(self, kind: Kind) -> bool:
        stream = self._streams.get(kind)
        return stream is not None and stream.state.warm

    async def wait_warm(self, kind: Kind) -> bool:
        """Wait until `kind` is warm (True), or is no longer watched (False); bound it with
        ``anyio.fail_after`` or ``move_on_after``."""
        while not self.is_warm(kind):
            stream = self._streams.get(kind)
            if stream is None:
                return False
            await stream.warmed.wait()
        return True

    def state(self, kind: Kind) -> KindState | None:
        """A copy of the stream's state, or None when `kind` is not watched."""
        stream = self._streams.get(kind)
        return None if stream is None else replace(stream.state)

    def states(self) -> list[KindState]:
        return [replace(self._streams[kind].state) for kind in sorted(self._streams)]

    @property
    def requests(self) -> int:
        """LIST and WATCH requests made by the streams running now."""
        return sum(s.state.requests for s in self._streams.values())

    # -- reading --------------------------------------------------------------------------------

    def get(self, key: ObjectKey) -> Manifest | None:
        """The live object at `key` as last seen (trust it only while its kind is warm). The
        cache's own mapping, not a copy: read it, never change it."""
        stream = self._streams.get(Kind(key.group, key.kind))
        return None if stream is None else stream.store.get(key)

    def lookup(self, keys: Iterable[ObjectKey]) -> Lookup:
        """The live objects at `keys` that a warm cache holds, and the keys to read from the API.

        A key the warm cache does not hold is unknown, not absent: the object may exist without
        the selector's label (not labelled yet, or someone else's), which only a GET can tell.
        """
        found: dict[ObjectKey, Manifest] = {}
        unknown: list[ObjectKey] = []
        for key in keys:
            stream = self._streams.get(Kind(key.group, key.kind))
            obj = stream.store.get(key) if stream is not None and stream.state.warm else None
            if obj is None:
                unknown.append(key)
            else:
                found[key] = obj
        return Lookup(found=found, unknown=unknown)

    def objects(self, kind: Kind, namespace: str | None = None) -> list[Manifest]:
        """The live objects of `kind` (in `namespace` only, when given), as last seen."""
        stream = self._streams.get(kind)
        if stream is None:
            return []
        return [
            obj
            for obj in stream.store
            if namespace is None or (obj.get("metadata") or {}).get("namespace", "") == namespace
        ]

    # -- subscribers ----------------------------------------------------------------------------

    def subscribe(
        self,
        owner: str,
        *,
        keys: Iterable[ObjectKey] = (),
        tracking: str = "",
        notify: Notify | None = None,
    ) -> Subscription:
        """Hear about changes to the objects `owner` owns: those at `keys` and those whose
        tracking annotation is `tracking`. Subscribing again replaces the filter."""
        return self.subscribers.subscribe(owner, keys=keys, tracking=tracking, notify=notify)

    def unsubscribe(self, owner: str) -> None:
        self.subscribers.unsubscribe(owner)
