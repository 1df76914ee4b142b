"""Acceptance: a ``fleet rollback`` revert reaches real clusters, and ``fleet history`` shows it.

A real git remote (bare repo + work tree), two clusters of the session kit (read-only use, a
namespace of this test's own), the hub in-process. The commits are made by the ``fleet`` command
itself, as a subprocess (``image set --push``, ``rollback --commit``), and what each cluster runs
is read from the cluster, never from the hub. ``fleet history`` is then run as a subprocess too.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import anyio
import pytest
from kubernetes_asyncio import client, config

from fleet.controlplane import RunningCluster
from fleet.hub.hub import Hub
from fleet.hub.server import ServerSettings
from fleet.hub.settings import HubSettings
from fleet.hub.webhooks import Push
from tests.hub.hubkit import deployment, namespace_doc
from tests.sources.gitkit import Remote

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]

NS = "gitops-revert"
KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [namespace.yaml, deployment.yaml]
images:
  - name: web
    newName: registry.example.com/web
    newTag: "1.0"  # bumped by CI
"""
NAMESPACE = namespace_doc(NS)
DEPLOYMENT = deployment(NS, "web")


async def fleet(*args: str) -> str:
    """Run the ``fleet`` command; its stdout (a non-zero exit fails with its stderr)."""
    done = await anyio.run_process([sys.executable, "-m", "fleet.cli.main", *args], check=False)
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, f"fleet {' '.join(args)}: {err}{out}"
    return out


async def image_on(cluster: RunningCluster) -> str | None:
    async with await config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
        try:
            found = await client.AppsV1Api(api).read_namespaced_deployment("web", NS)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return str(found.spec.template.spec.containers[0].image)


async def everywhere(clusters: list[RunningCluster], image: str, *, limit: float = 60) -> None:
    """Wait until every cluster runs `image` (a safety net against a hung hub, not a speed test)."""
    with anyio.fail_after(limit):
        while True:
            if [await image_on(c) for c in clusters] == [image] * len(clusters):
                return
            await anyio.sleep(0.2)


def settings_in(tmp_path: Path) -> HubSettings:
    return HubSettings(
        config_path=tmp_path / "fleet.yaml",
        clusters_dir=tmp_path / "clusters",
        state_dir=tmp_path / "state",
        cache_dir=tmp_path / "cache",
        server=ServerSettings(port=0),
        poll_interval=3600,  # only on_push moves it, so the test knows what triggered what
        resync_interval=3600,
        registry_rescan=1,
        config_check_interval=0.2,
    )


async def test_rollback_is_applied_to_clusters_and_history_joins_git(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    clusters = kit_clusters[:2]
    remote = Remote(tmp_path / "git", name="config")
    remote.commit(
        {
            "app/kustomization.yaml": KUSTOMIZATION,
            "app/namespace.yaml": NAMESPACE,
            "app/deployment.yaml": DEPLOYMENT,
        },
        message="seed web",
    )
    settings = settings_in(tmp_path)
    settings.config_path.write_text(
        "apps:\n  - name: web\n"
        f'    source: {{repoURL: "{remote.bare}", targetRevision: main, path: app}}\n'
        f"    destination: {{namespace: {NS}}}\n"
        "    syncPolicy: {prune: true, selfHeal: true}\n"
    )
    settings.clusters_dir.mkdir()
    for cluster in clusters:
        shutil.copyfile(cluster.kubeconfig, settings.clusters_dir / cluster.kubeconfig.name)
    work, config_path = str(remote.work), str(settings.config_path)
    pushed = Push(provider="test", urls=(str(remote.bare),), ref="refs/heads/main", after="")

    hub = Hub(settings)
    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        await everywhere(clusters, "registry.example.com/web:1.0")

        out = await fleet(
            "image", "set", "web=registry.example.com/web:2.0", "--path", "app", "--repo", work,
            "--push", "--source-commit", "abc1234",
        )  # fmt: skip
        found = re.search(r"^([0-9a-f]{12}) pushed to main", out, re.M)
        assert found, out
        bump = found[1]
        await hub.on_push(pushed)
        await everywhere(clusters, "registry.example.com/web:2.0")

        out = await fleet(
            "rollback", "web", "--commit", bump, "--config", config_path, "--repo", work
        )
        found = re.search(r"^([0-9a-f]{12}) pushed to main: Revert", out, re.M)
        assert found, out
        revert = found[1]
        await hub.on_push(pushed)
        await everywhere(clusters, "registry.example.com/web:1.0")
        # the hub's own view agrees, at the revert commit
        cells = hub.board.cells.values()
        with anyio.fail_after(30):
            while True:
                if all(c.revision.startswith(revert) and c.sync == "Synced" for c in cells):
                    break
                await anyio.sleep(0.2)
        hub.stop()

    # `fleet history` joins the SQLite records with git log of the app's (local) repoURL
    state = ["--state-dir", str(settings.state_dir), "--config", config_path]
    out = await fleet("history", "web", *state)
    lines = out.splitlines()
    for sha, subject in ((bump, "fleet: set image web to"), (revert, 'Revert "fleet: set')):
        rows = [line for line in lines if line.split()[2:3] == [sha[:10]]]
        assert {c.name for c in clusters} <= {row.split()[3] for row in rows}, out
        for row in rows:
            _, _, _, _, result, took, unit, app, *said = row.split()
            assert (result, unit, app) == ("synced", "s", "web:"), row
            assert 0 <= float(took) < 60, row  # commit-to-applied, in seconds
            assert " ".join(said).startswith(subject), row
    assert "seed web" in out

    # one cluster only
    out = await fleet("history", "web", "--cluster", clusters[0].name, *state)
    assert clusters[0].name in out and clusters[1].name not in out

    # the repo gone from its path: the hub's mirror in the cache dir still answers
    remote.bare.rename(tmp_path / "moved.git")
    out = await fleet("history", "web", *state, "--cache-dir", str(settings.cache_dir))
    assert 'Revert "fleet: set image web' in out

    # no repo at all: the plain records, with commit-to-applied from the hub's own record
    out = await fleet("history", "web", *state)
    assert "Revert" not in out and revert[:10] in out and " synced " in out
