"""History is a real SQLite file, readable by another connection while the hub writes."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fleet.report import History, SyncRecord


def _record(app: str, cluster: str, finished: float, **extra: Any) -> SyncRecord:
    base = SyncRecord(
        app=app,
        cluster=cluster,
        revision="abc1234",
        started_at=finished - 1,
        finished_at=finished,
        result="synced",
    )
    return dataclasses.replace(base, **extra)


def test_record_and_query(tmp_path: Path) -> None:
    history = History(tmp_path / "state" / "history.sqlite")
    history.record(_record("web", "eu", 10, created=3, committed_at=7.5))
    history.record(_record("web", "us", 11, failed=1))
    history.record(_record("db", "eu", 12))
    assert [r.finished_at for r in history.query()] == [12, 11, 10]
    web_eu = history.query(app="web", cluster="eu")
    assert len(web_eu) == 1 and web_eu[0].created == 3
    assert web_eu[0].commit_to_applied == pytest.approx(2.5)
    assert [r.app for r in history.query(cluster="eu")] == ["db", "web"]
    assert len(history.query(limit=1)) == 1
    # a second reader (as `fleet history` in another process) sees the rows
    with sqlite3.connect(history.path) as reader:
        assert reader.execute("SELECT COUNT(*) FROM syncs").fetchone() == (3,)
    history.close()
    reopened = History(history.path)
    assert len(reopened.query()) == 3


@pytest.mark.anyio
async def test_async_calls(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite")
    await history.arecord(_record("web", "eu", 1))
    assert [r.app for r in await history.aquery(app="web")] == ["web"]
