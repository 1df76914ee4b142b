"""Desired state of one app on one cluster: source, plan, cache, render, in that order.

:meth:`DesiredState.desired` is the whole pipeline below ``plan/``. For (app, cluster) it
substitutes the cluster's inputs into the app's source, resolves the revision through the shared
mirror, plans the render from the commit (renderer, paths read), keys it by the object ids of
those paths, and returns the cached set or renders once (from the files in memory when the
renderer takes them, else from a checkout of the paths): concurrent identical renders coalesce
(single flight), and clusters with equal inputs share the entry. The plan and key of a
(repo, commit, spec) are kept in memory, so a hit costs one file read.

Failure never loses the last good render: :class:`Desired` carries the error (its message names
the repo, the commit, the path and the cause) *and* the last good set, flagged ``stale``, so
nothing downstream prunes or applies because of a bad commit.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import anyio

from fleet import logs
from fleet.activity import Activity
from fleet.cache import ManifestCache, SingleFlight, render_key
from fleet.errors import FleetError, StalledError
from fleet.render import (
    DirectoryOptions,
    HelmOptions,
    KustomizeOptions,
    Renderer,
    RenderPlan,
    RenderSpec,
    generated_name,
)
from fleet.sources import Snapshot, Sources, repo_path
from fleet.types import ClusterRef, Manifest, ObjectKey, RenderedSet, canonical_json

__all__ = ["AppSource", "Desired", "DesiredState"]

log = logging.getLogger(__name__)

_MEMO_SIZE = 32768  # plans kept: one per (repo, commit, spec); 10,000 entries at two commits fit


@dataclass(frozen=True)
class AppSource:
    """An app's source, in the words of ``fleet.yaml`` (templates not yet substituted)."""

    name: str
    repo_url: str
    revision: str = "HEAD"
    path: str = "."
    namespace: str = ""
    helm: HelmOptions | None = None
    kustomize: KustomizeOptions | None = None
    directory: DirectoryOptions | None = None  # Argo CD's directory semantics (no recursion)
    plugin: bool = False  # a config-management plugin source: refused by the renderer


@dataclass(frozen=True)
class Desired:
    """The outcome for one (app, cluster): a rendered set, or an error and the last good set."""

    app: str
    cluster: str
    rendered: RenderedSet | None
    commit: str | None = None
    key: str | None = None
    error: FleetError | None = None
    rendered_now: bool = False  # false for a cache hit
    revision: str | None = None  # the commit the source resolved to (also when its render failed)

    @property
    def stale(self) -> bool:
        """True when `rendered` is the last good set kept because of `error`."""
        return self.error is not None


