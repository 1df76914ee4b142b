"""The page and ``fleet status`` show where the config comes from and the app-of-apps parents.

End to end: a real hub on a kit cluster reads its config from a repository served over HTTP (git
http-backend); that config declares one parent app whose path, in a second repository, holds two
Applications and a third taking the parent's own name (refused). Headless Chromium, driven over
the DevTools protocol, loads the page: the line under the header names the config's repository,
ref, path and commit; the parent's section links its children and says which one is refused; a
child's app view links back to its parent.
``fleet status`` prints the same as its first lines. Then a config commit with a mistake (an
unknown field spelt as HTML): the line turns red, names the failing commit and shows the error as
text, never as markup; ``fleet status`` names the commit too.

The browser is waited on by DOM conditions (an element, a class, a commit sha), never on a word
the page's own script or stylesheet holds. Pure: ``fleet status``'s lines for a local config
and for a hub that reports no config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from fleet.cli.hubcmd import _print_matrix
from fleet.controlplane import RunningCluster
from fleet.hub.hub import Hub
from tests.hub.hubkit import configmap, drop, fleet_cli, hub_settings, push_webhook, until
from tests.hub.test_app_of_apps import application
from tests.hub.test_auth import CHROMIUM, chromium
from tests.sources.gitkit import GitHttpServer, Remote


def _config(apps_url: str, *, extra: str = "") -> str:
    return f"""apps:
  - name: pc-parent
    applications: true
    source: {{repoURL: "{apps_url}", targetRevision: main, path: parent}}
    destination: {{namespace: argocd}}
{extra}"""


def _js(expression: str) -> str:
    """A JS string literal of `expression` (for values the test puts into DOM conditions)."""
    return json.dumps(expression)


SOURCE = "document.getElementById('source')"
PARENT = "document.querySelector('section.parent[data-parent=\"pc-parent\"]')"


@pytest.mark.anyio
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
async def test_page_and_status_show_the_config_and_its_parent(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    cluster = kit_clusters[0]
    root = tmp_path / "git"
    apps, ops = Remote(root, "apps"), Remote(root, "ops")
    with GitHttpServer(root) as server:
        apps_url, ops_url = server.url("apps.git"), server.url("ops.git")
        apps.commit(
            {
                "pc-a/cm.yaml": configmap("aoa-pc-a", "v1"),
                "pc-b/cm.yaml": configmap("aoa-pc-b", "v1"),
                "parent/a.yaml": application("pc-a", apps_url, cluster.name),
                "parent/b.yaml": application("pc-b", apps_url, cluster.name),
                "parent/dup.yaml": application("pc-parent", apps_url, cluster.name, path="pc-a"),
            }
        )
        good = ops.commit({"fleet.yaml": _config(apps_url)})
        settings = hub_settings(tmp_path / "hub", config_source=f"{ops_url}#main:fleet.yaml")
        drop(cluster, settings.clusters_dir)
        hub = Hub(settings)
        async with anyio.create_task_group() as tg:
            port = await tg.start(hub.run)
            for name in ("pc-a", "pc-b"):
                await until(lambda n=name: hub.board.cell(n, cluster.name).ready)  # type: ignore[misc]
            key = hub.config_feed.location.key if hub.config_feed.location else ""
            base = f"http://127.0.0.1:{port}"

            # fleet status: the config's source and commit first, then one line per parent
            code, out, err = await fleet_cli("status", "--url", base)
            lines = out.splitlines()
            assert lines[0] == f"config: {key}#main:fleet.yaml @ {good[:12]}", out
            assert lines[1] == "parent pc-parent: 2 children (1 refused)", out
            assert code == 1 and "the config has an error" in err  # the refused child

            async with chromium(f"{base}/", tmp_path / "profile") as page:
                line = await page.until(
                    f"{SOURCE}.textContent.includes({_js(good[:12])}) && {SOURCE}.textContent"
                )
                assert line == f"config: {key}#main:fleet.yaml @ {good[:12]}"
                assert not await page.evaluate(f"{SOURCE}.classList.contains('failed')")
                links = f"{PARENT}.querySelectorAll('ul.children a').length === 2"
                await page.until(f"{PARENT} !== null && {links}")
                section: dict[str, Any] = await page.evaluate(
                    f"""(() => {{ const s = {PARENT}; return {{
                      title: s.querySelector('h2 a').getAttribute('href'),
                      children: [...s.querySelectorAll('ul.children a')].map(
                        a => [a.textContent, a.getAttribute('href')]),
                      refused: [...s.querySelectorAll('ul.refused li')].map(li => li.textContent),
                      text: s.textContent }}; }})()"""
                )
                assert section["title"] == "#/app/pc-parent"
                assert section["children"] == [["pc-a", "#/app/pc-a"], ["pc-b", "#/app/pc-b"]]
                assert section["refused"] == [
                    "child pc-parent is refused: another app already has that name"
                ]
                assert "2 children" in section["text"] and good[:12] not in section["text"]
                parent_commit = hub.board.config_status["parents"][0]["commit"]
                assert f"at commit {parent_commit[:12]}" in section["text"]
                assert "its objects stay in the clusters" in section["text"]  # on leave

                # the parent's own app view shows its section too
                await page.evaluate("location.hash = '#/app/pc-parent'; true")
                await page.until(
                    "document.querySelector('#view h2') !== null && "
                    "document.querySelector('#view h2').textContent === 'app pc-parent' && "
                    f"{PARENT} !== null"
                )

                # a child's app view links back to its parent
                await page.evaluate("location.hash = '#/app/pc-b'; true")
                back = await page.until(
                    "document.getElementById('child-of') !== null && "
                    "document.querySelector('#child-of a').getAttribute('href')"
                )
                assert back == "#/app/pc-parent"
                await page.evaluate("location.hash = '#/'; true")
                await page.until(f"{PARENT} !== null && document.getElementById('matrix') !== null")

                # a config commit with a mistake: the line turns red and names that commit
                typo = _config(apps_url, extra='    "<b>bold</b>": 1\n')
                bad = ops.commit({"fleet.yaml": typo})
                assert await push_webhook(port, ops_url) == 200
                line = await page.until(
                    f"{SOURCE}.classList.contains('failed') && "
                    f"{SOURCE}.textContent.includes({_js(bad[:12])}) && {SOURCE}.textContent",
                    limit=90,
                )
                assert line.startswith(f"config: {key}#main:fleet.yaml @ {good[:12]}; commit ")
                assert f"commit {bad[:12]} failed, the last good config stays in use" in line
                assert "apps[0].<b>bold</b>: unknown field" in line, "the error, as text"
                assert await page.evaluate(f"{SOURCE}.querySelector('b') === null")
                assert await page.evaluate(f"{SOURCE}.querySelector('div.err') !== null")

            code, out, _ = await fleet_cli("status", "--url", base)
            assert out.splitlines()[0] == (
                f"config: {key}#main:fleet.yaml @ {good[:12]}; commit {bad[:12]} failed, "
                "the last good config stays"
            )
            assert code == 1
            hub.stop()


def test_status_lines_for_a_local_config_and_an_older_hub(
    capsys: pytest.CaptureFixture[str],
) -> None:
    local = {
        "config": {"type": "file", "path": "/etc/fleet/fleet.yaml"},
        "parents": [{"app": "root", "names": ["one"], "refused": []}],
        "apps": [],
        "clusters": [],
    }
    _print_matrix(local)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["config: /etc/fleet/fleet.yaml", "parent root: 1 child (0 refused)"]

    _print_matrix({"apps": [], "clusters": []})  # a hub without config or parents in its status
    assert capsys.readouterr().out == "no apps or clusters yet\n"
