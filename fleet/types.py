"""The vocabulary every layer shares: object keys, manifests, rendered sets, cluster identities.

Pure data and pure functions only. A manifest is one Kubernetes object as a plain mapping (what
YAML decoding gives); an :class:`ObjectKey` names it the way the apiserver does, by API group, kind,
namespace and name (the version is not part of the identity: ``apps/v1`` and ``apps/v1beta2``
Deployments are the same object). A :class:`RenderedSet` is an app's desired objects for one
cluster in canonical order, with the sha256 digest of their canonical JSON: equal digests mean equal
desired state, which is what makes a no-op reconcile free.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ADOPT_ANNOTATION",
    "OWNERS_PREFIX",
    "SHARED_MARK_ANNOTATION",
    "TRACKING_ANNOTATION",
    "ClusterRef",
    "Manifest",
    "ObjectKey",
    "RenderedSet",
    "canonical_json",
    "digest_of",
    "split_api_version",
]

Manifest = dict[str, Any]

TRACKING_ANNOTATION = "fleet.dev/tracking-id"
"""Which app instance owns an object: ``<hub>/<app>/<cluster>/<namespace>`` (fleet.plan.owning)."""
ADOPT_ANNOTATION = "fleet.dev/adopt"
"""On a desired object, ``"true"``: take it over even when it exists and fleet did not create it."""
OWNERS_PREFIX = "owners.fleet.dev/"
"""A shared object (the createNamespace Namespace) names each owner in an annotation of its own:
``owners.fleet.dev/<hash of the tracking id>: <tracking id>``."""
SHARED_MARK_ANNOTATION = "fleet.dev/added-for"
"""On a manifest fleet adds to a render itself (``createNamespace``); never sent to a cluster."""


def split_api_version(api_version: str) -> tuple[str, str]:
    """``apps/v1`` -> (``apps``, ``v1``); ``v1`` -> (``""``, ``v1``): the core group is empty."""
    group, _, version = api_version.rpartition("/")
    return group, version


@dataclass(frozen=True, order=True)
class ObjectKey:
    """Identity of one object in a cluster; ``namespace`` is empty for cluster-scoped objects."""

    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, manifest: Mapping[str, Any], *, default_namespace: str = "") -> ObjectKey:
        """The key of `manifest`; `default_namespace` fills in a missing namespace.

        Whether a kind is namespaced is known only to discovery, so a caller that knows the kind
        is cluster-scoped passes no default.
        """
        group, _ = split_api_version(str(manifest.get("apiVersion", "")))
        metadata = manifest.get("metadata") or {}
        return cls(
            group=group,
            kind=str(manifest.get("kind", "")),
            namespace=str(metadata.get("namespace") or default_namespace),
            name=str(metadata.get("name", "")),
        )

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{kind} {where}{self.name}"


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no spaces: equal values give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest_of(objects: Iterable[Manifest]) -> str:
    """``sha256:<hex>`` of the canonical JSON of `objects`, in the order given."""
    return "sha256:" + hashlib.sha256(canonical_json(list(objects))).hexdigest()


@dataclass(frozen=True)
class RenderedSet:
    """An app's desired objects for one cluster, in canonical order, and their digest."""

    objects: tuple[Manifest, ...]
    digest: str

    @classmethod
    def of(cls, objects: Iterable[Manifest]) -> RenderedSet:
        """Sort `objects` by their key (namespace as written) and digest them."""
        ordered = tuple(sorted(objects, key=lambda m: (ObjectKey.of(m), canonical_json(m))))
        return cls(objects=ordered, digest=digest_of(ordered))


@dataclass(frozen=True)
class ClusterRef:
    """A cluster as the rest of fleet sees it: its name (the kubeconfig's file stem) and labels."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
