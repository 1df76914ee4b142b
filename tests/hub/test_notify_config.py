"""Notification sinks come from the hub's own config: declared in fleet.yaml, told of events.

A real hub on a kit cluster whose fleet.yaml declares a signed webhook sink; a commit that does
not render must reach the test's receiver as a RenderFailed notice, signed with the secret from the
sink's ``secretEnv``. A sink whose secret variable is missing is shown on the board, the rest of
the config runs.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import anyio
import pytest

from fleet.controlplane import RunningCluster
from fleet.hub.hub import Hub
from tests.hub.hubkit import configmap, drop, fleet_yaml, hub_settings, push_webhook, until
from tests.notify.receiver import Receiver
from tests.sources.gitkit import Remote

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]

SECRET = "notify-secret-0123456789"


async def test_sinks_are_read_from_fleet_yaml(
    kit_clusters: list[RunningCluster], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_TEST_HOOK_SECRET", SECRET)
    ns = "notify-config"
    cluster = kit_clusters[0]
    remote = Remote(tmp_path / "git")
    remote.commit({"app/cm.yaml": configmap(ns, "v1")})
    async with Receiver() as receiver:
        settings = hub_settings(tmp_path)
        config = fleet_yaml(remote.url, ns).replace(
            "prune: true", "prune: true, createNamespace: true"
        )
        config += f"""notifications:
  - name: ops
    type: webhook
    url: {receiver.url("/hook")}
    secretEnv: FLEET_TEST_HOOK_SECRET
    on: [RenderFailed, Synced]
  - name: nosecret
    type: webhook
    url: {receiver.url("/other")}
    secretEnv: FLEET_TEST_NOT_SET
"""
        settings.config_path.write_text(config)
        drop(cluster, settings.clusters_dir)
        hub = Hub(settings)
        async with anyio.create_task_group() as tg:
            port = await tg.start(hub.run)
            await until(lambda: hub.board.cell("web", cluster.name).ready)
            assert "FLEET_TEST_NOT_SET" in hub.board.config_error
            remote.commit({"app/cm.yaml": "kind: [\n"})
            assert await push_webhook(port, remote.url) == 200

            def failed_notices() -> list[bytes]:
                return [r.body for r in receiver.requests if b"RenderFailed" in r.body]

            await until(lambda: bool(failed_notices()))
            hub.stop()
    notice = next(r for r in receiver.requests if b"RenderFailed" in r.body)
    assert notice.path == "/hook"
    wanted = "sha256=" + hmac.new(SECRET.encode(), notice.body, hashlib.sha256).hexdigest()
    assert notice.headers["X-Fleet-Signature"] == wanted
    assert not [r for r in receiver.requests if r.path == "/other"]
    assert any(b"Synced" in r.body for r in receiver.requests)  # the first commit, applied
