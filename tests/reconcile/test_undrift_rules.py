"""The summary's rules for a drift put back by hand (pure: plain records, times passed in).

The kit-cluster test (tests/hub/test_drift_undone.py) shows the hub clears such a drift; these
pin what the record says in the cases a cluster test cannot easily stage: a newer commit or an
error keeps it OutOfSync, the health is the one seen now (never the one before the drift), and a
sync that started before the drift does not bring it back.
"""

from __future__ import annotations

import dataclasses

from fleet.reconcile.summary import Attempt, SyncOutcome, drifted, summarise, undrifted
from fleet.report import TargetStatus

BLANK = TargetStatus(cluster="prod-1", app="web")
OK = SyncOutcome(in_sync=True, health="Healthy", counts={"created": 1})


def _synced() -> TargetStatus:
    status, _ = summarise(
        BLANK, Attempt(started=9, finished=10, commit="c1", digest="d1", result=OK)
    )
    return status


def test_a_drift_put_back_is_synced_again_with_a_recovered_event() -> None:
    drift, events = drifted(_synced(), now=20, objects=1)
    assert drift.sync == "OutOfSync" and drift.last_drift_at == 20 and not drift.ready
    back, events = undrifted(drift, now=30, health="Healthy")
    assert back.ready and back.drift_since is None and back.last_drift_at == 20
    assert [e.type for e in events] == ["Recovered"]
    assert back.condition("Ready").status  # type: ignore[union-attr]
    again, events = drifted(back, now=40, objects=2)
    assert again.drift_since == 40 and again.last_drift_at == 40 and events  # a new drift


def test_a_drift_put_back_is_green_only_on_the_health_seen_now() -> None:
    drift, _ = drifted(_synced(), now=20, objects=1)  # e.g. a Deployment deleted, then re-created
    back, events = undrifted(drift, now=30, health="Progressing")
    assert back.sync == "Synced" and back.health == "Progressing" and not back.ready
    assert [e.type for e in events] == ["HealthChanged"]
    well, events = undrifted(drift, now=30, health="Healthy")
    assert well.ready and [e.type for e in events] == ["Recovered"]


def test_nothing_to_clear_is_no_change() -> None:
    status = _synced()
    assert undrifted(status, now=30, health="Healthy") == (status, ())


def test_a_newer_commit_or_an_error_keeps_it_out_of_sync() -> None:
    drift, _ = drifted(_synced(), now=20, objects=1)
    newer = dataclasses.replace(drift, desired_commit="c2", desired_digest="d2")
    back, events = undrifted(newer, now=30, health="Healthy")
    assert back.sync == "OutOfSync" and back.drift_since is None and events == ()
    failing = dataclasses.replace(drift, error="boom", error_reason="SyncFailed")
    back, events = undrifted(failing, now=30, health="Healthy")
    assert back.sync == "OutOfSync" and not back.ready and events == ()


def test_a_sync_that_started_before_a_drift_put_back_meanwhile_is_synced() -> None:
    before = _synced()
    attempt = Attempt(
        started=20, finished=23, commit="c1", digest="d1", result=OK,
        drift_generation=before.drift_generation,
    )  # fmt: skip
    drift, _ = drifted(before, now=21, objects=1)
    back, _ = undrifted(drift, now=22, health="Healthy")
    after, _ = summarise(back, attempt)
    assert after.ready and after.drift_since is None
    still, _ = summarise(drift, attempt)  # not put back: the sync must not clear it
    assert still.sync == "OutOfSync" and still.drift_since == 21
