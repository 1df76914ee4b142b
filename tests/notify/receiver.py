"""A real HTTP receiver for the notification tests: an aiohttp server on 127.0.0.1.

It records every request (method, path, headers, body, arrival time on the event loop's clock)
and answers from a script of :class:`Reply` (status, headers, or hang until released); when the
script is empty it answers 200. Signatures are checked by the tests from the recorded bytes, as
a real receiver would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiohttp import web


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # wait until the receiver closes (or `release` is set)
    text: str = "{}"


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """``async with Receiver() as r``: r.url("/hook"), r.requests, r.script."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: list[Reply] = []
        self.port = 0
        self.release = anyio.Event()
        self._runner: web.AppRunner | None = None

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self._runner is not None
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        path = request.raw_path
        self.requests.append(
            Received(request.method, path, dict(request.headers), body, anyio.current_time())
        )
        reply = self.script.pop(0) if self.script else Reply()
        if reply.hang:
            await self.release.wait()
        return web.Response(status=reply.status, headers=reply.headers, text=reply.text)


async def until(check: Callable[[], bool], *, limit: float = 10.0) -> None:
    """Poll `check` until it holds (a safety net against a hang, not a speed limit)."""
    with anyio.fail_after(limit):
        while not check():  # noqa: ASYNC110 - the state polled has no event to wait on
            await anyio.sleep(0.01)
