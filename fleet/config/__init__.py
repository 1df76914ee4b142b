"""What the operator declares: the apps of ``fleet.yaml`` (or Argo CD Applications) and the
clusters of ``clusters/``. Parsing only; nothing here connects anywhere."""

from __future__ import annotations

from fleet.config.model import (
    App,
    ClusterSelector,
    Config,
    Destination,
    HelmOptions,
    IgnoreRule,
    Source,
    SyncPolicy,
)
from fleet.config.projects import KindRule, Project

__all__ = [
    "App",
    "ClusterSelector",
    "Config",
    "Destination",
    "HelmOptions",
    "IgnoreRule",
    "KindRule",
    "Project",
    "Source",
    "SyncPolicy",
]
