"""The hub's HTTP surface under hostile clients, with the hub as a ``fleet run`` subprocess.

Each test drives the real hub (tests/faults/faultkit.py: git over HTTP, the hub in its own
process, so psutil sees its memory alone) from raw sockets, as an attacker or a broken proxy
would: bodies far over the cap, bodies and headers that trickle, many at once, a signature that
is wrong from the first byte. It asserts what an operator cares about: the hub stays alive,
memory stays flat, a real signed push is still answered, and the answer says what happened.
No kit cluster is needed: the HTTP surface is the same with or without clusters.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import aiohttp
import anyio
import anyio.abc
import pytest

from tests.faults.faultkit import SECRET, FaultRig, fault_rig
from tests.hub.test_server import sign
from tests.hub.test_webhooks import read_response, request_head

pytestmark = pytest.mark.anyio

MiB = 2**20
PUSH = json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": "x"}}).encode()


def _config(rig: FaultRig, *urls: str) -> None:
    apps = "".join(
        f"""  - name: app{i}
    source: {{repoURL: "{url}", targetRevision: main, path: app}}
    destination: {{namespace: app{i}}}
"""
        for i, url in enumerate(urls)
    )
    rig.write_config(f"apps:\n{apps}")


def _one_app(rig: FaultRig) -> str:
    remote = rig.remote("config")
    remote.commit({"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"})
    url = rig.url("config")
    _config(rig, url)
    return url


def _github_headers(length: int | None, *, signature: str = "sha256=" + "0" * 64) -> dict[str, str]:
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature}
    if length is None:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(length)
    return headers


async def _refusal_of_a_big_body(
    port: int, headers: dict[str, str], *, size: int, chunked: bool
) -> tuple[int, int]:
    """Send `headers` and up to `size` bytes of body while reading the answer: (status, sent)."""
    sent = 0
    status = 0
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(request_head("/webhooks/github", headers))

        async def send_body() -> None:
            nonlocal sent
            piece = b"x" * (64 * 2**10)
            framed = b"10000\r\n" + piece + b"\r\n" if chunked else piece
            try:
                while sent < size:
                    await stream.send(framed)
                    sent += len(piece)
            except (anyio.BrokenResourceError, ConnectionError):
                pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(send_body)
            status, _ = await read_response(stream, limit=30)
            tg.cancel_scope.cancel()
    return status, sent


async def test_big_bodies_are_refused_and_memory_stays_flat(tmp_path: Path) -> None:
    with fault_rig(tmp_path) as rig:
        url = _one_app(rig)
        hub = rig.hub()
        assert await hub.webhook(url) in (200, 202)  # warm: the intake has served once
        before = hub.rss_mib()
        results: list[tuple[str, int, int]] = []

        async def one(kind: str) -> None:
            if kind == "unsigned":
                headers = _github_headers(5 * MiB, signature="")
                headers.pop("X-Hub-Signature-256")
            elif kind == "declared":
                headers = _github_headers(5 * MiB)
            else:
                headers = _github_headers(None)
            status, sent = await _refusal_of_a_big_body(
                hub.port, headers, size=5 * MiB, chunked=kind == "chunked"
            )
            results.append((kind, status, sent))

        async with anyio.create_task_group() as tg:  # 30 at once, 10 of each kind
            for kind in ("unsigned", "declared", "chunked") * 10:
                tg.start_soon(one, kind)
        after = hub.rss_mib()
        assert hub.alive()
        by_kind = Counter((kind, status) for kind, status, _ in results)
        assert by_kind == {("unsigned", 401): 10, ("declared", 413): 10, ("chunked", 413): 10}
        print(f"hub RSS {before:.1f} MiB -> {after:.1f} MiB after 30 refused 5 MiB bodies")
        assert after - before < 25, f"RSS grew from {before:.1f} to {after:.1f} MiB"
        assert await hub.webhook(url) in (200, 202), "a signed push is still answered"


async def test_slow_clients_do_not_hold_the_hub(tmp_path: Path) -> None:
    """100 sockets trickling headers and 100 trickling bodies; a signed push still goes through,
    and every slow socket is let go by the timeouts (15 s headers, 10 s bodies)."""
    with fault_rig(tmp_path) as rig:
        url = _one_app(rig)
        hub = rig.hub()
        ended: dict[str, list[tuple[str, float]]] = {"headers": [], "body": []}
        started = anyio.current_time()

        async def slow_headers() -> None:
            async with await anyio.connect_tcp("127.0.0.1", hub.port) as stream:
                await stream.send(b"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                outcome = "held"
                with anyio.move_on_after(25):
                    try:
                        while True:
                            await stream.send(b"X-Slow: a\r\n")
                            with anyio.move_on_after(1):
                                if not await stream.receive():
                                    break
                    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
                        outcome = "closed"
                ended["headers"].append((outcome, anyio.current_time() - started))

        async def slow_body() -> None:
            async with await anyio.connect_tcp("127.0.0.1", hub.port) as stream:
                await stream.send(request_head("/webhooks/github", _github_headers(1000)))

                async def trickle() -> None:
                    try:
                        for _ in range(30):
                            await stream.send(b"{")
                            await anyio.sleep(1)
                    except (anyio.BrokenResourceError, ConnectionError):
                        pass

                async with anyio.create_task_group() as tg:
                    tg.start_soon(trickle)
                    try:
                        status, _ = await read_response(stream, limit=25)
                        outcome = str(status)
                    except (TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError):
                        outcome = "held"
                    tg.cancel_scope.cancel()
                ended["body"].append((outcome, anyio.current_time() - started))

        async with anyio.create_task_group() as tg:
            opened = anyio.current_time()  # every trickler starts after this
            for _ in range(100):
                tg.start_soon(slow_headers)
                tg.start_soon(slow_body)
            await anyio.sleep(2)
            push_started = anyio.current_time()
            assert await hub.webhook(url) in (200, 202), "a signed push goes through"
            answered = anyio.current_time()
            push_took = answered - push_started
        assert hub.alive()
        headers = Counter(outcome for outcome, _ in ended["headers"])
        bodies = Counter(outcome for outcome, _ in ended["body"])
        print(f"signed push answered in {push_took:.2f} s among 200 slow sockets")
        print(f"slow headers: {dict(headers)}, last at {max(t for _, t in ended['headers']):.1f} s")
        print(f"slow bodies: {dict(bodies)}, last at {max(t for _, t in ended['body']):.1f} s")
        # answered while the header tricklers were all still held, not after the server let go
        assert answered - opened < min(t for _, t in ended["headers"])
        assert headers == {"closed": 100}, "every header trickler is dropped"
        assert max(t for _, t in ended["headers"]) < 20, "within the 15 s header timeout"
        assert set(bodies) <= {"503", "408"} and bodies["503"] >= 84 and bodies["408"] >= 1
        assert max(t for _, t in ended["body"]) < 14, "within the 10 s body timeout"


async def test_wrong_credentials_are_answered_while_the_body_is_still_coming(
    tmp_path: Path,
) -> None:
    with fault_rig(tmp_path) as rig:
        _one_app(rig)
        hub = rig.hub(env={"FLEET_GITLAB_TOKEN": "gitlab-hook-token"})
        gitlab = {
            "X-Gitlab-Event": "Push Hook",
            "X-Gitlab-Token": "wrong",
            "Content-Length": str(MiB - 1),
        }
        missing = {"X-GitHub-Event": "push", "Content-Length": str(MiB - 1)}
        for path, headers in (("/webhooks/gitlab", gitlab), ("/webhooks/github", missing)):
            async with await anyio.connect_tcp("127.0.0.1", hub.port) as stream:
                await stream.send(request_head(path, headers) + b"{" * 1024)
                status, data = await read_response(stream)  # 1023 KiB still unsent
                assert status == 401, data
        # GitHub signs the whole body: a wrong HMAC can only be known at its last byte
        async with await anyio.connect_tcp("127.0.0.1", hub.port) as stream:
            await stream.send(request_head("/webhooks/github", _github_headers(len(PUSH))) + PUSH)
            status, data = await read_response(stream)
            assert status == 401 and b"does not match the body" in data
        assert hub.alive()
        assert "gitlab-hook-token" not in rig.log_text()
        assert SECRET not in rig.log_text()


async def test_a_push_while_the_remote_is_down_answers_failed(tmp_path: Path) -> None:
    with fault_rig(tmp_path) as rig:
        url = _one_app(rig)
        down = "http://127.0.0.1:9/down.git"  # the discard port: nothing listens there
        _config(rig, url, down)
        hub = rig.hub()
        body = json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": down}}).encode()
        headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(body, SECRET)}
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{hub.port}/webhooks/github", data=body, headers=headers
            ) as response,
        ):
            said = await response.json()
            assert response.status == 502, said
        assert said["matched"] == 1 and said["repos"][0]["result"] == "failed"
        assert said["repos"][0]["error"], "the failure says why"
        assert await hub.webhook(url) in (200, 202), "the healthy remote is still answered"
        assert hub.alive()


READ_TOKEN = "dashboard-read-token-0123456789"
ADMIN_TOKEN = "ci-admin-token-0123456789abcdef"


async def test_api_tokens_through_fleet_run(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"{READ_TOKEN}, read, dashboards\n{ADMIN_TOKEN}, admin, ci\n")
    tokens.chmod(0o600)
    with fault_rig(tmp_path / "rig") as rig:
        _one_app(rig)
        hub = rig.hub(extra_args=["--api-tokens", str(tokens)])
        base = f"http://127.0.0.1:{hub.port}"
        async with aiohttp.ClientSession() as http:
            for headers, wanted in (
                ({}, 401),
                ({"Authorization": f"Bearer {READ_TOKEN}"}, 200),
                ({"Authorization": f"Bearer {ADMIN_TOKEN}"}, 200),
                ({"Authorization": f"Bearer {ADMIN_TOKEN}x"}, 401),
            ):
                async with http.get(f"{base}/api/status", headers=headers) as r:
                    assert r.status == wanted, headers
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
        assert hub.alive()
        log = rig.log_text()
        assert "event=api_unauthenticated" in log
        assert READ_TOKEN not in log and ADMIN_TOKEN not in log
