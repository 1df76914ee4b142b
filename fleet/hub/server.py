"""The hub's HTTP server (aiohttp): webhooks, health, metrics, the JSON status API and a page.

Routes:
- ``POST /webhooks/github``, ``POST /webhooks/gitlab``: a verified push refreshes the
  repositories it names and answers what happened (:class:`~fleet.hub.pushes.PushOutcome`: 200
  every refresh landed, 202 one still running, 502 one failed); a refused one triggers nothing.
- ``GET /healthz`` (the event loop answers), ``GET /readyz`` (200 once the hub loaded its config
  and scanned ``clusters/``, else 503 with the reason): open to anyone.
- ``GET /metrics``: Prometheus text; open by default as scrapers expect, or behind ``read``.
- ``GET /api/status`` (the board as JSON), ``GET /api/events?app=&cluster=&limit=`` (recent events,
  newest first) and ``GET /`` (the page): ``read``. Any other method on
  a route needs ``admin`` unless the route says otherwise (:mod:`fleet.hub.auth`).

The webhook intake (:mod:`fleet.hub.intake`) is built to be hit by anyone on the network:
refusals on the headers, the body streamed through the HMAC with a size cap and a read timeout,
a cap on unverified bodies in flight. Slow headers are bounded by aiohttp's keep-alive timer,
which also runs from the moment a connection opens (``header_timeout``); a client that goes away
cancels its handler (``handler_cancellation``).

Errors are values at this boundary: a handler's exception becomes a JSON ``{"error": ...}`` with
a readable message (a :class:`~fleet.errors.FleetError`'s own text, else an id to find the cause
in the log), never a traceback or a Python repr; it touches no other request.

Exposure: without a token file nothing is authenticated, so the server refuses to listen beyond
loopback unless ``insecure_open_api`` says the operator put it behind something that
authenticates (:func:`check_exposure`). Optional TLS from ``tls_cert``/``tls_key``.

The server knows the hub only through :class:`HubView`, so it can be tested against any object
with that shape; it is a service of the hub's task group and reports its bound port when ready.

A hub that is one replica of several (its ``shards`` attribute a :class:`~fleet.shard.Shards`)
answers for the whole fleet: :class:`fleet.shard.front.Front` sits after the guard, merging the
reads from every live replica and sending control calls to the replicas that hold the clusters;
once bound, the server tells the shard its URL (:func:`advertised_url`), which the other
replicas read from its membership lease.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import socket
import ssl
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.abc
from aiohttp import web

from fleet.errors import ConfigError, FleetError
from fleet.hub import auth, tokens, webhooks
from fleet.hub.intake import HttpLimits, Intake, quoted
from fleet.hub.pushes import PushOutcome
from fleet.shard import Shards
from fleet.shard import front as shard_front

__all__ = [
    "BoardView",
    "HubView",
    "MetricsView",
    "ServerSettings",
    "advertised_url",
    "check",
    "check_exposure",
    "make_app",
    "serve",
    "tls_context",
]

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("page.html")
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BoardView(Protocol):
    """The status board as the API shows it (:class:`fleet.report.Board`)."""

    def to_json(self) -> dict[str, Any]: ...

    def events_json(
        self, *, app: str | None, cluster: str | None, limit: int
    ) -> list[dict[str, Any]]: ...


class MetricsView(Protocol):
    """The metrics as Prometheus scrapes them (:class:`fleet.report.Metrics`)."""

    def export(self) -> bytes: ...


class HubView(Protocol):
    """What the server needs from the hub."""

    @property
    def board(self) -> BoardView: ...

    @property
    def metrics(self) -> MetricsView: ...

    def readiness(self) -> tuple[bool, str]: ...

    async def on_push(self, push: webhooks.Push) -> PushOutcome: ...


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    github_secret: str = ""
    gitlab_token: str = ""
    api_tokens: Path | None = None  # token file; None: no authentication (loopback only)
    insecure_open_api: bool = False  # listen beyond loopback without tokens (behind a proxy)
    metrics_open: bool = True  # /metrics without a token, as Prometheus expects
    tls_cert: Path | None = None
    tls_key: Path | None = None
    limits: HttpLimits = field(default_factory=HttpLimits)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: ServerSettings) -> None:
    """Refuse an unauthenticated API on a non-loopback address (anyone there could sync/prune)."""
    if (
        settings.api_tokens is None
        and not settings.insecure_open_api
        and not _loopback(settings.host)
    ):
        raise ConfigError(
            f"--listen {settings.host}:{settings.port} would serve the API to the network "
            "without authentication: give --api-tokens FILE, listen on 127.0.0.1, or, behind a "
            "proxy that authenticates, --insecure-open-api"
        )


def tls_context(settings: ServerSettings) -> ssl.SSLContext | None:
    """The server's TLS context from ``tls_cert``/``tls_key``, or None for plain HTTP."""
    if settings.tls_cert is None and settings.tls_key is None:
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise ConfigError("TLS needs both --tls-cert and --tls-key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the TLS certificate {settings.tls_cert} with key {settings.tls_key}: "
            f"{exc.strerror or exc}"
        ) from exc
    return context


