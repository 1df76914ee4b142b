"""Rendezvous assignment: every cluster has one owner, the spread is even, and a join or a leave
moves only the clusters it must (counted)."""

from __future__ import annotations

from collections import Counter

from fleet.shard import assigning

CLUSTERS = [f"cluster-{i}" for i in range(1000)]


def test_every_cluster_has_exactly_one_live_owner() -> None:
    members = ["a", "b", "c"]
    found = assigning.assign(CLUSTERS, members)
    assert set(found) == set(CLUSTERS)
    assert set(found.values()) <= set(members)


def test_no_member_owns_nothing() -> None:
    assert assigning.assign(CLUSTERS, []) == {}
    assert assigning.owner("x", []) is None


def test_the_answer_does_not_depend_on_member_order() -> None:
    assert assigning.assign(CLUSTERS, ["c", "a", "b"]) == assigning.assign(
        CLUSTERS, ["a", "b", "c"]
    )


def test_spread_is_even_within_a_fifth() -> None:
    counts = Counter(assigning.assign(CLUSTERS, ["a", "b", "c", "d"]).values())
    assert all(200 <= n <= 300 for n in counts.values()), counts


def test_a_join_moves_only_the_clusters_the_new_member_takes() -> None:
    before = assigning.assign(CLUSTERS, ["a", "b", "c"])
    after = assigning.assign(CLUSTERS, ["a", "b", "c", "d"])
    moved = [c for c in CLUSTERS if before[c] != after[c]]
    assert all(after[c] == "d" for c in moved)  # nothing moved between the old members
    assert assigning.moves(before, after) == len(moved) == Counter(after.values())["d"]
    assert 200 <= len(moved) <= 300  # about a quarter: the new member's fair share


def test_a_leave_moves_only_the_leaving_members_clusters() -> None:
    before = assigning.assign(CLUSTERS, ["a", "b", "c"])
    after = assigning.assign(CLUSTERS, ["a", "c"])
    assert assigning.moves(before, after) == Counter(before.values())["b"]
    assert all(after[c] == before[c] for c in CLUSTERS if before[c] != "b")


def test_a_restart_under_the_same_id_moves_nothing_back_and_forth() -> None:
    before = assigning.assign(CLUSTERS, ["a", "b", "c"])
    gone = assigning.assign(CLUSTERS, ["a", "c"])
    back = assigning.assign(CLUSTERS, ["a", "b", "c"])
    assert back == before
    assert assigning.moves(gone, back) == assigning.moves(before, gone)


def test_moves_counts_only_clusters_in_both() -> None:
    assert assigning.moves({"x": "a", "y": "b"}, {"x": "b", "z": "a"}) == 1
