"""The audit trail: every sync of every (app, cluster), in an embedded SQLite file by default.

One row per sync attempt: which revision, when it started and ended, the result, the counts of the
change set, the error if any, and when the commit was made (so commit-to-applied latency is a
column, not a guess). Git holds who changed what; this file holds what reached where and when.
``fleet history`` joins the two.

SQLite in WAL mode: the hub writes, ``fleet history`` reads concurrently from another process. All
calls go through one connection guarded by a lock; async callers use :meth:`History.arecord` and
:meth:`History.aquery`, which run the blocking work in a worker thread. Writes are behind: a
record is appended to a list and one writer thread, woken by the first row and letting the
others gather for :data:`GATHER` seconds, inserts them in one transaction, so the event loop
never waits for the disk nor wakes a thread per row (a commit reaching a thousand targets records
thousands of rows within a second). A read of this process first writes what is pending, so it
sees every row recorded before it; another process sees a row once its batch is written, some
:data:`GATHER` seconds later. :meth:`History.close` writes the rest. An insert that fails (the
disk full) loses its batch, is logged, and shows in :attr:`History.problem` until a batch is
written again.

In the hub the writer also waits out a commit's wave (:meth:`History.defer_while`, given
whether plans, renders or syncs ran in the last second: :class:`fleet.activity.Activity`), at
most :data:`WAVE_WAIT` seconds: a thousand targets' rows are then inserted after their syncs, not
by a thread that takes the interpreter's lock from them. A read still writes what is pending
first, so it misses nothing.

:class:`HistoryStore` is what every backend offers; :func:`open_history` picks one from where the
history lives: a path is this SQLite file, a ``postgresql://`` URL is the database that several
hub replicas share (:mod:`fleet.report.history_pg`, imported only when asked for, so the driver
is needed only by those who use it).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Protocol

import anyio.to_thread
from prometheus_client import CollectorRegistry

from fleet.errors import ConfigError

__all__ = [
    "EventRecord",
    "History",
    "HistoryStore",
    "SyncRecord",
    "is_database_url",
    "open_history",
    "open_to_read",
]

log = logging.getLogger(__name__)

GATHER = 0.05  # seconds the writer lets rows gather once the first one is recorded
WAVE_WAIT = 30.0  # seconds rows may wait for a wave of work to end (defer_while)
_WAVE_POLL = 0.1


def wait_out(wave: Callable[[], bool] | None, *, stop: Callable[[], bool]) -> None:
    """Block (a writer thread) while `wave()` says the hub is in a wave of work, at most
    :data:`WAVE_WAIT` seconds, or until `stop()`."""
    deadline = time.monotonic() + WAVE_WAIT
    while wave is not None and wave() and not stop() and time.monotonic() < deadline:
        time.sleep(_WAVE_POLL)


_URL_SCHEMES = ("postgresql://", "postgres://")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS syncs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app TEXT NOT NULL,
    cluster TEXT NOT NULL,
    revision TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    result TEXT NOT NULL,
    created INTEGER NOT NULL DEFAULT 0,
    configured INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    pruned INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    committed_at REAL,
    health TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS syncs_app_cluster ON syncs (app, cluster, finished_at);
CREATE INDEX IF NOT EXISTS syncs_revision ON syncs (revision);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    cluster TEXT NOT NULL,
    app TEXT NOT NULL,
    type TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    commit_sha TEXT NOT NULL DEFAULT '',
    sync TEXT NOT NULL DEFAULT '',
    health TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_app_cluster ON events (app, cluster, time);
"""


@dataclass(frozen=True)
class SyncRecord:
    """One sync attempt of one app on one cluster. Times are Unix seconds."""

    app: str
    cluster: str
    revision: str
    started_at: float
    finished_at: float
    result: str  # "synced" | "failed" | "skipped"
    created: int = 0
    configured: int = 0
    unchanged: int = 0
    pruned: int = 0
    failed: int = 0
    error: str = ""
    committed_at: float | None = None
    health: str = ""

    @property
    def commit_to_applied(self) -> float | None:
        """Seconds from the commit's timestamp to the end of this sync, when known."""
        return None if self.committed_at is None else self.finished_at - self.committed_at


_COLUMNS = [f.name for f in fields(SyncRecord)]


@dataclass(frozen=True)
class EventRecord:
    """One target event as history keeps it (see :class:`fleet.report.targets.TargetEvent`)."""

    time: float
    cluster: str
    app: str
    type: str
    severity: str
    message: str
    commit_sha: str = ""
    sync: str = ""
    health: str = ""


_EVENT_COLUMNS = [f.name for f in fields(EventRecord)]

_INSERT_SYNC = (
    f"INSERT INTO syncs ({', '.join(_COLUMNS)}) "  # noqa: S608 - our columns
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) "  # noqa: S608 - our columns
    f"VALUES ({', '.join('?' for _ in _EVENT_COLUMNS)})"
)


class HistoryStore(Protocol):
    """Where sync records and events are kept. ``record`` and ``record_event`` are called by a
    subscriber of every committed target record, so they never block on the network; the readers
    (``query``, ``events``) are for the CLI and the demo."""

    def record(self, record: SyncRecord) -> None: ...

    def record_event(self, event: EventRecord) -> None: ...

    def query(
        self, *, app: str | None = None, cluster: str | None = None, limit: int = 100
    ) -> list[SyncRecord]: ...

    def events(
        self, *, app: str | None = None, cluster: str | None = None, limit: int = 100
    ) -> list[EventRecord]: ...

    async def aquery(
        self, *, app: str | None = None, cluster: str | None = None, limit: int = 100
    ) -> list[SyncRecord]: ...

    def close(self) -> None: ...

    def defer_while(self, wave: Callable[[], bool]) -> None:
        """From now on, rows wait (a bounded time) while `wave()` is true (see the module)."""
        ...

    @property
    def problem(self) -> str:
        """Why rows are not being kept right now, in words (for the board); empty when they are."""
        ...


