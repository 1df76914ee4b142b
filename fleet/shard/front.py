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

A member lease is written by whoever may write Leases in the shard's namespace, so its URL is
checked before anything is sent (:func:`peer_base`): http or https, a host, no user info, no
path, query or fragment, and not this replica's own URL (a loop); the request is built from its
scheme, host and port with our path and query (never by pasting strings), and a redirect is not
followed. Under TLS (``--tls-cert``) a peer must be https and present the very certificate this
hub serves (the replicas mount the same one; SHA-256 of the DER leaf, :func:`peer_ssl`): a Pod IP
is not a name a certificate holds, and a chain to a shared CA would trust every certificate that
CA signed. Without TLS a bearer token is sent to no peer unless ``--shard-insecure-peers`` says
the network is trusted: the others are named as not asked, their clusters unknown. An answer is
read up to ``MAX_ANSWER`` bytes; one too big, not UTF-8 or not JSON is a peer that answered
badly (its clusters unknown), never an error of the merged answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from aiohttp import web
from yarl import URL

from fleet.shard.merging import Answer, merge_control, merge_events, merge_status, replicas
from fleet.shard.shards import Shards

__all__ = [
    "CLUSTER_CHECKED",
    "FORWARDED",
    "MAX_ANSWER",
    "NEEDS_TLS",
    "PEER_TIMEOUT",
    "Front",
    "peer_base",
    "peer_ssl",
]

log = logging.getLogger(__name__)

FORWARDED = "X-Fleet-Forwarded-By"
CLUSTER_CHECKED = "fleet.cluster_checked"  # request key: this front found the cluster in the fleet
PEER_TIMEOUT = 5.0  # seconds a peer may take to answer before it counts as silent
MAX_ANSWER = 8 * 1024 * 1024  # bytes of a peer's answer read at most
NEEDS_TLS = "forwarding a token needs TLS (--tls-cert) or --shard-insecure-peers"
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_READS = {"/api/status", "/api/events", "/api/apps/{app}"}
_TO_OWNER = {"/api/apps/{app}/sync": "syncing", "/api/apps/{app}/refresh": "refreshed"}
_TO_ALL = {
    "/api/apps/{app}/suspend": "suspended",
    "/api/apps/{app}/resume": "resumed",
    "/api/clusters/{cluster}/suspend": "suspended",
    "/api/clusters/{cluster}/resume": "resumed",
}


def peer_ssl(tls_cert: Path | None) -> aiohttp.Fingerprint | bool:
    """How peers are verified: under TLS, by the SHA-256 of the first (leaf) certificate of the
    hub's own `tls_cert`, which every replica serves (a peer's address is a Pod IP the
    certificate does not name, and a chain would trust anything its CA signed); no TLS: True,
    and tokens go to no peer unless the operator allows plaintext peers (:class:`Front`).
    ValueError names the file when it holds no certificate."""
    if tls_cert is None:
        return True
    text = tls_cert.read_text(encoding="ascii", errors="replace")
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        raise ValueError(f"--tls-cert {tls_cert}: no PEM certificate in it")
    der = ssl.PEM_cert_to_DER_cert(text[start : stop + len(end)])
    return aiohttp.Fingerprint(hashlib.sha256(der).digest())


def peer_base(url: str, *, own: str, tls: bool) -> URL:
    """The scheme, host and port of a peer's advertised `url`, checked; ValueError says what is
    wrong with it. `own`: this replica's advertised URL (a peer at it would be a loop); `tls`:
    this hub serves TLS, so the peer must too."""
    try:
        found = URL(url, encoded=True)  # as written: no dot segments resolved away
    except ValueError as exc:
        raise ValueError(f"its API URL {url} does not parse ({exc})") from None
    if found.scheme not in ("http", "https") or not found.host:
        raise ValueError(f"its API URL {url} is not http(s)://HOST:PORT")
    if found.raw_user is not None or found.raw_password is not None:
        raise ValueError("its API URL holds user info (a name or password before the host)")
    if found.raw_path not in ("", "/") or found.raw_query_string or found.raw_fragment:
        raise ValueError(f"its API URL {url} has a path, query or fragment")
    if "#" in url or "?" in url:  # an empty fragment or query parses as none
        raise ValueError(f"its API URL {url} has a path, query or fragment")
    if tls and found.scheme != "https":
        raise ValueError(f"its API URL {url} is not https, and this hub serves TLS")
    base = URL.build(scheme=found.scheme, host=found.host, port=found.port)
    if base == _origin(own):
        raise ValueError(f"its API URL {url} is this replica's own")
    return base


