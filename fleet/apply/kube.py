"""A thin JSON client for one cluster: every request fleet's apply engine makes goes through here.

Objects are plain mappings (what the apiserver sends), not generated models, so the same code
handles built-in kinds and custom resources. Requests go through kubernetes-asyncio's ApiClient
(its kubeconfig loading, TLS and auth) with ``call_api`` and raw responses, over an HTTP session
shared by the clients of one TLS identity (:mod:`fleet.apply.sessions`); a status outside 2xx
becomes an :class:`ApiError` that carries the status and the apiserver's message. A
:class:`Cluster` bundles the client, its discovery cache and a concurrency limit.

**Timeouts** (:class:`Timeouts`) are sized for an API server and set on every request in the one
place requests are sent (:meth:`Cluster._send`): kubernetes-asyncio hands aiohttp an explicit
(empty) timeout when it is given none, which overrides any session default, so a per-request
:class:`aiohttp.ClientTimeout` is the only setting that holds. TCP connect and TLS handshake
(aiohttp's ``sock_connect``, 5 s), silence while reading (``sock_read``, 20 s), a whole request
(30 s); a watch has its own total and no read limit (a quiet watch is silent by design). A hung
apiserver (process stopped, TCP still accepted by the kernel) is thus an ``ApiError(0)`` within
seconds of a request, never the event loop's 60 s TLS handshake default.

**Liveness**: :meth:`Cluster.probe` is one cheap ``GET /readyz`` with its own short timeout,
admitted by the gate's rate limit but not its concurrency slots (requests hung in every slot must
not hold back the probe that is to notice them). The connection that owns the client runs it
(:mod:`fleet.hub.connections`); while it finds the cluster silent it :meth:`~Cluster.fence`-s the
client: requests in flight are abandoned at once and new ones fail fast, each as ``ApiError(0)``
(an outage for the circuit breaker), until :meth:`~Cluster.unfence` on the next answer.

**429**: a request answered 429 Too Many Requests is sent again after the gate's
``retry_delay`` (the server's Retry-After, capped), outside its concurrency slot, for as long as
``Timeouts.throttled`` allows (60 s of retrying; the gate may also bound the attempts): the
server asked fleet to come back later, and a refusal is not an outage. Bounding the retries by a
count instead made a request refused 11 times in a row (9 % of them at 80 % 429s) fail its whole
sync, which then started over. Only when the time is spent is the 429 the answer. Without a gate
there is no retry.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import anyio

from fleet.apply.sessions import Sessions
from fleet.errors import TransientError
from fleet.types import Manifest

if TYPE_CHECKING:  # the client package is imported by connect (see fleet.apply.sharedclient)
    from kubernetes_asyncio.client import ApiClient, Configuration

__all__ = ["APPLY_PATCH", "ApiError", "Cluster", "RequestGate", "Timeouts", "connect"]

log = logging.getLogger(__name__)

APPLY_PATCH = "application/apply-patch+yaml"
TOO_MANY_REQUESTS = 429


class ApiError(TransientError):
    """The apiserver answered outside 2xx; `status` 0 means no answer at all."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Timeouts:
    """How long one cluster may keep fleet waiting, in seconds."""

    connect: float = 5.0  # TCP connect plus TLS handshake of a new connection
    read: float = 20.0  # silence on the socket while an answer is awaited or read
    total: float = 30.0  # one request, first byte sent to last byte read (pool wait included)
    probe: float = 3.0  # the liveness probe, all of it
    throttled: float = 60.0  # how long one request is sent again after 429s, waits included

    def request(self, total: float | None = None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=total or self.total, sock_connect=self.connect, sock_read=self.read
        )

    def stream(self, total: float) -> aiohttp.ClientTimeout:
        """A watch: its own total, no read limit (no events for minutes is normal)."""
        return aiohttp.ClientTimeout(total=total, sock_connect=self.connect)

    def liveness(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=self.probe, sock_connect=self.probe, sock_read=self.probe
        )


