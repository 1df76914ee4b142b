"""Server-side apply, prune and live reads of one app's objects on one cluster.

Every object is applied with one PATCH (``application/apply-patch+yaml``, field manager
``fleet``, force configurable), concurrently within a call and under the cluster's limit. A
target marked ``verify`` is dry-run first and written only if the dry-run result differs from the
live object, so a value the server normalises never causes a write on every reconcile. A CRD is
waited on until Established, and its group's discovery refreshed, before the call returns, so the
next stage can apply its custom resources. Each object yields one :class:`Change`; a failure is
recorded with its reason and never stops the others. Deletes carry the live object's uid as a
precondition: an object recreated meanwhile is not deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import anyio

from fleet.apply import discovery
from fleet.apply.changes import Change, Outcome
from fleet.apply.kube import APPLY_PATCH, ApiError, Cluster
from fleet.types import Manifest, ObjectKey

__all__ = [
    "ApplyOptions",
    "Target",
    "apply_objects",
    "delete_objects",
    "dry_run",
    "read_live",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")


class Target(Protocol):
    """What apply needs of one object (the plan's step has these attributes)."""

    @property
    def key(self) -> ObjectKey: ...
    @property
    def api_version(self) -> str: ...
    @property
    def manifest(self) -> Manifest: ...
    @property
    def verify(self) -> bool: ...


@dataclass(frozen=True)
class ApplyOptions:
    """How fleet writes: its field manager, whether it forces conflicts, how long CRDs may take."""

    field_manager: str = "fleet"
    force: bool = True
    crd_timeout: float = 60.0
    poll_interval: float = 0.2


async def _each(items: Sequence[_T], work: Callable[[_T], Awaitable[_R]]) -> list[_R]:
    """`work` on every item concurrently; results in the order of `items`."""
    results: dict[int, _R] = {}

    async def run(index: int, item: _T) -> None:
        results[index] = await work(item)

    async with anyio.create_task_group() as tg:
        for index, item in enumerate(items):
            tg.start_soon(run, index, item)
    return [results[i] for i in range(len(items))]


async def _path(cluster: Cluster, api_version: str, key: ObjectKey) -> str | None:
    resource = await discovery.resolve(cluster, api_version, key.kind)
    return None if resource is None else discovery.object_path(resource, key)


def _apply_query(options: ApplyOptions, *, dry_run: bool = False) -> list[tuple[str, str]]:
    query = [("fieldManager", options.field_manager), ("force", str(options.force).lower())]
    return [*query, ("dryRun", "All")] if dry_run else query


def _comparable(obj: Manifest) -> Manifest:
    metadata = {
        k: v
        for k, v in (obj.get("metadata") or {}).items()
        if k not in ("managedFields", "resourceVersion")
    }
    return {**obj, "metadata": metadata}


async def dry_run(cluster: Cluster, target: Target, *, options: ApplyOptions) -> Manifest:
    """The object as a server-side apply of `target` would leave it; raises ApiError."""
    path = await _path(cluster, target.api_version, target.key)
    if path is None:
        raise ApiError(404, "NotFound", f"{target.api_version} {target.key.kind} is not served")
    return await cluster.request(
        "PATCH",
        path,
        query=_apply_query(options, dry_run=True),
        body=target.manifest,
        content_type=APPLY_PATCH,
    )


async def _apply_one(cluster: Cluster, target: Target, options: ApplyOptions) -> Change:
    key = target.key
    try:
        path = await _path(cluster, target.api_version, key)
        if path is None:
            return Change(key, Outcome.FAILED, f"{target.api_version} {key.kind} is not served")
        if target.verify:
            simulated = await dry_run(cluster, target, options=options)
            live = await cluster.request("GET", path)
            if _comparable(simulated) == _comparable(live):
                return Change(key, Outcome.UNCHANGED, "dry-run matches the live object")
        status, applied = await cluster.exchange(
            "PATCH",
            path,
            query=_apply_query(options),
            body=target.manifest,
            content_type=APPLY_PATCH,
        )
        if key.group == discovery.CRD_GROUP and key.kind == "CustomResourceDefinition":
            await _wait_established(cluster, path, applied, options)
    except ApiError as exc:
        reason = str(exc)
        if exc.status == 409:
            reason = f"conflict with another field manager (force is off): {exc.message}"
        log.warning(
            "event=apply_failed cluster=%s object=%r reason=%r", cluster.name, str(key), reason
        )
        return Change(key, Outcome.FAILED, reason)
    except TimeoutError:
        return Change(key, Outcome.FAILED, f"not Established within {options.crd_timeout}s")
    outcome = Outcome.CREATED if status == 201 else Outcome.CONFIGURED
    return Change(key, outcome)


def _established(crd: Manifest) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


async def _wait_established(
    cluster: Cluster, path: str, crd: Manifest, options: ApplyOptions
) -> None:
    with anyio.fail_after(options.crd_timeout):
        while not _established(crd):
            await anyio.sleep(options.poll_interval)
            crd = await cluster.request("GET", path)
    discovery.forget(cluster, str((crd.get("spec") or {}).get("group", "")))


async def apply_objects(
    cluster: Cluster, targets: Sequence[Target], *, options: ApplyOptions
) -> list[Change]:
    """Server-side apply every target, concurrently; one :class:`Change` each, in order."""
    return await _each(targets, lambda t: _apply_one(cluster, t, options))


async def _delete_one(cluster: Cluster, target: Target) -> Change:
    key = target.key
    uid = (target.manifest.get("metadata") or {}).get("uid")
    body: Manifest = {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "propagationPolicy": "Background",
    }
    if uid:
        body["preconditions"] = {"uid": uid}
    try:
        path = await _path(cluster, target.api_version, key)
        if path is None:
            return Change(key, Outcome.FAILED, f"{target.api_version} {key.kind} is not served")
        await cluster.request("DELETE", path, body=body)
    except ApiError as exc:
        if exc.status == 404:
            return Change(key, Outcome.PRUNED, "already gone")
        reason = str(exc)
        if exc.status == 409:
            reason = f"replaced by another object since it was read: {exc.message}"
        log.warning(
            "event=prune_failed cluster=%s object=%r reason=%r", cluster.name, str(key), reason
        )
        return Change(key, Outcome.FAILED, reason)
    return Change(key, Outcome.PRUNED)


async def delete_objects(cluster: Cluster, targets: Sequence[Target]) -> list[Change]:
    """Delete every target (its manifest: the live object), concurrently; one Change each."""
    return await _each(targets, lambda t: _delete_one(cluster, t))


async def read_live(
    cluster: Cluster, wanted: Mapping[ObjectKey, str], *, selector: str = ""
) -> dict[ObjectKey, Manifest]:
    """The live object of each key (mapped to its apiVersion) that exists.

    With a label `selector` (an app's label), keys of one kind in one namespace are read with one
    LIST of the objects carrying that label, and only the keys it did not return (new objects,
    or objects fleet has not labelled yet) with a GET each: an app's steady state costs one
    request per (kind, namespace), not one per object. A kind the cluster does not serve has no
    objects. Any error but 404 raises :class:`~fleet.apply.kube.ApiError`: a plan made on a
    partial view could prune wrongly.
    """
    found: dict[ObjectKey, Manifest] = {}
    pending = dict(wanted)
    if selector:
        groups: dict[tuple[str, str, str], list[ObjectKey]] = {}
        for key, api_version in wanted.items():
            groups.setdefault((api_version, key.kind, key.namespace), []).append(key)
        listed = await _each(
            [(group, keys) for group, keys in groups.items() if len(keys) > 1],
            lambda item: _list(cluster, *item[0], selector=selector),
        )
        for objects in listed:
            for key, obj in objects.items():
                if key in pending:
                    found[key] = obj
                    del pending[key]
    keys = sorted(pending)

    async def read(key: ObjectKey) -> Manifest | ApiError | None:
        try:
            path = await _path(cluster, pending[key], key)
            return None if path is None else await cluster.request("GET", path)
        except ApiError as exc:
            return None if exc.status == 404 else exc

    results = await _each(keys, read)
    for result in results:
        if isinstance(result, ApiError):
            raise result
    found.update({k: obj for k, obj in zip(keys, results, strict=True) if isinstance(obj, dict)})
    return found


async def _list(
    cluster: Cluster, api_version: str, kind: str, namespace: str, *, selector: str
) -> dict[ObjectKey, Manifest]:
    """The objects of `kind` in `namespace` that carry `selector`, by key."""
    resource = await discovery.resolve(cluster, api_version, kind)
    if resource is None:
        return {}
    try:
        listing = await cluster.request(
            "GET", resource.collection(namespace), query=[("labelSelector", selector)]
        )
    except ApiError as exc:
        if exc.status == 404:
            return {}
        raise
    found: dict[ObjectKey, Manifest] = {}
    for item in listing.get("items", []):
        obj = {"apiVersion": api_version, "kind": kind, **item}  # a list's items omit both
        found[ObjectKey.of(obj)] = obj
    return found
