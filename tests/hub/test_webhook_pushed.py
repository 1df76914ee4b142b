"""A running hub uses a signed push's sha instead of listing the remote, and never rewinds.

A real hub (no clusters: what is measured is what it asks of git) reads an app from a real git
remote over ``git http-backend``, which counts ref listings (``ls-refs``). The first push is
listed (the mirror knows nothing yet); a push continuing that listing costs only a listing of the
remote's branches beside the fetch of its commit; replaying the old push after a newer one, or
after the branch was force-pushed back, is refused by that listing, the remote is listed in full,
and the branch stays where the remote has it.

The hub passes the push's claim to its sources (``on_push`` -> ``Refreshing.refresh_now(...,
pushed=push.pushed)`` -> ``Sources.refresh(url, pushed=...)``); without that the first assertion
on the listing count fails.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import aiohttp
import anyio
import pytest

from fleet.hub.hub import Hub
from tests.hub.hubkit import SECRET, fleet_yaml, hub_settings
from tests.sources.gitkit import GitHttpServer, Remote, git

pytestmark = pytest.mark.anyio

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{value: '{v}'}}\n"


async def _push(port: int, url: str, *, before: str, after: str) -> dict[str, object]:
    payload = {"ref": "refs/heads/main", "before": before, "after": after}
    body = json.dumps({**payload, "repository": {"clone_url": url}}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}/webhooks/github", data=body, headers=headers) as r,
    ):
        assert r.status == 200, await r.text()
        answer: dict[str, object] = await r.json()
        return answer


async def test_a_running_hub_trusts_a_continuing_push_and_lists_a_replay(tmp_path: Path) -> None:
    root = tmp_path / "git"
    remote = Remote(root, "app")
    first = remote.commit({"app/cm.yaml": CM.format(v=1)})
    with GitHttpServer(root) as server:
        url = server.url("app.git")
        settings = hub_settings(tmp_path)
        settings.config_path.write_text(fleet_yaml(url, "pushed"))
        settings.clusters_dir.mkdir(parents=True, exist_ok=True)
        hub = Hub(settings)
        async with anyio.create_task_group() as tg:
            port = await tg.start(hub.run)
            second = remote.commit({"app/cm.yaml": CM.format(v=2)})
            await _push(port, url, before=first, after=second)  # listed: nothing known yet
            mirror = hub.sources.mirror(url)
            assert mirror.refs_seen["refs/heads/main"] == second
            listings = server.counts.listings

            third = remote.commit({"app/cm.yaml": CM.format(v=3)})
            answer = await _push(port, url, before=second, after=third)
            assert answer["moved"] == 1
            assert server.counts.listings == listings + 1  # the branches only, with the fetch
            assert server.counts.prefixes[-1] == ("refs/heads/",)
            assert mirror.refs_seen["refs/heads/main"] == third

            answer = await _push(port, url, before=first, after=second)  # a replay
            assert answer["moved"] == 0
            assert server.counts.listings == listings + 3  # refused by the branches: full
            assert mirror.refs_seen["refs/heads/main"] == third

            git(
                "push", "--quiet", "--force", "origin", f"{second}:refs/heads/main", cwd=remote.work
            )
            answer = await _push(port, url, before=third, after=second)  # the rollback
            assert mirror.refs_seen["refs/heads/main"] == second
            answer = await _push(port, url, before=second, after=third)  # replayed after it
            assert answer["moved"] == 0
            assert mirror.refs_seen["refs/heads/main"] == second
            assert git("rev-parse", "refs/heads/main", cwd=mirror.path) == second
            tg.cancel_scope.cancel()
