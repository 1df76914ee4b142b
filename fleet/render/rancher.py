"""Rancher Fleet bundles: a path holding a Rancher ``fleet.yaml`` renders as Rancher Fleet would.

The file is read and checked by :mod:`fleet.render.rancher_bundle` (a file is a bundle only when
its keys say so, never fleet's own config with ``apps:``).

Choice (:func:`choose`). ``targetCustomizations`` are tried in order and the first whose criteria
all hold for the cluster wins (``clusterSelector`` with ``matchLabels``/``matchExpressions``,
``{}`` matching every cluster; ``clusterName``); cluster groups do not exist in fleet and are
refused. Its options are merged over the bundle's as Rancher Fleet merges them: Helm values deep
(the target's win), chart and release name replaced when set, ``kustomize.dir``,
``namespace`` and ``defaultNamespace`` replaced, ``yaml.overlays`` appended. Each ``valuesFiles``
entry (relative to the bundle) is merged over the inline ``values`` of the same level, as Rancher
Fleet reads them. Values are then templated per cluster: ``${ .ClusterName }`` and
``${ .ClusterLabels.KEY }`` (Rancher's ``${ }`` delimiters; other expressions are refused, unless
``helm.disablePreProcess``; a missing label is an error, as in Rancher Fleet, and a result that
reads as a number or boolean becomes one) and a mapping value starting with
``global.fleet.clusterLabels.`` (the label's value, empty when missing).

Plan (:func:`plan`). The merged options pick the tool as Rancher Fleet does: a chart
(``helm.chart``, a directory of the repository relative to the bundle, else a ``Chart.yaml`` in
the bundle), else a kustomization (``kustomize.dir``, else the bundle, holding
``kustomization.yaml``), else raw YAML with overlays (:mod:`fleet.render.rancher_raw`). The result
is an inner spec for the existing Helm, kustomize or plain path of the engine, with a
:class:`~fleet.render.spec.RancherBundle` recording the choice; every decision that shapes the
output (target, merged values, namespaces, overlays) is in the cache key, and the labels the
selectors read are not, so clusters choosing the same target share one render. A spec without
its cluster for a bundle that chooses by the cluster yields a plan marked ``needs_cluster``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from fleet.errors import StalledError
from fleet.render import kustomize
from fleet.render.documents import DocumentLimits, load_yaml
from fleet.render.rancher_bundle import LABEL_VALUE, Bundle, Helm, Options, Target, templated
from fleet.render.spec import RancherBundle
from fleet.types import ClusterRef

__all__ = ["Choice", "Planned", "choose", "merge_values", "plan"]

_TEMPLATE = re.compile(r"\$\{(.*?)\}")


@dataclass(frozen=True)
class Choice:
    """The merged options for one cluster, the ``helm`` levels (bundle, target), the inputs read."""

    target: str
    options: Options
    used: dict[str, str]
    levels: tuple[Helm, ...] = ()


def choose(bundle: Bundle, cluster: ClusterRef) -> Choice:
    """The first target matching `cluster`, its options merged over the bundle's."""
    used: dict[str, str] = {}
    root = (bundle.options.helm,) if bundle.options.helm is not None else ()
    for target in bundle.targets:
        if _matches(target, cluster, used):
            own = (target.options.helm,) if target.options.helm is not None else ()
            return Choice(target.name, _merge(bundle.options, target.options), used, (*root, *own))
    return Choice("", bundle.options, used, root)


