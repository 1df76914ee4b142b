"""The per-commit breakdown of a commit whose webhook sha stood in for the listing.

With the pushed sha trusted there is no ``ls-remote``: the webhook's refresh fetches the commit by
id (when the hub never heard of the commit before it) and checks it descends from the listed one
(``event=push_noted`` ends that). The breakdown must put that fetch in ``fetch``, the check in
``listing``, and still add up to the latency. Lines are written by the hub's own JSON formatter.
"""

from __future__ import annotations

import io
import logging

import pytest

from bench import breakdown
from fleet import logs

SHA = "89abcdef0123456789abcdef0123456789abcdef"


def _json_log(records: list[tuple[float, str, tuple[object, ...]]]) -> list[str]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.Formatter(logs.Format.JSON))
    logger = logging.getLogger("fleet.test_breakdown_pushed")
    for created, msg, args in records:
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, msg, args, None)
        record.created, record.msecs = created, (created % 1) * 1000
        handler.handle(record)
    return stream.getvalue().splitlines()


def test_a_fetch_within_the_webhook_is_fetch_and_its_check_is_listing() -> None:
    t0 = 1_800_000_000.0
    commit = breakdown.CommitTimes(
        index=4,
        sha=SHA,
        push_start=t0,
        push_end=t0 + 0.05,
        webhook_sent=t0 + 0.05,
        webhook_answered=t0 + 0.20,
        seen={"a": t0 + 1.0},
    )
    git = "event=git args=%s rc=%s elapsed_s=%.3f"
    lines = _json_log(
        [
            (t0 + 0.16, git, ("fetch --quiet --no-tags --no-write-fetch-head origin", 0, 0.10)),
            (t0 + 0.18, git, ("merge-base --is-ancestor", 0, 0.01)),
            (t0 + 0.18, "event=push_noted repo=%s moved=%s", ("r", True)),
            (t0 + 0.40, "event=render kind=%s elapsed_s=%.3f", ("kustomize", 0.10)),
            (t0 + 1.10, "event=reconciled cluster=%s commit=%s seconds=%.3f", ("a", SHA[:12], 0.9)),
        ]
    )
    row = breakdown.breakdown(commit, breakdown.parse_log(lines), until=t0 + 5)
    a = row["clusters"]["a"]
    assert a["webhook"] == pytest.approx(0.01, abs=0.003)  # push end -> the fetch's start
    assert a["fetch"] == pytest.approx(0.10, abs=0.003)
    assert a["listing"] == pytest.approx(0.02, abs=0.003)  # the descent check
    assert a["queue"] == pytest.approx(0.02, abs=0.003)  # the worker started at t0 + 0.20
    assert a["render"] == pytest.approx(0.20, abs=0.003)
    assert a["apply"] == pytest.approx(0.60, abs=0.003)
    assert sum(a[p] for p in breakdown.PHASES) == pytest.approx(a["total"])
    assert row["listing_s"] is None and row["git_by_op"] == {"fetch": 1, "merge-base": 1}
