"""Sending one request to a sink: a timeout per attempt, retries with tenacity, Retry-After.

What is retried is decided in one place (:func:`retryable`): a 5xx answer, a 429 (after its
``Retry-After``, capped), GitHub's rate-limit 403 (a ``Retry-After``, or no requests remaining
until ``X-RateLimit-Reset``), a timeout and a connection failure are transient and retried with
exponential backoff and jitter; any other answer outside 2xx (400, 401, 404...) is
:class:`Rejected` at once: sending the same request again cannot help. Redirects are not
followed (a sink that moved is an operator's fix). After the last attempt the last error is
raised. Every wait, the timeout included, comes from the injectable clock.

:func:`reason` turns any failure into a short sentence for logs and stats that never holds the
URL (a Slack webhook's path is its secret) nor a Python repr.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping

import aiohttp
import tenacity

from fleet.errors import StalledError, TransientError
from fleet.notify.messages import Request
from fleet.notify.settings import DeliverySettings
from fleet.runtime.clock import Clock

__all__ = ["Rejected", "Unavailable", "deliver", "reason", "retry_after", "retryable"]

_MAX_ANSWER = 64 * 1024  # bytes of an answer read (to tell why a request was refused)


class Unavailable(TransientError):
    """The sink answered 5xx, 429 or a rate-limit 403; `retry_after`: seconds it asked to wait."""

    def __init__(self, status: int, *, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class Rejected(StalledError):
    """The sink refused the request (4xx other than 429): retrying cannot help."""

    def __init__(self, status: int) -> None:
        super().__init__(f"rejected with HTTP {status}")
        self.status = status


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _rate_limited(status: int, headers: Mapping[str, str]) -> bool:
    """GitHub's rate limits answer 403 with a Retry-After or no requests remaining."""
    return status == 403 and (
        "Retry-After" in headers or headers.get("X-RateLimit-Remaining") == "0"
    )


def _delay(headers: Mapping[str, str]) -> float | None:
    delay = retry_after(headers.get("Retry-After"))
    reset = headers.get("X-RateLimit-Reset", "")
    if delay is None and headers.get("X-RateLimit-Remaining") == "0" and reset.isdigit():
        delay = max(0.0, float(reset) - time.time())
    return delay


def retryable(exc: BaseException) -> bool:
    """5xx, 429, timeouts and connection failures; never a rejection."""
    if isinstance(exc, Rejected):
        return False
    return isinstance(exc, Unavailable | TimeoutError | aiohttp.ClientError | OSError)


def reason(exc: BaseException, *, timeout: float) -> str:
    """`exc` as a short sentence without the URL."""
    if isinstance(exc, Unavailable | Rejected):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "cannot connect"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return f"connection failed ({type(exc).__name__})"
    return f"internal error ({type(exc).__name__})"


def _wait(settings: DeliverySettings) -> Callable[[tenacity.RetryCallState], float]:
    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, Unavailable) and error.retry_after is not None:
            return min(error.retry_after, settings.max_retry_after)
        backoff = min(settings.cap, settings.initial * 2 ** (state.attempt_number - 1))
        return float(backoff + random.uniform(0, settings.jitter))  # noqa: S311 - jitter

    return wait


async def _attempt(
    http: aiohttp.ClientSession, request: Request, *, limit: float, clock: Clock
) -> None:
    with clock.fail_after(limit):
        async with http.request(
            request.method,
            request.url,
            data=request.body,
            headers=dict(request.headers),
            allow_redirects=False,
        ) as response:
            answer = await response.content.read(_MAX_ANSWER)
            status = response.status
            if 200 <= status < 300:
                return
            if 400 <= status < 500 and request.already and request.already in answer:
                return  # the sink already shows what we sent
            if status == 429 or status >= 500 or _rate_limited(status, response.headers):
                raise Unavailable(status, retry_after=_delay(response.headers))
            raise Rejected(status)


async def deliver(
    http: aiohttp.ClientSession,
    request: Request,
    *,
    attempts: int,
    limit: float,
    settings: DeliverySettings,
    clock: Clock,
    on_retry: Callable[[BaseException], None] = lambda _: None,
) -> int:
    """Send `request` until a 2xx, at most `attempts` tries of `limit` seconds each.

    Returns the tries it took; raises the last error.
    """

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if error is not None:
            on_retry(error)

    controller = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=_wait(settings),
        retry=tenacity.retry_if_exception(retryable),
        sleep=clock.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    tries = 0
    async for attempt in controller:
        with attempt:
            tries += 1
            await _attempt(http, request, limit=limit, clock=clock)
    return tries
