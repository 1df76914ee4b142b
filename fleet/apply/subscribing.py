"""Who hears about which live object: subscriptions by owner, with coalesced, non-blocking delivery.

A target (one app instance on one cluster) subscribes once with its owner id and what it owns:
explicit object keys, the value of the tracking annotation on its objects, or both. An event is
offered only to the subscriptions that own the object (before or after the change: an object whose
tracking value moved is news to its old owner and its new one), found through two indexes, by key
and by tracking value; a target never hears about another target's objects.

Delivery never blocks the watch: :meth:`Subscription.offer` merges the event into the
subscription's pending map (one entry per key, first ``old`` and last ``new``, see
:func:`fleet.apply.livestore.merge`), so its memory is bounded by the objects the owner has, not by
the rate of events. When the map goes from empty to non-empty the owner is woken once: its
``notify(owner_id)`` callback runs (it must not block or raise: put the id on a work queue) and
:meth:`Subscription.wait` returns. A burst of events on one target is one wake-up; the target
then calls :meth:`Subscription.take` for the merged events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import anyio

from fleet.apply.livestore import CacheEvent, merge
from fleet.types import Manifest, ObjectKey

__all__ = ["Notify", "Subscribers", "Subscription"]

log = logging.getLogger(__name__)

Notify = Callable[[str], None]
"""Called with the owner id when a subscription gets its first pending event; must not block."""


@dataclass(eq=False)
class Subscription:
    """What one owner wants to hear, and what it has not taken yet."""

    owner: str
    keys: frozenset[ObjectKey] = frozenset()
    tracking: str = ""
    notify: Notify | None = None
    _pending: dict[ObjectKey, CacheEvent] = field(default_factory=dict)
    _wake: anyio.Event = field(default_factory=anyio.Event)
    wakeups: int = 0
    """How many times the owner was woken (a burst counts once)."""

    def offer(self, event: CacheEvent) -> None:
        """Merge `event` into what is pending; wake the owner if nothing was."""
        was_empty = not self._pending
        held = self._pending.pop(event.key, None)
        merged = event if held is None else merge(held, event)
        if merged is not None:
            self._pending[event.key] = merged
        if was_empty and self._pending:
            self.wakeups += 1
            self._wake.set()
            if self.notify is not None:
                try:
                    self.notify(self.owner)
                except Exception as exc:  # a subscriber's bug must not stop the watch
                    log.exception(
                        "event=informer_notify_failed owner=%s error=%s",
                        self.owner,
                        type(exc).__name__,
                    )

    @property
    def pending(self) -> int:
        return len(self._pending)

    def take(self) -> list[CacheEvent]:
        """Every pending event (one per key, in arrival order of their first change), cleared."""
        events = list(self._pending.values())
        self._pending = {}
        self._wake = anyio.Event()
        return events

    async def wait(self) -> list[CacheEvent]:
        """Wait until an event is pending, then :meth:`take` them all (one consumer at a time)."""
        if not self._pending:
            await self._wake.wait()
        return self.take()


class Subscribers:
    """Every subscription of one cluster's live cache, indexed by key and by tracking value."""

    def __init__(self, *, tracking_annotation: str = "") -> None:
        self.tracking_annotation = tracking_annotation
        self._by_owner: dict[str, Subscription] = {}
        self._by_key: dict[ObjectKey, set[str]] = {}
        self._by_tracking: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._by_owner)

    def subscribe(
        self,
        owner: str,
        *,
        keys: Iterable[ObjectKey] = (),
        tracking: str = "",
        notify: Notify | None = None,
    ) -> Subscription:
        """Subscribe `owner` (again: its filter is replaced, what is pending is kept)."""
        if tracking and not self.tracking_annotation:
            raise ValueError(
                f"subscription of {owner}: a tracking value needs the live cache's "
                "tracking_annotation to be set"
            )
        previous = self._by_owner.get(owner)
        if previous is not None:
            self._unindex(previous)
        subscription = Subscription(owner=owner, keys=frozenset(keys), tracking=tracking)
        if previous is not None:
            subscription._pending, subscription._wake = previous._pending, previous._wake
            subscription.wakeups = previous.wakeups
        subscription.notify = notify
        self._by_owner[owner] = subscription
        for key in subscription.keys:
            self._by_key.setdefault(key, set()).add(owner)
        if tracking:
            self._by_tracking.setdefault(tracking, set()).add(owner)
        return subscription

    def unsubscribe(self, owner: str) -> None:
        subscription = self._by_owner.pop(owner, None)
        if subscription is not None:
            self._unindex(subscription)

    def _unindex(self, subscription: Subscription) -> None:
        for key in subscription.keys:
            owners = self._by_key.get(key)
            if owners is not None:
                owners.discard(subscription.owner)
                if not owners:
                    del self._by_key[key]
        if subscription.tracking:
            owners = self._by_tracking.get(subscription.tracking)
            if owners is not None:
                owners.discard(subscription.owner)
                if not owners:
                    del self._by_tracking[subscription.tracking]

    def _tracking_of(self, obj: Manifest | None) -> str:
        if obj is None or not self.tracking_annotation:
            return ""
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        return str(annotations.get(self.tracking_annotation, ""))

    def owners_of(self, event: CacheEvent) -> set[str]:
        """The owners `event` concerns."""
        owners = set(self._by_key.get(event.key, ()))
        for value in {self._tracking_of(event.old), self._tracking_of(event.new)} - {""}:
            owners |= self._by_tracking.get(value, set())
        return owners

    def dispatch(self, event: CacheEvent) -> int:
        """Offer `event` to every owner it concerns; how many there were."""
        owners = self.owners_of(event)
        for owner in sorted(owners):  # a stable order: runs are reproducible
            self._by_owner[owner].offer(event)
        return len(owners)
