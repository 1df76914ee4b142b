"""How a hub replica takes part in a shard: where the leases live, how long they last, who it is."""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ShardSettings", "default_replica_id"]

_MAX_BUCKETS = 65536


def default_replica_id() -> str:
    """hostname-pid: unique per process, so a restarted replica is a new member."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class ShardSettings:
    """``fleet run --shard-kubeconfig PATH|--shard-in-cluster --shard-namespace NS
    [--shard-lease-seconds S] [--shard-api-url URL] [--shard-buckets B]``."""

    kubeconfig: Path | None  # the management cluster, where the leases live; None: in-cluster
    namespace: str = "fleet-system"
    lease_seconds: float = 15.0
    replica_id: str = field(default_factory=default_replica_id)
    api_url: str = ""  # where the other replicas reach this one's API; "": from --listen
    buckets: int = 0  # 0: one lease per cluster; B: one per bucket (fleet.shard.buckets)
    insecure_peers: bool = False  # tokens sent on to plaintext peers (--shard-insecure-peers)

    def __post_init__(self) -> None:
        self._check()
        if self.api_url and not self.api_url.startswith(("http://", "https://")):
            raise ValueError(
                f"--shard-api-url {self.api_url}: expected http://HOST:PORT or https://HOST:PORT"
            )

    def _check(self) -> None:
        if not self.lease_seconds >= 3:
            raise ValueError(
                f"--shard-lease-seconds {self.lease_seconds:g}: must be at least 3 (the lease is "
                "renewed every third of it)"
            )
        if not self.replica_id.strip():
            raise ValueError("--replica-id: must not be empty")
        if not 0 <= self.buckets <= _MAX_BUCKETS:
            raise ValueError(
                f"--shard-buckets {self.buckets}: expected 0 (one lease per cluster) up to "
                f"{_MAX_BUCKETS} (one lease per bucket of clusters)"
            )
        if not self.namespace:
            raise ValueError("--shard-namespace: must not be empty")

    @property
    def duration(self) -> int:
        """leaseDurationSeconds, whole seconds as the Lease API holds it."""
        return math.ceil(self.lease_seconds)

    @property
    def renew_interval(self) -> float:
        """How often the leases are renewed and the membership read."""
        return self.lease_seconds / 3

    @property
    def renew_deadline(self) -> float:
        """How long after its last renewal was sent a replica may still write to a cluster."""
        return self.lease_seconds * 2 / 3
