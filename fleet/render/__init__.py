"""Rendering: plain YAML, kustomize and Helm, with per-cluster inputs and strict limits."""

from __future__ import annotations

from fleet.render.documents import DocumentLimits, parse_documents
from fleet.render.engine import Renderer, RenderPlan, RenderSettings
from fleet.render.kustomize import TreeReader
from fleet.render.params import Params
from fleet.render.spec import HelmOptions, RenderSpec

__all__ = [
    "DocumentLimits",
    "HelmOptions",
    "Params",
    "RenderPlan",
    "RenderSettings",
    "RenderSpec",
    "Renderer",
    "TreeReader",
    "parse_documents",
]
