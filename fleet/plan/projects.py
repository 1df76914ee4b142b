"""Checks of an app's objects against its project, before any write. Pure.

- :func:`source_refusal`: a source repository the project does not list refuses the whole app;
- :func:`refusals`: each desired object outside the project is refused, named with the rule it
  breaks, and the rest of the sync goes on: a namespaced object must land in a destination
  (cluster and namespace) of the project and be of a kind not in the namespace blacklist; a
  cluster-scoped object must be of a whitelisted kind, and a Namespace must itself be one of the
  project's destination namespaces (so an app cannot create, take or prune another team's); the
  Namespace fleet adds for ``createNamespace`` needs the destination only, not the whitelist;
- :func:`prune_refusals`: an inventory object outside the project, or of a kind the project does
  not let its apps prune, is not pruned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fleet.config.projects import KindRule, Project
from fleet.plan.model import Blocked, DesiredObject
from fleet.types import ClusterRef, ObjectKey

__all__ = ["object_refusal", "prune_refusals", "refusals", "source_refusal"]


def source_refusal(project: Project, repo_url: str) -> str | None:
    """Why the project refuses an app reading `repo_url`, or None."""
    if project.allows_repo(repo_url):
        return None
    return (
        f"source repository {repo_url} is not in project {project.name}'s sourceRepos; "
        "add it there or move the app to a project that allows it"
    )


def _any_match(rules: Iterable[KindRule], key: ObjectKey) -> bool:
    return any(r.matches(key.group, key.kind) for r in rules)


def _kind(key: ObjectKey) -> str:
    return f"{key.group}/{key.kind}" if key.group else key.kind


def _destination(project: Project, cluster: ClusterRef, namespace: str) -> bool:
    return any(d.allows(cluster, namespace) for d in project.destinations)


def object_refusal(project: Project, key: ObjectKey, *, cluster: ClusterRef) -> str | None:
    """The rule of `project` that `key` breaks on `cluster`, or None."""
    name = project.name
    if key.namespace:
        if not _destination(project, cluster, key.namespace):
            return (
                f"namespace {key.namespace} on cluster {cluster.name} is not a destination of "
                f"project {name}"
            )
        for rule in project.namespace_resource_blacklist:
            if rule.matches(key.group, key.kind):
                return f"kind {_kind(key)} is in project {name}'s namespaceResourceBlacklist"
        return None
    if not any(r.matches(key.group, key.kind) for r in project.cluster_resource_whitelist):
        return (
            f"cluster-scoped kind {_kind(key)} is not in project {name}'s clusterResourceWhitelist"
        )
    if (key.group, key.kind) == ("", "Namespace") and not _destination(project, cluster, key.name):
        return (
            f"Namespace {key.name} on cluster {cluster.name} is not a destination namespace of "
            f"project {name}"
        )
    return None


def refusals(
    project: Project, desired: Sequence[DesiredObject], *, cluster: ClusterRef
) -> list[Blocked]:
    """The desired objects `project` refuses on `cluster`, each with its reason."""
    found = []
    for obj in desired:
        if obj.shared:  # the createNamespace Namespace: its name must be a destination
            allowed = _destination(project, cluster, obj.key.name)
            reason = (
                None
                if allowed
                else (
                    f"Namespace {obj.key.name} on cluster {cluster.name} is not a destination "
                    f"namespace of project {project.name}"
                )
            )
        else:
            reason = object_refusal(project, obj.key, cluster=cluster)
        if reason:
            found.append(Blocked(obj.key, obj.api_version, reason))
    return found


def prune_refusals(
    project: Project, keys: Iterable[ObjectKey], *, cluster: ClusterRef
) -> dict[ObjectKey, str]:
    """Why `project` does not let each of `keys` be pruned on `cluster` (absent: it does)."""
    found: dict[ObjectKey, str] = {}
    for key in keys:
        reason = object_refusal(project, key, cluster=cluster)
        prunable = project.prune_kinds
        if reason is None and prunable is not None and not _any_match(prunable, key):
            reason = f"kind {_kind(key)} is not in project {project.name}'s pruneKinds"
        if reason:
            found[key] = f"outside the project, not pruned: {reason}"
    return found
