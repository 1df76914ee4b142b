"""The PostgreSQL history writer against faults of its own rows and of itself, on the real
server (:mod:`tests.report.pgkit`): a row the database refuses (a NUL byte in a message) is
dropped, counted and logged while the rest of its batch and every later one are written; a
writer loop that fails (a fault injected into the insert) shows ``fleet_history_up`` 0 and a
problem naming the failure, then starts again and writes what comes next."""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from fleet.report import history_pg
from fleet.report.history import EventRecord, SyncRecord
from fleet.report.history_pg import PgHistory
from tests.report.pgkit import PASSWORD, Postgres


def _sync(cluster: str, finished: float) -> SyncRecord:
    return SyncRecord(
        app="web",
        cluster=cluster,
        revision="abc",
        started_at=finished - 1,
        finished_at=finished,
        result="synced",
    )


def _event(message: str, at: float) -> EventRecord:
    return EventRecord(
        time=at, cluster="c0", app="web", type="Synced", severity="info", message=message
    )


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_a_row_the_database_refuses_is_dropped_and_the_rest_written(
    postgres: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fleet.report.history_pg")
    url = postgres.database("refused")
    registry = CollectorRegistry()
    store = PgHistory(url, registry=registry)
    store.record(_sync("c0", 100.0))
    store.record_event(_event("applied", 100.0))
    store.record_event(_event("a NUL \x00 from a hook's output", 101.0))  # text refuses NUL
    store.record_event(_event("applied again", 102.0))
    assert store.flush(60), store.problem  # before: the batch was retried forever
    assert store.rejected == 1 and store.dropped == 0 and store.problem == ""
    assert [e.message for e in store.events()] == ["applied again", "applied"]
    assert [r.finished_at for r in store.query()] == [100.0]
    assert registry.get_sample_value("fleet_history_rejected_total") == 1.0
    assert registry.get_sample_value("fleet_history_up") == 1.0
    assert "event=history_row_rejected" in caplog.text and "table=events" in caplog.text
    store.record(_sync("c0", 200.0))  # later batches are not held back
    assert store.flush(60), store.problem
    assert _count(url, "syncs") == 2
    assert PASSWORD not in caplog.text
    store.close()


def test_a_writer_that_fails_shows_it_and_starts_again(
    postgres: Postgres, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.database("crash")
    registry = CollectorRegistry()
    store = PgHistory(url, registry=registry)
    store.record(_sync("c0", 1.0))
    assert store.flush(60), store.problem
    healed = threading.Event()
    insert = history_pg._insert

    def broken(connection: psycopg.Connection[tuple[object, ...]], batch: object) -> None:
        if not healed.is_set():
            raise RuntimeError("a bug in the writer")
        insert(connection, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(history_pg, "_insert", broken)
    store.record(_sync("c1", 2.0))
    deadline = time.monotonic() + 60
    while registry.get_sample_value("fleet_history_up") != 0.0:
        assert time.monotonic() < deadline, "the writer failed and still reports up"
        time.sleep(0.05)
    assert "the writer failed (RuntimeError: a bug in the writer)" in store.problem
    assert store.dropped == 1  # its batch, counted
    assert "event=history_writer_crashed" in caplog.text
    healed.set()
    store.record(_sync("c2", 3.0))
    assert store.flush(60), store.problem  # the writer runs again
    assert registry.get_sample_value("fleet_history_up") == 1.0 and store.problem == ""
    assert sorted(r.cluster for r in store.query()) == ["c0", "c2"]
    store.close()
