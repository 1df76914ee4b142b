"""The renderer: choose how to render a path, say what it reads, and render it within bounds.

Two steps, so the cache can sit between them. :meth:`Renderer.plan` looks at the commit through a
:class:`~fleet.render.kustomize.TreeReader` (no checkout) and picks the tool as Argo CD's
detection does (:mod:`fleet.render.detect`: a kustomization, a chart, else plain manifests); it
returns a :class:`RenderPlan` naming the renderer, every repository path the render reads, and
the renderer's own inputs.
:meth:`Renderer.render` then renders a checkout of exactly those paths, at most ``concurrency``
at a time, each within ``timeout``. Tool versions are asked once and kept. A kustomize build whose
files are plain (no links) and text renders from those files in memory instead
(:meth:`Renderer.render_files`, krender's in-memory filesystem): no checkout is written, so there
is nothing to confine but the names, which the snapshot checked, and the edits of the kustomize
options are made on the text.

The spec's options are Argo CD's source fields; options for a tool other than the one the files
name are an error naming the field, as is a ``plugin`` source, rather than a render that silently
drops them. Helm options shape the
command (:mod:`fleet.render.helm`); kustomize options are written into the checkout's copy of the
kustomization before the build (:mod:`fleet.render.kustomize_edit`); directory options select
Argo CD's directory semantics (:mod:`fleet.render.directory`). Every option that changes the
output is in :meth:`RenderPlan.inputs`, so it is in the cache key.

A Rancher Fleet bundle (:mod:`fleet.render.rancher`) plans to one of those tools, its choice in
the spec; its raw YAML and namespaces are :mod:`fleet.render.rancher_raw`'s.

Every render, whatever its kind, first passes :func:`fleet.render.confine.check_tree` on the whole
checkout (no link may lead out of it), and a chart :func:`fleet.render.helm.check_dependencies`.
A tool runs with the checkout as its cwd, in a fresh scratch directory of its own (its ``HOME``,
temp and Helm directories, nothing else of the hub), with :func:`fleet.render.tools.tool_env`.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from fleet.errors import StalledError, TransientError
from fleet.render import (
    confine,
    detect,
    directory,
    helm,
    jsonnet,
    kustomize,
    kustomize_edit,
    plain,
    rancher_raw,
    tools,
)
from fleet.render.detect import Kind
from fleet.render.documents import DocumentLimits, objects_of, parse_documents
from fleet.render.spec import DirectoryOptions, HelmOptions, KustomizeOptions, RenderSpec
from fleet.types import Manifest

__all__ = ["RenderPlan", "RenderSettings", "Renderer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderSettings:
    """Bounds and tools for rendering."""

    concurrency: int = 4
    timeout: float = 120.0  # seconds per render
    helm: Path | None = None  # default: helm on PATH
    kustomize: Path | None = None  # default: kustomize on PATH, else kubectl
    limits: DocumentLimits = field(default_factory=DocumentLimits)
    max_output_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class RenderPlan:
    """How one spec renders at one commit: renderer, paths read (own path first), inputs."""

    kind: Kind
    path: str
    reads: tuple[str, ...]
    spec: RenderSpec

    def inputs(self) -> dict[str, Any]:
        """What besides the trees and the tool decides the output (for the cache key)."""
        inputs: dict[str, Any] = {"path": self.path, "cluster": dict(self.spec.cluster_inputs)}
        spec = self.spec
        if self.kind == "helm" and spec.helm is not None:
            options = spec.helm
            inputs["namespace"] = spec.namespace
            inputs["release"] = helm.release_name(options, spec.app)
            inputs["valueFiles"] = list(options.value_files)
            inputs["values"] = options.values
            more = _changed(options, HelmOptions(), skip=("release", "value_files", "values"))
            if more:
                inputs["helm"] = more
        if (
            self.kind == "kustomize"
            and spec.kustomize is not None
            and not spec.kustomize.is_empty()
        ):
            inputs["kustomize"] = _changed(spec.kustomize, KustomizeOptions())
        if self.kind == "plain" and spec.directory is not None:
            inputs["directory"] = dataclasses.asdict(spec.directory)
            inputs["jsonnet"] = jsonnet.version()
        if spec.rancher is not None:
            inputs["rancher"] = {"format": "rancher/1", **dataclasses.asdict(spec.rancher)}
        return inputs

    @property
    def needs_cluster(self) -> bool:
        """A Rancher bundle that chooses by cluster, planned without one: plan with the cluster."""
        return self.spec.rancher is not None and self.spec.rancher.needs_cluster


class Renderer:
    """Renders plans; one per hub, shared by every app and cluster."""

    def __init__(self, settings: RenderSettings | None = None) -> None:
        self.settings = settings or RenderSettings()
        self._limiter = anyio.CapacityLimiter(self.settings.concurrency)
        self._versions: dict[Kind, str] = {}
        self._kustomize = kustomize.Builder(  # krender when built, else the CLI
            binary=self.settings.kustomize,
            jobs=self.settings.concurrency,
            max_output=self.settings.max_output_bytes,
        )
        self.renders = 0  # how many renders ran (tests and metrics)

    async def plan(self, reader: kustomize.TreeReader, spec: RenderSpec) -> RenderPlan:
        """Decide the renderer for `spec` at the commit `reader` reads; list what it reads."""
        found = await detect.detect(reader, spec, limits=self.settings.limits)
        return RenderPlan(found.kind, found.spec.path, found.reads, found.spec)

    async def version(self, kind: Kind) -> str:
        """``plain/1``, ``kustomize v5.5.0`` or ``helm v3.x``: part of the cache key."""
        if kind not in self._versions:
            self._versions[kind] = await self._ask_version(kind)
        return self._versions[kind]

    @property
    def from_files(self) -> int:
        """How many of the renders came from files in memory (:meth:`render_files`)."""
        batch = self._kustomize.batch
        return batch.from_files if batch is not None else 0

    async def renders_files(self, plan: RenderPlan) -> bool:
        """Whether `plan` may render from its files in memory (:meth:`render_files`): a plain
        kustomize build (not a Rancher bundle) through a krender that takes files."""
        return (
            plan.kind == "kustomize"
            and plan.spec.rancher is None
            and await self._kustomize.takes_files()
        )

    async def render_files(
        self, files: Mapping[str, bytes], plan: RenderPlan
    ) -> list[Manifest] | None:
        """The objects `plan` yields from `files` (repository path -> bytes: at least the files
        of ``plan.reads``, none a link), built in memory; only when :meth:`renders_files`. None
        when a file is not UTF-8 text, which a request cannot carry as it is: render it from a
        checkout then."""
        try:
            texts = {path: data.decode() for path, data in files.items()}
        except UnicodeDecodeError:
            return None
        return await self._timed(plan, lambda: self._kustomize_files(texts, plan))

    async def _kustomize_files(self, texts: dict[str, str], plan: RenderPlan) -> list[Manifest]:
        options = plan.spec.kustomize
        if options is not None and not options.is_empty():
            prefix = f"{plan.path}/" if plan.path else ""
            file = next(
                (prefix + n for n in kustomize.KUSTOMIZATION_NAMES if prefix + n in texts), None
            )
            if file is None:
                raise StalledError(f"path {plan.path!r}: no kustomization to edit")
            texts[file] = kustomize_edit.edited(
                texts[file].encode(), file, options, limits=self.settings.limits
            )
        big = DocumentLimits(self.settings.max_output_bytes, self.settings.limits.max_nodes)
        docs = await self._kustomize.documents_of_files(texts, plan.path, limits=big)
        return objects_of(docs, source=f"kustomize build of {plan.path}")

    async def render(self, checkout: Path, plan: RenderPlan) -> list[Manifest]:
        """The objects `plan` yields from `checkout` (which holds at least ``plan.reads``)."""
        return await self._timed(plan, lambda: self._render(checkout, plan))

    async def _timed(
        self, plan: RenderPlan, render: Callable[[], Awaitable[list[Manifest]]]
    ) -> list[Manifest]:
        """`render` within the concurrency limit and the timeout, counted and logged."""
        async with self._limiter:
            started = time.monotonic()
            try:
                with anyio.fail_after(self.settings.timeout):
                    objects = await render()
            except TimeoutError:
                raise TransientError(
                    f"path {plan.path!r}: {plan.kind} render timed out after "
                    f"{self.settings.timeout:g} s"
                ) from None
            self.renders += 1
            log.info(
                "event=render kind=%s path=%s objects=%d elapsed_s=%.3f",
                plan.kind,
                plan.path,
                len(objects),
                time.monotonic() - started,
            )
            return objects

    async def _render(self, checkout: Path, plan: RenderPlan) -> list[Manifest]:
        bundle = plan.spec.rancher
        if bundle is None:
            return await self._render_tool(checkout, plan)
        if bundle.needs_cluster:
            raise StalledError(
                f"{bundle.file}: this Rancher Fleet bundle chooses by cluster, and the render "
                "was asked without one (the hub must plan it with RenderSpec.with_cluster)"
            )
        if plan.kind != "plain":
            return rancher_raw.place(await self._render_tool(checkout, plan), bundle)
        limits = self.settings.limits
        await anyio.to_thread.run_sync(lambda: confine.check_tree(checkout))
        raw = await anyio.to_thread.run_sync(
            lambda: rancher_raw.load(checkout, bundle, limits=limits)
        )
        return rancher_raw.place(raw, bundle)

    async def _render_tool(self, checkout: Path, plan: RenderPlan) -> list[Manifest]:
        limits = self.settings.limits
        await anyio.to_thread.run_sync(lambda: self._confine(checkout, plan))
        options = plan.spec.directory
        if plan.kind == "plain" and options is not None:
            return await self._directory(checkout, plan, options)
        if plan.kind == "plain":
            return await anyio.to_thread.run_sync(
                lambda: plain.load_directory(checkout, plan.path, limits=limits)
            )
        big = DocumentLimits(self.settings.max_output_bytes, limits.max_nodes)
        with tempfile.TemporaryDirectory(prefix="fleet-tool-") as scratch:
            home = Path(scratch)
            env = tools.tool_env(home)
            if plan.kind == "kustomize":
                await anyio.to_thread.run_sync(lambda: self._edit(checkout, plan))
                docs = await self._kustomize.documents(checkout, plan.path, env=env, limits=big)
                return objects_of(docs, source=f"kustomize build of {plan.path}")
            command = self._helm_command(checkout, plan, home)
            out = await tools.run_tool(
                command,
                cwd=checkout,
                env=env,
                max_output=self.settings.max_output_bytes,
                name=plan.kind,
            )
        return parse_documents(out, source=f"helm template of {plan.path}", limits=big)

    def _confine(self, checkout: Path, plan: RenderPlan) -> None:
        """Refuse a checkout a renderer could read out of (see :mod:`fleet.render.confine`)."""
        confine.check_tree(checkout)
        if plan.kind == "helm":
            helm.check_dependencies(checkout, plan.path, limits=self.settings.limits)

    async def _directory(
        self, checkout: Path, plan: RenderPlan, options: DirectoryOptions
    ) -> list[Manifest]:
        """Argo CD's directory app: its manifests, then its jsonnet files evaluated one by one."""
        limits = self.settings.limits
        pending: list[str] | None = [] if jsonnet.available() else None
        objects = await anyio.to_thread.run_sync(
            lambda: directory.load_directory(
                checkout, plan.path, options, limits=limits, jsonnet_files=pending
            )
        )
        for file in pending or []:
            with tempfile.TemporaryDirectory(prefix="fleet-tool-") as scratch:
                objects += await jsonnet.evaluate(
                    checkout,
                    file,
                    app_path=plan.path,
                    options=options.jsonnet,
                    scratch=Path(scratch),
                    max_output=self.settings.max_output_bytes,
                )
        return objects

    def _edit(self, checkout: Path, plan: RenderPlan) -> None:
        """Write the app's kustomize options into the checkout's kustomization (not the mirror)."""
        options = plan.spec.kustomize
        if options is None or options.is_empty():
            return
        names = {p.name for p in (checkout / plan.path).iterdir()}
        name = next(n for n in kustomize.KUSTOMIZATION_NAMES if n in names)
        file = f"{plan.path}/{name}" if plan.path else name
        kustomize_edit.write(checkout, file, options, limits=self.settings.limits)

    def _helm_command(self, checkout: Path, plan: RenderPlan, home: Path) -> list[str]:
        options = plan.spec.helm
        assert options is not None  # plan() always sets it for a chart
        inline = None
        text = helm.inline_values_text(options)
        if text is not None:
            inline = home / "inline-values.yaml"  # JSON is YAML
            inline.write_text(text)
        return helm.template_command(
            self._helm(),
            checkout=checkout,
            chart=plan.path,
            namespace=plan.spec.namespace,
            options=options,
            inline_values=inline,
            app=plan.spec.app,
        )

    def _helm(self) -> Path:
        if self.settings.helm is not None:
            return self.settings.helm
        found = shutil.which("helm")
        if found is None:
            raise StalledError("helm is not on PATH (set RenderSettings.helm)")
        return Path(found)

    async def _ask_version(self, kind: Kind) -> str:
        if kind == "plain":
            return "plain/1"
        if kind == "kustomize":
            return f"kustomize {await self._kustomize.version()}"
        with tempfile.TemporaryDirectory(prefix="fleet-tool-") as scratch:
            env = tools.tool_env(Path(scratch))
            command = [str(self._helm()), "version", "--template", "{{.Version}}"]
            out = await tools.run_tool(command, cwd=Path(scratch), env=env, max_output=1 << 20)
        return f"{kind} {out.decode().strip()}"


def _changed(value: Any, default: Any, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of dataclass `value` that differ from `default`, as plain data."""
    return {
        f.name: _plain(getattr(value, f.name))
        for f in dataclasses.fields(value)
        if f.name not in skip and getattr(value, f.name) != getattr(default, f.name)
    }


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
