"""The hub's config read from git: ``--config REPO#REF:PATH``.

Pure: the location syntax (https, ssh, scp-like, defaults, refusals). End to end: a real hub on a
kit cluster whose config lives in a repository served over HTTP (git http-backend); a commit
adding an app converges; a commit with a mistake keeps the last good config and the board names
the commit and the file; a fix recovers; an uncommitted edit in a clone is never applied.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from bench.hubproc import HubProcess
from fleet.cache import CacheSettings, ManifestCache
from fleet.config import loading as config_loading
from fleet.controlplane import RunningCluster
from fleet.errors import ConfigError
from fleet.hub.gitconfig import ConfigFeed, ConfigLocation, parse_location
from fleet.hub.hub import Hub
from fleet.reconcile.desired import DesiredState
from fleet.render import Renderer, RenderSettings
from fleet.sources import Snapshot, Sources, SourceSettings
from tests.hub.hubkit import (
    configmap,
    drop,
    fleet_cli,
    hub_settings,
    push_webhook,
    until,
    value_on,
)
from tests.sources.gitkit import GitHttpServer, Remote


def test_location_syntax() -> None:
    assert parse_location("fleet.yaml") is None
    assert parse_location("/etc/fleet/apps") is None
    assert parse_location("https://git.example/ops.git#main:fleet/fleet.yaml") == ConfigLocation(
        "https://git.example/ops.git", "main", "fleet/fleet.yaml"
    )
    assert parse_location("ssh://git@host/ops.git#v2:fleet/") == ConfigLocation(
        "ssh://git@host/ops.git", "v2", "fleet"
    )
    assert parse_location("git@host:org/ops.git#main:apps") == ConfigLocation(
        "git@host:org/ops.git", "main", "apps"
    )
    assert parse_location("https://git.example/ops.git") == ConfigLocation(
        "https://git.example/ops.git", "HEAD", "fleet.yaml"
    )
    assert parse_location("https://git.example/ops.git#:.") == ConfigLocation(
        "https://git.example/ops.git", "HEAD", ""
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("https://git.example/ops.git#main:../etc/passwd", "escapes the repository"),
        ("https://user:hunter2@git.example/ops.git#main:f.yaml", "credentials"),
    ],
)
def test_location_refusals(text: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error) as caught:
        parse_location(text)
    assert "hunter2" not in str(caught.value)


def _fleet_yaml(repo_url: str, *apps: tuple[str, str]) -> str:
    lines = ["apps:"]
    for name, namespace in apps:
        lines += [
            f"  - name: {name}",
            f'    source: {{repoURL: "{repo_url}", targetRevision: main, path: {name}}}',
            f"    destination: {{namespace: {namespace}}}",
            "    syncPolicy: {prune: true, createNamespace: true}",
        ]
    return "\n".join(lines) + "\n"


async def _status(port: int) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/api/status") as response,
    ):
        data: dict[str, object] = await response.json()
        return data


@pytest.mark.anyio
async def test_config_from_git(kit_clusters: list[RunningCluster], tmp_path: Path) -> None:
    cluster = kit_clusters[0]
    root = tmp_path / "git"
    apps, ops = Remote(root, "apps"), Remote(root, "ops")
    with GitHttpServer(root) as server:
        apps_url, ops_url = server.url("apps.git"), server.url("ops.git")
        apps.commit({"gc-one/cm.yaml": configmap("gc-one", "v1")})
        apps.commit({"gc-two/cm.yaml": configmap("gc-two", "v1")})
        first = ops.commit({"fleet/fleet.yaml": _fleet_yaml(apps_url, ("gc-one", "gc-one"))})
        settings = hub_settings(tmp_path, config_source=f"{ops_url}#main:fleet/fleet.yaml")
        drop(cluster, settings.clusters_dir)
        hub = Hub(settings)
        async with anyio.create_task_group() as tg:
            port = await tg.start(hub.run)
            await until(lambda: hub.board.cell("gc-one", cluster.name).ready)
            assert await value_on(cluster, "gc-one") == "v1"
            status = await _status(port)
            assert status["config"] == {
                "type": "git",
                "repo": hub.config_feed.location.key if hub.config_feed.location else "",
                "ref": "main",
                "path": "fleet/fleet.yaml",
                "commit": first,
            }

            # an edit in a clone that was never committed is never applied
            (ops.work / "fleet/fleet.yaml").write_text(
                _fleet_yaml(apps_url, ("gc-one", "gc-one"), ("gc-two", "gc-two"))
            )
            assert await push_webhook(port, ops_url) == 200
            await anyio.sleep(1.0)
            assert [a.name for a in hub.reconciler.config.apps] == ["gc-one"]

            # committed and pushed, it lands at once (webhook)
            second = ops.commit({"fleet/fleet.yaml": (ops.work / "fleet/fleet.yaml").read_text()})
            assert await push_webhook(port, ops_url) == 200
            await until(lambda: hub.board.cell("gc-two", cluster.name).ready)
            assert await value_on(cluster, "gc-two") == "v1"

            # a typo: the last good config stays, the board names the commit and the file
            typo = _fleet_yaml(apps_url, ("gc-one", "gc-one")).replace("path:", "pth:")
            bad = ops.commit({"fleet/fleet.yaml": typo})
            assert await push_webhook(port, ops_url) == 200
            await until(lambda: bad[:12] in hub.board.config_error)
            assert "fleet/fleet.yaml" in hub.board.config_error
            assert "the last good config stays in use" in hub.board.config_error
            assert [a.name for a in hub.reconciler.config.apps] == ["gc-one", "gc-two"]
            status = await _status(port)
            assert status["config"]["commit"] == second  # type: ignore[index]
            assert status["config"]["failed_commit"] == bad  # type: ignore[index]
            assert status["summary"]["green"] is False  # type: ignore[index]

            # unparsable YAML, then a fix
            broken = ops.commit({"fleet/fleet.yaml": "apps: [\n"})
            assert await push_webhook(port, ops_url) == 200
            await until(lambda: broken[:12] in hub.board.config_error)
            fixed = ops.commit(
                {"fleet/fleet.yaml": _fleet_yaml(apps_url, ("gc-two", "gc-two"))},
            )
            assert await push_webhook(port, ops_url) == 200
            await until(lambda: not hub.board.config_error)
            assert [a.name for a in hub.reconciler.config.apps] == ["gc-two"]
            assert hub.board.config_status["source"]["commit"] == fixed
            assert not hub.targets.of_app("gc-one")  # forgotten, its objects kept
            assert await value_on(cluster, "gc-one") == "v1"
            hub.stop()


@pytest.mark.anyio
async def test_config_repo_credentials(tmp_path: Path) -> None:
    """The config's repository is read with the credentials file, as an app's is; without them
    the board names the repository and ref, never a secret, and the hub keeps running."""
    root = tmp_path / "git"
    ops = Remote(root, "ops")
    with GitHttpServer(root, auth=("bot", "config-pass-123")) as server:
        url = server.url("ops.git")
        sha = ops.commit({"fleet.yaml": _fleet_yaml("https://git.example/apps.git", ("a", "a"))})
        credentials = tmp_path / "credentials.yaml"
        credentials.write_text(
            f"credentials:\n  - url: {url}\n    username: bot\n    password: config-pass-123\n"
        )
        for with_credentials in (True, False):
            settings = hub_settings(
                tmp_path / str(with_credentials),
                config_source=f"{url}#main",
                credentials_file=credentials if with_credentials else None,
            )
            hub = Hub(settings)
            async with anyio.create_task_group() as tg:
                await tg.start(hub.run)
                config = hub.reconciler.config
                if with_credentials:
                    assert config.apps  # read before the hub reported ready
                    assert hub.board.config_status["source"]["commit"] == sha
                    assert not hub.board.config_error
                else:
                    assert "config repo" in hub.board.config_error
                    assert "ref 'main'" in hub.board.config_error
                    assert "config-pass-123" not in hub.board.config_error
                    assert not hub.reconciler.config.apps
                hub.stop()


@pytest.mark.anyio
async def test_run_refuses_a_bad_location() -> None:
    code, _, err = await fleet_cli(
        "run", "--config", "https://bot:s3cret-pw@git.example/ops.git#main:fleet.yaml"
    )
    assert code == 2
    assert err.startswith("error: --config") and "credentials" in err
    assert "s3cret-pw" not in err and "Traceback" not in err


@pytest.mark.anyio
async def test_one_repository_serves_config_and_apps(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    """A directory config in the same repository as the apps' manifests: each app's origin names
    the repository, commit and file; a commit changing the config and an app costs one fetch."""
    cluster = kit_clusters[0]
    root = tmp_path / "git"
    repo = Remote(root, "mono")
    with GitHttpServer(root) as server:
        url = server.url("mono.git")
        argo = f"""apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: gd-two}}
