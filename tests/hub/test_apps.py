"""The mapping from the declared app to the engine's inputs (pure)."""

from __future__ import annotations

from fleet.config import App, Destination, Source, SyncPolicy
from fleet.hub import apps
from fleet.types import ClusterRef


def test_safe_defaults_and_per_cluster_namespace() -> None:
    app = App(
        name="web",
        source=Source(repo_url="file:///srv/config.git", path="apps/{{ cluster.labels.env }}"),
        destination=Destination(namespace="web-{{ cluster.name }}"),
        sync_policy=SyncPolicy(prune=True, prune_kinds=("Namespace",)),
    )
    cluster = ClusterRef("eu-1", {"env": "prod"})
    sync = apps.app_sync(app, cluster)
    assert sync.namespace == "web-eu-1"
    assert sync.prune.prune and sync.prune.prune_namespaces and not sync.prune.prune_crds
    assert not sync.prune.consent, "the hub never consents to a large prune on its own"
    assert apps.app_sync(app, cluster, consent=True).prune.consent
    source = apps.app_source(app)
    assert source.path == "apps/{{ cluster.labels.env }}"  # expanded by render, per cluster
