"""kubernetes-asyncio's client classes over a borrowed HTTP session (:mod:`fleet.apply.sessions`).

Its ``ApiClient.__init__`` builds a REST client with a session of its own, unconditionally, so the
pool builds both objects itself: :class:`SharedRest` holds the shared session and gives it back
on ``close()`` (once); :class:`SharedApiClient` sets the attributes ``__init__`` would, around
the given REST client.

These are subclasses, so this module imports kubernetes-asyncio's client package when it is
imported, and that package imports every API and model it has (about a second of a small
machine's CPU). Only :meth:`fleet.apply.sessions.Sessions.client` imports this module, when the
first cluster connects: the hub listens before that (issue 16's start-up goal).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.rest import RESTClientObject

__all__ = ["SharedApiClient", "SharedRest"]


class SharedRest(RESTClientObject):
    """kubernetes-asyncio's REST client over a borrowed session: ``close()`` gives it back."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        proxy: str | None,
        configuration: Configuration,
        release: Callable[[], Awaitable[None]],
    ) -> None:
        # RESTClientObject.__init__ is not called: it would build a session of its own
        self.pool_manager = session
        self.proxy = configuration.proxy or proxy  # type: ignore[assignment]
        self.proxy_headers = configuration.proxy_headers  # type: ignore[assignment]
        self.server_hostname = configuration.tls_server_name  # type: ignore[assignment]
        self._release: Callable[[], Awaitable[None]] | None = release

    async def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            await release()


class SharedApiClient(ApiClient):
    """An ``ApiClient`` whose REST client is given, not built; the other attributes as
    ``ApiClient.__init__`` sets them."""

    def __init__(self, configuration: Configuration, rest_client: RESTClientObject) -> None:
        self.configuration = configuration
        self.pool_threads = 1
        self.rest_client = rest_client
        self.default_headers: dict[str, str] = {}
        self.cookie = None  # type: ignore[assignment]
        self.user_agent = "OpenAPI-Generator/33.3.0+snapshot/python"
        self.client_side_validation = configuration.client_side_validation