spec:
  source: {{repoURL: "{url}", targetRevision: main, path: gd-two}}
  destination: {{name: {cluster.name}, namespace: gd-two}}
  syncPolicy: {{automated: {{}}, syncOptions: [CreateNamespace=true]}}
"""
        first = repo.commit(
            {
                "gd-one/cm.yaml": configmap("gd-one", "v1"),
                "gd-two/cm.yaml": configmap("gd-two", "v1"),
                "gd-three/cm.yaml": configmap("gd-three", "v1"),
                "fleet/apps.yaml": _fleet_yaml(url, ("gd-one", "gd-one")),
                "fleet/more/argo.yaml": argo,
            }
        )
        settings = hub_settings(tmp_path, config_source=f"{url}#main:fleet")
        drop(cluster, settings.clusters_dir)
        hub = Hub(settings)
        async with anyio.create_task_group() as tg:
            port = await tg.start(hub.run)
            for name in ("gd-one", "gd-two"):
                await until(lambda n=name: hub.board.cell(n, cluster.name).ready)  # type: ignore[misc]
            key = hub.config_feed.location.key if hub.config_feed.location else ""
            one, two = hub.reconciler.config.app("gd-one"), hub.reconciler.config.app("gd-two")
            assert one is not None and one.origin == f"{key}@{first[:12]}:fleet/apps.yaml"
            assert two is not None and two.origin == f"{key}@{first[:12]}:fleet/more/argo.yaml"

            mirror = hub.sources.mirror(url)
            fetches = mirror.stats.fetches
            repo.commit(
                {
                    "gd-one/cm.yaml": configmap("gd-one", "v2"),
                    "fleet/apps.yaml": _fleet_yaml(
                        url, ("gd-one", "gd-one"), ("gd-three", "gd-three")
                    ),
                }
            )
            assert await push_webhook(port, url) == 200
            await until(lambda: hub.board.cell("gd-three", cluster.name).ready)

            async def landed() -> bool:
                return await value_on(cluster, "gd-one") == "v2"

            await until(landed)
            assert mirror.stats.fetches == fetches + 1
            hub.stop()


@pytest.mark.anyio
async def test_fleet_run_reads_its_config_from_git(tmp_path: Path) -> None:
    """`fleet run --config REPO#REF:PATH` as an operator runs it: a subprocess, its API."""
    root = tmp_path / "git"
    ops = Remote(root, "ops")
    with GitHttpServer(root) as server:
        url = server.url("ops.git")
        sha = ops.commit({"hub/fleet.yaml": _fleet_yaml("https://git.example/a.git", ("a", "a"))})
        location = f"{url}#main:hub/fleet.yaml"
        with HubProcess(
            tmp_path / "hub",
            poll_interval=3600,
            resync_interval=3600,
            extra_args=("--config", location),
        ) as hub:
            status = await _status(hub.port)
            assert status["config"]["commit"] == sha  # type: ignore[index]
            assert status["config"]["path"] == "hub/fleet.yaml"  # type: ignore[index]
            assert not status["config_error"]


# -- the feed alone, over real git (no cluster) ----------------------------------------------------


def _feed(tmp_path: Path, location: str) -> ConfigFeed:
    sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=0.0))
    desired = DesiredState(
        sources=sources,
        renderer=Renderer(RenderSettings()),
        cache=ManifestCache(CacheSettings(root=tmp_path / "renders")),
    )
    return ConfigFeed(source=location, sources=sources, desired=desired)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("directory", "leak"),
    [
        # the reviewer's probe: the config is the repository's root (read through git archive)
        ("", "a/b/c/d/e/f/l/../../../etc/hostname"),
        # a config directory (read from the tree listing and blobs)
        ("fleet/", "a/b/c/d/e/f/l/../../../../etc/hostname"),
    ],
)
async def test_a_symlink_chain_out_of_the_checkout_is_refused(
    tmp_path: Path, directory: str, leak: str
) -> None:
    """Each link's text stays inside the repository; resolved in order they reach /etc: the
    config is refused naming the link, and nothing outside the checkout is ever parsed."""
    root = tmp_path / "git"
    ops = Remote(root, "ops")
    with GitHttpServer(root) as server:
        url = server.url("ops.git")
        ops.commit({f"{directory}fleet.yaml": _fleet_yaml("https://git.example/a.git", ("a", "a"))})
        feed = _feed(tmp_path, f"{url}#main:{directory or '.'}")
        first = await feed.load()
        assert first is not None and [a.name for a in first.config.apps] == ["a"]
        assert not first.errors

        ops.symlink(f"{directory}a/b/c/d/e/f/l", "../../../../../..")
        bad = ops.symlink(f"{directory}leak.yaml", leak)
        feed.repo_moved(feed.location.key if feed.location else "")
        loaded = await feed.load()
        assert loaded is not None
        assert [a.name for a in loaded.config.apps] == ["a"]  # the last good config stays
        (error,) = loaded.errors
        assert bad[:12] in error
        assert "symlink" in error and "the last good config stays in use" in error
        assert f"{directory}leak.yaml" in error or f"{directory}a/b/c/d/e/f/l" in error
        assert "expected a mapping" not in error  # /etc/hostname was never parsed
        assert feed.status()["source"]["failed_commit"] == bad


@pytest.mark.anyio
async def test_a_push_during_a_read_is_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repository moves (a webhook) while the feed is reading it: the read in flight saw the
    older commit, so the next load reads again and finds the newer one."""
    root = tmp_path / "git"
    ops = Remote(root, "ops")
    with GitHttpServer(root) as server:
        url = server.url("ops.git")
        ops.commit({"fleet.yaml": _fleet_yaml("https://git.example/a.git", ("a", "a"))})
        feed = _feed(tmp_path, f"{url}#main")
        key = feed.location.key if feed.location else ""
        snapshot = feed.sources.snapshot
        pushed: list[str] = []

        async def push_mid_read(repo_url: str, ref: str) -> Snapshot:
            found = await snapshot(repo_url, ref)
            if not pushed:  # after the listing, before the read ends: a push and its webhook
                text = _fleet_yaml("https://git.example/a.git", ("a", "a"), ("b", "b"))
                pushed.append(ops.commit({"fleet.yaml": text}))
                feed.repo_moved(key)
            return found

        monkeypatch.setattr(feed.sources, "snapshot", push_mid_read)
        first = await feed.load()
        assert first is not None and [a.name for a in first.config.apps] == ["a"]
        second = await feed.load()
        assert second is not None and [a.name for a in second.config.apps] == ["a", "b"]
        assert feed.status()["source"]["commit"] == pushed[0]
        assert await feed.load() is None  # nothing moved since


