"""Acceptance over real git served by HTTP: 3 apps x 4 clusters, pushes during the test.

One fetch per new commit (counted at the HTTP server), identical inputs render once, a commit
touching one app's path re-renders only that app, and a commit touching none re-renders nothing.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from fleet.cache import CacheSettings, ManifestCache
from fleet.reconcile.desired import AppSource, Desired, DesiredState
from fleet.render import Renderer
from fleet.sources import Sources, SourceSettings
from fleet.types import ClusterRef
from tests.sources.gitkit import GitHttpServer, Remote

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {v: '%s'}\n"
CLUSTERS = [
    ClusterRef(f"c{i}", {"env": "prod" if i % 2 else "dev", "index": str(i)}) for i in range(4)
]


async def round_of(state: DesiredState, apps: list[AppSource]) -> dict[tuple[str, str], Desired]:
    out: dict[tuple[str, str], Desired] = {}

    async def one(app: AppSource, cluster: ClusterRef) -> None:
        out[(app.name, cluster.name)] = await state.desired(app, cluster)

    async with anyio.create_task_group() as tg:
        for app in apps:
            for cluster in CLUSTERS:
                tg.start_soon(one, app, cluster)
    assert all(d.error is None for d in out.values()), [d.error for d in out.values()]
    return out


@pytest.mark.anyio
async def test_three_apps_four_clusters_over_http(tmp_path: Path) -> None:
    remote = Remote(tmp_path / "srv")
    remote.commit(
        {
            "apps/a/cm.yaml": CM % ("a", 1),
            "apps/b/cm.yaml": CM % ("b", 1),
            "kust/base/kustomization.yaml": "resources: [cm.yaml]\n",
            "kust/base/cm.yaml": CM % ("k", 1),
            "kust/overlays/prod/kustomization.yaml": "resources: [../../base]\nnamePrefix: p-\n",
            "kust/overlays/dev/kustomization.yaml": "resources: [../../base]\nnamePrefix: d-\n",
            "README.md": "hello",
        }
    )
    with GitHttpServer(tmp_path / "srv") as server:
        url = server.url("repo.git")
        sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=3600.0))
        renderer = Renderer()
        state = DesiredState(
            sources=sources,
            renderer=renderer,
            cache=ManifestCache(CacheSettings(root=tmp_path / "render")),
        )
        apps = [
            AppSource(name="a", repo_url=url, revision="main", path="apps/a"),
            AppSource(name="b", repo_url=url + "/", revision="main", path="apps/b"),
            AppSource(
                name="k",
                repo_url=url,
                revision="main",
                path="kust/overlays/{{ cluster.labels.env }}",
            ),
        ]
        first = await round_of(state, apps)
        assert server.counts.fetches == 1
        assert renderer.renders == 2 + 2  # a and b once each; k once per env
        assert len({first[("a", c.name)].key for c in CLUSTERS}) == 1
        names = {o["metadata"]["name"] for o in first[("k", "c1")].rendered.objects}  # type: ignore[union-attr]
        assert names == {"p-k"}

        # a commit touching app a's path: one fetch, one render
        remote.commit({"apps/a/cm.yaml": CM % ("a", 2)})
        assert await sources.refresh(url)
        second = await round_of(state, apps)
        assert server.counts.fetches == 2
        assert renderer.renders == 5
        assert second[("a", "c0")].key != first[("a", "c0")].key
        assert all(
            second[(n, c.name)].key == first[(n, c.name)].key for n in "bk" for c in CLUSTERS
        )

        # a commit touching no app: one fetch, no render, every key unchanged
        remote.commit({"README.md": "changed"})
        await sources.refresh(url)
        third = await round_of(state, apps)
        assert server.counts.fetches == 3 and renderer.renders == 5
        assert {k: d.key for k, d in third.items()} == {k: d.key for k, d in second.items()}
        assert all(d.commit != second[k].commit for k, d in third.items())

        # the shared kustomize base changes: both overlays re-render, nothing else
        remote.commit({"kust/base/cm.yaml": CM % ("k", 2)})
        await sources.refresh(url)
        await round_of(state, apps)
        assert server.counts.fetches == 4 and renderer.renders == 7
        assert sources.mirror(url).stats.fetches == 4
