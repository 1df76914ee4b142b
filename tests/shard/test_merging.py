"""The fleet-wide answers merged from the replicas' own (pure): who answered, what is unknown."""

from __future__ import annotations

from typing import Any

from fleet.shard.merging import Answer, merge_control, merge_events, merge_status


def board(*clusters: str, ready: bool = True, problems: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "summary": {"green": ready},
        "clusters": [{"name": c, "state": "ready"} for c in clusters],
        "repos": [{"repo": "config", "state": "ok"}],
        "apps": [
            {"app": "web", "cluster": c, "sync": "Synced", "health": "Healthy", "ready": ready}
            for c in clusters
        ],
        "config_error": "",
        "problems": list(problems),
        "config": {"commit": "abc"},
    }


HOLDERS = {"a1": "r1", "b1": "r2", "c1": "r3", "c2": "r3"}


def test_every_replica_answering_is_green_with_every_target_tagged() -> None:
    merged = merge_status(
        [Answer("r1", board("a1")), Answer("r2", board("b1")), Answer("r3", board("c1", "c2"))],
        me="r1",
        entries=HOLDERS,
        holders=HOLDERS,
    )
    assert merged["summary"]["green"] is True
    assert merged["summary"]["targets"] == 4
    assert {a["cluster"]: a["replica"] for a in merged["apps"]} == HOLDERS
    assert merged["config"] == {"commit": "abc"}  # the asked replica's own parts are kept
    assert all(r["answered"] for r in merged["replicas"].values())


def test_a_silent_replicas_clusters_are_unknown_and_not_green() -> None:
    merged = merge_status(
        [Answer("r1", board("a1")), Answer("r2", board("b1")), Answer("r3", error="timed out")],
        me="r1",
        entries=HOLDERS,
        holders=HOLDERS,
    )
    assert merged["summary"]["green"] is False
    rows = {c["name"]: c for c in merged["clusters"]}
    assert {n for n, c in rows.items() if c["state"] == "unknown"} == {"c1", "c2"}
    assert "r3" in rows["c1"]["error"] and "timed out" in rows["c1"]["error"]
    assert merged["summary"]["clusters_not_ready"] == ["c1", "c2"]
    assert any("r3" in p for p in merged["problems"])
    assert merged["replicas"]["r3"] == {"answered": False, "url": "", "error": "timed out"}


def test_a_cluster_nobody_holds_or_a_dead_holder_is_unknown_too() -> None:
    merged = merge_status(
        [Answer("r1", board("a1"))],
        me="r1",
        entries=["a1", "x1", "y1"],
        holders={"a1": "r1", "y1": "gone"},
    )
    rows = {c["name"]: c for c in merged["clusters"]}
    assert "no replica holds" in rows["x1"]["error"]
    assert "gone" in rows["y1"]["error"] and "not a live member" in rows["y1"]["error"]
    assert merged["summary"]["green"] is False


def test_a_cluster_two_replicas_report_keeps_its_holders_answer() -> None:
    old = board("b1", ready=False)
    merged = merge_status(
        [Answer("r1", old), Answer("r2", board("b1"))],
        me="r1",
        entries=["b1"],
        holders={"b1": "r2"},
    )
    assert [(a["replica"], a["ready"]) for a in merged["apps"]] == [("r2", True)]


def test_a_failed_listing_and_problems_of_any_replica_show() -> None:
    failed = board("b1", problems=("history database away",))
    failed["repos"] = [{"repo": "config", "state": "failed", "error": "refused"}]
    merged = merge_status(
        [Answer("r1", board("a1")), Answer("r2", failed)],
        me="r1",
        entries=["a1", "b1"],
        holders={"a1": "r1", "b1": "r2"},
    )
    assert merged["repos"][0]["state"] == "failed"
    assert merged["problems"] == ["history database away"]
    assert merged["summary"]["green"] is False


def test_events_newest_first_within_the_limit() -> None:
    merged = merge_events(
        [
            Answer("r1", {"events": [{"time": 3.0}, {"time": 1.0}]}),
            Answer("r2", {"events": [{"time": 2.0}]}),
            Answer("r3", error="down"),
        ],
        limit=2,
    )
    assert [(e["time"], e["replica"]) for e in merged["events"]] == [(3.0, "r1"), (2.0, "r2")]
    assert merged["replicas"]["r3"]["answered"] is False


def test_control_answers_name_the_replica_of_each_target() -> None:
    merged = merge_control(
        [
            Answer("r1", {"syncing": [{"cluster": "a1", "app": "web"}], "prune": True}),
            Answer("r2", {"syncing": [{"cluster": "b1", "app": "web"}], "prune": True}),
        ],
        verb="syncing",
    )
    assert merged["syncing"] == [
        {"cluster": "a1", "app": "web", "replica": "r1"},
        {"cluster": "b1", "app": "web", "replica": "r2"},
    ]
    assert merged["prune"] is True