def check(settings: ServerSettings) -> None:
    """Everything the server would refuse at start, raised now (for the CLI: one line, exit 2)."""
    check_exposure(settings)
    tls_context(settings)
    if settings.api_tokens is not None:
        tokens.read_tokens(settings.api_tokens)


@web.middleware
async def _errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Errors as values: every failure of one request becomes that request's JSON error."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        reason = {
            404: f"no such route: {request.method} {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
        }.get(exc.status, exc.reason)
        return web.json_response({"error": reason}, status=exc.status, headers=headers or None)
    except FleetError as exc:
        log.warning(
            "event=http_error method=%s path=%s error=%s",
            request.method,
            quoted(request.path),
            quoted(str(exc)),
        )
        return web.json_response({"error": str(exc)}, status=500)
    except Exception as exc:
        ref = secrets.token_hex(4)
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(  # noqa: TRY400 - one line with the innermost frame, not a traceback
            "event=http_error ref=%s method=%s path=%s error_type=%s error=%s where=%s:%d",
            ref,
            request.method,
            quoted(request.path),
            type(exc).__name__,
            quoted(str(exc)),
            Path(frame.filename).name,
            frame.lineno or 0,
        )
        message = (
            f"the hub failed to answer {request.method} {request.path} "
            f"(ref {ref}: the hub's log has the cause)"
        )
        return web.json_response({"error": message}, status=500)


def make_app(
    hub: HubView,
    settings: ServerSettings,
    *,
    routes: Sequence[web.RouteDef] = (),
) -> web.Application:
    """The application; `routes` are more routes (control endpoints), guarded like the rest."""
    token_file = tokens.TokenFile(settings.api_tokens) if settings.api_tokens else None
    guard = auth.Guard(token_file, secure_cookie=settings.tls_cert is not None)
    intake = Intake(
        hub.on_push,
        github_secret=settings.github_secret,
        gitlab_token=settings.gitlab_token,
        limits=settings.limits,
    )
    middlewares = [_errors, guard.middleware()]
    shards = _shards(hub)
    if shards is not None:  # any replica answers for the fleet (after the guard: callers known)
        front = shard_front.Front(
            shards,
            tls_cert=settings.tls_cert,
            session_cookie=auth.COOKIE,
            insecure_peers=shards.settings.insecure_peers,
        )
        middlewares.append(front.middleware())
    app = web.Application(client_max_size=settings.limits.body, middlewares=middlewares)

    @auth.public
    async def github(request: web.Request) -> web.StreamResponse:
        return await intake.receive(request, "github")

    @auth.public
    async def gitlab(request: web.Request) -> web.StreamResponse:
        return await intake.receive(request, "gitlab")

    @auth.public
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    @auth.public
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
        found = hub.board.events_json(
            app=query.get("app"), cluster=query.get("cluster"), limit=limit
        )
        return web.json_response({"events": found})

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(), content_type="text/html")

    app.router.add_post("/webhooks/github", github, expect_handler=intake.expect)
    app.router.add_post("/webhooks/gitlab", gitlab, expect_handler=intake.expect)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", auth.public(metrics) if settings.metrics_open else metrics)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/events", events)
    app.router.add_get("/", page)
    app.router.add_routes(guard.routes())
    app.router.add_routes(routes)
    return app


