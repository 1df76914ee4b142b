"""The objects of one watched kind as last seen, and the change events that move them (pure).

A :class:`KindStore` is the informer's local copy of one (cluster, kind): objects by
:class:`~fleet.types.ObjectKey`, each with its ``resourceVersion``. Two things change it, and
each returns the :class:`CacheEvent` (or events) it caused, so the caller can fan them out:

- :meth:`KindStore.replace` with a whole LIST: the diff against what was held becomes ADDED,
  MODIFIED (resourceVersion differs) and DELETED events, marked ``relisted``. This is how changes
  made while a watch was down (an outage, a 410 Gone) are still delivered, as client-go's
  DeltaFIFO ``Replace`` synthesises deletions it did not see.
- :meth:`KindStore.observe` with one watch event: an ADDED or MODIFIED of an object already held at
  the same resourceVersion is a repeat and yields nothing.

:func:`merge` folds two events on one key into one (first ``old``, last ``new``), the coalescing
a subscriber's pending queue relies on. No I/O, no clock: unit-tested on plain mappings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from fleet.types import Manifest, ObjectKey

__all__ = ["ADDED", "DELETED", "MODIFIED", "CacheEvent", "EventType", "KindStore", "merge"]

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
ADDED: EventType = "ADDED"
MODIFIED: EventType = "MODIFIED"
DELETED: EventType = "DELETED"


@dataclass(frozen=True)
class CacheEvent:
    """One change of one live object: `old` is what the cache held (None when it was new), `new`
    what it holds now (None once deleted); `resource_version` is the cluster's version of the
    change; `relisted` marks an event inferred from a LIST diff rather than seen on the watch."""

    type: EventType
    key: ObjectKey
    old: Manifest | None
    new: Manifest | None
    resource_version: str
    relisted: bool = False

    @property
    def obj(self) -> Manifest:
        """The object as it is now, or as it was last seen when it is gone."""
        found = self.new if self.new is not None else self.old
        assert found is not None, "a CacheEvent holds at least one object"
        return found


def resource_version(obj: Manifest) -> str:
    """``metadata.resourceVersion`` of `obj`, or ``""``."""
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def merge(first: CacheEvent, then: CacheEvent) -> CacheEvent | None:
    """One event standing for `first` followed by `then` on the same key; None when they cancel
    out (an object added and deleted again before anyone looked)."""
    old, new = first.old, then.new
    if old is None and new is None:
        return None
    kind: EventType = ADDED if old is None else DELETED if new is None else MODIFIED
    return CacheEvent(
        type=kind,
        key=then.key,
        old=old,
        new=new,
        resource_version=then.resource_version,
        relisted=first.relisted and then.relisted,
    )


class KindStore:
    """Live objects of one kind, by key. `kind` and `group` name the kind; every object held gets
    its ``apiVersion`` and ``kind`` filled in (a LIST's items carry neither)."""

    def __init__(self, *, group: str, kind: str, api_version: str) -> None:
        self.group = group
        self.kind = kind
        self.api_version = api_version
        self._objects: dict[ObjectKey, Manifest] = {}

    def __len__(self) -> int:
        return len(self._objects)

    def __iter__(self) -> Iterator[Manifest]:
        return iter(list(self._objects.values()))

    def get(self, key: ObjectKey) -> Manifest | None:
        return self._objects.get(key)

    def key_of(self, obj: Manifest) -> ObjectKey:
        metadata = obj.get("metadata") or {}
        return ObjectKey(
            group=self.group,
            kind=self.kind,
            namespace=str(metadata.get("namespace") or ""),
            name=str(metadata.get("name", "")),
        )

    def _typed(self, obj: Manifest) -> Manifest:
        if obj.get("apiVersion") and obj.get("kind"):
            return obj
        return {"apiVersion": self.api_version, "kind": self.kind, **obj}

    def replace(self, items: Iterable[Manifest], *, version: str) -> list[CacheEvent]:
        """Hold exactly `items` (a LIST at `version`); the differences as relisted events."""
        fresh = {self.key_of(item): self._typed(item) for item in items}
        events: list[CacheEvent] = []
        for key, obj in fresh.items():
            held = self._objects.get(key)
            if held is None:
                events.append(CacheEvent(ADDED, key, None, obj, resource_version(obj), True))
            elif resource_version(held) != resource_version(obj):
                events.append(CacheEvent(MODIFIED, key, held, obj, resource_version(obj), True))
        for key, held in self._objects.items():
            if key not in fresh:
                events.append(CacheEvent(DELETED, key, held, None, version, True))
        self._objects = fresh
        return events

    def observe(self, kind: str, obj: Manifest) -> CacheEvent | None:
        """Apply one watch event (`kind` is ADDED, MODIFIED or DELETED); the change, if any."""
        obj = self._typed(obj)
        key = self.key_of(obj)
        held = self._objects.get(key)
        version = resource_version(obj)
        if kind == DELETED:
            if held is None:
                return None
            del self._objects[key]
            return CacheEvent(DELETED, key, held, None, version)
        if kind not in (ADDED, MODIFIED):
            raise ValueError(
                f"watch event type {kind!r} for {key}: expected ADDED/MODIFIED/DELETED"
            )
        if held is not None and resource_version(held) == version:
            return None
        self._objects[key] = obj
        return CacheEvent(ADDED if held is None else MODIFIED, key, held, obj, version)

    def clear(self) -> None:
        self._objects = {}
