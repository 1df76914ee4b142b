"""Watch one kind's objects by label selector, across namespaces: the list and watch requests.

The model is list-then-watch, the informer's: a LIST gives the current objects and the
resource version they are at (:func:`list_objects`, paged); a WATCH from that version streams
the changes after it (:func:`watch_once`, with bookmarks so a quiet stream stays resumable). The
server ends a watch after ``timeoutSeconds``; the caller watches again from the version
:func:`watch_once` returns, without listing. When the server says the version is too old (410
Gone, as an HTTP status or an ERROR event) :class:`Expired` is raised: the caller lists again.
Watch bodies are split into lines here from raw chunks, so the size of an object (a CRD with a
large schema) is bounded by nothing but the server, not by the client's read-buffer setting
(aiohttp's own line reader refuses lines over twice its buffer).

:class:`fleet.apply.informer.LiveCache` builds the shared watch of a (cluster, kind) on these.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import aiohttp
import anyio

from fleet.apply import discovery
from fleet.apply.kube import ApiError, Cluster
from fleet.types import Manifest

__all__ = [
    "Expired",
    "Listing",
    "Silent",
    "list_objects",
    "watch_once",
]

log = logging.getLogger(__name__)

PAGE = 500
"""Objects per LIST page: a large kind is read in pages, not one huge answer."""


class Silent(ApiError):
    """A watch sent nothing, not even a bookmark, for longer than allowed: the server may hang."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "Silent", message)


class Expired(ApiError):
    """The resource version is too old for the server (410 Gone): list again."""

    def __init__(self, message: str) -> None:
        super().__init__(410, "Expired", message)


@dataclass(frozen=True)
class Listing:
    """A kind's objects as one LIST saw them, and the resource version to watch from."""

    items: list[Manifest]
    version: str


async def list_objects(
    cluster: Cluster, resource: discovery.Resource, *, label_selector: str
) -> Listing:
    """Every object of `resource` (all namespaces) matching `label_selector`, page by page."""
    items: list[Manifest] = []
    version = ""
    token = ""
    while True:
        query = [("labelSelector", label_selector), ("limit", str(PAGE))]
        if token:
            query.append(("continue", token))
        try:
            page = await cluster.request("GET", resource.collection(), query=query)
        except ApiError as exc:
            if exc.status == 410:
                raise Expired(
                    f"LIST {resource.collection()} on cluster {cluster.name}: {exc.message}"
                ) from exc
            raise
        metadata = page.get("metadata") or {}
        version = version or str(metadata.get("resourceVersion", ""))
        items.extend(page.get("items") or [])
        token = str(metadata.get("continue") or "")
        if not token:
            return Listing(items=items, version=version)


async def _lines(response: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
    buffer = bytearray()
    async for chunk in response.content.iter_any():
        buffer.extend(chunk)
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if line.strip():
                yield line
    if bytes(buffer).strip():
        yield bytes(buffer)


async def watch_once(
    cluster: Cluster,
    resource: discovery.Resource,
    *,
    version: str,
    label_selector: str,
    seconds: int,
    on_open: Callable[[], None],
    on_event: Callable[[str, Manifest], None],
    silence: float | None = None,
) -> str:
    """One watch request from `version`; the version to resume from when the server ends it.

    `on_open()` runs once the server accepted the watch; `on_event(type, object)` for each
    ADDED, MODIFIED or DELETED (bookmarks only move the version). Both must not block.
    Raises :class:`Expired` when `version` is too old, :class:`Silent` when the stream sent
    nothing for `silence` seconds (a quiet apiserver sends a bookmark every 1-2 minutes), and
    :class:`ApiError` for any other refusal or a broken connection.
    """
    path = resource.collection()
    query = [
        ("watch", "true"),
        ("labelSelector", label_selector),
        ("resourceVersion", version),
        ("allowWatchBookmarks", "true"),
        ("timeoutSeconds", str(seconds)),
    ]
    try:
        async with cluster.stream(path, query=query, request_timeout=seconds + 30) as response:
            on_open()
            lines = _lines(response)
            while True:
                with anyio.move_on_after(math.inf if silence is None else silence) as quiet:
                    line = await anext(lines, None)
                if quiet.cancelled_caught:
                    await lines.aclose()
                    raise Silent(f"WATCH {path} on cluster {cluster.name}: nothing for {silence} s")
                if line is None:
                    break
                event = json.loads(line)
                kind = str(event.get("type", ""))
                obj = event.get("object") or {}
                if kind == "ERROR":
                    code = int(obj.get("code") or 0)
                    message = f"WATCH {path} on cluster {cluster.name}: {obj.get('message', '')}"
                    if code == 410:
                        raise Expired(message)
                    raise ApiError(code, str(obj.get("reason", "")), message)
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind != "BOOKMARK":
                    on_event(kind, obj)
    except ApiError as exc:
        if exc.status == 410 and not isinstance(exc, Expired):
            raise Expired(f"WATCH {path} on cluster {cluster.name}: {exc.message}") from exc
        raise
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ApiError(
            0, "", f"WATCH {path} on cluster {cluster.name}: connection lost ({type(exc).__name__})"
        ) from exc
    return version
