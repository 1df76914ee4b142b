"""Turn an app's rendered manifests into objects ready to apply, without I/O.

Each object gets the app's destination namespace when its kind is namespaced and it names none
(and loses a namespace it should not have when cluster-scoped), fleet's two labels, the app
instance's tracking id, and an annotation with the digest of everything fleet sends for it. The
Namespace fleet adds for ``createNamespace`` (marked ``fleet.dev/added-for``) is prepared as a
shared object instead: the managed-by label and this instance's owner annotation only, so that
several app instances can apply it without fighting over a value. Whether a kind is namespaced comes
from discovery, passed in as `scopes`, and from the set's own CRDs, so custom resources of a CRD
that is not installed yet are placed correctly on the first run. ``status`` is dropped: apply
cannot set it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

from fleet.plan import owning
from fleet.plan.model import (
    ADOPT_ANNOTATION,
    APP_LABEL,
    DIGEST_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SHARED_MARK_ANNOTATION,
    TRACKING_ANNOTATION,
    DesiredObject,
)
from fleet.types import Manifest, ObjectKey, digest_of, split_api_version

__all__ = ["CRD_GROUP", "Scopes", "prepare", "scopes_declared_by"]

CRD_GROUP = "apiextensions.k8s.io"

Scopes = Mapping[tuple[str, str], bool]
"""(group, kind) -> namespaced."""


def scopes_declared_by(manifests: Iterable[Manifest]) -> dict[tuple[str, str], bool]:
    """The scope of each kind that a CRD among `manifests` defines."""
    declared: dict[tuple[str, str], bool] = {}
    for manifest in manifests:
        group, _ = split_api_version(str(manifest.get("apiVersion", "")))
        if group != CRD_GROUP or manifest.get("kind") != "CustomResourceDefinition":
            continue
        spec = manifest.get("spec") or {}
        kind = str((spec.get("names") or {}).get("kind", ""))
        if kind:
            declared[(str(spec.get("group", "")), kind)] = spec.get("scope") == "Namespaced"
    return declared


def prepare(
    manifests: Iterable[Manifest],
    *,
    app: str,
    namespace: str,
    scopes: Scopes,
    tracking: str = "",
) -> tuple[DesiredObject, ...]:
    """The desired objects of `app`, in the order given; see the module docstring.

    `tracking` is the instance's tracking id (default: the app's, on no named cluster).
    """
    manifests = list(manifests)
    known = {**scopes, **scopes_declared_by(manifests)}
    tracking = tracking or owning.tracking_id(app=app)
    return tuple(
        _prepare_one(m, app=app, namespace=namespace, scopes=known, tracking=tracking)
        for m in manifests
    )


def _shared(body: Manifest, *, tracking: str) -> DesiredObject:
    metadata = body["metadata"]
    metadata.pop("namespace", None)
    metadata["labels"] = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}
    metadata["annotations"] = {owning.owner_key(tracking): tracking}
    return DesiredObject(
        key=ObjectKey.of(body),
        api_version=str(body.get("apiVersion", "")),
        manifest=body,
        digest=digest_of([body]),
        shared=True,
    )


def _prepare_one(
    manifest: Manifest, *, app: str, namespace: str, scopes: Scopes, tracking: str
) -> DesiredObject:
    body = copy.deepcopy(manifest)
    body.pop("status", None)
    if SHARED_MARK_ANNOTATION in ((body.get("metadata") or {}).get("annotations") or {}):
        return _shared(body, tracking=tracking)
    api_version = str(body.get("apiVersion", ""))
    group, _ = split_api_version(api_version)
    kind = str(body.get("kind", ""))
    metadata = body.setdefault("metadata", {})
    namespaced = scopes.get((group, kind))
    if namespaced is None:
        key = ObjectKey.of(body)
        return DesiredObject(
            key=key,
            api_version=api_version,
            manifest=body,
            digest="",
            problem=f"unknown kind {kind!r} in {api_version!r}: not served and no CRD in the set",
        )
    if namespaced:
        metadata["namespace"] = metadata.get("namespace") or namespace
    else:
        metadata.pop("namespace", None)
    labels = metadata.get("labels") or {}
    metadata["labels"] = {**labels, MANAGED_BY_LABEL: MANAGED_BY_VALUE, APP_LABEL: app}
    metadata.pop(DIGEST_ANNOTATION, None)
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(DIGEST_ANNOTATION, None)
    annotations[TRACKING_ANNOTATION] = tracking
    adopt = str(annotations.get(ADOPT_ANNOTATION, "")).lower() == "true"
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    digest = digest_of([body])
    metadata["annotations"] = {**annotations, DIGEST_ANNOTATION: digest}
    problem = None
    if namespaced and not metadata["namespace"]:
        problem = "namespaced object without a namespace, and the app has no destination namespace"
    return DesiredObject(
        key=ObjectKey.of(body),
        api_version=api_version,
        manifest=body,
        digest=digest,
        problem=problem,
        adopt=adopt,
    )
