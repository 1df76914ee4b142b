"""A render rig for Argo CD field tests: a real git remote, the real mirror and the real engine.

:class:`Rig` commits files to a :class:`~tests.sources.gitkit.Remote`, and for a
:class:`~fleet.render.RenderSpec` plans at the head commit, extracts the plan's paths into a fresh
checkout and renders it, as :class:`fleet.reconcile.desired.DesiredState` does (and from the files
in memory too, when the engine would, checking both agree); it returns the
rendered set and the cache key (:func:`fleet.cache.render_key` of the plan). :func:`by_hand` runs
the reference tool (``helm template``, ``kubectl kustomize``) the test itself names.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from fleet.cache import render_key
from fleet.controlplane.binaries import ensure_tool
from fleet.errors import FleetError
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
        self.in_memory = 0  # renders also made from the files in memory, and found the same

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
        """What `spec` renders to at the head commit, from a checkout; a render the engine may
        also make from the files in memory is made that way too, and must give the same set or
        fail with the same error."""
        snapshot = await self.sources.snapshot(self.remote.url)
        plan = await self.renderer.plan(snapshot, spec)
        files = None
        if await self.renderer.renders_files(plan):
            files = await snapshot.plain_files(plan.reads)
        with tempfile.TemporaryDirectory(prefix="fleet-render-", dir=self.root) as scratch:
            checkout = Path(scratch) / "repo"
            await snapshot.extract(plan.reads, checkout)
            try:
                on_disk = RenderedSet.of(await self.renderer.render(checkout, plan))
            except FleetError as exc:
                if files is not None:
                    with pytest.raises(type(exc)) as caught:
                        await self.renderer.render_files(files, plan)
                    assert str(caught.value) == str(exc)
                raise
        if files is not None:
            in_memory = await self.renderer.render_files(files, plan)
            assert in_memory is not None and RenderedSet.of(in_memory) == on_disk
            self.in_memory += 1
        return on_disk
