"""A thin JSON client for one cluster: every request fleet's apply engine makes goes through here.

Objects are plain mappings (what the apiserver sends), not generated models, so the same code
handles built-in kinds and custom resources. Requests go through kubernetes-asyncio's ApiClient
(its kubeconfig loading, TLS and auth) with ``call_api`` and raw responses; a status outside 2xx
becomes an :class:`ApiError` that carries the status and the apiserver's message. A
:class:`Cluster` bundles the client, its discovery cache and a concurrency limit.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import anyio
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config.kube_config import KubeConfigLoader

from fleet.errors import TransientError
from fleet.types import Manifest

__all__ = ["APPLY_PATCH", "ApiError", "Cluster", "RequestGate", "connect"]

APPLY_PATCH = "application/apply-patch+yaml"


class ApiError(TransientError):
    """The apiserver answered outside 2xx; `status` 0 means no answer at all."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message


class RequestGate(Protocol):
    """Admission of each request to one cluster (the hub's per-cluster rate limits): held for the
    duration of the call, then told the answer's status and Retry-After."""

    def request(self) -> AbstractAsyncContextManager[None]: ...

    def observe(self, status_code: int, retry_after: float | None = None) -> None: ...


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: rare from an apiserver; the limiter's own back-off applies


@dataclass
class Cluster:
    """One cluster as apply sees it: a client, a discovery cache, a concurrency limit, and an
    optional gate (rate limits) and status observer (metrics) the hub plugs in."""

    name: str
    api: ApiClient
    concurrency: int = 8
    gate: RequestGate | None = None
    on_status: Callable[[int], None] | None = None
    limiter: anyio.CapacityLimiter = field(init=False)
    discovery_cache: dict[str, dict[str, tuple[str, bool]]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    """Requests made, by method (``PATCH?dryRun`` counted apart): a client-side write count."""

    def __post_init__(self) -> None:
        self.limiter = anyio.CapacityLimiter(self.concurrency)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        request_timeout: float = 60,
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
        request_timeout: float = 60,
    ) -> tuple[int, Manifest]:
        """One request; the HTTP status and the decoded JSON answer."""
        async with self.limiter, self._gated():
            response = await self._send(
                method,
                path,
                query=query,
                body=body,
                content_type=content_type,
                request_timeout=request_timeout,
            )
            try:
                raw = await response.read()
            finally:
                response.release()
            self._observe(response)
        text = raw.decode("utf-8", "replace")
        if not 200 <= response.status < 300:
            raise _error_of(response.status, response.reason or "", text)
        if not text:
            return response.status, {}
        decoded = json.loads(text) if text.lstrip().startswith("{") else {"text": text}
        return response.status, dict(decoded)

    @asynccontextmanager
    async def _gated(self) -> AsyncIterator[None]:
        if self.gate is None:
            yield
        else:
            async with self.gate.request():
                yield

    def _observe(self, response: aiohttp.ClientResponse) -> None:
        if self.gate is not None:
            self.gate.observe(response.status, _retry_after(response.headers.get("Retry-After")))
        if self.on_status is not None:
            self.on_status(response.status)

    @asynccontextmanager
    async def stream(
        self, path: str, *, query: list[tuple[str, str]], request_timeout: float
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A long GET (a watch) whose body the caller reads line by line."""
        response = await self._send(
            "GET",
            path,
            query=query,
            body=None,
            content_type="application/json",
            request_timeout=request_timeout,
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
        request_timeout: float,
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
                _request_timeout=request_timeout,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ApiError(0, "", f"{method} {path} on cluster {self.name}: {exc!r}") from exc
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
    kubeconfig: Path | Mapping[str, Any],
    *,
    name: str = "",
    base_dir: Path | None = None,
    concurrency: int = 8,
    gate: RequestGate | None = None,
    on_status: Callable[[int], None] | None = None,
) -> AsyncIterator[Cluster]:
    """A :class:`Cluster` for a kubeconfig, closed on exit.

    `kubeconfig` is the file's path, or the kubeconfig document itself (one rewritten in memory,
    such as a tunnelled cluster's): then `name` is required, and relative file references
    (``certificate-authority``, ``client-key``, ...) are resolved against `base_dir`.
    """
    if isinstance(kubeconfig, Path):
        api = await config.new_client_from_config(config_file=str(kubeconfig))
        name = name or kubeconfig.stem
    else:
        if not name:
            raise ValueError("connect: a kubeconfig document needs a cluster name")
        settings = type.__call__(Configuration)  # as kubernetes-asyncio does: no default copy
        loader = KubeConfigLoader(
            config_dict=dict(kubeconfig),
            config_base_path=str(base_dir) if base_dir is not None else None,
        )
        await loader.load_and_set(settings)
        api = ApiClient(configuration=settings)
    async with api:
        yield Cluster(
            name=name,
            api=api,
            concurrency=concurrency,
            gate=gate,
            on_status=on_status,
        )