@pytest.mark.anyio
async def test_a_fetch_error_clears_when_the_remote_recovers(tmp_path: Path) -> None:
    """The remote fails (the config error names the repository), then serves the same commit
    again: the error leaves the board though the commit, already read, is not read again."""
    root = tmp_path / "git"
    ops = Remote(root, "ops")
    with GitHttpServer(root) as server:
        url = server.url("ops.git")
        ops.commit({"fleet.yaml": _fleet_yaml("https://git.example/a.git", ("a", "a"))})
        feed = _feed(tmp_path, f"{url}#main")
        key = feed.location.key if feed.location else ""
        assert (await feed.load()) is not None

        ops.bare.rename(root / "ops.away")
        feed.repo_moved(key)
        failed = await feed.load()
        assert failed is not None and [a.name for a in failed.config.apps] == ["a"]
        (error,) = failed.errors
        assert error.startswith(f"config repo {key} ref 'main'")

        (root / "ops.away").rename(ops.bare)
        await anyio.sleep(1.5)  # past the first retry's backoff
        recovered = await feed.load()
        assert recovered is not None and not recovered.errors
        assert [a.name for a in recovered.config.apps] == ["a"]


@pytest.mark.anyio
async def test_a_bad_commit_stays_named_across_a_fetch_error(tmp_path: Path) -> None:
    """A bad commit, then the remote fails and recovers: the bad commit's error is still shown
    (it is still the newest commit), the fetch error is gone."""
    root = tmp_path / "git"
    ops = Remote(root, "ops")
    with GitHttpServer(root) as server:
        url = server.url("ops.git")
        ops.commit({"fleet.yaml": _fleet_yaml("https://git.example/a.git", ("a", "a"))})
        feed = _feed(tmp_path, f"{url}#main")
        key = feed.location.key if feed.location else ""
        assert (await feed.load()) is not None
        bad = ops.commit({"fleet.yaml": "apps: [\n"})
        feed.repo_moved(key)
        loaded = await feed.load()
        assert loaded is not None and bad[:12] in loaded.errors[0]

        ops.bare.rename(root / "ops.away")
        feed.repo_moved(key)
        failed = await feed.load()
        assert failed is not None and any("config repo" in e for e in failed.errors)
        (root / "ops.away").rename(ops.bare)
        await anyio.sleep(1.5)
        recovered = await feed.load()
        assert recovered is not None
        (error,) = recovered.errors
        assert bad[:12] in error and "invalid YAML" in error


