"""Drift: notice within seconds when someone else changes an app's objects, and heal them.

One watch per kind of the app's desired set, selected by the app's label, wakes a single
checker; wake-ups that arrive while it checks coalesce into one more check. A check is a sync
planned but not run (reads only); when it finds writes to make to objects this app instance owns,
that is drift (an object in conflict, another app's or a hand-made one, is not: it is never
written): with self-heal the app is synced (fleet's own write then wakes the checker once more,
which finds nothing), without it the drift is reported. The checker also runs every `resync`
seconds, the backstop for a watch that dropped events.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskStatus

from fleet import apply, plan
from fleet.reconcile.syncing import AppSync, Descends, SyncResult, sync
from fleet.types import ObjectKey, RenderedSet

__all__ = ["watch_drift"]

log = logging.getLogger(__name__)

OnDrift = Callable[[list[ObjectKey], SyncResult | None], Awaitable[None]]


async def watch_drift(
    cluster: apply.Cluster,
    app: AppSync,
    rendered: RenderedSet,
    *,
    self_heal: bool,
    on_drift: OnDrift,
    revision: str = "",
    resync: float = 300.0,
    descends: Descends | None = None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Watch `app`'s objects on `cluster` until cancelled; `on_drift(keys, healed)` per drift.

    `healed` is the heal's :class:`SyncResult`, or None when self-heal is off. `descends` is
    passed to the heal's sync, so a heal never lets a rewind's prunes through.
    """
    wake = anyio.Event()

    async def poke(_event: apply.WatchEvent) -> None:
        wake.set()

    kinds = sorted(
        {(str(m.get("apiVersion", "")), str(m.get("kind", ""))) for m in rendered.objects}
    )
    selector = f"{plan.APP_LABEL}={app.name}"
    async with anyio.create_task_group() as tg:
        for api_version, kind in kinds:
            await tg.start(
                functools.partial(
                    apply.watch_kind,
                    cluster,
                    api_version,
                    kind,
                    label_selector=selector,
                    on_event=poke,
                )
            )
        task_status.started()
        while True:
            with anyio.move_on_after(resync):
                await wake.wait()
            wake = anyio.Event()
            check = await sync(cluster, app, rendered, revision=revision, dry_run=True)
            drifted = [s.key for s in check.plan.applies if s.op is not plan.Op.UNCHANGED]
            if not drifted:
                continue
            log.info(
                "event=drift app=%s cluster=%s objects=%d self_heal=%s",
                app.name,
                cluster.name,
                len(drifted),
                self_heal,
            )
            healed = (
                await sync(cluster, app, rendered, revision=revision, descends=descends)
                if self_heal
                else None
            )
            await on_drift(drifted, healed)
