"""Projects (Argo CD's AppProjects): what the apps of a project may read and write.

A :class:`Project` lists the source repositories its apps may read (globs on the repo URL), the
destinations they may write (clusters by name or labels, namespaces by glob), the cluster-scoped
kinds they may apply (``clusterResourceWhitelist``), the namespaced kinds they may not
(``namespaceResourceBlacklist``), and optionally the kinds they may prune (``pruneKinds``; absent:
only the app's own rules apply). As in Argo CD, a field a declared project leaves out allows
nothing: a project says what it allows. Kinds are ``{group, kind}`` with ``*`` globs; the core
group is ``""``.

Every app belongs to one project, ``default`` unless it names another. Without a declared
``default`` project, ``default`` allows everything (today's configs keep running), unless the
config says ``defaultProject: strict``: then ``default`` allows nothing and every app must name a
project that lets it write. A declared project named ``default`` replaces either.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleet.types import ClusterRef

__all__ = ["OPEN_DEFAULT", "STRICT_DEFAULT", "Destination", "KindRule", "Project"]


@dataclass(frozen=True)
class KindRule:
    """A (group, kind) pattern; ``*`` matches any."""

    group: str = "*"
    kind: str = "*"

    def matches(self, group: str, kind: str) -> bool:
        return fnmatch.fnmatchcase(group, self.group) and fnmatch.fnmatchcase(kind, self.kind)

    def __str__(self) -> str:
        return f"{self.group or 'core'}/{self.kind}"


@dataclass(frozen=True)
class Destination:
    """Where a project's apps may write: clusters (names, globs, and/or labels; neither means
    every cluster) and namespaces (globs)."""

    names: tuple[str, ...] = ()
    match_labels: Mapping[str, str] = field(default_factory=dict)
    namespaces: tuple[str, ...] = ()

    def selects(self, cluster: ClusterRef) -> bool:
        if self.names and not any(fnmatch.fnmatchcase(cluster.name, n) for n in self.names):
            return False
        return all(cluster.labels.get(k) == v for k, v in self.match_labels.items())

    def allows(self, cluster: ClusterRef, namespace: str) -> bool:
        return self.selects(cluster) and any(
            fnmatch.fnmatchcase(namespace, pattern) for pattern in self.namespaces
        )


@dataclass(frozen=True)
class Project:
    """One project; see the module docstring."""

    name: str
    source_repos: tuple[str, ...] = ()
    destinations: tuple[Destination, ...] = ()
    cluster_resource_whitelist: tuple[KindRule, ...] = ()
    namespace_resource_blacklist: tuple[KindRule, ...] = ()
    prune_kinds: tuple[KindRule, ...] | None = None
    origin: str = field(default="", compare=False)  # for messages, as App.origin

    def allows_repo(self, repo_url: str) -> bool:
        candidates = {repo_url, repo_url.rstrip("/"), repo_url.rstrip("/").removesuffix(".git")}
        return any(
            fnmatch.fnmatchcase(url, pattern) for url in candidates for pattern in self.source_repos
        )


OPEN_DEFAULT = Project(
    name="default",
    source_repos=("*",),
    destinations=(Destination(namespaces=("*",)),),
    cluster_resource_whitelist=(KindRule(),),
)
"""The default project when the config declares none: everything allowed."""

STRICT_DEFAULT = Project(name="default")
"""The default project of ``defaultProject: strict``: nothing allowed."""
