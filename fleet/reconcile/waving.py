"""Run a sync's waves in order (:mod:`fleet.plan.waves`), with a health gate between them.

Each wave: its objects are written in batches (Namespaces, CRDs, the rest), creations never
forced, ``Replace=true`` objects replaced (:mod:`fleet.apply.creating`), unchanged objects not
written; then its hooks are created (:mod:`fleet.reconcile.hooking`). The next wave starts only
when every object of this one is Healthy and every hook has completed; after the last wave no
gate runs, unless `gate_last` asks for one (before the PostSync hooks, which need a Healthy app).
A wave with a failed write or a failed hook stops the run; a wave not Healthy within
``wave_timeout`` stops it too, its unhealthy objects marked ``failed`` with their health and the
wave named; the objects of the waves not reached are ``skipped``.

The gate reads health through the sync's reader (the cluster's shared watches when the hub has
them warm) after one fresh read of the API with the app's label selector, so a poll costs no
request, or one LIST per kind, never one GET per object (:class:`_HealthReads`).

Every wait is bounded twice: by ``wave_timeout`` per wave and by ``sync_timeout`` for all the
waits of one sync together, so one sync holds a worker for at most ``sync_timeout`` seconds of
waiting (default 600 s) plus its writes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import anyio

from fleet import apply, plan
from fleet.apply import creating
from fleet.health import Health, Status, assess
from fleet.plan import options as object_options
from fleet.plan.waves import Wave, batches
from fleet.reconcile import hooking
from fleet.reconcile.reading import Reader
from fleet.types import Manifest, ObjectKey

__all__ = ["Run", "WaveOptions", "run_waves"]


@dataclass(frozen=True)
class WaveOptions:
    """How long a sync may wait: per wave, for all its waits together, and how often it looks."""

    wave_timeout: float = 300.0
    sync_timeout: float = 600.0
    poll_interval: float = 1.0


@dataclass
class Run:
    """What running waves did: one change per object written or skipped, one per hook run,
    the health last seen of each, and why the run stopped (None: it did not)."""

    changes: list[apply.Change] = field(default_factory=list)
    hooks: list[apply.Change] = field(default_factory=list)
    health: dict[ObjectKey, Health] = field(default_factory=dict)
    stopped: str | None = None
    deadline: float = 0.0

    def remaining(self, options: WaveOptions) -> float:
        return max(0.0, min(options.wave_timeout, self.deadline - time.monotonic()))


async def run_waves(
    cluster: apply.Cluster,
    waves: Sequence[Wave],
    *,
    options: apply.ApplyOptions,
    timing: WaveOptions,
    run: Run | None = None,
    gate_last: bool = False,
    reader: Reader | None = None,
    selector: str = "",
) -> Run:
    """Run `waves` in order (see the module); `run` carries on a run begun earlier. The health
    gate reads with `reader` (the sync's) and the app's label `selector` (:class:`_HealthReads`).
    """
    if run is None:
        run = Run(deadline=time.monotonic() + timing.sync_timeout)
    for index, wave in enumerate(waves):
        if run.stopped is not None:
            run.changes += [
                apply.Change(s.key, apply.Outcome.SKIPPED, f"not applied: {run.stopped}")
                for s in wave.steps
                if s.op is not plan.Op.UNCHANGED
            ]
            continue
        written = await _write(cluster, wave.steps, options)
        run.changes += written
        failed = [c for c in written if c.outcome is apply.Outcome.FAILED]
        if failed:
            run.stopped = f"{wave.name} failed: {apply.object_name(failed[0].key)}"
        hooks: dict[ObjectKey, hooking.Started] = {}
        if run.stopped is None and wave.hooks:
            started = await hooking.start(
                cluster,
                wave.hooks,
                phase=wave.phase,
                manager=options.field_manager,
                within=run.remaining(timing),
            )
            hooks = {s.key: s for s in started if s.live is not None}
            run.hooks += [s.change for s in started if s.live is None]
            broken = [s.change for s in started if s.live is None]
            if broken:
                run.stopped = f"{wave.name}: {broken[0].reason}"
        last = index == len(waves) - 1
        gate = {s.key: s.api_version for s in wave.steps} if (not last or gate_last) else {}
        if run.stopped is None and (gate or hooks):
            await _gate(
                cluster,
                wave,
                gate=gate,
                hooks=hooks,
                run=run,
                timing=timing,
                reads=(reader, selector),
            )
        elif hooks:
            run.hooks += await hooking.finish(
                cluster, list(hooks.values()), health={}, within=run.remaining(timing)
            )
    return run


async def _gate(
    cluster: apply.Cluster,
    wave: Wave,
    *,
    gate: Mapping[ObjectKey, str],
    hooks: Mapping[ObjectKey, hooking.Started],
    run: Run,
    timing: WaveOptions,
    reads: tuple[Reader | None, str],
) -> None:
    """Wait for the wave's objects to be Healthy and its hooks to end; record the outcome."""
    entries = {**gate, **{k: s.hook.api_version for k, s in hooks.items()}}
    limit = run.remaining(timing)
    health = await wait_healthy(
        cluster,
        entries,
        hooks=set(hooks),
        within=limit,
        poll=timing.poll_interval,
        reader=reads[0],
        selector=reads[1],
    )
    run.health.update(health)
    ended = await hooking.finish(
        cluster, list(hooks.values()), health=health, within=run.remaining(timing)
    )
    run.hooks += ended
    failed = [c for c in ended if c.outcome is apply.Outcome.FAILED]
    if failed:
        run.stopped = f"{wave.name}: {apply.object_name(failed[0].key)}: {failed[0].reason}"
        return
    late = sorted(k for k in gate if health[k].status is not Status.HEALTHY)
    if not late:
        return
    names = ", ".join(
        f"{apply.object_name(k)} ({health[k].status.value}: {health[k].message})" for k in late
    )
    run.stopped = f"{wave.name} not Healthy within {limit:.0f}s: {names}"
    reason = f"applied, but not Healthy within {limit:.0f}s ({wave.name}); later waves wait"
    run.changes = [
        dataclasses.replace(c, outcome=apply.Outcome.FAILED, reason=reason)
        if c.key in late and c.outcome is not apply.Outcome.FAILED
        else c
        for c in run.changes
    ]
    seen = {c.key for c in run.changes}
    run.changes += [apply.Change(k, apply.Outcome.FAILED, reason) for k in late if k not in seen]


async def wait_healthy(
    cluster: apply.Cluster,
    entries: Mapping[ObjectKey, str],
    *,
    hooks: set[ObjectKey],
    within: float,
    poll: float,
    reader: Reader | None = None,
    selector: str = "",
) -> dict[ObjectKey, Health]:
    """The health of `entries` once all are Healthy (a hook also ends Degraded), or when
    `within` ran out: the health last seen. Read as :class:`_HealthReads` says."""
    reads = _HealthReads(cluster, reader=reader, selector=selector)
    health: dict[ObjectKey, Health] = {}
    with anyio.move_on_after(within):
        while True:
            live = await reads.read(entries)
            health = {
                k: hooking.outcome(k, live.get(k))
                if k in hooks
                else assess(k.group, k.kind, live.get(k))
                for k in entries
            }
            if all(_done(h, hook=k in hooks) for k, h in health.items()):
                break
            await anyio.sleep(poll)
    if not health:
        missing = Health(Status.UNKNOWN, "not read before the wait ended")
        health = {k: missing for k in entries}
    return health


class _HealthReads:
    """How the health gate reads: never one GET per object per poll.

    The first poll reads the API with the app's label selector (one LIST per kind and
    namespace; a GET only for what the LIST did not return): a fresh read, after the wave's
    writes. Later polls read the sync's `reader`, the cluster's shared watches when the hub has
    them warm (no request at all), and a cached copy older than the version already seen (a watch
    lagging behind the writes) is read from the API again, so a gate never passes on the state an
    object had before the wave wrote it. Versions compare as the integers etcd gives; one that is
    not an integer and differs is read from the API too.
    """

    def __init__(self, cluster: apply.Cluster, *, reader: Reader | None, selector: str) -> None:
        self.cluster = cluster
        self.reader = reader
        self.selector = selector
        self.seen: dict[ObjectKey, str] = {}
        self.fresh = False

    async def read(self, entries: Mapping[ObjectKey, str]) -> dict[ObjectKey, Manifest]:
        if self.reader is None or not self.fresh:
            live = await apply.read_live(self.cluster, entries, selector=self.selector)
            self.fresh = True
        else:
            live = await self.reader.live(self.cluster, entries, selector=self.selector)
            behind = {k: v for k, v in entries.items() if self._behind(k, live.get(k))}
            if behind:
                for key in behind:
                    live.pop(key, None)
                live.update(await apply.read_live(self.cluster, behind, selector=self.selector))
        self.seen.update({k: _version(obj) for k, obj in live.items()})
        return live

    def _behind(self, key: ObjectKey, cached: Manifest | None) -> bool:
        seen = self.seen.get(key)
        if seen is None:
            return False
        if cached is None:
            return True  # seen, now absent: ask the API whether it is really gone
        now = _version(cached)
        if now == seen:
            return False
        if now.isdigit() and seen.isdigit():
            return int(now) < int(seen)
        return True


def _version(obj: Manifest) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _done(health: Health, *, hook: bool) -> bool:
    return health.status is Status.HEALTHY or (hook and health.status is Status.DEGRADED)


async def _write(
    cluster: apply.Cluster, steps: Sequence[plan.Step], options: apply.ApplyOptions
) -> list[apply.Change]:
    """One wave's writes, batch after batch (see the module)."""
    changes: list[apply.Change] = []
    for batch in batches([s for s in steps if s.op is not plan.Op.UNCHANGED]):
        changes += await _write_batch(cluster, batch, options)
    return changes


async def _write_batch(
    cluster: apply.Cluster, writes: Sequence[plan.Step], options: apply.ApplyOptions
) -> list[apply.Change]:
    """Creations never forced, this instance's objects as the app says, ``Replace=true``
    objects replaced; an adoption that went through is reported as such."""
    chosen = {s.key: object_options.options_of(s.manifest) for s in writes}
    replaced = [s for s in writes if chosen[s.key].replace]
    applied = [s for s in writes if not chosen[s.key].replace]
    polite = dataclasses.replace(options, force=False)
    changes = await apply.apply_objects(
        cluster, [s for s in applied if not s.force], options=polite
    )
    changes += await apply.apply_objects(cluster, [s for s in applied if s.force], options=options)
    for step in replaced:
        changes.append(
            await creating.replace_object(
                cluster,
                api_version=step.api_version,
                key=step.key,
                manifest=step.manifest,
                manager=options.field_manager,
                force=chosen[step.key].force,
                within=options.crd_timeout,
                create=step.op is plan.Op.CREATE,
                uid=step.entry.uid if step.entry is not None else "",
            )
        )
    adopted = {s.key for s in writes if s.op is plan.Op.ADOPT}
    return [
        dataclasses.replace(c, outcome=apply.Outcome.ADOPTED, reason="taken over (adopt)")
        if c.key in adopted and c.outcome in (apply.Outcome.CONFIGURED, apply.Outcome.CREATED)
        else c
        for c in changes
    ]
