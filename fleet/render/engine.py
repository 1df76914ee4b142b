"""The renderer: choose how to render a path, say what it reads, and render it within bounds.

Two steps, so the cache can sit between them. :meth:`Renderer.plan` looks at the commit through a
:class:`~fleet.render.kustomize.TreeReader` (no checkout): a ``Chart.yaml`` means Helm, a
kustomization means kustomize, anything else is plain manifests; it returns a :class:`RenderPlan`
naming the renderer, every repository path the render reads, and the renderer's own inputs.
:meth:`Renderer.render` then renders a checkout of exactly those paths, at most ``concurrency``
at a time, each within ``timeout``. Tool versions are asked once and kept.

Every render, whatever its kind, first passes :func:`fleet.render.confine.check_tree` on the whole
checkout (no link may lead out of it), and a chart :func:`fleet.render.helm.check_dependencies`.
A tool runs with the checkout as its cwd, in a fresh scratch directory of its own (its ``HOME``,
temp and Helm directories, nothing else of the hub), with :func:`fleet.render.tools.tool_env`.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio

from fleet.errors import StalledError, TransientError
from fleet.render import confine, helm, kustomize, plain, tools
from fleet.render.documents import DocumentLimits, parse_documents
from fleet.render.spec import HelmOptions, RenderSpec
from fleet.types import Manifest

__all__ = ["RenderPlan", "RenderSettings", "Renderer"]

log = logging.getLogger(__name__)

Kind = Literal["plain", "kustomize", "helm"]


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
        if self.kind == "helm" and self.spec.helm is not None:
            inputs["namespace"] = self.spec.namespace
            inputs["release"] = self.spec.helm.release
            inputs["valueFiles"] = list(self.spec.helm.value_files)
            inputs["values"] = self.spec.helm.values
        return inputs


class Renderer:
    """Renders plans; one per hub, shared by every app and cluster."""

    def __init__(self, settings: RenderSettings | None = None) -> None:
        self.settings = settings or RenderSettings()
        self._limiter = anyio.CapacityLimiter(self.settings.concurrency)
        self._versions: dict[Kind, str] = {}
        self.renders = 0  # how many renders ran (tests and metrics)

    async def plan(self, reader: kustomize.TreeReader, spec: RenderSpec) -> RenderPlan:
        """Decide the renderer for `spec` at the commit `reader` reads; list what it reads."""
        kind_of_path = await reader.kind(spec.path)
        if kind_of_path is None:
            raise StalledError(f"path {spec.path!r} does not exist")
        if kind_of_path == "blob":
            return RenderPlan("plain", spec.path, (spec.path,), spec)
        names = set(await reader.names(spec.path))
        limits = self.settings.limits
        if "Chart.yaml" in names:
            options = spec.helm or HelmOptions(release="release")
            spec = RenderSpec(spec.path, spec.namespace, options, spec.cluster_inputs)
            return RenderPlan("helm", spec.path, tuple(helm.reads(spec.path, options)), spec)
        if names & set(kustomize.KUSTOMIZATION_NAMES):
            paths = await kustomize.reads(reader, spec.path, limits=limits)
            return RenderPlan("kustomize", spec.path, tuple(paths), spec)
        return RenderPlan("plain", spec.path, (spec.path,), spec)

    async def version(self, kind: Kind) -> str:
        """``plain/1``, ``kustomize v5.5.0`` or ``helm v3.x``: part of the cache key."""
        if kind not in self._versions:
            self._versions[kind] = await self._ask_version(kind)
        return self._versions[kind]

    async def render(self, checkout: Path, plan: RenderPlan) -> list[Manifest]:
        """The objects `plan` yields from `checkout` (which holds at least ``plan.reads``)."""
        async with self._limiter:
            started = time.monotonic()
            try:
                with anyio.fail_after(self.settings.timeout):
                    objects = await self._render(checkout, plan)
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
        limits = self.settings.limits
        await anyio.to_thread.run_sync(lambda: self._confine(checkout, plan))
        if plan.kind == "plain":
            return await anyio.to_thread.run_sync(
                lambda: plain.load_directory(checkout, plan.path, limits=limits)
            )
        with tempfile.TemporaryDirectory(prefix="fleet-tool-") as scratch:
            home = Path(scratch)
            env = tools.tool_env(home)
            if plan.kind == "kustomize":
                command = kustomize.build_command(
                    checkout / plan.path, binary=self.settings.kustomize
                )
                source = f"kustomize build of {plan.path}"
            else:
                command = self._helm_command(checkout, plan, home)
                source = f"helm template of {plan.path}"
            out = await tools.run_tool(
                command,
                cwd=checkout,
                env=env,
                max_output=self.settings.max_output_bytes,
                name=plan.kind,
            )
        big = DocumentLimits(self.settings.max_output_bytes, limits.max_nodes)
        return parse_documents(out, source=source, limits=big)

    def _confine(self, checkout: Path, plan: RenderPlan) -> None:
        """Refuse a checkout a renderer could read out of (see :mod:`fleet.render.confine`)."""
        confine.check_tree(checkout)
        if plan.kind == "helm":
            helm.check_dependencies(checkout, plan.path, limits=self.settings.limits)

    def _helm_command(self, checkout: Path, plan: RenderPlan, home: Path) -> list[str]:
        options = plan.spec.helm
        assert options is not None  # plan() always sets it for a chart
        inline = None
        if options.values:
            inline = home / "inline-values.json"
            inline.write_text(json.dumps(_plain(options.values)))
        return helm.template_command(
            self._helm(),
            checkout=checkout,
            chart=plan.path,
            namespace=plan.spec.namespace,
            options=options,
            inline_values=inline,
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
        with tempfile.TemporaryDirectory(prefix="fleet-tool-") as scratch:
            env = tools.tool_env(Path(scratch))
            if kind == "helm":
                command = [str(self._helm()), "version", "--template", "{{.Version}}"]
            else:
                build = kustomize.build_command(Path(scratch), binary=self.settings.kustomize)
                if build[1] == "kustomize":
                    command = [build[0], "version", "--client", "-o", "json"]
                else:
                    command = [build[0], "version"]
            out = await tools.run_tool(command, cwd=Path(scratch), env=env, max_output=1 << 20)
        text = out.decode().strip()
        if kind == "kustomize" and text.startswith("{"):
            text = "kubectl " + str(json.loads(text).get("kustomizeVersion", "?"))
        return f"{kind} {text}"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