def _origin(url: str) -> URL | None:
    try:
        found = URL(url)
    except ValueError:
        return None
    if not found.host or found.scheme not in ("http", "https"):
        return None
    return URL.build(scheme=found.scheme, host=found.host, port=found.port)


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
        self,
        shards: Shards[Any],
        *,
        tls_cert: Path | None = None,
        session_cookie: str = "",
        insecure_peers: bool = False,
    ) -> None:
        """`insecure_peers` (``--shard-insecure-peers``): without TLS, a caller's token may still
        be sent on to plaintext peers (a network the operator trusts)."""
        self.shards = shards
        self._tls = tls_cert is not None
        self._ssl = peer_ssl(tls_cert)
        self._insecure_peers = insecure_peers
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
        try:
            base = peer_base(url, own=self.shards.api_url, tls=self._tls)
        except ValueError as exc:
            return self._not_asked(request, peer, url, str(exc)), 0
        headers = self._headers(request, peer, url)
        if isinstance(headers, Answer):
            return headers, 0
        target = URL.build(
            scheme=base.scheme,
            host=base.raw_host or "",
            port=base.port,
            path=request.path,
            query=request.query,
        )
        timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT)
        self.sent += 1
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.request(
                    request.method,
                    target,
                    headers=headers,
                    ssl=self._ssl,
                    allow_redirects=False,
                ) as response,
            ):
                status = response.status
                data = await _read_capped(response)
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
        body: Any = None
        if data is None:
            said = f"answered badly: more than {MAX_ANSWER} bytes"
        else:
            try:
                body = json.loads(data.decode("utf-8", errors="replace"))
                said = ""
            except (ValueError, RecursionError):
                said = "answered badly: not JSON"
        if status == 200 and isinstance(body, dict):
            return Answer(peer, body, url=url), status
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            said = body["error"][:500]
        elif not said and status == 200:
            said = "answered badly: not a JSON object"
        error = f"HTTP {status}" + (f": {said}" if said else "")
        log.warning(
            "event=shard_peer_refused replica=%s peer=%s path=%s status=%d",
            self.shards.me,
            peer,
            request.path,
            status,
        )
        return Answer(peer, error=error, url=url), status

    def _headers(self, request: web.Request, peer: str, url: str) -> dict[str, str] | Answer:
        """The headers of `request` sent on to `peer`, or why it is not asked."""
        headers = {FORWARDED: self.shards.me, "Accept": "application/json"}
        if "Authorization" in request.headers:
            if not self._tls and not self._insecure_peers:
                return self._not_asked(request, peer, url, NEEDS_TLS)
            headers["Authorization"] = request.headers["Authorization"]
        elif self._session_cookie and self._session_cookie in request.cookies:
            error = (
                "not asked: the caller signed in with a browser session, which only this "
                "replica knows; call with a bearer token for the whole fleet"
            )
            return Answer(peer, error=error, url=url)
        return headers

    def _not_asked(self, request: web.Request, peer: str, url: str, why: str) -> Answer:
        log.warning(
            "event=shard_peer_not_asked replica=%s peer=%s path=%s reason=%s",
            self.shards.me,
            peer,
            request.path,
            json.dumps(why),
        )
        return Answer(peer, error=f"not asked: {why}", url=url)


async def _read_capped(response: aiohttp.ClientResponse) -> bytes | None:
    """The body of `response`, or None when it is longer than ``MAX_ANSWER`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


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
