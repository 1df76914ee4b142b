"""The app model: Argo CD's words (source, destination, syncPolicy), as frozen dataclasses.

An :class:`App` says what to deploy (a path at a revision of a repository) and where (a namespace
on every cluster its selector matches). The same app on N clusters is N (cluster, app) pairs for the
scheduler; per-cluster differences come only from ``{{ cluster.name }}`` and
``{{ cluster.labels.X }}`` in the path and Helm values (:mod:`fleet.config.templates`).

Defaults lean safe, as a production GitOps tool must: prune is off unless the app turns it on,
an empty render never prunes unless ``allowEmpty``, a prune of more than half of what an app
owns needs ``pruneLimit`` raised, and an object that exists and that fleet did not create is not
taken over unless the app opts in with ``adopt`` (then it is released, not deleted, when it
leaves git, unless ``deleteAdopted``). Each app belongs to a project
(:mod:`fleet.config.projects`), ``default`` unless it names one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from fleet.config.projects import OPEN_DEFAULT, Project
from fleet.types import ClusterRef

__all__ = [
    "App",
    "ClusterSelector",
    "Config",
    "Destination",
    "DirectoryOptions",
    "HelmFileParameter",
    "HelmOptions",
    "HelmParameter",
    "IgnoreRule",
    "JsonnetVar",
    "KustomizeOptions",
    "KustomizeReplica",
    "Source",
    "SyncPolicy",
]


@dataclass(frozen=True)
class HelmParameter:
    """``helm.parameters[]``: a ``--set name=value`` (``--set-string`` when `force_string`)."""

    name: str
    value: str
    force_string: bool = False


@dataclass(frozen=True)
class HelmFileParameter:
    """``helm.fileParameters[]``: a ``--set-file name=path``, `path` relative to the chart."""

    name: str
    path: str


@dataclass(frozen=True)
class HelmOptions:
    """``helm template`` inputs (Argo CD's ``source.helm``), as the config declared them.

    `values` is a mapping or the YAML text of ``helm.values`` (checked to hold a mapping);
    `values_object` (``valuesObject``) takes its place when given. `release_name` None means the
    app's name.
    """

    value_files: tuple[str, ...] = ()
    values: Mapping[str, Any] | str = field(default_factory=dict)
    release_name: str | None = None
    values_object: Mapping[str, Any] | None = None
    parameters: tuple[HelmParameter, ...] = ()
    file_parameters: tuple[HelmFileParameter, ...] = ()
    ignore_missing_value_files: bool = False
    skip_crds: bool = False
    skip_tests: bool = False
    namespace: str = ""
    kube_version: str = ""
    api_versions: tuple[str, ...] = ()
    version: str = ""
    pass_credentials: bool = False


@dataclass(frozen=True)
class KustomizeReplica:
    """``kustomize.replicas[]``: the replica count of the workload `name`."""

    name: str
    count: int


@dataclass(frozen=True)
class KustomizeOptions:
    """Edits to the app's kustomization before the build (Argo CD's ``source.kustomize``)."""

    images: tuple[str, ...] = ()
    name_prefix: str = ""
    name_suffix: str = ""
    namespace: str = ""
    common_labels: Mapping[str, str] = field(default_factory=dict)
    common_annotations: Mapping[str, str] = field(default_factory=dict)
    force_common_labels: bool = False
    force_common_annotations: bool = False
    label_without_selector: bool = False
    label_include_templates: bool = False
    replicas: tuple[KustomizeReplica, ...] = ()
    patches: tuple[Mapping[str, Any], ...] = ()
    components: tuple[str, ...] = ()
    ignore_missing_components: bool = False
    version: str = ""


@dataclass(frozen=True)
class JsonnetVar:
    """``jsonnet.extVars[]`` / ``jsonnet.tlas[]``: a string value, or jsonnet code when `code`."""

    name: str
    value: str
    code: bool = False


@dataclass(frozen=True)
class DirectoryOptions:
    """Argo CD's ``source.directory``: the top directory only unless `recurse`; glob filters;
    jsonnet inputs (`libs` are repository paths)."""

    recurse: bool = False
    include: str = ""
    exclude: str = ""
    jsonnet_ext_vars: tuple[JsonnetVar, ...] = ()
    jsonnet_tlas: tuple[JsonnetVar, ...] = ()
    jsonnet_libs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Source:
    """Where the manifests are: a repository, a revision, a path inside it, and the tool options.

    `directory` None means fleet's plain manifests (recursive); an Argo CD Application always
    carries one (Argo CD reads only the top directory unless ``recurse``). `plugin` marks a
    ``source.plugin``, which the renderer refuses by name.
    """

    repo_url: str
    target_revision: str = "HEAD"
    path: str = "."
    helm: HelmOptions | None = None
    kustomize: KustomizeOptions | None = None
    directory: DirectoryOptions | None = None
    plugin: bool = False


@dataclass(frozen=True)
class ClusterSelector:
    """Which clusters an app goes to: by name, by labels, by API server URL, or all."""

    names: tuple[str, ...] = ()
    match_labels: Mapping[str, str] = field(default_factory=dict)
    servers: tuple[str, ...] = ()
    note: str = ""  # what to do when the selector selects no cluster, for that error

    def matches(self, cluster: ClusterRef, *, server: str = "") -> bool:
        """True when `cluster` is selected; an empty selector selects every cluster."""
        if self.names and cluster.name not in self.names:
            return False
        if self.servers and server.rstrip("/") not in {s.rstrip("/") for s in self.servers}:
            return False
        return all(cluster.labels.get(k) == v for k, v in self.match_labels.items())


@dataclass(frozen=True)
class Destination:
    """The namespace namespaced objects without one land in, on the selected clusters."""

    namespace: str
    clusters: ClusterSelector = field(default_factory=ClusterSelector)


@dataclass(frozen=True)
class SyncPolicy:
    """How far fleet may go on its own."""

    prune: bool = False
    self_heal: bool = False
    allow_empty: bool = False
    force_conflicts: bool = True  # over hand edits of this app's own objects; never between apps
    prune_limit: float = 0.5  # the share of the inventory one sync may prune without consent
    prune_kinds: tuple[str, ...] = ()  # opt in to pruning Namespace, CustomResourceDefinition, ...
    create_namespace: bool = False  # apply the destination Namespace too (Argo's CreateNamespace)
    adopt: bool = False  # take over existing objects no fleet app owns
    delete_adopted: bool = False  # delete adopted objects that leave git (default: release them)
    automated: bool = True  # apply changes by itself; False: compare, OutOfSync until synced


@dataclass(frozen=True)
class IgnoreRule:
    """Fields to leave out of diff and drift: JSON pointers on matching objects."""

    json_pointers: tuple[str, ...]
    group: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""

    def applies_to(self, *, group: str, kind: str, namespace: str, name: str) -> bool:
        return (
            (not self.kind or self.kind == kind)
            and (not self.group or self.group == group)
            and (not self.name or self.name == name)
            and (not self.namespace or self.namespace == namespace)
        )


@dataclass(frozen=True)
class App:
    """One app of the fleet."""

    name: str
    source: Source
    destination: Destination
    sync_policy: SyncPolicy = field(default_factory=SyncPolicy)
    ignore_differences: tuple[IgnoreRule, ...] = ()
    # the file the app was read from, for messages; not part of what the app is: a config commit
    # that leaves an app alone renames its origin, and must not make it look changed
    origin: str = field(default="", compare=False)
    project: str = "default"
    project_rules: Project = OPEN_DEFAULT  # the project named, resolved when the config loads
    applications: bool = False  # a parent (app of apps): its path holds Applications, not objects


@dataclass(frozen=True)
class Config:
    """Every app, by name, in the order they were declared, and the projects they belong to."""

    apps: tuple[App, ...] = ()
    projects: tuple[Project, ...] = ()

    def app(self, name: str) -> App | None:
        return self._apps_by_name.get(name)

    def project(self, name: str) -> Project | None:
        return self._projects_by_name.get(name)

    def apps_that_may_select(self, cluster: str) -> tuple[App, ...]:
        """The apps whose selector may choose the cluster named `cluster`, as declared: those
        naming it and those naming no cluster (their labels and servers still to be matched).
        An app that names clusters never selects another, so a cluster's apps are found without
        matching every app (with an app per cluster, a scan per cluster was quadratic)."""
        named = self._apps_naming.get(cluster, ())
        if not named:
            return self._apps_naming_none
        if not self._apps_naming_none:
            return named
        position = self._positions
        return tuple(sorted((*named, *self._apps_naming_none), key=lambda a: position[id(a)]))

    # by name, the first of a name as declared; kept in the instance's dict (it never changes),
    # since a reconcile asks several times and 1,000 apps made a scan of each ask quadratic
    @functools.cached_property
    def _apps_by_name(self) -> dict[str, App]:
        return _first_by_name(self.apps)

    @functools.cached_property
    def _projects_by_name(self) -> dict[str, Project]:
        return _first_by_name(self.projects)

    @functools.cached_property
    def _apps_naming(self) -> dict[str, tuple[App, ...]]:
        found: dict[str, list[App]] = {}
        for app in self.apps:
            for name in dict.fromkeys(app.destination.clusters.names):
                found.setdefault(name, []).append(app)
        return {name: tuple(apps) for name, apps in found.items()}

    @functools.cached_property
    def _positions(self) -> dict[int, int]:
        return {id(app): i for i, app in enumerate(self.apps)}

    @functools.cached_property
    def _apps_naming_none(self) -> tuple[App, ...]:
        return tuple(app for app in self.apps if not app.destination.clusters.names)


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


def _first_by_name(items: Iterable[_N]) -> dict[str, _N]:
    found: dict[str, _N] = {}
    for item in items:
        found.setdefault(item.name, item)
    return found
