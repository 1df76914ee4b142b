"""Discovery, cached per cluster and per group-version, and the REST paths of objects.

Only the group-versions that fleet's objects use are fetched (``/api/v1``, ``/apis/G/V``), once
each, and kept in the :class:`~fleet.apply.kube.Cluster`. A kind not found is looked up again
after :func:`forget` (called when a CRD becomes Established), so a custom resource whose CRD was
applied a moment ago resolves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fleet.apply.kube import ApiError, Cluster
from fleet.types import ObjectKey, split_api_version

__all__ = ["CRD_GROUP", "Resource", "forget", "object_path", "resolve", "scopes"]

CRD_GROUP = "apiextensions.k8s.io"


@dataclass(frozen=True)
class Resource:
    """Where objects of one kind live: ``/apis/G/V`` (or ``/api/v1``), plural, namespaced."""

    base: str
    plural: str
    namespaced: bool

    def collection(self, namespace: str = "") -> str:
        where = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{self.base}{where}/{self.plural}"


def _base(api_version: str) -> str:
    group, version = split_api_version(api_version)
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


async def _kinds(cluster: Cluster, api_version: str) -> dict[str, tuple[str, bool]]:
    cached = cluster.discovery_cache.get(api_version)
    if cached is not None:
        return cached
    try:
        listing = await cluster.request("GET", _base(api_version))
    except ApiError as exc:
        if exc.status != 404:
            raise
        listing = {}
    kinds = {
        str(r["kind"]): (str(r["name"]), bool(r.get("namespaced")))
        for r in listing.get("resources", [])
        if "/" not in str(r.get("name", ""))
    }
    cluster.discovery_cache[api_version] = kinds
    return kinds


async def resolve(cluster: Cluster, api_version: str, kind: str) -> Resource | None:
    """The resource serving `kind` at `api_version`, or None when the cluster does not serve it."""
    found = (await _kinds(cluster, api_version)).get(kind)
    if found is None:
        return None
    plural, namespaced = found
    return Resource(base=_base(api_version), plural=plural, namespaced=namespaced)


def forget(cluster: Cluster, group: str) -> None:
    """Drop what is cached about `group`, so that its kinds are looked up again."""
    for api_version in list(cluster.discovery_cache):
        if split_api_version(api_version)[0] == group:
            del cluster.discovery_cache[api_version]


async def scopes(cluster: Cluster, kinds: Iterable[tuple[str, str]]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> namespaced, for each (apiVersion, kind) the cluster serves."""
    found: dict[tuple[str, str], bool] = {}
    for api_version, kind in sorted(set(kinds)):
        resource = await resolve(cluster, api_version, kind)
        if resource is not None:
            found[(split_api_version(api_version)[0], kind)] = resource.namespaced
    return found


def object_path(resource: Resource, key: ObjectKey) -> str:
    """The REST path of one object."""
    return f"{resource.collection(key.namespace)}/{key.name}"
