"""Which tool renders a path, as Argo CD's tool detection decides, and the source checks before it.

:func:`detect` looks at the commit through a :class:`~fleet.render.kustomize.TreeReader` (no
checkout) and returns the renderer, every repository path the render reads (the app's path
first) and the spec as the render will use it. The rules, Argo CD's:

- a kustomization (``kustomization.yaml``, ``kustomization.yml``, ``Kustomization``) means
  kustomize; a ``Chart.yaml`` means Helm; when both are present the kustomization wins (Argo CD
  walks the files in name order and the later match stays), unless the app gives Helm options,
  an explicit source type; anything else is a directory of plain manifests (and jsonnet).
- Only the app's own directory decides: a kustomization or chart in a subdirectory of a plain
  path does not make it one (see :mod:`fleet.render.directory` for what reading it then does).
- A directory holding a Rancher Fleet ``fleet.yaml`` (recognised by its keys, never fleet's own
  config with ``apps:``) is a Rancher bundle: :mod:`fleet.render.rancher` chooses the cluster's
  target and the tool, and the result renders through the same Helm, kustomize or plain path;
  app options for a tool are refused there, since the bundle names its own.
- A ``plugin`` source, and options for two tools at once ("multiple application sources
  defined"), are refused before anything is read; options for a tool other than the one the
  files name are refused naming the field, never silently dropped.

Helm options are checked here (refused fields, the release name, value files and file parameters
present at the commit; missing value files dropped with ``ignoreMissingValueFiles``), kustomize
components missing at the commit dropped with ``ignoreMissingComponents``, and jsonnet library
directories checked and added to the paths read.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
from dataclasses import dataclass
from typing import Literal

from fleet.errors import StalledError
from fleet.render import helm, jsonnet, kustomize, kustomize_edit, rancher, rancher_bundle
from fleet.render.documents import DocumentLimits
from fleet.render.spec import HelmOptions, KustomizeOptions, RenderSpec

__all__ = ["Detected", "Kind", "detect"]

log = logging.getLogger(__name__)

Kind = Literal["plain", "kustomize", "helm"]


@dataclass(frozen=True)
class Detected:
    """The renderer of a spec at a commit, the paths it reads (its own first), the spec to use."""

    kind: Kind
    reads: tuple[str, ...]
    spec: RenderSpec


async def detect(
    reader: kustomize.TreeReader, spec: RenderSpec, *, limits: DocumentLimits
) -> Detected:
    """How `spec` renders at the commit `reader` reads (see the module docstring)."""
    _check_sources(spec)
    kind_of_path = await reader.kind(spec.path)
    if kind_of_path is None:
        raise StalledError(f"path {spec.path!r} does not exist")
    names = set(await reader.names(spec.path)) if kind_of_path == "tree" else set()
    bundle = await rancher_bundle.read_bundle(reader, spec.path, names, limits=limits)
    if bundle is not None:
        return await _rancher(reader, spec, bundle, limits=limits)
    is_kustomization = bool(names & set(kustomize.KUSTOMIZATION_NAMES))
    if "Chart.yaml" in names and (spec.helm is not None or not is_kustomization):
        _check_tool(spec, "helm")
        spec = dataclasses.replace(spec, helm=await _helm_options(reader, spec))
        assert spec.helm is not None
        return Detected("helm", tuple(helm.reads(spec.path, spec.helm)), spec)
    if is_kustomization:
        _check_tool(spec, "kustomize")
        if spec.kustomize is not None and spec.kustomize.ignore_missing_components:
            spec = dataclasses.replace(spec, kustomize=await _present(reader, spec))
        extra = kustomize_edit.references(spec.kustomize) if spec.kustomize else []
        paths = await kustomize.reads(reader, spec.path, limits=limits, extra=extra)
        return Detected("kustomize", tuple(paths), spec)
    _check_tool(spec, "plain")
    libs = jsonnet.lib_paths(spec.directory.jsonnet) if spec.directory else []
    kinds = await reader.kinds(libs)
    for lib in libs:
        if kinds[lib] != "tree":
            raise StalledError(
                f"spec.source.directory.jsonnet.libs {lib!r} is not a directory of the "
                "repository at this commit"
            )
    return Detected("plain", (spec.path, *sorted(set(libs) - {spec.path})), spec)


async def _rancher(
    reader: kustomize.TreeReader,
    spec: RenderSpec,
    bundle: rancher_bundle.Bundle,
    *,
    limits: DocumentLimits,
) -> Detected:
    """A Rancher Fleet bundle: its fleet.yaml picks the tool and options (:mod:`.rancher`)."""
    for name, present in (
        ("spec.source.helm", spec.helm is not None),
        ("spec.source.kustomize", spec.kustomize is not None and not spec.kustomize.is_empty()),
        ("spec.source.directory", spec.directory is not None),
    ):
        if present:
            raise StalledError(
                f"{name} is set but path {spec.path!r} holds a Rancher Fleet bundle "
                f"({bundle.file}), whose fleet.yaml chooses the tool and its options; remove "
                "the field"
            )
    planned = await rancher.plan(reader, bundle, spec.cluster, limits=limits)
    record = planned.record
    spec = dataclasses.replace(
        spec,
        path=planned.path,
        rancher=record,
        namespace=record.namespace or record.default_namespace or spec.namespace,
        cluster_inputs=dict(sorted({**spec.cluster_inputs, **planned.used}.items())),
    )
    reads: list[str] = [bundle.path]
    kind: Kind = "plain"
    if planned.kind == "helm" and not record.needs_cluster:
        kind = "helm"
        options = HelmOptions(release=planned.release, values=dict(planned.values))
        spec = dataclasses.replace(spec, helm=options)
        spec = dataclasses.replace(spec, helm=await _helm_options(reader, spec))
        assert spec.helm is not None
        reads += helm.reads(spec.path, spec.helm)
    elif planned.kind == "kustomize" and not record.needs_cluster:
        kind = "kustomize"
        reads += await kustomize.reads(reader, spec.path, limits=limits)
    inside = [p for p in reads if bundle.path in ("", p) or p.startswith(bundle.path + "/")]
    outside = sorted({p for p in reads if p not in inside})
    return Detected(kind, (bundle.path, *outside), spec)


_TOOL_FIELDS = {"helm": "spec.source.helm", "kustomize": "spec.source.kustomize"}


def _check_sources(spec: RenderSpec) -> None:
    """Refuse a plugin source, and options for two tools at once (Argo CD refuses both too)."""
    if spec.plugin:
        raise StalledError(
            "spec.source.plugin: config management plugins are not supported by fleet; render "
            "the manifests in CI and commit them, or use a Helm, kustomize or directory source"
        )
    given = [
        name
        for name, present in (
            ("spec.source.helm", spec.helm is not None),
            ("spec.source.kustomize", spec.kustomize is not None and not spec.kustomize.is_empty()),
            (
                "spec.source.directory",
                spec.directory is not None and not spec.directory.is_default(),
            ),
        )
        if present
    ]
    if len(given) > 1:
        raise StalledError(f"multiple application sources defined: {' and '.join(given)}")


def _check_tool(spec: RenderSpec, kind: Kind) -> None:
    """Refuse options for a tool other than the one the files at the path name."""
    found = {"helm": "a Chart.yaml", "kustomize": "a kustomization", "plain": "plain files"}[kind]
    wrong: list[str] = []
    if spec.helm is not None and kind != "helm":
        wrong.append(_TOOL_FIELDS["helm"])
    if spec.kustomize is not None and not spec.kustomize.is_empty() and kind != "kustomize":
        wrong.append(_TOOL_FIELDS["kustomize"])
    if spec.directory is not None and not spec.directory.is_default() and kind != "plain":
        wrong.append("spec.source.directory")
    if wrong:
        raise StalledError(
            f"{wrong[0]} is set but path {spec.path!r} holds {found}; remove the field or point "
            "the app at a path for that tool"
        )


async def _helm_options(reader: kustomize.TreeReader, spec: RenderSpec) -> HelmOptions:
    """The chart's options, checked, with missing value files dropped if the app says so."""
    options = spec.helm or HelmOptions()
    helm.check_options(options)
    helm.release_name(options, spec.app)  # checked now, before anything runs
    for name in options.value_files:
        if "://" in name:
            raise StalledError(
                f"value file {name!r} of chart {spec.path!r} is a URL: fleet reads values only "
                "from the repository; commit the file and name it relative to the chart"
            )
    paths = helm.value_file_paths(spec.path, options)
    files = helm.file_parameter_paths(spec.path, options)
    kinds = await reader.kinds([*paths, *files]) if paths or files else {}
    for parameter, path in zip(options.file_parameters, files, strict=True):
        if kinds.get(path) != "blob":
            raise StalledError(
                f"spec.source.helm.fileParameters {parameter.name!r}: file {parameter.path!r} "
                f"({path}) does not exist in the repository"
            )
    kept = []
    for name, path in zip(options.value_files, paths, strict=True):
        if kinds.get(path) == "blob":
            kept.append(name)
        elif not options.ignore_missing_value_files:
            raise StalledError(
                f"value file {name!r} of chart {spec.path!r} ({path}) does not exist; commit it, "
                "or set spec.source.helm.ignoreMissingValueFiles"
            )
    return dataclasses.replace(options, value_files=tuple(kept))


async def _present(reader: kustomize.TreeReader, spec: RenderSpec) -> KustomizeOptions:
    """The kustomize options without the components missing at the commit."""
    options = spec.kustomize
    assert options is not None
    paths = {c: posixpath.normpath(posixpath.join(spec.path, c)) for c in options.components}
    kinds = await reader.kinds(list(paths.values())) if paths else {}
    kept = tuple(c for c, p in paths.items() if kinds.get(p) is not None or p.startswith(".."))
    if kept != options.components:
        log.info("event=components_missing path=%s dropped=%d", spec.path, len(paths) - len(kept))
    return dataclasses.replace(options, components=kept)
