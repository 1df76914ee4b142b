"""The status page in a real browser, against a real hub with a healthy, a failing and an
unreachable cluster: headless Chromium loads it, its script reads ``/api/status`` and
``/api/events``, and the rendered DOM must tell the truth about each.

- ``page-ok`` is reachable and in sync: its cell is green, its object tree lists the ConfigMap;
- ``page-bad`` is the same API server reached with a token it refuses: every sync fails, so its
  cell is red and shows the server's answer as a sentence, never a Python repr;
- ``page-down``'s API server is stopped: its cell is grey (Unknown), the cluster shows parked.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import anyio
import pytest
import yaml

from fleet.controlplane import LocalProvider
from fleet.hub.hub import Hub
from tests.hub.hubkit import configmap, drop, fleet_yaml, hub_settings, push_webhook, until
from tests.sources.gitkit import Remote

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _browser(url: str, *, screenshot: Path | None = None) -> str:
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
        if screenshot is not None:
            subprocess.run(
                [*common, f"--screenshot={screenshot}", "--window-size=1200,700", url],
                capture_output=True,
                timeout=60,
                check=False,
            )
        dom = subprocess.run(
            [*common, "--dump-dom", url], capture_output=True, text=True, timeout=60, check=True
        )
    return dom.stdout


def _refused_alias(kubeconfig: Path, target: Path) -> None:
    """A kubeconfig for the same API server whose credential the server refuses (401)."""
    doc = yaml.safe_load(kubeconfig.read_text())
    for user in doc["users"]:
        user["user"] = {"token": "not-a-valid-token"}
    for context in doc["contexts"]:
        context["name"] = "page-bad"
    doc["current-context"] = "page-bad"
    target.write_text(yaml.safe_dump(doc))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make test installs it)")
async def test_page_tells_healthy_failing_and_unreachable_apart(tmp_path: Path) -> None:
    ns = "page"
    remote = Remote(tmp_path / "git")
    remote.commit({"app/cm.yaml": configmap(ns, "v1")})
    settings = hub_settings(tmp_path)
    config = fleet_yaml(remote.url, ns).replace("prune: true", "prune: true, createNamespace: true")
    settings.config_path.write_text(config)
    with LocalProvider(kubeconfig_dir=tmp_path / "kit", progress=lambda _: None) as kit:
        ok, down = kit.up(["page-ok", "page-down"])
        drop(ok, settings.clusters_dir)
        drop(down, settings.clusters_dir)
        _refused_alias(ok.kubeconfig, settings.clusters_dir / "page-bad.yaml")
        hub = Hub(settings)
        async with anyio.create_task_group() as tg:
            port = await tg.start(hub.run)
            await until(lambda: hub.board.cell("web", "page-ok").ready)
            await until(lambda: hub.board.cell("web", "page-down").ready)
            await until(lambda: bool(hub.board.cell("web", "page-bad").error))
            kit.stop_apiserver("page-down")
            remote.commit({"app/cm.yaml": configmap(ns, "v2")})
            assert await push_webhook(port, remote.url) == 200
            await until(lambda: hub.board.cell("web", "page-down").sync == "Unknown", limit=60)
            await until(lambda: hub.board.cell("web", "page-ok").applied_commit != "")
            await until(lambda: hub.board.cell("web", "page-ok").ready)
            base = f"http://127.0.0.1:{port}/"
            shot = tmp_path / "page.png"
            matrix = await anyio.to_thread.run_sync(lambda: _browser(base, screenshot=shot))
            target = await anyio.to_thread.run_sync(lambda: _browser(base + "#/target/web/page-ok"))
            bad = await anyio.to_thread.run_sync(lambda: _browser(base + "#/target/web/page-bad"))
            hub.stop()
    assert _cell_class(matrix, "page-ok") == "green"
    assert _cell_class(matrix, "page-bad") == "red"
    assert _cell_class(matrix, "page-down") == "grey"
    assert "page-down: parked" in matrix
    assert '<span id="badge" class="badge red">2 of 3 not ready</span>' in matrix  # the truth
    assert "recent events" in matrix and "Synced" in matrix
    for dom in (matrix, bad):
        assert "Unauthorized" in dom or "401" in dom  # the server's answer, as words
        assert "ClientConnectorError(" not in dom and "ConnectionKey(" not in dom
        assert "ApiException(" not in dom and "Traceback" not in dom
    assert '<table id="objects">' in target and "ConfigMap" in target and "settings" in target
    assert "Succeeded" in target  # the Ready condition's reason
    assert shot.exists() and shot.stat().st_size > 1000


def _cell_class(dom: str, cluster: str) -> str:
    """The class of the matrix cell of app web on `cluster` (the td carries data-cluster)."""
    marker = f'data-cluster="{cluster}"'
    at = dom.find(marker)
    assert at >= 0, f"no cell for {cluster}"
    start = dom.rfind("<td", 0, at)
    tag = dom[start : dom.find(">", at) + 1]
    found = tag.split('class="', 1)
    return found[1].split('"', 1)[0] if len(found) == 2 else ""
