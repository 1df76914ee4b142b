"""The audit trail in PostgreSQL: one database that every hub replica writes and ``fleet history``
reads (``--history postgresql://user@host:port/db``).

**Model.** The same two tables as the SQLite file (``syncs``, ``events``), created on first use
with ``CREATE TABLE IF NOT EXISTS`` inside a transaction holding an advisory lock, so replicas that
start together do not race on the catalog. Rows are only ever inserted (an identity key, no
read-modify-write), so any number of replicas write at once without coordination; readers order
by time, then id.

**Writes never block a reconcile.** :meth:`PgHistory.record` and :meth:`~PgHistory.record_event`
only append to a bounded in-memory buffer (:data:`_CAPACITY` rows, plus the one batch being
written); one writer thread with its own connection drains it in batches, each batch one
transaction. While the database cannot be reached the batch is kept and retried with capped
backoff; when the buffer is full the oldest rows are dropped and counted. A batch the database
refuses for its data (``DataError``, ``IntegrityError``: a NUL byte in a message) is written again
row by row and only the refused rows are dropped, each counted
(``fleet_history_rejected_total``) and logged (``event=history_row_rejected``), since retrying
them would block all history. Should the writer loop itself fail (a bug), ``fleet_history_up``
goes to 0, :attr:`PgHistory.problem` says why, its batch is dropped and counted, and the loop
starts again after a backoff. A database that is
down is therefore the history's problem, never the hub's: it shows as the metrics
``fleet_history_up`` 0, ``fleet_history_pending`` and ``fleet_history_dropped_total`` and as one
``event=history_write_failed`` log line per outage (``event=history_write_resumed`` when it
ends), and :attr:`PgHistory.problem` says it in words.

**Secrets.** A password in the URL is registered with :mod:`fleet.logs` and never printed: every
message names the database as ``postgresql://user@host:port/db``. libpq also reads ``PGPASSWORD``
and the passfile (``~/.pgpass``, ``PGPASSFILE``); prefer those to a password in the URL.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import astuple, fields
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio.to_thread
import psycopg
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fleet import logs
from fleet.errors import TransientError
from fleet.report.history import EventRecord, SyncRecord, wait_out

__all__ = ["HistoryUnavailable", "PgHistory", "safe_url"]

log = logging.getLogger(__name__)

_CAPACITY = 10_000  # rows held while the database is away (about 5 MB); older ones are dropped
_BATCH = 500  # rows per transaction
_CONNECT_TIMEOUT = 5  # seconds (libpq's connect_timeout)
_BACKOFF_FIRST = 0.5
_BACKOFF_CAP = 30.0
_CLOSE_FLUSH = 5.0  # seconds close() waits for the buffer to reach the database
_SCHEMA_LOCK = 7_244_151_017  # the advisory lock key serialising schema creation

_SCHEMA = """
CREATE TABLE IF NOT EXISTS syncs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app TEXT NOT NULL,
    cluster TEXT NOT NULL,
    revision TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION NOT NULL,
    result TEXT NOT NULL,
    created INTEGER NOT NULL DEFAULT 0,
    configured INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    pruned INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    committed_at DOUBLE PRECISION,
    health TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS syncs_app_cluster ON syncs (app, cluster, finished_at);
CREATE INDEX IF NOT EXISTS syncs_revision ON syncs (revision);
CREATE TABLE IF NOT EXISTS events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time DOUBLE PRECISION NOT NULL,
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

_SYNC_COLUMNS = [f.name for f in fields(SyncRecord)]
_EVENT_COLUMNS = [f.name for f in fields(EventRecord)]
_INSERTS = {
    table: f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - our own columns
    f"VALUES ({', '.join('%s' for _ in columns)})"
    for table, columns in (("syncs", _SYNC_COLUMNS), ("events", _EVENT_COLUMNS))
}

_Row = tuple[str, tuple[object, ...]]  # (table, values)
_REFUSED = (psycopg.DataError, psycopg.IntegrityError)  # this data, not the database: never retried


