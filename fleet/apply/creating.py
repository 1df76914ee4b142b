"""Writes that are not server-side apply: create (POST), replace (PUT), delete and wait gone.

Hooks are created, never applied: a ``generateName`` object has no name to apply to, and a hook
is a new run each time. Objects marked ``Replace=true`` are replaced with a PUT of the whole
object at the live resourceVersion (created with a POST when absent), and with ``Force=true``
deleted and created again, as ``kubectl replace --force`` does. Only the object planned is ever
replaced or deleted: one planned as a creation is only POSTed (an object of its name that
appeared since, "already exists", is someone else's: a ``conflict``, as a server-side apply
creation reports one), and one planned over a live object must still have that object's uid.
Every write names the instance's field manager. Each call answers one :class:`Change` (and for a
creation the object the server returned, with its generated name); an API error is a ``failed``
change naming the object and the server's message, never an exception. Waits are bounded by the
caller's timeout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio

from fleet.apply import discovery
from fleet.apply.changes import Change, Outcome, object_name
from fleet.apply.kube import ApiError, Cluster
from fleet.types import Manifest, ObjectKey

__all__ = [
    "Created",
    "create_object",
    "delete_and_wait",
    "list_labelled",
    "read_object",
    "replace_object",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Created:
    """The outcome of a creation: its change, and the live object when there is one."""

    change: Change
    live: Manifest | None = None

    @property
    def key(self) -> ObjectKey:
        return ObjectKey.of(self.live) if self.live is not None else self.change.key


def _uid(obj: Manifest) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


async def _post(
    cluster: Cluster,
    resource: discovery.Resource,
    *,
    key: ObjectKey,
    manifest: Manifest,
    manager: str,
) -> Manifest:
    return await cluster.request(
        "POST",
        resource.collection(key.namespace),
        query=[("fieldManager", manager)],
        body=manifest,
    )


async def create_object(
    cluster: Cluster, *, api_version: str, key: ObjectKey, manifest: Manifest, manager: str
) -> Created:
    """POST `manifest`; the server names a ``generateName`` object."""
    try:
        resource = await discovery.resolve(cluster, api_version, key.kind)
        if resource is None:
            return Created(Change(key, Outcome.FAILED, f"{api_version} {key.kind} is not served"))
        live = await _post(cluster, resource, key=key, manifest=manifest, manager=manager)
    except ApiError as exc:
        log.warning(
            "event=create_failed cluster=%s kind=%s status=%d", cluster.name, key.kind, exc.status
        )
        reason = str(exc)
        if exc.status == 409:
            reason = (
                f"already exists: {exc.message}; give it hook-delete-policy BeforeHookCreation "
                "or a generateName"
            )
        return Created(Change(key, Outcome.FAILED, reason))
    return Created(Change(ObjectKey.of(live), Outcome.CREATED, uid=_uid(live)), live)


async def replace_object(
    cluster: Cluster,
    *,
    api_version: str,
    key: ObjectKey,
    manifest: Manifest,
    manager: str,
    force: bool,
    within: float,
    create: bool = False,
    uid: str = "",
) -> Change:
    """Write a ``Replace=true`` object (see the module).

    `create` (the plan found it absent): POST only; an object that appeared since is someone
    else's and is never overwritten nor deleted: a ``conflict`` naming it. Otherwise PUT over the
    live object (POST when it went away), `force` deleting and creating it instead; `uid` (the
    live object's when planned) guards both: an object of that name with another uid is a
    ``conflict`` too.
    """
    try:
        resource = await discovery.resolve(cluster, api_version, key.kind)
        if resource is None:
            return Change(key, Outcome.FAILED, f"{api_version} {key.kind} is not served")
        if create:
            return await _create_only(
                cluster, resource, key=key, manifest=manifest, manager=manager
            )
        return await _replace(
            cluster,
            resource,
            key=key,
            manifest=manifest,
            manager=manager,
            force=force,
            within=within,
            uid=uid,
        )
    except ApiError as exc:
        log.warning(
            "event=replace_failed cluster=%s kind=%s status=%d", cluster.name, key.kind, exc.status
        )
        return Change(key, Outcome.FAILED, f"replace (Replace=true) refused: {exc}")


async def _create_only(
    cluster: Cluster,
    resource: discovery.Resource,
    *,
    key: ObjectKey,
    manifest: Manifest,
    manager: str,
) -> Change:
    try:
        made = await _post(cluster, resource, key=key, manifest=manifest, manager=manager)
    except ApiError as exc:
        if exc.status != 409:
            raise
        return _conflict(cluster, key, f"was created by someone else ({exc.message})")
    return Change(key, Outcome.CREATED, uid=_uid(made))


async def _replace(
    cluster: Cluster,
    resource: discovery.Resource,
    *,
    key: ObjectKey,
    manifest: Manifest,
    manager: str,
    force: bool,
    within: float,
    uid: str,
) -> Change:
    path = discovery.object_path(resource, key)
    try:
        live: Manifest | None = await cluster.request("GET", path)
    except ApiError as exc:
        if exc.status != 404:
            raise
        live = None
    if live is not None and uid and _uid(live) != uid:
        return _conflict(cluster, key, "was deleted and created again by someone else")
    if live is not None and force:
        gone = await delete_and_wait(
            cluster,
            api_version=str(manifest.get("apiVersion", "")),
            key=key,
            uid=_uid(live),
            within=within,
        )
        if gone.outcome is Outcome.FAILED:
            return gone
        live = None
    if live is None:
        made = await _post(cluster, resource, key=key, manifest=manifest, manager=manager)
        return Change(key, Outcome.CREATED, uid=_uid(made))
    metadata = {
        **(manifest.get("metadata") or {}),
        "resourceVersion": (live.get("metadata") or {}).get("resourceVersion"),
    }
    answer = await cluster.request(
        "PUT", path, query=[("fieldManager", manager)], body={**manifest, "metadata": metadata}
    )
    return Change(key, Outcome.CONFIGURED, "replaced (Replace=true)", uid=_uid(answer))


def _conflict(cluster: Cluster, key: ObjectKey, what: str) -> Change:
    """A ``Replace=true`` object that is no longer the one planned: never overwritten."""
    log.warning("event=replace_conflict cluster=%s kind=%s", cluster.name, key.kind)
    return Change(
        key,
        Outcome.CONFLICT,
        f"{object_name(key)} {what} since the sync planned; it is not replaced nor "
        "deleted: the next sync reads it again and says whose it is",
    )


async def delete_and_wait(
    cluster: Cluster,
    *,
    api_version: str,
    key: ObjectKey,
    uid: str = "",
    within: float,
    poll: float = 0.5,
) -> Change:
    """Delete the object (its dependents in the background) and wait until it is gone."""
    body: Manifest = {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "propagationPolicy": "Background",
    }
    if uid:
        body["preconditions"] = {"uid": uid}
    try:
        resource = await discovery.resolve(cluster, api_version, key.kind)
        if resource is None:
            return Change(key, Outcome.FAILED, f"{api_version} {key.kind} is not served")
        path = discovery.object_path(resource, key)
        await cluster.request("DELETE", path, body=body)
        with anyio.fail_after(within):
            while True:
                try:
                    found = await cluster.request("GET", path)
                except ApiError as exc:
                    if exc.status == 404:
                        break
                    raise
                if uid and _uid(found) != uid:
                    break  # a new object of that name: the old one is gone
                await anyio.sleep(poll)
    except ApiError as exc:
        if exc.status == 404:
            return Change(key, Outcome.PRUNED, "already gone")
        return Change(key, Outcome.FAILED, f"could not delete: {exc}")
    except TimeoutError:
        return Change(key, Outcome.FAILED, f"still present {within:.0f}s after its delete")
    return Change(key, Outcome.PRUNED)


async def read_object(cluster: Cluster, *, api_version: str, key: ObjectKey) -> Manifest | None:
    """The live object (None: absent, or its kind not served); raises ApiError on other errors."""
    resource = await discovery.resolve(cluster, api_version, key.kind)
    if resource is None:
        return None
    try:
        return await cluster.request("GET", discovery.object_path(resource, key))
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


async def list_labelled(
    cluster: Cluster, *, api_version: str, kind: str, namespace: str, selector: str
) -> list[Manifest]:
    """The objects of `kind` in `namespace` carrying label `selector` (none when not served)."""
    resource = await discovery.resolve(cluster, api_version, kind)
    if resource is None:
        return []
    listing = await cluster.request(
        "GET", resource.collection(namespace), query=[("labelSelector", selector)]
    )
    return [{"apiVersion": api_version, "kind": kind, **i} for i in listing.get("items", [])]
