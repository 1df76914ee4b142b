"""Webhooks: verification and parsing (pure: GitHub HMAC-SHA256 chunk by chunk, GitLab token),
then the server's intake served for real and driven from raw sockets, so that what a client sees
while it is still sending is observable: refusals on the headers, the size cap, the read timeout,
the cap on unverified bodies in flight, slow headers."""

from __future__ import annotations

import hashlib
import hmac
import json

import anyio
import anyio.abc
import pytest

from fleet.hub import intake, server, webhooks
from tests.hub.test_server import RecordingHub, running, sign

pytestmark = pytest.mark.anyio

SECRET = "s3cret"
GITHUB_PUSH = json.dumps(
    {
        "ref": "refs/heads/main",
        "after": "0123456789abcdef0123456789abcdef01234567",
        "repository": {
            "clone_url": "https://github.com/team/config.git",
            "ssh_url": "git@github.com:team/config.git",
            "html_url": "https://github.com/team/config",
        },
    }
).encode()
GITLAB_PUSH = json.dumps(
    {
        "ref": "refs/heads/main",
        "checkout_sha": "feedface" * 5,
        "project": {
            "git_http_url": "https://gitlab.example.com/team/config.git",
            "git_ssh_url": "git@gitlab.example.com:team/config.git",
        },
    }
).encode()


def _sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_github_push() -> None:
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": _sign(GITHUB_PUSH)}
    push = webhooks.parse_github(headers, GITHUB_PUSH, secret=SECRET)
    assert push is not None
    assert push.ref == "refs/heads/main"
    assert push.urls == (
        "https://github.com/team/config.git",
        "git@github.com:team/config.git",
        "https://github.com/team/config",
    )


@pytest.mark.parametrize(
    "signature", ["", "sha256=00", _sign(GITHUB_PUSH, "other"), _sign(GITHUB_PUSH + b" ")]
)
def test_github_bad_signature_is_401(signature: str) -> None:
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature}
    with pytest.raises(webhooks.WebhookError) as caught:
        webhooks.parse_github(headers, GITHUB_PUSH, secret=SECRET)
    assert caught.value.status == 401


def test_github_without_secret_refuses() -> None:
    with pytest.raises(webhooks.WebhookError, match="no GitHub webhook secret"):
        webhooks.parse_github({"X-GitHub-Event": "push"}, GITHUB_PUSH, secret="")


def test_github_ping_moves_nothing() -> None:
    body = b'{"zen": "hi"}'
    headers = {"X-GitHub-Event": "ping", "X-Hub-Signature-256": _sign(body)}
    assert webhooks.parse_github(headers, body, secret=SECRET) is None


def test_gitlab_push_and_bad_token() -> None:
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
    push = webhooks.parse_gitlab(headers, GITLAB_PUSH, secret=SECRET)
    assert push is not None and push.after == "feedface" * 5
    assert push.urls[0] == "https://gitlab.example.com/team/config.git"
    with pytest.raises(webhooks.WebhookError) as caught:
        webhooks.parse_gitlab({**headers, "X-Gitlab-Token": "nope"}, GITLAB_PUSH, secret=SECRET)
    assert caught.value.status == 401


def test_signed_garbage_is_400() -> None:
    body = b"not json"
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": _sign(body)}
    with pytest.raises(webhooks.WebhookError) as caught:
        webhooks.parse_github(headers, body, secret=SECRET)
    assert caught.value.status == 400


# -- the two steps: headers alone, then the body as it streams -------------------------------------


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("", "is missing"),
        ("sha1=" + "0" * 40, "not of the form"),
        ("sha256=zz", "not of the form"),
    ],
)
def test_github_headers_alone_refuse_a_bad_signature_form(signature: str, reason: str) -> None:
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature}
    with pytest.raises(webhooks.WebhookError, match=reason) as caught:
        webhooks.github_check(headers, secret=SECRET)
    assert caught.value.status == 401


def test_gitlab_token_is_checked_on_the_headers_alone() -> None:
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"}
    with pytest.raises(webhooks.WebhookError) as caught:
        webhooks.gitlab_check(headers, secret=SECRET)
    assert caught.value.status == 401
    check = webhooks.gitlab_check({**headers, "X-Gitlab-Token": SECRET}, secret=SECRET)
    assert check.authenticated, "a GitLab body is proven by its headers"


def test_github_hmac_is_computed_chunk_by_chunk() -> None:
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": _sign(GITHUB_PUSH).upper()}
    check = webhooks.github_check(headers, secret=SECRET)
    assert not check.authenticated, "a GitHub body is unproven until its last byte"
    for start in range(0, len(GITHUB_PUSH), 7):
        check.update(GITHUB_PUSH[start : start + 7])
    push = check.finish(GITHUB_PUSH)
    assert push is not None and push.after.startswith("0123456789")


