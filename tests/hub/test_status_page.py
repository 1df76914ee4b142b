"""The status page in a real browser: headless Chromium loads it from the hub's server, runs its
script against /api/status, and the rendered DOM shows the matrix and a parked cluster."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from fleet.hub import server, webhooks
from fleet.hub.pushes import PushOutcome
from fleet.report import Board, ClusterState, Metrics, TargetStatus

pytestmark = pytest.mark.anyio

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class BoardOnly:
    """The server's view of a hub: a real board, nothing else needed by the page."""

    board: Board = field(default_factory=Board)
    metrics: Metrics = field(default_factory=Metrics)

    def readiness(self) -> tuple[bool, str]:
        return True, "ready"

    async def on_push(self, push: webhooks.Push) -> PushOutcome:
        return PushOutcome()


def _browser(url: str, *, screenshot: Path) -> str:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        common = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=4000",
        ]
        subprocess.run(
            [*common, f"--screenshot={screenshot}", "--window-size=900,400", url],
            capture_output=True,
            timeout=60,
            check=False,
        )
        dom = subprocess.run(
            [*common, "--dump-dom", url], capture_output=True, text=True, timeout=60, check=True
        )
    return dom.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
async def test_page_renders_the_matrix(tmp_path: Path) -> None:
    hub = BoardOnly()
    hub.board.clusters["prod-eu"] = ClusterState("prod-eu", state="ready")
    hub.board.clusters["prod-us"] = ClusterState(
        "prod-us", state="parked", error="unreachable: connection refused"
    )
    hub.board.targets.commit(
        TargetStatus(
            "prod-eu", "webapp", sync="Synced", health="Healthy", applied_commit="0123456789abcdef"
        )
    )
    hub.board.targets.commit(
        TargetStatus("prod-us", "webapp", sync="OutOfSync", error="cluster prod-us is unreachable")
    )
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, hub, server.ServerSettings(port=0))
        shot = tmp_path / "status.png"
        dom = await anyio.to_thread.run_sync(
            lambda: _browser(f"http://127.0.0.1:{port}/", screenshot=shot)
        )
        tg.cancel_scope.cancel()
    assert "<th>prod-eu</th>" in dom and "<th>prod-us</th>" in dom
    assert '<span class="Synced">Synced</span>' in dom
    assert '<span class="Healthy">Healthy</span>' in dom
    assert "@0123456" in dom
    assert '<span class="parked"' in dom and "prod-us: parked" in dom
    assert "cluster prod-us is unreachable" in dom
    assert shot.exists() and shot.stat().st_size > 1000
