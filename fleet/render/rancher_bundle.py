"""Reading a Rancher Fleet ``fleet.yaml``: is it a bundle, and what does it say (checked).

Recognition (:func:`read_bundle`). Rancher Fleet turns any directory holding a ``fleet.yaml`` (or
``fleet.yml``) into a bundle; fleet's own config file is often named ``fleet.yaml`` too. A file is
a Rancher bundle only when it is unambiguous: a mapping without ``apps`` (fleet's config) and
without ``apiVersion``/``kind`` (a Kubernetes object), holding at least one of Rancher's bundle
keys. Anything else is not a bundle and the path renders as before. In a bundle every key is
known: the supported ones are honoured, harmless ones (display names, rollout and diff options
that fleet has no use for) are logged as ``event=rancher_key_ignored`` naming the file and key,
and the rest are refused with an error naming the file and the key and saying what to do.

:class:`Bundle` holds the defaults (:class:`Options`) and the ``targetCustomizations``
(:class:`Target`, each with its ``clusterSelector`` and ``clusterName``) as written; choosing
and merging them for a cluster is :mod:`fleet.render.rancher`.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleet.errors import StalledError
from fleet.render import kustomize
from fleet.render.documents import DocumentLimits, load_yaml

__all__ = [
    "BUNDLE_FILES",
    "Bundle",
    "Helm",
    "Options",
    "Selector",
    "Target",
    "parse_bundle",
    "read_bundle",
]

log = logging.getLogger(__name__)

BUNDLE_FILES = ("fleet.yaml", "fleet.yml")
LABEL_VALUE = "global.fleet.clusterLabels."

# Rancher bundle keys: honoured, ignored with a log line (harmless), or refused with the reason.
_OPTION_KEYS = {"defaultNamespace", "namespace", "helm", "kustomize", "yaml"}
_TOP_KEYS = _OPTION_KEYS | {"targetCustomizations"}
_HARMLESS = {
    "name": "the bundle's display name; the app's name is used",
    "labels": "bundle labels serve dependsOn selectors, which fleet does not have",
    "dependsOn": "fleet applies the bundle without waiting for other bundles",
    "diff": "comparePatches are not applied; use the app's ignoreDifferences",
    "rolloutStrategy": "fleet has no staged rollout across clusters",
    "ignore": "status conditions are not ignored",
    "forceSyncGeneration": "fleet re-applies on its own schedule",
    "correctDrift": "use the app's syncPolicy.selfHeal",
    "keepResources": "fleet prunes only with the app's syncPolicy.prune",
    "deleteCRDResources": "fleet prunes CRDs only with the app's pruneKinds",
    "deleteNamespace": "fleet prunes Namespaces only with the app's pruneKinds",
}
_REFUSED = {
    "paused": "set syncPolicy.automated: false on the app instead",
    "namespaceLabels": "not supported yet; label the Namespace in a manifest",
    "namespaceAnnotations": "not supported yet; annotate the Namespace in a manifest",
    "serviceAccount": "not supported: fleet applies with the cluster's own credentials",
    "overrideTargets": "the clusters come from the app's destination in fleet's config",
    "imageScans": "not supported: update images with `fleet image set` or in git",
    "targets": "the clusters come from the app's destination in fleet's config",
    "doNotDeploy": "not supported yet; narrow the app's destination clusters instead",
    "helmOp": "not supported: render a chart vendored in the repository",
}
_HELM_KEYS = {"chart", "releaseName", "values", "valuesFiles", "disablePreProcess"}
_HELM_HARMLESS = {
    "version": "the chart is the one committed in the repository, at its own version",
    "takeOwnership": "fleet adopts only with the app's syncPolicy.adopt",
    "force": "fleet never replaces objects by force",
    "atomic": "fleet has no Helm release to roll back",
    "waitForJobs": "fleet waits on health, not on Jobs",
    "timeoutSeconds": "fleet's render timeout applies",
    "maxHistory": "fleet keeps its own history",
    "disableDNS": "fleet renders offline",
    "disableDependencyUpdate": "fleet never updates chart dependencies",
    "skipSchemaValidation": "fleet renders with Helm's schema validation",
}
_HELM_REFUSED = {
    "repo": "fleet renders charts from the repository offline; vendor the chart and name its "
    "directory in helm.chart",
    "valuesFrom": "values from ConfigMaps or Secrets of the cluster are not supported; commit "
    "them as values or valuesFiles",
    "templateValues": "not supported; use ${ .ClusterLabels.KEY } in values",
}
_TARGET_KEYS = _OPTION_KEYS | {"name", "clusterSelector", "clusterName"}
_TARGET_REFUSED = {
    "clusterGroup": "cluster groups do not exist in fleet; select clusters by their labels with "
    "clusterSelector",
    "clusterGroupSelector": "cluster groups do not exist in fleet; select clusters by their "
    "labels with clusterSelector",
}


@dataclass(frozen=True)
class Helm:
    """A bundle's (or a target's) ``helm`` block."""

    chart: str = ""
    release: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)
    values_files: tuple[str, ...] = ()
    disable_pre_process: bool = False


@dataclass(frozen=True)
class Options:
    """The deployment options of a bundle or of one of its targets (None: not given)."""

    default_namespace: str = ""
    namespace: str = ""
    helm: Helm | None = None
    kustomize_dir: str = ""
    overlays: tuple[str, ...] = ()


@dataclass(frozen=True)
class Selector:
    """``clusterSelector``: a Kubernetes label selector."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Target:
    """One ``targetCustomizations`` entry."""

    name: str
    options: Options
    selector: Selector | None = None
    cluster_name: str = ""


