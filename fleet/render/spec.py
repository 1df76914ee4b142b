"""What to render: an app's source for one cluster, after per-cluster substitution.

The options speak Argo CD's ``spec.source`` words, one small frozen dataclass per tool:
:class:`HelmOptions` (``spec.source.helm``), :class:`KustomizeOptions` (``spec.source.kustomize``),
:class:`DirectoryOptions` (``spec.source.directory``); ``plugin`` marks a config-management-plugin
source, which the engine refuses by name. Defaults mean "field absent", so a spec that sets
nothing keys and renders as before. The engine reads these and nothing else: a config loader maps
its own format onto them.

:meth:`RenderSpec.for_cluster` applies :class:`~fleet.render.params.Params` to the app's path,
Helm value-file names, values and parameters, and the kustomize and directory strings, and returns
the spec with the inputs it used; those inputs, and nothing else about the cluster, go into the
cache key (with every option, through :meth:`fleet.render.engine.RenderPlan.inputs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleet.render.params import Params
from fleet.types import ClusterRef

__all__ = [
    "DirectoryOptions",
    "HelmFileParameter",
    "HelmOptions",
    "HelmParameter",
    "JsonnetOptions",
    "JsonnetVar",
    "KustomizeOptions",
    "KustomizeReplica",
    "RancherBundle",
    "RenderSpec",
]


@dataclass(frozen=True)
class HelmParameter:
    """``helm.parameters[]``: ``--set name=value``, or ``--set-string`` when `force_string`."""

    name: str
    value: str
    force_string: bool = False


@dataclass(frozen=True)
class HelmFileParameter:
    """``helm.fileParameters[]``: ``--set-file name=path``, `path` relative to the chart."""

    name: str
    path: str


@dataclass(frozen=True)
class HelmOptions:
    """How to template a chart (Argo CD's ``spec.source.helm``).

    `release` empty means the app's name (:attr:`RenderSpec.app`). `values` is a mapping or the
    YAML text of ``helm.values``; `values_object` (``helm.valuesObject``), when given, takes its
    place entirely, as Argo CD does. Precedence, lowest first: the chart's values.yaml,
    `value_files`, `values`/`values_object`, `parameters` and `file_parameters`.
    """

    release: str = ""
    value_files: tuple[str, ...] = ()
    values: Mapping[str, Any] | str = field(default_factory=dict)
    values_object: Mapping[str, Any] | None = None
    parameters: tuple[HelmParameter, ...] = ()
    file_parameters: tuple[HelmFileParameter, ...] = ()
    ignore_missing_value_files: bool = False
    skip_crds: bool = False
    skip_tests: bool = False
    namespace: str = ""  # helm.namespace: overrides the destination namespace for the template
    kube_version: str = ""  # --kube-version
    api_versions: tuple[str, ...] = ()  # --api-versions, each
    version: str = ""  # the Helm major version: "" or "v3" (v2 is refused)
    pass_credentials: bool = False  # refused: fleet renders offline and passes no credential


@dataclass(frozen=True)
class KustomizeReplica:
    """``kustomize.replicas[]``: like ``kustomize edit set replicas name=count``."""

    name: str
    count: int


@dataclass(frozen=True)
class KustomizeOptions:
    """Edits made to the app's kustomization before the build (Argo CD's ``spec.source.kustomize``).

    Each is what ``kustomize edit`` would write (see :mod:`fleet.render.kustomize_edit`): `images`
    in ``kustomize edit set image`` syntax (``name=new:tag``, ``name:tag``, ``name@digest``),
    `common_labels` and `common_annotations` refused over an existing key unless forced,
    `patches` appended as written (mappings with ``patch`` or ``path``, ``target``, ``options``),
    `components` added (paths relative to the kustomization, inside the repository).
    """

    images: tuple[str, ...] = ()
    name_prefix: str = ""
    name_suffix: str = ""
    namespace: str = ""
    common_labels: Mapping[str, str] = field(default_factory=dict)
    common_annotations: Mapping[str, str] = field(default_factory=dict)
    force_common_labels: bool = False
    force_common_annotations: bool = False
    label_without_selector: bool = False  # labels[] with includeSelectors false
    label_include_templates: bool = False  # with label_without_selector: includeTemplates
    replicas: tuple[KustomizeReplica, ...] = ()
    patches: tuple[Mapping[str, Any], ...] = ()
    components: tuple[str, ...] = ()
    ignore_missing_components: bool = False
    version: str = ""  # a named kustomize binary: refused unless empty

    def is_empty(self) -> bool:
        """True when no field is set (the kustomization builds as committed)."""
        return self == KustomizeOptions()


@dataclass(frozen=True)
class JsonnetVar:
    """``jsonnet.extVars[]`` / ``jsonnet.tlas[]``: a string, or code when `code`."""

    name: str
    value: str
    code: bool = False


@dataclass(frozen=True)
class JsonnetOptions:
    """``spec.source.directory.jsonnet``: external variables, top-level arguments, library dirs."""

    ext_vars: tuple[JsonnetVar, ...] = ()
    tlas: tuple[JsonnetVar, ...] = ()
    libs: tuple[str, ...] = ()  # repository paths (relative to the repository root)


@dataclass(frozen=True)
class DirectoryOptions:
    """Argo CD's directory source: the top directory only unless `recurse`; glob filters.

    `include` and `exclude` are Argo CD globs (``*`` crosses ``/``, ``{a,b}`` braces) matched
    against each file's path relative to the app's path. Giving a :class:`DirectoryOptions` at
    all selects Argo CD's directory semantics (see :mod:`fleet.render.directory`); without one a
    path renders as fleet's plain manifests (recursive, :mod:`fleet.render.plain`).
    """

    recurse: bool = False
    include: str = ""
    exclude: str = ""
    jsonnet: JsonnetOptions = field(default_factory=JsonnetOptions)

    def is_default(self) -> bool:
        """True when nothing but the directory semantics is asked for."""
        return self == DirectoryOptions()


@dataclass(frozen=True)
class RancherBundle:
    """What a Rancher Fleet ``fleet.yaml`` decided for one cluster (:mod:`fleet.render.rancher`).

    `bundle` is the bundle's directory and `file` its ``fleet.yaml`` (repository paths); `target`
    the ``targetCustomizations`` entry chosen ("" when none matched); `default_namespace` and
    `namespace` the bundle's ``defaultNamespace`` and forced ``namespace``; `overlays` the
    ``yaml.overlays`` applied to raw YAML in order; `skip` the files raw YAML does not read (values
    files). `needs_cluster` marks a plan made without the cluster for a bundle that chooses by it:
    it cannot render, and the caller plans again with :meth:`RenderSpec.with_cluster`.
    """

    bundle: str
    file: str
    target: str = ""
    default_namespace: str = ""
    namespace: str = ""
    overlays: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    needs_cluster: bool = False


@dataclass(frozen=True)
class RenderSpec:
    """One render's inputs from the app: the repository path, the namespace, the tool's options.

    `app` is the app's name (Helm's release name when none is given). `plugin` is true for a
    source with ``spec.source.plugin``: the engine refuses it, naming the field.
    """

    path: str
    namespace: str = ""
    helm: HelmOptions | None = None
    cluster_inputs: Mapping[str, str] = field(default_factory=dict)
    kustomize: KustomizeOptions | None = None
    directory: DirectoryOptions | None = None
    plugin: bool = False
    app: str = ""
    cluster: ClusterRef | None = None  # only for a path whose render chooses by the cluster
    rancher: RancherBundle | None = None  # set by detection for a Rancher Fleet bundle

    def with_cluster(self, cluster: ClusterRef) -> RenderSpec:
        """This spec for a renderer that chooses by `cluster`'s name and labels (a Rancher bundle).

        Only such a spec carries the cluster, so every other spec stays shared by clusters with
        equal inputs; the cluster is in :meth:`identity`, and the chosen target in the cache key.
        """
        return dataclasses.replace(
            self, cluster=ClusterRef(cluster.name, dict(sorted(cluster.labels.items())))
        )

    def identity(self) -> Any:
        """Every field as plain data, for a memo key (equal specs, equal identities)."""
        return dataclasses.asdict(self)

    @classmethod
    def for_cluster(
        cls,
        cluster: ClusterRef,
        *,
        path: str,
        namespace: str = "",
        helm: HelmOptions | None = None,
        kustomize: KustomizeOptions | None = None,
        directory: DirectoryOptions | None = None,
        plugin: bool = False,
        app: str = "",
    ) -> RenderSpec:
        """The spec for `cluster`, with ``{{ cluster.* }}`` substituted and the inputs recorded."""
        params = Params(cluster)
        return cls(
            path=params.text(path),
            namespace=params.text(namespace),
            helm=_helm(params, helm) if helm is not None else None,
            kustomize=_kustomize(params, kustomize) if kustomize is not None else None,
            directory=directory,
            plugin=plugin,
            app=app,
            cluster_inputs={},
        )._with_inputs(params)

    def _with_inputs(self, params: Params) -> RenderSpec:
        return dataclasses.replace(self, cluster_inputs=dict(sorted(params.used.items())))


def _helm(params: Params, helm: HelmOptions) -> HelmOptions:
    values: Mapping[str, Any] | str = (
        params.text(helm.values) if isinstance(helm.values, str) else params.values(helm.values)
    )
    return dataclasses.replace(
        helm,
        release=params.text(helm.release),
        value_files=tuple(params.text(v) for v in helm.value_files),
        values=values,
        values_object=(
            params.values(dict(helm.values_object)) if helm.values_object is not None else None
        ),
        parameters=tuple(
            dataclasses.replace(p, value=params.text(p.value)) for p in helm.parameters
        ),
        file_parameters=tuple(
            dataclasses.replace(p, path=params.text(p.path)) for p in helm.file_parameters
        ),
        namespace=params.text(helm.namespace),
    )


def _kustomize(params: Params, options: KustomizeOptions) -> KustomizeOptions:
    return dataclasses.replace(
        options,
        images=tuple(params.text(i) for i in options.images),
        name_prefix=params.text(options.name_prefix),
        name_suffix=params.text(options.name_suffix),
        namespace=params.text(options.namespace),
        common_labels=params.values(dict(options.common_labels)),
        common_annotations=params.values(dict(options.common_annotations)),
    )
