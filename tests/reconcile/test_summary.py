"""The summary step's truth rules, on plain records (pure: no cluster, no clock)."""

from __future__ import annotations

from fleet.reconcile.summary import Attempt, SyncOutcome, drifted, summarise, unreachable
from fleet.report import ObjectStatus, TargetStatus

BLANK = TargetStatus(cluster="prod-1", app="web")
OK = SyncOutcome(in_sync=True, health="Healthy", counts={"created": 2})


def synced(commit: str = "c1", digest: str = "d1", *, at: float = 10.0) -> TargetStatus:
    status, _ = summarise(
        BLANK, Attempt(started=at - 1, finished=at, commit=commit, digest=digest, result=OK)
    )
    return status


def test_green_only_when_applied_is_desired_synced_and_healthy() -> None:
    status, events = summarise(
        BLANK, Attempt(started=1, finished=2, commit="c1", digest="d1", result=OK)
    )
    assert status.ready
    assert (status.sync, status.health) == ("Synced", "Healthy")
    assert (status.applied_commit, status.desired_commit) == ("c1", "c1")
    assert status.condition("Ready") is not None and status.condition("Ready").status  # type: ignore[union-attr]
    assert [e.type for e in events] == ["Synced"]
    assert events[0].details["counts"] == {"created": 2}


def test_progressing_is_not_green() -> None:
    outcome = SyncOutcome(in_sync=True, health="Progressing", counts={"configured": 1})
    status, _ = summarise(
        BLANK, Attempt(started=1, finished=2, commit="c1", digest="d1", result=outcome)
    )
    assert status.sync == "Synced" and not status.ready
    reconciling = status.condition("Reconciling")
    assert reconciling is not None and reconciling.status


def test_a_failed_render_is_out_of_sync_and_keeps_what_was_applied() -> None:
    before = synced()
    status, events = summarise(
        before, Attempt(started=20, finished=21, commit="c2", render_error="invalid YAML in a.yaml")
    )
    assert (status.sync, status.ready) == ("OutOfSync", False)
    assert status.applied_commit == "c1" and status.desired_commit == "c2"
    assert status.error == "invalid YAML in a.yaml" and status.error_reason == "RenderFailed"
    assert status.health == "Healthy"  # what runs there still runs
    assert [e.type for e in events] == ["RenderFailed"]


def test_an_unreachable_cluster_is_unknown_on_both_axes() -> None:
    status, events = unreachable(synced(), now=30, cause="cluster prod-1 is unreachable: timeout")
    assert (status.sync, status.health, status.ready) == ("Unknown", "Unknown", False)
    assert status.error_reason == "Unreachable"
    assert [e.type for e in events] == ["Unreachable"]
    again, repeated = unreachable(status, now=40, cause="cluster prod-1 is unreachable: timeout")
    assert repeated == () and again.error_since == 30  # one event, and since when it holds


def test_a_refused_prune_is_out_of_sync_with_its_reason() -> None:
    refused = SyncOutcome(
        in_sync=False,
        health="Healthy",
        problems=("prune refused: 6 of 6 objects (100%) exceed pruneLimit 0.5",),
        reason="PruneRefused",
    )
    status, events = summarise(
        synced(), Attempt(started=20, finished=21, commit="c2", digest="d2", result=refused)
    )
    assert (status.sync, status.ready) == ("OutOfSync", False)
    assert status.applied_commit == "c1"  # the new commit did not fully land
    assert "pruneLimit" in status.error and status.error_reason == "PruneRefused"
    assert [e.type for e in events] == ["PruneRefused"]


def test_failed_objects_are_named_and_counted() -> None:
    problems = tuple(f"apps/Deployment ns/web-{i}: conflict" for i in range(5))
    failed = SyncOutcome(in_sync=False, health="Degraded", problems=problems, reason="Conflict")
    status, events = summarise(
        BLANK, Attempt(started=1, finished=2, commit="c1", digest="d1", result=failed)
    )
    assert status.error.endswith("(and 2 more)") and "web-0" in status.error
    assert {e.type for e in events} == {"Conflict", "Degraded"}


def test_drift_during_a_sync_is_not_cleared_by_that_sync() -> None:
    before = synced()
    started = Attempt(
        started=20,
        finished=21,
        commit="c1",
        digest="d1",
        result=SyncOutcome(in_sync=True, health="Healthy", counts={"configured": 1}),
        drift_generation=before.drift_generation,
    )
    during, events = drifted(before, now=20.5, objects=1)
    assert during.sync == "OutOfSync" and [e.type for e in events] == ["Drift"]
    after, _ = summarise(during, started)
    assert after.sync == "OutOfSync" and after.drift_since == 20.5  # a later sync must look again
    later = Attempt(
        started=22, finished=23, commit="c1", digest="d1", result=OK,
        drift_generation=after.drift_generation,
    )  # fmt: skip
    healed, events = summarise(after, later)
    assert healed.ready and healed.drift_since is None
    assert "Recovered" in [e.type for e in events]


def test_an_error_of_the_sync_itself_is_not_green() -> None:
    status, events = summarise(
        synced(),
        Attempt(
            started=20,
            finished=21,
            commit="c1",
            digest="d1",
            error="list apps/Deployment in web: HTTP 403: forbidden",
            error_reason="SyncFailed",
        ),
    )
    assert not status.ready and status.sync == "Unknown"  # nothing new applied: compare unknown
    assert [e.type for e in events] == ["SyncFailed"]


def test_recovery_and_the_free_no_op() -> None:
    failed, _ = summarise(
        synced(), Attempt(started=20, finished=21, commit="c2", render_error="bad")
    )
    back, events = summarise(
        failed, Attempt(started=30, finished=31, commit="c2", digest="d2", result=OK)
    )
    assert back.ready and [e.type for e in events] == ["Synced", "Recovered"]
    same, none = summarise(back, Attempt(started=40, finished=41, noop=True))
    assert same is back and none == ()


def test_healing_the_same_commit_is_an_event_of_its_own() -> None:
    heal = SyncOutcome(in_sync=True, health="Healthy", counts={"configured": 1, "unchanged": 3})
    status, events = summarise(
        synced(), Attempt(started=20, finished=21, commit="c1", digest="d1", result=heal)
    )
    assert status.ready and [e.type for e in events] == ["Healed"]


def test_objects_are_kept_on_the_record() -> None:
    objects = (ObjectStatus("apps", "Deployment", "web", "web", "configured", "Healthy"),)
    outcome = SyncOutcome(in_sync=True, health="Healthy", objects=objects)
    status, _ = summarise(
        BLANK, Attempt(started=1, finished=2, commit="c1", digest="d1", result=outcome)
    )
    assert status.objects == objects
    assert status.to_json()["objects"][0]["kind"] == "Deployment"
