"""The Flux objects of the side-by-side bench, as plain dicts (pure, no I/O).

Flux's hub mode, as its docs lay it out for one management cluster serving many: one
``GitRepository`` for the app's repository, and per target cluster a ``Secret`` holding that
cluster's kubeconfig (key ``value``) and a ``Kustomization`` whose ``spec.kubeConfig.secretRef``
names it, with ``targetNamespace`` the namespace the bench watches. Intervals are long (an hour)
so nothing but the bench's trigger reconciles during a round: the trigger is what Flux's webhook
``Receiver`` does, a merge patch setting ``reconcile.fluxcd.io/requestedAt`` to a fresh value on
the objects it lists (:func:`requested_at_patch`).
"""

from __future__ import annotations

import base64
from typing import Any

__all__ = [
    "GIT_REPOSITORY",
    "KUSTOMIZE_API",
    "NAMESPACE",
    "REQUESTED_AT",
    "SOURCE_API",
    "git_repository",
    "kubeconfig_secret",
    "kustomization",
    "kustomization_name",
    "requested_at_patch",
]

NAMESPACE = "flux-system"
GIT_REPOSITORY = "app"
SOURCE_API = ("source.toolkit.fluxcd.io", "v1")
KUSTOMIZE_API = ("kustomize.toolkit.fluxcd.io", "v1")
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
_IDLE = "60m"  # no reconcile of its own during a bench round


def git_repository(url: str, *, branch: str = "main", name: str = GIT_REPOSITORY) -> dict[str, Any]:
    """The ``GitRepository`` that source-controller clones `url` at `branch` into."""
    group, version = SOURCE_API
    return {
        "apiVersion": f"{group}/{version}",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"interval": _IDLE, "timeout": "60s", "url": url, "ref": {"branch": branch}},
    }


def kustomization_name(cluster: str) -> str:
    return f"app-{cluster}"


def kubeconfig_secret(cluster: str, kubeconfig: str) -> dict[str, Any]:
    """The ``Secret`` a Kustomization reads `cluster`'s kubeconfig from (key ``value``)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"kubeconfig-{cluster}", "namespace": NAMESPACE},
        "type": "Opaque",
        "data": {"value": base64.b64encode(kubeconfig.encode()).decode()},
    }


def kustomization(
    cluster: str, *, path: str, target_namespace: str, source: str = GIT_REPOSITORY
) -> dict[str, Any]:
    """The ``Kustomization`` applying `path` of the source to `cluster`, into `target_namespace`.

    ``prune`` as fleet's app has it; no ``wait`` or health checks (fleet's figure is the apply
    seen by the watcher, and so is Flux's); ``force`` off.
    """
    group, version = KUSTOMIZE_API
    return {
        "apiVersion": f"{group}/{version}",
        "kind": "Kustomization",
        "metadata": {"name": kustomization_name(cluster), "namespace": NAMESPACE},
        "spec": {
            "interval": _IDLE,
            "retryInterval": "5s",
            "timeout": "2m",
            "path": f"./{path.strip('/')}",
            "prune": True,
            "wait": False,
            "targetNamespace": target_namespace,
            "sourceRef": {"kind": "GitRepository", "name": source},
            "kubeConfig": {"secretRef": {"name": f"kubeconfig-{cluster}", "key": "value"}},
        },
    }


def requested_at_patch(stamp: str) -> dict[str, Any]:
    """The merge patch Flux's Receiver sends: a new ``requestedAt`` makes a controller reconcile."""
    return {"metadata": {"annotations": {REQUESTED_AT: stamp}}}