def test_github_chunks_that_differ_from_the_signed_body_are_refused() -> None:
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": _sign(GITHUB_PUSH)}
    check = webhooks.github_check(headers, secret=SECRET)
    check.update(GITHUB_PUSH[:-1])
    with pytest.raises(webhooks.WebhookError, match="does not match the body") as caught:
        check.finish(GITHUB_PUSH[:-1])
    assert caught.value.status == 401


# -- the intake, served for real and driven from raw sockets ---------------------------------------

LIMITS = intake.HttpLimits(
    webhook_body=1024, body_timeout=0.5, unauthenticated_bodies=2, header_timeout=0.6, linger=0.2
)
SMALL_PUSH = b'{"ref": "refs/heads/main", "repository": {"clone_url": "https://x/y.git"}}'


def _settings(limits: intake.HttpLimits = LIMITS) -> server.ServerSettings:
    return server.ServerSettings(port=0, github_secret=SECRET, gitlab_token=SECRET, limits=limits)


def request_head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _github(body_length: int, signature: str) -> dict[str, str]:
    return {
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": signature,
        "Content-Length": str(body_length),
    }


async def read_response(stream: anyio.abc.SocketStream, *, limit: float = 5.0) -> tuple[int, bytes]:
    """The status and the raw bytes of the first response on `stream` (its head and body)."""
    data = b""
    with anyio.fail_after(limit):
        while b"\r\n\r\n" not in data:
            data += await stream.receive()
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += await stream.receive()
    return int(head.split(b" ", 2)[1]), data


async def _closed(stream: anyio.abc.SocketStream, *, limit: float) -> bool:
    """The server closed `stream` within `limit` seconds (whatever it still sent is read)."""
    with anyio.move_on_after(limit):
        try:
            while await stream.receive():
                pass
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
            return True
    return False


async def test_declared_oversize_body_is_refused_before_it_is_sent() -> None:
    hub = RecordingHub()
    async with (
        running(hub, _settings()) as port,
        await anyio.connect_tcp("127.0.0.1", port) as stream,
    ):
        await stream.send(request_head("/webhooks/github", _github(10 * 2**20, sign(b"x"))))
        status, data = await read_response(stream)
        assert status == 413 and b"over the cap of 1024" in data
        assert b"Connection: close" in data
        assert await _closed(stream, limit=2.0)
    assert hub.pushes == []


async def test_streamed_oversize_body_is_cut_at_the_cap() -> None:
    hub = RecordingHub()
    async with (
        running(hub, _settings()) as port,
        await anyio.connect_tcp("127.0.0.1", port) as stream,
    ):
        headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(b"x"),
                   "Transfer-Encoding": "chunked"}  # fmt: skip
        await stream.send(request_head("/webhooks/github", headers))
        chunk = b"200\r\n" + b"a" * 512 + b"\r\n"
        await stream.send(chunk * 3)  # 1536 bytes: past the cap of 1024
        status, data = await read_response(stream)
        assert status == 413 and b"the body is over the cap of 1024 bytes" in data
        assert await _closed(stream, limit=2.0), "the rest is not read: the socket closes"
    assert hub.pushes == []


async def test_slow_body_is_dropped_after_the_read_timeout() -> None:
    hub = RecordingHub()
    async with (
        running(hub, _settings()) as port,
        await anyio.connect_tcp("127.0.0.1", port) as stream,
    ):
        await stream.send(
            request_head("/webhooks/github", _github(len(SMALL_PUSH), sign(SMALL_PUSH)))
        )
        started = anyio.current_time()
        await stream.send(SMALL_PUSH[:10])
        status, data = await read_response(stream)
        waited = anyio.current_time() - started
        assert status == 408 and b"did not arrive within 0.5 s" in data
        assert 0.45 <= waited < 3.0
        assert await _closed(stream, limit=2.0)
    assert hub.pushes == []


async def test_gitlab_wrong_token_is_answered_while_the_client_still_sends() -> None:
    hub = RecordingHub()
    async with (
        running(hub, _settings()) as port,
        await anyio.connect_tcp("127.0.0.1", port) as stream,
    ):
        headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong",
                   "Content-Length": "1000"}  # fmt: skip
        await stream.send(request_head("/webhooks/gitlab", headers) + b"{" * 100)
        status, data = await read_response(stream)  # 900 bytes are still to come
        assert status == 401 and b"X-Gitlab-Token does not match" in data
    assert hub.pushes == []


async def test_github_without_a_signature_is_answered_before_the_body() -> None:
    async with (
        running(RecordingHub(), _settings()) as port,
        await anyio.connect_tcp("127.0.0.1", port) as stream,
    ):
        headers = {"X-GitHub-Event": "push", "Content-Length": "1000"}
        await stream.send(request_head("/webhooks/github", headers))  # not a byte of the body
        status, data = await read_response(stream)
        assert status == 401 and b"X-Hub-Signature-256 is missing" in data


