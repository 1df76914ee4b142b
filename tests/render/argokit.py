"""A render rig for Argo CD field tests: a real git remote, the real mirror and the real engine.

:class:`Rig` commits files to a :class:`~tests.sources.gitkit.Remote`, and for a
:class:`~fleet.render.RenderSpec` plans at the head commit, extracts the plan's paths into a fresh
checkout and renders it, as :class:`fleet.reconcile.desired.DesiredState` does; it returns the
rendered set and the cache key (:func:`fleet.cache.render_key` of the plan). :func:`by_hand` runs
the reference tool (``helm template``, ``kubectl kustomize``) the test itself names.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from fleet.cache import render_key
from fleet.controlplane.binaries import ensure_tool
from fleet.render import Renderer, RenderSettings, RenderSpec
from fleet.settings import default_cache_dir
from fleet.sources import Sources, SourceSettings
from fleet.types import RenderedSet
from tests.sources.gitkit import Remote

__all__ = ["Rig", "by_hand", "helm_binary"]


def helm_binary() -> Path:
    """The kit's helm (the same binary the engine runs)."""
    return ensure_tool("helm", cache_dir=default_cache_dir())


def by_hand(command: list[str]) -> RenderedSet:
    """The objects `command` prints (empty documents dropped)."""
    import yaml

    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return RenderedSet.of([d for d in yaml.safe_load_all(out) if d])


class Rig:
    """A remote, its mirror and a renderer under `root`."""

    def __init__(self, root: Path, files: Mapping[str, str]) -> None:
        self.root = root
        self.remote = Remote(root)
        self.remote.commit(dict(files))
        self.sources = Sources(SourceSettings(cache_dir=root / "cache", interval=0.0))
        self.renderer = Renderer(RenderSettings(helm=helm_binary()))

    @property
    def work(self) -> Path:
        """The work tree: the files as committed, for the reference tools."""
        return self.remote.work

    async def key(self, spec: RenderSpec) -> str:
        """The cache key of `spec` at the head commit."""
        snapshot = await self.sources.snapshot(self.remote.url)
        plan = await self.renderer.plan(snapshot, spec)
        trees = await snapshot.object_ids(plan.reads)
        return render_key(
            renderer=plan.kind,
            version=await self.renderer.version(plan.kind),
            trees={p: oid for p, oid in trees.items() if oid},
            inputs=plan.inputs(),
        )

    async def render(self, spec: RenderSpec) -> RenderedSet:
        """What `spec` renders to at the head commit."""
        snapshot = await self.sources.snapshot(self.remote.url)
        plan = await self.renderer.plan(snapshot, spec)
        with tempfile.TemporaryDirectory(prefix="fleet-render-", dir=self.root) as scratch:
            checkout = Path(scratch) / "repo"
            await snapshot.extract(plan.reads, checkout)
            return RenderedSet.of(await self.renderer.render(checkout, plan))
