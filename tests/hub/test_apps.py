"""The mapping from the declared app to the engine's inputs (pure)."""

from __future__ import annotations

import dataclasses

from fleet import plan
from fleet.config import App, Destination, Source, SyncPolicy
from fleet.config.projects import Project
from fleet.hub import apps
from fleet.types import ClusterRef, RenderedSet


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


def test_with_namespace_adds_the_destination_once() -> None:
    app = App(
        name="web",
        source=Source(repo_url="file:///srv/config.git"),
        destination=Destination(namespace="web-{{ cluster.name }}"),
        sync_policy=SyncPolicy(create_namespace=True),
    )
    cluster = ClusterRef("eu-1")
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    rendered = apps.with_namespace(app, cluster, RenderedSet.of([config_map]))
    kinds = sorted((m["kind"], m["metadata"]["name"]) for m in rendered.objects)
    assert kinds == [("ConfigMap", "c"), ("Namespace", "web-eu-1")]
    (ns,) = [m for m in rendered.objects if m["kind"] == "Namespace"]
    assert plan.SHARED_MARK_ANNOTATION in ns["metadata"]["annotations"]  # fleet added it
    assert apps.with_namespace(app, cluster, rendered) == rendered  # already there: unchanged
    plain = dataclasses.replace(app, sync_policy=SyncPolicy())
    assert apps.with_namespace(plain, cluster, RenderedSet.of([config_map])).objects == (
        config_map,
    )


def test_ownership_and_project_reach_the_engine() -> None:
    project = Project(name="team", source_repos=("https://git.example.com/team/*",))
    app = App(
        name="web",
        source=Source(repo_url="https://git.example.com/other/config.git"),
        destination=Destination(namespace="web"),
        sync_policy=SyncPolicy(adopt=True, delete_adopted=True),
        project="team",
        project_rules=project,
    )
    engine = apps.app_sync(app, ClusterRef("eu-1", {"env": "prod"}), hub="hub-a")
    assert engine.tracking("ignored") == "hub-a/web/eu-1/web"
    assert engine.adopt and engine.delete_adopted and engine.project is project
    assert engine.apply_options("eu-1").field_manager == "hub-a/web/eu-1/web"
    refusal = apps.source_refusal(app)
    assert refusal is not None and refusal.startswith("app web: source repository")
    allowed = dataclasses.replace(app, source=Source(repo_url="https://git.example.com/team/x"))
    assert apps.source_refusal(allowed) is None
