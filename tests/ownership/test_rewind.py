"""A force-push rewind is shown and its prunes are held until consent.

A real git remote served over HTTP (``git http-backend``), a real mirror, a kit cluster: an app
applies commit A, then B (three more objects); the branch is force-pushed back to A. The desired
commit no longer descends from the applied one: the sync says "rewound from B to A", keeps the
three objects (held, out of sync, the inventory still at B), and prunes them only with consent.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import yaml

from fleet import apply, plan
from fleet.reconcile.syncing import AppSync, sync
from fleet.sources import Sources, SourceSettings
from fleet.sources.ancestry import is_ancestor
from fleet.types import RenderedSet
from tests.ownership.kit import configmap, get, unique
from tests.sources.gitkit import GitHttpServer, Remote, git

pytestmark = pytest.mark.anyio

Outcome = apply.Outcome


def files(namespace: str, count: int) -> dict[str, str | None]:
    return {
        f"cm{i}.yaml": yaml.safe_dump(configmap(f"cm{i}", namespace, i=str(i)))
        for i in range(count)
    }


def rendered(namespace: str, count: int) -> RenderedSet:
    return RenderedSet.of(configmap(f"cm{i}", namespace, i=str(i)) for i in range(count))


async def test_force_push_rewind_is_shown_and_its_prunes_held(
    cluster: apply.Cluster, namespace: str, tmp_path: Path
) -> None:
    remote = Remote(tmp_path / "srv", "config")
    commit_a = remote.commit(files(namespace, 3), message="A")
    with GitHttpServer(tmp_path / "srv") as server:
        sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=0.0))
        url = server.url("config.git")
        mirror = sources.mirror(url)
        descends = functools.partial(is_ancestor, mirror)
        app = AppSync(name=unique("app"), namespace=namespace)

        assert (await sources.snapshot(url, "main")).commit == commit_a
        first = await sync(
            cluster, app, rendered(namespace, 3), revision=commit_a, descends=descends
        )
        assert first.in_sync and first.rewound is None

        commit_b = remote.commit(files(namespace, 6), message="B")
        assert (await sources.snapshot(url, "main")).commit == commit_b
        forward = await sync(
            cluster, app, rendered(namespace, 6), revision=commit_b, descends=descends
        )
        assert (
            forward.in_sync
            and forward.rewound is None
            and len(forward.changes.of(Outcome.CREATED)) == 3
        )

        git("reset", "--quiet", "--hard", commit_a, cwd=remote.work)
        git("push", "--quiet", "--force", "origin", "HEAD:refs/heads/main", cwd=remote.work)
        assert (await sources.snapshot(url, "main")).commit == commit_a
        assert not await is_ancestor(mirror, commit_b, commit_a)
        assert await is_ancestor(mirror, commit_a, commit_b)

        rewound = await sync(
            cluster, app, rendered(namespace, 3), revision=commit_a, descends=descends
        )
        expected = f"rewound from {commit_b[:12]} to {commit_a[:12]}"
        assert rewound.rewound == expected
        print(rewound.problems()[0])
        assert rewound.changes.of(Outcome.PRUNED) == ()
        assert {c.key.name for c in rewound.changes.of(Outcome.SKIPPED)} == {"cm3", "cm4", "cm5"}
        assert not rewound.in_sync and rewound.problems()[0].startswith(expected)
        for i in range(6):
            assert await get(cluster, f"/api/v1/namespaces/{namespace}/configmaps/cm{i}")
        inventory = await apply.read_inventory(cluster, app.inventory_id)
        assert inventory is not None and inventory.revision == commit_b  # the rewind is pending

        commit_c = remote.commit({"note.txt": "after the rewind"}, message="C")  # on top of A
        assert (await sources.snapshot(url, "main")).commit == commit_c
        still = await sync(
            cluster, app, rendered(namespace, 3), revision=commit_c, descends=descends
        )
        assert still.rewound == f"rewound from {commit_b[:12]} to {commit_c[:12]}"
        assert still.changes.of(Outcome.PRUNED) == ()
        print("objects wrongly deleted: 0 (the rewind's prunes are held)")

        consent = AppSync(name=app.name, namespace=namespace, prune=plan.PrunePolicy(consent=True))
        done = await sync(
            cluster, consent, rendered(namespace, 3), revision=commit_c, descends=descends
        )
        assert {c.key.name for c in done.changes.of(Outcome.PRUNED)} == {"cm3", "cm4", "cm5"}
        assert done.in_sync
        inventory = await apply.read_inventory(cluster, app.inventory_id)
        assert inventory is not None and inventory.revision == commit_c
        after = await sync(
            cluster, app, rendered(namespace, 3), revision=commit_c, descends=descends
        )
        assert after.rewound is None and after.in_sync
