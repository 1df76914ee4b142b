"""From what the operator declared to what the engine takes (pure).

The config speaks Argo CD's words; the engine packages take their own small types. Keeping the
mapping here, in one place, means ``fleet.yaml`` can grow without the engine knowing, and the
safe defaults stay visible: the hub never consents to a large prune on its own.
"""

from __future__ import annotations

from fleet import plan
from fleet.apply import ApplyOptions
from fleet.config import App, templates
from fleet.plan import projects
from fleet.reconcile.desired import AppSource
from fleet.reconcile.syncing import AppSync
from fleet.render import HelmOptions
from fleet.types import ClusterRef, RenderedSet

__all__ = ["app_source", "app_sync", "source_refusal", "with_namespace"]


def app_source(app: App) -> AppSource:
    helm = None
    if app.source.helm is not None:
        helm = HelmOptions(
            release=app.source.helm.release_name or app.name,
            value_files=app.source.helm.value_files,
            values=app.source.helm.values,
        )
    return AppSource(
        name=app.name,
        repo_url=app.source.repo_url,
        revision=app.source.target_revision,
        path=app.source.path,
        namespace=app.destination.namespace,
        helm=helm,
    )


def source_refusal(app: App) -> str | None:
    """Why `app`'s project refuses its source repository (call before fetching), or None."""
    reason = projects.source_refusal(app.project_rules, app.source.repo_url)
    return f"app {app.name}: {reason}" if reason else None


def app_sync(
    app: App, cluster: ClusterRef, *, consent: bool = False, hub: str = "fleet"
) -> AppSync:
    """The engine's view of `app` on `cluster` (its namespace may name the cluster).

    `hub` is the hub's id, part of every tracking id; `consent` lets a large prune, or the
    prunes of a rewind, through.
    """
    policy = app.sync_policy
    kinds = set(policy.prune_kinds)
    return AppSync(
        name=app.name,
        namespace=templates.expand(app.destination.namespace, cluster),
        hub=hub,
        cluster=cluster.name,
        adopt=policy.adopt,
        delete_adopted=policy.delete_adopted,
        project=app.project_rules,
        repo_url=app.source.repo_url,
        cluster_labels=dict(cluster.labels),
        prune=plan.PrunePolicy(
            prune=policy.prune,
            allow_empty=policy.allow_empty,
            prune_namespaces="Namespace" in kinds,
            prune_crds="CustomResourceDefinition" in kinds,
            prune_pvcs="PersistentVolumeClaim" in kinds,
            max_share=policy.prune_limit,
            consent=consent,
        ),
        options=ApplyOptions(force=policy.force_conflicts),
        ignore=tuple(
            plan.IgnoreRule(
                kind=rule.kind,
                pointers=rule.json_pointers,
                group=rule.group,
                name=rule.name,
                namespace=rule.namespace,
            )
            for rule in app.ignore_differences
        ),
    )


def with_namespace(app: App, cluster: ClusterRef, rendered: RenderedSet) -> RenderedSet:
    """`rendered` plus the app's destination Namespace when the app asks fleet to create it.

    The Namespace is marked ``fleet.dev/added-for: createNamespace`` so that sync knows fleet
    added it: it is not counted as rendered by the empty-render and prune-share guards, and it is
    a shared object (several apps may want it; each adds its owner mark, none fights the others;
    an existing Namespace fleet did not create is used as is). Like every Namespace, it is pruned
    only when its last owner leaves and that app opts in to pruning Namespaces.
    """
    namespace = templates.expand(app.destination.namespace, cluster)
    if not app.sync_policy.create_namespace or not namespace:
        return rendered
    if any(
        m.get("kind") == "Namespace" and (m.get("metadata") or {}).get("name") == namespace
        for m in rendered.objects
    ):
        return rendered
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "annotations": {plan.SHARED_MARK_ANNOTATION: "createNamespace"},
        },
    }
    return RenderedSet.of([*rendered.objects, manifest])
