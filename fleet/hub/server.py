"""The hub's HTTP server (aiohttp): webhooks, health, metrics, the JSON status API and a page.

Routes:
- ``POST /webhooks/github``, ``POST /webhooks/gitlab``: a verified push refreshes the
  repositories it names and answers what happened (:class:`~fleet.hub.pushes.PushOutcome`: 200
  every refresh landed, 202 one still running, 502 one failed); a refused one triggers nothing.
- ``GET /healthz`` (the event loop answers), ``GET /readyz`` (200 once the hub loaded its config
  and scanned ``clusters/``, else 503 with the reason): open to anyone.
- ``GET /metrics``: Prometheus text; open by default as scrapers expect, or behind ``read``.
- ``GET /api/status`` (the board as JSON) and ``GET /`` (the page): ``read``. Any other method on
  a route needs ``admin`` unless the route says otherwise (:mod:`fleet.hub.auth`).

The webhook intake is built to be hit by anyone on the network:
- Headers first: GitLab's token, GitHub's signature format, a declared ``Content-Length`` over
  the cap (413) are refused before a byte of the body is read (also on ``Expect: 100-continue``,
  where the refusal replaces the ``100 Continue``).
- The body streams in chunks through the HMAC; past ``webhook_body`` bytes it is refused (413)
  at once, a body not whole within ``body_timeout`` seconds is refused (408), and at most
  ``unauthenticated_bodies`` bodies not yet proven by a signature are read at a time. Past that
  cap a new body takes the place of the oldest if that one has been reading for more than
  ``eviction_grace`` seconds (the oldest is answered 503), else the new one is refused (503 with
  ``Retry-After``): slow senders cannot hold the intake, and a real push, a few KiB sent at once,
  is never the oldest. GitLab bodies, proven by their token, do not count. A refused request's
  connection is closed after at most ``linger`` seconds of discarding, time for the client to
  read the answer.
- Headers that trickle in are bounded by aiohttp's keep-alive timer, which also runs from the
  moment a connection opens: ``header_timeout`` seconds to send a request's headers. A client
  that goes away cancels its handler (``handler_cancellation``).

Errors are values at this boundary: a handler's exception becomes a JSON ``{"error": ...}`` with
a readable message (a :class:`~fleet.errors.FleetError`'s own text, else an id to find the cause
in the log), never a traceback or a Python repr; it touches no other request.

Exposure: without a token file nothing is authenticated, so the server refuses to listen beyond
loopback unless ``insecure_open_api`` says the operator put it behind something that
authenticates (:func:`check_exposure`). Optional TLS from ``tls_cert``/``tls_key``.

The server knows the hub only through :class:`HubView`, so it can be tested against any object
with that shape; it is a service of the hub's task group and reports its bound port when ready.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import ssl
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.abc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from fleet.errors import ConfigError, FleetError
from fleet.hub import auth, webhooks
from fleet.hub.pushes import PushOutcome, RepoRefresh

__all__ = [
    "BoardView",
    "HttpLimits",
    "HubView",
    "MetricsView",
    "ServerSettings",
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

    async def on_push(self, push: webhooks.Push) -> PushOutcome | int: ...


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on what one client can make the server hold (bytes, seconds, bodies)."""

    webhook_body: int = 2**20  # a push event of a config repository is a few KiB
    body: int = 64 * 2**10  # any other body: the login form, control endpoints
    body_timeout: float = 10.0  # the whole webhook body, from its first byte expected
    unauthenticated_bodies: int = 16  # GitHub bodies being read before their HMAC is known
    eviction_grace: float = 1.0  # past the cap, a body older than this makes room for a new one
    header_timeout: float = 15.0  # request headers, and an idle keep-alive connection
    linger: float = 2.0  # discarding the unread body of a refused request
    max_headers: int = 64
    max_field_size: int = 8190


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
        auth.read_tokens(settings.api_tokens)


def _quoted(value: str) -> str:
    """A log value: bare when it has no space, quote or equals sign, else JSON-quoted."""
    if value and not any(c.isspace() or c in "\"'=" for c in value):
        return value
    return json.dumps(value)


def _refusal(status: int, message: str, **headers: str) -> web.Response:
    """A JSON refusal that closes the connection (the client may still be sending a body)."""
    response = web.json_response({"error": message}, status=status, headers=headers or None)
    response.force_close()
    return response


def _as_outcome(result: PushOutcome | int) -> PushOutcome:
    """The hub's answer to a push; an older hub returns the number of refreshes it started."""
    if isinstance(result, PushOutcome):
        return result
    return PushOutcome(tuple(RepoRefresh(repo="", result="pending") for _ in range(result)))


@dataclass(eq=False)
class _Reading:
    """One unverified body being read: cancelled (`evicted`) to make room for a newer one."""

    scope: anyio.CancelScope
    started: float
    evicted: bool = False


