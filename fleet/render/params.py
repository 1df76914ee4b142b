"""Per-cluster inputs of one render, and the record of which ones it used.

The substitution itself (``{{ cluster.name }}``, ``{{ cluster.labels.X }}``, nothing else) is
:mod:`fleet.config.templates`, the one implementation shared with config validation and the hub.
:class:`Params` applies it and records which inputs were actually read, so the cache key holds
exactly those: clusters that differ only in what an app does not read share its render.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleet.config import templates
from fleet.types import ClusterRef

__all__ = ["Params"]


@dataclass
class Params:
    """Substitutes `cluster`'s inputs and records which were used (``name``, ``labels.X``)."""

    cluster: ClusterRef
    used: dict[str, str] = field(default_factory=dict)

    def text(self, value: str) -> str:
        """`value` with every ``{{ ... }}`` replaced."""
        result = templates.expand(value, self.cluster)
        for name in templates.inputs_used(value):
            field_name = name.removeprefix("cluster.")
            if field_name == "name":
                self.used["name"] = self.cluster.name
            else:
                key = field_name.removeprefix("labels.")
                self.used[f"labels.{key}"] = self.cluster.labels[key]
        return result

    def values(self, value: Any) -> Any:
        """`value` (YAML data) with every string substituted, keys included."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.values(k): self.values(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.values(v) for v in value]
        return value
