"""Rendering: plain YAML, kustomize and Helm, with Argo CD's source fields, per-cluster inputs and
strict limits."""

from __future__ import annotations

from fleet.render.documents import DocumentLimits, generated_name, parse_documents
from fleet.render.engine import Renderer, RenderPlan, RenderSettings
from fleet.render.kustomize import TreeReader
from fleet.render.params import Params
from fleet.render.spec import (
    DirectoryOptions,
    HelmFileParameter,
    HelmOptions,
    HelmParameter,
    JsonnetOptions,
    JsonnetVar,
    KustomizeOptions,
    KustomizeReplica,
    RenderSpec,
)

__all__ = [
    "DirectoryOptions",
    "DocumentLimits",
    "HelmFileParameter",
    "HelmOptions",
    "HelmParameter",
    "JsonnetOptions",
    "JsonnetVar",
    "KustomizeOptions",
    "KustomizeReplica",
    "Params",
    "RenderPlan",
    "RenderSettings",
    "RenderSpec",
    "Renderer",
    "TreeReader",
    "generated_name",
    "parse_documents",
]