class _Intake:
    """The webhook intake: header checks, then the body, bounded in size, time and number."""

    def __init__(self, hub: HubView, settings: ServerSettings) -> None:
        self.hub = hub
        self.settings = settings
        self.limits = settings.limits
        self.reading: dict[_Reading, None] = {}  # unverified bodies being read, oldest first

    def precheck(self, request: web.Request, provider: str) -> webhooks.BodyCheck:
        if provider == "github":
            body_check = webhooks.github_check(request.headers, secret=self.settings.github_secret)
        else:
            body_check = webhooks.gitlab_check(request.headers, secret=self.settings.gitlab_token)
        declared = request.content_length
        if declared is not None and declared > self.limits.webhook_body:
            raise webhooks.WebhookError(
                413, f"the body ({declared} bytes) is over the cap of {self.limits.webhook_body}"
            )
        return body_check

    async def expect(self, request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue``: refuse on the headers instead of inviting the body."""
        provider = request.path.rsplit("/", 1)[-1]
        try:
            self.precheck(request, provider)
        except webhooks.WebhookError as exc:
            return self._refused(request, provider, exc)
        if request.headers.get("Expect", "").lower() != "100-continue":
            return _refusal(417, "only `Expect: 100-continue` is understood")
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
        return None

    async def receive(self, request: web.Request, provider: str) -> web.StreamResponse:
        try:
            body_check = self.precheck(request, provider)
            body = await self._read(request, body_check)
            push = body_check.finish(body)
        except webhooks.WebhookError as exc:
            return self._refused(request, provider, exc)
        if push is None:
            return web.Response(status=204)
        outcome = _as_outcome(await self.hub.on_push(push))
        log.info(
            "event=webhook_push provider=%s ref=%s after=%s matched=%d status=%d",
            provider,
            _quoted(push.ref),
            push.after[:12] or "-",
            len(outcome.repos),
            outcome.http_status,
        )
        return web.json_response(outcome.to_json(), status=outcome.http_status)

    def _admit(self) -> _Reading:
        """A place for one more unverified body: free, or taken from the oldest past the grace."""
        now = anyio.current_time()
        if len(self.reading) >= self.limits.unauthenticated_bodies:
            oldest = next(iter(self.reading))
            if now - oldest.started < self.limits.eviction_grace:
                raise webhooks.WebhookError(
                    503,
                    f"{len(self.reading)} unverified webhook bodies are being read already: "
                    "retry later",
                )
            del self.reading[oldest]
            oldest.evicted = True
            oldest.scope.cancel()
        reading = _Reading(scope=anyio.CancelScope(), started=now)
        self.reading[reading] = None
        return reading

    async def _read(self, request: web.Request, body_check: webhooks.BodyCheck) -> bytes:
        reading = None if body_check.authenticated else self._admit()
        cap = self.limits.webhook_body
        chunks: list[bytes] = []
        size = 0
        try:
            with (
                reading.scope if reading else anyio.CancelScope(),
                anyio.fail_after(self.limits.body_timeout),
            ):
                async for chunk in request.content.iter_any():
                    size += len(chunk)
                    if size > cap:
                        raise webhooks.WebhookError(413, f"the body is over the cap of {cap} bytes")
                    body_check.update(chunk)
                    chunks.append(chunk)
        except TimeoutError:
            raise webhooks.WebhookError(
                408, f"the body did not arrive within {self.limits.body_timeout:g} s"
            ) from None
        except (HttpProcessingError, ConnectionError) as exc:
            raise webhooks.WebhookError(400, f"the body ended early: {exc}") from None
        finally:
            if reading is not None:
                self.reading.pop(reading, None)
        if reading is not None and reading.evicted:
            raise webhooks.WebhookError(
                503,
                "this body was the slowest of too many unverified webhook bodies: retry later",
            )
        return b"".join(chunks)

    def _refused(
        self, request: web.Request, provider: str, exc: webhooks.WebhookError
    ) -> web.Response:
        log.warning(
            "event=webhook_refused provider=%s status=%d reason=%s remote=%s",
            provider,
            exc.status,
            _quoted(str(exc)),
            request.remote,
        )
        extra = {"Retry-After": "1"} if exc.status == 503 else {}
        return _refusal(exc.status, str(exc), **extra)


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
            _quoted(request.path),
            _quoted(str(exc)),
        )
        return web.json_response({"error": str(exc)}, status=500)
    except Exception as exc:
        ref = secrets.token_hex(4)
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(  # noqa: TRY400 - one line with the innermost frame, not a traceback
            "event=http_error ref=%s method=%s path=%s error_type=%s error=%s where=%s:%d",
            ref,
            request.method,
            _quoted(request.path),
            type(exc).__name__,
            _quoted(str(exc)),
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
    tokens = auth.TokenFile(settings.api_tokens) if settings.api_tokens else None
    guard = auth.Guard(tokens, secure_cookie=settings.tls_cert is not None)
    intake = _Intake(hub, settings)
    app = web.Application(
        client_max_size=settings.limits.body, middlewares=[_errors, guard.middleware()]
    )

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

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(), content_type="text/html")

    app.router.add_post("/webhooks/github", github, expect_handler=intake.expect)
    app.router.add_post("/webhooks/gitlab", gitlab, expect_handler=intake.expect)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", auth.public(metrics) if settings.metrics_open else metrics)
    app.router.add_get("/api/status", status)
    app.router.add_get("/", page)
    app.router.add_routes(guard.routes())
    app.router.add_routes(routes)
    return app


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
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=context)
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
        task_status.started(port)
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