class RequestGate(Protocol):
    """Admission of each request to one cluster (the hub's per-cluster rate limits): held for the
    duration of the call, then told the answer's status and Retry-After; asked how long a 429'd
    request waits before it is sent again."""

    def request(self, *, slot: bool = True) -> AbstractAsyncContextManager[None]: ...

    def observe(self, status_code: int, retry_after: float | None = None) -> None: ...

    def retry_delay(self, attempt: int, retry_after: float | None) -> float | None: ...


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: rare from an apiserver; the limiter's own back-off applies


def _describe(exc: BaseException, timeout: aiohttp.ClientTimeout) -> str:
    """A transport failure in words (never a repr): what did not happen, within what time."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"no connection (TCP and TLS) within {timeout.sock_connect}s"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return f"no data from the server for {timeout.sock_read}s"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout.total}s"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class _Seen:
    superseded: set[str] = field(default_factory=set)  # versions replaced; "" for absent
    read_through: bool = False  # a conflict: the next read goes to the API, whatever the cache


class InventoryVersions:
    """What this client knows of its inventories that a watch cache may not show yet: per app,
    the versions its writes (or conflicts) replaced, and whether a conflict asks for a read
    through the API. Forgotten once the cache shows a version it does not hold."""

    KEPT = 16  # a cache lagging more writes than this is only a conflict, then a retry

    def __init__(self) -> None:
        self._apps: dict[str, _Seen] = {}

    def superseded(self, app: str, version: str, *, conflict: bool = False) -> None:
        seen = self._apps.setdefault(app, _Seen())
        if len(seen.superseded) >= self.KEPT:
            seen.superseded.clear()
        seen.superseded.add(version)
        seen.read_through = seen.read_through or conflict

    def stale(self, app: str, cached: Mapping[str, object] | None) -> bool:
        """Whether a cached copy (None: none cached) is one of the versions replaced, or the
        first read after a conflict; a copy not known stale clears what was known."""
        seen = self._apps.get(app)
        if seen is None:
            return False
        if seen.read_through:
            seen.read_through = False
            return True
        metadata = (cached or {}).get("metadata") or {}
        version = str(metadata.get("resourceVersion", "")) if isinstance(metadata, dict) else ""
        if version in seen.superseded:
            return True
        del self._apps[app]
        return False


@dataclass
class _Answer:
    status: int
    reason: str
    retry_after: float | None
    raw: bytes


@dataclass
class Cluster:
    """One cluster as apply sees it: a client, a discovery cache, a concurrency limit, and an
    optional gate (rate limits) and status observer (metrics) the hub plugs in."""

    name: str
    api: ApiClient
    concurrency: int = 8
    gate: RequestGate | None = None
    on_status: Callable[[int], None] | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    limiter: anyio.CapacityLimiter = field(init=False)
    discovery_cache: dict[str, dict[str, tuple[str, bool]]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    """Requests made, by method (``PATCH?dryRun`` counted apart): a client-side write count."""
    last_answer: float = field(default=-float("inf"), init=False)
    """When the server last answered anything (``anyio.current_time()``): liveness evidence."""
    fenced: str = field(default="", init=False)
    """Why requests are refused (the liveness probe found the cluster silent), or ``""``."""
    _in_flight: set[anyio.CancelScope] = field(default_factory=set, init=False, repr=False)
    inventory_versions: InventoryVersions = field(
        default_factory=InventoryVersions, init=False, repr=False
    )
    """What this client's inventory writes replaced (:mod:`fleet.apply.inventory`)."""

    def __post_init__(self) -> None:
        self.limiter = anyio.CapacityLimiter(self.concurrency)

    def fence(self, cause: str) -> int:
        """The cluster is silent (`cause`): abandon the requests in flight and refuse new ones
        until :meth:`unfence`. Returns how many requests were abandoned."""
        self.fenced = cause
        scopes = list(self._in_flight)
        for scope in scopes:
            scope.cancel()
        return len(scopes)

    def unfence(self) -> None:
        """The cluster answers again."""
        self.fenced = ""

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        request_timeout: float | None = None,
    ) -> Manifest:
        """One request; the decoded JSON answer (``{}`` when empty)."""
        _, answer = await self.exchange(
            method,
            path,
            query=query,
            body=body,
            content_type=content_type,
            request_timeout=request_timeout,
        )
        return answer

    async def exchange(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        request_timeout: float | None = None,
    ) -> tuple[int, Manifest]:
        """One request (429s retried after their Retry-After); the status and the JSON answer."""
        timeout = self.timeouts.request(request_timeout)
        attempt = 0
        started = anyio.current_time()
        while True:
            answer = await self._attempt(
                method, path, query=query, body=body, content_type=content_type, timing=timeout
            )
            if answer.status != TOO_MANY_REQUESTS or self.gate is None:
                break
            delay = self.gate.retry_delay(attempt, answer.retry_after)
            spent = anyio.current_time() - started
            if delay is None or spent + delay > self.timeouts.throttled:
                break
            attempt += 1
            log.debug(
                "event=api_throttled cluster=%s method=%s path=%s attempt=%d retry_in=%.2f",
                self.name,
                method,
                path,
                attempt,
                delay,
            )
            await anyio.sleep(delay)  # outside the concurrency slot: others may go meanwhile
        text = answer.raw.decode("utf-8", "replace")
        if not 200 <= answer.status < 300:
            raise _error_of(answer.status, answer.reason, text)
        if not text:
            return answer.status, {}
        decoded = json.loads(text) if text.lstrip().startswith("{") else {"text": text}
        return answer.status, dict(decoded)

    async def _attempt(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None,
        body: Any,
        content_type: str,
        timing: aiohttp.ClientTimeout,
    ) -> _Answer:
        """Send once and read the whole answer; abandoned (``ApiError(0)``) if fenced meanwhile."""
        what = f"{method} {path} on cluster {self.name}"
        if self.fenced:
            raise ApiError(0, "", f"{what}: not sent, the cluster is unreachable ({self.fenced})")
        scope = anyio.CancelScope()
        self._in_flight.add(scope)
        try:
            with scope:
                async with self.limiter, self._gated():
                    response = await self._send(
                        method,
                        path,
                        query=query,
                        body=body,
                        content_type=content_type,
                        timing=timing,
                    )
                    try:
                        raw = await response.read()
                    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                        raise ApiError(0, "", f"{what}: {_describe(exc, timing)}") from exc
                    finally:
                        response.release()
                    self._observe(response)
                    return _Answer(
                        status=response.status,
                        reason=response.reason or "",
                        retry_after=_retry_after(response.headers.get("Retry-After")),
                        raw=raw,
                    )
        finally:
            self._in_flight.discard(scope)
        raise ApiError(0, "", f"{what}: abandoned, the cluster is unreachable ({self.fenced})")

    async def probe(self, path: str = "/readyz") -> str:
        """One liveness probe: ``""`` if the server answered (any status), else why not.

        Admitted by the gate's rate limit (no concurrency slot), then bounded by
        ``timeouts.probe``; bypasses the fence (it is what lifts it).
        """
        timeout = self.timeouts.liveness()
        async with self._gated(slot=False):
            try:
                response = await self._send(
                    "GET",
                    path,
                    query=None,
                    body=None,
                    content_type="application/json",
                    timing=timeout,
                )
                try:
                    await response.read()
                finally:
                    response.release()
            except ApiError as exc:
                return exc.message
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                return f"GET {path} on cluster {self.name}: {_describe(exc, timeout)}"
            self._observe(response)
        return ""

    @asynccontextmanager
    async def _gated(self, *, slot: bool = True) -> AsyncIterator[None]:
        if self.gate is None:
            yield
        else:
            async with self.gate.request(slot=slot):
                yield

    def _observe(self, response: aiohttp.ClientResponse) -> None:
        self.last_answer = anyio.current_time()
        if self.gate is not None:
            self.gate.observe(response.status, _retry_after(response.headers.get("Retry-After")))
        if self.on_status is not None:
            self.on_status(response.status)

    @asynccontextmanager
    async def stream(
        self, path: str, *, query: list[tuple[str, str]], request_timeout: float
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A long GET (a watch) whose body the caller reads line by line."""
        if self.fenced:
            raise ApiError(
                0, "", f"watch {path} on cluster {self.name}: not sent, unreachable ({self.fenced})"
            )
        response = await self._send(
            "GET",
            path,
            query=query,
            body=None,
            content_type="application/json",
            timing=self.timeouts.stream(request_timeout),
        )
        try:
            if response.status != 200:
                text = (await response.read()).decode("utf-8", "replace")
                raise _error_of(response.status, response.reason or "", text)
            yield response
        finally:
            response.release()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None,
        body: Any,
        content_type: str,
        timing: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        dry = any(k == "dryRun" for k, _ in query or ())
        self.calls[f"{method}?dryRun" if dry else method] += 1
        try:
            response: aiohttp.ClientResponse = await self.api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timing,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            message = f"{method} {path} on cluster {self.name}: {_describe(exc, timing)}"
            raise ApiError(0, "", message) from exc
        return response


def _error_of(status: int, reason: str, text: str) -> ApiError:
    message = text.strip()
    try:
        decoded = json.loads(text)
    except ValueError:
        pass
    else:
        if isinstance(decoded, dict):
            message = str(decoded.get("message") or message)
    return ApiError(status, reason, message[:2000])


@asynccontextmanager
async def connect(
    kubeconfig: Path | Mapping[str, Any] | Configuration,
    *,
    name: str = "",
    base_dir: Path | None = None,
    concurrency: int = 8,
    gate: RequestGate | None = None,
    on_status: Callable[[int], None] | None = None,
    timeouts: Timeouts | None = None,
    sessions: Sessions | None = None,
) -> AsyncIterator[Cluster]:
    """A :class:`Cluster` for a kubeconfig, closed on exit.

    `kubeconfig` is the file's path, or the kubeconfig document itself (one rewritten in memory,
    such as a tunnelled cluster's): then `name` is required, and relative file references
    (``certificate-authority``, ``client-key``, ...) are resolved against `base_dir`. It may
    also be a ready client ``Configuration`` (the in-cluster one, whose token rotates): used as
    it is, `name` required.

    The client's HTTP session comes from `sessions` (:mod:`fleet.apply.sessions`), shared with
    the other clients of the same TLS identity; without a pool it has a session of its own.
    """
    from kubernetes_asyncio import config
    from kubernetes_asyncio.client import Configuration
    from kubernetes_asyncio.config.kube_config import KubeConfigLoader

    if isinstance(kubeconfig, Path):
        settings = type.__call__(Configuration)  # as kubernetes-asyncio does: no default copy
        await config.load_kube_config(config_file=str(kubeconfig), client_configuration=settings)
        name = name or kubeconfig.stem
    elif isinstance(kubeconfig, Configuration):
        if not name:
            raise ValueError("connect: a client configuration needs a cluster name")
        settings = kubeconfig
    else:
        if not name:
            raise ValueError("connect: a kubeconfig document needs a cluster name")
        settings = type.__call__(Configuration)
        loader = KubeConfigLoader(
            config_dict=dict(kubeconfig),
            config_base_path=str(base_dir) if base_dir is not None else None,
        )
        await loader.load_and_set(settings)
    api = (sessions if sessions is not None else Sessions()).client(settings)
    async with api:
        yield Cluster(
            name=name,
            api=api,
            concurrency=concurrency,
            gate=gate,
            on_status=on_status,
            timeouts=timeouts or Timeouts(),
        )
