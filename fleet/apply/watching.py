"""Watch one kind's objects by label selector, across namespaces, and report every change.

The model is list-then-watch, the informer's: a LIST gives the current resource version, a WATCH
from there streams changes (with bookmarks so a quiet stream stays resumable). When the stream
ends it resumes from the last version seen; when the server says that version is gone (410) it
lists again. Errors back off and retry; the watch runs until cancelled. Each event is a
:class:`WatchEvent`; the caller decides what is drift.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from anyio.abc import TaskStatus

from fleet.apply import discovery
from fleet.apply.kube import ApiError, Cluster
from fleet.types import Manifest, ObjectKey, split_api_version

__all__ = ["WatchEvent", "watch_kind"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, or LISTED for objects found by the initial list
    key: ObjectKey
    obj: Manifest


def _key(api_version: str, kind: str, obj: Manifest) -> ObjectKey:
    metadata = obj.get("metadata") or {}
    return ObjectKey(
        group=split_api_version(api_version)[0],
        kind=kind,
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata["name"]),
    )


async def watch_kind(
    cluster: Cluster,
    api_version: str,
    kind: str,
    *,
    label_selector: str,
    on_event: Callable[[WatchEvent], Awaitable[None]],
    watch_seconds: int = 300,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Report changes to `kind` objects matching `label_selector` until cancelled.

    Reports ready through `task_status` once the first list is done.
    """
    started = False
    backoff = 0.5
    while True:
        try:
            resource = await discovery.resolve(cluster, api_version, kind)
            if resource is None:
                raise ApiError(404, "NotFound", f"{api_version} {kind} is not served")
            listing = await cluster.request(
                "GET", resource.collection(), query=[("labelSelector", label_selector)]
            )
            version = str((listing.get("metadata") or {}).get("resourceVersion", ""))
            for item in listing.get("items") or []:
                await on_event(WatchEvent("LISTED", _key(api_version, kind, item), item))
            if not started:
                started = True
                task_status.started()
            while version:
                version = await _watch_once(
                    cluster,
                    resource.collection(),
                    api_version,
                    kind,
                    version,
                    label_selector=label_selector,
                    on_event=on_event,
                    seconds=watch_seconds,
                )
            backoff = 0.5
        except ApiError as exc:
            log.warning(
                "event=watch_error cluster=%s kind=%s error=%r", cluster.name, kind, str(exc)
            )
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)


async def _watch_once(
    cluster: Cluster,
    path: str,
    api_version: str,
    kind: str,
    version: str,
    *,
    label_selector: str,
    on_event: Callable[[WatchEvent], Awaitable[None]],
    seconds: int,
) -> str:
    """One watch request; the version to resume from, or "" to list again."""
    query = [
        ("watch", "true"),
        ("labelSelector", label_selector),
        ("resourceVersion", version),
        ("allowWatchBookmarks", "true"),
        ("timeoutSeconds", str(seconds)),
    ]
    async with cluster.stream(path, query=query, request_timeout=seconds + 30) as response:
        async for line in response.content:
            if not line.strip():
                continue
            event = json.loads(line)
            obj = event.get("object") or {}
            if event.get("type") == "ERROR":
                return ""  # 410 Gone, most likely: list again
            version = str((obj.get("metadata") or {}).get("resourceVersion", version))
            if event.get("type") != "BOOKMARK":
                await on_event(WatchEvent(str(event["type"]), _key(api_version, kind, obj), obj))
    return version
