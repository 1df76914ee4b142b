"""Each bad input gives an error naming repo, commit, path and cause; the last good render stays."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from fleet.cache import CacheSettings, ManifestCache
from fleet.controlplane.binaries import ensure_tool
from fleet.errors import StalledError, TransientError
from fleet.reconcile.desired import AppSource, DesiredState
from fleet.render import DocumentLimits, HelmOptions, Renderer, RenderSettings
from fleet.settings import default_cache_dir
from fleet.sources import Sources, SourceSettings
from fleet.types import ClusterRef
from tests.sources.gitkit import GitHttpServer, Remote

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\n"
CLUSTER = ClusterRef("c1", {"env": "prod"})
BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)
)


def pipeline(tmp_path: Path, **source_kw: object) -> DesiredState:
    sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=0.0, **source_kw))  # type: ignore[arg-type]
    renderer = Renderer(
        RenderSettings(
            helm=ensure_tool("helm", cache_dir=default_cache_dir()),
            limits=DocumentLimits(max_file_bytes=32 * 1024, max_nodes=10_000),
        )
    )
    return DesiredState(
        sources=sources, renderer=renderer, cache=ManifestCache(CacheSettings(root=tmp_path / "r"))
    )


GOOD = {
    "app/cm.yaml": CM % "good",
    "kust/base/kustomization.yaml": "resources: [cm.yaml]\n",
    "kust/base/cm.yaml": CM % "base",
    "chart/Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.1.0\n",
    "chart/templates/cm.yaml": CM % "{{ .Release.Name }}",
}

CASES: dict[str, tuple[str, dict[str, str | None], str]] = {
    "missing path": ("app", {"app/cm.yaml": None}, r"path 'app' does not exist"),
    "invalid yaml": ("app", {"app/cm.yaml": "a: [1\n"}, r"app/cm.yaml: invalid YAML"),
    "no kind": ("app", {"app/cm.yaml": "apiVersion: v1\nmetadata: {name: x}\n"}, r"without kind"),
    "no name": ("app", {"app/x.yaml": "apiVersion: v1\nkind: ConfigMap\n"}, r"metadata\.name"),
    "yaml bomb": ("app", {"app/bomb.yaml": BOMB}, r"app/bomb.yaml.*YAML bomb"),
    "too big": ("app", {"app/big.yaml": CM % "b" + "#" * 40_000}, r"app/big.yaml.*over the limit"),
    "dotdot": (
        "kust/base",
        {"kust/base/kustomization.yaml": "resources: [cm.yaml, ../../../etc]\n"},
        r"kust/base/kustomization.yaml.*'../../../etc' escapes the repository",
    ),
    "kustomize fails": (
        "kust/base",
        {
            "kust/base/kustomization.yaml": "resources: [cm.yaml]\npatches: [{path: p.yaml}]\n",
            "kust/base/p.yaml": CM % "absent",
        },
        r"kustomize failed: .*absent",
    ),
    "helm fails": (
        "chart",
        {"chart/templates/bad.yaml": '{{ fail "boom-from-chart" }}\n'},
        r"helm failed: .*boom-from-chart",
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", sorted(CASES))
async def test_bad_commit_keeps_last_good(tmp_path: Path, case: str) -> None:
    path, change, cause = CASES[case]
    remote = Remote(tmp_path)
    remote.commit(GOOD)
    state = pipeline(tmp_path)
    helm = HelmOptions(release="rel") if path == "chart" else None
    app = AppSource(name="a", repo_url=remote.url, revision="main", path=path, helm=helm)
    good = await state.desired(app, CLUSTER)
    assert good.error is None and good.rendered is not None
    bad_commit = remote.commit(change)
    bad = await state.desired(app, CLUSTER)
    assert isinstance(bad.error, StalledError), bad.error
    message = str(bad.error)
    assert remote.url in message and bad_commit[:12] in message and f"path {path!r}" in message
    assert pytest.importorskip("re").search(cause, message), message
    assert bad.stale and bad.rendered == good.rendered and bad.commit == good.commit


@pytest.mark.anyio
async def test_escaping_symlink(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.commit(GOOD)
    state = pipeline(tmp_path)
    app = AppSource(name="a", repo_url=remote.url, revision="main", path="app")
    good = await state.desired(app, CLUSTER)
    commit = remote.symlink("app/passwd.yaml", "../../../../../etc/passwd")
    bad = await state.desired(app, CLUSTER)
    message = str(bad.error)
    assert isinstance(bad.error, StalledError) and commit[:12] in message
    assert "app/passwd.yaml" in message and "escapes the repository" in message
    assert bad.rendered == good.rendered


@pytest.mark.anyio
async def test_unreachable_remote_and_bad_credential(tmp_path: Path) -> None:
    remote = Remote(tmp_path / "srv")
    remote.commit(GOOD)
    creds = tmp_path / "creds.yaml"
    with GitHttpServer(tmp_path / "srv", auth=("bot", "right")) as server:
        url = server.url("repo.git")
        creds.write_text(f"credentials:\n  - {{url: '{url}', username: bot, password: right}}\n")
        state = pipeline(tmp_path, credentials_file=creds)
        app = AppSource(name="a", repo_url=url, revision="main", path="app")
        good = await state.desired(app, CLUSTER)
        assert good.error is None
        creds.write_text(f"credentials:\n  - {{url: '{url}', username: bot, password: wrong}}\n")
        state.sources = Sources(state.sources.settings)
        bad = await state.desired(app, CLUSTER)
        assert isinstance(bad.error, StalledError) and "access refused" in str(bad.error)
        assert url in str(bad.error) and "wrong" not in str(bad.error)
        assert bad.rendered == good.rendered
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = AppSource(name="a", repo_url=f"http://127.0.0.1:{port}/repo.git", path="app")
    gone = await state.desired(down, CLUSTER)
    assert isinstance(gone.error, TransientError) and f"127.0.0.1:{port}" in str(gone.error)
    assert gone.rendered == good.rendered  # the last good render of app "a" on c1 is kept
