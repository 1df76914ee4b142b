"""Per-cluster inputs: ``{{ cluster.name }}`` and ``{{ cluster.labels.X }}``, and nothing else.

A tiny substitution, not a template language: an app's path, Helm value-file names and inline
values may name the cluster or one of its labels. :class:`Params` records which inputs a
substitution actually used, so the cache key holds exactly those: clusters that differ only in
what an app does not read share its render.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleet.errors import ConfigError
from fleet.types import ClusterRef

__all__ = ["Params"]

_EXPR = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_LABEL = re.compile(r"^cluster\.labels\.([A-Za-z0-9_./-]+)$")


@dataclass
class Params:
    """Substitutes `cluster`'s inputs and records which were used (``name``, ``labels.X``)."""

    cluster: ClusterRef
    used: dict[str, str] = field(default_factory=dict)

    def text(self, value: str) -> str:
        """`value` with every ``{{ ... }}`` replaced."""
        return _EXPR.sub(lambda m: self._lookup(m.group(1)), value)

    def values(self, value: Any) -> Any:
        """`value` (YAML data) with every string substituted, keys included."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.values(k): self.values(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.values(v) for v in value]
        return value

    def _lookup(self, expr: str) -> str:
        if expr == "cluster.name":
            self.used["name"] = self.cluster.name
            return self.cluster.name
        label = _LABEL.match(expr)
        if label is None:
            raise ConfigError(
                f"cluster {self.cluster.name}: unknown expression {{{{ {expr} }}}}; "
                "only cluster.name and cluster.labels.X are known"
            )
        key = label.group(1)
        if key not in self.cluster.labels:
            raise ConfigError(f"cluster {self.cluster.name} has no label {key!r}")
        self.used[f"labels.{key}"] = self.cluster.labels[key]
        return self.cluster.labels[key]
