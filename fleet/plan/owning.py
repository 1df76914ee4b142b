"""Ownership: which app instance an object belongs to, read from the object itself. Pure.

Every object fleet manages carries the annotation ``fleet.dev/tracking-id`` whose value names the
hub, the app, the cluster (as the hub names it) and the destination namespace::

    <hub>/<app>/<cluster>/<namespace>        e.g.  fleet/web/prod-eu/web

None of the four parts may hold a ``/`` (hub ids are checked, the others are DNS names), so the
value splits back into its parts; an empty namespace is allowed (an app without a destination
namespace). The tracking id is also the app instance's field manager for server-side apply, so
two instances never share field ownership and the server reports a conflict between them.

An object is *this instance's* when its tracking id is ours. Objects applied by a fleet older
than tracking ids carry only the ``fleet.dev/app`` label: one that is also in our inventory is
taken as ours (and gets our tracking id on the next apply); a label alone never is.

A shared object (the destination Namespace of ``createNamespace``) names each owner in an
annotation of its own, ``owners.fleet.dev/<16 hex of sha256(tracking id)>: <tracking id>``, so
that several instances apply it without fighting over one value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from fleet.plan.model import APP_LABEL, OWNERS_PREFIX, TRACKING_ANNOTATION
from fleet.types import Manifest

__all__ = [
    "NOT_FLEET",
    "Tracking",
    "describe_owner",
    "field_manager",
    "is_ours",
    "owner_key",
    "owners_of",
    "tracking_id",
    "tracking_of",
]

NOT_FLEET = "not managed by fleet"
_MAX_MANAGER = 128  # the apiserver's limit on a field manager's name


def tracking_id(*, app: str, hub: str = "fleet", cluster: str = "", namespace: str = "") -> str:
    """The tracking id of one app instance; raises ValueError on a part holding ``/``."""
    for part, value in (("hub", hub), ("app", app), ("cluster", cluster), ("namespace", namespace)):
        if "/" in value:
            raise ValueError(f"tracking id: the {part} {value!r} must not contain '/'")
    if not hub or not app:
        raise ValueError("tracking id: the hub id and the app name are required")
    return f"{hub}/{app}/{cluster}/{namespace}"


@dataclass(frozen=True)
class Tracking:
    """A tracking id split into its parts."""

    hub: str
    app: str
    cluster: str
    namespace: str

    @classmethod
    def parse(cls, value: str) -> Tracking | None:
        """The parts of `value`, or None when it is not a tracking id."""
        parts = value.split("/")
        if len(parts) != 4 or not parts[0] or not parts[1]:
            return None
        return cls(*parts)

    def describe(self) -> str:
        where = f"cluster {self.cluster or '-'}, namespace {self.namespace or '-'}"
        return f"fleet app {self.app} (hub {self.hub}, {where})"


def describe_owner(value: str | None) -> str:
    """An owner as a person reads it: another app instance, or "not managed by fleet"."""
    if not value:
        return NOT_FLEET
    parsed = Tracking.parse(value)
    return parsed.describe() if parsed else f"an unreadable tracking id {value!r}"


def field_manager(tracking: str) -> str:
    """The field manager of the app instance with this tracking id (at most 128 characters)."""
    if len(tracking) <= _MAX_MANAGER:
        return tracking
    digest = hashlib.sha256(tracking.encode()).hexdigest()[:16]
    return f"{tracking[: _MAX_MANAGER - 17]}-{digest}"


def owner_key(tracking: str) -> str:
    """The annotation that names this instance as one owner of a shared object."""
    return OWNERS_PREFIX + hashlib.sha256(tracking.encode()).hexdigest()[:16]


def _annotations(live: Manifest) -> Mapping[str, object]:
    return (live.get("metadata") or {}).get("annotations") or {}


def tracking_of(live: Manifest) -> str | None:
    """The tracking id a live object carries, if any."""
    value = _annotations(live).get(TRACKING_ANNOTATION)
    return str(value) if value else None


def owners_of(live: Manifest) -> dict[str, str]:
    """A shared object's owners: owner annotation -> tracking id."""
    return {
        str(k): str(v) for k, v in _annotations(live).items() if str(k).startswith(OWNERS_PREFIX)
    }


def is_ours(live: Manifest, *, tracking: str, app: str, recorded: bool) -> bool:
    """Whether `live` is this instance's: our tracking id, or (fleet before tracking ids) no
    tracking id at all, our app label, and an entry in our inventory (`recorded`)."""
    found = tracking_of(live)
    if found is not None:
        return found == tracking
    labels = (live.get("metadata") or {}).get("labels") or {}
    return recorded and labels.get(APP_LABEL) == app
