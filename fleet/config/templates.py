"""Per-cluster placeholders in an app's path and Helm values: ``{{ cluster.name }}`` and
``{{ cluster.labels.KEY }}``, and nothing else.

Deliberately not a template engine: the only inputs are the cluster's name and labels, so the
per-cluster inputs of a render are known exactly (they go into its cache key: two clusters whose
used inputs agree share one render). A malformed or unknown placeholder is a configuration error
found at load time; a label the cluster lacks is an error for that (app, cluster) pair alone
(a :class:`ConfigError`, so it is not retried until the config or the cluster's labels change).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fleet.errors import ConfigError
from fleet.types import ClusterRef

__all__ = ["expand", "expand_values", "inputs_used", "validate"]

_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_NAME = "cluster.name"
_LABEL = re.compile(r"cluster\.labels\.([A-Za-z0-9_./-]+)")


def _fields(template: str) -> list[str]:
    return [match.group(1) for match in _PLACEHOLDER.finditer(template)]


def validate(template: str, *, where: str) -> None:
    """Raise :class:`ConfigError` (naming `where`) for an unknown or malformed placeholder."""
    if template.count("{{") != template.count("}}"):
        raise ConfigError(f"{where}: unbalanced '{{{{' / '}}}}' in {template!r}")
    for name in _fields(template):
        if name != _NAME and not _LABEL.fullmatch(name):
            raise ConfigError(
                f"{where}: unknown placeholder {{{{ {name} }}}} in {template!r}; "
                "use {{ cluster.name }} or {{ cluster.labels.KEY }}"
            )


def inputs_used(template: str) -> tuple[str, ...]:
    """The cluster fields `template` reads (``cluster.name``, ``cluster.labels.env``), sorted."""
    return tuple(sorted(set(_fields(template))))


def expand(template: str, cluster: ClusterRef) -> str:
    """`template` with the cluster's name and labels filled in."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == _NAME:
            return cluster.name
        label = _LABEL.fullmatch(name)
        if label is None:
            raise ConfigError(
                f"cluster {cluster.name}: unknown placeholder {{{{ {name} }}}}; only "
                "cluster.name and cluster.labels.KEY are known"
            )
        key = label.group(1)
        if key not in cluster.labels:
            raise ConfigError(f"cluster {cluster.name} has no label {key!r} (used in {template!r})")
        return cluster.labels[key]

    return _PLACEHOLDER.sub(value, template)


def expand_values(values: Mapping[str, Any], cluster: ClusterRef) -> dict[str, Any]:
    """A copy of Helm `values` with placeholders in every string expanded, keys included."""

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return expand(node, cluster)
        if isinstance(node, Mapping):
            return {walk(key): walk(item) for key, item in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    result: dict[str, Any] = walk(values)
    return result