def merge_values(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` deep-merged onto `base`: mappings merge, anything else in `over` replaces."""
    merged = dict(base)
    for key, value in over.items():
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_values(old, value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class Planned:
    """What the engine renders for a bundle: the tool, the inner path, Helm bits, the record."""

    kind: str  # "helm", "kustomize" or "plain"
    path: str
    record: RancherBundle
    release: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)
    used: dict[str, str] = field(default_factory=dict)


async def plan(
    reader: kustomize.TreeReader,
    bundle: Bundle,
    cluster: ClusterRef | None,
    *,
    limits: DocumentLimits,
) -> Planned:
    """How `bundle` renders for `cluster` (None: the hub did not say which cluster)."""
    if cluster is None and bundle.chooses_by_cluster():
        record = RancherBundle(bundle=bundle.path, file=bundle.file, needs_cluster=True)
        return Planned("plain", bundle.path, record)
    if cluster is not None:
        choice = choose(bundle, cluster)
    else:
        root = (bundle.options.helm,) if bundle.options.helm is not None else ()
        choice = Choice("", bundle.options, {}, root)
    options = choice.options
    skip = _values_files(bundle)
    record = RancherBundle(
        bundle=bundle.path,
        file=bundle.file,
        target=choice.target,
        default_namespace=options.default_namespace,
        namespace=options.namespace,
        overlays=options.overlays,
        skip=skip,
    )
    used: dict[str, str] = {}  # what templating reads; the selectors' reads are the choice
    names = set(await reader.names(bundle.path))
    chart = await _chart_dir(reader, bundle, options, names)
    kustomize_dir = await _kustomize_dir(reader, bundle, options, names)
    if chart is not None:
        if kustomize_dir is not None:
            raise StalledError(
                f"{bundle.file}: a chart with a kustomization (Helm then kustomize) is not "
                "supported yet; render one of them"
            )
        helm = options.helm or Helm()
        values = await _values(reader, bundle, choice.levels, limits=limits)
        if not helm.disable_pre_process and cluster is None and templated(values):
            # a values file templated by cluster (the bundle alone did not say so)
            waiting = RancherBundle(bundle=bundle.path, file=bundle.file, needs_cluster=True)
            return Planned("plain", bundle.path, waiting)
        if not helm.disable_pre_process:
            values = _template(values, cluster, used, file=bundle.file)
        return Planned("helm", chart, record, release=helm.release, values=values, used=used)
    if options.helm is not None:
        raise StalledError(
            f"{bundle.file}: helm is set but the bundle has no chart (no Chart.yaml in "
            f"{bundle.path or '.'!r} nor in helm.chart); add the chart or remove helm"
        )
    if kustomize_dir is not None:
        return Planned("kustomize", kustomize_dir, record, used=used)
    if "templates" in names:
        raise StalledError(
            f"{bundle.file}: a raw YAML bundle's templates/ directory is Helm-templated by "
            "Rancher Fleet, which fleet does not do yet; add a Chart.yaml to make it a chart"
        )
    for overlay in options.overlays:
        if await reader.kind(_join(bundle.path, f"overlays/{overlay}", bundle.file)) != "tree":
            raise StalledError(
                f"{bundle.file}: yaml.overlays {overlay!r} has no directory overlays/{overlay} "
                "in the bundle"
            )
    return Planned("plain", bundle.path, record, used=used)


# -- choosing and merging --------------------------------------------------------------------


def _matches(target: Target, cluster: ClusterRef, used: dict[str, str]) -> bool:
    if target.cluster_name:
        used["name"] = cluster.name
        if cluster.name != target.cluster_name:
            return False
    selector = target.selector
    if selector is None:
        return True
    labels = cluster.labels
    for key in [*selector.match_labels, *(e[0] for e in selector.match_expressions)]:
        if key in labels:
            used[f"labels.{key}"] = labels[key]
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    return all(_holds(labels, *e) for e in selector.match_expressions)


def _holds(labels: Mapping[str, str], key: str, operator: str, values: tuple[str, ...]) -> bool:
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    return present if operator == "Exists" else not present


def _merge(base: Options, custom: Options) -> Options:
    helm = base.helm
    if custom.helm is not None:
        root = base.helm or Helm()
        over = custom.helm
        helm = Helm(
            chart=over.chart or root.chart,
            release=over.release or root.release,
            disable_pre_process=root.disable_pre_process or over.disable_pre_process,
        )
    return Options(
        default_namespace=custom.default_namespace or base.default_namespace,
        namespace=custom.namespace or base.namespace,
        helm=helm,
        kustomize_dir=custom.kustomize_dir or base.kustomize_dir,
        overlays=(*base.overlays, *custom.overlays),
    )


async def _values(
    reader: kustomize.TreeReader,
    bundle: Bundle,
    levels: tuple[Helm, ...],
    *,
    limits: DocumentLimits,
) -> dict[str, Any]:
    """The merged values: each level's inline values under its value files, target over root."""
    merged: dict[str, Any] = {}
    for level in levels:
        values = dict(level.values)
        for name in level.values_files:
            path = _join(bundle.path, name, bundle.file, field="helm.valuesFiles")
            if await reader.kind(path) != "blob":
                raise StalledError(f"{bundle.file}: helm.valuesFiles {name!r} ({path}) is missing")
            docs = load_yaml(await reader.read(path), source=path, limits=limits)
            doc = docs[0] if docs else {}
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise StalledError(f"{path}: a values file must be a mapping")
            values = merge_values(values, doc)
        merged = merge_values(merged, values)
    return merged


def _values_files(bundle: Bundle) -> tuple[str, ...]:
    helms = [bundle.options.helm, *(t.options.helm for t in bundle.targets)]
    names = {
        _join(bundle.path, n, bundle.file, field="helm.valuesFiles")
        for h in helms
        if h is not None
        for n in h.values_files
    }
    return tuple(sorted(names))


async def _chart_dir(
    reader: kustomize.TreeReader, bundle: Bundle, options: Options, names: set[str]
) -> str | None:
    chart = options.helm.chart if options.helm is not None else ""
    if not chart:
        return bundle.path if "Chart.yaml" in names else None
    path = _join(bundle.path, chart, bundle.file, field="helm.chart")
    if await reader.kind(_join(path, "Chart.yaml", bundle.file)) != "blob":
        raise StalledError(
            f"{bundle.file}: helm.chart {chart!r} ({path}) is not a chart directory of the "
            "repository (no Chart.yaml); fleet renders offline: vendor the chart there"
        )
    return path


async def _kustomize_dir(
    reader: kustomize.TreeReader, bundle: Bundle, options: Options, names: set[str]
) -> str | None:
    if not options.kustomize_dir:
        return bundle.path if "kustomization.yaml" in names else None
    path = _join(bundle.path, options.kustomize_dir, bundle.file, field="kustomize.dir")
    if await reader.kind(_join(path, "kustomization.yaml", bundle.file)) != "blob":
        raise StalledError(
            f"{bundle.file}: kustomize.dir {options.kustomize_dir!r} ({path}) holds no "
            "kustomization.yaml"
        )
    return path


def _join(base: str, name: str, file: str, *, field: str = "path") -> str:
    target = posixpath.normpath(posixpath.join(base, name))
    if name.startswith("/") or target == ".." or target.startswith("../"):
        raise StalledError(f"{file}: {field} {name!r} escapes the repository")
    return "" if target == "." else target


# -- templating ------------------------------------------------------------------------------


def _template(value: Any, cluster: ClusterRef | None, used: dict[str, str], *, file: str) -> Any:
    """`value` templated for `cluster`: ``${ }`` everywhere, the label prefix in mapping values.

    Rancher Fleet templates the YAML text of the values, so a value that becomes ``3`` or
    ``true`` is read back as a number or a boolean: a templated string whose result is a YAML
    scalar of another type takes that type.
    """
    if cluster is None:
        return value
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            if isinstance(item, str) and item.startswith(LABEL_VALUE):
                label = item.removeprefix(LABEL_VALUE)
                if label not in cluster.labels:
                    raise StalledError(
                        f"{file}: helm.values {item!r}: cluster {cluster.name} has no label "
                        f"{label!r}; label the cluster or change the value"
                    )
                used[f"labels.{label}"] = cluster.labels[label]
                result[_template(key, cluster, used, file=file)] = cluster.labels[label]
            else:
                result[_template(key, cluster, used, file=file)] = _template(
                    item, cluster, used, file=file
                )
        return result
    if isinstance(value, list):
        return [_template(v, cluster, used, file=file) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    text = _TEMPLATE.sub(lambda m: _expression(m.group(1), cluster, used, file=file), value)
    try:
        typed = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return typed if typed is None or isinstance(typed, bool | int | float) else text


def _expression(text: str, cluster: ClusterRef, used: dict[str, str], *, file: str) -> str:
    expression = text.strip()
    if expression == ".ClusterName":
        used["name"] = cluster.name
        return cluster.name
    label = re.fullmatch(
        r'\.ClusterLabels\.([A-Za-z0-9_]+)|index \.ClusterLabels "([^"]+)"', expression
    )
    if label:
        key = label.group(1) or label.group(2)
        if key not in cluster.labels:
            raise StalledError(
                f"{file}: helm.values template ${{{text}}}: cluster {cluster.name} has no label "
                f"{key!r}; label the cluster or change the value"
            )
        used[f"labels.{key}"] = cluster.labels[key]
        return cluster.labels[key]
    raise StalledError(
        f"{file}: helm.values template ${{{text}}} is not supported: fleet substitutes only "
        "${ .ClusterName } and ${ .ClusterLabels.KEY }; set helm.disablePreProcess to pass "
        "it through"
    )
