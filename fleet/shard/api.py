"""``/api/shards``: which replica owns which cluster, as this replica sees it (read role)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fleet.shard.shards import Shards

__all__ = ["routes"]


def routes(shards: Shards[Any] | None) -> list[web.RouteDef]:
    """The shard's routes; none when the hub runs alone."""
    if shards is None:
        return []

    async def shard_status(_: web.Request) -> web.Response:
        return web.json_response(shards.snapshot())

    return [web.get("/api/shards", shard_status)]