def _shards(hub: HubView) -> Shards[Any] | None:
    """The hub's shard membership when it is a replica of several (``Hub.shards``)."""
    found = getattr(hub, "shards", None)
    return found if isinstance(found, Shards) else None


def advertised_url(settings: ServerSettings, port: int, *, tls: bool) -> str:
    """Where the other replicas reach this server: the ``--listen`` host, or, when it listens on
    every address, the Pod's IP (``POD_IP``, set by the chart) or this host name's address."""
    host = settings.host
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a comparison, not a bind
        host = os.environ.get("POD_IP", "").strip() or socket.gethostbyname(socket.gethostname())
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


class _Refused(asyncio.Protocol):
    """A connection over the cap: closed at once, before a byte of it is read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _CappedSite(web.BaseSite):
    """aiohttp's TCP site with a cap on open connections, which aiohttp does not have.

    Past ``max_connections`` a new connection is closed as soon as it is accepted, so that slow
    or idle clients can never take the file descriptors the hub needs to reach its clusters and
    remotes. Refusals are logged at most once every ``_REFUSAL_LOG`` seconds, with their count.
    """

    _REFUSAL_LOG = 10.0

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        limits: HttpLimits,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self.host = host
        self.port = port
        self.limits = limits
        self.refused = 0
        self._logged_at = -self._REFUSAL_LOG

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self.host}:{self.port}"

    def _protocol(self) -> asyncio.BaseProtocol:
        server = self._runner.server
        assert server is not None
        if len(server.connections) < self.limits.max_connections:
            return server()
        self.refused += 1
        now = time.monotonic()
        if now - self._logged_at >= self._REFUSAL_LOG:
            self._logged_at = now
            log.warning(
                "event=connections_refused limit=%d refused_so_far=%d",
                self.limits.max_connections,
                self.refused,
            )
        return _Refused()

    async def start(self) -> None:
        await super().start()
        self._server = await asyncio.get_running_loop().create_server(
            self._protocol,
            self.host,
            self.port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self.limits.header_timeout if self._ssl_context else None,
            backlog=self._backlog,
            reuse_address=True,
        )


async def serve(
    hub: HubView,
    settings: ServerSettings,
    *,
    routes: Sequence[web.RouteDef] = (),
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; report the bound port (useful with port 0) when listening."""
    check_exposure(settings)
    context = tls_context(settings)
    limits = settings.limits
    runner = web.AppRunner(
        make_app(hub, settings, routes=routes),
        access_log=None,
        shutdown_timeout=5,
        handler_cancellation=True,
        keepalive_timeout=limits.header_timeout,
        lingering_time=limits.linger,
        max_headers=limits.max_headers,
        max_field_size=limits.max_field_size,
    )
    await runner.setup()
    try:
        site = _CappedSite(
            runner,
            settings.host,
            settings.port,
            ssl_context=context,
            limits=limits,
        )
        try:
            await site.start()
        except OSError as exc:
            cause = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(f"cannot listen on {settings.host}:{settings.port}: {cause}") from exc
        addresses = runner.addresses
        port = int(addresses[0][1]) if addresses else settings.port
        log.info(
            "event=server_listening host=%s port=%d tls=%s auth=%s",
            settings.host,
            port,
            "on" if context else "off",
            "tokens" if settings.api_tokens else "off",
        )
        shards = _shards(hub)
        if shards is not None:
            shards.advertise(advertised_url(settings, port, tls=context is not None))
        task_status.started(port)
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
