"""The hub's HTTP server (aiohttp): webhooks, health, metrics, the JSON status API and a page.

Routes:
- ``POST /webhooks/github``, ``POST /webhooks/gitlab``: verified push -> refresh just the
  repository pushed to (202 with the number of sources refreshed); bad signature -> 401, nothing
  triggered; other events -> 204.
- ``GET /healthz``: the event loop answers (liveness). ``GET /readyz``: 200 once the hub has
  loaded its config and scanned ``clusters/``, else 503 with the reason.
- ``GET /metrics``: Prometheus text format. ``GET /api/status``: the status board as JSON.
- ``GET /api/events?app=&cluster=&limit=``: the targets' recent events, newest first.
- ``GET /``: the status page, a static file that polls ``/api/status``.

The server knows the hub only through :class:`HubView`, so it can be tested against any object
with that shape; it is a service of the hub's task group and reports its bound port when ready.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio
import anyio.abc
from aiohttp import web

from fleet.hub import webhooks
from fleet.hub.pushes import PushOutcome
from fleet.report import Board, Metrics

__all__ = ["HubView", "ServerSettings", "make_app", "serve"]

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("page.html")
_MAX_BODY = 5 * 2**20  # GitHub caps payloads at 25 MB; pushes of a config repo are far smaller


class HubView(Protocol):
    """What the server needs from the hub."""

    board: Board
    metrics: Metrics

    def readiness(self) -> tuple[bool, str]: ...

    async def on_push(self, push: webhooks.Push) -> PushOutcome: ...


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    github_secret: str = ""
    gitlab_token: str = ""


def make_app(hub: HubView, settings: ServerSettings) -> web.Application:
    app = web.Application(client_max_size=_MAX_BODY)

    async def receive(request: web.Request, provider: str) -> web.Response:
        body = await request.read()
        try:
            if provider == "github":
                push = webhooks.parse_github(request.headers, body, secret=settings.github_secret)
            else:
                push = webhooks.parse_gitlab(request.headers, body, secret=settings.gitlab_token)
        except webhooks.WebhookError as exc:
            log.warning(
                "event=webhook_refused provider=%s status=%d reason=%s remote=%s",
                provider,
                exc.status,
                exc,
                request.remote,
            )
            return web.json_response({"error": str(exc)}, status=exc.status)
        if push is None:
            return web.Response(status=204)
        outcome = await hub.on_push(push)
        log.info(
            "event=webhook_push provider=%s ref=%s after=%s matched=%d",
            provider,
            push.ref,
            push.after[:12],
            len(outcome.repos),
        )
        return web.json_response(outcome.to_json(), status=outcome.http_status)

    async def github(request: web.Request) -> web.Response:
        return await receive(request, "github")

    async def gitlab(request: web.Request) -> web.Response:
        return await receive(request, "gitlab")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        ready, reason = hub.readiness()
        return web.Response(text=f"{reason}\n", status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=hub.metrics.export(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def status(_: web.Request) -> web.Response:
        return web.json_response(hub.board.to_json())

    async def events(request: web.Request) -> web.Response:
        query = request.rel_url.query
        try:
            limit = max(1, min(1000, int(query.get("limit", "100"))))
        except ValueError:
            return web.json_response({"error": "limit must be a whole number"}, status=400)
        found = hub.board.targets.events(app=query.get("app"), cluster=query.get("cluster"))
        newest = [e.to_json() for e in reversed(found[-limit:])]
        return web.json_response({"events": newest})

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(), content_type="text/html")

    app.router.add_post("/webhooks/github", github)
    app.router.add_post("/webhooks/gitlab", gitlab)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/events", events)
    app.router.add_get("/", page)
    return app


async def serve(
    hub: HubView,
    settings: ServerSettings,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; report the bound port (useful with port 0) when listening."""
    runner = web.AppRunner(make_app(hub, settings), access_log=None, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            cause = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(f"cannot listen on {settings.host}:{settings.port}: {cause}") from exc
        addresses = runner.addresses
        port = int(addresses[0][1]) if addresses else settings.port
        log.info("event=server_listening host=%s port=%d", settings.host, port)
        task_status.started(port)
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
