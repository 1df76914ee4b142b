"""What to render: an app's source for one cluster, after per-cluster substitution.

:meth:`RenderSpec.for_cluster` applies :class:`~fleet.render.params.Params` to the app's path,
Helm value-file names and inline values, and returns the spec with the inputs it used; those
inputs, and nothing else about the cluster, go into the cache key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleet.render.params import Params
from fleet.types import ClusterRef

__all__ = ["HelmOptions", "RenderSpec"]


@dataclass(frozen=True)
class HelmOptions:
    """How to template a chart: release name, value files (relative to the chart), inline values."""

    release: str
    value_files: tuple[str, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderSpec:
    """One render's inputs from the app: the repository path, the namespace, Helm options."""

    path: str
    namespace: str = ""
    helm: HelmOptions | None = None
    cluster_inputs: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_cluster(
        cls,
        cluster: ClusterRef,
        *,
        path: str,
        namespace: str = "",
        helm: HelmOptions | None = None,
    ) -> RenderSpec:
        """The spec for `cluster`, with ``{{ cluster.* }}`` substituted and the inputs recorded."""
        params = Params(cluster)
        if helm is not None:
            helm = HelmOptions(
                release=params.text(helm.release),
                value_files=tuple(params.text(v) for v in helm.value_files),
                values=params.values(dict(helm.values)),
            )
        return cls(
            path=params.text(path),
            namespace=params.text(namespace),
            helm=helm,
            cluster_inputs=dict(sorted(params.used.items())),
        )
