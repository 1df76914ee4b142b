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
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleet.apply.applying import ReadStalled, read_error
from fleet.apply.kube import APPLY_PATCH, ApiError, Cluster
from fleet.types import ObjectKey, split_api_version

__all__ = [
    "NAMESPACE",
    "Inventory",
    "Record",
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
        return cls(
            app=app,
            entries=entries,
            revision=str(data.get("revision", "")),
            digest=str(data.get("digest", "")),
            records=records,
        )

    def same_as(self, other: Inventory | None) -> bool:
        return other is not None and self.to_configmap() == other.to_configmap()


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


async def write_inventory(
    cluster: Cluster, inventory: Inventory, *, previous: Inventory | None, field_manager: str
) -> bool:
    """Record `inventory` unless it equals `previous`; whether a write was made."""
    if inventory.same_as(previous):
        return False
    query = [("fieldManager", field_manager), ("force", "true")]
    if previous is None:
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
    await cluster.request(
        "PATCH",
        _path(inventory.app),
        query=query,
        body=inventory.to_configmap(),
        content_type=APPLY_PATCH,
    )
    return True
