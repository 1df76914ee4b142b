"""The hub's HTTP server, served for real on 127.0.0.1 and called over HTTP.

The hub behind it is a small recording double (the server's contract is :class:`HubView`); the
real hub is exercised end to end in the hub's own tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from dataclasses import dataclass, field

import aiohttp
import anyio
import pytest

from fleet.hub import server, webhooks
from fleet.hub.pushes import PushOutcome, RepoRefresh
from fleet.report import Board, ClusterState, Metrics, TargetStatus

pytestmark = pytest.mark.anyio


@dataclass
class RecordingHub:
    board: Board = field(default_factory=Board)
    metrics: Metrics = field(default_factory=Metrics)
    pushes: list[webhooks.Push] = field(default_factory=list)
    ready: bool = False

    def readiness(self) -> tuple[bool, str]:
        return (True, "ready") if self.ready else (False, "scanning clusters/")

    async def on_push(self, push: webhooks.Push) -> PushOutcome:
        self.pushes.append(push)
        return PushOutcome((RepoRefresh(repo="https://git.example.com/x", result="moved"),))


async def test_routes() -> None:
    hub = RecordingHub()
    hub.board.clusters["eu"] = ClusterState("eu", state="ready")
    hub.board.targets.commit(TargetStatus("eu", "web", sync="Synced"))
    hub.metrics.api_requests.labels(cluster="eu", code="200").inc()
    settings = server.ServerSettings(port=0, github_secret="s3cret", gitlab_token="t0ken")
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, hub, settings)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
            async with http.get(f"{base}/readyz") as r:
                assert r.status == 503 and "scanning" in await r.text()
            hub.ready = True
            async with http.get(f"{base}/readyz") as r:
                assert r.status == 200
            async with http.get(f"{base}/metrics") as r:
                text = await r.text()
                assert 'fleet_api_requests_total{cluster="eu",code="200"} 1.0' in text
            async with http.get(f"{base}/api/status") as r:
                data = await r.json()
                assert data["apps"][0]["sync"] == "Synced"
            async with http.get(f"{base}/") as r:
                assert "<title>fleet</title>" in await r.text()

            body = b'{"ref": "refs/heads/main", "repository": {"clone_url": "https://x/y.git"}}'
            good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
            async with http.post(
                f"{base}/webhooks/github",
                data=body,
                headers={
                    "X-GitHub-Event": "push",
                    "X-Hub-Signature-256": "sha256=" + "0" * 64,
                },
            ) as r:
                assert r.status == 401
            assert hub.pushes == [], "a bad signature triggers nothing"
            async with http.post(
                f"{base}/webhooks/github",
                data=body,
                headers={
                    "X-GitHub-Event": "push",
                    "X-Hub-Signature-256": good,
                },
            ) as r:
                assert r.status == 200 and (await r.json())["moved"] == 1
            assert [p.urls for p in hub.pushes] == [("https://x/y.git",)]
            async with http.post(
                f"{base}/webhooks/gitlab",
                data=body,
                headers={
                    "X-Gitlab-Event": "Push Hook",
                    "X-Gitlab-Token": "wrong",
                },
            ) as r:
                assert r.status == 401
            assert len(hub.pushes) == 1
        tg.cancel_scope.cancel()


async def test_port_in_use_is_a_clear_error() -> None:
    hub = RecordingHub()
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, hub, server.ServerSettings(port=0))
        with pytest.raises(OSError, match=rf"cannot listen on 127.0.0.1:{port}: Address already"):
            await tg.start(server.serve, hub, server.ServerSettings(port=port))
        tg.cancel_scope.cancel()


async def test_fleet_status_reads_a_running_hub() -> None:
    hub = RecordingHub()
    hub.board.clusters["eu"] = ClusterState("eu", state="ready")
    hub.board.clusters["us"] = ClusterState("us", state="parked", error="unreachable: refused")
    hub.board.targets.commit(
        TargetStatus("eu", "web", sync="Synced", health="Healthy", applied_commit="abcdef0123")
    )
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, hub, server.ServerSettings(port=0))
        for extra in ([], ["--json"]):
            result = await anyio.run_process(
                [
                    sys.executable,
                    "-m",
                    "fleet.cli.main",
                    "status",
                    "--url",
                    f"http://127.0.0.1:{port}",
                    *extra,
                ],
                check=False,
            )
            assert result.returncode == 1, result.stderr  # a parked cluster: not green
            text = result.stdout.decode()
            if extra:
                assert json.loads(text)["apps"][0]["revision"] == "abcdef0123"
            else:
                assert "Synced/Healthy @abcdef0" in text
                assert "! us: parked: unreachable: refused" in text
        tg.cancel_scope.cancel()
    down = await anyio.run_process(
        [sys.executable, "-m", "fleet.cli.main", "status", "--url", f"http://127.0.0.1:{port}"],
        check=False,
    )
    assert down.returncode == 3 and b"error: cannot reach the hub" in down.stderr
