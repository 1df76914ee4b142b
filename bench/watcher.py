"""The independent watcher: what each cluster serves, read from the cluster, never from the hub.

One kubernetes-asyncio client per apiserver (its own user agent, ``fleet-bench-watcher``), two
watches each across all namespaces, narrowed by field selector to the objects the commits change
(the ConfigMap ``settings`` and the Deployment ``web``). Every event's marker (``value:v3``,
``image:v4``) is stamped with the wall-clock time it arrived, the first time it is seen for that
(cluster, namespace). :meth:`Watcher.wait` then answers "when did every (cluster, namespace)
serve marker X", the end point of commit-to-converged. A dropped watch is re-opened (a re-list
re-stamps nothing already seen). The watcher runs in the bench process; the hub runs in its own,
so the watcher's work never delays the hub's.

Markers answer "when did X first appear", which is all commit-to-converged needs. A bench that
watches a value go away and come back (drift: a hand edit, then the hub's heal) asks for the
**timeline** as well (``Watcher(..., timeline=True)``): every event in arrival order as a
:class:`Sighting` (its type, ``DELETED`` included, the object, the time), and
:meth:`Watcher.wait_for` waits for the first sighting after a given position that passes a test.
Without it nothing is kept but the markers, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from kubernetes_asyncio import client, config, watch

from bench.workload import marker_of_configmap, marker_of_deployment

__all__ = ["USER_AGENT", "Sighting", "Watcher"]

USER_AGENT = "fleet-bench-watcher"

Slot = tuple[str, str]  # (apiserver name, namespace)


@dataclass(frozen=True)
class Sighting:
    """One event as the watcher received it: ``ADDED``, ``MODIFIED``, ``DELETED`` or ``LISTED``
    (an item of the initial or a re-opened watch's list)."""

    time: float
    server: str
    type: str
    kind: str  # ConfigMap or Deployment
    namespace: str
    name: str
    obj: dict[str, Any]


class Watcher:
    """Watch `kubeconfigs` (apiserver name -> kubeconfig) until the task group ends; with
    `timeline`, keep every event as a :class:`Sighting` too."""

    def __init__(self, kubeconfigs: dict[str, Path], *, timeline: bool = False) -> None:
        self.kubeconfigs = kubeconfigs
        self.seen: dict[tuple[str, str, str], float] = {}  # (server, namespace, marker) -> t
        self.events = 0
        self.timeline: list[Sighting] | None = [] if timeline else None
        self._changed = anyio.Event()
        self._stack = AsyncExitStack()
        self._group: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Watcher:
        self._group = await self._stack.enter_async_context(anyio.create_task_group())
        for name, path in self.kubeconfigs.items():
            api = await config.new_client_from_config(config_file=str(path))
            api.user_agent = USER_AGENT
            self._stack.push_async_callback(api.close)
            core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
            await self._group.start(
                self._watch, name, core.list_config_map_for_all_namespaces, "settings",
                marker_of_configmap, "ConfigMap",
            )  # fmt: skip
            await self._group.start(
                self._watch, name, apps.list_deployment_for_all_namespaces, "web",
                marker_of_deployment, "Deployment",
            )  # fmt: skip
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._group is not None
        self._group.cancel_scope.cancel()
        await self._stack.aclose()

    async def _watch(
        self,
        server: str,
        lister: Callable[..., Any],
        name: str,
        marker: Callable[[dict[str, Any]], str | None],
        kind: str,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        started = False
        while True:
            # the initial list marks the watch as established before any commit is pushed
            listed = await lister(field_selector=f"metadata.name={name}", _preload_content=False)
            body = await listed.json()
            for item in body.get("items", []):
                self._record(server, "LISTED", kind, item)
                self._stamp(server, item, marker)
            version = body["metadata"]["resourceVersion"]
            if not started:
                task_status.started()
                started = True
            stream = watch.Watch()
            try:
                async for event in stream.stream(
                    lister,
                    field_selector=f"metadata.name={name}",
                    resource_version=version,
                    timeout_seconds=1800,
                    allow_watch_bookmarks=False,
                ):
                    raw = event.get("raw_object") or {}
                    self._record(server, str(event.get("type", "")), kind, raw)
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self._stamp(server, raw, marker)
            except (client.ApiException, OSError, TimeoutError):
                await anyio.sleep(0.5)
            finally:
                stream.stop()

    def _stamp(
        self, server: str, obj: dict[str, Any], marker: Callable[[dict[str, Any]], str | None]
    ) -> None:
        now = time.time()
        self.events += 1
        text = marker(obj)
        namespace = str((obj.get("metadata") or {}).get("namespace", ""))
        if text is None:
            return
        self.seen.setdefault((server, namespace, text), now)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _record(self, server: str, kind_of_event: str, kind: str, obj: dict[str, Any]) -> None:
        if self.timeline is None:
            return
        meta = obj.get("metadata") or {}
        self.timeline.append(
            Sighting(
                time=time.time(), server=server, type=kind_of_event, kind=kind,
                namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")), obj=obj,
            )
        )  # fmt: skip
        self._wake()

    @property
    def position(self) -> int:
        """Where the timeline ends now: :meth:`wait_for` from here sees only later events."""
        assert self.timeline is not None, "Watcher(..., timeline=True) keeps the timeline"
        return len(self.timeline)

    async def wait_for(
        self, test: Callable[[Sighting], bool], *, after: int, limit: float
    ) -> tuple[int, Sighting]:
        """The first sighting at or past position `after` that passes `test`, and its position;
        raises TimeoutError after `limit` seconds."""
        assert self.timeline is not None, "Watcher(..., timeline=True) keeps the timeline"
        at = after
        with anyio.fail_after(limit):
            while True:
                while at < len(self.timeline):
                    if test(self.timeline[at]):
                        return at, self.timeline[at]
                    at += 1
                await self._changed.wait()

    def missing(self, slots: Iterable[Slot], marker: str) -> list[Slot]:
        return [s for s in slots if (s[0], s[1], marker) not in self.seen]

    async def wait(self, slots: Iterable[Slot], marker: str, *, limit: float) -> dict[Slot, float]:
        """When each slot first served `marker`; raises TimeoutError after `limit` seconds."""
        wanted = list(slots)
        with anyio.fail_after(limit):
            while self.missing(wanted, marker):
                await self._changed.wait()
        return {s: self.seen[(s[0], s[1], marker)] for s in wanted}
