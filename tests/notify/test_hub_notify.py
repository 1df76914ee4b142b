"""Notifications from a real hub on kit clusters to a real HTTP receiver.

The notifier is wired as the hub will wire it (a subscriber of ``hub.targets``, its service in the
same task group): a commit applied to every cluster shows as a GitHub commit status ``success`` per
cluster on that commit, and a commit that does not render reaches the signed webhook and turns
those statuses to ``failure``.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import anyio
import pytest

from fleet.controlplane import RunningCluster
from fleet.hub.hub import Hub
from fleet.notify import Notifier, SinkSpec
from tests.hub.hubkit import configmap, drop, fleet_yaml, hub_settings, push_webhook, until
from tests.notify.receiver import Received, Receiver
from tests.sources.gitkit import Remote

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]

KEY = "integration-hook-key"


def _statuses(rx: Receiver, commit: str) -> dict[str, str]:
    """context -> last state of the GitHub statuses posted for `commit`."""
    out: dict[str, str] = {}
    for r in rx.requests:
        if r.path == f"/repos/acme/fleet-apps/statuses/{commit}":
            out[r.json()["context"]] = r.json()["state"]
    return out


def _hooks(rx: Receiver) -> list[Received]:
    return [r for r in rx.requests if r.path == "/hook"]


async def test_a_commit_reaches_github_statuses_and_a_render_failure_the_webhook(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    ns = "notify-e2e"
    remote = Remote(tmp_path / "git")
    first = remote.commit({"app/settings.yaml": configmap(ns, "v1")})
    settings = hub_settings(tmp_path)
    settings.config_path.write_text(
        fleet_yaml(remote.url, ns).replace(
            "selfHeal: true", "selfHeal: true, createNamespace: true"
        )
    )
    for cluster in kit_clusters:
        drop(cluster, settings.clusters_dir)
    contexts = {f"fleet/web/{c.name}" for c in kit_clusters}
    async with Receiver() as rx:
        specs = [
            SinkSpec(name="commits", type="github-status", api_url=rx.url(), token_env="GH"),
            SinkSpec(
                name="hook", type="webhook", url=rx.url("/hook"), secret_env="KEY",
                on=("RenderFailed",),
            ),
        ]  # fmt: skip
        hub = Hub(settings)
        notifier = Notifier(
            specs,
            env={"GH": "ghp_integration", "KEY": KEY},
            repo_of=lambda app: "https://github.com/acme/fleet-apps.git",
            clock=hub.clock,
        )
        hub.targets.subscribe("notify", notifier)
        async with anyio.create_task_group() as tg:
            await tg.start(notifier.run)
            port = await tg.start(hub.run)
            await until(lambda: _statuses(rx, first) == dict.fromkeys(contexts, "success"))
            assert all(hub.board.cell("web", c.name).ready for c in kit_clusters)
            gh = next(r for r in rx.requests if r.path.startswith("/repos/"))
            assert gh.headers["Authorization"] == "Bearer ghp_integration"
            assert not _hooks(rx)  # Synced is not among the webhook's events

            broken = remote.commit({"app/settings.yaml": "kind: [unclosed\n"})
            assert await push_webhook(port, remote.url) == 200
            await until(lambda: len(_hooks(rx)) == len(kit_clusters))
            for hook in _hooks(rx):
                signed = hmac.new(KEY.encode(), hook.body, hashlib.sha256).hexdigest()
                assert hook.headers["X-Fleet-Signature"] == f"sha256={signed}"
                body = hook.json()
                assert (body["type"], body["app"], body["commit"]) == (
                    "RenderFailed",
                    "web",
                    broken,
                )
                assert "settings.yaml" in body["message"]
            assert {h.json()["cluster"] for h in _hooks(rx)} == {c.name for c in kit_clusters}
            await until(lambda: _statuses(rx, broken) == dict.fromkeys(contexts, "failure"))
            assert _statuses(rx, first) == dict.fromkeys(contexts, "success")  # it did reach them
            stats = notifier.stats()
            assert (stats["commits"].failed, stats["hook"].failed) == (0, 0)
            hub.stop()
            tg.cancel_scope.cancel()
