"""The targets store: one record per target, one writer, subscribers that cannot break it."""

from __future__ import annotations

from pathlib import Path

from fleet.reconcile.summary import Attempt, SyncOutcome, summarise
from fleet.report import (
    Board,
    ClusterState,
    History,
    HistoryWriter,
    Metrics,
    MetricsWriter,
    TargetEvent,
    Targets,
    TargetStatus,
    matrix,
)

OK = SyncOutcome(in_sync=True, health="Healthy", counts={"created": 1})


def test_commit_publishes_to_every_subscriber_even_after_one_fails() -> None:
    targets = Targets()
    seen: list[tuple[str, tuple[str, ...]]] = []

    def broken(status: TargetStatus, events: tuple[TargetEvent, ...]) -> None:
        raise RuntimeError("boom")

    targets.subscribe("broken", broken)
    targets.subscribe("seen", lambda s, e: seen.append((s.app, tuple(x.type for x in e))))
    status, events = summarise(
        TargetStatus("c1", "web"),
        Attempt(started=1, finished=2, commit="a", digest="d", result=OK),
    )
    targets.commit(status, events)
    assert seen == [("web", ("Synced",))]
    assert targets.get(("c1", "web")) == status
    assert [e.type for e in targets.events(app="web")] == ["Synced"]
    targets.forget(("c1", "web"), message="app web left the config")
    assert targets.get(("c1", "web")) is None
    assert seen[-1] == ("web", ("Removed",))


def test_history_and_metrics_follow_the_records(tmp_path: Path) -> None:
    targets = Targets()
    history = History(tmp_path / "h.sqlite")
    metrics = Metrics()
    targets.subscribe("history", HistoryWriter(history))
    targets.subscribe("metrics", MetricsWriter(metrics))
    status, events = summarise(
        TargetStatus("c1", "web"),
        Attempt(started=1, finished=2, commit="a" * 40, digest="d", result=OK, committed_at=0.5),
    )
    targets.commit(status, events)
    failed, events = summarise(
        status, Attempt(started=3, finished=4, commit="b" * 40, render_error="bad YAML")
    )
    targets.commit(failed, events)
    rows = history.query(app="web")
    assert [r.result for r in rows] == ["failed", "synced"]
    assert rows[1].created == 1 and rows[1].commit_to_applied == 1.5
    assert [e.type for e in history.events(app="web")] == ["RenderFailed", "Synced"]
    text = metrics.export().decode()
    assert 'fleet_target_ready{app="web",cluster="c1"} 0.0' in text
    assert 'fleet_target_sync_status{app="web",cluster="c1",status="OutOfSync"} 1.0' in text
    targets.forget(("c1", "web"), message="gone")
    assert 'fleet_target_ready{app="web",cluster="c1"}' not in metrics.export().decode()
    history.close()


def test_a_target_has_no_last_applied_series_before_it_applies_and_none_after_it_left() -> None:
    """The kept label children follow the target: a failed first render makes no timestamp
    series; a target that leaves and comes back is exported again, not into a dropped child."""
    targets, metrics = Targets(), Metrics()
    targets.subscribe("metrics", MetricsWriter(metrics))
    series = 'fleet_target_last_applied_timestamp_seconds{app="web",cluster="c1"}'
    failed, events = summarise(
        TargetStatus("c1", "web"), Attempt(started=1, finished=2, commit="a", render_error="bad")
    )
    targets.commit(failed, events)
    assert series not in metrics.export().decode()
    applied, events = summarise(
        failed, Attempt(started=3, finished=4, commit="a", digest="d", result=OK)
    )
    targets.commit(applied, events)
    assert series in metrics.export().decode()
    targets.forget(("c1", "web"), message="gone")
    assert 'cluster="c1"' not in metrics.export().decode()
    again, events = summarise(
        TargetStatus("c1", "web"),
        Attempt(started=5, finished=6, commit="a", digest="d", result=OK),
    )
    targets.commit(again, events)
    text = metrics.export().decode()
    assert series in text and 'fleet_target_ready{app="web",cluster="c1"} 1.0' in text


def test_board_summary_is_green_only_when_everything_is() -> None:
    targets = Targets()
    board = Board(targets=targets)
    board.clusters["c1"] = ClusterState("c1", state="ready")
    status, events = summarise(
        TargetStatus("c1", "web"),
        Attempt(started=1, finished=2, commit="a", digest="d", result=OK),
    )
    targets.commit(status, events)
    assert board.to_json()["summary"]["green"]
    board.clusters["c2"] = ClusterState("c2", state="parked", error="unreachable: timeout")
    assert not board.to_json()["summary"]["green"]
    text = matrix(board.targets.all(), board.clusters.values())
    assert "Synced/Healthy @a" in text and "! c2: parked: unreachable: timeout" in text


def test_of_cluster_follows_commits_and_forgets() -> None:
    targets = Targets()
    for cluster, app in [("a", "web"), ("b", "web"), ("a", "api"), ("a", "web")]:
        targets.commit(TargetStatus(cluster=cluster, app=app, sync="Synced"))
    assert targets.of_cluster("a") == [("a", "web"), ("a", "api")]
    assert targets.of_cluster("b") == [("b", "web")]
    assert targets.of_cluster("c") == []
    targets.forget(("a", "web"), message="gone")
    targets.forget(("b", "web"), message="gone")
    targets.forget(("b", "web"), message="twice")
    assert targets.of_cluster("a") == [("a", "api")]
    assert targets.of_cluster("b") == []
    assert targets.target_keys() == [("a", "api")]