@dataclass(frozen=True)
class Bundle:
    """A Rancher ``fleet.yaml``: its directory, its file, the defaults and the targets."""

    path: str
    file: str
    options: Options
    targets: tuple[Target, ...] = ()

    def chooses_by_cluster(self) -> bool:
        """True when the render depends on the cluster (targets, or templated values)."""
        helms = [self.options.helm, *(t.options.helm for t in self.targets)]
        return bool(self.targets) or any(h is not None and templated(h.values) for h in helms)


async def read_bundle(
    reader: kustomize.TreeReader, path: str, names: set[str], *, limits: DocumentLimits
) -> Bundle | None:
    """The Rancher bundle at `path` (whose entry names are `names`), or None if it is not one."""
    name = next((n for n in BUNDLE_FILES if n in names), None)
    if name is None:
        return None
    file = posixpath.join(path, name) if path else name
    docs = load_yaml(await reader.read(file), source=file, limits=limits)
    doc = docs[0] if len(docs) == 1 else None
    if not isinstance(doc, dict) or "apps" in doc or "apiVersion" in doc or "kind" in doc:
        return None  # fleet's own config, a Kubernetes object, or not a bundle at all
    known = _TOP_KEYS | set(_HARMLESS) | set(_REFUSED)
    if not any(k in known for k in doc):
        return None
    return parse_bundle(doc, path=path, file=file)


def parse_bundle(doc: Mapping[str, Any], *, path: str, file: str) -> Bundle:
    """`doc`, the mapping of Rancher bundle file `file` in directory `path`, checked."""
    _check_keys(doc, file=file, where="", allowed=_TOP_KEYS, harmless=_HARMLESS, refused=_REFUSED)
    options = _options(doc, file=file, where="")
    raw_targets = doc.get("targetCustomizations") or []
    if not isinstance(raw_targets, list):
        raise StalledError(f"{file}: targetCustomizations must be a list")
    targets = tuple(_target(t, i, file=file) for i, t in enumerate(raw_targets))
    return Bundle(path=path, file=file, options=options, targets=targets)


# -- parsing ---------------------------------------------------------------------------------


def _check_keys(
    doc: Mapping[str, Any],
    *,
    file: str,
    where: str,
    allowed: set[str],
    harmless: Mapping[str, str],
    refused: Mapping[str, str],
) -> None:
    for key in doc:
        name = f"{where}{key}"
        if key in allowed:
            continue
        if key in harmless:
            log.warning(
                "event=rancher_key_ignored file=%s key=%s reason=%s", file, name, harmless[key]
            )
        elif key in refused:
            raise StalledError(f"{file}: {name} is not supported by fleet: {refused[key]}")
        else:
            raise StalledError(
                f"{file}: unknown key {name!r} in a Rancher Fleet bundle; remove it or fix its "
                "spelling"
            )


def _options(doc: Mapping[str, Any], *, file: str, where: str) -> Options:
    helm_doc = doc.get("helm")
    kustomize_doc = _mapping(doc.get("kustomize"), file=file, name=f"{where}kustomize")
    yaml_doc = _mapping(doc.get("yaml"), file=file, name=f"{where}yaml")
    _check_keys(
        kustomize_doc, file=file, where=f"{where}kustomize.", allowed={"dir"}, harmless={},
        refused={},
    )  # fmt: skip
    _check_keys(
        yaml_doc, file=file, where=f"{where}yaml.", allowed={"overlays"}, harmless={}, refused={}
    )
    overlays = yaml_doc.get("overlays") or []
    if not isinstance(overlays, list) or not all(isinstance(o, str) and o for o in overlays):
        raise StalledError(f"{file}: {where}yaml.overlays must be a list of overlay names")
    for overlay in overlays:
        if "/" in overlay or overlay in (".", ".."):
            raise StalledError(f"{file}: {where}yaml.overlays {overlay!r} is not a plain name")
    return Options(
        default_namespace=_text(doc, "defaultNamespace", file=file, where=where),
        namespace=_text(doc, "namespace", file=file, where=where),
        helm=_helm(helm_doc, file=file, where=f"{where}helm.") if helm_doc is not None else None,
        kustomize_dir=_text(kustomize_doc, "dir", file=file, where=f"{where}kustomize."),
        overlays=tuple(overlays),
    )


