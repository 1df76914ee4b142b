"""History is a real SQLite file, readable by another connection while the hub writes."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from fleet.report import History, SyncRecord
from fleet.report.history import EventRecord
from tests.hub.hubkit import until


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


def _event(i: int) -> EventRecord:
    return EventRecord(
        time=float(i), cluster="eu", app="web", type="Synced", severity="normal", message=f"#{i}"
    )


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as reader:  # another connection, as `fleet history` opens
        return int(reader.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@pytest.mark.anyio
async def test_rows_are_written_behind_and_every_reader_sees_them(tmp_path: Path) -> None:
    """A burst of rows returns at once to the recorder (the writer thread inserts them in
    batches); the hub's own reads see every row recorded before them, another connection sees
    them once written, and close writes the rest."""
    history = History(tmp_path / "h.sqlite")
    for i in range(500):
        history.record_event(_event(i))
        history.record(_record("web", "eu", float(i)))
    assert len(history.events(limit=1000)) == 500 and len(history.query(limit=1000)) == 500
    assert _count(history.path, "events") == 500
    history.record_event(_event(500))
    await until(lambda: _count(history.path, "events") == 501)  # the writer, unasked
    history.record_event(_event(501))
    history.close()
    assert _count(history.path, "events") == 502
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        history.record_event(_event(502))


@pytest.mark.anyio
async def test_rows_wait_out_a_wave_of_work_but_a_read_still_sees_them(tmp_path: Path) -> None:
    """defer_while: the writer leaves rows pending while the hub is in a wave (another
    connection does not see them yet), a read of the hub writes them first, and they are
    written unasked once the wave is over; close writes what a wave still holds."""
    wave = True
    history = History(tmp_path / "h.sqlite")
    history.defer_while(lambda: wave)
    history.record_event(_event(0))
    await anyio.sleep(0.5)  # ten times GATHER: without the wave it would be written by now
    assert _count(history.path, "events") == 0
    assert len(history.events(limit=10)) == 1 and _count(history.path, "events") == 1
    history.record_event(_event(1))
    await anyio.sleep(0.5)
    assert _count(history.path, "events") == 1
    wave = False
    await until(lambda: _count(history.path, "events") == 2)
    wave = True
    history.record_event(_event(2))
    history.close()
    assert _count(history.path, "events") == 3


@pytest.mark.anyio
async def test_a_batch_the_file_refuses_is_lost_named_and_the_next_one_written(
    tmp_path: Path,
) -> None:
    history = History(tmp_path / "h.sqlite")
    with sqlite3.connect(history.path) as other:
        other.execute("ALTER TABLE events RENAME TO kept")
    history.record_event(_event(1))
    await until(lambda: "history rows lost" in history.problem)
    assert "no such table: events" in history.problem
    with sqlite3.connect(history.path) as other:
        other.execute("ALTER TABLE kept RENAME TO events")
    history.record_event(_event(2))
    await until(lambda: history.problem == "")
    assert [e.message for e in history.events()] == ["#2"]
    history.close()
