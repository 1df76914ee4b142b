"""Server-side apply, prune, release and live reads of one app's objects on one cluster.

Every object is applied with one PATCH (``application/apply-patch+yaml``, the app instance's
field manager, force as the caller says), concurrently within a call and under the cluster's
limit. A refused apply of a field another manager owns (409) is a ``conflict`` naming that
manager, never a failure that looks like the server's fault. A
target marked ``verify`` is dry-run first and written only if the dry-run result differs from the
live object, so a value the server normalises never causes a write on every reconcile. A CRD is
waited on until Established, and its group's discovery refreshed, before the call returns, so the
next stage can apply its custom resources. Each object yields one :class:`Change`; a failure is
recorded with its reason and never stops the others. Deletes carry the live object's uid as a
precondition: an object recreated meanwhile is not deleted. A release (an adopted object that
left git) is one JSON patch, preconditioned on the uid, that removes fleet's labels, annotations
and managed-fields entries and nothing else, so the object keeps every value it has.

Reads raise one :class:`~fleet.errors.FleetError` whatever went wrong inside their task group:
:class:`ReadTransient` for a 5xx or a 429, :class:`ReadStalled` for a refusal (400, 401, 403,
...), each naming the kind, the namespace, the cluster, the HTTP status and the server's message;
no answer at all stays an ``ApiError`` with status 0 (an outage, for the circuit breaker), its
message naming the same.
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
from fleet.errors import FleetError, StalledError, TransientError
from fleet.types import Manifest, ObjectKey

__all__ = [
    "ApplyOptions",
    "Marks",
    "ReadError",
    "ReadStalled",
    "ReadTransient",
    "Target",
    "apply_objects",
    "delete_objects",
    "dry_run",
    "read_error",
    "read_live",
    "release_objects",
    "release_patch",
]

_JSON_PATCH = "application/json-patch+json"

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
            applied = await _wait_established(cluster, path, applied, options)
    except ApiError as exc:
        if exc.status == 409:
            reason = (
                f"conflict with another field manager, not forced: {exc.message}; "
                "remove the field from one of the two writers"
            )
            log.warning("event=apply_conflict cluster=%s object=%s", cluster.name, _quote(key))
            return Change(key, Outcome.CONFLICT, reason)
        log.warning(
            "event=apply_failed cluster=%s object=%s status=%d",
            cluster.name,
            _quote(key),
            exc.status,
        )
        return Change(key, Outcome.FAILED, str(exc))
    except TimeoutError:
        return Change(key, Outcome.FAILED, f"not Established within {options.crd_timeout}s")
    outcome = Outcome.CREATED if status == 201 else Outcome.CONFIGURED
    return Change(key, outcome, uid=_uid(applied), live=applied)


def _quote(key: ObjectKey) -> str:
    """An object's name for a log line: one token, quoted."""
    return '"' + str(key).replace('"', "'") + '"'


def _uid(obj: Manifest) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _established(crd: Manifest) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


async def _wait_established(
    cluster: Cluster, path: str, crd: Manifest, options: ApplyOptions
) -> Manifest:
    """The CRD once Established (its group's discovery forgotten, to be asked again)."""
    with anyio.fail_after(options.crd_timeout):
        while not _established(crd):
            await anyio.sleep(options.poll_interval)
            crd = await cluster.request("GET", path)
    discovery.forget(cluster, str((crd.get("spec") or {}).get("group", "")))
    return crd


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
            "event=prune_failed cluster=%s object=%s status=%d",
            cluster.name,
            _quote(key),
            exc.status,
        )
        return Change(key, Outcome.FAILED, reason)
    return Change(key, Outcome.PRUNED)


async def delete_objects(cluster: Cluster, targets: Sequence[Target]) -> list[Change]:
    """Delete every target (its manifest: the live object), concurrently; one Change each."""
    return await _each(targets, lambda t: _delete_one(cluster, t))


@dataclass(frozen=True)
class Marks:
    """What fleet put on an object and a release takes off: label and annotation keys, and the
    field managers whose managed-fields entries go."""

    labels: tuple[str, ...] = ()
    annotations: tuple[str, ...] = ()
    managers: tuple[str, ...] = ()


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def release_patch(live: Manifest, marks: Marks) -> list[dict[str, object]]:
    """The JSON patch that removes `marks` from `live`, preconditioned on its uid."""
    metadata = live.get("metadata") or {}
    ops: list[dict[str, object]] = [{"op": "test", "path": "/metadata/uid", "value": _uid(live)}]
    for field_name, keys in (("labels", marks.labels), ("annotations", marks.annotations)):
        present = metadata.get(field_name) or {}
        ops += [
            {"op": "remove", "path": f"/metadata/{field_name}/{_escape(k)}"}
            for k in keys
            if k in present
        ]
    entries = metadata.get("managedFields") or []
    kept = [e for e in entries if e.get("manager") not in marks.managers]
    if len(kept) != len(entries):
        ops.append({"op": "replace", "path": "/metadata/managedFields", "value": kept or [{}]})
    return ops


async def _release_one(cluster: Cluster, target: Target, marks: Marks) -> Change:
    key = target.key
    patch = release_patch(target.manifest, marks)
    try:
        path = await _path(cluster, target.api_version, key)
        if path is None:
            return Change(key, Outcome.FAILED, f"{target.api_version} {key.kind} is not served")
        if len(patch) > 1:
            await cluster.request("PATCH", path, body=patch, content_type=_JSON_PATCH)
    except ApiError as exc:
        if exc.status == 404:
            return Change(key, Outcome.RELEASED, "already gone")
        log.warning(
            "event=release_failed cluster=%s object=%s status=%d",
            cluster.name,
            _quote(key),
            exc.status,
        )
        reason = str(exc)
        if exc.status == 422 and "test" in exc.message:
            reason = f"replaced by another object since it was read: {exc.message}"
        return Change(key, Outcome.FAILED, reason)
    return Change(key, Outcome.RELEASED, "fleet's marks removed; the object stays")


