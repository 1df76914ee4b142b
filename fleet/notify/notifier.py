"""The notifier: a subscriber of the targets that only enqueues, and a service that delivers.

:class:`Notifier` is called by :class:`~fleet.report.Targets` with every committed record and its
events, synchronously, inside a reconcile. So :meth:`Notifier.__call__` decides and enqueues, and
nothing more: it filters (event type, app and cluster globs), deduplicates, freezes a
:class:`~fleet.notify.messages.Notice` and puts it in that sink's bounded :class:`Outbox`. It never
does I/O, never waits and never raises. A full outbox drops its oldest notice and counts it.

What "the same" means:

- event sinks (webhook, Slack): the same (sink, app, cluster, event type, commit) within the
  sink's ``dedupWindow`` is sent once, so a flapping target does not spam a channel;
- status sinks (GitHub, GitLab): a target's commit state is sent when it changes; a newer state of
  the same commit and context replaces one still waiting, so the commit ends showing the latest.

A notice that finally fails frees its dedup entry, so the next occurrence is tried again.

:meth:`Notifier.run` is the service: one worker per sink, in order, over one aiohttp session. A
worker sends with :func:`~fleet.notify.delivery.deliver` (timeout, retries, Retry-After) and counts
the result in that sink's :class:`SinkStats`; a sink that fails is logged by name and endpoint
host, never by its secret or its URL's path and query, and never stops the others or the hub.

:meth:`Notifier.configure` takes the sinks of a reloaded config while running (an unchanged sink
keeps its queue and counters); :meth:`Notifier.flush` waits for the queues to empty, for a
graceful stop.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, replace

import aiohttp
import anyio
import anyio.abc

from fleet import logs
from fleet.errors import ConfigError
from fleet.notify import delivery, messages
from fleet.notify.messages import Endpoint, Notice
from fleet.notify.outbox import Outbox, SinkStats
from fleet.notify.settings import DeliverySettings, SinkSpec
from fleet.report.targets import TargetEvent, TargetStatus
from fleet.runtime.clock import Clock

__all__ = ["Notifier"]

log = logging.getLogger(__name__)

_DEDUP_SWEEP = 4096  # dedup entries kept before the expired ones are swept


@dataclass
class _Sink:
    spec: SinkSpec
    endpoint: Endpoint | None  # None: its secrets are missing (the error in stats)
    outbox: Outbox
    stats: SinkStats
    scope: anyio.CancelScope | None = None  # its worker's, once running
    stopped: bool = False
    busy: bool = False  # a notice is being delivered

    def stop(self) -> None:
        self.stopped = True
        if self.scope is not None:
            self.scope.cancel()


class Notifier:
    """Targets' subscriber and delivery service (see the module docstring).

    `env` holds the sinks' secrets (``os.environ``); `repo_of(app)` is the app's repoURL, for
    commit statuses; `clock` times retries, timeouts and the dedup window.
    """

    def __init__(
        self,
        specs: Iterable[SinkSpec],
        *,
        env: Mapping[str, str],
        repo_of: Callable[[str], str],
        clock: Clock,
        delivery_settings: DeliverySettings | None = None,
    ) -> None:
        self._repo_of = repo_of
        self._clock = clock
        self._settings = delivery_settings or DeliverySettings()
        self._seen: dict[tuple[str, str, str, str, str], float] = {}  # event key -> expiry
        self._states: dict[tuple[str, str, str], tuple[str, str]] = {}  # -> (commit, state)
        self._env = env
        self._group: anyio.abc.TaskGroup | None = None
        self._http: aiohttp.ClientSession | None = None
        self._sinks: list[_Sink] = [self._sink(spec, SinkStats()) for spec in specs]

    def _sink(self, spec: SinkSpec, stats: SinkStats) -> _Sink:
        endpoint: Endpoint | None = None
        try:
            endpoint = messages.resolve(spec, self._env)
        except ConfigError as exc:
            stats.last_error = str(exc)
        else:
            stats.last_error = ""
            logs.register_secret(endpoint.url if spec.url_env else None)
            logs.register_secret(endpoint.secret or None)
            logs.register_secret(endpoint.token or None)
        return _Sink(spec, endpoint, Outbox(spec.queue_size), stats)

    def configure(self, specs: Iterable[SinkSpec]) -> None:
        """Take the sinks of a reloaded config, while running or not.

        An unchanged sink keeps its queue; a changed one restarts (its waiting notices are
        dropped and counted); a removed one stops. Counters live as long as the sink's name.
        """
        old = {s.spec.name: s for s in self._sinks}
        sinks: list[_Sink] = []
        for spec in specs:
            kept = old.pop(spec.name, None)
            if kept is not None and kept.spec == spec:
                sinks.append(kept)
                continue
            sink = self._sink(spec, kept.stats if kept is not None else SinkStats())
            if kept is not None:
                kept.stop()
                sink.stats.dropped += len(kept.outbox)
            sinks.append(sink)
            self._start(sink)
        for gone in old.values():
            gone.stop()
        names = {s.spec.name for s in sinks}
        self._states = {k: v for k, v in self._states.items() if k[0] in names}
        self._seen = {k: v for k, v in self._seen.items() if k[0] in names}
        self._sinks = sinks
        log.info("event=notify_configured sinks=%d", len(sinks))

    def problems(self) -> list[str]:
        """Why a sink cannot send (a secret's variable not set): one sentence each."""
        return [s.stats.last_error for s in self._sinks if s.endpoint is None]

    def stats(self) -> dict[str, SinkStats]:
        """A copy of every sink's counters, by sink name."""
        return {s.spec.name: replace(s.stats, queued=len(s.outbox)) for s in self._sinks}

    def sink_types(self) -> dict[str, str]:
        return {s.spec.name: s.spec.type for s in self._sinks}

    # -- the subscriber -------------------------------------------------------------------------

    def __call__(self, status: TargetStatus, events: tuple[TargetEvent, ...]) -> None:
        """Enqueue what `status` and `events` mean for each sink; never blocks, never raises."""
        for sink in self._sinks:
            try:
                if not _selects(sink.spec, status.app, status.cluster):
                    continue
                if sink.spec.is_status:
                    self._take_status(sink, status, events)
                else:
                    self._take_events(sink, events)
            except Exception as exc:  # a bug here must not reach the reconcile
                sink.stats.failed += 1
                sink.stats.last_error = delivery.reason(exc, timeout=sink.spec.timeout)
                log.exception(
                    "event=notify_enqueue_failed sink=%s app=%s cluster=%s error=%s",
                    sink.spec.name,
                    status.app,
                    status.cluster,
                    type(exc).__name__,
                )

    def _take_events(self, sink: _Sink, events: tuple[TargetEvent, ...]) -> None:
        now = self._clock.now()
        for event in events:
            if event.type not in sink.spec.on:
                continue
            key = (sink.spec.name, event.app, event.cluster, event.type, event.commit)
            if self._seen.get(key, -1.0) > now:
                sink.stats.deduplicated += 1
                continue
            self._remember(key, now + sink.spec.dedup_window, now)
            notice = Notice(
                app=event.app,
                cluster=event.cluster,
                type=event.type,
                commit=event.commit,
                message=event.message,
                time=event.time,
                severity=event.severity,
                sync=event.sync,
                health=event.health,
            )
            self._put(sink, notice)

    def _take_status(
        self, sink: _Sink, status: TargetStatus, events: tuple[TargetEvent, ...]
    ) -> None:
        target = (sink.spec.name, status.app, status.cluster)
        if any(e.type == "Removed" for e in events):
            self._states.pop(target, None)
            return
        found = messages.commit_state(status)
        if found is None:
            return
        state, commit, description = found
        if self._states.get(target) == (commit, state):
            return
        try:
            repo = self._repo_of(status.app)
        except Exception:  # the lead's lookup: an app that just left the config
            sink.stats.failed += 1
            sink.stats.last_error = f"no repository known for app {status.app}"
            log.warning(
                "event=notify_failed sink=%s app=%s cluster=%s error=%s",
                sink.spec.name,
                status.app,
                status.cluster,
                sink.stats.last_error,
            )
            return
        self._states[target] = (commit, state)
        notice = Notice(
            app=status.app,
            cluster=status.cluster,
            type=state,
            commit=commit,
            message=description,
            time=self._clock.now(),
            sync=status.sync,
            health=status.health,
            repo=repo,
        )
        self._put(sink, notice, key=(status.app, status.cluster, commit))

    def _remember(self, key: tuple[str, str, str, str, str], expiry: float, now: float) -> None:
        if len(self._seen) >= _DEDUP_SWEEP:
            self._seen = {k: t for k, t in self._seen.items() if t > now}
        self._seen[key] = expiry

    def _put(self, sink: _Sink, notice: Notice, *, key: Hashable | None = None) -> None:
        if sink.endpoint is None:
            sink.stats.failed += 1  # its secret is missing: counted, shown in stats and at start
            return
        dropped = sink.outbox.put(notice, key=key)
        if dropped is not None:
            sink.stats.dropped += 1
            self._forget(sink, dropped)
            log.warning(
                "event=notify_dropped sink=%s app=%s cluster=%s type=%s queue=%d",
                sink.spec.name,
                dropped.app,
                dropped.cluster,
                dropped.type,
                sink.spec.queue_size,
            )

    # -- the service ----------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Deliver every sink's notices until cancelled; ready once the workers run."""
        for problem in self.problems():
            log.warning("event=notify_sink_disabled error=%s", problem)
        try:
            async with aiohttp.ClientSession() as http, anyio.create_task_group() as group:
                self._group, self._http = group, http
                for sink in self._sinks:
                    self._start(sink)
                task_status.started()
                await anyio.sleep_forever()  # sinks configured later start in this group
        finally:
            self._group = self._http = None

    async def flush(self) -> None:
        """Wait until every running sink's queue is empty and nothing is being sent.

        For a graceful stop: bound it with a timeout (``move_on_after``), then cancel :meth:`run`.
        """
        while any(s.busy or (len(s.outbox) and not s.stopped) for s in self._live()):
            await self._clock.sleep(0.05)

    def _live(self) -> list[_Sink]:
        return [s for s in self._sinks if s.endpoint is not None and not s.stopped]

    def _start(self, sink: _Sink) -> None:
        if self._group is not None and self._http is not None and sink.endpoint is not None:
            self._group.start_soon(self._work, sink, self._http)

    async def _work(self, sink: _Sink, http: aiohttp.ClientSession) -> None:
        spec, endpoint = sink.spec, sink.endpoint
        if endpoint is None:
            return

        def retried(error: BaseException) -> None:
            sink.stats.retried += 1
            log.info(
                "event=notify_retry sink=%s endpoint=%s error=%s",
                spec.name,
                messages.shown_endpoint(endpoint.url or spec.api_url),
                delivery.reason(error, timeout=spec.timeout),
            )

        with anyio.CancelScope() as sink.scope:
            if sink.stopped:
                return
            while True:
                notice = await sink.outbox.get()
                sink.busy = True
                try:
                    await self._send(sink, notice, endpoint=endpoint, http=http, retried=retried)
                finally:
                    sink.busy = False

    async def _send(
        self,
        sink: _Sink,
        notice: Notice,
        *,
        endpoint: Endpoint,
        http: aiohttp.ClientSession,
        retried: Callable[[BaseException], None],
    ) -> None:
        spec = sink.spec
        try:
            request = messages.request_for(endpoint, notice)
            await delivery.deliver(
                http,
                request,
                attempts=spec.attempts,
                limit=spec.timeout,
                settings=self._settings,
                clock=self._clock,
                on_retry=retried,
            )
        except Exception as exc:  # one sink's failure is counted and logged, never raised
            self._failed(sink, notice, endpoint=endpoint, exc=exc)
        else:
            sink.stats.sent += 1

    def _forget(self, sink: _Sink, notice: Notice) -> None:
        """`notice` went unsent: the next occurrence is not a duplicate."""
        name = sink.spec.name
        if sink.spec.is_status:
            target = (name, notice.app, notice.cluster)
            if self._states.get(target) == (notice.commit, notice.type):
                del self._states[target]  # the next record tries again
        else:
            self._seen.pop((name, notice.app, notice.cluster, notice.type, notice.commit), None)

    def _failed(self, sink: _Sink, notice: Notice, *, endpoint: Endpoint, exc: Exception) -> None:
        spec = sink.spec
        why = (
            str(exc) if isinstance(exc, ValueError) else delivery.reason(exc, timeout=spec.timeout)
        )
        sink.stats.failed += 1
        sink.stats.last_error = why
        self._forget(sink, notice)
        log.warning(
            "event=notify_failed sink=%s type=%s endpoint=%s app=%s cluster=%s notice=%s error=%s",
            spec.name,
            spec.type,
            messages.shown_endpoint(endpoint.url or spec.api_url),
            notice.app,
            notice.cluster,
            notice.type,
            why,
        )


def _selects(spec: SinkSpec, app: str, cluster: str) -> bool:
    return any(fnmatch.fnmatchcase(app, g) for g in spec.apps) and any(
        fnmatch.fnmatchcase(cluster, g) for g in spec.clusters
    )
