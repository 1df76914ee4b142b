"""The shard front hands a caller's token to no stranger (review of issue #17).

A real front (the :class:`fleet.shard.front.Front` middleware in an aiohttp server) sends a
request on to a real "peer": a plain aiohttp server, over HTTP or TLS, that counts what reaches it
and answers what the test says. Only the membership is a stand-in (the peer's advertised URL, as
a member lease would hold it): what is under test is what the front does with that URL. Asserted:
without TLS a token is sent to no one unless ``insecure_peers`` allows it; a URL with user info, a
path, query or fragment, or this replica's own URL is not asked; a redirect is not followed; under
TLS only a peer presenting our own certificate gets the token, not another one from the same CA;
a peer answering garbage (not UTF-8, nested too deep, too big) is a peer that answered badly,
its clusters unknown, and the merged answer is still a 200.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from fleet.controlplane.pki import issue_cluster_pki
from fleet.shard import front as shard_front
from fleet.shard.front import NEEDS_TLS, Front
from fleet.shard.shards import Shards

pytestmark = pytest.mark.anyio

TOKEN = "Bearer front-security-token"
_Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Members:
    """The part of :class:`Shards` the front reads: who we are, who the peer is, and where."""

    url: str  # the peer's advertised API URL, as its member lease holds it
    api_url: str = "http://127.0.0.1:1"  # this replica's own
    me: str = "me"
    entries: dict[str, Any] = field(default_factory=lambda: {"c-me": {}, "c-peer": {}})
    holders: dict[str, str] = field(default_factory=lambda: {"c-me": "me", "c-peer": "peer"})

    def peers(self) -> dict[str, str]:
        return {"peer": self.url}

    def owned(self, cluster: str) -> bool:
        return self.holders.get(cluster) == self.me


@dataclass
class Peer:
    """A server standing for a peer replica: the requests it got (path, query, headers)."""

    url: str
    seen: list[tuple[str, str, dict[str, str]]]
    answer: list[_Answer]  # what it answers next (settable by a test)


def _peer_status() -> dict[str, Any]:
    return {
        "apps": [],
        "clusters": [{"name": "c-peer", "state": "ready"}],
        "repos": [],
        "problems": [],
    }


async def _json(_: web.Request) -> web.StreamResponse:
    return web.json_response(_peer_status())


async def _serve(app: web.Application, *, tls: ssl.SSLContext | None = None) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls).start()
    return runner


def _port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])


@pytest.fixture
async def start_peer() -> AsyncIterator[Callable[..., Awaitable[Peer]]]:
    runners: list[web.AppRunner] = []

    async def start(*, tls: ssl.SSLContext | None = None) -> Peer:
        seen: list[tuple[str, str, dict[str, str]]] = []
        answer: list[_Answer] = [_json]

        async def handle(request: web.Request) -> web.StreamResponse:
            seen.append((request.path, request.query_string, dict(request.headers)))
            return await answer[0](request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = await _serve(app, tls=tls)
        runners.append(runner)
        scheme = "https" if tls is not None else "http"
        return Peer(f"{scheme}://127.0.0.1:{_port(runner)}", seen, answer)

    yield start
    for runner in runners:
        await runner.cleanup()


async def _ask(
    members: Members, *, path: str = "/api/status", token: str = TOKEN, **options: Any
) -> tuple[int, dict[str, Any]]:
    """`path` asked of a front over `members` (its local answer: the c-me cluster, ready)."""
    front = Front(cast(Shards[Any], members), **options)

    async def status(_: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "apps": [],
                "clusters": [{"name": "c-me", "state": "ready"}],
                "repos": [],
                "problems": [],
            }
        )

    async def events(_: web.Request) -> web.StreamResponse:
        return web.json_response({"events": []})

    app = web.Application(middlewares=[front.middleware()])
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/events", events)
    runner = await _serve(app)
    try:
        headers = {"Authorization": token} if token else {}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{_port(runner)}{path}", headers=headers) as response,
        ):
            return response.status, await response.json()
    finally:
        await runner.cleanup()


def _unknown(answer: dict[str, Any]) -> set[str]:
    return {c["name"] for c in answer["clusters"] if c["state"] == "unknown"}


def _not_asked(answer: dict[str, Any], why: str) -> None:
    """The peer is named as not asked for `why`, its cluster unknown, the board not green."""
    assert answer["replicas"]["peer"]["answered"] is False, answer["replicas"]
    assert why in answer["replicas"]["peer"]["error"], answer["replicas"]
    assert _unknown(answer) == {"c-peer"}, answer["clusters"]
    assert answer["summary"]["green"] is False


async def test_no_token_to_a_plaintext_peer_unless_allowed(
    start_peer: Callable[..., Awaitable[Peer]],
) -> None:
    peer = await start_peer()
    status, answer = await _ask(Members(peer.url))
    assert status == 200, answer
    _not_asked(answer, NEEDS_TLS)
    assert "not asked" in answer["replicas"]["peer"]["error"]
    assert peer.seen == []  # the token went nowhere

    # a call with no token carries nothing secret: sent on over plain HTTP
    status, answer = await _ask(Members(peer.url), token="")
    assert status == 200, answer
    assert answer["replicas"]["peer"]["answered"] is True, answer["replicas"]
    assert len(peer.seen) == 1 and "Authorization" not in peer.seen[0][2]

    # --shard-insecure-peers: the operator trusts the network; our path and query, nothing else
    status, answer = await _ask(Members(peer.url), path="/api/events?limit=5", insecure_peers=True)
    assert status == 200, answer
    assert answer["replicas"]["peer"]["answered"] is True, answer["replicas"]
    path, query, headers = peer.seen[-1]
    assert (path, query, headers["Authorization"]) == ("/api/events", "limit=5", TOKEN)
    assert headers[shard_front.FORWARDED] == "me"


@pytest.mark.parametrize(
    "shape",
    [
        "{url}/x#",  # our path would become a fragment
        "{url}#",
        "{url}/api",
        "{url}/?next=1",
        "{url}?",
        "http://user:secret@{hostport}",
        "ftp://{hostport}",
        "{url}/%2e%2e",
        "{url}/..",
    ],
)
async def test_a_peer_url_that_is_not_an_origin_is_not_asked(
    start_peer: Callable[..., Awaitable[Peer]], shape: str
) -> None:
    peer = await start_peer()
    url = shape.format(url=peer.url, hostport=peer.url.removeprefix("http://"))
    status, answer = await _ask(Members(url), insecure_peers=True)
    assert status == 200, answer
    _not_asked(answer, "its API URL")
    assert peer.seen == []


async def test_our_own_url_is_not_asked(start_peer: Callable[..., Awaitable[Peer]]) -> None:
    peer = await start_peer()
    status, answer = await _ask(Members(peer.url + "/", api_url=peer.url), insecure_peers=True)
    assert status == 200, answer
    _not_asked(answer, "this replica's own")
    assert peer.seen == []


async def test_a_redirect_is_not_followed(start_peer: Callable[..., Awaitable[Peer]]) -> None:
    elsewhere = await start_peer()
    peer = await start_peer()

    async def redirect(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{elsewhere.url}/steal")

    peer.answer[0] = redirect
    status, answer = await _ask(Members(peer.url), insecure_peers=True)
    assert status == 200, answer
    _not_asked(answer, "HTTP 302")
    assert len(peer.seen) == 1
    assert elsewhere.seen == []


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"\xff\xfe{not utf-8 \x80\x81", "not JSON"),
        (b"[" * 200_000 + b"]" * 200_000, "not JSON"),  # deep enough for RecursionError
        (b'{"error": "' + b"x" * (shard_front.MAX_ANSWER + 10) + b'"}', "more than"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b"", "not JSON"),
    ],
    ids=["not-utf8", "too-deep", "too-big", "not-an-object", "empty"],
)
async def test_a_peer_answering_garbage_answered_badly(
    start_peer: Callable[..., Awaitable[Peer]], body: bytes, said: str
) -> None:
    peer = await start_peer()

    async def garbage(_: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type="application/json")

    peer.answer[0] = garbage
    status, answer = await _ask(Members(peer.url), insecure_peers=True)
    assert status == 200, answer
    assert answer["replicas"]["peer"]["answered"] is False, answer["replicas"]
    error = answer["replicas"]["peer"]["error"]
    assert "answered badly" in error and said in error and len(error) < 1000, error
    assert _unknown(answer) == {"c-peer"}
    assert answer["summary"]["green"] is False
    assert len(peer.seen) == 1


def _server_tls(cert: bytes, key: bytes, where: Path) -> ssl.SSLContext:
    (where / "cert.pem").write_bytes(cert)
    (where / "key.pem").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(where / "cert.pem", where / "key.pem")
    return context


async def test_under_tls_only_our_own_certificate_gets_the_token(
    start_peer: Callable[..., Awaitable[Peer]], tmp_path: Path
) -> None:
    pki = issue_cluster_pki("front", hosts=["127.0.0.1", "localhost"])
    chain = tmp_path / "tls.crt"  # what --tls-cert holds: our leaf, then the CA
    chain.write_bytes(pki.serving.cert_pem + pki.ca.cert_pem)
    (tmp_path / "ours").mkdir()
    (tmp_path / "stranger").mkdir()
    ours = await start_peer(
        tls=_server_tls(pki.serving.cert_pem, pki.serving.key_pem, tmp_path / "ours")
    )
    # another certificate signed by the same CA: it chains, it is not ours
    stranger = await start_peer(
        tls=_server_tls(pki.admin.cert_pem, pki.admin.key_pem, tmp_path / "stranger")
    )

    status, answer = await _ask(Members(ours.url), tls_cert=chain)
    assert status == 200, answer
    assert answer["replicas"]["peer"]["answered"] is True, answer["replicas"]
    assert ours.seen[-1][2]["Authorization"] == TOKEN

    status, answer = await _ask(Members(stranger.url), tls_cert=chain)
    assert status == 200, answer
    _not_asked(answer, "cannot reach")
    assert stranger.seen == []

    # under TLS a peer at an http:// URL is not asked, even with --shard-insecure-peers
    plain = await start_peer()
    status, answer = await _ask(Members(plain.url), tls_cert=chain, insecure_peers=True)
    assert status == 200, answer
    _not_asked(answer, "not https")
    assert plain.seen == []
