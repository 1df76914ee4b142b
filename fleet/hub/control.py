"""Operating a running hub: refresh, sync, suspend and resume, and one app's detail, over its API.

Routes (reads need the ``read`` role, every POST ``admin``; see :mod:`fleet.hub.auth`):

- ``GET /api/apps/{app}``: every target of the app (sync, health, commits, conditions, the object
  tree) and its recent events;
- ``POST /api/apps/{app}/refresh[?cluster=C]``: list the app's repository now and run a full
  check of its targets (Argo CD's hard refresh);
- ``POST /api/apps/{app}/sync[?cluster=C][&prune=true]``: sync now; for an app without automated
  sync this is the only way its changes are applied, ``prune`` consenting to its prunes;
- ``POST /api/apps/{app}/suspend|resume[?cluster=C]`` and
  ``POST /api/clusters/{cluster}/suspend|resume``: a suspended target is not reconciled at all
  (its record says Suspended, never green) until resumed.

A replica of several answers these for the whole fleet (:mod:`fleet.shard.front`): a sync or
refresh of one cluster goes to the replica holding it, every other call (every suspension too)
to every replica, answers merged; a call sent on (``X-Fleet-Forwarded-By``) may name a cluster
this replica does not hold.

Suspensions are an operator's intent, so they outlive the process: :class:`Suspensions` keeps
them in ``suspended.json`` in the hub's state directory, written atomically on each change. Every
answer is JSON; an unknown app or cluster is a 404 naming it, and a call on an app before the
hub has read its config (it listens first) a 503 that says so, with ``Retry-After``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from fleet.hub import auth
from fleet.shard.front import CLUSTER_CHECKED, FORWARDED

__all__ = ["Controls", "Suspensions", "routes"]

Key = tuple[str, str]  # (cluster, app)


@dataclass
class Suspensions:
    """Which apps, clusters and single targets are suspended; kept in `path` (JSON)."""

    path: Path
    apps: set[str] = field(default_factory=set)
    clusters: set[str] = field(default_factory=set)
    targets: set[Key] = field(default_factory=set)

    @classmethod
    def load(cls, path: Path) -> Suspensions:
        found = cls(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return found  # none yet, or unreadable: nothing suspended (said in the log by the hub)
        found.apps = {str(a) for a in data.get("apps", [])}
        found.clusters = {str(c) for c in data.get("clusters", [])}
        found.targets = {(str(t[0]), str(t[1])) for t in data.get("targets", []) if len(t) == 2}
        return found

    def __call__(self, key: Key) -> bool:
        return key[1] in self.apps or key[0] in self.clusters or key in self.targets

    def set(self, *, app: str | None, cluster: str | None, suspended: bool) -> None:
        if app is not None and cluster is not None:
            box: set[Any] = self.targets
            item: Any = (cluster, app)
        elif app is not None:
            box, item = self.apps, app
        elif cluster is not None:
            box, item = self.clusters, cluster
        else:
            raise ValueError("suspend what: an app, a cluster, or both")
        if suspended:
            box.add(item)
        else:
            box.discard(item)
            if app is not None and cluster is None:  # resuming an app resumes its targets too
                self.targets = {t for t in self.targets if t[1] != app}
        self._save()

    def _save(self) -> None:
        data = {
            "apps": sorted(self.apps),
            "clusters": sorted(self.clusters),
            "targets": sorted([list(t) for t in self.targets]),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_suffix(".tmp")
        temp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(temp, self.path)


class Controls(Protocol):
    """What the routes need from the hub."""

    def config_read(self) -> bool: ...

    def app_detail(self, app: str) -> dict[str, Any] | None: ...

    def has_cluster(self, cluster: str) -> bool: ...

    async def refresh_app(self, app: str, cluster: str | None) -> list[Key]: ...

    def request_sync(self, app: str, cluster: str | None, *, prune: bool) -> list[Key]: ...

    def suspend(self, *, app: str | None, cluster: str | None, suspended: bool) -> list[Key]: ...


def _keys(keys: list[Key]) -> list[dict[str, str]]:
    return [{"cluster": c, "app": a} for c, a in keys]


def routes(hub: Controls) -> list[web.RouteDef]:
    """The control routes, bound to `hub`."""

    def known_app(handler: Callable[[web.Request, str], Awaitable[web.Response]]) -> Any:
        async def guarded(request: web.Request) -> web.Response:
            app = request.match_info["app"]
            if not hub.config_read():  # the hub listens before its config is read
                return web.json_response(
                    {"error": "the hub is still reading its config: retry in a moment"},
                    status=503,
                    headers={"Retry-After": "1"},
                )
            if hub.app_detail(app) is None:
                return web.json_response({"error": f"no app {app!r} in the config"}, status=404)
            return await handler(request, app)

        return guarded

    @known_app
    async def detail(_: web.Request, app: str) -> web.Response:
        return web.json_response(hub.app_detail(app))

    @known_app
    async def refresh(request: web.Request, app: str) -> web.Response:
        keys = await hub.refresh_app(app, request.rel_url.query.get("cluster"))
        return web.json_response({"refreshed": _keys(keys)})

    @known_app
    async def sync(request: web.Request, app: str) -> web.Response:
        query = request.rel_url.query
        prune = query.get("prune", "").lower() in ("1", "true", "yes")
        keys = hub.request_sync(app, query.get("cluster"), prune=prune)
        return web.json_response({"syncing": _keys(keys), "prune": prune})

    def suspending(suspended: bool) -> Any:
        @known_app
        async def handler(request: web.Request, app: str) -> web.Response:
            cluster = request.rel_url.query.get("cluster")
            keys = hub.suspend(app=app, cluster=cluster, suspended=suspended)
            return web.json_response({"suspended" if suspended else "resumed": _keys(keys)})

        return handler

    def cluster_suspending(suspended: bool) -> Any:
        async def handler(request: web.Request) -> web.Response:
            cluster = request.match_info["cluster"]
            # a replica of several knows only the clusters it holds; the replica that sent the
            # call on (or checked it, when answering locally) knew the cluster
            vouched = FORWARDED in request.headers or request.get(CLUSTER_CHECKED, False)
            if not hub.has_cluster(cluster) and not vouched:
                return web.json_response({"error": f"no cluster {cluster!r}"}, status=404)
            keys = hub.suspend(app=None, cluster=cluster, suspended=suspended)
            return web.json_response({"suspended" if suspended else "resumed": _keys(keys)})

        return handler

    admin = auth.requires("admin")
    return [
        web.get("/api/apps/{app}", detail),
        web.post("/api/apps/{app}/refresh", admin(refresh)),
        web.post("/api/apps/{app}/sync", admin(sync)),
        web.post("/api/apps/{app}/suspend", admin(suspending(True))),
        web.post("/api/apps/{app}/resume", admin(suspending(False))),
        web.post("/api/clusters/{cluster}/suspend", admin(cluster_suspending(True))),
        web.post("/api/clusters/{cluster}/resume", admin(cluster_suspending(False))),
    ]