class DesiredState:
    """The pipeline shared by every app and cluster of the hub."""

    def __init__(
        self,
        *,
        sources: Sources,
        renderer: Renderer,
        cache: ManifestCache,
        activity: Activity | None = None,
    ) -> None:
        self.sources = sources
        self.renderer = renderer
        self.cache = cache
        self.activity = activity or Activity()  # plans and renders are a wave's work
        self._flight: SingleFlight[str, RenderedSet] = SingleFlight()
        self._plan_flight: SingleFlight[bytes, tuple[RenderPlan, str]] = SingleFlight()
        self._plans: OrderedDict[bytes, tuple[RenderPlan, str]] = OrderedDict()
        self._last_good: dict[tuple[str, str], Desired] = {}

    def last_good(self, app: str, cluster: str) -> RenderedSet | None:
        """The last set rendered without error for (app, cluster), if any."""
        last = self._last_good.get((app, cluster))
        return last.rendered if last else None

    async def desired(self, app: AppSource, cluster: ClusterRef) -> Desired:
        """The desired set of `app` on `cluster` now (see the module docstring)."""
        where = f"app {app.name} cluster {cluster.name}: repo {logs.scrub(app.repo_url)} "
        where += f"revision {app.revision!r} path {app.path!r}"
        resolved: str | None = None
        try:
            spec = RenderSpec.for_cluster(
                cluster,
                path=app.path,
                namespace=app.namespace,
                helm=app.helm,
                kustomize=app.kustomize,
                directory=app.directory,
                plugin=app.plugin,
                app=app.name,
            )
            snapshot = await self.sources.snapshot(app.repo_url, app.revision)
            resolved = snapshot.commit
            where = f"app {app.name} cluster {cluster.name}: {snapshot.where} path {spec.path!r}"
            result = await self._desired(app, cluster, snapshot, spec)
        except FleetError as exc:
            error = type(exc)(f"{where}: {exc}")
            log.warning(
                "event=desired_failed app=%s cluster=%s error=%s", app.name, cluster.name, error
            )
            last = self._last_good.get((app.name, cluster.name))
            return Desired(
                app.name,
                cluster.name,
                last.rendered if last else None,
                commit=last.commit if last else None,
                key=last.key if last else None,
                error=error,
                revision=resolved,
            )
        self._last_good[(app.name, cluster.name)] = result
        return result

    async def _desired(
        self, app: AppSource, cluster: ClusterRef, snapshot: Snapshot, spec: RenderSpec
    ) -> Desired:
        spec = dataclasses.replace(spec, path=repo_path(spec.path))
        plan, key = await self._plan(snapshot, spec)
        if plan.needs_cluster:  # a Rancher Fleet bundle: which target applies depends on it
            plan, key = await self._plan(snapshot, spec.with_cluster(cluster))
        rendered = await self.cache.get(key)
        fresh = False
        if rendered is None:

            async def lead() -> RenderedSet:  # runs for the single flight's leader only
                nonlocal fresh
                before = self.renderer.renders
                result = await self._render(snapshot, plan, key)
                fresh = self.renderer.renders != before
                return result

            with self.activity.working():
                rendered = await self._flight.do(key, lead)
        return Desired(
            app.name,
            cluster.name,
            rendered,
            commit=snapshot.commit,
            key=key,
            rendered_now=fresh,
            revision=snapshot.commit,
        )

    async def _plan(self, snapshot: Snapshot, spec: RenderSpec) -> tuple[RenderPlan, str]:
        memo = canonical_json(
            [
                snapshot.mirror.repo.key,
                snapshot.commit,
                spec.identity(),
            ]
        )
        if memo in self._plans:
            self._plans.move_to_end(memo)
            return self._plans[memo]
        # the keys of a new commit arrive together: one of them plans, the others wait for it
        with self.activity.working():
            return await self._plan_flight.do(memo, lambda: self._make_plan(snapshot, spec, memo))

    async def _make_plan(
        self, snapshot: Snapshot, spec: RenderSpec, memo: bytes
    ) -> tuple[RenderPlan, str]:
        if memo in self._plans:
            return self._plans[memo]
        plan = await self.renderer.plan(snapshot, spec)
        trees = await snapshot.object_ids(plan.reads)
        missing = [path for path, oid in trees.items() if oid is None]
        if missing:
            raise StalledError(f"path {missing[0]!r} does not exist")
        key = render_key(
            renderer=plan.kind,
            version=await self.renderer.version(plan.kind),
            trees={p: oid for p, oid in trees.items() if oid},
            inputs=plan.inputs(),
        )
        self._plans[memo] = (plan, key)
        if len(self._plans) > _MEMO_SIZE:
            self._plans.popitem(last=False)
        return plan, key

    async def _render(self, snapshot: Snapshot, plan: RenderPlan, key: str) -> RenderedSet:
        cached = await self.cache.get(key)  # a flight that finished just before we joined
        if cached is not None:
            return cached
        objects = None
        if await self.renderer.renders_files(plan):
            files = await snapshot.plain_files(plan.reads)
            if files is not None:
                objects = await self.renderer.render_files(files, plan)
        if objects is None:
            objects = await self._render_checkout(snapshot, plan)
        seen: set[ObjectKey] = set()
        for obj in objects:
            if generated_name(obj) is not None:
                continue  # no name yet (a hook Job): it has no identity to be rendered twice
            object_key = ObjectKey.of(obj)
            if object_key in seen:
                raise StalledError(f"object {object_key} is rendered twice")
            seen.add(object_key)
        rendered = RenderedSet.of(objects)
        await self.cache.put(key, rendered)
        return rendered

    async def _render_checkout(self, snapshot: Snapshot, plan: RenderPlan) -> list[Manifest]:
        """`plan` rendered from a checkout of its paths, written to a scratch directory."""
        # made and removed in a worker thread: a checkout's files are many small writes, and a
        # thousand entries rendering at a new commit would otherwise stall the event loop
        scratch = Path(
            await anyio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="fleet-render-"))
        )
        try:
            checkout = scratch / "repo"
            await snapshot.extract(plan.reads, checkout)
            return await self.renderer.render(checkout, plan)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: shutil.rmtree(scratch, ignore_errors=True))
