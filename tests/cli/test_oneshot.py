"""fleet render / diff / sync, run as the command line, against a real git remote and cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.controlplane import RunningCluster
from tests.hub.hubkit import configmap, namespace_doc
from tests.sources.gitkit import Remote

pytestmark = pytest.mark.clusters


def _fleet(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FLEET_CACHE_DIR=str(cwd / "cache"))
    return subprocess.run(
        [sys.executable, "-m", "fleet.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_render_diff_sync(kit_clusters: list[RunningCluster], tmp_path: Path) -> None:
    cluster = kit_clusters[0]
    ns = "cli-oneshot"
    remote = Remote(tmp_path / "git")
    remote.commit(
        {
            "app/ns.yaml": namespace_doc(ns),
            "app/cm.yaml": configmap(ns, "one"),
            "app/extra.yaml": configmap(ns, "x").replace("settings", "extra"),
        }
    )
    (tmp_path / "clusters").mkdir()
    shutil.copyfile(cluster.kubeconfig, tmp_path / "clusters" / cluster.kubeconfig.name)
    (tmp_path / "fleet.yaml").write_text(f"""apps:
  - name: cli
    source: {{repoURL: "{remote.url}", path: app}}
    destination: {{namespace: {ns}}}
    syncPolicy: {{prune: true}}
""")
    rendered = _fleet("render", "cli", cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    assert "name: settings" in rendered.stdout and "value: one" in rendered.stdout

    dry = _fleet("sync", "cli", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert f"{cluster.name}: would apply" in dry.stdout
    diff = _fleet("diff", "cli", "--cluster", cluster.name, cwd=tmp_path)
    assert "ConfigMap cli-oneshot/settings: create" in diff.stdout

    synced = _fleet("sync", "cli", cwd=tmp_path)
    assert synced.returncode == 0, synced.stderr
    assert "created 3" in synced.stdout, synced.stdout
    again = _fleet("sync", "cli", cwd=tmp_path)
    assert "unchanged 3" in again.stdout and "created" not in again.stdout, again.stdout

    remote.commit({"app/cm.yaml": configmap(ns, "two"), "app/extra.yaml": None})
    diff = _fleet("diff", "cli", "--cluster", cluster.name, cwd=tmp_path)
    assert "ConfigMap cli-oneshot/settings: update" in diff.stdout
    assert "-  value: one" in diff.stdout and "+  value: two" in diff.stdout
    assert "ConfigMap cli-oneshot/extra: prune" in diff.stdout
    # the dry run tells the same truth as the diff, and changes nothing
    dry = _fleet("sync", "cli", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "would apply" in dry.stdout and "configured 1, pruned 1" in dry.stdout, dry.stdout
    assert "ConfigMap cli-oneshot/settings: configured" in dry.stdout, dry.stdout
    assert "ConfigMap cli-oneshot/extra: pruned" in dry.stdout, dry.stdout
    again = _fleet("diff", "cli", "--cluster", cluster.name, cwd=tmp_path)
    assert again.stdout == diff.stdout, "a dry run wrote to the cluster"
    synced = _fleet("sync", "cli", cwd=tmp_path)
    assert "configured 1, pruned 1" in synced.stdout, synced.stdout


def test_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text("apps: [\n")
    bad = _fleet("render", "web", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ") and "invalid YAML" in bad.stderr
    assert "Traceback" not in bad.stderr
    (tmp_path / "fleet.yaml").write_text("apps: []\n")
    missing = _fleet("sync", "web", cwd=tmp_path)
    assert missing.stderr.strip() == "error: fleet.yaml: no app named 'web'"
