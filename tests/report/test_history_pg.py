"""The history in a real PostgreSQL server (tests/report/conftest.py starts one).

The backend alone: the schema made on first use (two replicas at once on an empty database),
round trips in the SQLite backend's order, two writers at once losing nothing, a database that
goes away and comes back (rows held, then written; the password never shown). Then the hub: it
writes its syncs and events there and ``fleet history --history URL`` / ``fleet events`` read
them; with the database stopped under it the hub goes on applying, shows the problem in its
metrics, log and board (``/api/status`` ``problems``, not green), and its rows reach the
database once it is back; two hubs (replicas, each with its own cluster) write one database
that one reader sees whole.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import psycopg
import pytest

from fleet.controlplane import RunningCluster
from fleet.errors import ConfigError
from fleet.hub.hub import Hub
from fleet.report.history import EventRecord, History, SyncRecord, open_history
from fleet.report.history_pg import HistoryUnavailable, PgHistory, safe_url
from tests.hub.hubkit import (
    configmap,
    drop,
    fleet_yaml,
    hub_settings,
    push_webhook,
    until,
    value_on,
)
from tests.report.pgkit import PASSWORD, Postgres
from tests.sources.gitkit import Remote


def _sync(app: str, cluster: str, finished: float, revision: str = "abc") -> SyncRecord:
    return SyncRecord(
        app=app,
        cluster=cluster,
        revision=revision,
        started_at=finished - 1,
        finished_at=finished,
        result="synced",
        created=2,
        committed_at=finished - 3,
        health="Healthy",
    )


def _event(app: str, cluster: str, at: float) -> EventRecord:
    return EventRecord(
        time=at, cluster=cluster, app=app, type="Synced", severity="info", message="applied"
    )


def test_open_history_picks_the_backend(tmp_path: Path) -> None:
    sqlite = open_history(tmp_path / "h.sqlite")
    assert isinstance(sqlite, History) and sqlite.problem == ""
    sqlite.close()
    pg = open_history("postgresql://fleet@127.0.0.1:1/nowhere")
    assert isinstance(pg, PgHistory)
    pg.close()
    with pytest.raises(ConfigError, match="unknown scheme 'mysql'"):
        open_history("mysql://x@y/z")
    url = "postgresql://fleet:s3cret-pass@db.example:5433/fleet?sslmode=require&password=x"
    assert safe_url(url) == "postgresql://fleet@db.example:5433/fleet"


def test_schema_on_first_use_and_round_trip(postgres: Postgres) -> None:
    url = postgres.database("roundtrip")
    assert PgHistory(url).query() == []  # nothing written yet: empty, and the reader made nothing
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT to_regclass('syncs')").fetchone() == (None,)
    # two replicas starting together on an empty database: both create the schema, neither fails
    stores = [PgHistory(url), PgHistory(url)]
    barrier = threading.Barrier(2)

    def write(store: PgHistory, cluster: str) -> None:
        barrier.wait()
        store.record(_sync("web", cluster, 100.0))
        store.record_event(_event("web", cluster, 100.0))

    threads = [threading.Thread(target=write, args=(s, f"c{i}")) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        assert store.flush(60), store.problem
    stores[0].record(_sync("web", "c0", 200.0, revision="def"))
    stores[0].record(_sync("api", "c0", 300.0))
    assert stores[0].flush(60)

    records = stores[1].query(app="web", cluster="c0")
    assert [(r.revision, r.finished_at) for r in records] == [("def", 200.0), ("abc", 100.0)]
    assert records[1] == _sync("web", "c0", 100.0)
    assert records[1].commit_to_applied == 3.0
    assert {r.app for r in stores[1].query()} == {"web", "api"}
    assert len(stores[1].query(limit=2)) == 2
    events = stores[1].events(cluster="c1")
    assert events == [_event("web", "c1", 100.0)]
    with psycopg.connect(url) as connection:
        indexes = connection.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'events'"
        ).fetchall()
    assert any('(app, cluster, "time")' in row[0] for row in indexes), indexes
    for store in stores:
        store.close()


def test_two_writers_at_once_lose_nothing(postgres: Postgres) -> None:
    url = postgres.database("writers")
    stores = [PgHistory(url), PgHistory(url)]

    def write(store: PgHistory, replica: int) -> None:
        for i in range(300):
            store.record(_sync("web", f"r{replica}", float(i)))
            store.record_event(_event("web", f"r{replica}", float(i)))

    threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        assert store.flush(120), store.problem
        assert store.dropped == 0
    with psycopg.connect(url) as connection:
        counts = connection.execute(
            "SELECT cluster, count(*), count(DISTINCT finished_at) FROM syncs GROUP BY cluster"
        ).fetchall()
        events = connection.execute("SELECT count(*) FROM events").fetchone()
    assert sorted(counts) == [("r0", 300, 300), ("r1", 300, 300)]
    assert events == (600,)
    for store in stores:
        store.close()


def test_database_away_rows_held_then_written(
    postgres: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.database("outage")
    store = PgHistory(url, capacity=50)
    store.record(_sync("web", "c", 1.0))
    assert store.flush(60)
    caplog.set_level(logging.INFO, logger="fleet.report.history_pg")
    postgres.stop()
    try:
        for i in range(80):  # more than the buffer holds: the oldest are dropped, counted
            store.record(_sync("web", "c", 10.0 + i))  # an append: returns with the database down
        assert not store.flush(3)
        assert "history database postgresql://fleet@127.0.0.1" in store.problem
        assert store.pending == 50 and store.dropped == 30
        with pytest.raises(HistoryUnavailable, match="is it running"):
            store.query()
    finally:
        postgres.start()
    assert store.flush(120), store.problem
    assert store.problem == ""
    finished = [r.finished_at for r in store.query(limit=100)]
    assert finished == [10.0 + i for i in reversed(range(30, 80))] + [1.0]
    text = caplog.text
    assert "event=history_write_failed" in text and "event=history_write_resumed" in text
    assert PASSWORD not in text
    store.close()


def _cfg(url: str, ns: str) -> str:
    return fleet_yaml(url, ns).replace("selfHeal: true", "selfHeal: true, createNamespace: true")


@pytest.mark.anyio
async def test_hub_writes_history_to_postgres_and_lives_through_an_outage(
    kit_clusters: list[RunningCluster],
    postgres: Postgres,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ns = f"history-pg-{uuid.uuid4().hex[:6]}"  # a namespace of its own
    cluster = kit_clusters[0]
    url = postgres.database("hub")
    remote = Remote(tmp_path / "git")
    first = remote.commit({"app/settings.yaml": configmap(ns, "one")})
    settings = hub_settings(tmp_path, history=url)
    settings.config_path.write_text(_cfg(remote.url, ns))
    drop(cluster, settings.clusters_dir)
    hub = Hub(settings)
    caplog.set_level(logging.INFO)
    bare = postgres.url("hub", password=False)
    env = {"PGPASSWORD": PASSWORD}
    async with anyio.create_task_group() as tg:
        port = await tg.start(hub.run)
        await until(lambda: hub.board.cell("web", cluster.name).ready, limit=180)
        store = hub.history
        assert isinstance(store, PgHistory)
        assert await anyio.to_thread.run_sync(store.flush, 60.0)

        # `fleet history --history URL` reads it, the password from PGPASSWORD
        code, out, err = await _cli(env, "history", "web", "--history", bare, "--json")
        assert code == 0, err
        assert first[:10] in out and cluster.name in out and '"result": "synced"' in out
        code, out, err = await _cli(env, "events", "web", "--history", bare)
        assert code == 0, err
        assert "Synced" in out and f"web@{cluster.name}" in out

        # the database goes away: the hub still applies, and says what is wrong
        await anyio.to_thread.run_sync(postgres.stop)
        try:
            second = remote.commit({"app/settings.yaml": configmap(ns, "two")})
            assert await push_webhook(port, remote.url) == 200
            await until(lambda: _applied(hub, cluster.name) == second, limit=180)
            assert await value_on(cluster, ns) == "two"
            await until(lambda: _sample(hub, "fleet_history_up") == 0.0, limit=60)
            assert (_sample(hub, "fleet_history_pending") or 0) > 0
            assert store.problem.startswith("history database postgresql://fleet@127.0.0.1")
            # the board names it, and is not green while it lasts
            board = await _status(port)
            assert any(p.startswith("history database postgresql://") for p in board["problems"])
            assert board["summary"]["green"] is False and board["summary"]["problems"] == 1
            assert PASSWORD not in json.dumps(board)
            code, _, err = await _cli(env, "history", "--history", bare)
            assert code == 1 and "is it running" in err
            code, _, err = await _cli({}, "events", "--history", url)  # the password in the URL
            assert code == 1 and "postgresql://fleet@127.0.0.1" in err and PASSWORD not in err
        finally:
            await anyio.to_thread.run_sync(postgres.start)
        # back: what was held is written, the metric says so
        await until(lambda: _sample(hub, "fleet_history_up") == 1.0, limit=120)
        assert await anyio.to_thread.run_sync(store.flush, 60.0)
        code, out, err = await _cli(env, "history", "web", "--history", bare, "--json")
        assert code == 0, err
        assert second[:10] in out and first[:10] in out
        board = await _status(port)
        assert board["problems"] == [] and board["summary"]["green"] is True
        hub.stop()
    assert "event=history_write_failed" in caplog.text
    assert PASSWORD not in caplog.text


def _applied(hub: Hub, cluster: str) -> str:
    return hub.board.cell("web", cluster).applied_commit


def _sample(hub: Hub, name: str) -> float | None:
    return hub.metrics.registry.get_sample_value(name)


async def _status(port: int) -> dict[str, Any]:
    """The hub's ``/api/status``."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/api/status") as response,
    ):
        assert response.status == 200
        data: dict[str, Any] = await response.json()
        return data


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """``fleet ARGS`` in a subprocess with `env` added to ours."""
    result = await anyio.run_process(
        [sys.executable, "-m", "fleet.cli.main", *args], check=False, env={**os.environ, **env}
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


@pytest.mark.anyio
async def test_two_hubs_write_one_database(
    kit_clusters: list[RunningCluster], postgres: Postgres, tmp_path: Path
) -> None:
    """Two replicas (each with its own cluster) write one database; one reader sees both."""
    ns = f"history-two-{uuid.uuid4().hex[:6]}"
    url = postgres.database("replicas")
    remote = Remote(tmp_path / "git")
    commit = remote.commit({"app/settings.yaml": configmap(ns, "one")})
    hubs = []
    for i, cluster in enumerate(kit_clusters[:2]):
        settings = hub_settings(tmp_path / f"hub{i}", history=url)
        settings.config_path.parent.mkdir(parents=True)
        settings.config_path.write_text(_cfg(remote.url, ns))
        drop(cluster, settings.clusters_dir)
        hubs.append((Hub(settings), cluster))
    async with anyio.create_task_group() as tg:
        for hub, _ in hubs:
            await tg.start(hub.run)
        for hub, cluster in hubs:
            await until(functools.partial(_ready, hub, cluster.name), limit=180)
        for hub, _ in hubs:
            assert isinstance(hub.history, PgHistory)
            assert await anyio.to_thread.run_sync(hub.history.flush, 60.0)
        code, out, err = await _cli({"PGPASSWORD": PASSWORD}, "history", "web", "--history",
                                    postgres.url("replicas", password=False), "--json")  # fmt: skip
        assert code == 0, err
        for _, cluster in hubs:
            assert f'"cluster": "{cluster.name}"' in out
        assert out.count(commit) >= 2
        for hub, _ in hubs:
            hub.stop()


def _ready(hub: Hub, cluster: str) -> bool:
    return hub.board.cell("web", cluster).ready
