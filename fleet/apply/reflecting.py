"""The list-then-watch loop of one (cluster, kind), supervised: the reflector of a live cache.

A :class:`Reflector` keeps one :class:`~fleet.apply.livestore.KindStore` equal to the cluster's
objects of one kind that match a label selector, and hands every change to a `publish` callback
(which must not block). LIST, then WATCH from the list's resourceVersion. Then:

- the server ends the watch (``timeoutSeconds``): watch again from the last version seen, no LIST;
- the watch falls silent (no event and no bookmark for ``silence_seconds``: a hung server): the
  kind goes cold and watches again from the last version, no LIST (nothing was missed);
- 410 Gone: LIST again at once; the diff is published as ``relisted`` events;
- any other failure (an outage, a refusal, a kind not served yet because its CRD is still to
  come: discovery is asked again each time): the kind goes cold, the error and since when are
  recorded in its :class:`KindState`, and it is retried after an exponential backoff with
  jitter, relisting when the cluster answers again.

Nothing escapes :meth:`Reflector.run` but cancellation.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import anyio

from fleet.apply import discovery, watching
from fleet.apply.kube import ApiError, Cluster
from fleet.apply.livestore import CacheEvent, KindStore
from fleet.types import Manifest, split_api_version

__all__ = ["InformerSettings", "Kind", "KindNotServed", "KindState", "Reflector"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InformerSettings:
    """How long a watch request lasts, and how a failing stream backs off."""

    watch_seconds: int = 300
    silence_seconds: float = 180.0
    """A watch that sends nothing for this long (no event, no bookmark) is taken for hung: the
    kind goes cold and watches again. Measured on a quiet watch of kube-apiserver 1.36: the first
    bookmark after ~120 s, then one a minute, and one 2 s before the watch's deadline."""
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 0.1
    """Each delay is stretched by up to this share, so that many streams do not retry in step."""


@dataclass(frozen=True, order=True)
class Kind:
    """A kind as the cache keys it: API group and kind (the version is not part of identity)."""

    group: str
    kind: str

    @classmethod
    def of(cls, api_version: str, kind: str) -> Kind:
        return cls(group=split_api_version(api_version)[0], kind=kind)

    def __str__(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


class KindNotServed(ApiError):
    """The cluster does not serve the kind (yet): its CRD is missing or not established."""

    def __init__(self, cluster: str, api_version: str, kind: str) -> None:
        super().__init__(
            404,
            "NotFound",
            f"cluster {cluster} does not serve {api_version} {kind}: install its "
            "CustomResourceDefinition; the watch retries until it is served",
        )


@dataclass
class KindState:
    """What one (cluster, kind) stream is doing, for status pages and tests."""

    kind: Kind
    api_version: str
    warm: bool = False
    error: str = ""
    error_since: float | None = None
    """Wall-clock time of the first failure of the current run of failures."""
    failures: int = 0
    lists: int = 0
    watches: int = 0
    events: int = 0
    resource_version: str = ""

    @property
    def requests(self) -> int:
        """LIST and WATCH requests made so far (discovery not counted)."""
        return self.lists + self.watches


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


class Reflector:
    """The list-then-watch loop of one kind, supervised."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        api_version: str,
        kind: Kind,
        label_selector: str,
        settings: InformerSettings,
        publish: Callable[[CacheEvent], object],
        now: Callable[[], float],
    ) -> None:
        self.cluster = cluster
        self.label_selector = label_selector
        self.settings = settings
        self.publish = publish
        self.now = now
        self.kind = kind
        self.api_version = api_version
        self.store = KindStore(group=kind.group, kind=kind.kind, api_version=api_version)
        self.state = KindState(kind=kind, api_version=api_version)
        self.scope = anyio.CancelScope()
        self.refs = 0  # anonymous users (each ensure() without a name counts one)
        self.users: set[str] = set()  # named users (ensure() by one name counts once)
        self.warmed = anyio.Event()
        self._delay = settings.backoff_initial
        self._expired_in_row = 0

    async def run(self) -> None:
        with self.scope:
            await self._supervise()

    async def _supervise(self) -> None:
        settings = self.settings
        while True:
            try:
                await self._list_and_watch()
            except watching.Expired as exc:
                self._expired_in_row += 1
                self._cold()
                log.info(
                    "event=informer_expired cluster=%s kind=%s error=%s",
                    self.cluster.name,
                    self.kind,
                    _quoted(str(exc)),
                )
                if self._expired_in_row == 1:
                    continue  # relist at once; a server that keeps saying so gets backed off
                self._fail(exc)
            except Exception as exc:
                self._fail(exc)
            stretch = 1 + random.uniform(0, settings.jitter)  # noqa: S311 - jitter, not crypto
            await anyio.sleep(self._delay * stretch)
            self._delay = min(self._delay * 2, settings.backoff_max)

    async def _list_and_watch(self) -> None:
        cluster, settings = self.cluster, self.settings
        resource = await discovery.resolve(cluster, self.api_version, self.kind.kind)
        if resource is None:
            discovery.forget(cluster, self.kind.group)  # look again next time: a CRD may come
            raise KindNotServed(cluster.name, self.api_version, self.kind.kind)
        self.state.lists += 1
        try:
            listing = await watching.list_objects(
                cluster, resource, label_selector=self.label_selector
            )
        except ApiError as exc:
            if exc.status == 404:
                discovery.forget(cluster, self.kind.group)  # the CRD went away
            raise
        self._publish(self.store.replace(listing.items, version=listing.version))
        self.state.resource_version = listing.version
        while True:  # each watch resumes from the last version seen (an event or a bookmark)
            self.state.watches += 1
            try:
                self.state.resource_version = await watching.watch_once(
                    cluster,
                    resource,
                    version=self.state.resource_version,
                    label_selector=self.label_selector,
                    seconds=settings.watch_seconds,
                    on_open=self._opened,
                    on_event=self._observe,
                    silence=settings.silence_seconds,
                )
            except watching.Silent as exc:
                self._fail(exc)  # cold until a watch opens again; no LIST: nothing was missed

    def _opened(self) -> None:
        if not self.state.warm:
            log.info(
                "event=informer_warm cluster=%s kind=%s objects=%d",
                self.cluster.name,
                self.kind,
                len(self.store),
            )
        self.state.warm = True
        self.state.error, self.state.error_since, self.state.failures = "", None, 0
        self._delay = self.settings.backoff_initial
        self._expired_in_row = 0
        self.warmed.set()

    def _observe(self, kind: str, obj: Manifest) -> None:
        event = self.store.observe(kind, obj)
        if event is not None:
            self.state.resource_version = event.resource_version or self.state.resource_version
            self._publish([event])

    def _publish(self, events: Iterable[CacheEvent]) -> None:
        for event in events:
            self.state.events += 1
            self.publish(event)

    def _cold(self) -> None:
        self.state.warm = False
        if self.warmed.is_set():
            self.warmed = anyio.Event()

    def _fail(self, exc: Exception) -> None:
        self._cold()
        text = str(exc) if isinstance(exc, ApiError) else f"{type(exc).__name__}: {exc}"
        repeated = text == self.state.error
        self.state.failures += 1
        if self.state.error_since is None:
            self.state.error_since = self.now()
        self.state.error = text
        log.log(
            logging.DEBUG if repeated else logging.WARNING,
            "event=informer_error cluster=%s kind=%s failures=%d retry_in=%.1f error=%s",
            self.cluster.name,
            self.kind,
            self.state.failures,
            self._delay,
            _quoted(text),
        )
