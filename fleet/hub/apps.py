"""From what the operator declared to what the engine takes (pure).

The config speaks Argo CD's words; the engine packages take their own small types. Keeping the
mapping here, in one place, means ``fleet.yaml`` can grow without the engine knowing, and the
safe defaults stay visible: the hub never consents to a large prune on its own.
"""

from __future__ import annotations

from fleet import plan, render
from fleet.apply import ApplyOptions
from fleet.config import App, model, templates
from fleet.plan import projects
from fleet.reconcile.desired import AppSource
from fleet.reconcile.syncing import AppSync
from fleet.types import ClusterRef, RenderedSet

__all__ = ["app_source", "app_sync", "source_refusal", "with_namespace"]


def app_source(app: App) -> AppSource:
    """The pipeline's view of `app`'s source: every Argo CD source field, in the render types.

    A Helm release stays empty without ``releaseName`` (the engine then names it after the app,
    as Argo CD does); ``plugin`` is passed on for the renderer to refuse by name.
    """
    source = app.source
    return AppSource(
        name=app.name,
        repo_url=source.repo_url,
        revision=source.target_revision,
        path=source.path,
        namespace=app.destination.namespace,
        helm=_helm(source.helm) if source.helm is not None else None,
        kustomize=_kustomize(source.kustomize) if source.kustomize is not None else None,
        directory=_directory(source.directory) if source.directory is not None else None,
        plugin=source.plugin,
    )


def _helm(helm: model.HelmOptions) -> render.HelmOptions:
    return render.HelmOptions(
        release=helm.release_name or "",
        value_files=helm.value_files,
        values=helm.values,
        values_object=helm.values_object,
        parameters=tuple(
            render.HelmParameter(name=p.name, value=p.value, force_string=p.force_string)
            for p in helm.parameters
        ),
        file_parameters=tuple(
            render.HelmFileParameter(name=p.name, path=p.path) for p in helm.file_parameters
        ),
        ignore_missing_value_files=helm.ignore_missing_value_files,
        skip_crds=helm.skip_crds,
        skip_tests=helm.skip_tests,
        namespace=helm.namespace,
        kube_version=helm.kube_version,
        api_versions=helm.api_versions,
        version=helm.version,
        pass_credentials=helm.pass_credentials,
    )


def _kustomize(options: model.KustomizeOptions) -> render.KustomizeOptions:
    return render.KustomizeOptions(
        images=options.images,
        name_prefix=options.name_prefix,
        name_suffix=options.name_suffix,
        namespace=options.namespace,
        common_labels=options.common_labels,
        common_annotations=options.common_annotations,
        force_common_labels=options.force_common_labels,
        force_common_annotations=options.force_common_annotations,
        label_without_selector=options.label_without_selector,
        label_include_templates=options.label_include_templates,
        replicas=tuple(
            render.KustomizeReplica(name=r.name, count=r.count) for r in options.replicas
        ),
        patches=options.patches,
        components=options.components,
        ignore_missing_components=options.ignore_missing_components,
        version=options.version,
    )


def _directory(options: model.DirectoryOptions) -> render.DirectoryOptions:
    def variables(items: tuple[model.JsonnetVar, ...]) -> tuple[render.JsonnetVar, ...]:
        return tuple(render.JsonnetVar(name=v.name, value=v.value, code=v.code) for v in items)

    return render.DirectoryOptions(
        recurse=options.recurse,
        include=options.include,
        exclude=options.exclude,
        jsonnet=render.JsonnetOptions(
            ext_vars=variables(options.jsonnet_ext_vars),
            tlas=variables(options.jsonnet_tlas),
            libs=options.jsonnet_libs,
        ),
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
