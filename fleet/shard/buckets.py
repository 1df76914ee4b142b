"""Cluster leases per bucket: a fleet of tens of thousands of clusters on a few hundred Leases.

With ``--shard-buckets B`` (B > 0) a cluster is not fenced by a lease of its own but by the lease
of its bucket, ``bucket(cluster) = sha256(cluster name) mod B`` (:func:`bucket_of`: stable across
processes, machines and Python versions, unlike ``hash``). Rendezvous hashing
(:mod:`fleet.shard.assigning`) then assigns buckets, not clusters, to the live members, so a join
or a leave moves only the buckets it must, and with each bucket every cluster in it. The renewal
writes drop from one per cluster per round to one per bucket per round (:func:`lease_writes`), and
every round's LIST reads B leases instead of one per cluster.

B is shared configuration: two replicas that bucket differently would each hold the fence of a
cluster under a different lease and both write to it. So the first replica to start stores B on
the ``fleet-shard-config`` Lease, and every replica, before it joins as a member, checks its B
against the stored one (:func:`agree`): a replica whose B differs refuses to start with
:class:`BucketsMismatch`, naming both values and what to do.
"""

from __future__ import annotations

import dataclasses
import hashlib

from fleet.errors import ConfigError
from fleet.shard.leases import Lease, LeaseStore, Lost

__all__ = [
    "BUCKETS_ANNOTATION",
    "BUCKET_PREFIX",
    "CONFIG_NAME",
    "BucketsMismatch",
    "agree",
    "bucket_key",
    "bucket_of",
    "lease_writes",
]

BUCKET_PREFIX = "fleet-bucket-"
CONFIG_NAME = "fleet-shard-config"
BUCKETS_ANNOTATION = "fleet.dev/shard-buckets"


class BucketsMismatch(ConfigError):
    """This replica's ``--shard-buckets`` differs from the one the running replicas use."""


def bucket_of(cluster: str, buckets: int) -> int:
    """The bucket of `cluster` among `buckets` (> 0): the first 8 bytes of its name's sha256."""
    digest = hashlib.sha256(cluster.encode()).digest()
    return int.from_bytes(digest[:8], "big") % buckets


def bucket_key(index: int) -> str:
    """The shard's key of bucket `index`; its lease is ``fleet-`` + the key."""
    return f"bucket-{index}"


def lease_writes(*, clusters: int, buckets: int, lease_seconds: float = 15.0) -> float:
    """Lease renewals per second on the management cluster for `clusters` clusters (each lease is
    renewed every third of `lease_seconds`; `buckets` 0: one lease per cluster; the few
    membership leases are left out). With B buckets, at most min(B, clusters) are held."""
    leases = clusters if buckets == 0 else min(buckets, clusters)
    return leases / (lease_seconds / 3)


async def agree(store: LeaseStore, buckets: int, *, replica: str) -> None:
    """Store `buckets` on the ``fleet-shard-config`` lease if it holds none yet; raise
    :class:`BucketsMismatch` when it holds another value (409 races are read again)."""
    for _ in range(5):
        current = next((x for x in await store.list() if x.name == CONFIG_NAME), None)
        try:
            if current is None:
                await store.create(
                    Lease(name=CONFIG_NAME, annotations={BUCKETS_ANNOTATION: str(buckets)})
                )
                return
            stored = current.annotations.get(BUCKETS_ANNOTATION)
            if stored is None:
                annotations = {**current.annotations, BUCKETS_ANNOTATION: str(buckets)}
                await store.replace(dataclasses.replace(current, annotations=annotations))
                return
        except Lost:
            continue  # another replica wrote it first: read what it stored
        if stored != str(buckets):
            raise BucketsMismatch(
                f"replica {replica}: --shard-buckets {buckets} differs from --shard-buckets "
                f"{stored} that the replicas of this hub use (annotation {BUCKETS_ANNOTATION} of "
                f"lease {CONFIG_NAME} in namespace {store.namespace} of the management cluster); "
                f"start it with --shard-buckets {stored}, or, to change it, stop every replica, "
                f"delete that lease (kubectl -n {store.namespace} delete lease {CONFIG_NAME}) "
                "and start them all with the new value"
            )
        return
    raise Lost(f"lease {CONFIG_NAME} in namespace {store.namespace}: changed on every try")
