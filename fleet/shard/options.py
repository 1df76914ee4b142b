"""The ``fleet run`` options of a sharded replica, and the settings they make."""

from __future__ import annotations

import argparse
from pathlib import Path

from fleet.shard.settings import ShardSettings, default_replica_id

__all__ = ["add_arguments", "settings"]


def add_arguments(run: argparse.ArgumentParser) -> None:
    group = run.add_argument_group(
        "sharding", "run as one of several replicas that share the clusters through Leases"
    )
    group.add_argument(
        "--shard-kubeconfig",
        type=Path,
        default=None,
        metavar="PATH",
        help="the management cluster holding the replicas' Leases (default: no sharding)",
    )
    group.add_argument(
        "--shard-in-cluster",
        action="store_true",
        help="the management cluster is the one the hub runs in (its ServiceAccount; the token "
        "is re-read as it rotates)",
    )
    group.add_argument(
        "--shard-api-url",
        default="",
        metavar="URL",
        help="where the other replicas reach this one's API (default: from --listen, the "
        "address POD_IP names when it listens on all addresses)",
    )
    group.add_argument(
        "--shard-namespace",
        default="fleet-system",
        help="the namespace of the Leases in the management cluster (default fleet-system)",
    )
    group.add_argument(
        "--shard-lease-seconds",
        type=float,
        default=15.0,
        help="lease duration: a dead replica's clusters move within about this (default 15)",
    )
    group.add_argument(
        "--shard-buckets",
        type=int,
        default=0,
        metavar="B",
        help="fence clusters by B bucket leases (sha256 of the name mod B) instead of one lease "
        "per cluster, for fleets of thousands; every replica must give the same B (default 0: "
        "one lease per cluster)",
    )
    group.add_argument(
        "--shard-insecure-peers",
        action="store_true",
        help="without --tls-cert, still send a caller's bearer token on to the other replicas "
        "over plain HTTP (only on a network you trust; default: they are not asked)",
    )
    group.add_argument(
        "--replica-id",
        default="",
        help="this replica's name in the Leases (default: hostname-pid)",
    )


def settings(args: argparse.Namespace) -> ShardSettings | None:
    """The shard settings `args` ask for; None when the hub runs alone. ValueError names the
    option at fault."""
    in_cluster = bool(args.shard_in_cluster)
    if args.shard_kubeconfig is None and not in_cluster:
        return None
    if args.shard_kubeconfig is not None and in_cluster:
        raise ValueError("--shard-kubeconfig and --shard-in-cluster: give one of them")
    if args.shard_kubeconfig is not None and not args.shard_kubeconfig.is_file():
        raise ValueError(f"--shard-kubeconfig {args.shard_kubeconfig}: no such file")
    return ShardSettings(
        kubeconfig=args.shard_kubeconfig,
        api_url=args.shard_api_url.rstrip("/"),
        namespace=args.shard_namespace,
        lease_seconds=args.shard_lease_seconds,
        replica_id=args.replica_id or default_replica_id(),
        buckets=args.shard_buckets,
        insecure_peers=bool(args.shard_insecure_peers),
    )