def _helm(value: Any, *, file: str, where: str) -> Helm:
    doc = _mapping(value, file=file, name=where.rstrip("."))
    _check_keys(
        doc, file=file, where=where, allowed=_HELM_KEYS, harmless=_HELM_HARMLESS,
        refused=_HELM_REFUSED,
    )  # fmt: skip
    values = _mapping(doc.get("values"), file=file, name=f"{where}values")
    files = doc.get("valuesFiles") or []
    if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
        raise StalledError(f"{file}: {where}valuesFiles must be a list of file names")
    chart = _text(doc, "chart", file=file, where=where)
    if "://" in chart or chart.endswith((".tgz", ".tar.gz")):
        raise StalledError(
            f"{file}: {where}chart {chart!r} is not a chart directory of the repository; fleet "
            "renders offline: vendor the chart (unpacked) and name its directory"
        )
    disable = doc.get("disablePreProcess", False)
    if not isinstance(disable, bool):
        raise StalledError(f"{file}: {where}disablePreProcess must be true or false")
    return Helm(
        chart=chart,
        release=_text(doc, "releaseName", file=file, where=where),
        values=values,
        values_files=tuple(files),
        disable_pre_process=disable,
    )


def _target(value: Any, index: int, *, file: str) -> Target:
    where = f"targetCustomizations[{index}]."
    doc = _mapping(value, file=file, name=where.rstrip("."))
    _check_keys(
        doc, file=file, where=where, allowed=_TARGET_KEYS, harmless=_HARMLESS,
        refused={**_REFUSED, **_TARGET_REFUSED},
    )  # fmt: skip
    selector = None
    if doc.get("clusterSelector") is not None:
        selector = _selector(doc["clusterSelector"], file=file, where=f"{where}clusterSelector.")
    cluster_name = _text(doc, "clusterName", file=file, where=where)
    if selector is None and not cluster_name:
        raise StalledError(
            f"{file}: {where.rstrip('.')} selects no cluster (no clusterSelector nor "
            "clusterName); add `clusterSelector: {{}}` to match every cluster"
        )
    name = _text(doc, "name", file=file, where=where) or f"target{index:03d}"
    return Target(
        name=name,
        options=_options(doc, file=file, where=where),
        selector=selector,
        cluster_name=cluster_name,
    )


def _selector(value: Any, *, file: str, where: str) -> Selector:
    doc = _mapping(value, file=file, name=where.rstrip("."))
    _check_keys(
        doc, file=file, where=where, allowed={"matchLabels", "matchExpressions"}, harmless={},
        refused={},
    )  # fmt: skip
    labels = _mapping(doc.get("matchLabels"), file=file, name=f"{where}matchLabels")
    expressions = []
    raw = doc.get("matchExpressions") or []
    if not isinstance(raw, list):
        raise StalledError(f"{file}: {where}matchExpressions must be a list")
    for i, item in enumerate(raw):
        name = f"{where}matchExpressions[{i}]"
        entry = _mapping(item, file=file, name=name)
        key, operator, values = entry.get("key"), entry.get("operator"), entry.get("values") or []
        if not isinstance(key, str) or not key or not isinstance(values, list):
            raise StalledError(f"{file}: {name} needs a key and a list of values")
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise StalledError(
                f"{file}: {name}.operator {operator!r} is not one of In, NotIn, Exists, "
                "DoesNotExist"
            )
        if (operator in ("In", "NotIn")) != bool(values):
            raise StalledError(f"{file}: {name}: {operator} needs values only with In and NotIn")
        expressions.append((key, str(operator), tuple(str(v) for v in values)))
    return Selector(
        match_labels={str(k): str(v) for k, v in labels.items()},
        match_expressions=tuple(expressions),
    )


def _mapping(value: Any, *, file: str, name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StalledError(f"{file}: {name} must be a mapping")
    return value


def _text(doc: Mapping[str, Any], key: str, *, file: str, where: str) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise StalledError(f"{file}: {where}{key} must be a string")
    return value


def templated(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value or value.startswith(LABEL_VALUE)
    if isinstance(value, Mapping):
        return any(templated(k) or templated(v) for k, v in value.items())
    if isinstance(value, list):
        return any(templated(v) for v in value)
    return False
