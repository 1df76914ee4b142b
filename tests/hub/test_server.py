"""The hub's HTTP server, served for real on 127.0.0.1 and called over HTTP (and HTTPS).

The hub behind it is a small recording double (the server's contract is :class:`HubView`): a
board and metrics that answer fixed data, and an ``on_push`` that records the push and answers a
given :class:`PushOutcome`. The real hub is exercised end to end in the hub's own tests and in
tests/faults/test_http.py. The webhook intake's limits (sizes, timeouts, slow sockets) are in
test_webhooks.py; this file covers the routes, authentication, TLS and errors as values.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from fleet.errors import ConfigError, StalledError
from fleet.hub import server, webhooks
from fleet.hub.pushes import PushOutcome, RepoRefresh

pytestmark = pytest.mark.anyio

SECRET = "s3cret"
READ_TOKEN = "read-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
BOARD = {
    "apps": [
        {
            "app": "web",
            "cluster": "eu",
            "sync": "Synced",
            "health": "Healthy",
            "revision": "abcdef0123",
            "error": "",
        }
    ],
    "clusters": [
        {"name": "eu", "state": "ready", "error": "", "since": 0.0},
        {"name": "us", "state": "parked", "error": "unreachable: refused", "since": 0.0},
    ],
    "config_error": "",
}


@dataclass
class FixedBoard:
    data: dict[str, Any] = field(default_factory=lambda: json.loads(json.dumps(BOARD)))

    def to_json(self) -> dict[str, Any]:
        return self.data

    def events_json(
        self, *, app: str | None, cluster: str | None, limit: int
    ) -> list[dict[str, Any]]:
        return []


@dataclass
class FixedMetrics:
    text: bytes = b'fleet_api_requests_total{cluster="eu",code="200"} 1.0\n'

    def export(self) -> bytes:
        return self.text


@dataclass
class RecordingHub:
    board: FixedBoard = field(default_factory=FixedBoard)
    metrics: FixedMetrics = field(default_factory=FixedMetrics)
    pushes: list[webhooks.Push] = field(default_factory=list)
    ready: bool = False
    outcome: PushOutcome = field(
        default_factory=lambda: PushOutcome((RepoRefresh("x/y", "moved", enqueued=2),))
    )

    def readiness(self) -> tuple[bool, str]:
        return (True, "ready") if self.ready else (False, "scanning clusters/")

    async def on_push(self, push: webhooks.Push) -> PushOutcome:
        self.pushes.append(push)
        return self.outcome


@contextlib.asynccontextmanager
async def running(
    hub: RecordingHub,
    settings: server.ServerSettings,
    *,
    routes: Sequence[web.RouteDef] = (),
) -> AsyncIterator[int]:
    """The server on an ephemeral port of 127.0.0.1 for the block; yields the port."""
    async with anyio.create_task_group() as tg:
        port = await tg.start(lambda task_status: server.serve(
            hub, settings, routes=routes, task_status=task_status
        ))  # fmt: skip
        yield port
        tg.cancel_scope.cancel()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


PUSH = b'{"ref": "refs/heads/main", "repository": {"clone_url": "https://x/y.git"}}'


async def test_routes() -> None:
    hub = RecordingHub()
    settings = server.ServerSettings(port=0, github_secret=SECRET, gitlab_token="t0ken")
    async with running(hub, settings) as port, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{port}"
        async with http.get(f"{base}/healthz") as r:
            assert r.status == 200
        async with http.get(f"{base}/readyz") as r:
            assert r.status == 503 and "scanning" in await r.text()
        hub.ready = True
        async with http.get(f"{base}/readyz") as r:
            assert r.status == 200
        async with http.get(f"{base}/metrics") as r:
            assert 'fleet_api_requests_total{cluster="eu",code="200"} 1.0' in await r.text()
        async with http.get(f"{base}/api/status") as r:
            assert (await r.json())["apps"][0]["sync"] == "Synced"
        async with http.get(f"{base}/") as r:
            assert "<title>fleet</title>" in await r.text()

        headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64}
        async with http.post(f"{base}/webhooks/github", data=PUSH, headers=headers) as r:
            assert r.status == 401 and "does not match" in (await r.json())["error"]
        assert hub.pushes == [], "a bad signature triggers nothing"
        headers["X-Hub-Signature-256"] = sign(PUSH)
        async with http.post(f"{base}/webhooks/github", data=PUSH, headers=headers) as r:
            assert r.status == 200
            assert await r.json() == {
                "matched": 1,
                "moved": 1,
                "repos": [{"repo": "x/y", "result": "moved", "enqueued": 2}],
            }
        assert [p.urls for p in hub.pushes] == [("https://x/y.git",)]
        gitlab = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong"}
        async with http.post(f"{base}/webhooks/gitlab", data=PUSH, headers=gitlab) as r:
            assert r.status == 401
        assert len(hub.pushes) == 1
        ping = {"X-GitHub-Event": "ping", "X-Hub-Signature-256": sign(b"{}")}
        async with http.post(f"{base}/webhooks/github", data=b"{}", headers=ping) as r:
            assert r.status == 204


@pytest.mark.parametrize(
    ("outcome", "status", "said"),
    [
        (PushOutcome(), 200, {"matched": 0, "moved": 0, "repos": []}),
        (
            PushOutcome((RepoRefresh("x/y", "failed", error="connection refused"),)),
            502,
            {
                "matched": 1,
                "moved": 0,
                "repos": [
                    {
                        "repo": "x/y",
                        "result": "failed",
                        "enqueued": 0,
                        "error": "connection refused",
                    }
                ],
            },
        ),
        (
            PushOutcome((RepoRefresh("x/y", "pending"),)),
            202,
            {
                "matched": 1,
                "moved": 0,
                "repos": [{"repo": "x/y", "result": "pending", "enqueued": 0}],
            },
        ),
    ],
)
async def test_a_webhook_answers_what_happened(
    outcome: PushOutcome, status: int, said: dict[str, Any]
) -> None:
    hub = RecordingHub(outcome=outcome)
    settings = server.ServerSettings(port=0, github_secret=SECRET)
    async with running(hub, settings) as port, aiohttp.ClientSession() as http:
        headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(PUSH)}
        async with http.post(
            f"http://127.0.0.1:{port}/webhooks/github", data=PUSH, headers=headers
        ) as r:
            assert (r.status, await r.json()) == (status, said)


async def test_port_in_use_is_a_clear_error() -> None:
    hub = RecordingHub()
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, hub, server.ServerSettings(port=0))
        with pytest.raises(OSError, match=rf"cannot listen on 127.0.0.1:{port}: Address already"):
            await tg.start(server.serve, hub, server.ServerSettings(port=port))
        tg.cancel_scope.cancel()


async def test_fleet_status_reads_a_running_hub() -> None:
    hub = RecordingHub()
    async with running(hub, server.ServerSettings(port=0)) as port:
        for extra in ([], ["--json"]):
            result = await anyio.run_process(
                [sys.executable, "-m", "fleet.cli.main", "status", "--url",
                 f"http://127.0.0.1:{port}", *extra],
                check=False,
            )  # fmt: skip
            text = result.stdout.decode()
            if extra:
                assert json.loads(text)["apps"][0]["revision"] == "abcdef0123"
            else:
                assert "Synced/Healthy @abcdef0" in text
                assert "! us: parked: unreachable: refused" in text
    down = await anyio.run_process(
        [sys.executable, "-m", "fleet.cli.main", "status", "--url", f"http://127.0.0.1:{port}"],
        check=False,
    )
    assert down.returncode != 0 and b"cannot reach the hub" in down.stderr


def test_no_tokens_means_loopback_only() -> None:
    server.check_exposure(server.ServerSettings(host="127.0.0.1"))
    server.check_exposure(server.ServerSettings(host="::1"))
    server.check_exposure(server.ServerSettings(host="0.0.0.0", insecure_open_api=True))
    server.check_exposure(server.ServerSettings(host="0.0.0.0", api_tokens=Path("t")))
    with pytest.raises(
        ConfigError, match=r"--listen 0.0.0.0:8080 would serve the API .*--api-tokens"
    ):
        server.check_exposure(server.ServerSettings(host="0.0.0.0"))


def test_check_names_the_file_at_fault(tmp_path: Path) -> None:
    bad = tmp_path / "tokens.txt"
    bad.write_text("short, read\n")
    with pytest.raises(ConfigError, match=r"tokens.txt: line 1: a token needs at least 16"):
        server.check(server.ServerSettings(api_tokens=bad))
    with pytest.raises(ConfigError, match="TLS needs both --tls-cert and --tls-key"):
        server.check(server.ServerSettings(tls_cert=bad))
    with pytest.raises(ConfigError, match=r"cannot load the TLS certificate .*tokens.txt"):
        server.check(server.ServerSettings(tls_cert=bad, tls_key=bad))


# -- errors as values ------------------------------------------------------------------------------


async def broken(_: web.Request) -> web.Response:
    raise RuntimeError("the <object at 0x7f> went away")


async def refused(_: web.Request) -> web.Response:
    raise StalledError("cluster prod-1: the inventory ConfigMap is not fleet's")


async def test_a_failing_handler_is_a_json_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    routes = [web.get("/api/broken", broken), web.get("/api/refused", refused)]
    hub = RecordingHub(ready=True)
    async with running(hub, server.ServerSettings(port=0), routes=routes) as port:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/api/broken") as r:
                error = (await r.json())["error"]
                assert r.status == 500
                assert error.startswith("the hub failed to answer GET /api/broken (ref ")
                assert "RuntimeError" not in error and "0x7f" not in error
                assert "Traceback" not in error
            async with http.get(f"{base}/api/refused") as r:
                assert r.status == 500
                assert await r.json() == {
                    "error": "cluster prod-1: the inventory ConfigMap is not fleet's"
                }
            async with http.get(f"{base}/api/none") as r:
                assert (r.status, await r.json()) == (
                    404,
                    {"error": "no such route: GET /api/none"},
                )
            async with http.delete(f"{base}/api/status") as r:
                assert r.status == 405 and "GET" in r.headers["Allow"]
                assert (await r.json())["error"] == "DELETE is not allowed on /api/status"
            async with http.get(f"{base}/api/status") as r:
                assert r.status == 200, "one bad request never affects another"
    line = next(
        rec.getMessage() for rec in caplog.records if "event=http_error ref=" in rec.getMessage()
    )
    assert "error_type=RuntimeError" in line and "where=test_server.py:" in line
    assert "\n" not in line
