"""The webhook intake: what the server does with a push request before the hub sees it.

Built to be hit by anyone on the network:
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

:class:`Intake` answers a refusal as JSON with ``Connection: close`` (the client may still be
sending) and a verified push with the hub's :class:`~fleet.hub.pushes.PushOutcome`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from fleet.hub import webhooks
from fleet.hub.pushes import PushOutcome

__all__ = ["HttpLimits", "Intake", "quoted", "refusal"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on what one client can make the server hold (bytes, seconds, bodies)."""

    webhook_body: int = 2**20  # a push event of a config repository is a few KiB
    body: int = 64 * 2**10  # any other body: the login form, control endpoints
    body_timeout: float = 10.0  # the whole webhook body, from its first byte expected
    unauthenticated_bodies: int = 16  # GitHub bodies being read before their HMAC is known
    eviction_grace: float = 1.0  # past the cap, a body older than this makes room for a new one
    header_timeout: float = 15.0  # request headers, a TLS handshake, an idle keep-alive
    max_connections: int = 1000  # open at once; far below the hub's file descriptors
    linger: float = 2.0  # discarding the unread body of a refused request
    max_headers: int = 64
    max_field_size: int = 8190


def quoted(value: str) -> str:
    """A log value: bare when it has no space, quote or equals sign, else JSON-quoted."""
    if value and not any(c.isspace() or c in "\"'=" for c in value):
        return value
    return json.dumps(value)


def refusal(status: int, message: str, **headers: str) -> web.Response:
    """A JSON refusal that closes the connection (the client may still be sending a body)."""
    response = web.json_response({"error": message}, status=status, headers=headers or None)
    response.force_close()
    return response


@dataclass(eq=False)
class _Reading:
    """One unverified body being read: cancelled (`evicted`) to make room for a newer one."""

    scope: anyio.CancelScope
    started: float
    evicted: bool = False


class Intake:
    """The webhook intake: header checks, then the body, bounded in size, time and number."""

    def __init__(
        self,
        on_push: Callable[[webhooks.Push], Awaitable[PushOutcome]],
        *,
        github_secret: str,
        gitlab_token: str,
        limits: HttpLimits,
    ) -> None:
        self.on_push = on_push
        self.github_secret = github_secret
        self.gitlab_token = gitlab_token
        self.limits = limits
        self.reading: dict[_Reading, None] = {}  # unverified bodies being read, oldest first

    def precheck(self, request: web.Request, provider: str) -> webhooks.BodyCheck:
        if provider == "github":
            body_check = webhooks.github_check(request.headers, secret=self.github_secret)
        else:
            body_check = webhooks.gitlab_check(request.headers, secret=self.gitlab_token)
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
            return refusal(417, "only `Expect: 100-continue` is understood")
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
        outcome = await self.on_push(push)
        log.info(
            "event=webhook_push provider=%s ref=%s after=%s matched=%d status=%d",
            provider,
            quoted(push.ref),
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
        whole = False
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
                whole = True
        except TimeoutError:
            raise webhooks.WebhookError(
                408, f"the body did not arrive within {self.limits.body_timeout:g} s"
            ) from None
        except HttpProcessingError as exc:
            raise webhooks.WebhookError(400, f"the body ended early: {exc.message}") from None
        except ConnectionError as exc:
            cause = os.strerror(exc.errno) if exc.errno else "connection lost"
            raise webhooks.WebhookError(400, f"the body ended early: {cause}") from None
        finally:
            if reading is not None:
                self.reading.pop(reading, None)
        if not whole:  # evicted: its cancel scope ended the read
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
            quoted(str(exc)),
            request.remote,
        )
        extra = {"Retry-After": "1"} if exc.status == 503 else {}
        return refusal(exc.status, str(exc), **extra)
