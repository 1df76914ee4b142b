"""Which replica owns which cluster: rendezvous (highest random weight) hashing, pure.

Every replica computes the same answer from the same inputs, with no coordination: for each
cluster, each live member gets a score, ``sha256(member NUL cluster)`` read as an integer, and
the member with the highest score owns the cluster (ties, impossible in practice, go to the
smaller name). A member that joins takes exactly the clusters on which it now scores highest,
from whoever held them; a member that leaves gives up only its own clusters, each to the member
that scored second on it. No other cluster moves, which :func:`moves` counts.

Unlike a hash ring, rendezvous hashing needs no virtual nodes to spread evenly and no ring state:
the cost is one hash per (member, cluster) pair, which for a few replicas is nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

__all__ = ["assign", "moves", "owner", "score"]


def score(member: str, cluster: str) -> int:
    """The weight of `member` for `cluster`: stable across processes, machines and versions."""
    digest = hashlib.sha256(f"{member}\0{cluster}".encode()).digest()
    return int.from_bytes(digest[:16], "big")


def owner(cluster: str, members: Iterable[str]) -> str | None:
    """The member that owns `cluster`, or None when there is no member."""
    best: tuple[int, str] | None = None
    for member in members:
        key = (score(member, cluster), member)
        if best is None or key[0] > best[0] or (key[0] == best[0] and member < best[1]):
            best = key
    return best[1] if best is not None else None


def assign(clusters: Iterable[str], members: Iterable[str]) -> dict[str, str]:
    """Each cluster's owner among `members` (empty when there is no member)."""
    live = sorted(set(members))
    if not live:
        return {}
    found: dict[str, str] = {}
    for cluster in clusters:
        chosen = owner(cluster, live)
        assert chosen is not None
        found[cluster] = chosen
    return found


def moves(before: Mapping[str, str], after: Mapping[str, str]) -> int:
    """How many clusters present in both assignments changed owner."""
    return sum(1 for cluster, was in before.items() if cluster in after and after[cluster] != was)