async def release_objects(
    cluster: Cluster, targets: Sequence[Target], *, marks: Marks | Sequence[Marks]
) -> list[Change]:
    """Take fleet's `marks` off every target (its manifest: the live object); one Change each.

    `marks` is one for all targets, or one per target.
    """
    each = [marks] * len(targets) if isinstance(marks, Marks) else list(marks)
    return await _each(
        list(zip(targets, each, strict=True)), lambda item: _release_one(cluster, *item)
    )


class ReadError(FleetError):
    """Base of the errors of a read that the server answered; raised as :class:`ReadTransient`
    or :class:`ReadStalled`. `status` is the HTTP status."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class ReadTransient(ReadError, TransientError):
    """A read the server answered with an error that may pass (5xx, 429)."""


class ReadStalled(ReadError, StalledError):
    """A read was refused (400, 401, 403, ...): retrying will not help until access changes."""


def read_error(
    exc: ApiError, *, cluster: str, verb: str, api_version: str, kind: str, namespace: str
) -> ReadError | ApiError:
    """One error for an API error of a read, naming what was read and what to do.

    No answer at all stays an :class:`~fleet.apply.kube.ApiError` with status 0 (a
    TransientError), which is how the hub's circuit breaker recognises an outage.
    """
    where = f"in namespace {namespace}" if namespace else "(cluster-scoped)"
    what = f"cannot {verb} {kind} ({api_version}) {where} on cluster {cluster}"
    if exc.status == 0:
        return ApiError(0, "", f"{what}: no answer from the API server ({exc.message})")
    detail = f"HTTP {exc.status} {exc.reason}: {exc.message}".rstrip(": ")
    if exc.status >= 500 or exc.status == 429:
        return ReadTransient(f"{what}: {detail}; retried after a back-off", status=exc.status)
    hint = (
        "; grant fleet's credentials get/list on this kind (RBAC)"
        if exc.status in (401, 403)
        else ""
    )
    return ReadStalled(f"{what}: {detail}{hint}", status=exc.status)


async def read_live(
    cluster: Cluster, wanted: Mapping[ObjectKey, str], *, selector: str = ""
) -> dict[ObjectKey, Manifest]:
    """The live object of each key (mapped to its apiVersion) that exists.

    With a label `selector` (an app's label), keys of one kind in one namespace are read with one
    LIST of the objects carrying that label, and only the keys it did not return (new objects,
    objects fleet has not labelled yet, or someone else's) with a GET each: an app's steady state
    costs one request per (kind, namespace), not one per object. A kind the cluster does not
    serve has no objects. Any other error raises one error (the first, in key order; see the
    module): a plan made on a partial view could prune wrongly.
    """
    found: dict[ObjectKey, Manifest] = {}
    pending = dict(wanted)
    if selector:
        groups: dict[tuple[str, str, str], list[ObjectKey]] = {}
        for key, api_version in wanted.items():
            groups.setdefault((api_version, key.kind, key.namespace), []).append(key)
        listed = await _each(
            sorted(g for g, keys in groups.items() if len(keys) > 1),
            lambda group: _list(cluster, *group, selector=selector),
        )
        _raise_first(listed)
        for objects in listed:
            assert isinstance(objects, dict)
            for key, obj in objects.items():
                if key in pending:
                    found[key] = obj
                    del pending[key]
    keys = sorted(pending)
    results = await _each(keys, lambda key: _get(cluster, pending[key], key))
    _raise_first(results)
    found.update({k: obj for k, obj in zip(keys, results, strict=True) if isinstance(obj, dict)})
    return found


def _raise_first(results: Sequence[object]) -> None:
    for result in results:
        if isinstance(result, FleetError):
            raise result


async def _get(
    cluster: Cluster, api_version: str, key: ObjectKey
) -> Manifest | ReadError | ApiError | None:
    """One object, None when absent, or the error of its read (returned, not raised)."""
    verb = "discover"
    try:
        resource = await discovery.resolve(cluster, api_version, key.kind)
        if resource is None:
            return None
        verb = "get"
        return await cluster.request("GET", discovery.object_path(resource, key))
    except ApiError as exc:
        if exc.status == 404 and verb == "get":
            return None
        return read_error(
            exc,
            cluster=cluster.name,
            verb=verb,
            api_version=api_version,
            kind=key.kind,
            namespace=key.namespace,
        )


async def _list(
    cluster: Cluster, api_version: str, kind: str, namespace: str, *, selector: str
) -> dict[ObjectKey, Manifest] | ReadError | ApiError:
    """The objects of `kind` in `namespace` that carry `selector`, by key, or the read's error."""
    verb = "discover"
    try:
        resource = await discovery.resolve(cluster, api_version, kind)
        if resource is None:
            return {}
        verb = "list"
        listing = await cluster.request(
            "GET", resource.collection(namespace), query=[("labelSelector", selector)]
        )
    except ApiError as exc:
        if exc.status == 404 and verb == "list":
            return {}
        return read_error(
            exc,
            cluster=cluster.name,
            verb=verb,
            api_version=api_version,
            kind=kind,
            namespace=namespace,
        )
    found: dict[ObjectKey, Manifest] = {}
    for item in listing.get("items", []):
        obj = {"apiVersion": api_version, "kind": kind, **item}  # a list's items omit both
        found[ObjectKey.of(obj)] = obj
    return found