class HistoryUnavailable(TransientError):
    """The history database could not be read (the message names it, without a password)."""


def safe_url(url: str) -> str:
    """`url` without its password (and without query parameters, which may hold one)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    if parts.username:
        netloc = f"{unquote(parts.username)}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class PgHistory:
    """The history in a PostgreSQL database; see the module's docstring."""

    def __init__(
        self, url: str, *, registry: CollectorRegistry | None = None, capacity: int = _CAPACITY
    ) -> None:
        password = urlsplit(url).password
        if password:
            logs.register_secret(unquote(password))
            logs.register_secret(password)
        self.url = url
        self.where = safe_url(url)
        self._capacity = capacity
        self._rows: collections.deque[_Row] = collections.deque()
        self._lock = threading.Condition()
        self._inflight = 0
        self._stopping = False
        self._wave: Callable[[], bool] | None = None  # defer_while
        self._up = True
        self._dropped = 0
        self._failures = 0
        self._rejected = 0
        self._problem = ""
        self._writer: threading.Thread | None = None
        if registry is not None:
            registry.register(_HistoryCollector(self))

    # -- writes (never block) -------------------------------------------------------------------

    def record(self, record: SyncRecord) -> None:
        self._append(("syncs", astuple(record)))

    def record_event(self, event: EventRecord) -> None:
        self._append(("events", astuple(event)))

    async def arecord(self, record: SyncRecord) -> None:
        self.record(record)

    def _append(self, row: _Row) -> None:
        with self._lock:
            if self._stopping:
                return
            self._rows.append(row)
            self._trim()
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._drain, name="fleet-history-pg", daemon=True
                )
                self._writer.start()
            self._lock.notify_all()

    def _trim(self) -> None:
        """Drop the oldest waiting rows beyond capacity (the lock is held). A batch in flight is
        not counted: if it fails it comes back first in line, and is then the oldest dropped."""
        while len(self._rows) > self._capacity:
            self._rows.popleft()
            self._dropped += 1

    # -- state ------------------------------------------------------------------------------------

    @property
    def problem(self) -> str:
        """Why rows are not reaching the database, in words; empty while they are."""
        return self._problem

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._rows) + self._inflight

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def rejected(self) -> int:
        """Rows the database refused (their data), dropped so the others go on."""
        return self._rejected

    def flush(self, timeout: float) -> bool:
        """Wait until every row so far is in the database; False when `timeout` ran out first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._rows or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def defer_while(self, wave: Callable[[], bool]) -> None:
        """Batches wait (bounded) while `wave()` is true (see :mod:`fleet.report.history`)."""
        self._wave = wave

    def close(self) -> None:
        """Write what is buffered (for at most a few seconds), then stop the writer."""
        if not self.flush(_CLOSE_FLUSH):
            log.warning(
                "event=history_unflushed database=%s rows=%d problem=%s",
                self.where,
                self.pending,
                _quoted(self._problem),
            )
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
            writer = self._writer
        if writer is not None:
            writer.join(timeout=_CONNECT_TIMEOUT + 1)

    # -- the writer thread ------------------------------------------------------------------------

    def _drain(self) -> None:
        """The writer thread: drain until stopped. A crash of the loop (a bug, not the
        database) is shown (``_up`` false, :attr:`problem` says why), its batch dropped and
        counted, and the loop started again after a backoff: never a silent dead writer."""
        backoff = _BACKOFF_FIRST
        while True:
            try:
                self._drain_batches()
                return
            except Exception as exc:  # shown, counted, and the writer started again
                self._crashed(exc, retry_in=backoff)
            if self._wait_stopping(backoff):
                return
            backoff = min(backoff * 2, _BACKOFF_CAP)

    def _drain_batches(self) -> None:
        connection: psycopg.Connection[tuple[object, ...]] | None = None
        backoff = _BACKOFF_FIRST
        try:
            while True:
                batch = self._take()
                if batch is None:
                    break
                wait_out(self._wave, stop=lambda: self._stopping)
                try:
                    if connection is None or connection.closed:
                        connection = _connect(self.url)
                    written = self._insert_batch(connection, batch)
                except psycopg.Error as exc:  # the database is away, or refused us: retried
                    if connection is not None:
                        connection.close()
                    connection = None
                    self._failed(batch, exc)
                    if self._wait_stopping(backoff):
                        break
                    backoff = min(backoff * 2, _BACKOFF_CAP)
                    continue
                backoff = _BACKOFF_FIRST
                self._written(written)
        finally:
            if connection is not None:
                connection.close()

    def _insert_batch(
        self, connection: psycopg.Connection[tuple[object, ...]], batch: list[_Row]
    ) -> int:
        """Write `batch` in one transaction; if the database refuses its data (a NUL byte, a
        value out of range: :data:`_REFUSED`), write its rows one by one and drop (count, log)
        the ones it refuses, so one bad row never holds back the rest. Returns the rows
        written. Another error propagates with `batch` cut down to the rows not yet handled."""
        try:
            _insert(connection, batch)
            return len(batch)
        except _REFUSED:
            pass
        written = 0
        while batch:
            row = batch[0]
            try:
                _insert(connection, [row])
                written += 1
            except _REFUSED as exc:
                self._rejected_row(row, exc)
            del batch[0]
        return written

    def _rejected_row(self, row: _Row, exc: psycopg.Error) -> None:
        with self._lock:
            self._rejected += 1
        log.warning(
            "event=history_row_rejected database=%s table=%s error=%s",
            self.where,
            row[0],
            _quoted(_cause(exc)),
        )

    def _crashed(self, exc: Exception, *, retry_in: float) -> None:
        cause = logs.scrub(f"{type(exc).__name__}: {exc}".splitlines()[0])
        with self._lock:
            lost, self._inflight = self._inflight, 0
            self._dropped += lost
            self._failures += 1
            self._up = False
            self._problem = (
                f"history database {self.where}: the writer failed ({cause}); {lost} rows "
                f"dropped, {len(self._rows)} held, restarting in {retry_in:g}s"
            )
            self._lock.notify_all()
        log.error(
            "event=history_writer_crashed database=%s rows_dropped=%d error=%s",
            self.where,
            lost,
            _quoted(cause),
        )

    def _take(self) -> list[_Row] | None:
        """The next batch, waiting for one; None when stopping."""
        with self._lock:
            while not self._rows and not self._stopping:
                self._lock.wait()
            if self._stopping:
                return None
            batch = [self._rows.popleft() for _ in range(min(_BATCH, len(self._rows)))]
            self._inflight = len(batch)
            return batch

    def _written(self, count: int) -> None:
        with self._lock:
            self._inflight = 0
            self._lock.notify_all()
            was_down, self._up, self._problem = not self._up, True, ""
        if was_down:
            log.info("event=history_write_resumed database=%s rows=%d", self.where, count)

    def _failed(self, batch: Sequence[_Row], exc: psycopg.Error) -> None:
        cause = _cause(exc)
        with self._lock:
            self._inflight = 0
            self._rows.extendleft(reversed(batch))  # first in, first written, once it is back
            self._trim()
            self._failures += 1
            was_up, self._up = self._up, False
            self._problem = (
                f"history database {self.where}: {cause}; {len(self._rows)} rows held "
                f"(at most {self._capacity}), retrying"
            )
            self._lock.notify_all()
        if was_up:
            log.warning(
                "event=history_write_failed database=%s rows=%d error=%s",
                self.where,
                len(batch),
                _quoted(cause),
            )

    def _wait_stopping(self, seconds: float) -> bool:
        with self._lock:
            if not self._stopping:
                self._lock.wait_for(lambda: self._stopping, timeout=seconds)
            return self._stopping

    # -- reads (the CLI) --------------------------------------------------------------------------

    def query(
        self, *, app: str | None = None, cluster: str | None = None, limit: int = 100
    ) -> list[SyncRecord]:
        """The newest records first, filtered by app and cluster."""
        rows = self._select(
            "syncs", _SYNC_COLUMNS, "finished_at", app=app, cluster=cluster, limit=limit
        )
        return [SyncRecord(*row) for row in rows]

    def events(
        self, *, app: str | None = None, cluster: str | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """The newest events first, filtered by app and cluster."""
        rows = self._select("events", _EVENT_COLUMNS, "time", app=app, cluster=cluster, limit=limit)
        return [EventRecord(*row) for row in rows]

    async def aquery(
        self, *, app: str | None = None, cluster: str | None = None, limit: int = 100
    ) -> list[SyncRecord]:
        return await anyio.to_thread.run_sync(
            lambda: self.query(app=app, cluster=cluster, limit=limit)
        )

    def _select(
        self,
        table: str,
        columns: Iterable[str],
        order: str,
        *,
        app: str | None,
        cluster: str | None,
        limit: int,
    ) -> list[tuple[Any, ...]]:
        where, args = _filters(app, cluster)
        sql = (
            f"SELECT {', '.join(columns)} FROM {table}{where} "  # noqa: S608 - our own names
            f"ORDER BY {order} DESC, id DESC LIMIT %s"
        )
        try:  # a reader never creates the schema: it may be a read-only user
            with psycopg.connect(self.url, connect_timeout=_CONNECT_TIMEOUT) as connection:
                return connection.execute(sql, [*args, limit]).fetchall()
        except psycopg.errors.UndefinedTable:
            return []  # no hub has written here yet
        except psycopg.Error as exc:
            raise HistoryUnavailable(
                f"history database {self.where}: {_cause(exc)} (is it running, and may this user "
                "read it? a password comes from PGPASSWORD or the passfile)"
            ) from None


def _filters(app: str | None, cluster: str | None) -> tuple[str, list[object]]:
    where: list[str] = []
    args: list[object] = []
    for column, value in (("app", app), ("cluster", cluster)):
        if value:
            where.append(f"{column} = %s")
            args.append(value)
    return (" WHERE " + " AND ".join(where) if where else ""), args


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """A connection with the schema in place (created by whichever replica comes first)."""
    connection = psycopg.connect(url, connect_timeout=_CONNECT_TIMEOUT, autocommit=False)
    try:
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_LOCK])
            for statement in _statements(_SCHEMA):
                connection.execute(statement)
    except BaseException:
        connection.close()
        raise
    return connection


def _statements(script: str) -> Iterator[str]:
    for statement in script.split(";"):
        if statement.strip():
            yield statement.strip()


def _insert(connection: psycopg.Connection[tuple[object, ...]], batch: Sequence[_Row]) -> None:
    with connection.transaction(), connection.cursor() as cursor:
        for table in ("syncs", "events"):
            values = [row for name, row in batch if name == table]
            if values:
                cursor.executemany(_INSERTS[table], values)


def _cause(exc: psycopg.Error) -> str:
    """The driver's message, first line, scrubbed (libpq may quote the connection string)."""
    text = str(exc).strip().splitlines()
    return logs.scrub(text[0] if text else type(exc).__name__)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _HistoryCollector(Collector):
    """The history backend's state, read at scrape time."""

    def __init__(self, history: PgHistory) -> None:
        self._history = history

    def collect(self) -> Iterator[Metric]:
        h = self._history
        yield GaugeMetricFamily(
            "fleet_history_up",
            "1 while history rows reach the database, 0 while writes to it fail.",
            value=1.0 if h._up else 0.0,
        )
        yield GaugeMetricFamily(
            "fleet_history_pending", "History rows waiting for the database.", value=h.pending
        )
        yield CounterMetricFamily(
            "fleet_history_dropped",
            "History rows dropped because the database stayed away longer than the buffer.",
            value=h.dropped,
        )
        yield CounterMetricFamily(
            "fleet_history_write_failures",
            "Batches of history rows the database refused or did not answer.",
            value=h._failures,
        )
        yield CounterMetricFamily(
            "fleet_history_rejected",
            "History rows the database refused for their data (dropped, each logged).",
            value=h.rejected,
        )