def is_database_url(where: str | Path) -> bool:
    """Whether `where` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(where, str) and where.startswith(_URL_SCHEMES)


def open_history(where: str | Path, *, registry: CollectorRegistry | None = None) -> HistoryStore:
    """The history at `where`: a ``postgresql://`` URL, else the path of a SQLite file.

    `registry` receives the database backend's metrics (up, pending, dropped); the SQLite file
    has none (its writes are local appends)."""
    if is_database_url(where):
        from fleet.report.history_pg import PgHistory  # here: the driver only when asked for

        return PgHistory(str(where), registry=registry)
    text = str(where)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigError(
            f"history {scheme}://...: unknown scheme {scheme!r}; give a path for SQLite or a "
            "postgresql://user@host:port/db URL"
        )
    return History(Path(where))


def open_to_read(*, url: str, state_dir: Path) -> HistoryStore:
    """The history a CLI reader asks for: the database at `url`, else the hub's SQLite file in
    `state_dir`, which must exist (a reader never creates an empty one)."""
    if url:
        return open_history(url)
    path = state_dir / "history.sqlite"
    if not path.exists():
        raise ConfigError(
            f"no history at {path}: give the hub's --state-dir, or --history URL when it writes "
            "to PostgreSQL"
        )
    return History(path)


class History:
    """The SQLite file of sync records (writes behind, see the module)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()  # the connection
        self._wake = threading.Condition()  # guards _pending and _closed
        self._pending: list[tuple[str, tuple[object, ...]]] = []  # (insert, row)
        self._closed = False
        self._problem = ""
        self._wave: Callable[[], bool] | None = None
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, no fsync each
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

        self._writer = threading.Thread(target=self._write_behind, name="history", daemon=True)
        self._writer.start()

    def close(self) -> None:
        """Write what is pending, stop the writer, close the file."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._writer.join()
        self.flush()
        with self._lock:
            self._db.close()

    @property
    def problem(self) -> str:
        """Why the last batch of rows was lost (the insert's error), until one is written."""
        return self._problem

    def defer_while(self, wave: Callable[[], bool]) -> None:
        self._wave = wave

    def record(self, record: SyncRecord) -> None:
        self._queue(_INSERT_SYNC, astuple(record))

    def record_event(self, event: EventRecord) -> None:
        self._queue(_INSERT_EVENT, astuple(event))

    def _queue(self, insert: str, row: tuple[object, ...]) -> None:
        with self._wake:
            closed = self._closed
            if not closed:
                self._pending.append((insert, row))
                if len(self._pending) == 1:  # the writer waits only for an empty list
                    self._wake.notify()
        if closed:  # a late row after close(): refused as the closed file refuses it
            raise sqlite3.ProgrammingError("the history is closed")

    def _write_behind(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return  # close() writes the rest
            time.sleep(GATHER)  # let the rows of a burst gather: one transaction, one wake-up
            wait_out(self._wave, stop=lambda: self._closed)
            with contextlib.suppress(sqlite3.Error):  # logged and kept in problem by flush
                self.flush()

    def flush(self) -> None:
        """Write every row recorded so far, one transaction (the writer's work; reads call it
        so they see every row recorded before them)."""
        with self._lock:
            with self._wake:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                self._db.execute("BEGIN")
                for insert, row in batch:
                    self._db.execute(insert, row)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._problem = f"{len(batch)} history rows lost: {exc}"
                log.error(  # noqa: TRY400 - the error's text says it all, not a traceback
                    "event=history_write_failed path=%s rows=%d error=%s",
                    self.path,
                    len(batch),
                    exc,
                )
                raise
            self._problem = ""

    def events(
        self, *, app: str | None = None, cluster: str | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """The newest events first, filtered by app and cluster."""
        select = f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events"  # noqa: S608 - our columns
        sql, args = _filtered(select, app, cluster)
        sql += " ORDER BY time DESC, id DESC LIMIT ?"
        self.flush()
        with self._lock:
            rows = self._db.execute(sql, [*args, limit]).fetchall()
        return [EventRecord(*row) for row in rows]

    def query(
        self, *, app: str | None = None, cluster: str | None = None, limit: int = 100
    ) -> list[SyncRecord]:
        """The newest records first, filtered by app and cluster."""
        select = f"SELECT {', '.join(_COLUMNS)} FROM syncs"  # noqa: S608 - our columns
        sql, args = _filtered(select, app, cluster)
        sql += " ORDER BY finished_at DESC, id DESC LIMIT ?"
        self.flush()
        with self._lock:
            rows = self._db.execute(sql, [*args, limit]).fetchall()
        return [SyncRecord(*row) for row in rows]

    async def arecord(self, record: SyncRecord) -> None:
        await anyio.to_thread.run_sync(self.record, record)

    async def aquery(
        self, *, app: str | None = None, cluster: str | None = None, limit: int = 100
    ) -> list[SyncRecord]:
        return await anyio.to_thread.run_sync(
            lambda: self.query(app=app, cluster=cluster, limit=limit)
        )


def _filtered(sql: str, app: str | None, cluster: str | None) -> tuple[str, list[object]]:
    where, args = [], []
    if app:
        where.append("app = ?")
        args.append(app)
    if cluster:
        where.append("cluster = ?")
        args.append(cluster)
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql, list(args)
