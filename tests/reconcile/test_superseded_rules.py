"""A sync that gave way to a newer commit, on plain records (pure: no cluster, no clock).

The record says what happened, and nothing worse: OutOfSync (its commit not applied), not Ready
with reason ``Superseded``, no error, one ``Superseded`` event of normal severity; the event
sinks do not hear of it unless asked, and a commit status says pending, never failure.
"""

from __future__ import annotations

import yaml

from fleet.notify import Notifier, parse_notifications
from fleet.notify.messages import commit_state
from fleet.reconcile.summary import Attempt, SyncOutcome, summarise
from fleet.report import TargetStatus
from fleet.runtime import VirtualClock

BLANK = TargetStatus(cluster="prod-1", app="web")
OK = SyncOutcome(in_sync=True, health="Healthy", counts={"unchanged": 2})
WHY = "superseded by commit cccccccccccc of main"
GAVE_WAY = SyncOutcome(
    in_sync=False,
    health="Healthy",
    reason="Superseded",
    counts={"skipped": 2},
    superseded=WHY,
)


def _applied(commit: str = "c1") -> TargetStatus:
    status, _ = summarise(
        BLANK, Attempt(started=1, finished=2, commit=commit, digest="d1", result=OK)
    )
    assert status.ready
    return status


def _superseded(previous: TargetStatus) -> tuple[TargetStatus, tuple[str, ...], list[str]]:
    status, events = summarise(
        previous, Attempt(started=5, finished=6, commit="c2", digest="d2", result=GAVE_WAY)
    )
    return status, tuple(e.type for e in events), [e.severity for e in events]


def test_a_superseded_sync_is_out_of_sync_not_ready_and_no_failure() -> None:
    status, types, severities = _superseded(_applied())
    assert (status.sync, status.ready) == ("OutOfSync", False)
    assert (status.applied_commit, status.desired_commit) == ("c1", "c2")  # c2 never applied
    assert (status.error, status.error_reason, status.error_since) == ("", "", None)
    ready = status.condition("Ready")
    assert ready is not None and not ready.status
    assert (ready.reason, ready.message) == ("Superseded", WHY)
    assert types == ("Superseded",) and severities == ["normal"]
    assert status.last_result == "synced"  # not counted as a failed attempt


def test_a_superseded_sync_clears_an_earlier_error_and_keeps_a_drift() -> None:
    failed, _ = summarise(
        _applied(),
        Attempt(started=3, finished=4, commit="c2", digest="d2", error="boom", error_reason="X"),
    )
    assert failed.error
    drifted = TargetStatus(**{**failed.__dict__, "drift_since": 3.5})
    status, types, _ = _superseded(drifted)
    assert status.error == "" and status.error_since is None
    assert status.drift_since == 3.5  # the sync did not finish: it put nothing back
    assert "X" not in types and "SyncFailed" not in types


def test_sinks_hear_no_failure_of_a_superseded_sync() -> None:
    status, events = summarise(
        _applied(), Attempt(started=5, finished=6, commit="c2", digest="d2", result=GAVE_WAY)
    )
    specs = parse_notifications(
        yaml.safe_load(
            "notifications:\n"
            "  - {name: ops, type: webhook, url: 'http://127.0.0.1:9/a', secretEnv: KEY}\n"
            "  - {name: all, type: webhook, url: 'http://127.0.0.1:9/b', secretEnv: KEY,"
            " on: [Superseded]}\n"
        ),
        where="fleet.yaml",
    )
    notifier = Notifier(specs, env={"KEY": "k"}, repo_of=str, clock=VirtualClock())
    notifier(status, events)
    stats = notifier.stats()
    assert stats["ops"].queued == 0  # the default events: failures, not this
    assert stats["all"].queued == 1  # asked for by name: heard
    state = commit_state(status)
    assert state is not None and state[:2] == ("pending", "c2")
    assert WHY in state[2]