async def test_expect_continue_is_refused_on_the_headers() -> None:
    hub = RecordingHub()
    async with running(hub, _settings()) as port:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong",
                       "Content-Length": "500", "Expect": "100-continue"}  # fmt: skip
            await stream.send(request_head("/webhooks/gitlab", headers))
            status, _ = await read_response(stream)
            assert status == 401, "a refusal instead of 100 Continue"
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            headers = {**_github(len(SMALL_PUSH), sign(SMALL_PUSH)), "Expect": "100-continue"}
            await stream.send(request_head("/webhooks/github", headers))
            status, _ = await read_response(stream)
            assert status == 100
            await stream.send(SMALL_PUSH)
            status, data = await read_response(stream)
            assert status == 200 and b'"moved": 1' in data
    assert len(hub.pushes) == 1


async def _slow_github(port: int) -> anyio.abc.SocketStream:
    """A GitHub request whose headers are whole and whose body has barely started."""
    stream = await anyio.connect_tcp("127.0.0.1", port)
    await stream.send(request_head("/webhooks/github", _github(len(SMALL_PUSH), sign(SMALL_PUSH))))
    await stream.send(SMALL_PUSH[:5])
    return stream


async def _signed_push(port: int) -> tuple[int, bytes]:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(
            request_head("/webhooks/github", _github(len(SMALL_PUSH), sign(SMALL_PUSH)))
        )
        await stream.send(SMALL_PUSH)
        return await read_response(stream)


async def test_unverified_bodies_in_flight_are_capped() -> None:
    hub = RecordingHub()
    limits = intake.HttpLimits(unauthenticated_bodies=2, body_timeout=5.0, eviction_grace=0.5)
    async with running(hub, _settings(limits)) as port:
        slow = [await _slow_github(port) for _ in range(2)]
        await anyio.sleep(0.1)
        status, data = await _signed_push(port)
        assert status == 503 and b"Retry-After: 1" in data, "both places are young: refused"
        async with await anyio.connect_tcp("127.0.0.1", port) as gitlab:
            headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET,
                       "Content-Length": str(len(SMALL_PUSH))}  # fmt: skip
            await gitlab.send(request_head("/webhooks/gitlab", headers) + SMALL_PUSH)
            status, _ = await read_response(gitlab)
            assert status == 200, "a body proven by its token does not count against the cap"
        await slow[0].aclose()  # a client that goes away frees its place at once
        await anyio.sleep(0.1)
        status, _ = await _signed_push(port)
        assert status == 200
        slow[0] = await _slow_github(port)
        await anyio.sleep(0.6)  # both slow bodies are now past the grace
        status, _ = await _signed_push(port)
        assert status == 200, "a new body takes the place of the oldest slow one"
        status, data = await read_response(slow[1])
        assert status == 503 and b"the slowest of too many unverified" in data
        status, _ = await _signed_push(port)
        assert status == 200, "the place of a finished push is free again"
        for stream in slow:
            await stream.aclose()
    assert len(hub.pushes) == 4


async def test_slow_headers_are_dropped_after_the_header_timeout() -> None:
    async with (
        running(RecordingHub(), _settings()) as port,
        await anyio.connect_tcp("127.0.0.1", port) as stream,
    ):
        started = anyio.current_time()
        await stream.send(b"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed_after = None
        with anyio.move_on_after(5.0):
            try:
                for _ in range(100):
                    await stream.send(b"X-Slow: a\r\n")
                    await anyio.sleep(0.1)
            except (anyio.BrokenResourceError, ConnectionError):
                closed_after = anyio.current_time() - started
        if closed_after is None and await _closed(stream, limit=0.5):
            closed_after = anyio.current_time() - started
        assert closed_after is not None, "a connection trickling headers is closed"
        assert 0.5 <= closed_after < 3.0


async def test_connections_past_the_cap_are_closed_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits = intake.HttpLimits(max_connections=5, header_timeout=30.0)
    async with running(RecordingHub(), _settings(limits)) as port:
        idle = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(5)]
        await anyio.sleep(0.1)
        async with await anyio.connect_tcp("127.0.0.1", port) as sixth:
            await sixth.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert await _closed(sixth, limit=1.0), "the sixth is closed, unanswered"
        assert "event=connections_refused limit=5 refused_so_far=1" in caplog.text
        await idle[0].aclose()
        await anyio.sleep(0.1)
        async with await anyio.connect_tcp("127.0.0.1", port) as again:
            await again.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, _ = await read_response(again)
            assert status == 200, "a place freed is a place taken"
        for stream in idle[1:]:
            await stream.aclose()
