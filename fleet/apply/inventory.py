"""An app's inventory, kept in the cluster it describes: one ConfigMap per app instance.

The ConfigMap ``fleet-inventory-<id>`` in namespace ``fleet-system`` (the id names the app and
its destination namespace) holds the objects the app applied there (apiVersion, kind, namespace,
name, as JSON), the revision and the desired digest. Any hub can read it and prune correctly.
How each object is held is under its own key, ``records``: rows of apiVersion, kind, namespace,
name, uid and a flag (``adopted``, ``shared`` or empty), so an inventory written before records
existed still reads (no uid known, nothing adopted), and a hub that does not know records still
reads the ``objects`` list it expects. The ``revision`` is the commit last applied, which is how
a rewind is recognised.
Writing an inventory equal to the one read is skipped, so a no-op reconcile makes no write; the
namespace is created only when the ConfigMap is new.

Every write is fenced by the version it was computed from, so two writers (a hub replica that lost
its lease mid-sync, an old process) never overwrite each other's inventory silently. An update is
a server-side apply carrying ``metadata.resourceVersion`` of the inventory read (the apiserver
takes it as a precondition: 409 when the ConfigMap changed since). A create is a POST of the bare
ConfigMap (name and labels only: "already exists" is the same conflict), then that apply with the
version the POST returned; creating the content by POST would leave the POST's field manager
co-owning every key, and a key the apply later drops would never be removed. A crash between the
two leaves an empty inventory, which reads like none. Either conflict is an
:class:`InventoryConflict` (transient): the attempt ends, nothing is written, and the next one
reads again. What was read stays with the inventory (:attr:`Inventory.resource_version`), and
each write returns the inventory with the version it now has, so a sync's second write is fenced
by its first.

A hub reads inventories from a watch cache (:class:`fleet.reconcile.reading.CachedReader`), which
may lag the server. The cluster's client remembers, per app, the versions it has seen superseded
(the one each write or conflict replaced; ``""`` for "absent" once it created one) and whether a
conflict asks for a read through the API (:class:`fleet.apply.kube.InventoryVersions`, state of
the client that reads and writes them, never a process global): :func:`cached_is_stale` tells
the reader not to trust a cached copy that is one of those, so the attempt after a conflict (and
the sync right after one of our own writes) reads the API instead of failing again on the same
old copy. The memory is forgotten once the cache shows a version it does not hold.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from fleet.apply.applying import ReadStalled, read_error
from fleet.apply.kube import APPLY_PATCH, ApiError, Cluster
from fleet.errors import TransientError
from fleet.types import ObjectKey, split_api_version

__all__ = [
    "NAMESPACE",
    "Inventory",
    "InventoryConflict",
    "Record",
    "cached_is_stale",
    "configmap_name",
    "read_inventory",
    "write_inventory",
]

NAMESPACE = "fleet-system"
_LABELS = {"app.kubernetes.io/component": "fleet-inventory"}


def configmap_name(app: str) -> str:
    return f"fleet-inventory-{app}"


@dataclass(frozen=True)
class Record:
    """How the app holds one object: its uid when known; adopted (released, not deleted, when it
    leaves git); shared (one owner among several, the createNamespace Namespace)."""

    uid: str = ""
    adopted: bool = False
    shared: bool = False

    @property
    def flag(self) -> str:
        return "adopted" if self.adopted else "shared" if self.shared else ""


@dataclass(frozen=True)
class Inventory:
    """What an app applied to one cluster: each key with its apiVersion, how each is held
    (`records`, only for keys with something to say), the revision and the digest."""

    app: str
    entries: Mapping[ObjectKey, str] = field(default_factory=dict)
    revision: str = ""
    digest: str = ""
    records: Mapping[ObjectKey, Record] = field(default_factory=dict)
    resource_version: str = field(default="", compare=False)
    """The ConfigMap's version when read (or written): the precondition of the next write.
    Not part of what the inventory says: left out of equality and :meth:`same_as`."""

    def record(self, key: ObjectKey) -> Record:
        return self.records.get(key) or Record()

    def _rows(self) -> list[list[str]]:
        return [
            [api_version, key.kind, key.namespace, key.name]
            for key, api_version in sorted(self.entries.items())
        ]

    def _record_rows(self) -> list[list[str]]:
        return [
            [self.entries[key], key.kind, key.namespace, key.name, record.uid, record.flag]
            for key, record in sorted(self.records.items())
            if key in self.entries and record != Record()
        ]

    def to_configmap(self) -> dict[str, object]:
        data = {
            "objects": json.dumps(self._rows(), separators=(",", ":")),
            "revision": self.revision,
            "digest": self.digest,
        }
        records = self._record_rows()
        if records:
            data["records"] = json.dumps(records, separators=(",", ":"))
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": configmap_name(self.app),
                "namespace": NAMESPACE,
                "labels": {**_LABELS, "fleet.dev/app": self.app},
            },
            "data": data,
        }

    @classmethod
    def from_configmap(cls, app: str, configmap: Mapping[str, object]) -> Inventory:
        data = configmap.get("data") or {}
        assert isinstance(data, dict)
        entries: dict[ObjectKey, str] = {}
        for api_version, kind, namespace, name in json.loads(data.get("objects") or "[]"):
            group, _ = split_api_version(api_version)
            entries[ObjectKey(group=group, kind=kind, namespace=namespace, name=name)] = api_version
        records: dict[ObjectKey, Record] = {}
        for api_version, kind, namespace, name, uid, flag in json.loads(
            data.get("records") or "[]"
        ):
            group, _ = split_api_version(api_version)
            key = ObjectKey(group=group, kind=kind, namespace=namespace, name=name)
            if key in entries:
                records[key] = Record(uid=uid, adopted=flag == "adopted", shared=flag == "shared")
        metadata = configmap.get("metadata") or {}
        assert isinstance(metadata, dict)
        return cls(
            app=app,
            entries=entries,
            revision=str(data.get("revision", "")),
            digest=str(data.get("digest", "")),
            records=records,
            resource_version=str(metadata.get("resourceVersion", "")),
        )

    def same_as(self, other: Inventory | None) -> bool:
        """Whether `other` says what this says: what :meth:`to_configmap` writes, compared
        without writing it (a sync asks two or three times)."""
        return other is not None and self._said() == other._said()

    def _said(self) -> tuple[object, ...]:
        records = {k: r for k, r in self.records.items() if k in self.entries and r != Record()}
        return (self.app, dict(self.entries), self.revision, self.digest, records)


def _path(app: str) -> str:
    return f"/api/v1/namespaces/{NAMESPACE}/configmaps/{configmap_name(app)}"


async def read_inventory(cluster: Cluster, app: str) -> Inventory | None:
    """The app's inventory on `cluster`, or None when it has none yet; raises
    :class:`~fleet.apply.applying.ReadError` (naming the inventory ConfigMap) when it cannot
    be read, or reads as something else than an inventory."""
    try:
        configmap = await cluster.request("GET", _path(app))
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise read_error(
            exc,
            cluster=cluster.name,
            verb="get",
            api_version="v1",
            kind=f"ConfigMap {configmap_name(app)} (fleet's inventory)",
            namespace=NAMESPACE,
        ) from None
    try:
        return Inventory.from_configmap(app, configmap)
    except (ValueError, TypeError, AssertionError) as exc:
        raise ReadStalled(
            f"inventory ConfigMap {NAMESPACE}/{configmap_name(app)} on cluster {cluster.name} "
            f"is not readable ({type(exc).__name__}); fix or delete it (fleet then prunes nothing "
            "it applied before)",
            status=200,
        ) from None


class InventoryConflict(TransientError):
    """The inventory changed on the cluster since it was read (or was created meanwhile)."""

    def __init__(self, cluster: str, app: str) -> None:
        super().__init__(
            f"inventory ConfigMap {NAMESPACE}/{configmap_name(app)} on cluster {cluster} changed "
            "by another writer since it was read; read again on the next try"
        )
        self.cluster = cluster
        self.app = app


def _superseded(cluster: Cluster, app: str, version: str, *, conflict: bool = False) -> None:
    cluster.inventory_versions.superseded(app, version, conflict=conflict)


def cached_is_stale(cluster: Cluster, app: str, cached: Mapping[str, object] | None) -> bool:
    """Whether a cache's copy of `app`'s inventory on `cluster` (None: the cache holds none) is
    known to be out of date (:class:`fleet.apply.kube.InventoryVersions`): read the API instead."""
    return cluster.inventory_versions.stale(app, cached)


async def _ensure_namespace(cluster: Cluster, query: list[tuple[str, str]]) -> None:
    try:
        await cluster.request("GET", f"/api/v1/namespaces/{NAMESPACE}")
    except ApiError as exc:
        if exc.status != 404:
            raise
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        await cluster.request(
            "PATCH",
            f"/api/v1/namespaces/{NAMESPACE}",
            query=query,
            body=namespace,
            content_type=APPLY_PATCH,
        )


async def _create(cluster: Cluster, inventory: Inventory, *, field_manager: str) -> str:
    """POST the bare ConfigMap (name, labels); its resourceVersion."""
    bare = inventory.to_configmap()
    del bare["data"]
    created = await cluster.request(
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/configmaps",
        query=[("fieldManager", field_manager)],
        body=bare,
    )
    return _version_of(created)


def _version_of(configmap: Mapping[str, object]) -> str:
    metadata = configmap.get("metadata") or {}
    assert isinstance(metadata, dict)
    return str(metadata.get("resourceVersion", ""))


async def write_inventory(
    cluster: Cluster, inventory: Inventory, *, previous: Inventory | None, field_manager: str
) -> Inventory | None:
    """Record `inventory` unless it equals `previous` (None: no write), fenced by the version
    `previous` was read at (absent: created); the inventory with its new version. Raises
    :class:`InventoryConflict` when someone else wrote it first: nothing is written."""
    if inventory.same_as(previous):
        return None
    query = [("fieldManager", field_manager), ("force", "true")]
    app, read_at = inventory.app, previous.resource_version if previous else ""
    if previous is None:
        await _ensure_namespace(cluster, query)
    try:
        version = read_at
        if previous is None:
            version = await _create(cluster, inventory, field_manager=field_manager)
        body = inventory.to_configmap()
        metadata = body["metadata"]
        assert isinstance(metadata, dict)
        if version:  # only a `previous` made by hand, never read, has none: then unfenced
            metadata["resourceVersion"] = version
        written = await cluster.request(
            "PATCH", _path(app), query=query, body=body, content_type=APPLY_PATCH
        )
    except ApiError as exc:
        if exc.status != 409:
            raise
        _superseded(cluster, app, read_at, conflict=True)
        raise InventoryConflict(cluster.name, app) from None
    _superseded(cluster, app, read_at)
    return replace(inventory, resource_version=_version_of(written))
