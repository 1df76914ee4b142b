"""Any replica answers the API for the whole fleet: reads merged, control calls sent on.

A platform team puts one Service in front of the N replicas and expects every answer to be the
fleet's, whichever replica the Service picked. A replica holds the records of its own clusters
only (they live in its memory, written by its reconciles), so this aiohttp middleware, installed
after the authentication guard, makes the replica asked the front of the others:

- **reads** (``GET /api/status``, ``/api/events``, ``/api/apps/{app}``): answered locally, then
  the same request is sent to every other live member at once and the answers merged
  (:mod:`fleet.shard.merging`); a member that does not answer within ``PEER_TIMEOUT`` is named
  in ``replicas`` and ``problems``, and its clusters are rows in state ``unknown``, never green.
  Merging rather than forwarding to one place: there is no single holder of the fleet's status.
- **control calls for one cluster** (``POST /api/apps/{app}/sync|refresh?cluster=C``): sent to
  the holder of C's lease (the only replica that may write to C), whose answer comes back with
  ``"replica"`` naming it; C unknown to the fleet is a 404, C held by no live replica a 503, each
  naming the cluster.
- **control calls for an app on every cluster**, and **every suspend or resume**: sent to every
  live member, answers merged (each target with its replica). Suspensions are kept in each
  replica's state directory, so every replica learns each one and a cluster that changes hands
  stays suspended.

Members are found in the shard's leases, each with the API URL written on its member lease
(``fleet.dev/api-url``). A request sent on carries the caller's own ``Authorization`` header
(every replica reads the same token file) and ``X-Fleet-Forwarded-By: <replica>``; a request
carrying that header is answered locally only, so nothing is sent on twice. The hub never
sends a credential of its own. A caller signed in by a browser session (which only the replica
that made it knows) is not sent on: the others are named as not asked, their clusters unknown.
Under TLS a peer must present a certificate that chains to the hub's own ``--tls-cert`` (the
replicas share it), so the caller's token goes to no one else.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from aiohttp import web

from fleet.shard.merging import Answer, merge_control, merge_events, merge_status, replicas
from fleet.shard.shards import Shards

__all__ = ["CLUSTER_CHECKED", "FORWARDED", "PEER_TIMEOUT", "Front", "peer_ssl"]

log = logging.getLogger(__name__)

FORWARDED = "X-Fleet-Forwarded-By"
CLUSTER_CHECKED = "fleet.cluster_checked"  # request key: this front found the cluster in the fleet
PEER_TIMEOUT = 5.0  # seconds a peer may take to answer before it counts as silent
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_READS = {"/api/status", "/api/events", "/api/apps/{app}"}
_TO_OWNER = {"/api/apps/{app}/sync": "syncing", "/api/apps/{app}/refresh": "refreshed"}
_TO_ALL = {
    "/api/apps/{app}/suspend": "suspended",
    "/api/apps/{app}/resume": "resumed",
    "/api/clusters/{cluster}/suspend": "suspended",
    "/api/clusters/{cluster}/resume": "resumed",
}


def peer_ssl(tls_cert: Path | None) -> ssl.SSLContext | bool:
    """How peers are verified: under TLS, by chaining to the hub's own certificate (shared by
    every replica; a peer's address is a Pod IP the certificate does not name, so the name is
    not checked, the certificate is); plain HTTP otherwise."""
    if tls_cert is None:
        return True
    context = ssl.create_default_context(cafile=str(tls_cert))
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def _body(response: web.StreamResponse) -> dict[str, Any] | None:
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        return None
    try:
        found = json.loads(response.body)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


class Front:
    """The middleware of one replica (:meth:`middleware`), sending on through its `shards`."""

    def __init__(
        self, shards: Shards[Any], *, tls_cert: Path | None = None, session_cookie: str = ""
    ) -> None:
        self.shards = shards
        self._ssl = peer_ssl(tls_cert)
        self._session_cookie = session_cookie  # a browser's sign-in, held by one replica only
        self.sent = 0  # requests sent on to peers (for tests and debugging)

    def middleware(self) -> Any:
        @web.middleware
        async def front(request: web.Request, handler: _Handler) -> web.StreamResponse:
            if FORWARDED in request.headers:
                return await handler(request)
            return await self._route(request, handler)

        return front

    async def _route(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        pattern = route.canonical if route is not None else ""
        if request.method == "GET" and pattern in _READS:
            return await self._read(request, handler, pattern)
        if request.method == "POST" and pattern in _TO_OWNER:
            if request.rel_url.query.get("cluster"):
                return await self._to_owner(request, handler, _TO_OWNER[pattern])
            return await self._to_all(request, handler, _TO_OWNER[pattern])
        if request.method != "POST" or pattern not in _TO_ALL:
            return await handler(request)
        cluster = request.match_info.get("cluster")
        if cluster is not None:
            if cluster not in self.shards.entries:
                return self._no_cluster(cluster)
            request[CLUSTER_CHECKED] = True  # the local answer: known, though not held here
        return await self._to_all(request, handler, _TO_ALL[pattern])

    # -- reads ------------------------------------------------------------------------------------

    async def _read(
        self, request: web.Request, handler: _Handler, pattern: str
    ) -> web.StreamResponse:
        local = await handler(request)
        body = _body(local)
        if local.status != 200 or body is None:
            return local
        answers = [Answer(self.shards.me, body, url=self.shards.api_url)]
        answers += await self._ask_peers(request)
        if pattern == "/api/status":
            merged = merge_status(
                answers,
                me=self.shards.me,
                entries=list(self.shards.entries),
                holders=self.shards.holders,
            )
        elif pattern == "/api/events":
            merged = merge_events(answers, limit=_limit(request))
        else:
            merged = _merge_detail(answers)
        return web.json_response(merged)

    # -- control ----------------------------------------------------------------------------------

    async def _to_owner(
        self, request: web.Request, handler: _Handler, verb: str
    ) -> web.StreamResponse:
        cluster = request.rel_url.query["cluster"]
        shards = self.shards
        if cluster not in shards.entries:
            return self._no_cluster(cluster)
        holder = shards.holders.get(cluster, "")
        if holder == shards.me or shards.owned(cluster):
            return _tag(await handler(request), shards.me)
        peers = shards.peers()
        if not holder or holder not in peers:
            why = (
                f"held by {holder}, which is not a live member" if holder else "held by no replica"
            )
            return web.json_response(
                {
                    "error": f"cluster {cluster}: {why}; nothing was done. Try again within a "
                    f"lease duration ({shards.settings.lease_seconds:g}s), once a live replica "
                    "holds it (see /api/shards)",
                    "cluster": cluster,
                },
                status=503,
            )
        answer, status = await self._send(request, holder, peers[holder])
        if answer.body is None:
            return web.json_response(
                {
                    "error": f"cluster {cluster}: replica {holder}, which holds it, did not "
                    f"carry out the {verb} call: {answer.error}",
                    "cluster": cluster,
                    "replica": holder,
                },
                status=status if status >= 400 else 502,
            )
        return web.json_response({**answer.body, "replica": holder}, status=status)

    async def _to_all(
        self, request: web.Request, handler: _Handler, verb: str
    ) -> web.StreamResponse:
        local = await handler(request)
        body = _body(local)
        if local.status != 200 or body is None:
            return local
        answers = [Answer(self.shards.me, body, url=self.shards.api_url)]
        answers += await self._ask_peers(request)
        merged = merge_control(answers, verb=verb)
        silent = [a for a in answers if not a.answered]
        if not silent:
            return web.json_response(merged)
        merged["error"] = (
            "; ".join(f"replica {a.replica} did not carry it out ({a.error})" for a in silent)
            + " (the others did: see replicas; send the call again)"
        )
        return web.json_response(merged, status=502)

    def _no_cluster(self, cluster: str) -> web.Response:
        return web.json_response(
            {
                "error": f"no cluster {cluster!r} in the fleet (no entry in clusters/ of replica "
                f"{self.shards.me})",
                "cluster": cluster,
            },
            status=404,
        )

    # -- the peers --------------------------------------------------------------------------------

    async def _ask_peers(self, request: web.Request) -> list[Answer]:
        peers = self.shards.peers()
        found: dict[str, Answer] = {}

        async def one(peer: str, url: str) -> None:
            found[peer], _ = await self._send(request, peer, url)

        async with anyio.create_task_group() as group:
            for peer, url in sorted(peers.items()):
                group.start_soon(one, peer, url)
        return [found[p] for p in sorted(found)]

    async def _send(self, request: web.Request, peer: str, url: str) -> tuple[Answer, int]:
        """`request` sent to `peer` at `url`, with the caller's credentials; its answer and
        HTTP status (0 when none came)."""
        if not url:
            return Answer(peer, error="it has not published its API URL yet"), 0
        headers = {FORWARDED: self.shards.me, "Accept": "application/json"}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        elif self._session_cookie and self._session_cookie in request.cookies:
            error = (
                "not asked: the caller signed in with a browser session, which only this "
                "replica knows; call with a bearer token for the whole fleet"
            )
            return Answer(peer, error=error, url=url), 0
        timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT)
        self.sent += 1
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.request(
                    request.method, url + request.path_qs, headers=headers, ssl=self._ssl
                ) as response,
            ):
                status = response.status
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = (
                f"no answer within {PEER_TIMEOUT:g}s"
                if isinstance(exc, TimeoutError)
                else (f"cannot reach {url}: {type(exc).__name__}")
            )
            log.warning(
                "event=shard_peer_silent replica=%s peer=%s path=%s error=%s",
                self.shards.me,
                peer,
                request.path,
                json.dumps(error),
            )
            return Answer(peer, error=error, url=url), 0
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if status == 200 and isinstance(body, dict):
            return Answer(peer, body, url=url), status
        said = body.get("error") if isinstance(body, dict) else ""
        error = f"HTTP {status}" + (f": {said}" if said else "")
        log.warning(
            "event=shard_peer_refused replica=%s peer=%s path=%s status=%d",
            self.shards.me,
            peer,
            request.path,
            status,
        )
        return Answer(peer, error=error, url=url), status


def _limit(request: web.Request) -> int:
    try:
        return max(1, min(1000, int(request.rel_url.query.get("limit", "100"))))
    except ValueError:
        return 100


def _tag(response: web.StreamResponse, replica: str) -> web.StreamResponse:
    body = _body(response)
    if body is None:
        return response
    return web.json_response({**body, "replica": replica}, status=response.status)


def _merge_detail(answers: list[Answer]) -> dict[str, Any]:
    """``/api/apps/{app}``: every replica's targets of the app, and their events."""
    base: dict[str, Any] = {}
    targets: list[dict[str, Any]] = []
    for answer in answers:
        if answer.body is None:
            continue
        base = base or dict(answer.body)
        for item in answer.body.get("targets") or []:
            if isinstance(item, Mapping):
                targets.append({**item, "replica": answer.replica})
    targets.sort(key=lambda t: str(t.get("cluster")))
    events = merge_events(answers, limit=50)["events"]
    return {**base, "targets": targets, "events": events, "replicas": replicas(answers)}