@pytest.mark.anyio
async def test_a_config_commit_enqueues_only_the_apps_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each app's origin names the config's commit, and each read is a fresh scratch checkout;
    neither is part of what an app is, so a commit changing one app re-reconciles only it."""
    root = tmp_path / "git"
    ops = Remote(root, "ops")
    project = (
        "projects:\n  - name: team\n    sourceRepos: ['*']\n"
        "    destinations: [{clusters: ['*'], namespaces: ['*']}]\n"
    )

    def config(b_namespace: str) -> str:
        apps = _fleet_yaml("https://git.example/a.git", ("a", "a"), ("b", b_namespace))
        return project + apps.replace("    syncPolicy:", "    project: team\n    syncPolicy:")

    with GitHttpServer(root) as server:
        url = server.url("ops.git")
        ops.commit({"fleet.yaml": config("b")})
        hub = Hub(hub_settings(tmp_path, config_source=f"{url}#main"))
        feed = hub.config_feed
        first = await feed.load()
        assert first is not None and not first.errors
        hub.configuring.apply(first.config)

        enqueued: list[tuple[str, bool]] = []
        monkeypatch.setattr(
            hub, "_enqueue_app", lambda name, *, full=False: enqueued.append((name, full))
        )
        second = ops.commit({"fleet.yaml": config("b-moved")})
        # as the poller or a webhook: lists, sees the move, tells the feed
        await hub.refreshing.refresh(url)
        loaded = await feed.load()
        assert loaded is not None and not loaded.errors
        a = loaded.config.app("a")
        assert a is not None and second[:12] in a.origin  # the origin still names the commit
        assert "fleet-config-" not in a.project_rules.origin  # never the scratch path
        hub.configuring.apply(loaded.config)
        assert enqueued == [("b", True)]


@pytest.mark.anyio
async def test_an_alias_bomb_in_a_config_commit_is_refused_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A "billion laughs" fleet.yaml committed: refused naming the commit and the file, the last
    good config kept; the loader ran in a worker thread, never on the hub's event loop."""
    root = tmp_path / "git"
    ops = Remote(root, "ops")
    threads: list[str] = []
    read = config_loading.read_documents

    def recording_read(path: Path) -> list[tuple[str, list[Any]]]:
        threads.append(threading.current_thread().name)
        return read(path)

    monkeypatch.setattr(config_loading, "read_documents", recording_read)
    with GitHttpServer(root) as server:
        url = server.url("ops.git")
        ops.commit({"fleet.yaml": _fleet_yaml("https://git.example/a.git", ("a", "a"))})
        feed = _feed(tmp_path, f"{url}#main")
        assert (await feed.load()) is not None
        lines = ['l0: &l0 ["lol"]'] + [
            f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, 10)
        ]
        bomb = ops.commit({"fleet.yaml": "\n".join(lines) + "\napps: []\n"})
        feed.repo_moved(feed.location.key if feed.location else "")
        loaded = await feed.load()
        assert loaded is not None and [a.name for a in loaded.config.apps] == ["a"]
        (error,) = loaded.errors
        assert f"@{bomb[:12]}:fleet.yaml (document 1): expands to over" in error
        assert "YAML bomb" in error and "the last good config stays in use" in error
        assert len(threads) == 2 and threading.main_thread().name not in threads
