"""Lease objects (coordination.k8s.io/v1) in the management cluster: read, create, replace.

The shard's state lives in three kinds of Lease, all labelled ``fleet.dev/hub=<hub id>`` so one
LIST per round reads all of it:

- ``fleet-member-<replica>``: a replica's membership, renewed every round; its annotation
  ``fleet.dev/api-url`` says where that replica's API answers (for calls forwarded to it);
- ``fleet-cluster-<cluster>``: who may write to a cluster (the fence), held by one replica;
- ``fleet-refresh``: no holder; its annotations ``fleet.dev/refresh-<repo>`` are bumped by the
  replica that received a webhook, so every replica learns that a repository moved.

With ``--shard-buckets B`` (:mod:`fleet.shard.buckets`) ``fleet-bucket-<i>`` replaces the
cluster leases (one fences every cluster of its bucket), and ``fleet-shard-config`` (no holder)
holds the B every replica must share.

Every change is a PUT of the whole object carrying the ``resourceVersion`` that was read: the
apiserver answers 409 when someone else changed it meanwhile, so of two replicas racing for one
lease exactly one wins (:class:`Lost`). Creating an existing lease is a 409 too.

Expiry is judged as client-go's leader election does, without trusting another machine's clock:
:class:`Observed` remembers when *this* process first saw each version of each lease; a lease
held by someone else is expired when that version has been seen unchanged for longer than its
duration. Membership, which every replica must agree on, is judged from ``renewTime`` instead
(wall clock, :meth:`Lease.live`): a disagreement there costs at most a late handover, never a
double write, since writing needs the cluster lease.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fleet.apply.kube import ApiError, Cluster
from fleet.errors import TransientError

__all__ = [
    "API_URL_ANNOTATION",
    "CLUSTER_PREFIX",
    "MEMBER_PREFIX",
    "REFRESH_NAME",
    "Lease",
    "LeaseStore",
    "Lost",
    "Observed",
    "cluster_lease_name",
    "member_lease_name",
    "micro_time",
    "safe_name",
]

MEMBER_PREFIX = "fleet-member-"
CLUSTER_PREFIX = "fleet-cluster-"
REFRESH_NAME = "fleet-refresh"
HUB_LABEL = "fleet.dev/hub"
API_URL_ANNOTATION = "fleet.dev/api-url"  # on a member lease: where that replica's API answers
CLUSTER_ANNOTATION = "fleet.dev/cluster"  # the cluster's own name (the lease's may be mangled)
_GROUP = "/apis/coordination.k8s.io/v1"
_UNSAFE = re.compile(r"[^a-z0-9-]+")


class Lost(TransientError):
    """Someone else changed or created the lease first (409): this replica does not hold it."""


def safe_name(text: str, *, limit: int = 63) -> str:
    """`text` as a DNS label: lower case, ``[a-z0-9-]``; a short hash is appended whenever the
    text had to change, so two names never map to one lease."""
    cleaned = _UNSAFE.sub("-", text.lower()).strip("-") or "x"
    if cleaned == text and len(cleaned) <= limit:
        return cleaned
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{cleaned[: limit - 9].rstrip('-')}-{digest}"


def member_lease_name(replica: str) -> str:
    return MEMBER_PREFIX + safe_name(replica, limit=63 - len(MEMBER_PREFIX))


def cluster_lease_name(cluster: str) -> str:
    return CLUSTER_PREFIX + safe_name(cluster, limit=63 - len(CLUSTER_PREFIX))


def micro_time(when: float) -> str:
    """A Kubernetes MicroTime for the unix time `when`."""
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: object) -> float:
    if not isinstance(text, str) or not text:
        return 0.0
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class Lease:
    """One Lease as the shard reads and writes it."""

    name: str
    holder: str = ""
    duration: int = 15
    renewed: float = 0.0  # unix time of spec.renewTime (the holder's clock)
    acquired: float = 0.0
    transitions: int = 0
    resource_version: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Lease:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        return cls(
            name=str(meta.get("name", "")),
            holder=str(spec.get("holderIdentity") or ""),
            duration=int(spec.get("leaseDurationSeconds") or 0),
            renewed=_parse_time(spec.get("renewTime")),
            acquired=_parse_time(spec.get("acquireTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str(meta.get("resourceVersion", "")),
            annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
        )

    def to_object(self, *, namespace: str, hub: str) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": self.name,
            "namespace": namespace,
            "labels": {HUB_LABEL: safe_name(hub)},
        }
        if self.annotations:
            meta["annotations"] = dict(self.annotations)
        if self.resource_version:
            meta["resourceVersion"] = self.resource_version
        spec: dict[str, Any] = {"leaseDurationSeconds": max(1, self.duration)}
        if self.holder:
            spec["holderIdentity"] = self.holder
        if self.renewed:
            spec["renewTime"] = micro_time(self.renewed)
        if self.acquired:
            spec["acquireTime"] = micro_time(self.acquired)
        spec["leaseTransitions"] = self.transitions
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": spec,
        }

    def live(self, now: float) -> bool:
        """Held and renewed within its duration, by the wall clock (membership)."""
        return bool(self.holder) and self.renewed + self.duration > now

    def held_by(self, holder: str, *, now: float, duration: int) -> Lease:
        """This lease taken (or renewed) by `holder` at `now`."""
        taking = self.holder != holder
        return replace(
            self,
            holder=holder,
            duration=duration,
            renewed=now,
            acquired=now if taking else (self.acquired or now),
            transitions=self.transitions + 1 if taking and self.holder else self.transitions,
        )

    def released(self, *, now: float) -> Lease:
        """This lease given up: no holder, free for anyone at once."""
        return replace(self, holder="", renewed=now)


@dataclass
class Observed:
    """When this process first saw each version of each lease (monotonic seconds)."""

    seen: dict[str, tuple[str, float]] = field(default_factory=dict)

    def note(self, lease: Lease, now: float) -> None:
        was = self.seen.get(lease.name)
        if was is None or was[0] != lease.resource_version:
            self.seen[lease.name] = (lease.resource_version, now)

    def expired(self, lease: Lease, now: float) -> bool:
        """Free, or unchanged here for longer than its duration."""
        if not lease.holder:
            return True
        was = self.seen.get(lease.name)
        if was is None or was[0] != lease.resource_version:
            return False  # not watched long enough to know
        return now - was[1] > lease.duration

    def keep_only(self, names: set[str]) -> None:
        for name in set(self.seen) - names:
            del self.seen[name]


class LeaseStore:
    """The leases of one hub id in one namespace of the management cluster."""

    def __init__(self, cluster: Cluster, *, namespace: str, hub: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.hub = hub
        self._base = f"{_GROUP}/namespaces/{namespace}/leases"

    def _where(self) -> str:
        return f"namespace {self.namespace} of the management cluster ({self.cluster.name})"

    async def ensure_namespace(self) -> None:
        """Create the namespace when it is missing (a 403 names what to grant)."""
        path = f"/api/v1/namespaces/{self.namespace}"
        try:
            await self.cluster.request("GET", path)
        except ApiError as exc:
            if exc.status != 404:
                raise
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
            try:
                await self.cluster.request("POST", "/api/v1/namespaces", body=body)
            except ApiError as again:
                if again.status != 409:
                    raise

    async def list(self) -> list[Lease]:
        """Every lease of this hub id (one LIST, read from etcd: never stale)."""
        answer = await self.cluster.request(
            "GET", self._base, query=[("labelSelector", f"{HUB_LABEL}={safe_name(self.hub)}")]
        )
        return [Lease.from_object(item) for item in answer.get("items") or []]

    async def create(self, lease: Lease) -> Lease:
        body = lease.to_object(namespace=self.namespace, hub=self.hub)
        body["metadata"].pop("resourceVersion", None)
        try:
            answer = await self.cluster.request("POST", self._base, body=body)
        except ApiError as exc:
            if exc.status == 409:
                raise Lost(f"lease {lease.name} in {self._where()} was created first by another "
                           "replica") from None  # fmt: skip
            raise
        return Lease.from_object(answer)

    async def replace(self, lease: Lease) -> Lease:
        """PUT `lease` preconditioned on its resourceVersion; :class:`Lost` on a 409 or 404."""
        body = lease.to_object(namespace=self.namespace, hub=self.hub)
        try:
            answer = await self.cluster.request("PUT", f"{self._base}/{lease.name}", body=body)
        except ApiError as exc:
            if exc.status in (404, 409):
                raise Lost(f"lease {lease.name} in {self._where()} changed meanwhile "
                           f"({exc.status}): another replica holds it") from None  # fmt: skip
            raise
        return Lease.from_object(answer)

    async def delete(self, name: str, *, resource_version: str) -> None:
        """Delete `name` if it is still at `resource_version` (a clean stop)."""
        body = {"preconditions": {"resourceVersion": resource_version}}
        try:
            await self.cluster.request("DELETE", f"{self._base}/{name}", body=body)
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise

    async def prune(self, keys: Iterable[str], *, resource_version: str) -> bool:
        """Remove annotations `keys` from the refresh lease if it is still at
        `resource_version`; False when it changed meanwhile (or is gone): try again later."""
        body = {
            "metadata": {
                "resourceVersion": resource_version,
                "annotations": dict.fromkeys(keys),
            }
        }
        try:
            await self.cluster.request(
                "PATCH",
                f"{self._base}/{REFRESH_NAME}",
                body=body,
                content_type="application/merge-patch+json",
            )
        except ApiError as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    async def bump(self, annotations: Mapping[str, str]) -> None:
        """Merge `annotations` into the refresh lease (created when missing)."""
        body = {"metadata": {"annotations": dict(annotations)}}
        try:
            await self.cluster.request(
                "PATCH",
                f"{self._base}/{REFRESH_NAME}",
                body=body,
                content_type="application/merge-patch+json",
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
            try:
                await self.create(Lease(name=REFRESH_NAME, annotations=annotations))
            except Lost:
                await self.bump(annotations)
